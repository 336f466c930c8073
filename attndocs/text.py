"""Page text made safe to show on a terminal: control, format and separator characters escaped.

Page text is data. Warnings and errors quote it (an option value, a model name, a page
path), and a terminal would act on what they quote: ``ESC[31m`` recolours the log, ``ESC]0;``
retitles the window, ``\\x07`` rings the bell, a bidi override reorders what the reader
sees. Every message attndocs writes for a person goes through :func:`terminal_safe`.
"""

from __future__ import annotations

import unicodedata

# Unicode categories a terminal may act on or that hide what a message says: controls,
# format characters (bidi overrides, zero-width), lone surrogates (not even encodable),
# private use, unassigned, and the line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_safe(text: str) -> str:
    """``text`` on one line, with every character a terminal could act on written as an escape.

    Backslashes are kept as they are, so the function is idempotent: a message that is
    wrapped into another one (a page warning quoting a model error) is escaped once, not
    twice, and Windows paths stay readable.
    """
    if text.isprintable():  # the common case, done in C
        return text
    return "".join(_escape(ch) if not ch.isprintable() and unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text)


def escape_text(text: str) -> str:
    """Like :func:`terminal_safe`, with backslashes doubled, so the escaped form is unambiguous.

    For listings that show stored text exactly (``attndocs cache ls``), where a literal
    ``\\x1b`` in the text and an escaped ESC must read differently. Not idempotent.
    """
    return terminal_safe(text.replace("\\", "\\\\"))
