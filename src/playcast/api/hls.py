"""HTTP origin for LL-HLS: /hls/{broadcastId}/... playlists (blocking reload), init, parts, segments.

A lean ASGI app mounted under /hls: serves what the packagers in the registry hold, to whom control's access rule
of the broadcast lets view it (private: the viewer token); packaging is media/hls/'s, the rule control's."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, quote

from starlette.routing import BaseRoute, Mount

from playcast.api.auth import parse_bearer
from playcast.control.broadcasts import AccessDenied, ViewerAccess
from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.playlist import ADVANCE_PART_LIMIT, with_query
from playcast.media.hls.registry import HlsRegistry
from playcast.media.hls.segmenter import Segmenter

log = logging.getLogger(__name__)

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
MEDIA_TYPE = b"video/mp4"
CACHE_LIVE_PLAYLIST = b"no-cache"
CACHE_BLOCKING_PLAYLIST = b"public, max-age=2"  # _HLS_msn URLs name a state that only grows
CACHE_MASTER = b"public, max-age=2"
CACHE_ENDED = b"public, max-age=60"
CACHE_MEDIA = b"public, max-age=31536000, immutable"
CACHE_ERROR = b"no-store"
# A private broadcast's answer to a request authorized by its Authorization header: no shared cache may keep it
# (it would hand it to a tokenless request for the same URL). One authorized by ?token= stays cacheable: the token
# is part of the URL a cache keys on.
_PRIVATE = {cache: b"private, " + cache.removeprefix(b"public, ") for cache in (
    CACHE_LIVE_PLAYLIST, CACHE_BLOCKING_PLAYLIST, CACHE_MASTER, CACHE_ENDED, CACHE_MEDIA)}
_TOKENIZED_CACHE_SIZE = 256  # rewritten playlists kept: a few per rendition of each private broadcast
_CORS = [(b"access-control-allow-origin", b"*"),
         (b"access-control-expose-headers", b"age, content-length, date")]
_PREFLIGHT = _CORS + [(b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                      (b"access-control-allow-headers", b"authorization, range, cache-control, if-none-match, if-modified-since"),
                      (b"access-control-max-age", b"86400"), (b"content-length", b"0")]


REQUEST_KINDS = ("master", "playlist", "init", "part", "segment", "other")
BLOCKING_KINDS = ("playlist", "part", "segment")


@dataclass
class HlsOriginCounts:
    """What the origin answered, in plain ints that metrics read at scrape time: GET/HEAD requests by kind
    (whatever their status), and blocking requests (playlist reload, preload-hinted part, open segment) that
    gave up with 503 because what they waited for did not arrive in time."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REQUEST_KINDS, 0))
    timeouts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BLOCKING_KINDS, 0))


def request_kind(path: str) -> str:
    """master.m3u8 -> master, index.m3u8 -> playlist; init, part, segment by file name; else other."""
    name = path.rsplit("/", 1)[-1]
    if name == "master.m3u8":
        return "master"
    if name == "index.m3u8":
        return "playlist"
    if name.endswith(".m4s"):
        return "part" if name.startswith("part") else "segment" if name.startswith("seg") else "other"
    return "init" if name.startswith("init") and name.endswith(".mp4") else "other"


class ViewerRules(Protocol):
    """Control's answer to "may this caller view that broadcast" (control/broadcasts.py's Broadcasts)."""

    def live_access(self, broadcast_id: str) -> ViewerAccess | None:
        """From memory, for a broadcast live in this process; None otherwise."""

    async def viewer_access(self, broadcast_id: str) -> ViewerAccess | None:
        """Also for other broadcasts (a database read); None for an unknown one."""


class _Reply(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:  # "²".isdigit(), and int() refuses it
        raise _Reply(400, f"{name} must be a non-negative integer")
    return int(value)


class HlsOrigin:
    """ASGI app for paths below its mount point:

    `/{id}/master.m3u8`, `/{id}/{rendition}/index.m3u8[?_HLS_msn=N[&_HLS_part=M]][&_HLS_skip=YES|v2]`,
    `/{id}/{rendition}/init{v}.mp4`, `/{id}/{rendition}/seg{N}.m4s`, `/{id}/{rendition}/part{K}.m4s` (K counts
    parts over the whole stream, so the preload hint always names a part that will exist).

    A private broadcast needs its viewer token on every request, as `Authorization: Bearer` or `?token=`; with
    `?token=` every URI the playlists list carries it too. `viewers` says who may view what; by default the
    control plane's broadcasts (`app.state.plane.broadcasts`)."""

    def __init__(self, registry: HlsRegistry, *, ready_timeout_s: float = 6.0,
                 counts: HlsOriginCounts | None = None, viewers: ViewerRules | None = None) -> None:
        self.registry = registry
        self.ready_timeout_s = ready_timeout_s
        self.counts = counts if counts is not None else HlsOriginCounts()
        self.viewers = viewers
        self._tokenized: dict[tuple[bytes, str], bytes] = {}

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        method = scope["method"]
        head = method == "HEAD"
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            if method not in ("GET", "HEAD"):
                raise _Reply(405, "method not allowed")
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            self.counts.requests[request_kind(path)] += 1
            body, content_type, cache = await self._resolve(scope, path, scope["query_string"])
        except _Reply as reply:
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", CACHE_ERROR), *_CORS]
            if reply.status == 405:
                headers.append((b"allow", b"GET, HEAD, OPTIONS"))
            if reply.retry_after is not None:
                headers.append((b"retry-after", str(reply.retry_after).encode()))
            payload = (reply.message + "\n").encode()
            headers.append((b"content-length", str(len(payload)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else payload})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", content_type), (b"cache-control", cache),
            (b"content-length", str(len(body)).encode()), *_CORS]})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _resolve(self, scope, path: str, query: bytes) -> tuple[bytes, bytes, bytes]:  # type: ignore[no-untyped-def]
        parts = path.split("/")
        # "", id, file  |  "", id, rendition, file
        if len(parts) < 3 or parts[0] != "":
            raise _Reply(404, "not found")
        packager = self.registry.get(parts[1])
        if packager is None:
            raise _Reply(404, "no such broadcast (unknown or ended)")
        viewers = self.viewers if self.viewers is not None else _plane_broadcasts(scope)
        access = viewers.live_access(parts[1])
        if access is None or access.private:
            return await self._resolve_checked(scope, parts, query, packager, viewers, access)
        return await self._serve(parts, query, packager)

    async def _resolve_checked(self, scope, parts: list[str], query: bytes, packager: HlsPackager,  # type: ignore[no-untyped-def]
                               viewers: ViewerRules, access: ViewerAccess | None) -> tuple[bytes, bytes, bytes]:
        """A private broadcast, or one control does not hold in memory: check the token, then serve."""
        if access is None:
            access = await viewers.viewer_access(parts[1])
            if access is None:
                raise _Reply(404, "no such broadcast (unknown or ended)")
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        header_token = parse_bearer(authorization.decode("latin-1")) if authorization is not None else None
        params = _params(query)
        query_token = params.get("token") if header_token is None else None
        try:
            access.check(header_token or query_token)
        except AccessDenied as exc:
            raise _Reply(401 if exc.missing else 403, str(exc)) from None
        body, content_type, cache = await self._serve(parts, query, packager, params)
        if not access.private:
            return body, content_type, cache
        if header_token is not None:
            return body, content_type, _PRIVATE.get(cache, cache)
        if content_type is PLAYLIST_TYPE and query_token:
            body = self._with_token(body, query_token)
        return body, content_type, cache

    def _with_token(self, playlist: bytes, token: str) -> bytes:
        """with_query(playlist, token=...), kept per playlist (a packager hands out the same bytes until the
        playlist changes)."""
        key = (playlist, token)
        out = self._tokenized.get(key)
        if out is None:
            if len(self._tokenized) >= _TOKENIZED_CACHE_SIZE:
                del self._tokenized[next(iter(self._tokenized))]
            out = self._tokenized[key] = with_query(playlist, "token=" + quote(token, safe=""))
        return out

    async def _serve(self, parts: list[str], query: bytes, packager: HlsPackager,
                     params: dict[str, str] | None = None) -> tuple[bytes, bytes, bytes]:
        if len(parts) == 3:
            if parts[2] != "master.m3u8":
                raise _Reply(404, "not found")
            await self._wait_ready(packager, all_renditions=True)
            return packager.master(), PLAYLIST_TYPE, CACHE_ENDED if packager.closed else CACHE_MASTER
        if len(parts) != 4:
            raise _Reply(404, "not found")
        seg = packager.segmenter(parts[2])
        if seg is None:
            raise _Reply(404, "no such rendition")
        name = parts[3]
        if name == "index.m3u8":
            return await self._media_playlist(packager, seg, parts[2], _params(query) if params is None else params)
        if name.endswith(".m4s"):
            if name.startswith("part"):
                return await self._part(seg, name[4:-4]), MEDIA_TYPE, CACHE_MEDIA
            if name.startswith("seg"):
                return await self._segment(seg, name[3:-4]), MEDIA_TYPE, CACHE_MEDIA
        elif name.startswith("init") and name.endswith(".mp4"):
            version = _int(name[4:-4], "init version")
            await self._wait_ready(packager, seg)
            init = seg.inits.get(version if version is not None else -1)
            if init is None:
                raise _Reply(404, "no such init segment")
            return init, MEDIA_TYPE, CACHE_MEDIA
        raise _Reply(404, "not found")

    async def _wait_ready(self, packager: HlsPackager, seg: Segmenter | None = None,
                          all_renditions: bool = False) -> None:
        target = packager.source if seg is None else seg

        def ready() -> bool:
            return packager.ready if all_renditions else target.ready

        if not ready() and not await target.wait(ready, self.ready_timeout_s) and not ready():
            if all_renditions and packager.source.ready:
                return  # list what is there rather than fail
            raise _Reply(503, "the stream has not started yet", retry_after=1)

    async def _media_playlist(self, packager: HlsPackager, seg: Segmenter, name: str,
                              params: dict[str, str]) -> tuple[bytes, bytes, bytes]:
        msn = part = None
        skip = False
        if params:
            msn = _int(params.get("_HLS_msn"), "_HLS_msn")
            part = _int(params.get("_HLS_part"), "_HLS_part")
            skip_value = params.get("_HLS_skip")
            if skip_value is not None:
                if skip_value not in ("YES", "v2"):
                    raise _Reply(400, "_HLS_skip must be YES or v2")
                skip = True
            if part is not None and msn is None:
                raise _Reply(400, "_HLS_part requires _HLS_msn")
        await self._wait_ready(packager, seg)
        if msn is not None:
            live = seg.live_msn
            last_msn, last_index = seg.last_part
            if msn > live + 2:
                raise _Reply(400, f"_HLS_msn {msn} is too far in the future (live segment is {live})")
            if part is not None and msn >= last_msn and not seg.ended:
                ahead = part - last_index if msn == last_msn else part + msn - last_msn
                if ahead > ADVANCE_PART_LIMIT:
                    raise _Reply(400, f"_HLS_part {part} is too far ahead of the last part ({last_msn}.{last_index})")
            timeout = 3.0 * seg.config.target_duration
            if not await seg.wait(lambda: seg.has(msn, part), timeout) and not seg.ended:
                self.counts.timeouts["playlist"] += 1
                raise _Reply(503, "the requested segment or part did not arrive in time", retry_after=1)
            cache = CACHE_BLOCKING_PLAYLIST
        else:
            cache = CACHE_LIVE_PLAYLIST
        if seg.ended:
            cache = CACHE_ENDED
        return packager.media(name, skip), PLAYLIST_TYPE, cache

    async def _part(self, seg: Segmenter, ref: str) -> bytes:
        number = _int(ref, "part number")
        assert number is not None
        part = seg.part(number)
        if part is None:
            if number != seg.next_part_number or seg.ended:
                raise _Reply(404, "no such part")
            # the preload-hinted part: hold the request until it is published
            await seg.wait(lambda: seg.part(number) is not None, 3.0 * seg.config.target_duration)
            part = seg.part(number)
            if part is None:
                self.counts.timeouts["part"] += 1
                raise _Reply(503, "the part did not arrive in time", retry_after=1)
        return part.data

    async def _segment(self, seg: Segmenter, ref: str) -> bytes:
        msn = _int(ref, "segment sequence")
        assert msn is not None
        s = seg.segment(msn)
        if s is None:
            raise _Reply(404, "no such segment")
        if not s.complete:
            await seg.wait(lambda: s.complete or s not in seg.segments, 3.0 * seg.config.target_duration)
            if not s.complete or not s.parts:
                self.counts.timeouts["segment"] += 1
                raise _Reply(503, "the segment did not complete in time", retry_after=1)
        return s.data


def _params(query: bytes) -> dict[str, str]:
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}


def _plane_broadcasts(scope) -> ViewerRules:  # type: ignore[no-untyped-def]
    plane = getattr(scope["app"].state, "plane", None) if "app" in scope else None
    if plane is None:
        raise _Reply(503, "the server is starting", retry_after=1)
    return plane.broadcasts  # type: ignore[no-any-return]


def hls_routes(registry: HlsRegistry, counts: HlsOriginCounts | None = None,
               viewers: ViewerRules | None = None) -> list[BaseRoute]:
    """`Mount("/hls", HlsOrigin)`: add to the server's routes; `counts` is where it counts (for metrics);
    `viewers` who may view what (default: the control plane's broadcasts, read from the app's state)."""
    return [Mount("/hls", app=HlsOrigin(registry, counts=counts, viewers=viewers), name="hls")]
