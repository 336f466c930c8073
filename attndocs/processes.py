"""Whether a process that left a temporary file or folder behind has ended (cache writes, site builds)."""

from __future__ import annotations

import os


def local_process_ended(pid: int) -> bool:
    """True when no process ``pid`` runs on this machine any more.

    False for this very process, when the process exists under another user, and where it
    cannot be asked safely (on Windows ``os.kill`` ends a process instead of probing it):
    a leftover is then removed only by its age.
    """
    if os.name != "posix" or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, owned by someone else
    return False
