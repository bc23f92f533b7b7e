"""GameLift Streams application-message bridge: one TCP listener per stream session for the game.

Frames bytes between the game's socket and browser clients; it must not know about WebRTC, HTTP or JSON.

Wire format (protocols.md §1.10): the game dials TCP 127.0.0.1:<port> and both sides exchange frames
``[clientId:1][type:1][len:2 big-endian][payload:len]``. Types: 0 client connected, 1 client disconnected
(bridge -> game only), 2 message (both ways).

Choices made here:

- One game connection at a time. A new connection **replaces** the previous one (the old socket is closed),
  so a game that restarts or reconnects before its old socket is noticed dead is never locked out.
  On every (re)connection the game first receives a type-0 frame for each client currently connected, then
  the queued messages.
- Messages from clients while no game is connected are queued in order, bounded by ``max_queued_messages``
  (default 256) and ``max_queued_bytes`` (default 1 MiB of payload). Past either bound the *new* message is
  refused: ``send_to_app`` returns False and logs a warning; queued messages are never silently replaced.
  Queued messages whose client disconnected before the game connected are dropped (debug log), so the game
  never sees a message from a client it was not told about.
- A game that sends a frame of a type other than 2, or closes mid-frame, gets its connection dropped (warning
  log); clients and the listener are unaffected and the game may reconnect.
- Messages from the game for a client id that is not connected are dropped with a debug log (GameLift: messages
  sent by the app before a client connects are lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

DEFAULT_PORT = 40712
MAX_PAYLOAD = 0xFFFF

TYPE_CONNECTED = 0
TYPE_DISCONNECTED = 1
TYPE_MESSAGE = 2

_HEADER = struct.Struct(">BBH")

AppMessageHandler = Callable[[int, bytes], "Awaitable[None] | None"]


def encode_frame(client_id: int, frame_type: int, payload: bytes = b"") -> bytes:
    """One wire frame. Raises ValueError for a bad client id, type or a payload over 65535 bytes."""
    if not 0 <= client_id <= 0xFF:
        raise ValueError(f"client id must be 0..255, got {client_id}")
    if frame_type not in (TYPE_CONNECTED, TYPE_DISCONNECTED, TYPE_MESSAGE):
        raise ValueError(f"unknown frame type {frame_type}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"application message is {len(payload)} bytes; the limit is {MAX_PAYLOAD}")
    return _HEADER.pack(client_id, frame_type, len(payload)) + payload


class AppMessageBridge:
    """The per-session endpoint the game dials; browser clients reach it through the session runtime."""

    def __init__(
        self,
        on_app_message: AppMessageHandler | None = None,
        *,
        host: str = "127.0.0.1",
        max_queued_messages: int = 256,
        max_queued_bytes: int = 1 << 20,
        max_write_buffer: int = 4 << 20,
    ) -> None:
        self.on_app_message: AppMessageHandler | None = on_app_message
        self._host = host
        self._max_queued_messages = max_queued_messages
        self._max_queued_bytes = max_queued_bytes
        self._max_write_buffer = max_write_buffer
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._clients: set[int] = set()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queued_bytes = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._game_connected = asyncio.Event()
        self._closed = False
        self.dropped = 0  # messages refused or dropped in either direction (for metrics)

    # ---------------------------------------------------------------- lifecycle
    @property
    def port(self) -> int | None:
        return self._port

    @property
    def game_connected(self) -> bool:
        return self._writer is not None

    @property
    def clients(self) -> frozenset[int]:
        return frozenset(self._clients)

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def start(self, port: int | None = None) -> int:
        """Listen on 127.0.0.1. With `port` given, use it if free, else fall back to a free port.

        Returns the port to give the game in PLAYCAST_APP_MESSAGE_PORT."""
        if self._server is not None:
            raise RuntimeError("bridge already started")
        if self._closed:
            raise RuntimeError("bridge is closed")
        server: asyncio.Server | None = None
        if port:
            try:
                server = await asyncio.start_server(self._on_connection, self._host, port)
            except OSError as exc:
                logger.info("app-message port %d unavailable (%s); using a free port", port, exc.strerror)
        if server is None:
            server = await asyncio.start_server(self._on_connection, self._host, 0)
        self._server = server
        self._port = server.sockets[0].getsockname()[1]
        logger.debug("app-message bridge listening on %s:%d", self._host, self._port)
        return self._port

    async def close(self) -> None:
        """Stop listening, drop the game connection and everything queued. Idempotent."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        await self._drop_game("bridge closed")
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for task in list(self._handler_tasks):
            task.cancel()
        if self._handler_tasks:
            await asyncio.gather(*self._handler_tasks, return_exceptions=True)
        self._queue.clear()
        self._queued_bytes = 0
        self._clients.clear()

    async def wait_game_connected(self, timeout: float | None = None) -> None:
        """Wait until a game is connected (raises TimeoutError)."""
        await asyncio.wait_for(self._game_connected.wait(), timeout)

    # ---------------------------------------------------------------- client side
    def client_connected(self, client_id: int) -> None:
        """A browser client joined; the game gets a type-0 frame (now, or when it connects)."""
        _check_client_id(client_id)
        if client_id in self._clients:
            return
        self._clients.add(client_id)
        self._write(encode_frame(client_id, TYPE_CONNECTED))

    def client_disconnected(self, client_id: int) -> None:
        """A browser client left; the game gets a type-1 frame if it is connected."""
        _check_client_id(client_id)
        if client_id not in self._clients:
            return
        self._clients.discard(client_id)
        self._write(encode_frame(client_id, TYPE_DISCONNECTED))

    def send_to_app(self, client_id: int, payload: bytes) -> bool:
        """Deliver a client's message to the game, or queue it while no game is connected.

        Raises ValueError for a payload over 65535 bytes or a client id outside 0..255. Returns False when the
        message was dropped (client not connected, queue full, or the game is not reading), True otherwise."""
        frame = encode_frame(client_id, TYPE_MESSAGE, bytes(payload))
        if client_id not in self._clients:
            logger.debug("message from client %d which is not connected: dropped", client_id)
            self.dropped += 1
            return False
        if self._writer is None:
            if (len(self._queue) >= self._max_queued_messages
                    or self._queued_bytes + len(payload) > self._max_queued_bytes):
                logger.warning("app-message queue full (%d messages, %d bytes): message from client %d refused",
                               len(self._queue), self._queued_bytes, client_id)
                self.dropped += 1
                return False
            self._queue.append((client_id, frame))
            self._queued_bytes += len(payload)
            return True
        return self._write(frame)

    # ---------------------------------------------------------------- game side
    def _write(self, frame: bytes) -> bool:
        writer = self._writer
        if writer is None:
            return False
        if writer.transport.get_write_buffer_size() > self._max_write_buffer:
            logger.warning("game is not reading its app-message socket; frame dropped")
            self.dropped += 1
            return False
        writer.write(frame)
        return True

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        while self._writer is not None:
            logger.info("new game connection from %s replaces the previous one", peer)
            await self._drop_game("replaced by a new connection")
        if self._closed:
            writer.close()
            return
        logger.info("game connected to app-message bridge from %s", peer)
        self._writer = writer
        self._game_connected.set()
        for client_id in sorted(self._clients):
            writer.write(encode_frame(client_id, TYPE_CONNECTED))
        while self._queue:
            client_id, frame = self._queue.popleft()
            if client_id in self._clients:
                writer.write(frame)
            else:
                logger.debug("queued message from departed client %d dropped", client_id)
                self.dropped += 1
        self._queued_bytes = 0
        task = asyncio.current_task()
        assert task is not None
        self._reader_task = task
        try:
            await self._read_frames(reader)
        except asyncio.CancelledError:
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self._reader_task = None
                self._game_connected.clear()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                header = await reader.readexactly(_HEADER.size)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    logger.warning("game closed its app-message connection mid-header; dropped")
                else:
                    logger.info("game closed its app-message connection")
                return
            except ConnectionError as exc:
                logger.info("game app-message connection lost: %s", exc)
                return
            client_id, frame_type, length = _HEADER.unpack(header)
            if frame_type != TYPE_MESSAGE:
                logger.warning("game sent a frame of type %d (only 2 is valid from the game): "
                               "connection dropped", frame_type)
                return
            try:
                payload = await reader.readexactly(length)
            except asyncio.IncompleteReadError as exc:
                logger.warning("game sent a truncated frame (%d of %d payload bytes): connection dropped",
                               len(exc.partial), length)
                return
            except ConnectionError as exc:
                logger.info("game app-message connection lost: %s", exc)
                return
            if client_id not in self._clients:
                logger.debug("game message for client %d which is not connected: dropped", client_id)
                self.dropped += 1
                continue
            self._deliver(client_id, payload)

    def _deliver(self, client_id: int, payload: bytes) -> None:
        handler = self.on_app_message
        if handler is None:
            return
        try:
            result = handler(client_id, payload)
        except Exception:
            logger.exception("on_app_message handler failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("on_app_message handler failed", exc_info=task.exception())

    async def _drop_game(self, why: str) -> None:
        writer, task = self._writer, self._reader_task
        if writer is None:
            return
        logger.debug("dropping game connection: %s", why)
        self._writer = None
        self._reader_task = None
        self._game_connected.clear()
        writer.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _check_client_id(client_id: int) -> None:
    if not 0 <= client_id <= 0xFF:
        raise ValueError(f"client id must be 0..255, got {client_id}")
