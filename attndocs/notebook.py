"""Notebook API: BertViz-compatible head_view, model_view and neuron_view, and figure() for any page option.

``from attndocs import head_view, model_view`` replaces ``from bertviz import ...`` (and
``from attndocs.neuron_view import show`` replaces BertViz's, see neuron_view.py): the
functions take BertViz's argument names and meanings (an attention tuple with tokens,
``sentence_b_start``, encoder/decoder/cross attention with their tokens, ``layer``,
``heads``, ``include_layers``, ``include_heads``, ``display_mode``, ``html_action``). The
result works offline (no CDN) and ``html_action="return"`` gives an object whose ``.data``
is one self-contained HTML page.

Attention may be torch tensors or numpy arrays; tensors are converted by duck typing
(``.detach().cpu().numpy()``), so this module never imports torch itself.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InputError, OptionError
from .options import FigureOptions, SiteSettings
from .record import AttentionRecord, Section, Side
from .render import describe, inline_assets_html, render_figure, render_page
from .still import still_png

_SPECIAL = re.compile(r"^(\[[A-Za-z_]+\]|<\|?[^<>\s]*\|?>)$")


class AttentionHTML:
    """What ``html_action="return"`` gives back, shaped like IPython's ``HTML`` object.

    ``.data`` is a standalone page (save it and open it from disk, network off);
    ``_repr_html_()`` is the figure with its assets inlined, for notebook front-ends;
    ``_repr_mimebundle_()`` adds ``image/png`` (``.png``: a still picture of the view the
    figure opens on, attndocs.still) and ``text/plain`` (``.description``), so hosts that
    run no script (GitHub, nbviewer, untrusted notebooks, PDF export) show the picture.
    The HTML holds the same picture until its script draws.
    """

    def __init__(self, page: str, fragment: str, png: bytes | None = None, description: str = "") -> None:
        self.data = page
        self.fragment = fragment
        self.png = png
        self.description = description

    def _repr_html_(self) -> str:
        return inline_assets_html(self.fragment)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        # The richest first: front-ends that run scripts pick text/html, the others fall back.
        bundle = {"text/html": self._repr_html_()}
        if self.png is not None:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        bundle["text/plain"] = self.description or "attndocs attention figure"
        return bundle

    def _repr_png_(self) -> bytes | None:
        return self.png

    def __str__(self) -> str:
        return self.data

    def save(self, path: str) -> None:
        """Write the standalone page to ``path``."""
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.data)


# -- conversion -------------------------------------------------------------------------
def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device or dtype) or array-like as float32 numpy, without torch."""
    if hasattr(value, "detach"):
        value = value.detach()
        if hasattr(value, "float"):
            value = value.float()  # bfloat16 has no numpy dtype
        if hasattr(value, "cpu"):
            value = value.cpu()
        if hasattr(value, "numpy"):
            value = value.numpy()
    return np.asarray(value, dtype=np.float32)


def stack_layers(attention: Any, what: str = "attention") -> np.ndarray:
    """BertViz's per-layer tuple of ``[batch, heads, rows, cols]`` -> ``[layers, heads, rows, cols]``.

    Also takes one array ``[layers, heads, rows, cols]`` or ``[layers, 1, heads, rows, cols]``.
    """
    if isinstance(attention, (list, tuple)):
        if not attention:
            raise InputError(f"{what} is empty")
        layers = []
        for i, layer in enumerate(attention):
            array = to_numpy(layer)
            if array.ndim == 4:
                if array.shape[0] != 1:
                    raise InputError(f"{what}[{i}] has batch size {array.shape[0]}", "pass one example (batch size 1)")
                array = array[0]
            if array.ndim != 3:
                raise InputError(
                    f"{what}[{i}] has shape {tuple(array.shape)}, expected [batch, heads, rows, cols]",
                    "make sure the model was called with output_attentions=True",
                )
            layers.append(array)
        return np.stack(layers)
    array = to_numpy(attention)
    if array.ndim == 5:
        if array.shape[1] != 1:
            raise InputError(f"{what} has batch size {array.shape[1]}", "pass one example (batch size 1)")
        array = array[:, 0]
    if array.ndim != 4:
        raise InputError(f"{what} has shape {tuple(array.shape)}, expected a tuple of [batch, heads, rows, cols] per layer")
    return array


def prettify(tokens: Sequence[str]) -> list[str]:
    """Word-piece markers as readers expect them: GPT-2's Ġ and SentencePiece's ▁ as spaces."""
    out = []
    for token in tokens:
        text = str(token).replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n").replace("</w>", "")
        out.append(text)
    return out


def _side(tokens: Sequence[str], pretty: bool, text_b_start: int | None = None) -> Side:
    tokens = [str(t) for t in tokens]
    return Side(
        tokens=tokens,
        display=prettify(tokens) if pretty else list(tokens),
        special=[bool(_SPECIAL.match(t)) for t in tokens],
        text_b_start=text_b_start,
    )


def _is_causal(attention: np.ndarray) -> bool:
    rows, cols = attention.shape[-2:]
    if rows != cols or rows < 2:
        return False
    upper = np.triu(np.ones((rows, cols), dtype=bool), 1)
    return bool(np.all(attention[..., upper] == 0))


def record_from_attention(
    attention: Any = None,
    tokens: Sequence[str] | None = None,
    sentence_b_start: int | None = None,
    *,
    encoder_attention: Any = None,
    decoder_attention: Any = None,
    cross_attention: Any = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
    prettify_tokens: bool = True,
    model_id: str = "",
) -> AttentionRecord:
    """An AttentionRecord from BertViz-style arguments (self-attention or encoder-decoder).

    A self-attention whose upper triangle is all zero is recognised as causal (a decoder),
    which halves what the page carries.
    """
    if attention is not None:
        given = [name for name, value in (
            ("encoder_attention", encoder_attention), ("decoder_attention", decoder_attention), ("cross_attention", cross_attention),
            ("encoder_tokens", encoder_tokens), ("decoder_tokens", decoder_tokens),
        ) if value is not None]
        if given:
            raise InputError(
                f"attention and {', '.join(given)} were both given",
                "pass attention (with tokens) for a self-attention model, or encoder_attention / decoder_attention / "
                "cross_attention (with encoder_tokens / decoder_tokens) for an encoder-decoder model, not both",
            )
        if tokens is None:
            raise InputError("tokens are required with attention")
        array = stack_layers(attention)
        n = len(tokens)
        if array.shape[-1] != n or array.shape[-2] != n:
            raise InputError(f"attention covers {array.shape[-2]}x{array.shape[-1]} tokens but {n} tokens were given")
        if sentence_b_start is not None and not 0 <= sentence_b_start <= n:
            raise InputError(f"sentence_b_start {sentence_b_start} is outside 0..{n}")
        causal = _is_causal(array)
        name = "decoder" if causal else "encoder"
        side = _side(tokens, prettify_tokens, sentence_b_start)
        return AttentionRecord(
            model_id=model_id,
            revision="",
            model_type="",
            kind=name,
            text=" ".join(side.display),
            sides={name: side},
            sections={name: Section(name=name, attention=array, rows=name, cols=name, causal=causal)},
        )
    if encoder_attention is None and decoder_attention is None and cross_attention is None:
        raise InputError("give attention and tokens, or encoder_attention / decoder_attention / cross_attention")
    sides: dict[str, Side] = {}
    sections: dict[str, Section] = {}
    if encoder_tokens is not None:
        sides["encoder"] = _side(encoder_tokens, prettify_tokens, sentence_b_start)
    if decoder_tokens is not None:
        sides["decoder"] = _side(decoder_tokens, prettify_tokens)
    for name, value, rows, cols in (
        ("encoder", encoder_attention, "encoder", "encoder"),
        ("decoder", decoder_attention, "decoder", "decoder"),
        ("cross", cross_attention, "decoder", "encoder"),
    ):
        if value is None:
            continue
        for side in {rows, cols}:
            if side not in sides:
                raise InputError(f"{name}_attention needs {side}_tokens")
        array = stack_layers(value, f"{name}_attention")
        want = (len(sides[rows]), len(sides[cols]))
        if tuple(array.shape[-2:]) != want:
            raise InputError(f"{name}_attention covers {array.shape[-2]}x{array.shape[-1]} tokens, expected {want[0]}x{want[1]}")
        causal = name == "decoder" and _is_causal(array)
        sections[name] = Section(name=name, attention=array, rows=rows, cols=cols, causal=causal)
    kind = "encoder-decoder" if "decoder" in sides and "encoder" in sides else next(iter(sides))
    text = " ".join(sides["encoder"].display) if "encoder" in sides else " ".join(sides["decoder"].display)
    target = " ".join(sides["decoder"].display) if "decoder" in sides and "encoder" in sides else None
    return AttentionRecord(
        model_id=model_id, revision="", model_type="", kind=kind, text=text, target=target, sides=sides, sections=sections
    )


# -- showing ------------------------------------------------------------------------------
def _display_option(display_mode: str | None) -> str:
    if display_mode is None:
        return "auto"
    if display_mode not in ("auto", "light", "dark"):
        raise OptionError(f"display_mode must be 'auto', 'light' or 'dark', not {display_mode!r}")
    return display_mode


def _show(
    record: AttentionRecord, options: FigureOptions, html_action: str, title: str, *, compare: AttentionRecord | None = None
) -> AttentionHTML | None:
    if html_action not in ("view", "return"):
        raise OptionError(f"html_action must be 'view' or 'return', not {html_action!r}")
    # A notebook's URL belongs to the notebook, so figures there keep their state to themselves.
    # The still picture (what the figure opens on) shows until the script draws, and is all
    # that hosts without scripts show. A comparison's still is its first record.
    png = still_png(record, options)
    figure = render_figure(record, options, hash_state=False, compare=compare, still=png)
    result = AttentionHTML(render_page([figure], title), figure.html, png, options.alt or describe(record, options))
    if html_action == "return":
        return result
    try:
        from IPython.display import display
    except ImportError:
        return result
    # The object itself, so the notebook keeps its whole mime bundle (HTML, PNG, text).
    display(result)
    return None


def _from_end(values: Any, count: int, name: str, what: str) -> list[Any] | None:
    """BertViz's indexing for include_layers / include_heads: -1 is the last, -2 the one before."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise OptionError(f"{name} must be a list of {what} indices, not {values!r}", f"for example {name}=[0, -1]")
    out = []
    for value in values:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value < 0:
            if value < -count:
                raise OptionError(
                    f"{name} has {what} {value} out of range",
                    f"the attention has {count} {what}s: 0 to {count - 1}, or -{count} to -1 counting from the last",
                )
            value = count + int(value)
        out.append(value)
    return out


def _options(
    view: str,
    layer: int | None,
    heads: Any,
    include_layers: Any,
    include_heads: Any,
    display_mode: str | None,
    record: AttentionRecord | None = None,
) -> FigureOptions:
    if record is not None and record.sections:
        n_layers = max(s.layers for s in record.sections.values())
        n_heads = max(s.heads for s in record.sections.values())
        include_layers = _from_end(include_layers, n_layers, "include_layers", "layer")
        include_heads = _from_end(include_heads, n_heads, "include_heads", "head")
    return FigureOptions.from_mapping(
        {
            "view": view,
            "layer": layer,
            "heads": list(heads) if heads is not None else None,
            "include_layers": list(include_layers) if include_layers is not None else None,
            "include_heads": list(include_heads) if include_heads is not None else None,
            "display": _display_option(display_mode),
        }
    )


def head_view(
    attention: Any = None,
    tokens: Sequence[str] | None = None,
    sentence_b_start: int | None = None,
    prettify_tokens: bool = True,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    encoder_attention: Any = None,
    decoder_attention: Any = None,
    cross_attention: Any = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
    include_layers: Sequence[int] | None = None,
    html_action: str = "view",
    include_heads: Sequence[int] | None = None,
    display_mode: str | None = "auto",
) -> AttentionHTML | None:
    """BertViz's ``head_view``: lines between tokens for the heads of one layer.

    The parameters keep BertViz's positional order; ``include_heads`` and ``display_mode``
    are additions. ``layer`` and ``heads`` are model indices; ``include_layers`` and
    ``include_heads`` may count from the end as in BertViz (``-1`` is the last). Give
    ``attention`` and ``tokens``, or the encoder-decoder arguments, not both. ``html_action="view"``
    displays the figure in Jupyter (and returns the object when IPython is absent);
    ``"return"`` returns it (``.data`` is a standalone HTML page). ``display_mode="auto"``
    follows the notebook's theme (BertViz draws dark unless told otherwise).
    """
    record = record_from_attention(
        attention, tokens, sentence_b_start,
        encoder_attention=encoder_attention, decoder_attention=decoder_attention, cross_attention=cross_attention,
        encoder_tokens=encoder_tokens, decoder_tokens=decoder_tokens, prettify_tokens=prettify_tokens,
    )
    options = _options("head", layer, heads, include_layers, include_heads, display_mode, record)
    return _show(record, options, html_action, "Attention head view")


def model_view(
    attention: Any = None,
    tokens: Sequence[str] | None = None,
    sentence_b_start: int | None = None,
    prettify_tokens: bool = True,
    display_mode: str | None = "auto",
    encoder_attention: Any = None,
    decoder_attention: Any = None,
    cross_attention: Any = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
    include_layers: Sequence[int] | None = None,
    include_heads: Sequence[int] | None = None,
    html_action: str = "view",
) -> AttentionHTML | None:
    """BertViz's ``model_view``: every layer and head as a thumbnail; click one to open it.

    Same parameters and order as BertViz; ``display_mode="auto"`` (the default here) follows
    the notebook's theme. Negative ``include_layers`` / ``include_heads`` count from the end.
    """
    record = record_from_attention(
        attention, tokens, sentence_b_start,
        encoder_attention=encoder_attention, decoder_attention=decoder_attention, cross_attention=cross_attention,
        encoder_tokens=encoder_tokens, decoder_tokens=decoder_tokens, prettify_tokens=prettify_tokens,
    )
    options = _options("model", None, None, include_layers, include_heads, display_mode, record)
    return _show(record, options, html_action, "Attention model view")


def neuron_view(
    model: Any,
    tokenizer: Any,
    text: str,
    text_b: str | None = None,
    layer: int | None = None,
    head: int | None = None,
    *,
    target: str | None = None,
    display_mode: str | None = "auto",
    html_action: str = "view",
) -> AttentionHTML | None:
    """The neuron view (query, key, q×k, q·k, softmax) for any supported HF model object.

    Query and key vectors are captured from ``model`` with hooks and self-checked against
    the attention it returns; where that check fails the figure says so instead of
    showing wrong numbers. ``attndocs.neuron_view`` is this function's module twin: callable
    the same way, and holding BertViz's ``show(model, model_type, tokenizer, sentence_a, ...)``.
    """
    from .extract import extract_from_model

    record = extract_from_model(model, tokenizer, text, text_b=text_b, target=target, qk=True)
    heads = [head] if head is not None else None
    options = _options("neuron", layer, heads, None, None, display_mode)
    return _show(record, options, html_action, "Attention neuron view")


def figure(
    text: str | None = None,
    *,
    model: str | None = None,
    view: str = "head",
    settings: SiteSettings | Mapping[str, Any] | None = None,
    html_action: str = "view",
    **options: Any,
) -> AttentionHTML | None:
    """Any figure a page can hold, from a notebook: the same options, the same cache.

    ``figure("The cat sat on the mat.", model="minilm", view="matrix", token="cat")`` is
    the ``attention`` block with those options (underscored names: ``text_b``,
    ``include_layers`` ...). The model runs once per text and the record is cached under
    ``settings``' cache dir (default ``.cache/attndocs`` in the working folder), exactly
    as a documentation build caches it. ``settings`` takes the site settings (a
    :class:`SiteSettings` or a mapping such as ``{"device": "cuda"}``).
    ``figure(image="cat.png", model="path/to/vit", view="patch")`` runs a vision
    transformer on an image (relative to the working folder) instead; no text then.
    """
    from .pipeline import Pipeline
    from .vision import resolved_options

    figure_options = FigureOptions.from_mapping({"text": text, "model": model, "view": view, **options})
    figure_options = resolved_options(figure_options, None)  # an image path is relative to the working folder
    site = settings if isinstance(settings, SiteSettings) else SiteSettings.from_mapping(settings or {})
    result = Pipeline(site).compute_one(figure_options, qk=figure_options.view == "neuron")
    return _show(result.record, figure_options, html_action, "Attention figure", compare=result.compare)  # type: ignore[arg-type]
