"""Helpers shared by control and API tests: descendant-process listing (leak checks), test applications,
and an async polling helper. Plain functions; no fixtures here."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path


def child_pids() -> set[int]:
    """Live (non-zombie) descendants of this process, read from /proc."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    out: set[int] = set()
    frontier = {me}
    while frontier:
        nxt = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in out}
        out |= nxt
        frontier = nxt
    return out


def make_app_dir(root: Path, script: str = "#!/bin/sh\nexec sleep 1000\n", name: str = "game.sh") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    exe = root / name
    exe.write_text(script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Await an async predicate until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await asyncio.sleep(interval)
