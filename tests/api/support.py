"""Support for API tests: run the real playcast server (uvicorn on 127.0.0.1, a free port, in a thread with
its own event loop) over a real SQLite database; stock boto3 clients; AWS error assertions; ready-made resources.

No fixtures here (see conftest.py); everything started is stopped by ServerHandle.stop()."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError

from playcast.config import Settings
from playcast.control.login_tokens import LoginTokens
from playcast.server import build_app
from tests.control.procpool import ProcessHostPool
from tests.control.support import child_pids

ACCESS_KEY = "PCAKTESTKEY000000001"
SECRET_KEY = "test-secret-key-0123456789"
ADMIN_TOKEN = "admin-token-for-tests"
REGION = "local"


class ThreadedServer:
    """uvicorn serving one app in a thread with its own event loop, on a pre-bound free 127.0.0.1 port.

    Subclasses hold what their app is built from; start() returns once the server accepts requests."""

    url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    server: uvicorn.Server

    def __init__(self, name: str, stop_timeout_s: float = 60) -> None:
        self.name = name
        self.stop_timeout_s = stop_timeout_s
        self._stopped = False

    def start(self, app: Callable[[int], AbstractAsyncContextManager[Any]], ready_timeout_s: float = 60,
              **config: Any) -> None:
        """Serve the ASGI app that `app(port)` yields (uvicorn.Config `config` on top of ours) until stop();
        `app` builds it and, on leaving, releases what it built."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        ready: Future[None] = Future()

        async def main() -> None:
            try:
                async with app(port) as asgi:
                    server = uvicorn.Server(uvicorn.Config(asgi, log_config=None, access_log=False, lifespan="on",
                                                           **config))
                    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
                    task = asyncio.ensure_future(server.serve(sockets=[sock]))
                    while not server.started:
                        if task.done():
                            task.result()
                            raise RuntimeError("server stopped during startup")
                        await asyncio.sleep(0.02)
                    self.url, self.loop, self.server = f"http://127.0.0.1:{port}", asyncio.get_running_loop(), server
                    ready.set_result(None)
                    await task
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise
            finally:
                sock.close()

        def runner() -> None:
            try:
                asyncio.run(main())
            except BaseException:  # noqa: BLE001 - reported through `ready` or the join check
                pass

        self.thread = threading.Thread(target=runner, name=f"{self.name}-{port}", daemon=True)
        self.thread.start()
        ready.result(ready_timeout_s)

    def run(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        """Run a coroutine on the server's event loop (e.g. to talk to the host pool) and return its result."""
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.should_exit = True
        self.thread.join(self.stop_timeout_s)
        assert not self.thread.is_alive(), "server thread did not stop"


def gls_client(url: str, **overrides: Any) -> Any:
    """A stock boto3 GameLift Streams client for the server at `url`, with the test credentials."""
    kwargs: dict[str, Any] = dict(endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                                  aws_secret_access_key=SECRET_KEY,
                                  config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60))
    kwargs.update(overrides)
    return boto3.client("gameliftstreams", **kwargs)


class ServerHandle(ThreadedServer):
    """build_app(...) over a host pool; the pool is closed when the server stops."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("playcast-server")
        self.settings = settings
        self.login_tokens = LoginTokens()
        self.pool: Any = None
        self.app: Any = None

    def client(self, **overrides: Any) -> Any:
        return gls_client(self.url, **overrides)


class AssembledServer(ThreadedServer):
    """The whole app `playcast up` serves (playcast.assemble: every route, the events service, a LocalHostPool with
    real sessions), in a thread; its credentials are the data dir's, as `playcast up` makes them."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("playcast-assembled", stop_timeout_s=90)
        self.settings = settings
        self.built: Any = None

    @property
    def app(self) -> Any:
        return self.built.app

    @property
    def admin_token(self) -> str:
        return self.built.credentials.admin_token

    def client(self, **overrides: Any) -> Any:
        return gls_client(self.url, **overrides)


def start_assembled(settings: Settings) -> AssembledServer:
    """Start playcast.assemble's app under uvicorn on a pre-bound loopback socket (as `playcast up` runs it, without
    the demo game); returns when it accepts requests. stop() stops its sessions too."""
    from playcast.assemble import assemble
    from playcast.events.uvicorn_ws import FastFrameWebSocketProtocol
    from playcast.events.wiring import WS_MAX_MESSAGE_BYTES

    handle = AssembledServer(settings)

    @contextlib.asynccontextmanager
    async def app(port: int) -> AsyncIterator[Any]:
        settings.port = port  # the socket is 127.0.0.1 whatever bind_host says (that is what the app believes)
        settings.public_url = settings.public_url or f"http://127.0.0.1:{port}"
        handle.built = await assemble(settings)
        try:
            yield handle.built.app
        finally:
            await handle.built.close()

    handle.start(app, ready_timeout_s=90, ws=FastFrameWebSocketProtocol, ws_max_size=WS_MAX_MESSAGE_BYTES)
    return handle


def start_server(settings: Settings, make_pool: Callable[[], Awaitable[Any]],
                 close_pool: Callable[[Any], Awaitable[None]], extra_routes: list[Any] | None = None) -> ServerHandle:
    """Start build_app(...) under uvicorn on a pre-bound loopback socket; returns when it accepts requests."""
    handle = ServerHandle(settings)

    @contextlib.asynccontextmanager
    async def app(port: int) -> AsyncIterator[Any]:
        settings.bind_host, settings.port = "127.0.0.1", port
        handle.pool = await make_pool()
        try:
            handle.app = build_app(settings, handle.pool, admin_token=ADMIN_TOKEN, login_tokens=handle.login_tokens,
                                   extra_routes=extra_routes or [])
            yield handle.app
        finally:
            await close_pool(handle.pool)

    handle.start(app)
    return handle


@contextlib.contextmanager
def procpool_server(settings: Settings, **pool: Any) -> Iterator[ServerHandle]:
    """start_server() over a ProcessHostPool(REGION, **pool) (real subprocesses); stopped on leaving, and an
    AssertionError if a child process is left behind."""
    before = child_pids()

    async def make() -> ProcessHostPool:
        return ProcessHostPool(REGION, **pool)

    async def close(host_pool: ProcessHostPool) -> None:
        await host_pool.close()

    handle = start_server(settings, make, close)
    try:
        yield handle
    finally:
        handle.stop()
        deadline = time.monotonic() + 5
        while child_pids() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (child_pids() - before), "child processes left behind"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    # app_source_roots: the run's temp dir, where each test (module-scoped servers included) makes its applications
    s = Settings(data_dir=tmp_path / "data", region=REGION, account_id="123456789012", access_key_id=ACCESS_KEY,
                 secret_access_key=SECRET_KEY, placement_timeout_s=10, location=None,
                 app_source_roots=[tmp_path.parent])
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


RUNTIME = {"Type": "UBUNTU", "Version": "22_04_LTS"}
FAST = {"Delay": 0.2, "MaxAttempts": 150}


@contextlib.contextmanager
def aws_error(code: str, status: int | None = None, match: str | None = None) -> Iterator[None]:
    """Expect a botocore ClientError with this error code (and HTTP status / message fragment)."""
    with pytest.raises(ClientError) as info:
        yield
    err = info.value.response["Error"]
    assert err["Code"] == code, info.value.response
    if status is not None:
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if match is not None:
        assert match in err["Message"], err["Message"]


def create_app(gls: Any, app_dir: Path, wait: bool = True, **extra: Any) -> dict[str, Any]:
    kwargs = dict(Description="game", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                  ApplicationSourceUri=str(app_dir))
    kwargs.update(extra)
    app = gls.create_application(**kwargs)
    if wait:
        gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=FAST)
    return app


def create_group(gls: Any, app_id: str | None = None, wait: bool = True, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(Description="group", StreamClass="gen4n_high")
    if app_id:
        kwargs["DefaultApplicationIdentifier"] = app_id
    kwargs.update(extra)
    group = gls.create_stream_group(**kwargs)
    if wait:
        gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig=FAST)
    return group


def start_active_session(gls: Any, group_id: str, app_id: str) -> str:
    """A session nobody connects to (NO_CLIENT_CONNECTION), once ACTIVE; returns its id."""
    s = gls.start_stream_session(Identifier=group_id, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION")
    sid = session_id(s["Arn"])
    gls.get_waiter("stream_session_active").wait(Identifier=group_id, StreamSessionIdentifier=sid, WaiterConfig=FAST)
    return sid


def wire_json(gls: Any, operation: str, **params: Any) -> dict[str, Any]:
    """Call `operation` with a stock boto3 client and return the response body's JSON as sent, members botocore
    does not model (playcast's StatusMessage) included."""
    import json

    seen: dict[str, Any] = {}

    def grab(http_response: Any, **_: Any) -> None:
        seen["body"] = json.loads(http_response.content or b"{}")

    event = f"after-call.gameliftstreams.{operation}"
    gls.meta.events.register(event, grab)
    try:
        getattr(gls, botocore_method(operation))(**params)
    finally:
        gls.meta.events.unregister(event, grab)
    return seen["body"]


def botocore_method(operation: str) -> str:
    """GetApplication -> get_application."""
    from botocore import xform_name

    return xform_name(operation)


def session_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]
