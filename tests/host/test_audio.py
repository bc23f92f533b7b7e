"""Per-session audio with a real PulseAudio daemon: capture of a played tone, PcmAudioTrack frames, cleanup."""

from __future__ import annotations

import asyncio
import fractions
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder

from playcast.host.audio import CHUNK_BYTES, AudioSink
from playcast.media.audio import PcmAudioTrack

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="pulseaudio not installed"),
]


def tone(freq: float = 440.0, seconds: float = 0.6, amplitude: int = 8000) -> bytes:
    t = np.arange(int(48000 * seconds)) / 48000
    mono = (np.sin(2 * np.pi * freq * t) * amplitude).astype("<i2")
    return np.repeat(mono, 2).tobytes()


def rms(chunk: bytes) -> float:
    a = np.frombuffer(chunk, "<i2").astype(np.float64)
    return float(np.sqrt((a * a).mean())) if len(a) else 0.0


def dominant_hz(pcm: bytes) -> float:
    left = np.frombuffer(pcm, "<i2")[0::2].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(left * np.hanning(len(left))))
    return float(np.fft.rfftfreq(len(left), 1 / 48000)[int(np.argmax(spectrum))])


async def play(sink: AudioSink, pcm: bytes) -> None:
    proc = await asyncio.create_subprocess_exec(
        "pacat", "--raw", "--format=s16le", "--rate=48000", "--channels=2", "--latency-msec=20",
        env={**os.environ, **sink.env()}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(pcm)
    assert proc.returncode == 0, err.decode()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pulse_processes_under(path: Path) -> list[int]:
    """pids of any process whose command line or environment mentions `path` (our daemon, parec, clients)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if str(path).encode() in cmd or str(path).encode() in env:
            found.append(int(entry))
    return [p for p in found if alive(p)]


@pytest.fixture
async def sink(tmp_path: Path):
    s = AudioSink(tmp_path)
    assert await s.start(), s.reason
    yield s
    await s.stop()


async def test_sink_captures_played_tone(sink: AudioSink, tmp_path: Path):
    assert sink.available
    env = sink.env()
    assert env["PULSE_SERVER"] == f"unix:{sink.socket_path}"
    assert env["SDL_AUDIODRIVER"] == "pulse" and env["PULSE_SINK"] == "playcast"
    assert len(sink.pids()) == 2
    captured: list[bytes] = []

    async def capture() -> None:
        async for chunk in sink.chunks():
            assert len(chunk) == CHUNK_BYTES
            captured.append(chunk)
            if len(captured) >= 50 and any(rms(c) > 2000 for c in captured[-40:]) and rms(chunk) < 1:
                return  # tone came and went

    reader = asyncio.create_task(capture())
    # silence flows while nothing plays
    for _ in range(300):
        if len(captured) >= 5:
            break
        await asyncio.sleep(0.01)
    assert len(captured) >= 5 and all(rms(c) == 0 for c in captured)
    await play(sink, tone(440, 0.6))
    await asyncio.wait_for(reader, 10)
    loud = [c for c in captured if rms(c) > 2000]
    assert len(loud) >= 20, f"only {len(loud)} loud chunks of {len(captured)}"
    assert 5000 < max(rms(c) for c in loud) < 6500  # 8000 peak sine -> RMS 5657
    assert abs(dominant_hz(b"".join(loud)) - 440) < 5


async def test_track_frames_pts_and_audio(sink: AudioSink):
    track = PcmAudioTrack(sink)  # as the session runtime uses it
    frames = []
    player = None
    t0 = time.monotonic()
    try:
        for i in range(100):
            frame = await track.recv()
            frames.append(frame)
            if i == 10:
                player = asyncio.create_task(play(sink, tone(660, 0.5)))
        elapsed = time.monotonic() - t0
        await player
    finally:
        track.stop()
    assert [f.pts for f in frames] == [960 * i for i in range(100)]
    for f in frames:
        assert f.samples == 960 and f.sample_rate == 48000
        assert f.format.name == "s16" and f.layout.name == "stereo"
        assert f.time_base == fractions.Fraction(1, 48000)
    assert 1.8 < elapsed < 2.5  # 99 frame intervals of 20 ms, paced by the clock
    energy = [float(np.sqrt((f.to_ndarray().astype(np.float64) ** 2).mean())) for f in frames]
    assert sum(e > 2000 for e in energy) >= 15, energy
    pcm = b"".join(bytes(f.planes[0])[:3840] for f, e in zip(frames, energy, strict=True) if e > 2000)
    assert abs(dominant_hz(pcm) - 660) < 5
    # aiortc's own Opus encoder takes these frames as they are: one 20 ms packet each, RTP clock = pts
    encoder = OpusEncoder()
    for f in frames[:5]:
        payloads, timestamp = encoder.encode(f)
        assert len(payloads) == 1 and payloads[0] and timestamp == f.pts
    assert track.readyState == "ended"


async def test_several_consumers_and_replacement(sink: AudioSink):
    """A reconnecting client gets a new track while the old one may still be alive: both hear the game."""
    first = PcmAudioTrack(sink)
    second = PcmAudioTrack(sink.chunks())
    stalled = sink.chunks()  # a consumer that never reads must not hold anyone up
    assert len(await stalled.__anext__()) == CHUNK_BYTES  # subscribed; then it never reads again
    await first.recv()
    await second.recv()
    player = asyncio.create_task(play(sink, tone(500, 0.5)))
    heard = {"first": 0, "second": 0}
    for _ in range(60):
        for name, track in (("first", first), ("second", second)):
            frame = await track.recv()
            if float(np.abs(frame.to_ndarray()).max()) > 4000:
                heard[name] += 1
    await player
    assert heard["first"] >= 15 and heard["second"] >= 15, heard
    assert len(sink._subscribers) == 3
    assert max(q.qsize() for q in sink._subscribers) <= sink.subscriber_backlog  # the stalled one is bounded
    first.stop()
    second.stop()
    await stalled.aclose()
    for _ in range(100):
        if not sink._subscribers:
            break
        await asyncio.sleep(0.01)
    assert not sink._subscribers


async def test_silent_track_and_odd_chunk_sizes():
    silent = PcmAudioTrack(None)
    frames = [await silent.recv() for _ in range(5)]
    silent.stop()
    assert [f.pts for f in frames] == [0, 960, 1920, 2880, 3840]
    assert all(not f.to_ndarray().any() for f in frames)
    assert silent.frames_silent == 5

    pcm = tone(1000, 0.1)  # exactly five 20 ms chunks, delivered in odd pieces

    async def pieces():
        for start in range(0, len(pcm), 1000):
            yield pcm[start:start + 1000]
        await asyncio.sleep(3600)

    track = PcmAudioTrack(pieces(), max_buffered=10)
    got = [await track.recv() for _ in range(8)]
    track.stop()
    joined = b"".join(bytes(f.planes[0])[:3840] for f in got if f.to_ndarray().any())
    assert joined == pcm


async def test_stop_leaves_nothing(tmp_path: Path):
    s = AudioSink(tmp_path)
    assert await s.start(), s.reason
    pids = s.pids()
    sock = s.socket_path
    assert pids and sock is not None and sock.exists()
    # a client plays into it and a consumer reads, as in a session
    track = PcmAudioTrack(s.chunks())
    await track.recv()
    await play(s, tone(300, 0.1))
    await s.stop()
    track.stop()
    assert not s.available and s.env() == {}
    assert not any(alive(p) for p in pids)
    assert not (tmp_path / "pulse").exists()
    assert tmp_path.exists() and list(tmp_path.iterdir()) == []
    assert not sock.exists()
    assert pulse_processes_under(tmp_path) == []
    await s.stop()  # idempotent


async def test_long_session_path_uses_short_socket(tmp_path: Path):
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    s = AudioSink(deep)
    assert await s.start(), s.reason
    sock = s.socket_path
    assert sock is not None and len(str(sock)) <= 100 and sock.exists()
    await play(s, tone(440, 0.05))
    await s.stop()
    assert not sock.exists() and not sock.parent.exists()
    assert list(deep.iterdir()) == []


async def test_unstartable_pulseaudio_means_no_audio(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    s = AudioSink(tmp_path, sink_name="bad name!")  # module-null-sink refuses it: the daemon exits
    assert not await s.start()
    assert not s.available and s.env() == {} and s.pids() == []
    assert "no sink 'bad name!'" in (s.reason or "") and "null-sink" in (s.reason or "")
    assert "running without audio" in caplog.text
    assert list(tmp_path.iterdir()) == []
    assert pulse_processes_under(tmp_path) == []
    # an empty source for a track: frames are silence
    track = PcmAudioTrack(s.chunks())
    frame = await track.recv()
    track.stop()
    assert not frame.to_ndarray().any()


async def test_missing_binaries_mean_no_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    s = AudioSink(tmp_path)
    assert not await s.start()
    assert "not installed" in (s.reason or "")
    assert list(tmp_path.iterdir()) == []
