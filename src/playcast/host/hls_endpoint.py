"""A remote host's own LL-HLS endpoint: the packagers of the sessions it runs, served over HTTP to the control
plane's origin (which checks viewers and relays), with blocking playlist reloads answered here, where parts appear.

Serves the control plane only (a random key it announced in its hello); viewers never reach it and no access rule
of a broadcast is checked here (that is the origin's)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl

import uvicorn

from playcast.hostproto.media_endpoint import FRESHNESS_HEADER, HLS_PATH, KEY_HEADER, RETRY_HEADER, STATUS_OF
from playcast.media.hls.reader import HlsReader, HlsUnavailable
from playcast.media.hls.registry import HlsRegistry

log = logging.getLogger(__name__)

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
MEDIA_TYPE = b"video/mp4"


class HlsEndpointApp:
    """ASGI: `GET /hls/{broadcast id}/...` with `Authorization: Bearer <key>` -> what the reader answers."""

    def __init__(self, registry: HlsRegistry, key: str) -> None:
        self.registry = registry
        self.key = key.encode()
        self.reader = HlsReader()

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        status, headers, body = await self._answer(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _answer(self, scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:  # type: ignore[no-untyped-def]
        text = [(b"content-type", b"text/plain; charset=utf-8")]
        authorization = next((v for k, v in scope["headers"] if k == KEY_HEADER.encode()), b"")
        if not hmac.compare_digest(authorization, b"Bearer " + self.key):
            return 401, text, b"this endpoint serves the control plane only\n"
        if scope["method"] not in ("GET", "HEAD"):
            return 405, text, b"method not allowed\n"
        path: str = scope["path"]
        if not path.startswith(HLS_PATH + "/"):
            return 404, text, b"not found\n"
        names = path[len(HLS_PATH) + 1:].split("/")
        packager = self.registry.get(names[0])
        if packager is None:
            return 404, text, b"no such broadcast on this host (unknown or ended)\n"
        query = scope["query_string"]
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}
        try:
            file = await self.reader.read(packager, names[1:], params)
        except HlsUnavailable as exc:
            if exc.retry_after is not None:
                text.append((RETRY_HEADER.encode(), str(exc.retry_after).encode()))
            return STATUS_OF[exc.kind], text, (exc.message + "\n").encode()
        return 200, [(b"content-type", PLAYLIST_TYPE if file.playlist else MEDIA_TYPE),
                     (FRESHNESS_HEADER.encode(), file.freshness.encode())], file.body


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal capture: the host process stops it itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HlsEndpoint:
    """The endpoint serving; `url` is what the host announces (`http://<address>:<port>`), `key` its bearer."""

    url: str
    key: str
    server: uvicorn.Server
    task: asyncio.Task[None]
    sock: socket.socket

    async def close(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        if not self.task.done():
            self.task.cancel()
        self.sock.close()


async def serve_hls_endpoint(registry: HlsRegistry, *, bind: str, port: int, address: str) -> HlsEndpoint:
    """Serve `registry` on `bind`:`port` (0: any free port); the URL announced names `address` (what the control
    plane reaches this host at). Raises OSError when the port cannot be bound (bound here, not by uvicorn, which
    would exit the process)."""
    key = secrets.token_urlsafe(32)
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    config = uvicorn.Config(HlsEndpointApp(registry, key), log_config=None, access_log=False, lifespan="off",
                            timeout_keep_alive=30)
    server = _QuietServer(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    bound = sock.getsockname()[1]
    host = f"[{address}]" if ":" in address else address
    log.info("LL-HLS endpoint for the control plane on %s:%d", bind, bound)
    return HlsEndpoint(f"http://{host}:{bound}", key, server, task, sock)
