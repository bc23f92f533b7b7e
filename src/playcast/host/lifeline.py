"""The host process's lifeline: a pipe whose write end only this process holds, so that its readers (the games'
keepers, host/keeper.py) see EOF the moment the process is gone, however it died.

One per process, made on first use and never closed; nothing is ever written to it."""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_ends: tuple[int, int] | None = None  # (read end, write end)


def lifeline_fd() -> int:
    """The read end, to hand to a child as its stdin (the fd itself is not inheritable: nothing else gets it)."""
    global _ends
    with _lock:
        if _ends is None:
            _ends = os.pipe()  # O_CLOEXEC: no exec'd child keeps the write end
        return _ends[0]


def _after_fork_in_child() -> None:
    """A forked copy of the host must not hold the write end (its keepers would outlive the real host)."""
    global _ends
    if _ends is not None:
        try:
            os.close(_ends[1])  # never the read end: subprocess may be about to dup2 it onto the child's stdin
        except OSError:
            pass
        _ends = None


os.register_at_fork(after_in_child=_after_fork_in_child)
