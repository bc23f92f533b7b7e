"""host/content.py keeps its unpacked trees under a size bound: least recently used first, never a tree a slot runs
or one just handed to a launch, partial downloads untouched (they are clean()'s)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from playcast.archives.extract import Limits
from playcast.host.content import HANDED_OUT_S, ContentCache
from playcast.hostproto.types import ContentRef, LaunchSpec


def _tree(root: Path, digest: str, size: int, age_s: float) -> Path:
    tree = root / digest
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "game").write_bytes(b"x" * size)
    then = time.time() - age_s  # explicit: file-system timestamps are coarser than the steps of a test
    os.utime(tree, (then, then))
    return tree


async def test_the_least_recently_used_trees_go_first_and_running_ones_never(tmp_path: Path) -> None:
    now = [1000.0]
    cache = ContentCache(tmp_path, "http://control.invalid", "t", Limits(100, 1 << 20), max_bytes=2500,
                         clock=lambda: now[0])
    for digest, age in (("a" * 64, 400), ("b" * 64, 300), ("c" * 64, 200), ("d" * 64, 100)):
        _tree(tmp_path, digest, 1000, age)
    (tmp_path / ".partial-xyz").mkdir()  # a fetch in progress: not a tree of the cache
    cache.in_use = lambda: {"a" * 64}  # the oldest, but a slot runs it
    assert cache.evict() == ["b" * 64, "c" * 64]  # 4000 -> 2000 bytes: the oldest not running go
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial-xyz", "a" * 64, "d" * 64]

    # a hit makes a tree the most recent; one handed to a launch is kept until its runtime says so
    spec = LaunchSpec("a-1", "", "game", content=ContentRef("e" * 64, 1, "/v1/hosts/content/" + "e" * 64))
    _tree(tmp_path, "e" * 64, 1000, 500)
    assert await cache.directory(spec) == tmp_path / ("e" * 64)
    cache.in_use = set
    _tree(tmp_path, "f" * 64, 1000, -10)  # newer than e's use just now
    assert cache.evict() == ["a" * 64, "d" * 64]  # e was handed out just now; f is the newest
    now[0] += HANDED_OUT_S + 1
    cache.max_bytes = 1000
    assert cache.evict() == ["e" * 64]  # used longer ago than f, and no longer handed out
    assert cache.evicted == 5
