"""bus/replica_calls over a real redis-server on loopback: a call reaches the replica named and its reply comes
back; a replica nobody runs, a handler that fails and one that does not answer in time each fail the call at once
or on time, in words; Redis restarting is survived; alone (no Redis) a replica reaches only itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from playcast.bus.replica_calls import LocalReplicaCalls, RedisReplicaCalls, ReplicaUnreachable
from tests.events.support import RedisServer, redis_server
from tests.harness import await_until


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def pair(redis: RedisServer) -> AsyncIterator[tuple[RedisReplicaCalls, RedisReplicaCalls]]:
    a, b = RedisReplicaCalls(redis.url, "r-a"), RedisReplicaCalls(redis.url, "r-b")

    async def answer_a(payload: bytes) -> bytes:
        return b"a:" + payload

    async def answer_b(payload: bytes) -> bytes:
        if payload == b"fail":
            raise RuntimeError("no such thing")
        if payload == b"slow":
            await asyncio.sleep(30)
        return b"b:" + payload[::-1]

    await a.start(answer_a)
    await b.start(answer_b)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_call_reaches_the_replica_named_and_its_reply_comes_back(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    assert await a.call("r-b", b"hello", 5) == b"b:olleh"
    assert await b.call("r-a", b"x" * 100_000, 5) == b"a:" + b"x" * 100_000
    replies = await asyncio.gather(*(a.call("r-b", str(i).encode(), 5) for i in range(50)))
    assert replies == [b"b:" + str(i).encode()[::-1] for i in range(50)]  # each reply to its own call


async def test_calls_that_cannot_be_answered_fail_in_words(pair) -> None:  # type: ignore[no-untyped-def]
    a, _b = pair
    started = time.monotonic()
    with pytest.raises(ReplicaUnreachable, match="r-gone is not listening"):
        await a.call("r-gone", b"x", 5)
    assert time.monotonic() - started < 1, "a replica nobody runs is known at once"
    with pytest.raises(ReplicaUnreachable, match="RuntimeError: no such thing"):
        await a.call("r-b", b"fail", 5)
    with pytest.raises(TimeoutError):
        await a.call("r-b", b"slow", 0.5)
    assert await a.call("r-b", b"ok", 5) == b"b:ko"  # nothing stuck behind them


async def test_who_listens_is_known_at_once(redis: RedisServer, pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    assert await a.listening({"r-b", "r-gone"}) == {"r-b"}
    await b.close()  # as a killed replica's subscription goes with its connection
    assert await a.listening({"r-b", "r-a"}) == {"r-a"}
    redis.stop()
    assert await a.listening({"r-b"}) is None  # cannot tell: the caller falls back on the database
    redis.start()


async def test_a_redis_restart_is_survived(redis: RedisServer, pair) -> None:  # type: ignore[no-untyped-def]
    a, _b = pair
    redis.stop()
    with pytest.raises(ReplicaUnreachable):
        await a.call("r-b", b"x", 2)
    redis.start()

    async def works() -> bool:
        try:
            return await a.call("r-b", b"back", 2) == b"b:kcab"
        except (ReplicaUnreachable, TimeoutError):  # a reply sent before its caller listened again is lost
            return False

    await await_until(works, 20, "calls work again once Redis is back")


async def test_alone_a_replica_reaches_only_itself() -> None:
    calls = LocalReplicaCalls("r-1")

    async def echo(payload: bytes) -> bytes:
        return payload

    await calls.start(echo)
    assert await calls.call("r-1", b"me", 1) == b"me"
    with pytest.raises(ReplicaUnreachable, match="alone"):
        await calls.call("r-2", b"you", 1)
