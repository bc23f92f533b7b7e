"""Helpers for HLS tests: a real x264 encoder driven frame by frame, PCM tones, fMP4 parsing, free ports.

The encoder is playcast's own low-latency context (infinite GOP, IDR on request), fed synthetic pictures."""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction

import av
import numpy as np
import uvicorn
from av.video.frame import PictureType

from playcast.control.broadcasts import ViewerAccess
from playcast.hostproto.media_endpoint import HostMediaEndpoint
from playcast.media.encoder import EncodedPacket
from playcast.media.encoding import X264, EncoderSettings, make_context
from tests.s3_support import MotoServer


class SyntheticEncoder:
    """Moving-bar pictures through libx264 with playcast's settings; `request_keyframe()` like the worker's K."""

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30, bitrate_kbps: int = 600) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.ctx = make_context(X264, EncoderSettings(width, height, fps, bitrate_kbps))
        self.index = 0
        self._keyframe = True
        self.keyframe_requests = 0

    def request_keyframe(self, why: str = "") -> None:
        self.keyframe_requests += 1
        self._keyframe = True

    def picture(self, i: int) -> np.ndarray:
        y = np.full((self.height, self.width), 40, dtype=np.uint8)
        x = (i * 4) % self.width
        y[:, x:x + 16] = 220
        y[(i * 2) % self.height, :] = 128
        return y

    def encode(self, captured_at: float) -> EncodedPacket:
        chroma = np.full(self.width * self.height // 2, 128, dtype=np.uint8).reshape(self.height // 2, self.width)
        frame = av.VideoFrame.from_ndarray(np.vstack([self.picture(self.index), chroma]), format="yuv420p")
        frame.pts = self.index
        frame.time_base = Fraction(1, self.fps)
        frame.pict_type = PictureType.I if self._keyframe else PictureType.NONE
        self._keyframe = False
        packets = self.ctx.encode(frame)
        assert len(packets) == 1, "zerolatency x264 returns one packet per frame"
        p = packets[0]
        packet = EncodedPacket(bytes(p), bool(p.is_keyframe), self.index, captured_at)
        self.index += 1
        return packet


def tone(seconds: float, freq: float = 440.0, start_sample: int = 0) -> bytes:
    """s16le stereo 48 kHz sine."""
    n = round(seconds * 48000)
    t = (np.arange(n) + start_sample) / 48000
    mono = (np.sin(2 * math.pi * freq * t) * 12000).astype("<i2")
    return np.repeat(mono[:, None], 2, axis=1).tobytes()


def boxes_of(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, size) of the top-level boxes in data[offset:end]."""
    end = len(data) if end is None else end
    while offset < end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        assert size >= 8, f"bad box size at {offset}"
        yield kind, offset, size
        offset += size


def find_box(data: bytes, path: list[bytes], offset: int = 0, end: int | None = None) -> bytes | None:
    """The payload of the first box at `path` (e.g. [b'moov', b'trak', b'tkhd'])."""
    for kind, start, size in boxes_of(data, offset, end):
        if kind == path[0]:
            if len(path) == 1:
                return data[start + 8:start + size]
            found = find_box(data, path[1:], start + 8, start + size)
            if found is not None:
                return found
    return None


def decode_all(init: bytes, fragments: list[bytes]) -> tuple[list[av.VideoFrame], int, av.container.InputContainer]:
    """Open init+fragments with PyAV; decoded video frames and audio sample count."""
    buf = io.BytesIO(init + b"".join(fragments))
    container = av.open(buf, format="mp4")
    frames: list[av.VideoFrame] = []
    audio_samples = 0
    streams = [s for s in container.streams if s.type in ("video", "audio")]
    for packet in container.demux(*streams):
        for f in packet.decode():
            if isinstance(f, av.VideoFrame):
                frames.append(f)
            else:
                audio_samples += f.samples
    return frames, audio_samples, container


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve(app, port: int | None = None) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """Run an ASGI app with uvicorn on loopback; yields its base URL; stops it after."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


_PUBLIC = ViewerAccess(False, "")


class Viewers:
    """The origin's ViewerRules where no control plane runs: each broadcast public unless given a viewer token,
    checked by control's own ViewerAccess. Those in `stored` are not held in memory (the origin must ask again)."""

    def __init__(self, private: dict[str, str] | None = None, stored: set[str] | None = None,
                 remote: dict[str, HostMediaEndpoint] | None = None) -> None:
        self.private = dict(private or {})
        self.stored = set(stored or ())
        self.stored_reads = 0
        self.remote = dict(remote or {})  # broadcasts packaged on a "host" behind its own LL-HLS endpoint

    def _access(self, broadcast_id: str) -> ViewerAccess:
        token = self.private.get(broadcast_id)
        return ViewerAccess(True, token) if token is not None else _PUBLIC

    def live_access(self, broadcast_id: str) -> ViewerAccess | None:
        return None if broadcast_id in self.stored else self._access(broadcast_id)

    async def viewer_access(self, broadcast_id: str) -> ViewerAccess:
        if broadcast_id in self.stored:
            self.stored_reads += 1
        return self._access(broadcast_id)

    async def hls_source(self, broadcast_id: str) -> HostMediaEndpoint | None:
        return self.remote.get(broadcast_id)


class LiveFeed:
    """Pushes synthetic video (and a tone) into a packager in real time, as the fan-out would."""

    def __init__(self, packager, enc: SyntheticEncoder, audio: bool = True) -> None:  # type: ignore[no-untyped-def]
        self.packager = packager
        self.enc = enc
        self.audio = audio
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        import time as _time
        while True:
            now = _time.time()
            self.packager.push_video(self.enc.encode(now))
            if self.audio:
                self.packager.push_audio(tone(1 / self.enc.fps, start_sample=i * 48000 // self.enc.fps),
                                         at=now - 1 / self.enc.fps)
            i += 1
            await asyncio.sleep(max(0.0, start + i / self.enc.fps - loop.time()))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


def parse_playlist(text: str) -> dict:
    """The bits tests look at: tags by name, segments (uri, duration), parts, hint."""
    out: dict = {"tags": {}, "segments": [], "parts": [], "hint": None, "pdt": [], "lines": text.splitlines()}
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    pending_duration = None
    first_msn = 0
    for line in lines[1:]:
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            first_msn = int(line.split(":")[1])
        if line.startswith("#EXTINF:"):
            pending_duration = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-PART:"):
            attrs = dict(kv.split("=", 1) for kv in line[12:].split(","))
            out["parts"].append({"uri": attrs["URI"].strip('"'), "duration": float(attrs["DURATION"]),
                                 "independent": attrs.get("INDEPENDENT") == "YES",
                                 "msn": first_msn + len(out["segments"])})  # the segment it belongs to
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            attrs = dict(kv.split("=", 1) for kv in line[20:].split(","))
            out["hint"] = attrs["URI"].strip('"')
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            out["pdt"].append(line[25:])
        elif line.startswith("#"):
            name, _, value = line[1:].partition(":")
            out["tags"].setdefault(name, []).append(value)
        elif line:
            out["segments"].append((line, pending_duration))
            pending_duration = None
    return out


def s3_storage(moto: MotoServer, bucket: str, **kw):  # type: ignore[no-untyped-def]
    from playcast.storage import S3Storage

    return S3Storage(bucket, endpoint_url=moto.url, region="us-east-1", access_key_id="test",
                     secret_access_key="test", create_bucket=True, **kw)
