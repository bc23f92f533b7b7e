"""The `/event/realtime` WebSocket endpoint: handshake (subprotocols, header auth), then one Connection per socket.

ASGI plumbing only: accepting, reading frames in order, and cleaning up; protocol decisions are Connection's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from . import protocol
from .connection import Connection
from .hooks import Identity
from .protocol import UNAUTHORIZED, ProtocolError
from .sockets import TransportSender, make_sender

if TYPE_CHECKING:
    from .service import EventsService

log = logging.getLogger(__name__)


def _client(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


class RealtimeEndpoint:
    """A raw ASGI app (Starlette routes a class instance to it as-is)."""

    def __init__(self, service: EventsService) -> None:
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        subprotocols: list[str] = scope.get("subprotocols") or []
        if protocol.SUBPROTOCOL not in subprotocols:
            # No AppSync client: refuse the handshake (HTTP 403) with nothing accepted.
            await send({"type": "websocket.close", "code": 1002})
            return
        identity: Identity | None = None
        auth_error: ProtocolError | None = None
        headers = protocol.decode_auth_subprotocols(subprotocols)
        try:
            if headers is None:
                raise ProtocolError(UNAUTHORIZED, "missing or undecodable 'header-' subprotocol with credentials")
            identity = self.service.auth.authenticate(headers)
        except ProtocolError as exc:
            auth_error = exc
        await send({"type": "websocket.accept", "subprotocol": protocol.SUBPROTOCOL})
        conn: Connection | None = None

        def on_slow() -> None:
            if conn is not None:
                if not conn.closing:
                    self.service.slow_consumers += 1
                conn.slow_consumer()

        limits = self.service.limits
        sender = make_sender(scope, send, on_slow, max_buffer=limits.send_buffer_bytes,
                             max_queued=limits.send_queue_messages)
        conn = Connection(self.service, sender, identity, auth_error, _client(scope))
        self.service.register(conn)
        abandoned = asyncio.ensure_future(conn.abandoned.wait())
        try:
            if auth_error is not None:
                # Refused at connect: answer the first message (AppSync clients send connection_init at once)
                # with connection_error and close 4401; a socket that says nothing gets the same after a while.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(receive(), limits.auth_grace_s)
                await conn.refuse(auth_error)
                return
            while True:
                if isinstance(sender, TransportSender):
                    message = await receive()  # an abandoned transport is aborted: receive() returns disconnect
                else:
                    incoming = asyncio.ensure_future(receive())
                    await asyncio.wait((incoming, abandoned), return_when=asyncio.FIRST_COMPLETED)
                    if not incoming.done():
                        incoming.cancel()
                        break
                    message = incoming.result()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    if text is not None:
                        await conn.handle_text(text)
                    else:
                        await conn.handle_binary()
                elif kind == "websocket.disconnect":
                    break
        except Exception:  # noqa: BLE001 - a bug in our handling must not leak the connection's subscriptions
            log.exception("events connection %s failed", conn.id)
        finally:
            abandoned.cancel()
            sender.mark_closed()
            await self.service.unregister(conn)
            await sender.aclose()
