"""A cgroup (v2) per stream session, where this machine lets the host make one: every process of a session, however
it detaches, is in it, so it can be killed through it (cgroup.kill) now or by the host's next start.

Probed for real once (make a cgroup, move a process into it, remove it); says why when it cannot. It knows nothing
of what runs inside; no cgroup controller is enabled or needed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from playcast.procgroup import ChildSetup, child_setup


def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return None


def _own_cgroup() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class SessionCgroups:
    """Where this host's session cgroups go: beside the host process, inside its own cgroup."""

    parent: Path

    @classmethod
    def probe(cls) -> tuple[SessionCgroups | None, str]:
        """(the place for session cgroups, a line for the log), or (None, why not)."""
        mount = _cgroup2_mount()
        if mount is None:
            return None, "no cgroup v2 hierarchy is mounted"
        own = _own_cgroup()
        if own is None:
            return None, "this process is in no cgroup v2 cgroup"
        parent = mount / own.lstrip("/")
        probe = parent / f"playcast-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError as exc:
            return None, f"cannot make a cgroup under {parent}: {exc.strerror or exc}"
        try:
            if not (probe / "cgroup.kill").exists():
                return None, "the kernel has no cgroup.kill (Linux < 5.14)"
            try:
                subprocess.run(["true"], check=True, preexec_fn=_join_or_fail(probe / "cgroup.procs"), timeout=10)
            except (OSError, subprocess.SubprocessError) as exc:
                return None, f"cannot move a process into a cgroup under {parent}: {exc}"
        finally:
            _remove(probe)
        return cls(parent), f"a cgroup v2 cgroup per session under {parent}"

    def create(self, name: str) -> Path:
        path = self.parent / name
        path.mkdir(exist_ok=True)
        return path


def _join_or_fail(procs: Path) -> ChildSetup:
    """For the probe only: unlike child_setup(cgroup), a failed move fails the spawn."""
    target = str(procs)
    setup = child_setup()

    def join() -> None:
        fd = os.open(target, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        setup()

    return join


def procs_file(cgroup: Path) -> str:
    return str(cgroup / "cgroup.procs")


def members(cgroup: Path) -> list[int]:
    try:
        return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def kill_and_remove(cgroup: Path, wait_s: float = 3.0) -> list[int]:
    """SIGKILL every process in `cgroup` (cgroup.kill: none can fork away meanwhile), wait for it to empty, remove
    it. Returns the pids that were still in it. A cgroup that is already gone is fine."""
    if not cgroup.is_dir():
        return []
    found = members(cgroup)
    if found:
        try:
            (cgroup / "cgroup.kill").write_text("1")
        except OSError:
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        deadline = time.monotonic() + wait_s
        while members(cgroup) and time.monotonic() < deadline:
            time.sleep(0.02)
    _remove(cgroup)
    return found


def _remove(cgroup: Path) -> None:
    deadline = time.monotonic() + 1.0
    while True:
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last killed process is being released
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
