"""HTTP origin for LL-HLS: /hls/{broadcastId}/... playlists (blocking reload), init, parts, segments.

A lean ASGI app mounted under /hls: serves what the packagers in the registry hold (a host in this process), or
relays to the LL-HLS endpoint of the remote host that packages the broadcast, to whom control's access rule of the
broadcast lets view it (private: the viewer token); packaging is media/hls/'s, the rule control's."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, quote

import httpx
from starlette.routing import BaseRoute, Mount

from playcast.api.auth import parse_bearer
from playcast.control.broadcasts import AccessDenied, ViewerAccess
from playcast.hostproto.media_endpoint import (
    FORWARDED_QUERY,
    FRESHNESS_HEADER,
    HLS_PATH,
    KEY_HEADER,
    RETRY_HEADER,
    STATUS_OF,
    HostMediaEndpoint,
)
from playcast.media.hls import reader
from playcast.media.hls.packager import HlsPackager
from playcast.media.hls.playlist import with_query
from playcast.media.hls.reader import HlsReader, HlsUnavailable
from playcast.media.hls.registry import HlsRegistry

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
_CACHE_OF = {reader.LIVE_PLAYLIST: CACHE_LIVE_PLAYLIST, reader.BLOCKING_PLAYLIST: CACHE_BLOCKING_PLAYLIST,
             reader.MASTER: CACHE_MASTER, reader.ENDED: CACHE_ENDED, reader.MEDIA: CACHE_MEDIA}
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

    async def hls_source(self, broadcast_id: str) -> HostMediaEndpoint | None:
        """The remote host packaging a live broadcast (None: none, or packaged in this process)."""


class _Reply(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after


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
        self.counts = counts if counts is not None else HlsOriginCounts()
        self.reader = HlsReader(ready_timeout_s=ready_timeout_s, on_late=self._late)
        self.viewers = viewers
        self._tokenized: dict[tuple[bytes, str], bytes] = {}
        self._http: httpx.AsyncClient | None = None

    def _late(self, kind: str) -> None:
        self.counts.timeouts[kind] += 1

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
        viewers = self.viewers if self.viewers is not None else _plane_broadcasts(scope)
        source: HlsPackager | HostMediaEndpoint | None = self.registry.get(parts[1])
        if source is None:
            source = await viewers.hls_source(parts[1]) if parts[1] else None  # packaged on a remote host
            if source is None:
                raise _Reply(404, "no such broadcast (unknown or ended)")
        access = viewers.live_access(parts[1])
        if access is None or access.private:
            return await self._resolve_checked(scope, parts, query, source, viewers, access)
        return await self._answer(parts, query, source)

    async def _answer(self, parts: list[str], query: bytes, source: HlsPackager | HostMediaEndpoint,
                      params: dict[str, str] | None = None) -> tuple[bytes, bytes, bytes]:
        if isinstance(source, HostMediaEndpoint):
            return await self._relay(parts, query, source, params)
        return await self._serve(parts, query, source, params)

    async def _resolve_checked(self, scope, parts: list[str], query: bytes,  # type: ignore[no-untyped-def]
                               source: HlsPackager | HostMediaEndpoint, viewers: ViewerRules,
                               access: ViewerAccess | None) -> tuple[bytes, bytes, bytes]:
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
        body, content_type, cache = await self._answer(parts, query, source, params)
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
        try:
            file = await self.reader.read(packager, parts[2:], _params(query) if params is None else params)
        except HlsUnavailable as exc:
            raise _Reply(STATUS_OF[exc.kind], exc.message, exc.retry_after) from None
        return file.body, PLAYLIST_TYPE if file.playlist else MEDIA_TYPE, _CACHE_OF[file.freshness]

    async def _relay(self, parts: list[str], query: bytes, source: HostMediaEndpoint,
                     params: dict[str, str] | None = None) -> tuple[bytes, bytes, bytes]:
        """Ask the host that packages the broadcast (hostproto/media_endpoint.py): the host holds blocking reloads
        and preload-hinted parts itself, so they work whichever replica a viewer's request reaches."""
        params = _params(query) if params is None else params
        forwarded = {k: params[k] for k in FORWARDED_QUERY if k in params}
        path = "/".join(quote(p, safe="") for p in parts[1:])
        client = self._client()
        try:
            response = await client.get(f"{source.url}{HLS_PATH}/{path}", params=forwarded,
                                        headers={KEY_HEADER: f"Bearer {source.key}"})
        except httpx.HTTPError as exc:
            log.warning("LL-HLS relay to %s failed: %s", source.url, exc)
            raise _Reply(502, "the broadcast's host cannot be reached", retry_after=1) from None
        if response.status_code != 200:
            if response.status_code not in STATUS_OF.values():
                log.warning("LL-HLS relay to %s answered %d", source.url, response.status_code)
                raise _Reply(502, "the broadcast's host refused the request", retry_after=1)
            retry = response.headers.get(RETRY_HEADER)
            raise _Reply(response.status_code, response.text.strip() or "not available",
                         int(retry) if retry is not None and retry.isdigit() else None)
        freshness = response.headers.get(FRESHNESS_HEADER, "")
        if freshness not in _CACHE_OF:
            raise _Reply(502, "the broadcast's host gave an answer without its freshness", retry_after=1)
        playlist = response.headers.get("content-type", "").startswith(PLAYLIST_TYPE.decode())
        return response.content, PLAYLIST_TYPE if playlist else MEDIA_TYPE, _CACHE_OF[freshness]

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # a blocking reload waits up to 3 target durations on the host; parts are small
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=3.0),
                                           limits=httpx.Limits(max_connections=512, max_keepalive_connections=64))
        return self._http

    async def close(self) -> None:
        """Close the relay's connections to hosts (at server shutdown)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _params(query: bytes) -> dict[str, str]:
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}


def _plane_broadcasts(scope) -> ViewerRules:  # type: ignore[no-untyped-def]
    plane = getattr(scope["app"].state, "plane", None) if "app" in scope else None
    if plane is None:
        raise _Reply(503, "the server is starting", retry_after=1)
    return plane.broadcasts  # type: ignore[no-any-return]


def hls_routes(registry: HlsRegistry, counts: HlsOriginCounts | None = None,
               viewers: ViewerRules | None = None, origin: HlsOrigin | None = None) -> list[BaseRoute]:
    """`Mount("/hls", HlsOrigin)`: add to the server's routes; `counts` is where it counts (for metrics);
    `viewers` who may view what (default: the control plane's broadcasts, read from the app's state); pass
    `origin` to keep a handle on it (its close() ends the relay's connections)."""
    origin = origin or HlsOrigin(registry, counts=counts, viewers=viewers)
    return [Mount("/hls", app=origin, name="hls")]
