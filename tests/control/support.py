"""Helpers shared by control and API tests: descendant-process listing (leak checks) and test applications.

Plain functions; no fixtures here."""

from __future__ import annotations

import os
import stat
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
