"""Fuzz of LL-HLS request paths, queries and viewer tokens against the origin's ASGI interface (scope/receive/send,
so no URL normalisation in between), over real packagers fed with real x264 frames: one live, the same stream as a
private broadcast, one ended, one that never starts. Any method, path, query and Authorization -> one complete
answer: 200 (a playlist or fMP4 bytes; for the private one only with its token), 204 (preflight), 4xx, or the
documented 503 with Retry-After; never an exception, never another 5xx, never past its blocking bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from playcast.api.hls import HlsOrigin
from playcast.media.hls import HlsPackager, HlsRegistry
from tests.fuzz.support import AsgiReply, LoopThread, asgi_call, bounded, texts
from tests.harness import await_until
from tests.hls.hls_support import LiveFeed, SyntheticEncoder, Viewers

READY_TIMEOUT_S = 0.1  # how long a request waits for a stream to start before its 503
ANSWERS = {200, 204, 400, 401, 403, 404, 405, 503}
TOKEN = "viewer-token-0123456789"


@dataclass
class Origin:
    loop: LoopThread
    app: Starlette
    packagers: dict[str, HlsPackager]  # by broadcast id
    target_duration: int

    def call(self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> AsgiReply:
        # a blocking request waits at most 3 target durations (or READY_TIMEOUT_S); give it a little more
        return self.loop.run(asgi_call(self.app, method, path, query, headers), 3 * self.target_duration + 3)


async def _start() -> tuple[Starlette, LiveFeed, dict[str, HlsPackager]]:
    registry = HlsRegistry()
    enc = SyntheticEncoder(160, 120, fps=15, bitrate_kbps=200)
    live = HlsPackager(15, segment_target_s=0.5, request_keyframe=enc.request_keyframe)
    feed = LiveFeed(live, enc)
    feed.start()
    ended_enc = SyntheticEncoder(160, 120, fps=15, bitrate_kbps=200)
    ended = HlsPackager(15, audio=False, segment_target_s=0.5, request_keyframe=ended_enc.request_keyframe)
    for i in range(30):  # two seconds of frames, then the broadcast ends
        ended.push_video(ended_enc.encode(time.time() - 2 + i / 15))
    await ended.close()
    # "private": the live stream again, as a private broadcast; "empty": a broadcast that never sends a frame
    packagers = {"live": live, "private": live, "ended": ended, "empty": HlsPackager(15, segment_target_s=0.5)}
    for broadcast_id, packager in packagers.items():
        registry.add(broadcast_id, packager)
    await await_until(lambda: live.ready and live.source.live_msn >= 2, 30, "the live stream's first segments",
                      interval=0.05)
    origin = HlsOrigin(registry, ready_timeout_s=READY_TIMEOUT_S, viewers=Viewers(private={"private": TOKEN}))
    app = Starlette(routes=[Mount("/hls", app=origin)])
    return app, feed, packagers


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    loop = LoopThread("hls-fuzz")
    app, feed, packagers = loop.run(_start(), 60)
    try:
        yield Origin(loop, app, packagers, packagers["live"].config.target_duration)
    finally:
        async def stop() -> None:
            await feed.stop()
            for packager in set(packagers.values()):
                await packager.close()

        loop.run(stop(), 60)
        loop.close()


# Numbers as clients (and attackers) write them: near the stream's own (resolved when the request is made, against
# the packager the path names), small, huge, negative, not ASCII digits, not numbers at all.
odd_numbers = (st.integers(-5, 10**14).map(str)
               | st.sampled_from(["", "0x1", "1e3", "+1", " 1", "²", "١٢", "߁", "Ⅻ", "1.5", "01", "9" * 30])
               | texts(6, surrogates=False))
numbers = st.one_of(st.tuples(st.just("msn"), st.integers(-4, 3)), st.tuples(st.just("part"), st.integers(-12, 2)),
                    st.tuples(st.just("int"), st.integers(0, 3)), odd_numbers.map(lambda n: ("text", n)))
ids = st.sampled_from(["live", "private", "ended", "empty"])
odd_segments = st.sampled_from(["", ".", "..", "%2e%2e", "hls", "SOURCE", "master.m3u8"]) | texts(8, surrogates=False)


def likely(draw: st.DrawFn, percent: int) -> bool:
    """True `percent` times in 100, roughly (hypothesis draws small indices more often: the common case first)."""
    return draw(st.sampled_from([True] * percent + [False] * (100 - percent)))


def rarely(draw: st.DrawFn) -> bool:
    return draw(st.sampled_from([False] * 19 + [True]))


@st.composite
def hls_paths(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    """Path parts, mostly the origin's own shapes with one thing wrong at most (numbers still to resolve)."""
    shape = draw(st.sampled_from(["rendition"] * 8 + ["master", "anything"]))
    if shape == "anything":
        return tuple(draw(st.lists(odd_segments, max_size=6)))
    broadcast = draw(ids) if likely(draw, 85) else draw(odd_segments)
    if shape == "master":
        return (broadcast, "master.m3u8" if likely(draw, 70) else draw(odd_segments))
    rendition = "source" if likely(draw, 85) else draw(odd_segments)
    kind = draw(st.sampled_from(["index", "part", "seg", "init", "index", "part", "seg", "odd"]))
    if kind == "index":
        name: object = "index.m3u8"
    elif kind == "odd":
        name = draw(odd_segments)
    else:
        right = ".mp4" if kind == "init" else ".m4s"
        suffix = right if likely(draw, 90) else draw(st.sampled_from([".m4s", ".mp4", ".m3u8", "", ".M4S"]))
        name = (kind, draw(numbers), suffix)
    parts = (broadcast, rendition, name)
    return parts + (draw(odd_segments),) if rarely(draw) else parts


query_params = st.lists(st.one_of(
    st.tuples(st.just("_HLS_msn"), numbers),
    st.tuples(st.just("_HLS_part"), st.tuples(st.just("int"), st.integers(0, 12)) | numbers),
    st.tuples(st.just("_HLS_skip"), st.sampled_from(["YES", "v2", "NO", ""]).map(lambda v: ("text", v)) | numbers),
    st.tuples(st.just("token"), st.sampled_from([TOKEN, TOKEN + "x", "", TOKEN.upper()]).map(lambda t: ("text", t))),
    st.tuples(texts(8, surrogates=False), odd_numbers.map(lambda n: ("text", n))),
), max_size=4)
queries = (query_params.map(lambda q: ("params", q)) | query_params.map(lambda q: ("params", q))
           | st.binary(max_size=40).map(lambda b: ("raw", b)))
methods = st.sampled_from(["GET"] * 6 + ["HEAD", "HEAD", "OPTIONS", "POST", "DELETE"])
authorizations = st.sampled_from([f"Bearer {TOKEN}", None, f"bearer  {TOKEN} ", None, "Bearer nope", "Bearer",
                                  "Basic dXNlcjpwYXNz", f"Bearer {TOKEN}\xe9"]) | st.binary(max_size=24)


def number_text(token: tuple[str, object], packager: HlsPackager | None) -> str:
    kind, value = token
    if kind == "text" or packager is None:
        return str(value)
    seg = packager.source
    base = {"msn": seg.live_msn, "part": seg.next_part_number, "int": 0}[kind]
    return str(base + value)  # type: ignore[operator]


def render_path(origin: Origin, parts: tuple) -> str:  # type: ignore[type-arg]
    packager = origin.packagers.get(parts[0]) if parts and isinstance(parts[0], str) else None
    out = []
    for part in parts:
        if isinstance(part, tuple):
            prefix, token, suffix = part
            part = prefix + number_text(token, packager) + suffix
        out.append(part)
    return "/hls/" + "/".join(out)


def carries_token(authorization: bytes | None, query: bytes) -> bool:
    """Whether the request names the private broadcast's viewer token (as a Bearer header, or ?token=)."""
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip() == TOKEN:
            return True
    return TOKEN in [v for k, v in parse_qsl(query.decode("latin-1")) if k == "token"]


def render_query(origin: Origin, path: str, query: tuple[str, object]) -> bytes:
    kind, value = query
    if kind == "raw":
        return value  # type: ignore[return-value]
    packager = origin.packagers.get(path.split("/")[2]) if path.count("/") >= 2 else None
    pairs = [f"{quote(name, safe='')}={quote(number_text(token, packager), safe='')}"
             for name, token in value]  # type: ignore[attr-defined]
    return "&".join(pairs).encode()


@bounded(200)
@given(methods, hls_paths(), queries, authorizations)
def test_any_request_gets_one_documented_answer_in_bounded_time(origin: Origin, method: str, parts: tuple,  # type: ignore[type-arg]
                                                                 query: tuple[str, object],
                                                                 authorization: str | bytes | None) -> None:
    path = render_path(origin, parts)
    raw_query = render_query(origin, path, query)
    header = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    headers = [(b"authorization", header)] if header is not None else []
    started = time.monotonic()
    reply = origin.call(method, path, raw_query, headers)
    what = f"{method} {path!r}?{raw_query!r} {authorization!r} -> {reply.status} {reply.body[:200]!r}"
    event(f"{method} {reply.status}")
    assert reply.status in ANSWERS, what
    if reply.status == 503:
        assert reply.headers.get("retry-after") == "1", what
    if method != "HEAD":
        assert int(reply.headers["content-length"]) == len(reply.body), what
    if method == "HEAD":
        assert reply.body == b"", what
    elif reply.status == 200:
        if reply.headers["content-type"] == "application/vnd.apple.mpegurl":
            assert reply.body.startswith(b"#EXTM3U\n"), what
        else:
            assert reply.headers["content-type"] == "video/mp4" and reply.body[4:8] in (b"ftyp", b"moof", b"styp"), what
    if reply.status == 200 and path.startswith("/hls/private/"):
        assert carries_token(header, raw_query), what  # the private stream needs its token
    assert time.monotonic() - started < 3 * origin.target_duration + 2, what


@pytest.mark.parametrize("number", ["²", "١٢", "߁"], ids=["superscript", "arabic-indic", "nko"])
def test_non_ascii_digits_are_a_400(origin: Origin, number: str) -> None:
    """str.isdigit() is true for these and int() refuses some of them: that ValueError escaped the origin."""
    for path, query in ((f"/hls/live/source/seg{number}.m4s", b""), (f"/hls/live/source/part{number}.m4s", b""),
                        (f"/hls/live/source/init{number}.mp4", b""),
                        ("/hls/live/source/index.m3u8", f"_HLS_msn={quote(number)}".encode())):
        reply = origin.call("GET", path, query)
        assert reply.status == 400, (path, query, reply.status, reply.body)
