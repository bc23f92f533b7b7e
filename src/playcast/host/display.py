"""A private X display (Xvfb) for one stream session, on a free display number, removed after.

Starts and stops Xvfb only; knows nothing of capture, input or the app."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from playcast.procgroup import ChildSetup, child_setup, stop_group

log = logging.getLogger(__name__)


class DisplayError(RuntimeError):
    """Xvfb could not be started."""


@dataclass
class VirtualDisplay:
    """One Xvfb server. Use `await VirtualDisplay.start(w, h)` and `await display.stop()`."""

    number: int
    width: int
    height: int
    process: asyncio.subprocess.Process

    @property
    def name(self) -> str:
        return f":{self.number}"

    @classmethod
    async def start(cls, width: int, height: int, *, depth: int = 24, timeout_s: float = 10.0,
                    setup: ChildSetup | None = None) -> VirtualDisplay:
        """Start Xvfb on a display number it picks itself (-displayfd: no races between sessions). `setup`: its
        preexec_fn (default: child_setup())."""
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                "Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}",
                "-nolisten", "tcp", "-noreset", "-dpi", "96",
                "+extension", "XTEST", "+extension", "MIT-SHM",
                pass_fds=(write_fd,), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                start_new_session=True, preexec_fn=setup or child_setup(),
            )
        except FileNotFoundError as exc:
            os.close(read_fd)
            os.close(write_fd)
            raise DisplayError("Xvfb is not installed (Debian package xvfb)") from exc
        os.close(write_fd)
        loop = asyncio.get_running_loop()
        try:
            raw = await asyncio.wait_for(loop.run_in_executor(None, _read_display_number, read_fd), timeout_s)
        except (TimeoutError, ValueError) as exc:
            err = b""
            if proc.returncode is None:
                proc.kill()
            if proc.stderr is not None:
                err = await proc.stderr.read()
            await proc.wait()
            raise DisplayError(f"Xvfb did not start: {err.decode(errors='replace')[-500:]}") from exc
        except BaseException:  # cancelled while waiting: never leave an Xvfb behind
            if proc.returncode is None:
                proc.kill()
            await asyncio.shield(proc.wait())
            raise
        finally:
            os.close(read_fd)
        display = cls(number=raw, width=width, height=height, process=proc)
        # Drain stderr so Xvfb never blocks on a full pipe.
        display._drain = asyncio.ensure_future(_drain(proc, raw))  # type: ignore[attr-defined]
        log.info("display started", extra={"display": display.name, "pid": proc.pid, "size": f"{width}x{height}"})
        return display

    async def stop(self) -> None:
        """Terminate Xvfb and make sure its socket and lock file are gone."""
        await stop_group(self.process, 5)
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.cancel()
        for leftover in (Path(f"/tmp/.X11-unix/X{self.number}"), Path(f"/tmp/.X{self.number}-lock")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
        log.info("display stopped", extra={"display": self.name})


def _read_display_number(fd: int) -> int:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return int(data.strip())


async def _drain(proc: asyncio.subprocess.Process, number: int) -> None:
    assert proc.stderr is not None
    while True:
        line = await proc.stderr.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip()
        if text and "XKEYBOARD" not in text and "xkbcomp" not in text:
            log.debug("Xvfb :%d: %s", number, text)
