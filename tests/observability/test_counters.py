"""The plain counters metrics read, where the parts keep them: the fan-out's drops (which outlive the sink that
dropped) and the LL-HLS origin's requests and blocked-request timeouts, rendered by a per-app Metrics registry."""

from __future__ import annotations

import asyncio
import time

import httpx
from starlette.applications import Starlette

from playcast.api.hls import HlsOriginCounts, hls_routes
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.media.encoder import EncodedPacket
from playcast.media.fanout import PacketFanout
from playcast.media.hls import HlsPackager, HlsRegistry
from playcast.metrics import Metrics
from tests.hls.hls_support import LiveFeed, SyntheticEncoder, Viewers, serve
from tests.observability.scrape import parse
from tests.whip.support import wait_until


def _packet(index: int) -> EncodedPacket:
    return EncodedPacket(b"\x00\x00\x00\x01" + bytes(100), keyframe=index % 10 == 0, index=index,
                         captured_at=time.time())


async def test_fanout_drops_are_counted_and_outlive_the_sink() -> None:
    source: asyncio.Queue[EncodedPacket | None] = asyncio.Queue()
    requested: list[float] = []
    fanout = PacketFanout(source.get, lambda: requested.append(time.monotonic()))
    fanout.start()
    try:
        slow = fanout.add_sink("slow", max_packets=3)  # never read: falls behind at once
        fast = fanout.add_sink("fast", max_packets=100)
        for i in range(25):
            source.put_nowait(_packet(i))
        await wait_until(lambda: fanout.packets == 25, 5, "packets pumped")
        got = [await fast.get() for _ in range(25)]
        assert [p.index for p in got if p is not None] == list(range(25))
        assert fast.dropped == 0 and slow.dropped > 0
        assert fanout.dropped == slow.dropped and fanout.keyframes == 3
        dropped = fanout.dropped
        slow.close()
        assert fanout.dropped == dropped  # the sink is gone, its drops still count
        assert len(fanout.sinks) == 1
    finally:
        await fanout.stop()


async def test_hls_origin_counts_requests_by_kind_and_blocked_timeouts() -> None:
    registry = HlsRegistry()
    counts = HlsOriginCounts()
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, segment_target_s=0.5, request_keyframe=enc.request_keyframe)
    registry.add("b1", packager)
    feed = LiveFeed(packager, enc)
    feed.start()
    metrics = Metrics(LocalHostPool("local", 0, RuntimeOptions(), hls_registry=registry), lambda: None)
    metrics.watch(hls=counts)
    try:
        app = Starlette(routes=hls_routes(registry, counts, viewers=Viewers()))
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await http.get("/hls/b1/master.m3u8")).status_code == 200
            assert (await http.get("/hls/b1/source/index.m3u8")).status_code == 200
            assert (await http.head("/hls/b1/source/index.m3u8")).status_code == 200
            assert (await http.get("/hls/b1/source/init0.mp4")).status_code == 200
            assert (await http.get("/hls/b1/source/part0.m4s")).status_code == 200
            assert (await http.get("/hls/b1/source/seg999.m4s")).status_code == 404
            assert (await http.get("/hls/b1/source/nonsense.txt")).status_code == 404
            assert (await http.options("/hls/b1/source/index.m3u8")).status_code == 204  # not a GET: not counted
            assert counts.requests == {"master": 1, "playlist": 2, "init": 1, "part": 1, "segment": 1, "other": 1}
            assert counts.timeouts == {"playlist": 0, "part": 0, "segment": 0}

            await feed.stop()  # the stream stalls: a blocking reload for the next part gives up with 503
            msn, index = packager.source.last_part
            r = await http.get(f"/hls/b1/source/index.m3u8?_HLS_msn={msn}&_HLS_part={index + 1}")
            assert r.status_code == 503
            assert counts.timeouts == {"playlist": 1, "part": 0, "segment": 0}

        m = parse((await metrics.render()).decode())
        assert m.value("playcast_hls_requests_total", kind="playlist") == 3
        assert m.value("playcast_hls_requests_total", kind="master") == 1
        assert m.value("playcast_hls_blocked_timeouts_total", kind="playlist") == 1
        assert m.value("playcast_host_slots", location="local") == 0
        assert m.get("playcast_sessions", status="ACTIVE") is None  # no database in this app: left out
        assert m.get("playcast_events_connections") is None  # no events service watched
    finally:
        await feed.stop()
        await packager.close()
