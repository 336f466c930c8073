"""Vision transformers: the image option's file, the model's image processor, patch labels and rollout.

A figure with ``image`` runs a ViT-style encoder (ViT, DeiT, and any vision encoder whose
attention is square over [special tokens + grid patches]) on that image instead of a text.
This module reads and checks the image file (its sha256 goes into the cache key, so editing
the image re-runs the model and renaming it does not), loads the model's image processor,
turns the processed pixels back into the picture the model saw (shipped with the figure),
labels the tokens by grid position (``[CLS]``, ``[DIST]``, ``r1c1`` ...: 1-based row and
column) and computes the attention rollout from the class token.

Pillow and torch are imported only inside the functions that need them: record.py and
payload.py import this module to check and ship an image record without either.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, ModelError, OptionError

# The largest image file read, and the most pixels decoded (Pillow's own bomb guard is 89 MP):
# a documentation photo is far smaller; a hostile file must not cost the build its memory.
MAX_IMAGE_BYTES = 50_000_000
MAX_IMAGE_PIXELS = 50_000_000
# The picture shipped with a figure: at most this many px a side, PNG unless that is larger
# than SHOWN_PNG_BYTES, then JPEG at SHOWN_JPEG_QUALITY (a 224 px photo: about 15 kB).
SHOWN_SIDE = 224
SHOWN_PNG_BYTES = 48_000
SHOWN_JPEG_QUALITY = 85
# Special tokens before the patches that get names of their own; others are [T<n>].
_SPECIAL_NAMES = {1: ("[CLS]",), 2: ("[CLS]", "[DIST]")}
# Options that read text: an image figure has none of them.
TEXT_OPTIONS = ("text_b", "target", "generate", "compare_text", "words")
_LABEL = re.compile(r"r(\d+)c(\d+)")


@dataclass(frozen=True)
class ImageInput:
    """An image file's bytes as read for one figure, and what identifies them."""

    data: bytes = field(repr=False)
    sha256: str
    name: str  # the path as the page wrote it, for messages

    def key_part(self) -> dict[str, str]:
        """The cache key's image part: the content, never the name or the place."""
        return {"sha256": self.sha256}


# -- the option ----------------------------------------------------------------------------------
def check_options(options: Any) -> None:
    """An image figure reads no text: the block's text and the text options are refused by name."""
    if getattr(options, "image", None) is None:
        return  # view patch without an image: refused when its text record is rendered (payload.build_payload)
    for name in TEXT_OPTIONS:
        value = getattr(options, name, None)
        if value not in (None, False):
            error = OptionError(
                f"option '{name.replace('_', '-')}' reads text, but this figure shows an image",
                f"remove {name.replace('_', '-')}, or remove image",
            )
            error.option = name.replace("_", "-")  # type: ignore[attr-defined]
            raise error
    if options.text is not None and options.text.strip():
        error = OptionError(
            "an image figure reads no text, but the block has some",
            "leave the block's body empty (describe the image with alt or caption), or remove image",
        )
        error.option = "image"  # type: ignore[attr-defined]
        raise error


def resolve_path(value: str, base: str | os.PathLike[str] | None) -> str:
    """The image option as an absolute path: relative values from ``base`` (the page's folder)."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    return os.path.normpath(str(path))


def resolved_options(options: Any, base: str | os.PathLike[str] | None) -> Any:
    """``options`` with ``image`` made absolute from ``base``; unchanged without an image."""
    image = getattr(options, "image", None)
    if image is None:
        return options
    return options.replace(image=resolve_path(image, base))


def read_image(path: str | os.PathLike[str], shown: str | None = None) -> ImageInput:
    """The file's bytes, checked to be an image Pillow can decode; :class:`InputError` otherwise."""
    shown = shown or _display_path(path)
    hint = "give the image's path relative to the page (or absolute); PNG, JPEG, GIF, BMP and WebP work"
    target = Path(path)
    try:
        if target.is_dir():
            raise InputError(f"image '{shown}' is a folder, not an image file", hint)
        status = target.stat()
        if not stat.S_ISREG(status.st_mode):  # a device or a pipe (/dev/zero) would never end
            raise InputError(f"image '{shown}' is not a regular file", hint)
        if status.st_size > MAX_IMAGE_BYTES:
            raise InputError(f"image '{shown}' is {status.st_size:,} bytes, more than the limit of {MAX_IMAGE_BYTES:,}", "use a smaller image")
        with open(target, "rb") as handle:
            data = handle.read(MAX_IMAGE_BYTES + 1)  # bounded even if the file grows meanwhile
    except FileNotFoundError:
        raise InputError(f"image '{shown}' not found", hint) from None
    except OSError as exc:
        raise InputError(f"image '{shown}' cannot be read: {exc.strerror or exc}", hint) from None
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(f"image '{shown}' is more than the limit of {MAX_IMAGE_BYTES:,} bytes", "use a smaller image")
    decode(data, shown)  # refused now, with the page's line, not when the model runs
    return ImageInput(data=data, sha256=hashlib.sha256(data).hexdigest(), name=shown)


def decode(data: bytes, shown: str = "the image") -> Any:
    """A Pillow RGB image from file bytes; :class:`InputError` for what Pillow cannot decode."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise InputError(
                        f"image '{shown}' is {width} x {height} pixels, more than the limit of {MAX_IMAGE_PIXELS:,}",
                        "scale the image down; the model sees a few hundred pixels a side",
                    )
                opened.load()
                return opened.convert("RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError, SyntaxError) as exc:
        why = "not an image format Pillow knows" if isinstance(exc, UnidentifiedImageError) else _one_line(exc)
        raise InputError(f"image '{shown}' cannot be read as an image ({why})", "save it as PNG or JPEG") from None


# -- models ----------------------------------------------------------------------------------------
def is_vision_config(config: Mapping[str, Any]) -> bool:
    """Whether a config.json describes a patch-based vision encoder (ViT, DeiT, BEiT, DINOv2 ...)."""
    vision = config.get("vision_config")
    if isinstance(vision, Mapping) and "vocab_size" not in config:
        return False  # a vision-language model: its image tower alone is not what AutoModel builds
    return "image_size" in config and "patch_size" in config and "vocab_size" not in config


def load_reader(source: Any, kwargs: Mapping[str, Any]) -> Any:
    """The tokenizer of a text model, or the image processor of a vision encoder (local files only
    for a folder: nothing is fetched that the model's own files do not hold)."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(source, **kwargs).to_dict()
    except Exception:  # the tokenizer's own error below says more
        config = {}
    if not is_vision_config(config):
        return transformers.AutoTokenizer.from_pretrained(source, **kwargs)
    import logging

    # transformers says once that it falls back to the Pillow processor without torchvision: the
    # Pillow one is what attndocs wants (no extra dependency), so the note is not passed on.
    quiet = logging.getLogger("transformers.image_processing_utils_fast"), logging.getLogger("transformers")
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        return transformers.AutoImageProcessor.from_pretrained(source, **kwargs)
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def reads_images(reader: Any) -> bool:
    """Whether a loaded model's reader is an image processor (not a tokenizer)."""
    return hasattr(reader, "image_mean") or type(reader).__name__.endswith(("ImageProcessor", "ImageProcessorPil", "ImageProcessorFast"))


def check_reader(loaded: Any, image: ImageInput | None) -> None:
    """An image figure needs a vision model, a text figure a text model."""
    images = reads_images(loaded.tokenizer)
    if image is not None and not images:
        raise InputError(
            f"option image needs a vision model, but '{loaded.ref.short}' reads text",
            "use a ViT or DeiT model (a folder or hub id with an image processor), or remove image",
        )
    if image is None and images:
        raise InputError(
            f"model '{loaded.ref.short}' reads images, not text",
            "give the figure an image with the image option (and no text)",
        )


def _patch_size(config: Any) -> tuple[int, int]:
    patch = getattr(config, "patch_size", None)
    if isinstance(patch, Sequence) and len(patch) == 2:
        return int(patch[0]), int(patch[1])
    if isinstance(patch, int) and patch > 0:
        return patch, patch
    raise ModelError("the model's config has no usable patch_size", "attndocs reads ViT-style encoders, which split the image into square patches")


def encode(loaded: Any, request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's inputs (``pixel_values``) and the record's image metadata before the forward pass."""
    image = decode(request.image.data, request.image.name)
    processor = loaded.tokenizer
    try:
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    except Exception as exc:
        raise ModelError(f"the image processor of '{loaded.ref.short}' failed on image '{request.image.name}': {_one_line(exc)}") from None
    if pixels.ndim != 4:
        raise ModelError(f"the image processor of '{loaded.ref.short}' gave pixels of shape {list(pixels.shape)}, not [1, channels, height, width]")
    height, width = int(pixels.shape[2]), int(pixels.shape[3])
    ph, pw = _patch_size(loaded.model.config)
    rows, cols = height // ph, width // pw
    if rows < 1 or cols < 1:
        raise ModelError(f"the processed image ({width} x {height} px) is smaller than one patch ({pw} x {ph} px)")
    mime, data, shown = _shown_picture(pixels[0], processor)
    meta = {
        "mime": mime,
        "data": base64.b64encode(data).decode("ascii"),
        "width": shown[0],
        "height": shown[1],
        "pixels": [width, height],
        "rows": rows,
        "cols": cols,
        "patch": [ph, pw],
        "first": None,  # set from the attention's size (finish)
        "rollout": None,
        "processor": type(processor).__name__,
    }
    return {"pixel_values": pixels}, meta


def _shown_picture(pixels: Any, processor: Any) -> tuple[str, bytes, tuple[int, int]]:
    """The processed pixels back as the picture the model saw (normalisation undone), encoded small."""
    import numpy as np
    from PIL import Image

    array = pixels.detach().to("cpu").float().numpy()  # [channels, height, width]
    channels = array.shape[0]
    mean = np.asarray(getattr(processor, "image_mean", None) or [0.0] * channels, np.float32).reshape(-1, 1, 1)
    std = np.asarray(getattr(processor, "image_std", None) or [1.0] * channels, np.float32).reshape(-1, 1, 1)
    if not getattr(processor, "do_normalize", True):
        mean, std = np.zeros_like(mean), np.ones_like(std)
    values = array * std[:channels] + mean[:channels]
    if channels == 1:
        values = np.repeat(values, 3, axis=0)
    values = np.clip(np.rint(values[:3].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
    picture = Image.fromarray(values, "RGB")
    if max(picture.size) > SHOWN_SIDE:
        scale = SHOWN_SIDE / max(picture.size)
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    if out.tell() <= SHOWN_PNG_BYTES:
        return "image/png", out.getvalue(), picture.size
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=SHOWN_JPEG_QUALITY)
    return "image/jpeg", out.getvalue(), picture.size


def patch_labels(first: int, rows: int, cols: int) -> list[str]:
    """``[CLS]`` (and ``[DIST]`` or ``[T<n>]``) for the special tokens, then ``r1c1`` ... row by row."""
    special = list(_SPECIAL_NAMES.get(first, ("[CLS]", *(f"[T{i}]" for i in range(1, first)))))[:first]
    return special + [f"r{r}c{c}" for r in range(1, rows + 1) for c in range(1, cols + 1)]


def finish(meta: dict[str, Any], attention: Any, model_name: str, max_tokens: int | None) -> tuple[Any, dict[str, Any]]:
    """The record's side (tokens labelled by grid position) and image metadata with the rollout,
    from the exact float32 attention ``[layers, heads, tokens, tokens]`` of one image."""
    from .analysis import rollout
    from .record import Side

    tokens = int(attention.shape[-1])
    rows, cols = meta["rows"], meta["cols"]
    first = tokens - rows * cols
    if first < 0 or first > 16 or attention.shape[-2] != tokens:
        raise ModelError(
            f"model '{model_name}' gave attention over {attention.shape[-2]} x {tokens} tokens, not over special tokens and "
            f"its {rows} x {cols} grid of patches",
            "attndocs reads ViT-style encoders (ViT, DeiT, BEiT, DINOv2); windowed or pooled ones such as Swin are not supported",
        )
    if max_tokens is not None and tokens > max_tokens:
        raise InputError(f"the image gives {tokens} tokens, more than max-tokens ({max_tokens})", "raise max-tokens")
    labels = patch_labels(first, rows, cols)
    side = Side(tokens=labels, display=list(labels), special=[i < first for i in range(tokens)])
    out = dict(meta, first=first)
    if first >= 1:
        # From the class token (token 0), through each layer: row 0 of the rollout matrices.
        flow = rollout(attention)[:, 0, :]
        out["rollout"] = [[float(f"{v:.6g}") for v in row] for row in flow.tolist()]
    return side, out


# -- records and payloads ----------------------------------------------------------------------------
def check_record_image(image: Any, sides: Mapping[str, Any], layers: int) -> None:
    """Raise ValueError naming the first way an image record's metadata contradicts its tokens."""
    if not isinstance(image, dict):
        raise ValueError("its image metadata is not a mapping")
    for key in ("width", "height", "rows", "cols", "first"):
        value = image.get(key)
        if type(value) is not int or value < 0 or value > 100_000:
            raise ValueError(f"its image {key} is {value!r}")
    if image.get("mime") not in ("image/png", "image/jpeg") or not isinstance(image.get("data"), str):
        raise ValueError("its image picture is not PNG or JPEG data")
    try:
        base64.b64decode(image["data"], validate=True)
    except ValueError:
        raise ValueError("its image picture is not base64") from None
    side = sides.get("encoder")
    tokens = len(side) if side is not None else -1
    if tokens != image["first"] + image["rows"] * image["cols"]:
        raise ValueError(f"its image has {image['first']} special tokens and {image['rows']} x {image['cols']} patches, but {tokens} tokens")
    flow = image.get("rollout")
    if flow is not None and (
        not isinstance(flow, list)
        or len(flow) != layers
        or any(not isinstance(row, list) or len(row) != tokens or not all(isinstance(v, (int, float)) for v in row) for row in flow)
    ):
        raise ValueError(f"its image rollout is not {layers} rows of {tokens} numbers")


def payload_json(image: dict[str, Any], layers: Sequence[int]) -> dict[str, Any]:
    """The payload header's ``image``: the picture as a data URI (works from file:// offline), the grid,
    and the rollout from the class token over the patches for the shipped layers (4 significant digits)."""
    first = image["first"]
    flow = image.get("rollout")
    return {
        "src": f"data:{image['mime']};base64,{image['data']}",
        "width": image["width"],
        "height": image["height"],
        "rows": image["rows"],
        "cols": image["cols"],
        "patch": list(image.get("patch") or []),
        "first": first,
        "rollout": None if flow is None else {str(layer): [float(f"{v:.4g}") for v in flow[layer][first:]] for layer in layers},
    }


def grid_position(label: str) -> tuple[int, int] | None:
    """``(row, col)``, 1-based, of a patch label such as ``r2c3``; None for a special token."""
    match = _LABEL.fullmatch(label)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _display_path(path: str | os.PathLike[str]) -> str:
    """A path as messages show it: relative to the working folder when it lies inside it, so a
    placeholder in a published page does not name the build machine's folders."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:200]
