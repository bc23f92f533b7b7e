"""Encode once, fan out: one encoder's packets go to N sinks, each with its own bounded queue.

A new sink or a sink that fell behind waits for the next keyframe; keyframe requests are coalesced so many
joins or PLIs cost the encoder one IDR. No WebRTC or HTTP here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from playcast.media.encoder import EncodedPacket

log = logging.getLogger(__name__)

KEYFRAME_RETRY_S = 0.5  # if a requested keyframe has not arrived by then, ask again


class PacketSink:
    """One consumer (a WebRTC sender, a packager ...). `get()` returns packets in order, starting at a keyframe."""

    def __init__(self, fanout: PacketFanout, name: str, max_packets: int) -> None:
        self.name = name
        self._fanout = fanout
        self._queue: asyncio.Queue[EncodedPacket | None] = asyncio.Queue(max_packets)
        self.waiting_for_keyframe = True
        self.dropped = 0
        self.delivered = 0

    def _offer(self, packet: EncodedPacket) -> None:
        if self.waiting_for_keyframe:
            if not packet.keyframe:
                return
            self.waiting_for_keyframe = False
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            # Too slow: drop the backlog and resume at the next keyframe instead of buffering without bound.
            self.dropped += self._queue.qsize()
            self._fanout.dropped += self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self.waiting_for_keyframe = True
            self._fanout.request_keyframe(f"sink {self.name} fell behind")

    def request_keyframe(self, why: str) -> None:
        self._fanout.request_keyframe(why)

    async def get(self) -> EncodedPacket | None:
        """The next packet; None once the fan-out has ended."""
        packet = await self._queue.get()
        if packet is not None:
            self.delivered += 1
        return packet

    def close(self) -> None:
        self._fanout.remove(self)

    def _end(self) -> None:
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(None)


class PacketFanout:
    """Pumps packets from `read()` to every sink; tells the encoder when a keyframe is needed."""

    def __init__(self, read: Callable[[], Awaitable[EncodedPacket | None]],
                 request_keyframe: Callable[[], None]) -> None:
        self._read = read
        self._request_keyframe = request_keyframe
        # Sinks in the order they joined (dicts keep it); `_first` ones are served before the others (the player:
        # its latency comes first, whatever the audience).
        self._sinks: dict[PacketSink, None] = {}
        self._first: dict[PacketSink, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._keyframe_pending_since: float | None = None
        self.packets = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.dropped = 0  # packets dropped by every sink that fell behind, closed sinks included
        self.last_packet: EncodedPacket | None = None
        self.on_first_sink: Callable[[], None] | None = None
        self.on_no_sinks: Callable[[], None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._pump())

    @property
    def sinks(self) -> frozenset[PacketSink]:
        return frozenset((*self._first, *self._sinks))

    def add_sink(self, name: str, max_packets: int = 30, *, first: bool = False) -> PacketSink:
        """A new consumer. `first`: it gets each packet before the others, so its sender wakes first."""
        sink = PacketSink(self, name, max_packets)
        only = not self._sinks and not self._first
        (self._first if first else self._sinks)[sink] = None
        if only and self.on_first_sink is not None:
            self.on_first_sink()  # starting capture yields a keyframe by itself
            self._keyframe_pending_since = time.monotonic()
        else:
            self.request_keyframe(f"new sink {name}")
        return sink

    def remove(self, sink: PacketSink) -> None:
        if sink in self._sinks or sink in self._first:
            self._sinks.pop(sink, None)
            self._first.pop(sink, None)
            sink._end()
            if not self._sinks and not self._first and self.on_no_sinks is not None:
                self.on_no_sinks()

    def request_keyframe(self, why: str) -> None:
        now = time.monotonic()
        pending = self._keyframe_pending_since
        if pending is not None and now - pending < KEYFRAME_RETRY_S:
            return  # one is already on its way: coalesce
        self._keyframe_pending_since = now
        self.keyframe_requests += 1
        log.debug("keyframe requested: %s", why)
        self._request_keyframe()

    async def _pump(self) -> None:
        try:
            while True:
                packet = await self._read()
                if packet is None:
                    break
                self.packets += 1
                self.last_packet = packet
                if packet.keyframe:
                    self.keyframes += 1
                    self._keyframe_pending_since = None
                for sink in tuple(self._first):
                    sink._offer(packet)
                for sink in tuple(self._sinks):
                    sink._offer(packet)
        finally:
            for sink in self.sinks:
                sink._end()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for sink in self.sinks:
            sink._end()
        self._sinks.clear()
        self._first.clear()
