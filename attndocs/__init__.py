"""attndocs: interactive transformer attention figures for documentation.

Importing this package is cheap: torch and transformers load only when a model must run.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

# The notebook API, loaded on first use so `import attndocs` stays cheap (no numpy, no jinja2).
_LAZY = {"head_view": "notebook", "model_view": "notebook", "neuron_view": "notebook", "figure": "notebook"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):  # noqa: ANN202 - module-level hook
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attndocs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
