"""Error types shared by every part of attndocs, each with a category and a hint."""

from __future__ import annotations

from .text import terminal_safe


class AttndocsError(Exception):
    """Base class for user-facing errors.

    ``category`` names the warning type a documentation front-end raises
    (``attndocs.options``, ``attndocs.model``, ``attndocs.cache``, ``attndocs.exec``);
    ``hint`` says what to do about it. ``str(error)`` is one line that includes both, with
    any control character escaped: messages quote page text (option values, model names,
    paths), and every front-end prints ``str(error)`` to a terminal.
    """

    category = "exec"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.message} ({self.hint})" if self.hint else self.message
        return terminal_safe(text)


class OptionError(AttndocsError, ValueError):
    """A figure option or site setting has a value that is not allowed."""

    category = "options"


class InputError(AttndocsError, ValueError):
    """The text given for a figure cannot be used as it is (empty, too long, ...)."""

    category = "options"


class ModelError(AttndocsError):
    """A model cannot be found, installed, loaded or used."""

    category = "model"


class CacheError(AttndocsError):
    """The cache cannot be read or written, or has no entry where one is required."""

    category = "cache"


class OutputError(AttndocsError):
    """A file the command line was asked to write cannot be written there."""

    category = "exec"


class ExecError(AttndocsError):
    """Running a model failed."""

    category = "exec"


class DamagedEntryError(CacheError):
    """A cache entry failed verification; it is never served and gets recomputed."""
