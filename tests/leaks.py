"""What a stream session may leave behind: Xvfb, PulseAudio, capture workers, app processes, temp dirs.

Tests snapshot this before and compare after, so unrelated processes on the machine do not matter."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

WATCHED = ("Xvfb", "pulseaudio", "parec", "playcast.media.capture_proc", "playcast.demo.game", "playcast-demo")


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def session_leftovers(extra_markers: tuple[str, ...] = ()) -> set[str]:
    """Live processes matching session programs, and playcast-session temp dirs (as strings)."""
    found: set[str] = set()
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        cmd = _cmdline(pid)
        if cmd and any(m in cmd for m in WATCHED + extra_markers) and not _is_zombie(pid):
            found.add(f"pid {pid}: {cmd.strip()}")
    tmp = Path(tempfile.gettempdir())
    for entry in tmp.glob("playcast-session-*"):
        found.add(f"dir {entry}")
    return found


def assert_no_session_leftovers(before: set[str], extra_markers: tuple[str, ...] = (), wait_s: float = 5.0) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        new = session_leftovers(extra_markers) - before
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not new, "left behind after the session ended:\n" + "\n".join(sorted(new))
