"""Scale-out over a real redis-server (started on a free loopback port, stopped after): two `playcast server`
processes deliver each other's publishes and share history; after a Redis restart they reconnect by themselves
and clients get what they missed or an explicit gap. In-process replicas check cluster-wide operations."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from playcast.bus.redis import RedisBus
from playcast.events.auth import EventsAuth
from playcast.events.service import EventsService
from tests.events.conftest import make_service
from tests.events.support import (
    TIMEOUT,
    PlaycastServer,
    api_key_headers,
    client,
    events_server,
    eventually,
    playcast_server,
    redis_server,
    token_headers,
)

KEY = "da2-sharedreplicakey0000000000"
SECRET_HEX = "5e" * 32


def _env(redis_url: str) -> dict[str, str]:
    return {"PLAYCAST_REDIS_URL": redis_url, "PLAYCAST_EVENTS_API_KEY": KEY, "PLAYCAST_EVENTS_SECRET": SECRET_HEX,
            "PLAYCAST_EVENTS_KEEPALIVE_S": "5"}


async def _http_publish(server: PlaycastServer, channel: str, events: list[object]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.post(server.http_url, headers={"x-api-key": KEY},
                               json={"channel": channel, "events": [json.dumps(e) for e in events]})


async def _publish_when_back(server: PlaycastServer, channel: str, events: list[object]) -> httpx.Response:
    """Publish through `server` once its Redis connection works again (503 until then)."""
    async def attempt() -> httpx.Response | None:
        resp = await _http_publish(server, channel, events)
        if resp.status_code == 200:
            return resp
        assert resp.status_code == 503, resp.text
        assert resp.json()["errors"][0]["errorType"] == "ServiceUnavailableException"
        return None

    return await eventually(attempt, timeout=60, what="publish accepted after the Redis restart")


async def test_two_server_processes_share_events_history_and_tokens() -> None:
    token = EventsAuth(KEY, bytes.fromhex(SECRET_HEX)).issue_user_token("u1", rights={"*": {"sub": True}})
    with redis_server() as redis, playcast_server(_env(redis.url)) as a, playcast_server(_env(redis.url)) as b:
        started = (redis, a, b)
        creds = a.credentials()
        assert creds["events_api_key"] == KEY
        assert creds["events_http_url"] == a.http_url and creds["events_realtime_url"] == a.realtime_url
        async with client(a.realtime_url, api_key_headers(a.host, KEY)) as on_a, \
                client(b.realtime_url, token_headers(b.host, token)) as on_b:
            ok_a = await on_a.subscribe("/default/room", "a")
            # B accepted a connection signed with the shared secret; `default` itself takes API keys only
            denied = await on_b.subscribe("/default/*", "b")
            assert denied["type"] == "subscribe_error" and "USER_TOKEN may not" in denied["errors"][0]["message"]
            ok_b = await on_b.subscribe("/default/*", "b", auth=api_key_headers(b.host, KEY))
            assert ok_b["type"] == "subscribe_success"
            # WebSocket publish on A, HTTP publish on B: both reach both
            assert (await on_a.publish("/default/room", ["from-a"]))["type"] == "publish_success"
            assert (await _http_publish(b, "/default/room", ["from-b"])).status_code == 200
            got_a = [await on_a.data("a") for _ in range(2)]
            got_b = [await on_b.data("b") for _ in range(2)]
            for got in (got_a, got_b):
                assert [json.loads(m["event"]) for m in got] == ["from-a", "from-b"]
                assert [m["offset"] for m in got] == [1, 2] and {m["epoch"] for m in got} == {ok_a["epoch"]}

        # history is shared: missed on A, recovered through B
        async with client(b.realtime_url, api_key_headers(b.host, KEY)) as again:
            await _http_publish(a, "/default/room", ["missed-3"])
            ok = await again.subscribe("/default/room", "s", since={"epoch": ok_a["epoch"], "offset": 2})
            assert ok["recovered"] is True and ok["offset"] == 3
            assert (await again.data("s"))["event"] == '"missed-3"'
    # nothing left behind: both servers and redis-server exited, their directories are gone
    redis_, a_, b_ = started
    assert redis_.process is None and not redis_.dir.exists()
    for server in (a_, b_):
        assert server.process.poll() is not None and not server.data_dir.exists()


@pytest.mark.parametrize("persistent", [True, False], ids=["redis-keeps-data", "redis-loses-data"])
async def test_redis_restart_servers_reconnect_and_clients_recover_or_see_a_gap(persistent: bool) -> None:
    with redis_server(persistent=persistent) as redis, playcast_server(_env(redis.url)) as a, \
            playcast_server(_env(redis.url)) as b:
        async with client(a.realtime_url, api_key_headers(a.host, KEY)) as sub:
            ok = await sub.subscribe("/default/game", "s")
            assert (await _http_publish(b, "/default/game", ["before"])).status_code == 200
            before = await sub.data("s")
            assert before["offset"] == 1

            redis.stop()
            down = await _http_publish(b, "/default/game", ["while-down"])
            assert down.status_code == 503  # refused explicitly, not lost silently
            redis.start()  # same port, same directory

            await _publish_when_back(b, "/default/game", ["after-1"])
            await _publish_when_back(b, "/default/game", ["after-2"])
            if persistent:
                # positions survived: A catches up (live or from the stream) and nothing is lost
                got = [await sub.data("s") for _ in range(2)]
                assert [json.loads(m["event"]) for m in got] == ["after-1", "after-2"]
                assert [m["offset"] for m in got] == [2, 3] and got[0]["epoch"] == ok["epoch"]
                assert not [m for m in sub.inbox if m["type"] == "gap"]
            else:
                # Redis lost the channel: the client is told, then gets what comes next
                gap = await sub.wait_for(lambda m: m["type"] == "gap")
                assert gap["id"] == "s" and gap["channel"] == "/default/game"
                assert gap.get("epoch") != ok["epoch"]
                await _http_publish(b, "/default/game", ["after-gap"])
                got = await sub.wait_for(lambda m: m["type"] == "data" and m["event"] == '"after-gap"')
                assert got["epoch"] != ok["epoch"]
            # new subscriptions work on both replicas
            async with client(b.realtime_url, api_key_headers(b.host, KEY)) as late:
                assert (await late.subscribe("/default/game", "n"))["type"] == "subscribe_success"


def _replicas(redis_url: str, n: int = 2) -> list[EventsService]:
    prefix = f"t{time.monotonic_ns()}:"
    services = []
    for _ in range(n):
        svc = make_service()
        svc.bus = RedisBus(redis_url, prefix=prefix)
        services.append(svc)
    return services


async def test_cluster_wide_disconnect_counts_and_racing_subscribes() -> None:
    with redis_server() as redis:
        one, two = _replicas(redis.url)
        async with events_server(one) as a, events_server(two) as b:
            t = one.auth.issue_user_token("troll", rights={"*": {"sub": True, "pub": True}})
            async with client(a.realtime_url, token_headers(a.host, t)) as on_a, \
                    client(b.realtime_url, token_headers(b.host, t)) as on_b, \
                    client(b.realtime_url, api_key_headers(b.host)) as watcher:
                await on_a.subscribe("/open/room", "s")
                await on_b.subscribe("/open/room", "s")
                await watcher.subscribe("/open/room", "w")
                assert await eventually(lambda: _equals(one.subscriber_count("/open/room"), 3),
                                        what="3 subscribers seen from A")
                assert await two.subscriber_count("/open/room") == 3
                assert await one.disconnect_user("troll", "banned") == 2
                await eventually(lambda: _equals(two.subscriber_count("/open/room"), 1), what="kicked everywhere")
                assert await eventually(lambda: _equals(one.subscriber_count("/open/room"), 1),
                                        what="A sees the kick on B")

                # subscribing with recovery while another replica publishes: no duplicates, no holes
                async def publisher() -> None:
                    for i in range(60):
                        await one.publish("/open/race", [i])
                        await asyncio.sleep(0)

                task = asyncio.ensure_future(publisher())
                seen: list[int] = []
                position = None
                while not seen or seen[-1] < 60:
                    sub_id = f"r{len(seen)}-{time.monotonic()}"
                    ok = await watcher.subscribe("/open/race", sub_id, since=position)
                    assert ok["type"] == "subscribe_success"
                    if position is not None:
                        assert ok["recovered"] is True
                    for _ in range(3):
                        if seen and seen[-1] >= 60:
                            break
                        msg = await watcher.data(sub_id)
                        seen.append(msg["offset"])
                        position = {"epoch": msg["epoch"], "offset": msg["offset"]}
                    await watcher.send({"type": "unsubscribe", "id": sub_id})
                    await watcher.wait_for(lambda m, i=sub_id: m["type"] == "unsubscribe_success" and m["id"] == i)
                    watcher.inbox = [m for m in watcher.inbox if m.get("id") != sub_id]
                await task
                start = seen[0]
                assert seen == list(range(start, start + len(seen))), seen


async def _equals(value: object, expected: int) -> bool:
    return (await value) == expected  # type: ignore[misc]
