"""Support for events tests: a real uvicorn server on a free loopback port running an EventsService, an
AppSync-style WebSocket client (the `websockets` package), and helpers to run `redis-server` and
`playcast server` processes. No fixtures here (see conftest.py); everything started is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from playcast.events.protocol import SUBPROTOCOL, encode_auth_subprotocol
from playcast.events.service import EventsService
from playcast.events.uvicorn_ws import FastFrameWebSocketProtocol
from tests.harness import await_until

REPO = Path(__file__).resolve().parents[2]
API_KEY = "da2-testapikey0000000000000000"
SECRET = b"s" * 32
TIMEOUT = 20.0  # generous: the CI machine is shared with browser tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def, override]
        yield


class _Endpoints:
    """The addresses of an events server on 127.0.0.1:`port`."""

    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def realtime_url(self) -> str:
        return f"ws://{self.host}/event/realtime"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}/event"


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, and SIGKILL when it has not exited `timeout` s later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Running(_Endpoints):
    service: EventsService
    port: int


@contextlib.asynccontextmanager
async def events_server(service: EventsService, *, fast: bool = True) -> AsyncIterator[Running]:
    """uvicorn on a pre-bound loopback socket in this event loop; `fast` = the transport fan-out path."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio: TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = Starlette(routes=service.routes())
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            ws=FastFrameWebSocketProtocol if fast else "auto", ws_max_size=2 * 1024 * 1024)
    server = _Server(config)
    await service.start()
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            if task.done():
                task.result()
            assert time.monotonic() < deadline, "server did not start"
            await asyncio.sleep(0.01)
        yield Running(service, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        await service.close()
        sock.close()


def api_key_headers(host: str, key: str = API_KEY) -> dict[str, str]:
    """What Amplify puts in the connect header and in each message's `authorization` for API_KEY auth."""
    return {"host": host, "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), "x-api-key": key}


def token_headers(host: str, token: str) -> dict[str, str]:
    return {"host": host, "Authorization": token}


@dataclass
class Client:
    """One AppSync Events WebSocket client."""

    ws: ClientConnection
    received: list[dict[str, Any]] = field(default_factory=list)  # everything read so far (ka excluded)
    inbox: list[dict[str, Any]] = field(default_factory=list)  # read but not consumed by wait_for yet
    kas: int = 0

    async def send(self, msg: dict[str, Any] | str) -> None:
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def _read(self, timeout: float) -> dict[str, Any]:
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            msg = json.loads(raw)
            if msg.get("type") == "ka":
                self.kas += 1
                continue
            self.received.append(msg)
            return msg

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The oldest message not consumed yet."""
        if self.inbox:
            return self.inbox.pop(0)
        return await self._read(timeout)

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The oldest message matching `pred`; others stay in the inbox, in order."""
        for i, msg in enumerate(self.inbox):
            if pred(msg):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = await self._read(max(0.01, deadline - time.monotonic()))
            if pred(msg):
                return msg
            self.inbox.append(msg)

    async def expect(self, type_: str, id: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        msg = await self.next(timeout)
        assert msg.get("type") == type_, f"expected {type_}, got {msg}"
        if id is not None:
            assert msg.get("id") == id, f"expected id {id}, got {msg}"
        return msg

    async def init(self) -> dict[str, Any]:
        await self.send({"type": "connection_init"})
        return await self.expect("connection_ack")

    async def subscribe(self, channel: str, sub_id: str | None = None, auth: dict[str, str] | None = None,
                        since: dict[str, Any] | None = None) -> dict[str, Any]:
        sub_id = sub_id or str(uuid.uuid4())
        msg: dict[str, Any] = {"type": "subscribe", "id": sub_id, "channel": channel}
        if auth is not None:
            msg["authorization"] = auth
        if since is not None:
            msg["since"] = since
        await self.send(msg)
        return await self.wait_for(lambda m: m.get("id") == sub_id and m["type"] in ("subscribe_success",
                                                                                      "subscribe_error", "error"))

    async def publish(self, channel: str, events: list[Any], auth: dict[str, str] | None = None,
                      raw: bool = False) -> dict[str, Any]:
        pub_id = str(uuid.uuid4())
        msg: dict[str, Any] = {"type": "publish", "id": pub_id, "channel": channel,
                               "events": events if raw else [json.dumps(e) for e in events]}
        if auth is not None:
            msg["authorization"] = auth
        await self.send(msg)
        return await self.wait_for(lambda m: m.get("id") == pub_id and m["type"] in ("publish_success",
                                                                                     "publish_error", "error"))

    async def data(self, sub_id: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.wait_for(lambda m: m["type"] == "data" and (sub_id is None or m["id"] == sub_id),
                                   timeout)

    async def close(self) -> None:
        await self.ws.close()


@contextlib.asynccontextmanager
async def client(url: str, headers: dict[str, str] | None, *, subprotocols: list[str] | None = None,
                 init: bool = True) -> AsyncIterator[Client]:
    protos = subprotocols if subprotocols is not None else [SUBPROTOCOL] + (
        [encode_auth_subprotocol(headers)] if headers is not None else [])
    async with connect(url, subprotocols=protos, max_size=4 * 1024 * 1024, open_timeout=TIMEOUT) as ws:
        c = Client(ws)
        if init:
            await c.init()
        yield c


async def eventually(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """Poll an (async or sync) check until it returns a truthy value."""
    return await await_until(check, timeout, what, interval=0.02)


# --------------------------------------------------------------------------------------- processes

@dataclass
class RedisServer:
    port: int
    dir: Path
    persistent: bool
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, TIMEOUT)
        self.process = None


@contextlib.contextmanager
def redis_server(persistent: bool = False) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (./dev install adds it)")
    tmp = Path(tempfile.mkdtemp(prefix="playcast-test-redis-"))
    server = RedisServer(free_port(), tmp, persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class PlaycastServer(_Endpoints):
    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    output: list[str]

    def credentials(self) -> dict[str, str]:
        return json.loads((self.data_dir / "credentials.json").read_text())


@contextlib.contextmanager
def playcast_server(env: dict[str, str], timeout_s: float = 60.0, data_dir: Path | None = None,
                    port: int | None = None) -> Iterator[PlaycastServer]:
    """`playcast server` on a free port with its own data dir (removed after unless given); SIGTERM after."""
    port = port or free_port()
    keep = data_dir is not None
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="playcast-test-events-"))
    cmd = [str(REPO / ".venv" / "bin" / "playcast"), "server", "--port", str(port), "--data-dir", str(data_dir),
           "--log-level", "info"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env}, cwd=REPO)
    output: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("PLAYCAST_READY "):
                ready.set()
            if os.environ.get("PLAYCAST_TEST_ECHO"):
                print(f"[server {port}] {line}", end="")

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.1):
            if proc.poll() is not None:
                raise RuntimeError("playcast server exited early:\n" + "".join(output)[-4000:])
            if time.monotonic() > deadline:
                raise RuntimeError("playcast server did not become ready:\n" + "".join(output)[-4000:])
        yield PlaycastServer(proc, port, data_dir, output)
    finally:
        stop_process(proc, TIMEOUT * 2)
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
