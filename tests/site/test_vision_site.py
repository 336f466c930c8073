"""`attndocs build` with image figures: paths relative to the page, file:line warnings, the patch view offline."""

from __future__ import annotations

from attndocs.site import build_site
from tests.test_vision import draw_scene


def image_block(model, image: str, view: str = "patch", line_text: str = "") -> str:
    return f"```attention\nmodel: {model}\nimage: {image}\nview: {view}\n{line_text}```\n"


def test_an_image_figure_builds_warms_and_draws_from_file(markdown_site, tiny_model_dir, tmp_path, open_site):
    vit = tiny_model_dir("vit")
    pages = {
        "index.md": "# Home\n",
        "guide/seeing.md": "# Seeing\n\n" + image_block(vit, "img/scene.png") + "\n" + image_block(vit, "../missing.png", "head"),
        "guide/broken.md": "# Broken\n\nSome text.\n\n" + image_block(vit, "notes.png"),
        "guide/notes.png": "not a picture",
    }
    src = markdown_site(pages)
    draw_scene((src / "guide/img").mkdir(parents=True) or src / "guide/img/scene.png")
    overrides = {"cache_dir": str(tmp_path / "cache")}
    report = build_site(src, tmp_path / "out", overrides=overrides)
    assert report.batch.computed == 1 and report.batch.failed == 2
    problems = sorted(str(p) for p in report.problems)
    assert problems[0].startswith("guide/broken.md:5: ") and "cannot be read as an image" in problems[0]
    assert problems[1].startswith("guide/seeing.md:") and "missing.png' not found" in problems[1]
    line = int(problems[1].split(":")[1])
    assert pages["guide/seeing.md"].splitlines()[line - 1] == "```attention"

    warm = build_site(src, tmp_path / "out2", overrides=overrides)
    assert warm.batch.computed == 0 and warm.batch.cached == 1
    assert (report.out / "guide/seeing.html").read_bytes() == (warm.out / "guide/seeing.html").read_bytes()

    probe = open_site(report.out, "guide/seeing.html")
    fig = probe.figures.first
    assert fig.get_attribute("data-attndocs-view") == "patch"
    probe.page.wait_for_function("() => document.querySelector('.attndocs-pdesc').textContent.length > 0")
    stats = probe.canvas_stats(".attndocs-pcanvas")
    assert stats["painted"] == stats["width"] * stats["height"]
    assert "Attention from [CLS]" in fig.locator(".attndocs-pdesc").inner_text()


def test_precompute_reads_images_relative_to_their_page(markdown_site, tiny_model_dir, tmp_path):
    # `attndocs precompute` fills the cache the build then reads: it must find the same file.
    from attndocs.precompute import precompute

    pages = {"index.md": "# Home\n", "guide/seeing.md": "# Seeing\n\n" + image_block(tiny_model_dir("vit"), "img/scene.png")}
    src = markdown_site(pages)
    draw_scene((src / "guide/img").mkdir(parents=True) or src / "guide/img/scene.png")
    overrides = {"cache_dir": str(tmp_path / "cache")}
    report = precompute(src, overrides)
    assert (report.figures, report.failed) == (1, 0), report.summary()
    built = build_site(src, tmp_path / "out", overrides=overrides)
    assert (built.batch.cached, built.batch.computed) == (1, 0)
