"""Support for API tests: run the real playcast server (uvicorn on 127.0.0.1, a free port, in a thread with
its own event loop) over a real SQLite database; stock boto3 clients; AWS error assertions; ready-made resources.

No fixtures here (see conftest.py); everything started is stopped by ServerHandle.stop()."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config
from botocore.exceptions import ClientError

from playcast.api.player import LoginTokens
from playcast.config import Settings
from playcast.server import build_app

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


def session_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]
