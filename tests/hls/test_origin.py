"""The HLS origin over real HTTP (uvicorn on loopback): blocking reloads, parts, errors, caching and CORS."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from hls_support import LiveFeed, SyntheticEncoder, Viewers, parse_playlist, serve
from starlette.applications import Starlette

from playcast.api.hls import HlsOrigin, hls_routes
from playcast.host.hls_endpoint import serve_hls_endpoint
from playcast.hostproto.media_endpoint import HostMediaEndpoint
from playcast.media.hls import HlsPackager, HlsRegistry
from playcast.web.routes import vendor_routes


class Live:
    def __init__(self, base: str, registry: HlsRegistry, packager: HlsPackager, feed: LiveFeed,
                 client: httpx.AsyncClient) -> None:
        self.base, self.registry, self.packager, self.feed, self.client = base, registry, packager, feed, client

    def url(self, rest: str) -> str:
        return f"{self.base}/hls/b1/{rest}"

    async def playlist(self, query: str = "") -> httpx.Response:
        return await self.client.get(self.url("source/index.m3u8" + query))


def _fed_packager() -> tuple[HlsRegistry, HlsPackager, LiveFeed]:
    """Broadcast "b1" in a registry, fed live synthetic video and a tone."""
    registry = HlsRegistry()
    enc = SyntheticEncoder(320, 240, fps=30)
    # short segments keep the blocking timeouts (3 x target duration) short
    packager = HlsPackager(30, segment_target_s=0.5, request_keyframe=enc.request_keyframe)
    registry.add("b1", packager)
    feed = LiveFeed(packager, enc)
    feed.start()
    return registry, packager, feed


@pytest.fixture(params=["here", "on a host"])
async def live(request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    """The packager in the origin's own registry (a host in the server's process), or in a remote host's registry
    behind that host's LL-HLS endpoint, which the origin relays to: every test here runs both ways."""
    registry, packager, feed = _fed_packager()
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "here":
            origin = HlsOrigin(registry, viewers=Viewers())
        else:
            endpoint = await serve_hls_endpoint(registry, bind="127.0.0.1", port=0, address="127.0.0.1")
            stack.push_async_callback(endpoint.close)
            origin = HlsOrigin(HlsRegistry(), viewers=Viewers(remote={"b1": HostMediaEndpoint(endpoint.url,
                                                                                             endpoint.key)}))
        stack.push_async_callback(origin.close)
        app = Starlette(routes=[*vendor_routes(), *hls_routes(registry, origin=origin)])
        base = await stack.enter_async_context(serve(app))
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        yield Live(base, registry, packager, feed, client)
    await feed.stop()
    await packager.close()


async def test_playlists_init_parts_segments_with_cache_and_cors(live: Live) -> None:
    master = await live.client.get(live.url("master.m3u8"))  # waits until the stream has started
    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert master.headers["access-control-allow-origin"] == "*"
    assert "source/index.m3u8" in master.text
    r = await live.playlist()
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    pl = parse_playlist(r.text)
    init = await live.client.get(live.url("source/init0.mp4"))
    assert init.status_code == 200 and init.content[4:8] == b"ftyp"
    assert init.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert init.headers["content-type"] == "video/mp4"
    part = await live.client.get(live.url("source/" + pl["parts"][0]["uri"]))
    assert part.status_code == 200 and part.content[4:8] == b"moof"
    assert part.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert part.headers["access-control-allow-origin"] == "*"
    # a complete segment is its parts back to back
    await live.client.get(live.url("source/index.m3u8?_HLS_msn=1"))
    seg1 = live.packager.source.segment(1)
    assert seg1 is not None and seg1.complete
    seg = await live.client.get(live.url("source/seg1.m4s"))
    assert seg.status_code == 200 and seg.content == b"".join(p.data for p in seg1.parts)
    head = await live.client.head(live.url("source/seg1.m4s"))
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(seg.content)
    pre = await live.client.options(live.url("source/index.m3u8"),
                                    headers={"Origin": "http://elsewhere.test", "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    assert "GET" in pre.headers["access-control-allow-methods"]
    post = await live.client.post(live.url("source/index.m3u8"))
    assert post.status_code == 405 and "GET" in post.headers["allow"]


async def test_blocking_reload_waits_for_the_next_part(live: Live) -> None:
    pl = parse_playlist((await live.playlist()).text)
    msn, index = live.packager.source.last_part
    nxt_msn, nxt_index = msn, index + 1
    hinted = pl["hint"]
    t = time.monotonic()
    r = await live.playlist(f"?_HLS_msn={nxt_msn}&_HLS_part={nxt_index}")
    waited = time.monotonic() - t
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=2"
    got = parse_playlist(r.text)
    coords = [(p["msn"], sum(1 for q in got["parts"][:i] if q["msn"] == p["msn"])) for i, p in
              enumerate(got["parts"])]
    # the answer holds the requested part (or, had that segment ended, the next segment's first part)
    assert (nxt_msn, nxt_index) in coords or (nxt_msn + 1, 0) in coords
    assert waited < 3 * 1 + 1
    # the preload hint names the next part: the request is held until it exists, then served
    assert hinted == f"part{int(pl['parts'][-1]['uri'][4:-4]) + 1}.m4s"
    t = time.monotonic()
    part = await live.client.get(live.url("source/" + hinted))
    assert part.status_code == 200 and part.content[4:8] == b"moof"
    assert time.monotonic() - t < 3
    numbers = [int(p["uri"][4:-4]) for p in parse_playlist((await live.playlist()).text)["parts"]]
    assert int(hinted[4:-4]) in numbers


async def test_blocking_reload_for_a_whole_segment(live: Live) -> None:
    await live.playlist()
    want = live.packager.source.live_msn  # the segment being written
    r = await live.playlist(f"?_HLS_msn={want}")
    assert r.status_code == 200
    assert f"seg{want}.m4s" in [uri for uri, _ in parse_playlist(r.text)["segments"]]


async def test_bad_requests_and_missing_things(live: Live) -> None:
    await live.playlist()
    live_msn = live.packager.source.live_msn
    cases = {
        f"?_HLS_msn={live_msn + 3}": 400,  # too far in the future
        f"?_HLS_msn={live_msn + 1}&_HLS_part=9": 400,  # beyond the advance part limit
        "?_HLS_part=1": 400,  # part without msn
        "?_HLS_msn=abc": 400,
        "?_HLS_msn=-1": 400,
        "?_HLS_msn=1&_HLS_skip=NO": 400,
    }
    for query, status in cases.items():
        r = await live.playlist(query)
        assert r.status_code == status, (query, r.status_code, r.text)
        assert r.headers["cache-control"] == "no-store"
    for path, status in {
        "/hls/nope/master.m3u8": 404,  # unknown broadcast
        "/hls/b1/other/index.m3u8": 404,  # unknown rendition
        "/hls/b1/source/init7.mp4": 404,
        "/hls/b1/source/whatever.txt": 404,
        "/hls/b1/source/partx.m4s": 400,
        "/hls/b1/source/part0.1.m4s": 400,
        f"/hls/b1/source/part{live.packager.source.next_part_number + 5}.m4s": 404,  # far ahead: not held
        f"/hls/b1/source/seg{live_msn + 5}.m4s": 404,
        "/hls/b1": 404,
        "/hls/b1/a/b/c": 404,
    }.items():
        r = await live.client.get(live.base + path)
        assert r.status_code == status, (path, r.status_code, r.text)
    # the broadcast is still fine after all that
    assert (await live.playlist()).status_code == 200


async def test_stalled_stream_blocking_request_times_out_with_503(live: Live) -> None:
    await live.playlist()
    await live.feed.stop()  # the encoder stalls: no more parts
    msn, index = live.packager.source.last_part
    t = time.monotonic()
    r = await live.playlist(f"?_HLS_msn={msn}&_HLS_part={index + 1}")
    took = time.monotonic() - t
    assert r.status_code == 503 and r.headers.get("retry-after") == "1"
    target = live.packager.config.target_duration
    assert 3 * target - 0.5 <= took <= 3 * target + 2


async def test_end_of_broadcast_releases_waiters_and_removal_gives_404(live: Live) -> None:
    await live.playlist()
    await live.feed.stop()
    msn, index = live.packager.source.last_part
    waiting = asyncio.ensure_future(live.playlist(f"?_HLS_msn={msn}&_HLS_part={index + 1}"))
    hint = asyncio.ensure_future(live.client.get(live.url(f"source/part{live.packager.source.next_part_number}.m4s")))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await live.packager.close()
    r = await asyncio.wait_for(waiting, 5)
    assert r.status_code == 200 and r.text.rstrip().endswith("#EXT-X-ENDLIST")
    assert r.headers["cache-control"] == "public, max-age=60"
    h = await asyncio.wait_for(hint, 5)
    assert h.status_code in (200, 404)  # the last frame may have closed that very part
    live.registry.remove("b1")
    gone = await live.playlist()
    assert gone.status_code == 404 and "unknown or ended" in gone.text


async def test_hlsjs_is_served_from_node_modules(live: Live) -> None:
    r = await live.client.get(live.base + "/static/vendor/hls.js")
    assert r.status_code == 200, "run ./dev install (npm ci) to get node_modules/hls.js"
    assert r.headers["content-type"].startswith("text/javascript")
    assert "Hls" in r.text[:200_000] and len(r.content) > 100_000


async def test_relay_to_a_host_that_refuses_or_is_gone_answers_502() -> None:
    registry, packager, feed = _fed_packager()
    endpoint = await serve_hls_endpoint(registry, bind="127.0.0.1", port=0, address="127.0.0.1")
    viewers = Viewers(remote={"b1": HostMediaEndpoint(endpoint.url, endpoint.key),
                              "b2": HostMediaEndpoint(endpoint.url, "not-the-key")})
    origin = HlsOrigin(HlsRegistry(), viewers=viewers)
    try:
        async with serve(Starlette(routes=hls_routes(HlsRegistry(), origin=origin))) as base, \
                httpx.AsyncClient(timeout=30) as client:
            assert (await client.get(f"{base}/hls/b1/master.m3u8")).status_code == 200
            # the host's endpoint serves the control plane only: a wrong key is refused there, and said here
            direct = await client.get(f"{endpoint.url}/hls/b1/master.m3u8")
            assert direct.status_code == 401
            wrong = await client.get(f"{base}/hls/b2/master.m3u8")
            assert wrong.status_code == 502 and "refused" in wrong.text
            assert wrong.headers["cache-control"] == "no-store"
            await endpoint.close()
            gone = await client.get(f"{base}/hls/b1/source/index.m3u8")
            assert gone.status_code == 502 and "cannot be reached" in gone.text and gone.headers["retry-after"] == "1"
    finally:
        await endpoint.close()
        await origin.close()
        await feed.stop()
        await packager.close()
