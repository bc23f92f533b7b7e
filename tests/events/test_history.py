"""History and recovery: a client that reconnects with its last (epoch, offset) gets every missed event, or an
explicit `recovered: false` when history no longer covers the gap; never a silent gap."""

from __future__ import annotations

import json

from playcast.bus.history import HistoryPolicy, MemoryHistory, Position, plan_recovery
from tests.events.support import Running, api_key_headers, client

POLICY = HistoryPolicy(size=3, ttl_s=10, position_ttl_s=100)


def test_memory_history_bounds_positions_and_expiry() -> None:
    now = [1000.0]
    h = MemoryHistory(clock=lambda: now[0])
    stored = h.append("/ns/a", [(f"id{i}", str(i)) for i in range(5)], POLICY)
    epoch = stored[0].position.epoch
    assert [e.position.offset for e in stored] == [1, 2, 3, 4, 5]
    assert h.top("/ns/a") == Position(epoch, 5)

    r = h.recover("/ns/a", Position(epoch, 2))  # offsets 3..5 are retained (size 3)
    assert r.recovered and [e.payload for e in r.events] == ["2", "3", "4"]
    r = h.recover("/ns/a", Position(epoch, 1))  # offset 2 was trimmed: a gap
    assert not r.recovered and r.events == [] and r.top == Position(epoch, 5)
    assert h.recover("/ns/a", Position(epoch, 5)).recovered  # nothing missed
    assert not h.recover("/ns/a", Position("other", 5)).recovered  # another epoch
    assert not h.recover("/ns/a", Position(epoch, 9)).recovered  # from the future

    now[0] += 11  # history ttl passed: events gone, position kept
    r = h.recover("/ns/a", Position(epoch, 4))
    assert not r.recovered and r.top == Position(epoch, 5)
    assert h.recover("/ns/a", Position(epoch, 5)).recovered

    now[0] += 100  # position ttl passed: a new epoch starts
    assert h.sweep() == 1
    assert h.top("/ns/a").epoch != epoch and h.top("/ns/a").offset == 0


def test_plan_recovery_never_returns_a_partial_list() -> None:
    from playcast.bus.history import StoredEvent

    top = Position("e", 10)
    tail = [StoredEvent("/c", Position("e", o), str(o), "{}") for o in (8, 9, 10)]
    assert plan_recovery(top, Position("e", 7), tail).recovered
    assert not plan_recovery(top, Position("e", 6), tail).recovered  # 7 is missing
    assert not plan_recovery(top, Position("e", 7), tail[:-1]).recovered  # 10 is missing
    assert plan_recovery(top, None, []).recovered and plan_recovery(top, None, []).events == []


async def test_reconnecting_client_recovers_everything_it_missed(server: Running) -> None:
    h = api_key_headers(server.host)
    async with client(server.realtime_url, h) as pub:
        async with client(server.realtime_url, h) as sub:
            ok = await sub.subscribe("/default/hist", "s")
            await pub.publish("/default/hist", ["seen-1", "seen-2"])
            last = [await sub.data("s"), await sub.data("s")][-1]
            position = {"epoch": last["epoch"], "offset": last["offset"]}
            assert position == {"epoch": ok["epoch"], "offset": 2}
        # offline: three more events
        await pub.publish("/default/hist", ["missed-3", "missed-4"])
        await pub.publish("/default/hist", ["missed-5"])
        async with client(server.realtime_url, h) as sub:
            ok = await sub.subscribe("/default/hist", "s2", since=position)
            assert ok["type"] == "subscribe_success" and ok["recovered"] is True and ok["offset"] == 5
            await pub.publish("/default/hist", ["live-6"])
            got = [await sub.data("s2") for _ in range(4)]
            assert [json.loads(m["event"]) for m in got] == ["missed-3", "missed-4", "missed-5", "live-6"]
            assert [m["offset"] for m in got] == [3, 4, 5, 6]


async def test_gap_is_signalled_when_history_is_exceeded(server: Running) -> None:
    h = api_key_headers(server.host)
    async with client(server.realtime_url, h) as pub, client(server.realtime_url, h) as sub:
        ok = await sub.subscribe("/short/room", "s")  # namespace `short` keeps 3 events
        await sub.send({"type": "unsubscribe", "id": "s"})
        await sub.expect("unsubscribe_success", "s")
        for i in range(5):
            await pub.publish("/short/room", [f"e{i}"])
        again = await sub.subscribe("/short/room", "s", since={"epoch": ok["epoch"], "offset": 0})
        assert again["recovered"] is False and again["offset"] == 5
        await pub.publish("/short/room", ["after"])
        first = await sub.data("s")
        assert first["event"] == '"after"' and first["offset"] == 6  # nothing partial was replayed

        # a client that missed only what is still retained recovers fine
        await sub.send({"type": "unsubscribe", "id": "s"})
        await sub.expect("unsubscribe_success", "s")
        await pub.publish("/short/room", ["x7", "x8"])
        ok = await sub.subscribe("/short/room", "s", since={"epoch": again["epoch"], "offset": 6})
        assert ok["recovered"] is True
        assert [json.loads((await sub.data("s"))["event"]) for _ in range(2)] == ["x7", "x8"]


async def test_recovery_refusals_and_unknown_epochs(server: Running) -> None:
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        err = await c.subscribe("/default/*", "w", since={"epoch": "e", "offset": 1})
        assert err["type"] == "subscribe_error" and "exact channel" in err["errors"][0]["message"]
        err = await c.subscribe("/default/x", "y", since={"epoch": "e", "offset": -1})
        assert err["type"] == "subscribe_error" and "offset" in err["errors"][0]["message"]
        err = await c.subscribe("/default/x", "z", since={"offset": 1})
        assert err["type"] == "subscribe_error" and "epoch" in err["errors"][0]["message"]
        ok = await c.subscribe("/default/x", "v", since={"epoch": "not-this-one", "offset": 0})
        assert ok["type"] == "subscribe_success" and ok["recovered"] is False
