"""The HLS origin's access rule over real HTTP: a private broadcast needs its viewer token on every request, a
tokenized URL's playlists carry the token into every URI they list, a public broadcast is served as before."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from hls_support import LiveFeed, SyntheticEncoder, Viewers, parse_playlist, serve
from starlette.applications import Starlette

from playcast.api.hls import hls_routes
from playcast.media.hls import HlsPackager, HlsRegistry, with_query

TOKEN = "v1ewer-T0ken_abc"
MEDIA = "public, max-age=31536000, immutable"


@dataclass
class Origin:
    base: str
    packager: HlsPackager
    feed: LiveFeed
    viewers: Viewers
    client: httpx.AsyncClient

    def url(self, broadcast: str, rest: str) -> str:
        return f"{self.base}/hls/{broadcast}/{rest}"


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    """One live packager listed three times: public `pub`, private `priv`, and private `cold` (not in memory)."""
    registry = HlsRegistry()
    enc = SyntheticEncoder(320, 240, fps=30)
    packager = HlsPackager(30, segment_target_s=0.5, request_keyframe=enc.request_keyframe)
    for name in ("pub", "priv", "cold"):
        registry.add(name, packager)
    viewers = Viewers(private={"priv": TOKEN, "cold": TOKEN}, stored={"cold"})
    feed = LiveFeed(packager, enc)
    feed.start()
    app = Starlette(routes=hls_routes(registry, viewers=viewers))
    async with serve(app) as base, httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{base}/hls/pub/source/index.m3u8?_HLS_msn=2")).status_code == 200
        yield Origin(base, packager, feed, viewers, client)
    await feed.stop()
    await packager.close()


def _uris(playlist: str) -> list[str]:
    """Every URI a playlist lists: URI lines and URI="..." attributes."""
    lines = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    return lines + re.findall(r'URI="([^"]*)"', playlist)


def _every_kind(o: Origin) -> list[str]:
    src = o.packager.source
    msn, index = src.last_part
    part = src.segment(msn).parts[index].number  # type: ignore[union-attr]
    return ["master.m3u8", "source/index.m3u8", f"source/index.m3u8?_HLS_msn={msn}&_HLS_part={index}",
            "source/init0.mp4", f"source/part{part}.m4s", f"source/seg{src.live_msn - 1}.m4s"]


async def test_private_broadcast_without_or_with_a_wrong_token_gets_401_or_403(origin: Origin) -> None:
    for rest in _every_kind(origin):
        sep = "&" if "?" in rest else "?"
        for broadcast in ("priv", "cold"):
            url = origin.url(broadcast, rest)
            r = await origin.client.get(url)
            assert r.status_code == 401, (url, r.status_code)
            assert "this broadcast is private" in r.text and r.headers["cache-control"] == "no-store"
            assert (await origin.client.head(url)).status_code == 401
            assert (await origin.client.get(url + f"{sep}token=")).status_code == 401
            wrong = await origin.client.get(url + f"{sep}token=nope")
            assert wrong.status_code == 403 and "wrong viewer token" in wrong.text
            assert (await origin.client.get(url, headers={"Authorization": "Bearer nope"})).status_code == 403
            # a wrong header is not rescued by a right query token (the header is what is checked)
            assert (await origin.client.get(url + f"{sep}token={TOKEN}",
                                            headers={"Authorization": "Bearer nope"})).status_code == 403
            assert (await origin.client.get(url + f"{sep}token={TOKEN}")).status_code == 200
            assert (await origin.client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        assert (await origin.client.get(origin.url("pub", rest))).status_code == 200
    assert origin.viewers.stored_reads > 0  # `cold` was asked of control each time, not guessed
    # an unknown broadcast is still 404, token or not
    assert (await origin.client.get(origin.url("nope", f"master.m3u8?token={TOKEN}"))).status_code == 404


async def test_tokenized_playlists_carry_the_token_into_every_uri(origin: Origin) -> None:
    master = await origin.client.get(origin.url("priv", f"master.m3u8?token={TOKEN}"))
    assert master.status_code == 200 and master.headers["cache-control"] == "public, max-age=2"
    media_uris = _uris(master.text)
    assert media_uris == [f"source/index.m3u8?token={TOKEN}"]
    media_url = origin.url("priv", media_uris[0])
    media = await origin.client.get(media_url)
    assert media.status_code == 200 and media.headers["cache-control"] == "no-cache"
    pl = parse_playlist(media.text)
    uris = _uris(media.text)
    assert pl["hint"] and pl["parts"] and pl["segments"] and any(u.startswith("init0.mp4") for u in uris)
    assert all(u.endswith(f"?token={TOKEN}") for u in uris), uris
    # every one of them works as it is listed (the preload hint is held until its part exists)
    answers = await asyncio.gather(*(origin.client.get(origin.url("priv", "source/" + u)) for u in set(uris)))
    for uri, r in zip(set(uris), answers, strict=True):
        assert r.status_code == 200, (uri, r.status_code, r.text)
        assert r.headers["content-type"] == "video/mp4" and r.headers["cache-control"] == MEDIA
    # blocking reloads, as players build them from the tokenized playlist URL
    msn, index = origin.packager.source.last_part
    for query in (f"&_HLS_msn={msn}&_HLS_part={index + 1}", f"&_HLS_msn={msn + 1}", "&_HLS_skip=YES",
                  f"&_HLS_msn={msn}&_HLS_part={index}&_HLS_skip=v2"):
        r = await origin.client.get(media_url + query)
        assert r.status_code == 200, (query, r.text)
        assert all(u.endswith(f"?token={TOKEN}") for u in _uris(r.text)), (query, r.text)
    # the token first, or after the blocking parameters: either way
    r = await origin.client.get(origin.url("priv", f"source/index.m3u8?_HLS_msn={msn}&token={TOKEN}"))
    assert r.status_code == 200 and f"?token={TOKEN}" in r.text


async def test_header_authorized_answers_are_private_to_caches(origin: Origin) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    master = await origin.client.get(origin.url("priv", "master.m3u8"), headers=auth)
    assert master.headers["cache-control"] == "private, max-age=2"
    assert "token" not in master.text  # the player sends the header on every request: nothing to carry
    media = await origin.client.get(origin.url("priv", "source/index.m3u8"), headers=auth)
    assert media.headers["cache-control"] == "private, no-cache" and "token" not in media.text
    msn = origin.packager.source.live_msn
    blocking = await origin.client.get(origin.url("priv", f"source/index.m3u8?_HLS_msn={msn}"), headers=auth)
    assert blocking.headers["cache-control"] == "private, max-age=2"
    init = await origin.client.get(origin.url("priv", "source/init0.mp4"), headers=auth)
    assert init.headers["cache-control"] == "private, max-age=31536000, immutable"
    pre = await origin.client.options(origin.url("priv", "master.m3u8"), headers={
        "Origin": "http://elsewhere.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 204 and "authorization" in pre.headers["access-control-allow-headers"]


async def test_public_broadcast_is_served_as_before(origin: Origin) -> None:
    await origin.feed.stop()  # hold the playlists still, so bytes can be compared
    for rest, body, cache in (("master.m3u8", origin.packager.master(), "public, max-age=2"),
                              ("source/index.m3u8", origin.packager.media("source"), "no-cache")):
        for query in ("", f"?token={TOKEN}", "?token=anything"):
            r = await origin.client.get(origin.url("pub", rest + query))
            assert r.status_code == 200 and r.content == body and r.headers["cache-control"] == cache, (rest, query)
        private = await origin.client.get(origin.url("priv", f"{rest}?token={TOKEN}"))
        assert private.content == with_query(body, f"token={TOKEN}")
    init = await origin.client.get(origin.url("pub", "source/init0.mp4"))
    assert init.headers["cache-control"] == MEDIA
