"""attndocs for MkDocs: ``plugins: [attndocs]`` turns ```attention blocks into figures.

Registered as the ``attndocs`` plugin through the ``mkdocs.plugins`` entry point. The
plugin itself is in :mod:`.plugin`; its mkdocs.yml keys are generated from SiteSettings in
:mod:`.config`.
"""

from .config import AttndocsConfig
from .plugin import AttndocsPlugin

__all__ = ["AttndocsConfig", "AttndocsPlugin"]
