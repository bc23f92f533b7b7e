"""Stopping a child that leads its own process group: SIGTERM the group (and SIGCONT it, in case it is paused), wait,
SIGKILL what is left.

Process plumbing only, shared by host/ (Xvfb, the game) and media/ (the capture worker)."""

from __future__ import annotations

import asyncio
import os
import signal


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
