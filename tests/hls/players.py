"""Support for tests of HLS players no one here wrote (FFmpeg, VLC): a live broadcast of SyntheticEncoder's moving
bar (4 px a frame) + a 440 Hz tone on our origin, recorded; and checks that decoded pictures are consecutive frames.

The checks read pixels only, so whatever player decoded them, a missing or repeated frame shows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from hls_support import LiveFeed, SyntheticEncoder, Viewers, serve
from starlette.applications import Starlette

from playcast.api.hls import hls_routes
from playcast.media.hls import HlsPackager, HlsRegistry
from playcast.media.recorder import Recorder, RecordingStatus
from playcast.storage import LocalStorage
from playcast.storage.http import storage_routes

W, H, FPS = 320, 240, 30
STEP = 4  # the bar moves 4 px a frame and wraps at the width


async def run_tool(*argv: str, timeout: float = 60, env: dict[str, str] | None = None) -> bytes:
    """Run a CLI tool without blocking the loop that serves it; its stdout, or AssertionError with its stderr."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv[0]} did not finish in {timeout} s") from None
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-2000:]}"
    return out


def bar_positions(raw: bytes) -> list[int]:
    """x of the bright bar in each gray frame (the left edge of the run of bright columns)."""
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W)
    out = []
    for f in frames:
        bright = f[H // 2 + 10:, :].mean(axis=0) > 150  # below the moving horizontal line's usual rows
        cols = np.flatnonzero(bright)
        assert cols.size, "no bar in a decoded frame"
        # the bar may wrap around the right edge: its left edge is the bright column after a dark one
        starts = [c for c in cols if not bright[(c - 1) % W]]
        out.append(int(starts[0]))
    return out


def assert_consecutive(positions: list[int]) -> None:
    steps = [(b - a) % W for a, b in zip(positions, positions[1:], strict=False)]
    assert steps and all(s == STEP for s in steps), f"frames missing or repeated: steps {steps}"


class Origin:
    """A live broadcast (synthetic pictures + tone) on our HLS origin, recorded; `end()` finishes it."""

    def __init__(self, base: str, packager: HlsPackager, recorder: Recorder, feed: LiveFeed,
                 registry: HlsRegistry) -> None:
        self.base, self.packager, self.recorder, self.feed, self.registry = base, packager, recorder, feed, registry
        self.live = f"{base}/hls/b1/master.m3u8"

    @property
    def vod(self) -> str:
        return f"{self.base}/recordings/{self.recorder.playlist_key}"

    async def end(self) -> None:
        await self.feed.stop()
        await self.packager.close()
        await self.recorder.stop()
        self.registry.remove("b1")
        assert self.recorder.status == RecordingStatus.ENDED


@contextlib.asynccontextmanager
async def open_origin(tmp_path: Path) -> AsyncIterator[Origin]:
    registry = HlsRegistry()
    enc = SyntheticEncoder(W, H, fps=FPS)
    packager = HlsPackager(FPS, request_keyframe=enc.request_keyframe, nominal_bitrate_kbps=600)
    registry.add("b1", packager)
    storage = LocalStorage(tmp_path / "recordings")
    recorder = Recorder(packager, storage, "b1/rec", thumbnail_interval_s=2.0)
    await recorder.start()
    feed = LiveFeed(packager, enc)
    feed.start()
    app = Starlette(routes=[*hls_routes(registry, viewers=Viewers()), *storage_routes(storage)])
    try:
        async with serve(app) as base:
            yield Origin(base, packager, recorder, feed, registry)
    finally:
        await feed.stop()
        if not packager.closed:
            await packager.close()
            await recorder.stop()
