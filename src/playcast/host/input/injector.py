"""One session's input sink: decode "input" data-channel messages and inject them (XTest, uinput) on a worker thread.

handle() only decodes and queues, so it is safe on the asyncio loop; all X and uinput calls happen on the worker."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from Xlib import error as xerror

from playcast.host.input import protocol as p
from playcast.host.input.gamepad import UINPUT_PATH, GamepadBank
from playcast.host.input.xtest import XTestError, XTestInjector

log = logging.getLogger(__name__)

GAMEPAD_UNAVAILABLE_TEXT = "Gamepads are unavailable on this host"
_REOPEN_INTERVAL_S = 1.0
_MAX_BATCH = 256


class _Command:
    """Non-event work items for the worker."""

    RELEASE_ALL = "release_all"
    STOP = "stop"


class InputInjector:
    """Decodes and injects one client's input into X display `display` (width x height pixels).

    `send_control(bytes)` (optional) sends a host -> client control message on the "input" channel; it is
    only ever called from inside handle(), i.e. on the caller's thread."""

    def __init__(self, display: str, width: int, height: int, *,
                 send_control: Callable[[bytes], None] | None = None, uinput_path: str = UINPUT_PATH) -> None:
        self.display = display
        self.width = width
        self.height = height
        self.send_control = send_control
        self.last_input_at: float = 0.0  # unix time of the last user input event; 0.0 = none yet
        self.errors = 0  # messages rejected by the decoder
        self.injected = 0  # events handed to X / uinput
        self._gamepads = GamepadBank(uinput_path)
        self._gamepad_notice_sent = False
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"input{display}", daemon=True)
        self._thread.start()
        if not self._gamepads.available:
            log.info("gamepads unavailable for display %s: %s", display, self._gamepads.reason)

    @property
    def gamepad_available(self) -> bool:
        return self._gamepads.available

    @property
    def gamepad_unavailable_reason(self) -> str | None:
        return None if self._gamepads.available else self._gamepads.reason

    # ---- called on the asyncio loop -----------------------------------------------------------------

    def handle(self, data: bytes) -> None:
        """Decode one message and queue it for injection. Never raises for bad input; never blocks."""
        if self._closed:
            return
        try:
            event = p.decode(data)
        except p.InputProtocolError as exc:
            self.errors += 1
            if self.errors <= 10 or self.errors % 1000 == 0:
                log.warning("display %s: rejected input message (%d so far): %s", self.display, self.errors, exc)
            return
        match event:
            case p.Hello():
                self._gamepad_notice_sent = False
                self._send(p.encode_host_info(self.gamepad_available))
                return
            case p.GamepadConnection() | p.GamepadState() if not self.gamepad_available:
                if not self._gamepad_notice_sent:
                    self._gamepad_notice_sent = True
                    log.info("display %s: gamepad input dropped: %s", self.display, self._gamepads.reason)
                    self._send(p.encode_notice(p.NoticeCode.GAMEPAD_UNAVAILABLE, GAMEPAD_UNAVAILABLE_TEXT))
                return
            case p.Reset():
                self._queue.put(_Command.RELEASE_ALL)
                return
            case p.GamepadConnection():
                pass
            case _:
                self.last_input_at = time.time()
        self._queue.put(event)

    def release_all(self) -> None:
        """Release every held key, mouse button and gamepad control (queued; returns at once)."""
        if not self._closed:
            self._queue.put(_Command.RELEASE_ALL)

    def drain(self, timeout: float = 2.0) -> bool:
        """Block until everything queued so far has been injected (tests and shutdown). False on timeout."""
        if self._closed or not self._thread.is_alive():
            return not self._thread.is_alive()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Release everything, stop the worker and close the X connection and virtual pads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_Command.STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("display %s: input worker did not stop within %.1fs", self.display, timeout)

    def _send(self, message: bytes) -> None:
        if self.send_control is None:
            return
        try:
            self.send_control(message)
        except Exception:  # a closing channel must not break input handling
            log.debug("display %s: control message not sent", self.display, exc_info=True)

    # ---- worker thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        x: XTestInjector | None = None
        next_open = 0.0
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                for item in _coalesce(batch):
                    if item is _Command.STOP:
                        stop = True
                        break
                    if isinstance(item, threading.Event):
                        if x is not None:
                            x = self._flush(x, sync=True)
                        item.set()
                        continue
                    if x is None and not isinstance(item, p.GamepadState | p.GamepadConnection):
                        if time.monotonic() >= next_open:
                            x = self._open()
                            next_open = time.monotonic() + _REOPEN_INTERVAL_S
                    try:
                        x = self._apply(x, item)
                    except Exception:  # a bug must cost one event, not the session's input
                        log.exception("display %s: unexpected error injecting %r", self.display, item)
                        x = self._discard(x)
                if x is not None:
                    x = self._flush(x)
                if stop:
                    break
        finally:
            self._drain_waiters()
            if x is not None:
                try:
                    x.close()
                except Exception:
                    log.debug("display %s: error closing X connection", self.display, exc_info=True)
            try:
                self._gamepads.close()
            except OSError:
                log.debug("display %s: error closing gamepads", self.display, exc_info=True)

    def _open(self) -> XTestInjector | None:
        try:
            return XTestInjector(self.display, self.width, self.height)
        except XTestError as exc:
            log.warning("input for display %s dropped: %s", self.display, exc)
            return None

    def _apply(self, x: XTestInjector | None, item: object) -> XTestInjector | None:
        try:
            match item:
                case p.GamepadState():
                    self._gamepads.update(item)
                case p.GamepadConnection(index, True):
                    self._gamepads.connect(index)
                case p.GamepadConnection(index, False):
                    self._gamepads.disconnect(index)
                case _Command.RELEASE_ALL:
                    self._gamepads.release_all()
                    if x is not None:
                        x.release_all()
                case _ if x is None:
                    return None  # no display: the event is dropped (logged when opening failed)
                case p.Key(index, down):
                    x.key(index, down)
                case p.MouseMoveAbs(mx, my):
                    x.move_abs(mx, my)
                case p.MouseMoveRel(dx, dy):
                    x.move_rel(dx, dy)
                case p.MouseButtonEvent(button, down):
                    x.button(button, down)
                case p.Wheel(dx, dy):
                    x.wheel(dx, dy)
            self.injected += 1
            return x
        except (xerror.ConnectionClosedError, xerror.XError, OSError) as exc:
            log.warning("display %s: input injection failed (%s); reconnecting", self.display, exc)
            return self._discard(x)

    def _flush(self, x: XTestInjector, sync: bool = False) -> XTestInjector | None:
        try:
            x.sync() if sync else x.flush()
            return x
        except (xerror.ConnectionClosedError, xerror.XError, OSError) as exc:
            log.warning("display %s: X flush failed (%s)", self.display, exc)
            return self._discard(x)

    def _discard(self, x: XTestInjector | None) -> None:
        if x is not None:
            x.abort()
        return None

    def _drain_waiters(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, threading.Event):
                item.set()


def _coalesce(batch: list[object]) -> list[object]:
    """Merge runs of absolute moves (keep the last), relative moves (sum) and same-pad gamepad states."""
    out: list[object] = []
    for item in batch:
        prev = out[-1] if out else None
        if isinstance(item, p.MouseMoveAbs) and isinstance(prev, p.MouseMoveAbs):
            out[-1] = item
        elif isinstance(item, p.MouseMoveRel) and isinstance(prev, p.MouseMoveRel):
            dx, dy = prev.dx + item.dx, prev.dy + item.dy
            if -32768 <= dx <= 32767 and -32768 <= dy <= 32767:
                out[-1] = p.MouseMoveRel(dx, dy)
            else:
                out.append(item)
        elif isinstance(item, p.GamepadState) and isinstance(prev, p.GamepadState) and prev.index == item.index:
            out[-1] = item
        else:
            out.append(item)
    return out
