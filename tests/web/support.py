"""Helpers for browser tests: an ASGI app under uvicorn in a thread on a free loopback port, Chromium settings.

Test support only: no fixtures here (conftest.py wraps these)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from playcast.web.routes import web_routes

PAGES = Path(__file__).resolve().parent / "pages"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WEBRTC_ARGS = ["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]


def in_private_netns() -> bool:
    """True inside `unshare -n`: this network namespace has no interface but loopback."""
    return {name for _, name in socket.if_nameindex()} <= {"lo"}


class ServerThread:
    """Runs an ASGI app under uvicorn in its own thread and event loop, on a pre-bound loopback socket."""

    def __init__(self, make_app: Callable[[], Awaitable[tuple[object, Callable[[], Awaitable[None]] | None]]],
                 host: str = "127.0.0.1") -> None:
        self._make_app = make_app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self.url = f"http://{self.host}:{self.port}"
        self._server: uvicorn.Server | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="test-web-server", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("web server did not start")
        if self._error is not None:
            raise RuntimeError("web server failed") from self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        cleanup = None
        try:
            app, cleanup = await self._make_app()
            config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="auto")
            self._server = uvicorn.Server(config)
            self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            task = asyncio.ensure_future(self._server.serve(sockets=[self.sock]))
            while not self._server.started and not task.done():
                await asyncio.sleep(0.01)
            self._started.set()
            await task
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._started.set()
        finally:
            if cleanup is not None:
                await cleanup()

    def call(self, coro: Awaitable[object], timeout: float = 30) -> object:
        """Run a coroutine on the server's loop from the test thread."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
        self.sock.close()
        assert not self._thread.is_alive(), "web server thread did not stop"


def static_app() -> Starlette:
    return Starlette(routes=[*web_routes(), Mount("/test", app=StaticFiles(directory=PAGES), name="test")])


def chromium_pids() -> set[int]:
    """Chromium processes that descend from this test process."""
    me = os.getpid()
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rparen = stat.rfind(")")
        names[int(entry)] = stat[stat.find("(") + 1:rparen]
        parents[int(entry)] = int(stat[rparen + 2:].split()[1])
    out = set()
    for pid in parents:
        p, seen = pid, 0
        while p in parents and p != me and seen < 64:
            p, seen = parents[p], seen + 1
        if p == me and "chrom" in names.get(pid, ""):
            out.add(pid)
    return out
