"""Helpers for the WHIP tests: a loopback HTTP server (uvicorn, in this event loop), a 307 redirector, a WHEP
viewer that decodes what it receives (aiortc), synthetic media tracks, an FFmpeg `whip` publisher subprocess.

Everything listens on 127.0.0.0/8 only and is stopped by its context manager."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import numpy as np
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.harness import await_until

REPO = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def, override]
        yield  # pytest owns the signals


class LoopbackServer:
    """`async with LoopbackServer(app, port, host)`: uvicorn serving `app` in the running event loop."""

    def __init__(self, app: Starlette, port: int, host: str = "127.0.0.1") -> None:
        self.server = _QuietServer(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                                  lifespan="off"))
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopbackServer:
        self._task = asyncio.ensure_future(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


@dataclass
class Redirector:
    """Answers every request with `307 Temporary Redirect` to the same path on `target` (as IVS's global WHIP
    endpoint does to a regional one) and records what it was sent."""

    target: str
    seen: list[tuple[str, str, str | None, bytes]] = field(default_factory=list)  # method, path, auth, body

    def app(self) -> Starlette:
        async def redirect(request: Request) -> Response:
            body = await request.body()
            self.seen.append((request.method, request.url.path, request.headers.get("authorization"), body))
            return Response(status_code=307, headers={"Location": self.target + request.url.path})

        return Starlette(routes=[Route("/{path:path}", redirect, methods=["POST", "DELETE", "PATCH", "OPTIONS"])])


class ColorTrack(VideoStreamTrack):
    """A solid-colour picture (RGB) with a moving white bar, at aiortc's default 30 fps."""

    def __init__(self, rgb: tuple[int, int, int], width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.image = np.zeros((height, width, 3), np.uint8)
        self.image[:, :] = rgb
        self.n = 0

    async def recv(self) -> av.VideoFrame:  # type: ignore[override]
        pts, time_base = await self.next_timestamp()
        img = self.image.copy()
        img[:, (self.n * 4) % img.shape[1]] = 255
        self.n += 1
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone (aiortc's AudioStreamTrack is silence)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0

    async def recv(self) -> av.AudioFrame:  # type: ignore[override]
        frame = await super().recv()
        n = frame.samples
        t = (np.arange(n) + self.samples) / frame.sample_rate
        self.samples += n
        wave = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
        frame.planes[0].update(np.repeat(wave, len(frame.layout.channels)).tobytes())
        return frame


def dominant(rgb_mean: np.ndarray) -> str:
    return "rgb"[int(np.argmax(rgb_mean))]


class WhepViewer:
    """A receive-only WebRTC viewer (aiortc) of a WHEP URL that decodes video and audio and keeps statistics."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.frames: list[tuple[float, int, int, np.ndarray]] = []  # (time, width, height, mean RGB)
        self.audio_rms: list[float] = []
        self.location: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._track)

    def _track(self, track) -> None:  # type: ignore[no-untyped-def]
        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if track.kind == "video":
                    small = frame.reformat(width=64, height=48, format="rgb24").to_ndarray()
                    self.frames.append((time.monotonic(), frame.width, frame.height,
                                        small.reshape(-1, 3).mean(axis=0)))
                else:
                    pcm = frame.to_ndarray().astype(np.float64)
                    self.audio_rms.append(float(np.sqrt(np.mean(pcm * pcm))))

        self._tasks.append(asyncio.ensure_future(read()))

    async def start(self, http: httpx.AsyncClient) -> httpx.Response:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        r = await http.post(self.url, content=self.pc.localDescription.sdp.encode(), headers=headers)
        if r.status_code == 201:
            self.location = r.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
        return r

    async def close(self) -> None:
        await self.pc.close()
        for t in self._tasks:
            t.cancel()


wait_until = await_until  # the one async poller (tests/harness.py)


def ecdsa_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for FFmpeg's whip muxer (cert_file/key_file).

    FFmpeg 8's GnuTLS build generates a DTLS certificate that OpenSSL 3 (aiortc, the stage's WebRTC stack) rejects
    with illegal_parameter; WebRTC stacks use ECDSA P-256 certificates, so the publisher gets one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ffmpeg-whip-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "whip-cert.pem", directory / "whip-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class FfmpegPublisher:
    """FFmpeg's `whip` muxer (through PyAV, in its own process: the muxer blocks while it handshakes) publishing
    H.264 constrained baseline (no B-frames) + Opus generated with PyAV. SIGTERM ends it cleanly (DELETE)."""

    def __init__(self, url: str, token: str, cert: Path, key: Path, seconds: float = 30.0,
                 rgb: tuple[int, int, int] = (40, 200, 60), size: tuple[int, int] = (320, 240)) -> None:
        self.cmd = [sys.executable, "-m", "tests.whip.ffmpeg_publisher", url, token, str(cert), str(key),
                    str(seconds), ",".join(map(str, rgb)), f"{size[0]}x{size[1]}"]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> FfmpegPublisher:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        return self

    def stop(self, timeout: float = 20.0) -> tuple[int, str]:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return self.proc.returncode, out


class OwnLeftovers:
    """The leak check for one `playcast up` while other suites run on the same machine: its session processes and
    temp dirs are told apart from everybody else's by a private TMPDIR (session dirs, pulse, game HOME) and a tag
    in the environment (Xvfb, capture workers, parec inherit it). Pass `env` to playcast_up, then `assert_clean()`."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="playcast-whip-"))
        self.tag = f"whip-{uuid.uuid4().hex}"
        self.env = {"TMPDIR": str(self.tmp), "PLAYCAST_TEST_TAG": self.tag}

    def found(self) -> set[str]:
        found = {f"dir {d}" for d in self.tmp.glob("playcast-session-*")}
        me = str(os.getpid())
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
            except (OSError, IndexError):
                continue
            if state == "Z":
                continue
            if self.tag.encode() in environ or str(self.tmp).encode() in environ + cmdline:
                command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
                found.add(f"pid {pid}: {command}")
        return found

    def assert_clean(self, wait_s: float = 15.0) -> None:
        deadline = time.monotonic() + wait_s
        while (left := self.found()) and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.tmp, ignore_errors=True)
        assert not left, "left behind by this playcast:\n" + "\n".join(sorted(left))
