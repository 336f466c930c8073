"""attndocs: interactive transformer attention figures for documentation.

Importing this package is cheap: torch and transformers load only when a model must run.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"
