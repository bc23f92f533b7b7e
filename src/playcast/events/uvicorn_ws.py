"""uvicorn's WebSocket protocol, lending its transport to the events fan-out through an ASGI scope extension.

Behaves exactly like uvicorn's default (websockets-sansio) implementation otherwise; servers that do not use
it still work, the events endpoint then sends through plain ASGI (slower)."""

from __future__ import annotations

import socket
from asyncio import BaseTransport
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .sockets import EXTENSION


class FastFrameWebSocketProtocol(WebSocketsSansIOProtocol):
    """Adds scope["extensions"]["playcast.websocket.transport"] = this protocol object, and turns Nagle off
    (asyncio leaves it on for sockets created without proto=IPPROTO_TCP: small replies then wait ~40 ms)."""

    def connection_made(self, transport: BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            scope.setdefault("extensions", {})[EXTENSION] = self
