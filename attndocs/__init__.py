"""attndocs: interactive transformer attention figures for documentation.

Importing this package is cheap: torch and transformers load only when a model must run.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

# The notebook API, loaded on first use so `import attndocs` stays cheap (no numpy, no jinja2).
# `neuron_view` is the submodule attndocs/neuron_view.py, which is callable as the notebook
# function and also holds BertViz's `show`: importing a submodule rebinds the package's
# attribute to it, so the module itself must be what that name gives, in every import order.
_LAZY = {
    "head_view": "notebook", "model_view": "notebook", "neuron_view": "neuron_view", "figure": "notebook",
    "widget": "widgets",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):  # noqa: ANN202 - module-level hook
    if name in _LAZY:
        from importlib import import_module

        module = import_module(f".{_LAZY[name]}", __name__)
        value = module if _LAZY[name] == name else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attndocs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
