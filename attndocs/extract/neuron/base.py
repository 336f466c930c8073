"""The machinery every neuron adapter shares: attention sites, their forward hooks, and the capture object.

An adapter (one module per family in this package) only says *where* a family's query and key come
from; this module installs the hooks, turns what they saw into per-head vectors, and stacks them per
section. torch is only touched inside functions: importing this module does not import torch.
"""

from __future__ import annotations

import inspect
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
    """

    query: np.ndarray
    key: np.ndarray
    bias: np.ndarray | None
    scale: float
    causal: bool


@dataclass(frozen=True)
class Source:
    """Where one of query/key comes from: the output of ``module``, optionally a slice of its last dimension."""

    module: nn.Module
    columns: slice | None = None  # GPT-2's fused c_attn holds q, k and v side by side


# (site, query [B, H, rows, d], key [B, H_kv, cols, d], kwargs of the attention call) -> (query, key)
Transform = Callable[["Site", "torch.Tensor", "torch.Tensor", dict[str, Any]], "tuple[torch.Tensor, torch.Tensor]"]


@dataclass(eq=False)
class Site:
    """One attention module whose scores are captured.

    The hooks on ``query_source`` / ``key_source`` keep their outputs; the hook on the attention module
    itself runs after its forward and turns them into per-head vectors (``transform`` applies what the
    model does between projection and matmul, e.g. rotary embeddings), repeats grouped key heads, and
    keeps float32 copies on the CPU.
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
    # Filled during a forward pass.
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    query: np.ndarray | None = field(default=None, repr=False)
    key: np.ndarray | None = field(default=None, repr=False)
    own_bias: np.ndarray | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def causal(self) -> bool:
        """Decoder self-attention is masked to earlier tokens; encoder and cross attention are not."""
        return self.section == "decoder"

    def reset(self) -> None:
        self.raw.clear()
        self.query = self.key = self.own_bias = None
        self.error = None

    @property
    def bias(self) -> np.ndarray | None:
        return self.bias_from.bias if self.bias_from is not None else self.own_bias

    @property
    def has_bias(self) -> bool:
        return self.bias_module is not None or (self.bias_from is not None and self.bias_from.has_bias)

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
        with torch.no_grad():
            query = _heads(self.raw["query"], self.head_dim)
            key = _heads(self.raw["key"], self.head_dim)
            if self.transform is not None:
                query, key = self.transform(self, query, key, self.raw.get("kwargs", {}))
            if self.kv_groups > 1:
                # Each key head serves kv_groups consecutive query heads (transformers' repeat_kv).
                key = key.repeat_interleave(self.kv_groups, dim=1)
            self.query = _numpy(query)
            self.key = _numpy(key)
            if self.bias_module is not None:
                if "bias" not in self.raw:
                    raise RuntimeError("the relative position bias was not computed in this layer")
                # [rows, cols, H] -> [1, H, rows, cols]; the bias is the same for every text of the batch.
                self.own_bias = _numpy(self.raw["bias"].permute(2, 0, 1).unsqueeze(0))


def _heads(projected: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[B, n, H*d] (or [B, n, H, d]) -> [B, H, n, d], as the attention modules split heads."""
    batch, length = projected.shape[0], projected.shape[1]
    return projected.reshape(batch, length, -1, head_dim).transpose(1, 2)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    import torch

    return tensor.detach().to(device="cpu", dtype=torch.float32).numpy().copy()


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

    def __repr__(self) -> str:
        what = self.reason or f"{len(self.sites)} attention modules"
        return f"<NeuronCapture {what}>"

    def __enter__(self) -> NeuronCapture:
        if self.reason is None:
            for site in self.sites:
                site.reset()
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
            elif site.query is None or (site.has_bias and site.bias is None):
                problems[site.section] = f"attention module {index} ({type(site.module).__name__}) did not run"
        return problems

    def sections(self) -> dict[str, SectionQK]:
        """The captured sections; a section any of whose layers failed or did not run is left out."""
        if self.reason is not None:
            return {}
        broken = self.errors
        grouped: dict[str, list[Site]] = {}
        for site in self.sites:
            grouped.setdefault(site.section, []).append(site)
        out: dict[str, SectionQK] = {}
        for name in sorted(grouped, key=lambda s: SECTION_ORDER.index(s) if s in SECTION_ORDER else len(SECTION_ORDER)):
            if name not in broken:
                out[name] = _stack(grouped[name])
        return out


def _stack(sites: list[Site]) -> SectionQK:
    scale = sites[0].scale
    queries = []
    for site in sites:
        query = site.query
        assert query is not None
        if site.scale != scale:
            # One scale per section: a layer with its own multiplier carries the ratio in its query.
            query = (query * np.float32(site.scale / scale)).astype(np.float32)
        queries.append(query)
    query = np.stack(queries, axis=1)
    key = np.stack([site.key for site in sites], axis=1)
    bias = None
    if any(site.has_bias for site in sites):
        batch, heads, rows, cols = query.shape[0], query.shape[2], query.shape[3], key.shape[3]
        bias = np.zeros((batch, len(sites), heads, rows, cols), np.float32)
        for layer, site in enumerate(sites):
            if site.bias is not None:
                bias[:, layer] = site.bias  # broadcasts a batch-independent [1, H, rows, cols]
    return SectionQK(query=query, key=key, bias=bias, scale=float(scale), causal=sites[0].causal)
