"""Process plumbing for the children the host starts: they die with it (PR_SET_PDEATHSIG), and a child that leads
its own process group is stopped with SIGTERM to the group (and SIGCONT, in case it is paused), a wait, then SIGKILL
of what is left.

Shared by host/ (Xvfb, audio, the game's keeper, viewer workers) and media/ (the capture worker); no policy here."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# Resolved once here: a forked child only calls it (no dlopen or symbol lookup between fork and exec).
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

ChildSetup = Callable[[], None]
"""A preexec_fn for subprocess / asyncio.create_subprocess_exec."""


def child_setup(cgroup_procs: str | None = None, *, die_with_host: bool = True) -> ChildSetup:
    """A preexec_fn: with `die_with_host`, the child gets SIGKILL when the process starting it dies, by any signal
    (SIGKILL included); with `cgroup_procs` (a cgroup v2 `cgroup.procs` file) it first moves itself into that cgroup,
    so what it forks is born there too.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not only the process: the host forks on its
    event loop's thread, which outlives every child it starts (a pool is closed on its loop before the loop ends).
    Call this right before the spawn, in the process that spawns: it notes that process's pid, so a child whose
    parent died before the prctl took kills itself."""
    parent = os.getpid()
    target = cgroup_procs.encode() if cgroup_procs is not None else None

    def setup() -> None:
        if target is not None:
            try:
                fd = os.open(target, os.O_WRONLY)
                try:
                    os.write(fd, b"0")  # "0": the writing process itself
                finally:
                    os.close(fd)
            except OSError:
                pass  # the cgroup is the second line; PDEATHSIG and the keeper still hold
        if not die_with_host:
            return
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def stop_group(proc: asyncio.subprocess.Process, grace_s: float, *, kill_stragglers: bool = False) -> int:
    """SIGTERM the group led by `proc`, give it `grace_s`, then SIGKILL. With `kill_stragglers`, the group is
    SIGKILLed even when the leader exited in time (children may outlive it). Returns the leader's exit code.

    A stopped (SIGSTOPped) group keeps SIGTERM pending until it runs again, so the group is continued right after
    the SIGTERM: a paused game gets its graceful exit instead of the SIGKILL `grace_s` later."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        signal_group(proc.pid, signal.SIGCONT)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            pass
    if proc.returncode is None or kill_stragglers:
        signal_group(proc.pid, signal.SIGKILL)
    return await proc.wait()
