"""Runs the real playcast server with the events service and chat (uvicorn on a free loopback port, a real
LocalHostPool, SQLite) in a thread with its own event loop, and starts real stream sessions through boto3.

No fixtures here (see conftest.py); ChatServer.stop() stops everything it started."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import uvicorn
from botocore.config import Config

from playcast.api.player import LoginTokens
from playcast.config import Settings
from playcast.events.service import EventsService
from playcast.events.uvicorn_ws import FastFrameWebSocketProtocol
from playcast.events.wiring import WS_MAX_MESSAGE_BYTES, attach, create_events_service
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.server import build_app
from playcast.web.routes import web_routes

ACCESS_KEY = "PCAKTESTKEY000000001"
SECRET_KEY = "test-secret-key-0123456789"
ADMIN_TOKEN = "admin-token-for-chat-tests"
API_KEY = "da2-chat-tests-api-key"
REGION = "local"
FAST = {"Delay": 0.2, "MaxAttempts": 150}
DEMO_APP_DIR = Path(__file__).resolve().parents[2] / "src" / "playcast" / "demo" / "app"
SLEEPER = "#!/bin/sh\nexec sleep 1000\n"


@dataclass
class ChatServer:
    url: str
    settings: Settings
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    server: uvicorn.Server
    app: Any
    events: EventsService
    pool: LocalHostPool
    login_tokens: LoginTokens
    _stopped: bool = field(default=False)

    @property
    def realtime_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/event/realtime"

    @property
    def http_url(self) -> str:
        return self.url + "/event"

    @property
    def chat(self) -> Any:
        return self.app.state.chat

    def run(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout)

    def gls(self) -> Any:
        return boto3.client("gameliftstreams", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60))

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)

    def browser_user(self) -> httpx.Client:
        """An HTTP client holding a fresh login cookie (as a browser after /login?token=...)."""
        client = httpx.Client(base_url=self.url, timeout=30)
        r = client.get(f"/login?token={self.login_tokens.issue()}", follow_redirects=False)
        assert r.status_code == 303, r.text
        return client

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.should_exit = True
        self.thread.join(90)
        assert not self.thread.is_alive(), "server thread did not stop"


def start_chat_server(tmp_path: Path, slots: int = 1, env: dict[str, str] | None = None,
                      video: tuple[int, int, int] = (320, 240, 15)) -> ChatServer:
    import os

    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return _start(tmp_path, slots, video)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start(tmp_path: Path, slots: int, video: tuple[int, int, int]) -> ChatServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "data", region=REGION, account_id="123456789012",
                        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, placement_timeout_s=30,
                        location=None, bind_host="127.0.0.1", port=port)
    tokens = LoginTokens()
    ready: Future[ChatServer] = Future()
    holder: dict[str, Any] = {}

    async def main() -> None:
        try:
            width, height, fps = video
            pool = LocalHostPool(REGION, slots, RuntimeOptions(width=width, height=height, fps=fps,
                                                               bitrate_kbps=300 if width <= 320 else 2500,
                                                               encoder="libx264", app_message_port=None))
            holder["pool"] = pool
            await pool.start()
            events = create_events_service(API_KEY)  # as `playcast up` does
            app = build_app(settings, pool, admin_token=ADMIN_TOKEN, login_tokens=tokens,
                            extra_routes=[*events.routes(), *web_routes()])
            attach(app, events)  # the events service (and with it chat) runs inside the app's lifespan
            server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                                   ws=FastFrameWebSocketProtocol, ws_max_size=WS_MAX_MESSAGE_BYTES))
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.02)
            ready.set_result(ChatServer(f"http://127.0.0.1:{port}", settings, asyncio.get_running_loop(), thread,
                                        server, app, events, pool, tokens))
            await task
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            if "pool" in holder:
                await holder["pool"].close()
            sock.close()

    def runner() -> None:
        try:
            asyncio.run(main())
        except BaseException:  # noqa: BLE001 - reported through `ready` or the join check
            pass

    thread = threading.Thread(target=runner, name=f"playcast-chat-server-{port}", daemon=True)
    thread.start()
    return ready.result(90)


def wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def make_app_dir(path: Path, script: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    exe = path / "game.sh"
    exe.write_text(script)
    exe.chmod(0o755)
    return path


def start_session(srv: ChatServer, app_dir: Path, executable: str = "game.sh", user_id: str | None = None,
                  description: str = "game") -> tuple[str, str]:
    """A real stream session (no WebRTC client) of the given app; returns (stream group id, session id)."""
    gls = srv.gls()
    apps = [a for a in gls.list_applications()["Items"] if a.get("Description") == description]
    if apps:
        app_id = apps[0]["Id"]
    else:
        app_id = gls.create_application(Description=description, RuntimeEnvironment={"Type": "UBUNTU",
                                                                                     "Version": "22_04_LTS"},
                                        ExecutablePath=executable, ApplicationSourceUri=str(app_dir))["Id"]
        gls.get_waiter("application_ready").wait(Identifier=app_id, WaiterConfig=FAST)
    groups = [g for g in gls.list_stream_groups()["Items"] if g.get("Description") == description]
    if groups:
        group_id = groups[0]["Id"]
    else:
        group_id = gls.create_stream_group(Description=description, StreamClass="gen4n_high",
                                           DefaultApplicationIdentifier=app_id,
                                           LocationConfigurations=[{"LocationName": REGION}])["Id"]
        gls.get_waiter("stream_group_active").wait(Identifier=group_id, WaiterConfig=FAST)
    kwargs: dict[str, Any] = {"UserId": user_id} if user_id else {}
    s = gls.start_stream_session(Identifier=group_id, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", **kwargs)
    gls.get_waiter("stream_session_active").wait(Identifier=group_id, StreamSessionIdentifier=s["Arn"],
                                                 WaiterConfig=FAST)
    return group_id, s["Arn"].rsplit("/", 1)[-1]


def end_session(srv: ChatServer, group_id: str, session_id: str) -> None:
    gls = srv.gls()
    gls.terminate_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
    wait(lambda: gls.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)["Status"]
         == "TERMINATED", 30, "TERMINATED")
