"""CPU time by process and thread from /proc, for benchmarks that compare whole pipelines (bench/vs_selkies.py):
two snapshots of every process on the machine and what each used between them; reads /proc only.

Percentages are of one core (200 % = both cores of a 2-core machine)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    pid: int
    ppid: int
    comm: str
    cpu: float  # utime + stime, seconds


def _stat(path: Path) -> tuple[str, list[str]] | None:
    try:
        raw = path.read_text()
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    return head.partition("(")[2], rest.split()


def snapshot() -> dict[int, Proc]:
    out: dict[int, Proc] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        st = _stat(p / "stat")
        if st is None:
            continue
        comm, f = st
        try:
            out[int(p.name)] = Proc(int(p.name), int(f[1]), comm, (int(f[11]) + int(f[12])) / TICK)
        except (IndexError, ValueError):
            continue
    return out


def threads(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (thread name, cpu seconds) of one process."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for t in tasks:
        st = _stat(t / "stat")
        if st is not None:
            comm, f = st
            out[int(t.name)] = (comm, (int(f[11]) + int(f[12])) / TICK)
    return out


def descendants(procs: dict[int, Proc], roots: list[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    seen: set[int] = set()
    stack = [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, []))
    return seen


def cmdline(pid: int) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def name(pid: int, fallback: str = "?") -> str:
    """A readable name: the module of `python -m X`, the script of `python script`, else the program."""
    argv = cmdline(pid)
    if not argv:
        return fallback
    base = os.path.basename(argv[0])
    if base.startswith("python"):
        if "-m" in argv[1:-1]:
            return argv[argv.index("-m") + 1].rsplit(".", 1)[-1]
        scripts = [a for a in argv[1:] if not a.startswith("-")]
        if scripts:
            return os.path.basename(scripts[0]).removesuffix(".py")
    return base


def used(before: dict[int, Proc], after: dict[int, Proc], pid: int) -> float:
    """CPU seconds `pid` used between the snapshots (all of it if it started in between)."""
    if pid not in after:
        return 0.0
    a = after[pid]
    b = before.get(pid)
    return a.cpu - (b.cpu if b is not None and b.comm == a.comm else 0.0)


def by_name(before: dict[int, Proc], after: dict[int, Proc], pids: set[int], seconds: float,
            names: dict[int, str]) -> dict[str, float]:
    """% of one core per process name over `seconds`."""
    out: dict[str, float] = {}
    for pid in pids:
        n = names.get(pid) or (after[pid].comm if pid in after else "?")
        out[n] = out.get(n, 0.0) + used(before, after, pid) / seconds * 100
    return out


def thread_use(before: dict[int, dict[int, tuple[str, float]]], pids: list[int],
               seconds: float) -> dict[int, dict[str, float]]:
    """pid -> thread name -> % of one core, against thread snapshots `before` (pid -> threads(pid))."""
    out: dict[int, dict[str, float]] = {}
    for pid in pids:
        now = threads(pid)
        per: dict[str, float] = {}
        for tid, (comm, cpu) in now.items():
            prev = before.get(pid, {}).get(tid)
            per[comm] = per.get(comm, 0.0) + (cpu - (prev[1] if prev else 0.0)) / seconds * 100
        out[pid] = per
    return out
