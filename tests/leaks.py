"""What a stream session may leave behind: Xvfb, PulseAudio, capture workers, app processes, temp dirs.

A test gives the code under test a private TMPDIR (the "scope"); everything a session creates carries that path in
its environment (TMPDIR, HOME, PULSE_*...) or lives under it, so checks ignore processes of anything else running on
the machine at the same time. Without a scope, tests compare snapshots taken before and after."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

WATCHED = ("Xvfb", "pulseaudio", "parec", "playcast.media.capture_proc", "playcast.media.viewer_proc",
           "playcast.demo.game", "playcast-demo", "playcast/host/keeper.py")


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _in_scope(pid: str, scope: str) -> bool:
    try:
        return scope.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _is_zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def session_leftovers(extra_markers: tuple[str, ...] = (), scope: str | None = None) -> set[str]:
    """Live processes matching session programs, and playcast-session temp dirs (as strings)."""
    found: set[str] = set()
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        cmd = _cmdline(pid)
        if cmd and any(m in cmd for m in WATCHED + extra_markers) and not _is_zombie(pid):
            if scope is None or _in_scope(pid, scope):
                found.add(f"pid {pid}: {cmd.strip()}")
    tmp = Path(scope) if scope is not None else Path(tempfile.gettempdir())
    for entry in tmp.glob("playcast-session-*"):
        found.add(f"dir {entry}")
    return found


def assert_no_session_leftovers(before: set[str], extra_markers: tuple[str, ...] = (), wait_s: float = 5.0,
                                scope: str | None = None) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        new = session_leftovers(extra_markers, scope) - before
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not new, "left behind after the session ended:\n" + "\n".join(sorted(new))


class ScopedTmp:
    """A private TMPDIR for the processes that code under test starts (`with ScopedTmp() as scope:`; pass `scope` as
    RuntimeOptions.temp_root for the session dirs this process makes). On exit, nothing of it may be left."""

    def __init__(self, wait_s: float = 10.0) -> None:
        self.wait_s = wait_s
        self.path = ""
        self._saved: tuple[str | None, str | None] = (None, None)

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="playcast-test-tmp-")
        self._saved = (os.environ.get("TMPDIR"), None)
        os.environ["TMPDIR"] = self.path
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        env, _ = self._saved
        if env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = env
        try:
            if exc_type is None:
                assert_no_session_leftovers(set(), wait_s=self.wait_s, scope=self.path)
        finally:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)
