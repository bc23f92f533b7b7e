"""Calls from one control-plane replica to another by replica id: a request of bytes, a reply of bytes, over
Redis pub/sub (each replica listens on a channel named after itself), or nowhere when there is one replica.

Carries bytes only: what a request means is the caller's and the handler's (control/fleet_peers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from playcast.json_input import parse_json

log = logging.getLogger(__name__)

CallHandler = Callable[[bytes], Awaitable[bytes]]
RECONNECT_S = 0.5
MAX_CALL_BYTES = 2 << 20


class ReplicaUnreachable(Exception):
    """No replica of that id listens now (it died, or never was), or the transport is down."""


class ReplicaCalls(ABC):
    """`call(replica, payload)` runs the other replica's handler on `payload` and returns its reply."""

    replica_id: str

    @abstractmethod
    async def start(self, handler: CallHandler) -> None:
        """Serve calls to this replica with `handler` (its exceptions become ReplicaUnreachable at the caller's:
        a handler answers errors in its own reply bytes). Returns once calls can arrive."""

    @abstractmethod
    async def call(self, replica_id: str, payload: bytes, timeout_s: float) -> bytes:
        """The reply of replica `replica_id`. Raises ReplicaUnreachable, TimeoutError."""

    @abstractmethod
    async def close(self) -> None: ...

    async def listening(self, replica_ids: set[str]) -> set[str] | None:
        """Which of `replica_ids` can be called now (a dead one is known at once, before its database heartbeat
        goes stale); None when this transport cannot tell."""
        return None

    @property
    def reachable(self) -> bool:
        """Whether calls can arrive here now (False while Redis is away)."""
        return True


class LocalReplicaCalls(ReplicaCalls):
    """One replica alone (no Redis): a call to itself runs its own handler; there is nobody else to call."""

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id
        self._handler: CallHandler | None = None

    async def start(self, handler: CallHandler) -> None:
        self._handler = handler

    async def call(self, replica_id: str, payload: bytes, timeout_s: float) -> bytes:
        if replica_id != self.replica_id or self._handler is None:
            raise ReplicaUnreachable(f"replica {replica_id} is not reachable (no Redis: this replica is alone)")
        return await asyncio.wait_for(self._handler(payload), timeout_s)

    async def close(self) -> None:
        self._handler = None


def _frame(header: dict[str, Any], payload: bytes) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload


def _unframe(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, sep, payload = data.partition(b"\n")
    if not sep:
        raise ValueError("no header")
    header = parse_json(head, max_bytes=4096)
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header, payload


class RedisReplicaCalls(ReplicaCalls):
    """Requests are PUBLISHed on `<prefix><replica id>` (a publish nobody receives is ReplicaUnreachable at
    once); replies come back on the caller's own channel, matched by call id."""

    def __init__(self, url: str, replica_id: str, *, prefix: str = "playcast:calls:") -> None:
        self.url = url
        self.replica_id = replica_id
        self.prefix = prefix
        self._redis: Any = None
        self._handler: CallHandler | None = None
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def _channel(self, replica_id: str) -> str:
        return self.prefix + replica_id

    @property
    def reachable(self) -> bool:
        return self._listening.is_set()

    async def start(self, handler: CallHandler) -> None:
        import redis.asyncio as aioredis

        self._handler = handler
        self._redis = aioredis.from_url(self.url)
        self._pump = asyncio.ensure_future(self._listen())
        with contextlib.suppress(TimeoutError):  # Redis down now: calls to us fail until it is back
            await asyncio.wait_for(self._listening.wait(), 5)

    async def _listen(self) -> None:
        while not self._closed:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel(self.replica_id))
                self._listening.set()
                while not self._closed:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        self._received(bytes(msg["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis went away: listen again when it is back
                self._listening.clear()
                log.warning("replica calls: Redis connection lost (%s); retrying", exc)
                await asyncio.sleep(RECONNECT_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _received(self, data: bytes) -> None:
        try:
            header, payload = _unframe(data)
        except ValueError as exc:
            log.warning("replica calls: a malformed frame was dropped: %s", exc)
            return
        call_id = str(header.get("id", ""))
        if header.get("kind") == "reply":
            future = self._waiting.get(call_id)
            if future is not None and not future.done():
                if header.get("failed"):
                    future.set_exception(ReplicaUnreachable(str(header.get("failed"))[:500]))
                else:
                    future.set_result(payload)
        elif header.get("kind") == "call" and isinstance(header.get("from"), str):
            task = asyncio.ensure_future(self._answer(call_id, header["from"], payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, call_id: str, caller: str, payload: bytes) -> None:
        header: dict[str, Any] = {"kind": "reply", "id": call_id}
        reply = b""
        try:
            assert self._handler is not None
            reply = await self._handler(payload)
        except Exception as exc:  # noqa: BLE001 - the caller hears that the call failed
            log.exception("replica calls: handler failed")
            header["failed"] = f"replica {self.replica_id} failed the call: {type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            await self._redis.publish(self._channel(caller), _frame(header, reply))

    async def listening(self, replica_ids: set[str]) -> set[str] | None:
        if self._redis is None or self._closed or not self._listening.is_set() or not replica_ids:
            return None
        ids = sorted(replica_ids)
        try:
            counts = await asyncio.wait_for(self._redis.pubsub_numsub(*(self._channel(r) for r in ids)), 2)
        except Exception:  # noqa: BLE001 - Redis away: the caller falls back on the database's heartbeats
            return None
        subscribed = {(c.decode() if isinstance(c, bytes) else str(c)): int(n) for c, n in counts}
        return {r for r in ids if subscribed.get(self._channel(r), 0) > 0}

    async def call(self, replica_id: str, payload: bytes, timeout_s: float) -> bytes:
        if self._redis is None or self._closed:
            raise ReplicaUnreachable("replica calls are not started")
        if len(payload) > MAX_CALL_BYTES:
            raise ValueError(f"a call is larger than {MAX_CALL_BYTES} bytes")
        call_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        try:
            if not self._listening.is_set():
                raise ReplicaUnreachable("Redis is not reachable from this replica")
            try:
                receivers = await self._redis.publish(
                    self._channel(replica_id), _frame({"kind": "call", "id": call_id, "from": self.replica_id},
                                                      payload))
            except Exception as exc:  # noqa: BLE001
                raise ReplicaUnreachable(f"Redis: {exc}") from None
            if not receivers:
                raise ReplicaUnreachable(f"replica {replica_id} is not listening")
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._waiting.pop(call_id, None)

    async def close(self) -> None:
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        for task in list(self._tasks):
            task.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ReplicaUnreachable("replica calls closed"))
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


def make_replica_calls(redis_url: str | None, replica_id: str) -> ReplicaCalls:
    return RedisReplicaCalls(redis_url, replica_id) if redis_url else LocalReplicaCalls(replica_id)
