"""A heatmap of one attention matrix as a PNG, for builders that cannot run the figure (LaTeX, epub).

Every PNG attndocs writes comes from :mod:`attndocs.still` (the notebook's still pictures
too); this module names what the Sphinx fallback uses.
"""

from __future__ import annotations

from ..still import encode_png, heatmap_png

__all__ = ["encode_png", "heatmap_png"]
