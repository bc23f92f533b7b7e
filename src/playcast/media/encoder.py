"""The host-side handle of one capture+encode worker process (see capture_proc.py).

Starts the worker, reads its encoded packets asynchronously, forwards control commands. No WebRTC here."""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import sys
from dataclasses import dataclass

from playcast.media.capture_proc import FLAG_HELLO, FLAG_KEY, HEADER
from playcast.procgroup import ChildSetup, child_setup, stop_group

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded video frame (Annex-B H.264 access unit)."""

    data: bytes
    keyframe: bool
    index: int  # frame number since the worker started (pts in 1/fps)
    captured_at: float  # unix time the frame was grabbed


class EncoderProcess:
    """A running capture_proc worker for one X display."""

    def __init__(self, process: asyncio.subprocess.Process, encoder_name: str, fps: int) -> None:
        self.process = process
        self.encoder_name = encoder_name
        self.fps = fps
        self._capturing = False

    @classmethod
    async def start(cls, display: str, width: int, height: int, fps: int, bitrate_kbps: int,
                    preference: str = "auto", timeout_s: float = 20.0,
                    setup: ChildSetup | None = None) -> EncoderProcess:
        """Start the worker; `setup` is its preexec_fn (default: child_setup())."""
        env = dict(os.environ, DISPLAY=display)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "playcast.media.capture_proc", "--display", display,
            "--width", str(width), "--height", str(height), "--fps", str(fps),
            "--bitrate-kbps", str(bitrate_kbps), "--encoder", preference,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, start_new_session=True, limit=8 * 1024 * 1024, preexec_fn=setup or child_setup(),
        )
        assert proc.stdout is not None
        try:
            header = await asyncio.wait_for(proc.stdout.readexactly(HEADER.size), timeout_s)
            flags, _, _, size = HEADER.unpack(header)
            name = (await proc.stdout.readexactly(size)).decode()
            if not flags & FLAG_HELLO:
                raise RuntimeError("capture worker spoke out of turn")
        except (TimeoutError, asyncio.IncompleteReadError, RuntimeError) as exc:
            err = b""
            if proc.returncode is None:
                proc.kill()
            if proc.stderr is not None:
                err = await proc.stderr.read()
            await proc.wait()
            raise RuntimeError(f"capture worker failed to start: {err.decode(errors='replace')[-800:]}") from exc
        self = cls(proc, name, fps)
        self._stderr_task = asyncio.ensure_future(self._log_stderr())
        log.info("encoder ready", extra={"display": display, "encoder": name, "pid": proc.pid})
        return self

    async def _log_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            log.info("capture: %s", line.decode(errors="replace").rstrip())

    def _send(self, data: bytes) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.process.returncode is not None:
            return
        stdin.write(data)

    def start_capture(self) -> None:
        """Begin grabbing (the first frame after this is a keyframe)."""
        self._capturing = True
        self._send(b"S")

    def pause_capture(self) -> None:
        self._capturing = False
        self._send(b"P")

    @property
    def capturing(self) -> bool:
        return self._capturing

    def request_keyframe(self) -> None:
        self._send(b"K")

    def set_bitrate(self, kbps: int) -> None:
        self._send(b"B" + struct.pack("<I", kbps))

    async def read(self) -> EncodedPacket | None:
        """The next packet, or None when the worker has ended."""
        stdout = self.process.stdout
        assert stdout is not None
        try:
            header = await stdout.readexactly(HEADER.size)
            flags, index, at, size = HEADER.unpack(header)
            data = await stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return EncodedPacket(data=data, keyframe=bool(flags & FLAG_KEY), index=index, captured_at=at)

    async def stop(self) -> None:
        proc = self.process
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        await stop_group(proc, 3)
        task = getattr(self, "_stderr_task", None)
        if task is not None:
            task.cancel()
