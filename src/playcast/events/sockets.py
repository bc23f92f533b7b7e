"""Writes server messages to one client WebSocket without ever blocking the fan-out.

Fast path: pre-built text frames go straight onto uvicorn's transport (lent through the ASGI scope extension
that uvicorn_ws.py adds). Otherwise: a bounded queue drained through ASGI `send` by one task. Either way a
client that does not read is cut off (slow consumer) instead of growing memory. No protocol logic here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

EXTENSION = "playcast.websocket.transport"
MAX_BUFFER_BYTES = 8 * 1024 * 1024  # unread bytes before a subscriber counts as too slow
MAX_QUEUED_MESSAGES = 20_000

_SMALL_HEADERS = [bytes((0x81, n)) for n in range(126)]


def text_frame_header(length: int) -> bytes:
    """FIN + text opcode, unmasked (server to client), for a payload of `length` bytes."""
    if length < 126:
        return _SMALL_HEADERS[length]
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class Sender:
    """Common surface: write_data / send_text never block; close() sends a close frame."""

    closed: bool

    def write_data(self, head: bytes, tail: bytes) -> None:
        raise NotImplementedError

    def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def close(self, code: int, reason: str) -> bool:
        """Send a close frame; False when it could not be delivered (the socket must be abandoned)."""
        raise NotImplementedError

    def mark_closed(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        """Release resources after the socket is gone."""


class TransportSender(Sender):
    """Writes whole frames onto the transport uvicorn's protocol lends us."""

    def __init__(self, protocol: Any, send: Callable[[dict[str, Any]], Any], on_slow: Callable[[], None],
                 max_buffer: int = MAX_BUFFER_BYTES) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._send = send
        self._on_slow = on_slow
        self._max_buffer = max_buffer
        self.closed = False

    def _write(self, frame: bytes) -> None:
        transport = self._transport
        if self.closed or transport.is_closing():
            return
        transport.write(frame)
        if transport.get_write_buffer_size() > self._max_buffer:
            self.closed = True
            self._on_slow()

    def write_data(self, head: bytes, tail: bytes) -> None:
        if self.closed:
            return
        self._write(text_frame_header(len(head) + len(tail)) + head + tail)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        self._write(text_frame_header(len(payload)) + payload)

    async def close(self, code: int, reason: str) -> bool:
        self.closed = True
        if self._protocol.close_sent or self._protocol.disconnected:
            return True
        if self._transport.get_write_buffer_size() > self._max_buffer:
            self._transport.abort()  # it does not read: a close frame would wait behind megabytes
            return True
        try:
            await asyncio.wait_for(self._send({"type": "websocket.close", "code": code, "reason": reason}), 5)
        except Exception:  # noqa: BLE001
            self._transport.abort()
        return True


class AsgiSender(Sender):
    """A bounded queue of text messages, drained through ASGI `send` by one task."""

    def __init__(self, send: Callable[[dict[str, Any]], Any], on_slow: Callable[[], None],
                 max_queued: int = MAX_QUEUED_MESSAGES) -> None:
        self._send = send
        self._on_slow = on_slow
        self._max_queued = max_queued
        self._queue: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.ensure_future(self._run())
        self.closed = False

    def _put(self, text: str) -> None:
        if self.closed:
            return
        if len(self._queue) >= self._max_queued:
            self.closed = True
            self._on_slow()
            return
        self._queue.append(text)
        self._idle.clear()
        self._wakeup.set()

    def write_data(self, head: bytes, tail: bytes) -> None:
        if not self.closed:
            self._put((head + tail).decode())

    def send_text(self, text: str) -> None:
        self._put(text)

    async def _run(self) -> None:
        queue = self._queue
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while queue:
                    await self._send({"type": "websocket.send", "text": queue.popleft()})
                self._idle.set()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the socket went away; the receive loop notices and cleans up
            self.closed = True
            queue.clear()
            self._idle.set()

    async def close(self, code: int, reason: str) -> bool:
        if not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 5)
        self.closed = True
        self._queue.clear()
        self._task.cancel()
        try:
            await asyncio.wait_for(self._send({"type": "websocket.close", "code": code, "reason": reason}), 5)
        except Exception:  # noqa: BLE001 - the peer does not read: nothing more can be written to it
            return False
        return True

    async def aclose(self) -> None:
        self.closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def make_sender(scope: dict[str, Any], send: Callable[[dict[str, Any]], Any], on_slow: Callable[[], None], *,
                max_buffer: int = MAX_BUFFER_BYTES, max_queued: int = MAX_QUEUED_MESSAGES) -> Sender:
    protocol = scope.get("extensions", {}).get(EXTENSION)
    if protocol is not None and getattr(protocol, "transport", None) is not None:
        return TransportSender(protocol, send, on_slow, max_buffer)
    return AsgiSender(send, on_slow, max_queued)
