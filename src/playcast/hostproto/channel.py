"""Channels carry the host protocol's text frames between a control plane and one host: the Channel protocol and
the in-memory pair the embedded host of `playcast up` uses (every message still goes through the wire format).

Transport only: frames are opaque text here (codec.py gives them meaning); the WebSocket channel is websocket.py."""

from __future__ import annotations

import asyncio
from typing import Protocol


class ChannelClosed(Exception):
    """The other side closed the channel (or it broke); nothing more will arrive."""


class Channel(Protocol):
    async def send(self, text: str) -> None:
        """Send one frame. Raises ChannelClosed once the channel is closed."""

    async def recv(self) -> str:
        """The next frame. Raises ChannelClosed once the channel is closed and drained."""

    async def close(self) -> None:
        """Close both directions; idempotent."""


_CLOSED = object()


class MemoryChannel:
    """One end of an in-process channel; make both with `MemoryChannel.pair()`. Frames are strings, as on a
    WebSocket; a full queue (a peer that stopped reading) makes send() wait."""

    def __init__(self, inbox: asyncio.Queue[object], outbox: asyncio.Queue[object]) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False
        self.peer: MemoryChannel | None = None

    @staticmethod
    def pair(max_frames: int = 1024) -> tuple[MemoryChannel, MemoryChannel]:
        a_to_b: asyncio.Queue[object] = asyncio.Queue(max_frames)
        b_to_a: asyncio.Queue[object] = asyncio.Queue(max_frames)
        a, b = MemoryChannel(b_to_a, a_to_b), MemoryChannel(a_to_b, b_to_a)
        a.peer, b.peer = b, a
        return a, b

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, text: str) -> None:
        if self._closed or (self.peer is not None and self.peer._closed):
            raise ChannelClosed("channel closed")
        if not isinstance(text, str):
            raise TypeError("frames are text")
        await self._outbox.put(text)

    async def recv(self) -> str:
        if self._closed:
            raise ChannelClosed("channel closed")
        item = await self._inbox.get()
        if item is _CLOSED:
            self._closed = True
            raise ChannelClosed("the other side closed the channel")
        assert isinstance(item, str)
        return item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for queue in (self._outbox, self._inbox):  # wake a reader on either side
            _put_closing(queue)


def _put_closing(queue: asyncio.Queue[object]) -> None:
    """Put the end marker even into a full queue (dropping its oldest frame: the channel is over anyway)."""
    while True:
        try:
            queue.put_nowait(_CLOSED)
            return
        except asyncio.QueueFull:
            queue.get_nowait()
