"""A plain HLS player no one here wrote: FFmpeg's own HLS client (the one ffplay uses, Debian's `ffmpeg`/`ffprobe`
binaries) plays our LL-HLS origin live and a recording of it as VOD, seeking into it.

The pictures are SyntheticEncoder's moving bar (4 px a frame), so decoded frames prove FFmpeg got every frame in
order, not just some bytes."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
from hls_support import LiveFeed, SyntheticEncoder, serve
from starlette.applications import Starlette

from playcast.media.hls import HlsPackager, HlsRegistry, hls_routes
from playcast.media.recorder import Recorder, RecordingStatus
from playcast.storage import LocalStorage
from playcast.storage.http import storage_routes

W, H, FPS = 320, 240, 30
STEP = 4  # the bar moves 4 px a frame and wraps at the width

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian ffmpeg not installed (./dev installs it)")


async def _run(*argv: str, timeout: float = 60) -> bytes:
    """Run a CLI tool without blocking the loop that serves it; its stdout, or AssertionError with its stderr."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
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


@pytest.mark.timeout(180)
async def test_ffmpeg_plays_live_ll_hls_and_the_recording_as_vod(tmp_path: Path) -> None:
    registry = HlsRegistry()
    enc = SyntheticEncoder(W, H, fps=FPS)
    packager = HlsPackager(FPS, request_keyframe=enc.request_keyframe, nominal_bitrate_kbps=600)
    registry.add("b1", packager)
    storage = LocalStorage(tmp_path / "recordings")
    recorder = Recorder(packager, storage, "b1/rec", thumbnail_interval_s=2.0)
    await recorder.start()
    feed = LiveFeed(packager, enc)
    feed.start()
    app = Starlette(routes=[*hls_routes(registry), *storage_routes(storage)])
    try:
        async with serve(app) as base:
            live = f"{base}/hls/b1/master.m3u8"
            probe = json.loads(await _run("ffprobe", "-v", "error", "-show_entries",
                                          "stream=codec_type,codec_name,width,height,sample_rate,channels",
                                          "-of", "json", live))
            streams = {s["codec_type"]: s for s in probe["streams"]}
            assert streams["video"]["codec_name"] == "h264"
            assert (streams["video"]["width"], streams["video"]["height"]) == (W, H)
            assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "48000"

            # live: 60 consecutive frames and 2 s of the 440 Hz tone, decoded by FFmpeg from the origin
            video, audio = tmp_path / "v.gray", tmp_path / "a.s16"
            t0 = time.monotonic()
            await _run("ffmpeg", "-v", "error", "-nostdin", "-i", live,
                       "-map", "0:v:0", "-frames:v", "60", "-f", "rawvideo", "-pix_fmt", "gray", str(video),
                       "-map", "0:a:0", "-t", "2", "-f", "s16le", "-ac", "1", "-ar", "48000", str(audio))
            assert time.monotonic() - t0 < 30
            raw = video.read_bytes()
            assert len(raw) == 60 * W * H
            assert_consecutive(bar_positions(raw))
            pcm = np.frombuffer(audio.read_bytes(), dtype="<i2").astype(np.float64)
            assert len(pcm) >= 48000 * 1.9
            spectrum = np.abs(np.fft.rfft(pcm[:48000]))
            assert abs(np.argmax(spectrum) * 48000 / 48000 - 440) < 5  # 1 Hz bins: the tone's frequency

        # end of the broadcast: the recording is finalised and plays as VOD, seekable
        await feed.stop()
        await packager.close()
        await recorder.stop()
        registry.remove("b1")
        assert recorder.status == RecordingStatus.ENDED
        async with serve(app) as base:
            vod = f"{base}/recordings/{recorder.playlist_key}"
            fmt = json.loads(await _run("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
                                        vod))
            assert abs(float(fmt["format"]["duration"]) - recorder.duration_s) < 1.0, (fmt, recorder.duration_s)
            whole = await _run("ffmpeg", "-v", "error", "-nostdin", "-i", vod, "-map", "0:v:0", "-f", "rawvideo",
                               "-pix_fmt", "gray", "-")
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
    finally:
        await feed.stop()
        if not packager.closed:
            await packager.close()
