"""Fixtures for API tests: the real playcast server (uvicorn on 127.0.0.1, a free port, in a thread with its own
event loop) over a real SQLite database, and stock boto3 clients pointed at it.

The host side is a ProcessHostPool (real subprocesses) or, for end-to-end tests, the real LocalHostPool."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "control"))

from conftest_helpers import child_pids, make_app_dir  # noqa: E402
from procpool import ProcessHostPool  # noqa: E402

from playcast.api.player import LoginTokens  # noqa: E402
from playcast.config import Settings  # noqa: E402
from playcast.server import build_app  # noqa: E402

ACCESS_KEY = "PCAKTESTKEY000000001"
SECRET_KEY = "test-secret-key-0123456789"
ADMIN_TOKEN = "admin-token-for-tests"
REGION = "local"


@dataclass
class ServerHandle:
    url: str
    settings: Settings
    login_tokens: LoginTokens
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    server: uvicorn.Server
    pool: Any = None
    app: Any = None
    _stopped: bool = field(default=False)

    def run(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        """Run a coroutine on the server's event loop (e.g. to talk to the host pool) and return its result."""
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def client(self, **overrides: Any) -> Any:
        kwargs: dict[str, Any] = dict(endpoint_url=self.url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                                      aws_secret_access_key=SECRET_KEY,
                                      config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60))
        kwargs.update(overrides)
        return boto3.client("gameliftstreams", **kwargs)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive(), "server thread did not stop"


def start_server(settings: Settings, make_pool: Callable[[], Awaitable[Any]],
                 close_pool: Callable[[Any], Awaitable[None]], extra_routes: list[Any] | None = None) -> ServerHandle:
    """Start build_app(...) under uvicorn on a pre-bound loopback socket; returns when it accepts requests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings.bind_host, settings.port = "127.0.0.1", port
    tokens = LoginTokens()
    ready: Future[ServerHandle] = Future()
    holder: dict[str, Any] = {}

    async def main() -> None:
        try:
            pool = await make_pool()
            app = build_app(settings, pool, admin_token=ADMIN_TOKEN, login_tokens=tokens,
                            extra_routes=extra_routes or [])
            config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
            server = uvicorn.Server(config)
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            holder.update(pool=pool, app=app, server=server)
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.02)
            ready.set_result(ServerHandle(f"http://127.0.0.1:{port}", settings, tokens, asyncio.get_running_loop(),
                                          thread, server, pool, app))
            await task
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            if "pool" in holder:
                await close_pool(holder["pool"])
            sock.close()

    def runner() -> None:
        try:
            asyncio.run(main())
        except BaseException:  # noqa: BLE001 - reported through `ready` or the join check
            pass

    thread = threading.Thread(target=runner, name=f"playcast-server-{port}", daemon=True)
    thread.start()
    return ready.result(60)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    s = Settings(data_dir=tmp_path / "data", region=REGION, account_id="123456789012", access_key_id=ACCESS_KEY,
                 secret_access_key=SECRET_KEY, placement_timeout_s=10, location=None)
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return make_app_dir(tmp_path / "game")


@pytest.fixture
def procserver(tmp_path: Path) -> Iterator[ServerHandle]:
    """The server over a ProcessHostPool with 2 slots in location 'local' (+ 'local-2' with one slot)."""
    before = child_pids()

    async def make() -> ProcessHostPool:
        return ProcessHostPool(REGION, slots=2, extra_locations=("local-2",))

    async def close(pool: ProcessHostPool) -> None:
        await pool.close()

    handle = start_server(make_settings(tmp_path), make, close)
    try:
        yield handle
    finally:
        handle.stop()
        deadline = time.monotonic() + 5
        while child_pids() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (child_pids() - before), "child processes left behind"


@pytest.fixture
def gls(procserver: ServerHandle) -> Any:
    return procserver.client()
