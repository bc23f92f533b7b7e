"""Packet fan-out: one encoder, many sinks, keyframe joins, slow sinks drop to the next keyframe."""

from __future__ import annotations

import asyncio

from playcast.media.encoder import EncodedPacket
from playcast.media.fanout import PacketFanout


class Source:
    """A real in-memory packet source driven by the test, with a real keyframe counter."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[EncodedPacket | None] = asyncio.Queue()
        self.keyframe_requests = 0
        self.index = 0

    async def read(self) -> EncodedPacket | None:
        return await self.queue.get()

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def push(self, key: bool = False) -> None:
        self.queue.put_nowait(EncodedPacket(b"\x00\x00\x00\x01" + bytes([self.index % 256]), key, self.index, 0.0))
        self.index += 1


async def drain(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_new_sink_starts_at_keyframe_and_requests_one() -> None:
    src = Source()
    fan = PacketFanout(src.read, src.request_keyframe)
    started: list[bool] = []
    fan.on_first_sink = lambda: started.append(True)
    fan.start()
    a = fan.add_sink("a")
    assert started == [True]  # first sink starts capture, which itself begins with an IDR
    src.push(key=False)
    src.push(key=True)
    src.push(key=False)
    await drain()
    got = [await a.get(), await a.get()]
    assert [p.keyframe for p in got if p] == [True, False]
    b = fan.add_sink("b")  # a late joiner asks for a keyframe
    assert src.keyframe_requests == 1
    fan.add_sink("c")  # coalesced with b's request
    assert src.keyframe_requests == 1
    src.push(key=False)
    src.push(key=True)
    await drain()
    first_b = await b.get()
    assert first_b is not None and first_b.keyframe
    await fan.stop()


async def test_slow_sink_drops_backlog_and_others_unaffected() -> None:
    src = Source()
    fan = PacketFanout(src.read, src.request_keyframe)
    fan.start()
    fast = fan.add_sink("fast", max_packets=100)
    slow = fan.add_sink("slow", max_packets=4)
    src.push(key=True)
    for _ in range(10):
        src.push()
    await drain(20)
    # The fast sink got everything, in order.
    fast_got = [(await fast.get()) for _ in range(11)]
    assert [p.index for p in fast_got if p] == list(range(11))
    # The slow one overflowed: backlog dropped, waiting for the next keyframe, which was requested.
    assert slow.waiting_for_keyframe
    assert slow.dropped >= 4
    requests_before = src.keyframe_requests
    assert requests_before >= 1
    src.push(key=True)
    await drain()
    p = await slow.get()
    assert p is not None and p.keyframe and p.index == 11
    await fan.stop()


async def test_last_sink_leaving_pauses_and_end_wakes_readers() -> None:
    src = Source()
    fan = PacketFanout(src.read, src.request_keyframe)
    paused: list[bool] = []
    fan.on_no_sinks = lambda: paused.append(True)
    fan.start()
    a = fan.add_sink("a")
    b = fan.add_sink("b")
    a.close()
    assert paused == []
    src.queue.put_nowait(None)  # the encoder ended
    await drain()
    assert await b.get() is None
    b.close()
    assert paused == [True]
    await fan.stop()


async def test_a_first_sink_gets_each_packet_before_the_others() -> None:
    """The player's sender wakes before any viewer's: its packets never wait behind an audience."""
    src = Source()
    fan = PacketFanout(src.read, src.request_keyframe)
    fan.start()
    woke: list[str] = []

    async def consume(name: str, sink) -> None:  # type: ignore[no-untyped-def]
        while (await sink.get()) is not None:
            woke.append(name)

    viewers = [fan.add_sink(f"viewer-{i}") for i in range(20)]
    player = fan.add_sink("player", first=True)
    tasks = [asyncio.ensure_future(consume(f"viewer-{i}", s)) for i, s in enumerate(viewers)]
    tasks.append(asyncio.ensure_future(consume("player", player)))
    await drain()
    for n in range(3):
        woke.clear()
        src.push(key=n == 0)
        await drain(10)
        assert len(woke) == 21 and woke[0] == "player", woke
    assert player in fan.sinks and len(fan.sinks) == 21
    player.close()
    assert player not in fan.sinks
    await fan.stop()
    await asyncio.gather(*tasks)
