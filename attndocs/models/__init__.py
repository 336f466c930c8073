"""Finding models by name (bundled alias, hub id, local folder) and loading each once per process.

Resolving a name (:func:`resolve_model`) reads only small files (config.json, package
locations, the hub cache) and never imports torch, so a build whose figures are all cached
stays light. Loading (:func:`load_model`) imports torch and transformers, and accelerate
when a device map spreads a model over several devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .resolve import BUNDLED, ModelRef, attndocs_home, cached_identity, resolve_model

__all__ = ["BUNDLED", "ModelRef", "attndocs_home", "cached_identity", "load_model", "resolve_model"]


def load_model(
    ref: ModelRef,
    device: str = "cpu",
    *,
    dtype: str = "auto",
    device_map: str | Mapping[str, Any] | None = None,
    max_memory: Mapping[Any, int] | None = None,
):  # -> LoadedModel (torch types stay out of this module)
    """Load ``ref`` once per process and placement; see :func:`attndocs.models.load.load_model`."""
    from .load import load_model as _load

    return _load(ref, device, dtype=dtype, device_map=device_map, max_memory=max_memory)
