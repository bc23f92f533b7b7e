"""Helpers for demo-game tests: screen grabs with x11grab, PNG saving, ship detection, xdotool, the game process.

Imported by conftest.py and the tests (a unique module name, so it never collides with other conftests)."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from playcast.host.display import VirtualDisplay

LAUNCHER = Path(__file__).resolve().parents[2] / "src" / "playcast" / "demo" / "app" / "playcast-demo"
WIDTH, HEIGHT = 1280, 720
SHIP_RGB = (90, 220, 255)


def grab(display: str) -> np.ndarray:
    """One frame of the whole X screen as an HxWx3 uint8 RGB array (PyAV x11grab)."""
    container = av.open(display, format="x11grab", options={"video_size": f"{WIDTH}x{HEIGHT}",
                                                             "framerate": "30", "draw_mouse": "0"})
    try:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    finally:
        container.close()
    raise RuntimeError("no frame grabbed")


async def screenshot(display: VirtualDisplay) -> np.ndarray:
    return await asyncio.to_thread(grab, display.name)


def save_png(image: np.ndarray, path: Path) -> None:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def ship_position(image: np.ndarray) -> tuple[float, float] | None:
    mask = np.all(image == np.array(SHIP_RGB, dtype=np.uint8), axis=2)
    ys, xs = np.nonzero(mask)
    if len(xs) < 50:
        return None
    return float(xs.mean()), float(ys.mean())


async def xdotool(display: VirtualDisplay, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec("xdotool", *args, env={**os.environ, "DISPLAY": display.name},
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


@dataclass
class DemoGame:
    display: VirtualDisplay
    proc: asyncio.subprocess.Process
    log_path: Path
    artifacts: Path
    shots: list[Path] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def screenshot(self, name: str | None = None) -> np.ndarray:
        image = await screenshot(self.display)
        if name:
            path = self.artifacts / f"{name}.png"
            await asyncio.to_thread(save_png, image, path)
            self.shots.append(path)
        return image

    async def wait_rendered(self, timeout: float = 20.0) -> np.ndarray:
        """Wait for a frame showing the ship (the game has drawn at least once)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self.proc.returncode is None, f"demo exited early ({self.proc.returncode}):\n{self.log()}"
            image = await self.screenshot()
            if ship_position(image) is not None:
                return image
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"demo did not render within {timeout} s:\n{self.log()}")
            await asyncio.sleep(0.1)

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise AssertionError(f"demo ignored SIGTERM:\n{self.log()}") from None
        return self.proc.returncode
