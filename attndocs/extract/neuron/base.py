"""The machinery every neuron adapter shares: attention sites, their forward hooks, and the capture object.

An adapter (one module per family in this package) only says *where* a family's query and key come
from; this module installs the hooks, turns what they saw into per-head vectors, and stacks them per
section. The vectors stay torch tensors on the device the model ran on (``NeuronCapture.tensors``)
until a caller moves what it keeps to the host once (``SectionTensors.to_numpy``). torch is only
touched inside functions: importing this module does not import torch.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

SECTION_ORDER = ("encoder", "decoder", "cross")


class Unsupported(Exception):
    """Raised by an adapter that recognises the model but cannot capture it exactly; the message is the reason."""


@dataclass
class SectionQK:
    """Query and key vectors of one attention section, exactly as the model scored them.

    ``query`` is ``[B, L, H, rows, d]`` and ``key`` ``[B, L, H, cols, d]`` (float32); key heads are already
    repeated to match query heads, and rotary position embeddings are already applied. ``bias`` is the
    additive score term that is neither q.k nor the causal mask (T5's relative position bias), shaped
    ``[B, L, H, rows, cols]``, or None. ``softmax(scale * q @ k.T + bias + causal mask)`` is the attention.
    When layers of one section use different multipliers (GPT-2's ``scale_attn_by_inverse_layer_idx``),
    ``scale`` is the first layer's and every other layer's ratio to it is folded into its stored query.
    ``softcap`` (Gemma 2): the model caps each score, ``softcap * tanh(scale * q.k / softcap)``, before
    adding the bias and the mask. ``windows``: per layer, the width of its window mask (None: no window),
    or None when no layer has one; a window is also in ``bias`` (-inf outside it) whenever it hides a key.
    """

    query: np.ndarray
    key: np.ndarray
    bias: np.ndarray | None
    scale: float
    causal: bool
    softcap: float | None = None
    windows: list[int | None] | None = None


@dataclass
class SectionTensors:
    """The same vectors as SectionQK, as float32 torch tensors on the device the model ran on.

    ``query`` / ``key`` are ``[B, L, H, rows|cols, d]``, written in place by the hooks (one copy per layer,
    no stacking afterwards). ``biases`` holds one entry per layer: a ``[1, H, rows, cols]`` tensor shared
    by every text of the batch (and, in T5, by every layer of a stack: the same tensor object), or None.
    Extraction checks these on the device and moves to the host only what a record stores.
    """

    query: torch.Tensor
    key: torch.Tensor
    biases: list[torch.Tensor | None]
    scale: float
    causal: bool
    softcap: float | None = None
    windows: list[int | None] | None = None

    @property
    def has_bias(self) -> bool:
        return any(bias is not None for bias in self.biases)

    def host_bias(self) -> np.ndarray | None:
        """The bias of one text, ``[L, H, rows, cols]`` float32 on the host (layers without one are zero), or None.

        The bias does not depend on the text, so one array serves every text of the batch. Each distinct
        tensor crosses to the host once: T5's stacks share one tensor between all their layers.
        """
        if not self.has_bias:
            return None
        layers, heads, rows, cols = self.query.shape[1], self.query.shape[2], self.query.shape[3], self.key.shape[3]
        out = np.zeros((layers, heads, rows, cols), np.float32)
        moved: dict[int, np.ndarray] = {}
        for layer, bias in enumerate(self.biases):
            if bias is not None:
                if id(bias) not in moved:
                    moved[id(bias)] = bias.detach().cpu().numpy()
                out[layer] = moved[id(bias)][0]
        return out

    def to_numpy(self) -> SectionQK:
        """All of it on the host, batch included (tests and analyses; extraction moves less)."""
        bias = self.host_bias()
        batch = self.query.shape[0]
        return SectionQK(
            query=self.query.detach().cpu().numpy(),
            key=self.key.detach().cpu().numpy(),
            bias=None if bias is None else np.ascontiguousarray(np.broadcast_to(bias, (batch, *bias.shape))),
            scale=self.scale,
            causal=self.causal,
            softcap=self.softcap,
            windows=self.windows,
        )


@dataclass(frozen=True)
class Source:
    """Where one of query/key comes from: the output of ``module``, optionally a slice of its last dimension."""

    module: nn.Module
    columns: slice | None = None  # GPT-2's fused c_attn holds q, k and v side by side


# (site, query [B, H, rows, d], key [B, H_kv, cols, d], kwargs of the attention call) -> (query, key)
Transform = Callable[["Site", "torch.Tensor", "torch.Tensor", dict[str, Any]], "tuple[torch.Tensor, torch.Tensor]"]


class _SectionStore:
    """The float32 buffers every layer of one section writes its vectors into, allocated by the first layer.

    Writing each layer straight into its slot of a ``[B, L, H, n, d]`` buffer is the only copy the vectors
    get on the device: no per-layer copies to stack afterwards, and nothing crosses to the host here.
    """

    def __init__(self, layers: int) -> None:
        self.layers = layers
        self.query: torch.Tensor | None = None
        self.key: torch.Tensor | None = None

    def write(self, layer: int, query: torch.Tensor, key: torch.Tensor, kv_groups: int, ratio: float) -> None:
        batch, heads, rows, dim = query.shape
        kv_heads, cols = key.shape[1], key.shape[2]
        if self.query is None or self.key is None:
            # The first layer to finish fixes the shapes, on its device (with a device_map the
            # layers may run on several; copy_ moves the others' vectors to this one).
            self.query = float32_buffer((batch, self.layers, heads, rows, dim), query.device)
            self.key = float32_buffer((batch, self.layers, heads, cols, dim), query.device)
        expected_key = (batch, heads // kv_groups, *self.key.shape[3:])
        if query.shape != self.query[:, layer].shape or key.shape != expected_key or kv_heads * kv_groups != heads:
            raise RuntimeError(
                f"layer {layer} gives query {tuple(query.shape)} and key {tuple(key.shape)} "
                f"({kv_groups} query heads per key head), unlike the first layer of its section"
            )
        target = self.query[:, layer]
        target.copy_(query)  # casts to float32 first, so a multiplier below is applied in float32
        if ratio != 1.0:
            target.mul_(ratio)
        # Each key head serves kv_groups consecutive query heads (transformers' repeat_kv): a
        # broadcast copy into [B, H_kv, groups, n, d] repeats them without a temporary.
        self.key[:, layer].view(batch, kv_heads, kv_groups, cols, dim).copy_(
            key.unsqueeze(2).expand(-1, -1, kv_groups, -1, -1)
        )


@dataclass(eq=False)
class Site:
    """One attention module whose scores are captured.

    The hooks on ``query_source`` / ``key_source`` keep their outputs; the hook on the attention module
    itself runs after its forward and turns them into per-head vectors (``transform`` applies what the
    model does between projection and matmul, e.g. rotary embeddings), repeats grouped key heads, and
    writes float32 copies into its section's buffers on the model's device.
    """

    section: str  # "encoder", "decoder" or "cross" (see section_of)
    module: nn.Module
    query_source: Source
    key_source: Source
    head_dim: int
    scale: float
    kv_groups: int = 1
    transform: Transform | None = None
    kwarg_names: tuple[str, ...] = ()  # arguments of the attention call that ``transform`` needs
    bias_module: nn.Module | None = None  # T5's relative_attention_bias embedding: output [rows, cols, H]
    bias_from: Site | None = None  # reuse another site's bias (T5 computes it in the first layer only)
    # ALiBi: (site, kwargs named in kwarg_names) -> the [1, H, rows, cols] additive term of the attention call.
    bias_from_call: Callable[[Site, dict[str, Any]], torch.Tensor] | None = None
    # Gemma 2: scores are capped, softcap * tanh(scale * q.k / softcap), before the bias and mask.
    softcap: float | None = None
    # The width of this layer's window mask (sliding or local attention; the bias carries it), or None.
    window: int | None = None
    # Set by NeuronCapture: where this layer's vectors go, and the multiplier its section stores.
    layer: int = field(default=0, repr=False)
    store: _SectionStore | None = field(default=None, repr=False)
    section_scale: float | None = field(default=None, repr=False)
    # Filled during a forward pass.
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    written: bool = field(default=False, repr=False)
    own_bias: torch.Tensor | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def causal(self) -> bool:
        """Decoder self-attention is masked to earlier tokens; encoder and cross attention are not."""
        return self.section == "decoder"

    def reset(self) -> None:
        self.raw.clear()
        self.written = False
        self.own_bias = None
        self.error = None

    @property
    def bias(self) -> torch.Tensor | None:
        return self.bias_from.bias if self.bias_from is not None else self.own_bias

    @property
    def has_bias(self) -> bool:
        own = self.bias_module is not None or self.bias_from_call is not None
        return own or (self.bias_from is not None and self.bias_from.has_bias)

    # -- hooks ---------------------------------------------------------------------------------
    def install(self, handles: list[Any]) -> None:
        sources: dict[int, tuple[nn.Module, list[tuple[str, slice | None]]]] = {}
        for role, source in (("query", self.query_source), ("key", self.key_source)):
            entry = sources.setdefault(id(source.module), (source.module, []))
            entry[1].append((role, source.columns))
        for module, roles in sources.values():
            handles.append(module.register_forward_hook(self._output_hook(roles)))
        if self.bias_module is not None:
            handles.append(self.bias_module.register_forward_hook(self._output_hook([("bias", None)])))
        handles.append(self.module.register_forward_pre_hook(self._before, with_kwargs=True))
        handles.append(self.module.register_forward_hook(self._after))

    def _output_hook(self, roles: list[tuple[str, slice | None]]) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            try:
                for role, columns in roles:
                    self.raw[role] = output if columns is None else output[..., columns]
            except Exception as exc:  # a hook must never break the user's forward pass
                self.error = f"{type(exc).__name__}: {exc}"

        return hook

    def _before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.raw.clear()
            if self.kwarg_names:
                bound = _signature(module).bind_partial(*args, **kwargs).arguments
                extra = bound.get("kwargs", {})
                self.raw["kwargs"] = {name: bound.get(name, extra.get(name)) for name in self.kwarg_names}
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.error is not None:
            return
        try:
            self._finish()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.raw.clear()

    def _finish(self) -> None:
        import torch

        if "query" not in self.raw or "key" not in self.raw:
            raise RuntimeError("the query or key projection did not run inside the attention module")
        if self.store is None:
            raise RuntimeError("the site was not prepared by a NeuronCapture")
        with torch.no_grad():
            query = _heads(self.raw["query"], self.head_dim)
            key = _heads(self.raw["key"], self.head_dim)
            if self.transform is not None:
                query, key = self.transform(self, query, key, self.raw.get("kwargs", {}))
            # One scale per section: a layer with its own multiplier carries the ratio in its query,
            # rounded to float32 as the stored vectors are.
            section_scale = self.scale if self.section_scale is None else self.section_scale
            ratio = 1.0 if self.scale == section_scale else float(np.float32(self.scale / section_scale))
            self.store.write(self.layer, query, key, self.kv_groups, ratio)
            if self.bias_module is not None:
                if "bias" not in self.raw:
                    raise RuntimeError("the relative position bias was not computed in this layer")
                # [rows, cols, H] -> [1, H, rows, cols]; the bias is the same for every text of the batch.
                # An owned float32 copy: the model's tensor may be reused or changed after this layer.
                bias = self.raw["bias"].permute(2, 0, 1).unsqueeze(0)
                self.own_bias = torch.empty(bias.shape, dtype=torch.float32, device=bias.device).copy_(bias)
            elif self.bias_from_call is not None:
                bias = self.bias_from_call(self, self.raw.get("kwargs", {}))
                self.own_bias = torch.empty(bias.shape, dtype=torch.float32, device=bias.device).copy_(bias)
            self.written = True


def model_rotation(module: Any, *, required: bool = True) -> Callable[..., Any] | None:
    """The model's own ``apply_rotary_pos_emb``, from the module that defines ``module``'s class.

    Rotating with the model's function keeps every variant exact (partial rotary, interleaving).
    ``required=False``: None when there is none (Falcon's ALiBi layers rotate nothing).
    """
    rotate = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
    if rotate is None and required:
        raise Unsupported(f"{type(module).__name__} has no apply_rotary_pos_emb beside it; cannot rotate q and k")
    return rotate


def rotate_as_called(rotate: Callable[..., Any], query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """``query`` and ``key`` rotated by the (cos, sin) the decoder layer passed to this attention call."""
    position_embeddings = kwargs.get("position_embeddings")
    if position_embeddings is None:
        raise RuntimeError("the attention module was called without position_embeddings (cos, sin)")
    cos, sin = position_embeddings
    return rotate(query, key, cos, sin)


def float32_buffer(shape: tuple[int, ...], device: Any) -> torch.Tensor:
    """An uninitialised float32 tensor on ``device``; on the CPU, memory numpy allocated.

    numpy asks the kernel for huge pages on large arrays (madvise), torch does not: filling a fresh
    75 MB array (MiniLM's attention at 512 tokens) took 19 ms through numpy against 35 ms through
    torch.empty on a 2-core machine, most of the difference page faults. The tensor shares the
    array's memory, so a later ``.numpy()`` is free and the array is an ordinary one.
    """
    import torch

    if torch.device(device).type == "cpu":
        return torch.from_numpy(np.empty(shape, np.float32))
    return torch.empty(shape, dtype=torch.float32, device=device)


def _heads(projected: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[B, n, H*d] (or [B, n, H, d]) -> [B, H, n, d], as the attention modules split heads (a view, no copy)."""
    batch, length = projected.shape[0], projected.shape[1]
    return projected.reshape(batch, length, -1, head_dim).transpose(1, 2)


_SIGNATURES: dict[type, inspect.Signature] = {}


def _signature(module: nn.Module) -> inspect.Signature:
    cls = type(module)
    if cls not in _SIGNATURES:
        _SIGNATURES[cls] = inspect.signature(module.forward)
    return _SIGNATURES[cls]


# -- finding attention modules -------------------------------------------------------------------
def find_modules(model: nn.Module, class_names: Sequence[str] | frozenset[str]) -> Iterator[tuple[str, nn.Module]]:
    """(qualified name, module) of every transformers module whose class is named in ``class_names``, in order.

    Only classes defined by transformers itself match: a same-named class from remote code or a user's
    subclass may compute something else, and is left to the caller to report.
    """
    for name, module in model.named_modules():
        cls = type(module)
        if cls.__name__ in class_names and cls.__module__.startswith("transformers."):
            yield name, module


def section_of(*, cross: bool, decoder: bool) -> str:
    """The record section an attention module fills: cross attention, else decoder or encoder self-attention."""
    return "cross" if cross else "decoder" if decoder else "encoder"


def default_scale(module: nn.Module, head_dim: int) -> float:
    """The q.k multiplier the module passes to its attention function (transformers >= 4.48 stores it as
    ``scaling``); older versions divide by sqrt(head_dim) inline, which is the same number."""
    scaling = getattr(module, "scaling", None)
    return float(scaling) if isinstance(scaling, (int, float)) else float(head_dim) ** -0.5


# -- the capture -----------------------------------------------------------------------------------
class NeuronCapture:
    """Hooks that record query/key vectors during one forward pass (use as a context manager).

    ``reason`` is None when the model has an adapter; otherwise it says why there is none, no hooks are
    installed and ``sections()`` is empty.
    """

    def __init__(self, sites: Sequence[Site] = (), reason: str | None = None) -> None:
        self.sites = list(sites)
        self.reason = reason
        self._handles: list[Any] = []
        self._grouped: dict[str, list[Site]] = {}
        for site in self.sites:
            self._grouped.setdefault(site.section, []).append(site)
        self._stores: dict[str, _SectionStore] = {}

    def __repr__(self) -> str:
        what = self.reason or f"{len(self.sites)} attention modules"
        return f"<NeuronCapture {what}>"

    def __enter__(self) -> NeuronCapture:
        if self.reason is None:
            # Fresh buffers per forward pass: tensors handed out after an earlier pass stay as they were.
            self._stores = {name: _SectionStore(len(sites)) for name, sites in self._grouped.items()}
            for name, sites in self._grouped.items():
                for layer, site in enumerate(sites):
                    site.reset()
                    site.layer, site.store, site.section_scale = layer, self._stores[name], sites[0].scale
            try:
                for site in self.sites:
                    site.install(self._handles)
            except BaseException:
                self._remove()
                raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._remove()

    def _remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    @property
    def errors(self) -> dict[str, str]:
        """Why a section is missing from ``sections()``, by section name (empty when all were captured)."""
        problems: dict[str, str] = {}
        for index, site in enumerate(self.sites):
            if site.section in problems:
                continue
            if site.error is not None:
                problems[site.section] = f"attention module {index} ({type(site.module).__name__}): {site.error}"
            elif not site.written or (site.has_bias and site.bias is None):
                problems[site.section] = f"attention module {index} ({type(site.module).__name__}) did not run"
        return problems

    def tensors(self) -> dict[str, SectionTensors]:
        """The captured sections as tensors on the model's device; a section any of whose layers failed or
        did not run is left out. Nothing is copied: the tensors are the buffers the hooks wrote."""
        if self.reason is not None:
            return {}
        broken = self.errors
        out: dict[str, SectionTensors] = {}
        for name in sorted(
            self._grouped, key=lambda s: SECTION_ORDER.index(s) if s in SECTION_ORDER else len(SECTION_ORDER)
        ):
            store = self._stores.get(name)
            if name in broken or store is None or store.query is None or store.key is None:
                continue
            sites = self._grouped[name]
            out[name] = SectionTensors(
                query=store.query,
                key=store.key,
                biases=[site.bias for site in sites],
                scale=float(sites[0].scale),
                causal=sites[0].causal,
                # One cap per section (the self-check applies it to every layer, so layers that differ fail).
                softcap=None if sites[0].softcap is None else float(sites[0].softcap),
                windows=[site.window for site in sites] if any(site.window is not None for site in sites) else None,
            )
        return out

    def sections(self) -> dict[str, SectionQK]:
        """The captured sections as numpy arrays on the host (see ``tensors`` for what is left out)."""
        return {name: section.to_numpy() for name, section in self.tensors().items()}
