"""Pages that are not valid UTF-8: built with U+FFFD for the bad bytes, and a warning naming the line.

Sphinx reads each page with ``Path.read_text(encoding=source_encoding)``, strictly, so one
bad byte stops the whole build with "Encoding error!" and names neither the file nor the
line. MkDocs' plugin and ``attndocs build`` already build such a page with a warning
(:func:`attndocs.fence.decode_page`); this module does the same for Sphinx.

The only way into that read is the encoding's name. While pages are read, the build
environment's ``input_encoding`` is :data:`CODEC`, a UTF-8 codec registered here, and the
codec is lenient only for the page's own read:

* armed (bad bytes become U+FFFD) before the first page and after each page is parsed
  (``env-before-read-docs``, ``doctree-read``);
* disarmed when the page's text arrives (``source-read``), so an ``include`` read while the
  page is parsed decodes strictly, as without attndocs, and keeps docutils' own warning;
  and once reading is over (``env-updated``).

``source-read`` also warns, as ``attndocs.source`` at the page's first bad byte, when the
text holds U+FFFD and its bytes are not valid UTF-8. A site whose ``source_encoding`` is
not UTF-8 is left alone.
"""

from __future__ import annotations

import codecs
import encodings.utf_8_sig
from typing import TYPE_CHECKING

from sphinx.util import logging

from ..fence import decode_page

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

CODEC = "attndocs-utf-8"
_UTF8 = {"utf-8", "utf-8-sig"}
_armed = False  # per process: parallel reads fork after env-before-read-docs


def _errors(errors: str) -> str:
    return "replace" if _armed else errors


def _decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
    return encodings.utf_8_sig.decode(data, _errors(errors))


class _IncrementalDecoder(encodings.utf_8_sig.IncrementalDecoder):
    def __init__(self, errors: str = "strict") -> None:
        super().__init__(_errors(errors))


class _StreamReader(encodings.utf_8_sig.StreamReader):
    def __init__(self, stream, errors: str = "strict") -> None:  # type: ignore[no-untyped-def]
        super().__init__(stream, _errors(errors))


def _search(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_") != CODEC.replace("-", "_"):
        return None
    return codecs.CodecInfo(
        name=CODEC,
        encode=codecs.utf_8_encode,
        decode=_decode,
        incrementalencoder=encodings.utf_8_sig.IncrementalEncoder,
        incrementaldecoder=_IncrementalDecoder,
        streamreader=_StreamReader,
        streamwriter=encodings.utf_8_sig.StreamWriter,
    )


codecs.register(_search)


def _arm(on: bool) -> None:
    global _armed
    _armed = on


def on_env_before_read_docs(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> None:
    if codecs.lookup(app.config.source_encoding).name in _UTF8:
        env.settings["input_encoding"] = CODEC
        _arm(True)


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    _arm(False)
    if "\ufffd" not in source[0] or app.env.settings.get("input_encoding") != CODEC:
        return
    _, problem = decode_page(app.env.doc2path(docname).read_bytes())
    if problem is not None:
        line, message = problem
        logger.warning(message, type="attndocs", subtype="source", location=(docname, line))


def on_doctree_read(app: Sphinx, doctree: nodes.document) -> None:
    _arm(app.env.settings.get("input_encoding") == CODEC)


def on_env_updated(app: Sphinx, env: BuildEnvironment) -> None:
    _arm(False)  # reading is over; nothing after it decodes leniently


def setup_encoding(app: Sphinx) -> None:
    app.connect("env-before-read-docs", on_env_before_read_docs)
    app.connect("source-read", on_source_read)
    app.connect("doctree-read", on_doctree_read)
    app.connect("env-updated", on_env_updated)
