"""VLC (Debian's `cvlc` 3.0, its own adaptive-streaming HLS client) plays our LL-HLS live and a recording as VOD.

VLC's `scene` video filter writes every decoded picture to a PNG; the moving bar in them proves consecutive frames."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from players import FPS, H, Origin, W, assert_consecutive, bar_positions, open_origin, run_tool

from tests.harness import await_until

pytestmark = pytest.mark.skipif(shutil.which("cvlc") is None, reason="Debian vlc-bin not installed (./dev installs it)")


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    async with open_origin(tmp_path) as o:
        yield o


async def vlc_pictures(url: str, seconds: float) -> bytes:
    """Play `url` in VLC for `seconds` (or to its end); every decoded picture, gray, back to back."""
    out = Path(tempfile.mkdtemp(prefix="playcast-vlc-"))
    try:
        argv = ["cvlc", "-I", "dummy", "-V", "dummy", "--no-audio", "--no-video-title-show",
                # every picture, even when this busy test machine makes VLC late (it would skip or hurry decoding)
                "--no-drop-late-frames", "--no-skip-frames", "--no-avcodec-hurry-up", "--avcodec-skip-frame=0",
                "--video-filter=scene", f"--scene-path={out}", "--scene-format=png", "--scene-ratio=1",
                "--scene-prefix=f", "--play-and-exit", f"--run-time={seconds}", url]
        if os.geteuid() == 0:  # VLC refuses to run as root: run it as nobody, writing where nobody may
            out.chmod(0o777)
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        await run_tool(*argv, timeout=seconds + 60, env={"HOME": str(out), "PATH": os.environ.get("PATH", "")})
        pictures = []
        for png in sorted(out.glob("f*.png")):
            with av.open(str(png)) as c:
                frame = next(c.decode(video=0))
                # VLC's scene filter writes 320x240 as 320x258 (it does so for FFmpeg's own HLS output too):
                # bring it back to the stream's size; the bar's x does not change
                assert frame.width == W and abs(frame.height - H) <= H // 10, (frame.width, frame.height)
                pictures.append(frame.reformat(width=W, height=H, format="gray").to_ndarray().tobytes())
        return b"".join(pictures)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def played(positions: list[int]) -> list[int]:
    """Without the first and last picture's repeats: VLC shows the first picture while it fills its buffer and may
    write the last one again at the end. Everything in between must be consecutive frames."""
    while len(positions) > 1 and positions[1] == positions[0]:
        positions = positions[1:]
    while len(positions) > 1 and positions[-2] == positions[-1]:
        positions = positions[:-1]
    return positions


@pytest.mark.timeout(180)
async def test_vlc_plays_live_ll_hls_and_the_recording_as_vod(origin: Origin) -> None:
    # a stream that has been live for a while, as a viewer finds it (VLC starts three segments from the end)
    await await_until(lambda: sum(s.complete for s in origin.packager.source.segments) >= 5, 30, "five segments")
    live = played(bar_positions(await vlc_pictures(origin.live, 4)))
    assert len(live) >= FPS, f"VLC decoded {len(live)} live pictures in 4 s"
    assert_consecutive(live)

    await origin.end()
    recorded = round(origin.recorder.duration_s * FPS)
    vod = played(bar_positions(await vlc_pictures(origin.vod, origin.recorder.duration_s + 30)))
    assert abs(len(vod) - recorded) <= 2, (len(vod), recorded)  # all of it, played to the end
    assert_consecutive(vod)
    assert np.std(vod) > 10  # the bar went across the picture
