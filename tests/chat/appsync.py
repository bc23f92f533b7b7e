"""A minimal AppSync Events WebSocket client for the chat tests (the `websockets` package, real sockets).

Speaks the protocol as Amplify does: subprotocol header auth with `host`, connection_init/ack, ids per operation."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import defaultdict
from typing import Any
from urllib.parse import urlparse

import websockets


def _header(auth: dict[str, str]) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode().rstrip("=")
    return "header-" + raw


class Refused(Exception):
    def __init__(self, msg: dict[str, Any]) -> None:
        errors = msg.get("errors") or [{}]
        super().__init__(f"{errors[0].get('errorType')}: {errors[0].get('message')}")
        self.msg = msg
        self.error_type = errors[0].get("errorType")
        self.message = errors[0].get("message", "")


class Client:
    """One connection. `events[channel]` collects the parsed events delivered on each subscribed channel."""

    def __init__(self, realtime_url: str, http_url: str, token: str | None = None, api_key: str | None = None):
        self.url = realtime_url
        host = urlparse(http_url).netloc
        self.auth = {"host": host, **({"Authorization": token} if token else {"x-api-key": api_key or ""})}
        self.ws: Any = None
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._subs: dict[str, str] = {}
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[tuple[int | None, str]] | None = None
        self.others: list[dict[str, Any]] = []

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> dict[str, Any]:
        self.ws = await websockets.connect(self.url, subprotocols=["aws-appsync-event-ws", _header(self.auth)],
                                           max_size=None, open_timeout=20)
        await self.ws.send(json.dumps({"type": "connection_init"}))
        ack = json.loads(await asyncio.wait_for(self.ws.recv(), 20))
        if ack.get("type") != "connection_ack":
            raise Refused(ack)
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        return ack

    async def _read(self) -> None:
        assert self.closed is not None
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                mid = msg.get("id")
                if msg.get("type") == "data" and mid in self._subs:
                    event = msg["event"]
                    self.events[self._subs[mid]].append(json.loads(event) if isinstance(event, str) else event)
                    self._changed.set()
                elif mid in self._waiters:
                    fut = self._waiters.pop(mid)
                    if not fut.done():
                        fut.set_result(msg)
                elif msg.get("type") != "ka":
                    self.others.append(msg)
                    self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result((self.ws.close_code, self.ws.close_reason or ""))
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self._changed.set()

    async def _request(self, msg: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[msg["id"]] = fut
        await self.ws.send(json.dumps(msg))
        return await asyncio.wait_for(fut, timeout)

    async def subscribe(self, channel: str) -> str:
        sid = str(uuid.uuid4())
        self._subs[sid] = channel
        reply = await self._request({"type": "subscribe", "id": sid, "channel": channel,
                                     "authorization": self.auth})
        if reply.get("type") != "subscribe_success":
            self._subs.pop(sid, None)
            raise Refused(reply)
        return sid

    async def unsubscribe(self, sid: str) -> None:
        reply = await self._request({"type": "unsubscribe", "id": sid})
        assert reply.get("type") == "unsubscribe_success", reply

    async def publish_raw(self, channel: str, payloads: list[Any]) -> dict[str, Any]:
        return await self._request({"type": "publish", "id": str(uuid.uuid4()), "channel": channel,
                                    "events": [json.dumps(p) for p in payloads], "authorization": self.auth})

    async def publish(self, channel: str, *payloads: Any) -> dict[str, Any]:
        """Publish; returns publish_success (with successful/failed lists) or raises Refused for an error reply."""
        reply = await self.publish_raw(channel, list(payloads))
        if reply.get("type") != "publish_success":
            raise Refused(reply)
        return reply

    async def publish_ok(self, channel: str, payload: Any) -> None:
        reply = await self.publish(channel, payload)
        assert not reply.get("failed"), reply

    async def wait_for(self, channel: str, pred: Any = None, timeout: float = 20) -> dict[str, Any]:
        """The first event on `channel` matching pred (already received or arriving within timeout)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for e in self.events[channel]:
                if pred is None or pred(e):
                    return e
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no matching event on {channel}; got {self.events[channel]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_closed(self, timeout: float = 20) -> tuple[int | None, str]:
        assert self.closed is not None
        return await asyncio.wait_for(asyncio.shield(self.closed), timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
