"""Vision transformers (option image, attndocs/vision.py): extraction, labels, rollout, cache keys, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from attndocs.errors import InputError, OptionError
from attndocs.options import FigureOptions, SiteSettings
from attndocs.payload import build_payload
from attndocs.pipeline import Pipeline
from attndocs.record import AttentionRecord
from attndocs.vision import patch_labels, read_image

GRID = 4  # tiny_models: a 32 px image in 8 px patches


def draw_scene(path: Path, *, sun: tuple[int, int] = (60, 6), size: tuple[int, int] = (96, 72)) -> Path:
    """A small picture (sky, grass, a house, a sun), drawn here: no image file ships with the tests."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 50, size[0], size[1]), fill=(80, 160, 70))
    draw.ellipse((sun[0], sun[1], sun[0] + 24, sun[1] + 24), fill=(250, 210, 40))
    draw.rectangle((14, 30, 44, 56), fill=(180, 70, 50))
    draw.polygon([(10, 30), (29, 14), (48, 30)], fill=(110, 40, 30))
    image.save(path)
    return path


def image_figure(model: Path, image: Path | str, **options) -> FigureOptions:
    return FigureOptions.from_mapping({"model": str(model), "image": str(image), **options})


def model_attention(folder: Path, image: Path) -> list[np.ndarray]:
    """The model's own attention for the image, run here with transformers directly."""
    import torch
    import transformers
    from PIL import Image

    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = model(**processor(images=Image.open(image).convert("RGB"), return_tensors="pt"), output_attentions=True)
    return [a[0].numpy() for a in out.attentions]


@pytest.mark.parametrize("family,special", [("vit", ["[CLS]"]), ("deit", ["[CLS]", "[DIST]"])])
def test_extraction_equals_the_models_own_attention(family, special, tiny_model_dir, tmp_path):
    folder = tiny_model_dir(family)
    picture = draw_scene(tmp_path / "scene.png")
    pipeline = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache")), exact=True)
    record = pipeline.compute_one(image_figure(folder, picture)).record
    expected = model_attention(folder, picture)
    attention = record.sections["encoder"].attention
    assert attention.shape == (len(expected), *expected[0].shape)
    np.testing.assert_allclose(attention, np.stack(expected), atol=1e-6)
    tokens = record.sides["encoder"].tokens
    assert tokens[: len(special)] == special
    assert tokens[len(special) :] == [f"r{r}c{c}" for r in range(1, GRID + 1) for c in range(1, GRID + 1)]
    assert record.sides["encoder"].special == [True] * len(special) + [False] * GRID * GRID
    image = record.image
    assert (image["rows"], image["cols"], image["first"], image["patch"]) == (GRID, GRID, len(special), [8, 8])
    assert (image["width"], image["height"]) == (32, 32)


def test_rollout_is_abnar_and_zuidema_from_the_class_token(tiny_model_dir, tmp_path):
    folder = tiny_model_dir("vit")
    picture = draw_scene(tmp_path / "scene.png")
    record = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache")), exact=True).compute_one(image_figure(folder, picture)).record
    flow = np.eye(1 + GRID * GRID)
    for layer, attention in enumerate(model_attention(folder, picture)):
        mixed = attention.mean(axis=0) + np.eye(len(flow))  # mean over heads, plus the residual path
        mixed /= mixed.sum(axis=1, keepdims=True)
        flow = mixed @ flow
        np.testing.assert_allclose(record.image["rollout"][layer], flow[0], rtol=1e-5, atol=1e-7)
        assert abs(sum(record.image["rollout"][layer]) - 1) < 1e-5


def test_the_picture_is_what_the_model_saw(tiny_model_dir, tmp_path):
    """The shipped picture is the processed image with its normalisation undone (32 x 32 here)."""
    import base64
    import io

    from PIL import Image

    picture = draw_scene(tmp_path / "scene.png")
    record = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).compute_one(image_figure(tiny_model_dir("vit"), picture)).record
    shown = Image.open(io.BytesIO(base64.b64decode(record.image["data"]))).convert("RGB")
    assert shown.size == (32, 32)
    expected = np.asarray(Image.open(picture).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.int16)
    assert np.abs(np.asarray(shown, np.int16) - expected).max() <= 2  # rescale and normalise undone, to rounding


def test_cache_key_follows_the_image_bytes_not_its_name(tiny_model_dir, tmp_path):
    folder = tiny_model_dir("vit")
    first = draw_scene(tmp_path / "a.png")
    settings = SiteSettings(cache_dir=str(tmp_path / "cache"))
    cold = Pipeline(settings)
    one = cold.compute_one(image_figure(folder, first)).record
    assert cold.stats.computed == 1

    renamed = tmp_path / "renamed.png"
    shutil.copyfile(first, renamed)
    warm = Pipeline(settings)
    again = warm.compute_one(image_figure(folder, renamed))
    assert (warm.stats.cached, warm.stats.computed) == (1, 0)
    assert again.record.key == one.key

    draw_scene(renamed, sun=(8, 6))  # the same name, a changed picture
    edited = Pipeline(settings)
    changed = edited.compute_one(image_figure(folder, renamed)).record
    assert edited.stats.computed == 1 and changed.key != one.key
    assert changed.key_parts["image"]["sha256"] != one.key_parts["image"]["sha256"]


def test_text_figures_keep_their_keys(tiny_model_dir, tmp_path):
    """The image key part exists only with an image: a text figure's key has no trace of it."""
    record = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).compute_one(
        FigureOptions.from_mapping({"model": str(tiny_model_dir("bert")), "text": "The cat sat."})
    ).record
    assert "image" not in record.key_parts and record.image is None
    assert "image" not in record.to_cache_bytes()[:4000].decode("latin-1")


def test_the_record_round_trips_through_the_cache_and_is_checked(tiny_model_dir, tmp_path):
    picture = draw_scene(tmp_path / "scene.png")
    record = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).compute_one(image_figure(tiny_model_dir("deit"), picture)).record
    back = AttentionRecord.from_bytes(record.to_cache_bytes())
    assert back.image == record.image
    public = AttentionRecord.from_bytes(record.to_bytes())
    assert public.image == record.image
    broken = AttentionRecord.from_bytes(record.to_bytes())
    broken.image = dict(broken.image, rows=5)
    with pytest.raises(Exception, match="special tokens and 5 x 4 patches"):
        broken.check()


def test_the_payload_ships_the_picture_grid_and_rollout(tiny_model_dir, tmp_path):
    picture = draw_scene(tmp_path / "scene.png")
    options = image_figure(tiny_model_dir("vit"), picture, view="patch", include_layers="1")
    record = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).compute_one(options).record
    header = build_payload(record, options).header
    image = header["image"]
    assert image["src"].startswith("data:image/png;base64,")
    assert (image["rows"], image["cols"], image["first"]) == (GRID, GRID, 1)
    assert list(image["rollout"]) == ["1"] and len(image["rollout"]["1"]) == GRID * GRID
    np.testing.assert_allclose(image["rollout"]["1"], record.image["rollout"][1][1:], rtol=1e-3)
    assert json.dumps(header).count("http") == 0  # nothing the page would fetch
    # The figure's text alternative says it is an image, and how its tokens are named.
    from attndocs.render import describe

    assert describe(record, options) == (
        "Attention patch view of vit over an image cut into 4 × 4 patches "
        "(2 layers × 2 heads, 17 encoder tokens; patches named r1c1 to r4c4)."
    )


def test_patch_labels():
    assert patch_labels(1, 2, 3) == ["[CLS]", "r1c1", "r1c2", "r1c3", "r2c1", "r2c2", "r2c3"]
    assert patch_labels(2, 1, 1) == ["[CLS]", "[DIST]", "r1c1"]
    assert patch_labels(0, 1, 2) == ["r1c1", "r1c2"]
    assert patch_labels(3, 1, 1) == ["[CLS]", "[T1]", "[T2]", "r1c1"]


@pytest.mark.parametrize("what", ["missing", "folder", "not an image", "device", "truncated"])
def test_a_bad_image_is_a_clear_error(what, tiny_model_dir, tmp_path):
    target = {"missing": tmp_path / "nope.png", "folder": tmp_path, "device": Path("/dev/zero")}.get(what, tmp_path / "bad.png")
    if what == "not an image":
        target.write_text("this is text, not a picture")
    if what == "truncated":
        target.write_bytes(draw_scene(tmp_path / "whole.png").read_bytes()[:200])
    message = {"missing": "not found", "folder": "is a folder", "device": "not a regular file"}.get(what, "cannot be read as an image")
    with pytest.raises(InputError, match=message):
        read_image(target)
    result = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).run([image_figure(tiny_model_dir("vit"), target)])[0]
    assert result.record is None and message in str(result.error)


def test_options_that_do_not_go_with_an_image_are_refused(tmp_path):
    with pytest.raises(OptionError, match="reads no text"):
        FigureOptions.from_mapping({"image": "a.png", "text": "The cat sat."})
    with pytest.raises(OptionError, match="text-b"):
        FigureOptions.from_mapping({"image": "a.png", "text_b": "The dog."})
    with pytest.raises(OptionError, match="overlay.*does nothing in the head view"):
        FigureOptions.from_mapping({"image": "a.png", "overlay": "rollout"})


def test_models_and_inputs_must_match(tiny_model_dir, tmp_path):
    picture = draw_scene(tmp_path / "scene.png")
    pipeline = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache")))
    text_on_vit, image_on_bert, image_on_gpt2 = pipeline.run([
        FigureOptions.from_mapping({"model": str(tiny_model_dir("vit")), "text": "The cat sat."}),
        image_figure(tiny_model_dir("bert"), picture),
        image_figure(tiny_model_dir("gpt2"), picture),
    ])
    assert "reads images, not text" in str(text_on_vit.error)
    assert "needs a vision model" in str(image_on_bert.error)
    assert "needs a vision encoder" in str(image_on_gpt2.error)
    patch_of_text = FigureOptions.from_mapping({"model": str(tiny_model_dir("bert")), "text": "The cat sat.", "view": "patch"})
    with pytest.raises(OptionError, match="view patch shows attention over an image"):
        build_payload(pipeline.compute_one(patch_of_text).record, patch_of_text)


def test_the_notebook_api_reads_an_image_from_the_working_folder(tiny_model_dir, tmp_path, monkeypatch):
    import attndocs

    draw_scene(tmp_path / "cat.png")
    monkeypatch.chdir(tmp_path)
    shown = attndocs.figure(image="cat.png", model=str(tiny_model_dir("vit")), view="patch", html_action="return")
    html = shown.data if hasattr(shown, "data") else str(shown)
    assert 'data-attndocs-view="patch"' in html and "data:image/png;base64," in html


def test_the_opening_state_names_patches_by_grid_position(tiny_model_dir, tmp_path):
    picture = draw_scene(tmp_path / "scene.png")
    options = image_figure(tiny_model_dir("deit"), picture, view="patch", token="r2c3", overlay="rollout", layer="1")
    record = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).compute_one(options).record
    state = build_payload(record, options).header["options"]["state"]
    assert state == {"token": {"side": "q", "index": 2 + 4 + 2}, "overlay": "rollout"}  # [CLS], [DIST], then row 2
    with pytest.raises(OptionError, match="'r9c9', which is not one of"):
        build_payload(record, options.replace(token="r9c9"))


def test_a_large_picture_ships_as_jpeg_at_most_224_px():
    """A photo-like picture whose PNG is over 48 kB goes as JPEG, scaled to 224 px a side."""
    import torch

    from attndocs.vision import SHOWN_SIDE, _shown_picture

    class Processor:  # what _shown_picture reads of an image processor
        image_mean, image_std, do_normalize = [0.5] * 3, [0.5] * 3, True

    noise = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 384, 384)).astype(np.float32))
    mime, data, size = _shown_picture(noise, Processor())
    assert mime == "image/jpeg" and size == (SHOWN_SIDE, SHOWN_SIDE) and len(data) < 60_000
    flat = torch.zeros((3, 64, 64))
    assert _shown_picture(flat, Processor())[0] == "image/png"


def test_the_cli_renders_an_image_without_a_text_and_asks_for_one_otherwise(tiny_model_dir, tmp_path, capsys):
    from attndocs.cli import main

    image = draw_scene(tmp_path / "scene.png")
    out = tmp_path / "patch.html"
    code = main(["render", "--model", str(tiny_model_dir("vit")), "--image", str(image), "--view", "patch",
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert 'data-attndocs-view="patch"' in out.read_text(encoding="utf-8")
    code = main(["extract", "--model", "minilm", "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "r.safetensors")])
    err = capsys.readouterr().err
    assert code != 0 and "no TEXT given" in err and "--image" in err and "Traceback" not in err
