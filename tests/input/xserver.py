"""Helpers for input tests: start/stop a real Xvfb on a free display number, an X client that records input.

Test support only: no fixtures here (conftest.py wraps these)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from Xlib import X
from Xlib import display as xdisplay

WIDTH, HEIGHT = 1280, 720


@dataclass
class XServer:
    display: str
    number: int
    proc: subprocess.Popen

    @property
    def lock_file(self) -> Path:
        return Path(f"/tmp/.X{self.number}-lock")

    @property
    def socket(self) -> Path:
        return Path(f"/tmp/.X11-unix/X{self.number}")


def start_xvfb(width: int = WIDTH, height: int = HEIGHT) -> XServer:
    """Start Xvfb on a display number it picks itself (-displayfd) and wait until it accepts clients."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
         "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        data = b""
        deadline = time.monotonic() + 15
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise RuntimeError("Xvfb did not report a display number")
            chunk = os.read(read_fd, 64)
            if not chunk:
                raise RuntimeError(f"Xvfb exited early (rc={proc.poll()})")
            data += chunk
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(read_fd)
    number = int(data.strip())
    return XServer(f":{number}", number, proc)


def stop_xvfb(server: XServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


class Observer:
    """A full-screen window with keyboard focus that records the input events X delivers to it."""

    MASK = (X.KeyPressMask | X.KeyReleaseMask | X.ButtonPressMask | X.ButtonReleaseMask
            | X.PointerMotionMask)

    def __init__(self, display: str, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.d = xdisplay.Display(display)
        screen = self.d.screen()
        self.window = screen.root.create_window(
            0, 0, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=screen.black_pixel, event_mask=self.MASK | X.StructureNotifyMask,
            override_redirect=True)
        self.window.map()
        self.d.sync()
        self._wait(lambda ev: ev.type == X.MapNotify)
        self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()

    def _wait(self, pred, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.d.pending_events():
                ev = self.d.next_event()
                if pred(ev):
                    return ev
            time.sleep(0.005)
        raise AssertionError("timed out waiting for an X event")

    def events(self, settle: float = 0.15) -> list:
        """All input events received until none arrived for `settle` seconds."""
        out: list = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            self.d.sync()
            got = False
            while self.d.pending_events():
                ev = self.d.next_event()
                if ev.type in (X.KeyPress, X.KeyRelease, X.ButtonPress, X.ButtonRelease, X.MotionNotify):
                    out.append(ev)
                got = True
            if got:
                quiet_since = time.monotonic()
            time.sleep(0.01)
        return out

    def pointer(self) -> tuple[int, int, int]:
        """(x, y, button/modifier mask) from XQueryPointer."""
        reply = self.d.screen().root.query_pointer()
        return reply.root_x, reply.root_y, reply.mask

    def keys_down(self) -> list[int]:
        """Keycodes the server reports as pressed (XQueryKeymap)."""
        keymap = self.d.query_keymap()
        return [byte_i * 8 + bit for byte_i, byte in enumerate(keymap) for bit in range(8) if byte >> bit & 1]

    def keysym_of(self, keycode: int, index: int = 0) -> int:
        return self.d.keycode_to_keysym(keycode, index)

    def close(self) -> None:
        self.window.destroy()
        self.d.close()
