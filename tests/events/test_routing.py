"""Wildcard routing with real clients: '/ns/*' and '/ns/room/*' match every channel below their prefix, exact
subscriptions only their channel, namespaces never leak into each other."""

from __future__ import annotations

import json
from typing import Any

from tests.events.support import Client, Running, api_key_headers, client


async def _until_marker(c: Client, marker_sub: str) -> list[tuple[str, Any, str]]:
    """(subscription id, event, channel) of every data message before the marker arrives on `marker_sub`."""
    seen = []
    while True:
        msg = await c.data()
        event = json.loads(msg["event"])
        if msg["id"] == marker_sub and event == "MARK":
            return seen
        seen.append((msg["id"], event, msg["channel"]))


async def test_wildcard_and_exact_routing(server: Running) -> None:
    h = api_key_headers(server.host)
    async with client(server.realtime_url, h) as exact, client(server.realtime_url, h) as ns_wild, \
            client(server.realtime_url, h) as room_wild, client(server.realtime_url, h) as deep_wild, \
            client(server.realtime_url, h) as other, client(server.realtime_url, h) as pub:
        await exact.subscribe("/default/a/b", "exact")
        await ns_wild.subscribe("/default/*", "ns")
        await room_wild.subscribe("/default/a/*", "room")
        await deep_wild.subscribe("/default/a/b/*", "deep")
        await other.subscribe("/default/c", "other")
        for c in (exact, room_wild, deep_wild, other):
            await c.subscribe("/open/marker", "mark")

        await pub.publish("/default/a/b", ["to a/b"])
        await pub.publish("/default/a/b/c/d", ["deep one"])
        await pub.publish("/default/a", ["to a"])
        await pub.publish("/default/c", ["to c"])
        await pub.publish("/open/a/b", ["other namespace"])
        await pub.publish("/open/marker", ["MARK"])
        await pub.publish("/default/zz", ["MARK"])  # the ns wildcard's marker

        assert await _until_marker(exact, "mark") == [("exact", "to a/b", "/default/a/b")]
        assert await _until_marker(room_wild, "mark") == [("room", "to a/b", "/default/a/b"),
                                                          ("room", "deep one", "/default/a/b/c/d")]
        assert await _until_marker(deep_wild, "mark") == [("deep", "deep one", "/default/a/b/c/d")]
        assert await _until_marker(other, "mark") == [("other", "to c", "/default/c")]
        assert await _until_marker(ns_wild, "ns") == [("ns", "to a/b", "/default/a/b"),
                                                      ("ns", "deep one", "/default/a/b/c/d"),
                                                      ("ns", "to a", "/default/a"),
                                                      ("ns", "to c", "/default/c")]


async def test_one_socket_with_overlapping_subscriptions_gets_one_message_per_subscription(server: Running) -> None:
    h = api_key_headers(server.host)
    async with client(server.realtime_url, h) as c:
        await c.subscribe("/default/room/1", "exact")
        await c.subscribe("/default/room/*", "wild")
        await c.publish("/default/room/1", [{"n": 1}])
        got = {(await c.data())["id"], (await c.data())["id"]}
        assert got == {"exact", "wild"}


async def test_order_is_kept_per_channel_across_publishers(server: Running) -> None:
    h = api_key_headers(server.host)
    async with client(server.realtime_url, h) as sub, client(server.realtime_url, h) as p1, \
            client(server.realtime_url, h) as p2:
        await sub.subscribe("/default/ordered", "s")
        for i in range(20):
            await (p1 if i % 2 else p2).publish("/default/ordered", [i])
        got = [await sub.data("s") for _ in range(20)]
        assert [json.loads(m["event"]) for m in got] == list(range(20))
        assert [m["offset"] for m in got] == list(range(1, 21))
