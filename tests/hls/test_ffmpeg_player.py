"""A plain HLS player no one here wrote: FFmpeg's own HLS client (the one ffplay uses, Debian's `ffmpeg`/`ffprobe`
binaries) plays our LL-HLS origin live and a recording of it as VOD, seeking into it.

The pictures are SyntheticEncoder's moving bar (4 px a frame), so decoded frames prove FFmpeg got every frame in
order, not just some bytes."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from players import FPS, H, Origin, W, assert_consecutive, bar_positions, open_origin, run_tool

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian ffmpeg not installed (./dev installs it)")


def _seek_and_decode(url: str, to_s: float) -> tuple[float, float, bytes]:
    """(time of the first frame, time of the first frame at or after to_s after a seek, that frame in gray)."""
    with av.open(url) as c:
        first = next(c.decode(video=0)).time
        c.seek(int(to_s * av.time_base))  # lands on the keyframe (segment start) at or before to_s
        for frame in c.decode(video=0):
            if frame.time - first >= to_s:
                gray = frame.reformat(format="gray").to_ndarray()
                return first, frame.time - first, gray.tobytes()
    raise AssertionError("no frame after the seek point")


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    async with open_origin(tmp_path) as o:
        yield o


@pytest.mark.timeout(180)
async def test_ffmpeg_plays_live_ll_hls_and_the_recording_as_vod(origin: Origin, tmp_path: Path) -> None:
    live = origin.live
    probe = json.loads(await run_tool("ffprobe", "-v", "error", "-show_entries",
                                  "stream=codec_type,codec_name,width,height,sample_rate,channels",
                                  "-of", "json", live))
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (W, H)
    assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "48000"

    # live: 60 consecutive frames and 2 s of the 440 Hz tone, decoded by FFmpeg from the origin (frames as decoded:
    # timestamps are capture times, with their jitter, and FFmpeg's constant-rate output would duplicate frames)
    video, audio = tmp_path / "v.gray", tmp_path / "a.s16"
    await run_tool("ffmpeg", "-v", "error", "-nostdin", "-i", live,
               "-map", "0:v:0", "-frames:v", "60", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", str(video),
               "-map", "0:a:0", "-t", "2", "-f", "s16le", "-ac", "1", "-ar", "48000", str(audio))
    raw = video.read_bytes()
    assert len(raw) == 60 * W * H
    assert_consecutive(bar_positions(raw))
    pcm = np.frombuffer(audio.read_bytes(), dtype="<i2").astype(np.float64)
    assert len(pcm) >= 48000 * 1.9
    spectrum = np.abs(np.fft.rfft(pcm[:48000]))
    assert abs(int(np.argmax(spectrum)) - 440) < 5  # 1 Hz bins over one second: the tone's frequency

    # end of the broadcast: the recording is finalised and plays as VOD, seekable
    await origin.end()
    vod, recorder = origin.vod, origin.recorder
    fmt = json.loads(await run_tool("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", vod))
    assert abs(float(fmt["format"]["duration"]) - recorder.duration_s) < 1.0, (fmt, recorder.duration_s)
    whole = await run_tool("ffmpeg", "-v", "error", "-nostdin", "-i", vod, "-map", "0:v:0", "-fps_mode", "passthrough",
                       "-f", "rawvideo", "-pix_fmt", "gray", "-")
    positions = bar_positions(whole)
    assert len(positions) >= (recorder.duration_s - 0.5) * FPS
    assert_consecutive(positions)  # the whole recording, no frame lost or repeated
    # Seeking: Debian's FFmpeg 5.1 HLS client cannot seek in any fMP4 HLS (not even its own `-f hls
    # -hls_segment_type fmp4` output), so seek with the FFmpeg 8 libraries in PyAV (the same HLS client as a
    # current ffplay), in a thread so this loop keeps serving.
    mid = recorder.duration_s * 0.6
    t_first, t_seeked, picture = await asyncio.to_thread(_seek_and_decode, vod, mid)
    assert t_seeked >= mid and t_seeked - mid < 0.2, (t_seeked, mid)
    want = positions[round((t_seeked - t_first) * FPS)]
    got = bar_positions(picture)[0]
    assert got == want, (got, want)
