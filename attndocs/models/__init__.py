"""Finding models by name (bundled alias, hub id, local folder) and loading each once per process.

Resolving a name (:func:`resolve_model`) reads only small files (config.json, package
locations, the hub cache) and never imports torch, so a build whose figures are all cached
stays light. Loading (:func:`load_model`) imports torch and transformers.
"""

from __future__ import annotations

from .resolve import BUNDLED, ModelRef, attndocs_home, cached_identity, resolve_model

__all__ = ["BUNDLED", "ModelRef", "attndocs_home", "cached_identity", "load_model", "resolve_model"]


def load_model(ref: ModelRef, device: str = "cpu"):  # -> LoadedModel (torch types stay out of this module)
    from .load import load_model as _load

    return _load(ref, device)
