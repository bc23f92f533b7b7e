"""The host protocol over a WebSocket, as a host dials a control plane on another machine: the client-side
Channel over a `websockets` connection, and `dial()`.

Transport only (frames are text; a binary frame is refused); the server side lives in api/hosts.py (HTTP is api's),
reconnecting is host/remote.py's."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from playcast.hostproto.channel import ChannelClosed
from playcast.hostproto.codec import MAX_FRAME_BYTES

CONNECT_PATH = "/v1/hosts/connect"


class WebSocketChannel:
    """A Channel over one `websockets` client connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise ChannelClosed(f"the control plane closed the connection ({exc})") from None

    async def recv(self) -> str:
        try:
            frame = await self.ws.recv()
        except ConnectionClosed as exc:
            raise ChannelClosed(f"the control plane closed the connection ({exc})") from None
        if not isinstance(frame, str):
            await self.ws.close(1003, "the host protocol speaks text frames")
            raise ChannelClosed("the control plane sent a binary frame")
        return frame

    async def close(self) -> None:
        await self.ws.close()


def connect_url(server_url: str) -> str:
    """http(s)://host:port[/prefix] -> ws(s)://host:port[/prefix]/v1/hosts/connect."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"the server URL must be http(s)://host:port, got {server_url!r}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + CONNECT_PATH, "", ""))


async def dial(server_url: str, token: str, *, open_timeout_s: float = 10.0) -> WebSocketChannel:
    """Open the host channel to the control plane at `server_url`. Raises OSError/TimeoutError/InvalidStatus
    (websockets) when it cannot be reached or refuses the upgrade."""
    ws = await connect(connect_url(server_url), additional_headers={"Authorization": f"Bearer {token}"},
                       max_size=MAX_FRAME_BYTES + 1024, open_timeout=open_timeout_s, ping_interval=2,
                       ping_timeout=5)  # a dead control plane is noticed in seconds, well inside its lost-host window
    return WebSocketChannel(ws)
