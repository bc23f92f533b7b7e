"""The demo game's side of GameLift Streams application messages: a non-blocking TCP client polled per frame.

Dials 127.0.0.1:<port>, retries while the bridge is away, frames and unframes messages; it must never block
the game loop or raise out of `poll()` for network trouble."""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CLIENT_CONNECTED = 0
CLIENT_DISCONNECTED = 1
MESSAGE = 2
_HEADER = struct.Struct(">BBH")
MAX_PAYLOAD = 0xFFFF


@dataclass(frozen=True)
class AppEvent:
    client_id: int
    kind: int  # CLIENT_CONNECTED, CLIENT_DISCONNECTED or MESSAGE
    payload: bytes = b""


class AppMessageClient:
    """Call `poll()` once per frame; it connects, reads and writes without blocking and returns new events."""

    def __init__(self, port: int, host: str = "127.0.0.1", retry_s: float = 0.5,
                 max_outbox: int = 1 << 20) -> None:
        self.address = (host, port)
        self.retry_s = retry_s
        self.max_outbox = max_outbox
        self.connected = False
        self._sock: socket.socket | None = None
        self._connecting = False
        self._next_attempt = 0.0
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._warned_refused = False

    def send(self, client_id: int, payload: bytes) -> bool:
        """Queue a message for a client (sent on the next polls). False when not connected or backed up."""
        if not self.connected or len(payload) > MAX_PAYLOAD or not 0 <= client_id <= 0xFF:
            return False
        if len(self._outbox) + len(payload) > self.max_outbox:
            logger.warning("app-message outbox full: message to client %d dropped", client_id)
            return False
        self._outbox += _HEADER.pack(client_id, MESSAGE, len(payload)) + payload
        return True

    def poll(self) -> list[AppEvent]:
        now = time.monotonic()
        if self._sock is None:
            if now >= self._next_attempt:
                self._dial(now)
            return []
        if self._connecting:
            self._finish_connect(now)
            if self._connecting or self._sock is None:
                return []
        events = self._read()
        self._flush()
        return events

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self.connected = False
        self._connecting = False
        self._inbox.clear()
        self._outbox.clear()

    # ------------------------------------------------------------------ internals
    def _dial(self, now: float) -> None:
        self._next_attempt = now + self.retry_s
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(self.address)
        self._sock = sock
        if err == 0:
            self._connected()
        elif err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._connecting = True
        else:
            self._failed(err)

    def _finish_connect(self, now: float) -> None:
        assert self._sock is not None
        _, writable, _ = select.select([], [self._sock], [], 0)
        if not writable:
            if now - (self._next_attempt - self.retry_s) > 5:
                self._failed(errno.ETIMEDOUT)
            return
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._failed(err)
        else:
            self._connecting = False
            self._connected()

    def _connected(self) -> None:
        self.connected = True
        self._warned_refused = False
        logger.info("connected to the app-message bridge at %s:%d", *self.address)

    def _failed(self, err: int) -> None:
        if not self._warned_refused:
            logger.info("app-message bridge not reachable (%s); retrying every %.1f s",
                        errno.errorcode.get(err, err), self.retry_s)
            self._warned_refused = True
        self.close()

    def _lost(self, why: str) -> None:
        logger.warning("app-message connection lost: %s; reconnecting", why)
        self.close()
        self._next_attempt = time.monotonic() + self.retry_s

    def _read(self) -> list[AppEvent]:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lost(str(exc))
                return []
            if not data:
                self._lost("closed by the bridge")
                return []
            self._inbox += data
        events: list[AppEvent] = []
        while len(self._inbox) >= _HEADER.size:
            client_id, kind, length = _HEADER.unpack_from(self._inbox)
            if len(self._inbox) < _HEADER.size + length:
                break
            payload = bytes(self._inbox[_HEADER.size:_HEADER.size + length])
            del self._inbox[:_HEADER.size + length]
            if kind not in (CLIENT_CONNECTED, CLIENT_DISCONNECTED, MESSAGE):
                logger.warning("unknown app-message frame type %d from the bridge: ignored", kind)
                continue
            events.append(AppEvent(client_id, kind, payload))
        return events

    def _flush(self) -> None:
        if self._sock is None or not self._outbox:
            return
        try:
            sent = self._sock.send(self._outbox)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(str(exc))
            return
        del self._outbox[:sent]
