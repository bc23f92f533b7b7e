"""Runs the real playcast server with the events service and chat (uvicorn on a free loopback port, a real
LocalHostPool, SQLite) in a thread with its own event loop, and starts real stream sessions through boto3.

No fixtures here (see conftest.py); ChatServer.stop() stops everything it started."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from playcast.control.login_tokens import LoginTokens
from playcast.events.uvicorn_ws import FastFrameWebSocketProtocol
from playcast.events.wiring import WS_MAX_MESSAGE_BYTES, attach, create_events_service
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.server import build_app
from playcast.web.routes import web_routes
from tests.api.support import (
    FAST,
    REGION,
    ThreadedServer,
    create_app,
    create_group,
    gls_client,
    make_settings,
)
from tests.harness import wait_until

ADMIN_TOKEN = "admin-token-for-chat-tests"
API_KEY = "da2-chat-tests-api-key"
DEMO_APP_DIR = Path(__file__).resolve().parents[2] / "src" / "playcast" / "demo" / "app"
SLEEPER = "#!/bin/sh\nexec sleep 1000\n"


class ChatServer(ThreadedServer):
    """build_app(...) with the events service (and with it chat) over a real LocalHostPool."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("playcast-chat-server", stop_timeout_s=90)
        self.settings = make_settings(tmp_path, placement_timeout_s=30)
        self.login_tokens = LoginTokens()
        self.app: Any = None
        self.events: Any = None
        self.pool: Any = None

    @property
    def realtime_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/event/realtime"

    @property
    def http_url(self) -> str:
        return self.url + "/event"

    @property
    def chat(self) -> Any:
        return self.app.state.chat

    def gls(self) -> Any:
        return gls_client(self.url)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)

    def browser_user(self) -> httpx.Client:
        """An HTTP client holding a fresh login cookie (as a browser after /login?token=...)."""
        client = httpx.Client(base_url=self.url, timeout=30)
        r = client.get(f"/login?token={self.login_tokens.issue()}", follow_redirects=False)
        assert r.status_code == 303, r.text
        return client

    def player(self) -> tuple[httpx.Client, str]:
        """A logged-in browser user and their user id, for sessions of their own."""
        http = self.browser_user()
        return http, http.get("/v1/events/token").json()["userId"]


def start_chat_server(tmp_path: Path, slots: int = 1, env: dict[str, str] | None = None,
                      video: tuple[int, int, int] = (320, 240, 15)) -> ChatServer:
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
    srv = ChatServer(tmp_path)

    @contextlib.asynccontextmanager
    async def app(port: int) -> AsyncIterator[Any]:
        srv.settings.bind_host, srv.settings.port = "127.0.0.1", port
        width, height, fps = video
        srv.pool = LocalHostPool(REGION, slots, RuntimeOptions(width=width, height=height, fps=fps,
                                                               bitrate_kbps=300 if width <= 320 else 2500,
                                                               encoder="libx264", app_message_port=None))
        try:
            await srv.pool.start()
            srv.events = create_events_service(API_KEY)  # as `playcast up` does
            srv.app = build_app(srv.settings, srv.pool, admin_token=ADMIN_TOKEN, login_tokens=srv.login_tokens,
                                extra_routes=[*srv.events.routes(), *web_routes()])
            attach(srv.app, srv.events)  # the events service (and with it chat) runs inside the app's lifespan
            yield srv.app
        finally:
            await srv.pool.close()

    srv.start(app, ready_timeout_s=90, ws=FastFrameWebSocketProtocol, ws_max_size=WS_MAX_MESSAGE_BYTES)
    return srv


def make_app_dir(path: Path, script: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    exe = path / "game.sh"
    exe.write_text(script)
    exe.chmod(0o755)
    return path


def start_session(srv: ChatServer, app_dir: Path, executable: str = "game.sh", user_id: str | None = None,
                  description: str = "game") -> tuple[str, str]:
    """A real stream session (no WebRTC client) of the given app; returns (stream group id, session id).
    The app and stream group of that `description` are made on first use."""
    gls = srv.gls()
    apps = [a for a in gls.list_applications()["Items"] if a.get("Description") == description]
    app_id = apps[0]["Id"] if apps else create_app(gls, app_dir, Description=description,
                                                   ExecutablePath=executable)["Id"]
    groups = [g for g in gls.list_stream_groups()["Items"] if g.get("Description") == description]
    group_id = groups[0]["Id"] if groups else create_group(gls, app_id, Description=description,
                                                           LocationConfigurations=[{"LocationName": REGION}])["Id"]
    kwargs: dict[str, Any] = {"UserId": user_id} if user_id else {}
    s = gls.start_stream_session(Identifier=group_id, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", **kwargs)
    gls.get_waiter("stream_session_active").wait(Identifier=group_id, StreamSessionIdentifier=s["Arn"],
                                                 WaiterConfig=FAST)
    return group_id, s["Arn"].rsplit("/", 1)[-1]


@contextlib.contextmanager
def running_sessions(srv: ChatServer, app_dir: Path, n: int = 1, user_id: str | None = None) -> Iterator[list[str]]:
    """`n` sessions of the app (see start_session) for the block; their ids. All are ended after."""
    started: list[tuple[str, str]] = []
    try:
        for _ in range(n):
            started.append(start_session(srv, app_dir, user_id=user_id))
        yield [sid for _, sid in started]
    finally:
        for group, sid in started:
            end_session(srv, group, sid)


def end_session(srv: ChatServer, group_id: str, session_id: str) -> None:
    gls = srv.gls()
    gls.terminate_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
    wait_until(lambda: gls.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)["Status"]
               == "TERMINATED", 30, "TERMINATED")
