"""The service API others build on: namespace handlers (filter, transform, reject), presence listeners,
server-side publish, disconnect_user and subscriber_count, with real clients on the other end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from playcast.events.hooks import (
    HandlerError,
    Identity,
    OutgoingEvent,
    PublishContext,
    SubscribeContext,
)
from playcast.events.protocol import ProtocolError
from tests.events.support import Running, api_key_headers, client, eventually, token_headers


class Moderating:
    """Uppercases text, fails events with "bad", drops events with "drop", refuses publishes with "stop",
    refuses subscriptions to /open/private; records unsubscribes."""

    def __init__(self) -> None:
        self.unsubscribed: list[str] = []
        self.published: list[PublishContext] = []

    async def on_publish(self, ctx: PublishContext) -> list[OutgoingEvent] | None:
        self.published.append(ctx)
        out = []
        for ev in ctx.events:
            if ev.payload == "stop":
                raise HandlerError("ForbiddenException", "stop is not allowed here")
            if ev.payload == "boom":
                raise RuntimeError("handler bug")
            if isinstance(ev.payload, str) and "bad" in ev.payload:
                out.append(OutgoingEvent(ev.id, error="contains a bad word"))
            elif ev.payload == "drop":
                continue
            elif isinstance(ev.payload, str):
                out.append(OutgoingEvent(ev.id, ev.payload.upper()))
            else:
                out.append(OutgoingEvent(ev.id, ev.payload))
        return out

    async def on_subscribe(self, ctx: SubscribeContext) -> None:
        if ctx.channel.path == "/open/private":
            raise HandlerError("UnauthorizedException", "members only")

    async def on_unsubscribe(self, ctx: SubscribeContext) -> None:
        self.unsubscribed.append(ctx.channel.path)


async def test_publish_handler_filters_transforms_and_rejects(server: Running) -> None:
    handler = Moderating()
    server.service.register_handler("open", handler)
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        await c.subscribe("/open/room", "s")
        reply = await c.publish("/open/room", ["hello", "bad words", "drop", {"keep": True}, "x"])
        assert [s["index"] for s in reply["successful"]] == [0, 2, 3, 4]
        assert reply["failed"] == [{"identifier": reply["failed"][0]["identifier"], "index": 1, "code": 400,
                                    "message": "contains a bad word"}]
        got = [json.loads((await c.data("s"))["event"]) for _ in range(3)]
        assert got == ["HELLO", {"keep": True}, "X"]
        assert handler.published[0].identity.auth_mode == "API_KEY"
        assert [e.payload for e in handler.published[0].events] == ["hello", "bad words", "drop", {"keep": True}, "x"]

        refused = await c.publish("/open/room", ["fine", "stop"])
        assert refused["type"] == "publish_error"
        assert refused["errors"] == [{"errorType": "ForbiddenException", "message": "stop is not allowed here"}]
        crashed = await c.publish("/open/room", ["boom"])
        assert crashed["type"] == "publish_error" and crashed["errors"][0]["errorType"] == "InternalFailureException"

        denied = await c.subscribe("/open/private", "p")
        assert denied["type"] == "subscribe_error"
        assert denied["errors"] == [{"errorType": "UnauthorizedException", "message": "members only"}]
        # nothing of the refused publishes was delivered: the next event is the next one published
        await c.publish("/open/room", ["next"])
        assert (await c.data("s"))["event"] == '"NEXT"'


async def test_presence_listener_and_on_unsubscribe(server: Running) -> None:
    handler = Moderating()
    server.service.register_handler("open", handler)
    events: list[tuple[str, str | None, bool]] = []

    async def presence(channel: str, identity: Identity, joined: bool) -> None:
        events.append((channel, identity.user_id, joined))

    server.service.add_presence_listener(presence)
    token = server.service.auth.issue_user_token("viewer-7", rights={"open": {"sub": True}})
    async with client(server.realtime_url, token_headers(server.host, token)) as c:
        await c.subscribe("/open/stage", "a")
        await c.subscribe("/open/stage/*", "b")
        assert await c.subscribe("/open/private", "p")  # refused: no presence event
        assert events == [("/open/stage", "viewer-7", True), ("/open/stage/*", "viewer-7", True)]
        assert await server.service.subscriber_count("/open/stage") == 1
        await c.send({"type": "unsubscribe", "id": "a"})
        await c.expect("unsubscribe_success", "a")
        assert events[-1] == ("/open/stage", "viewer-7", False)
        assert await server.service.subscriber_count("/open/stage") == 0
    # the socket closed: the remaining subscription ends too
    await eventually(lambda: events[-1] == ("/open/stage/*", "viewer-7", False), what="leave on close")
    assert sorted(handler.unsubscribed) == ["/open/stage", "/open/stage/*"]


async def test_server_side_publish(server: Running) -> None:
    handler = Moderating()
    server.service.register_handler("open", handler)
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        await c.subscribe("/open/game", "s")
        await c.subscribe("/default/raw", "r")
        out = await server.service.publish("/open/game", ["score", "bad one", {"hp": 3}])
        assert [o.error for o in out] == [None, "contains a bad word", None]
        assert out[0].payload == "SCORE"
        assert handler.published[-1].identity.auth_mode == "SERVER"
        assert [json.loads((await c.data("s"))["event"]) for _ in range(2)] == ["SCORE", {"hp": 3}]

        ident = Identity("SERVER", user_id="system", display_name="System")
        out = await server.service.publish("/default/raw", [{"é": "ü"}, {"s": {1, 2}}], identity=ident)
        assert out[0].error is None and "JSON-serializable" in (out[1].error or "")
        assert json.loads((await c.data("r"))["event"]) == {"é": "ü"}

    for bad, why in [("/nosuch/x", "not defined"), ("/open/*", "subscribing only"), ("nope", "starts with")]:
        with pytest.raises(ProtocolError, match=why):
            await server.service.publish(bad, [1])
    with pytest.raises(ProtocolError, match="stop is not allowed"):
        await server.service.publish("/open/game", ["stop"])


async def test_disconnect_user_closes_all_of_their_sockets_only(server: Running) -> None:
    svc = server.service
    t1 = svc.auth.issue_user_token("troll", rights={"open": {"sub": True, "pub": True}})
    t2 = svc.auth.issue_user_token("nice", rights={"open": {"sub": True, "pub": True}})
    h = server.host
    async with client(server.realtime_url, token_headers(h, t1)) as a, \
            client(server.realtime_url, api_key_headers(h)) as b, \
            client(server.realtime_url, token_headers(h, t2)) as nice:
        await a.subscribe("/open/room", "s")
        await b.subscribe("/open/room", "s", auth=token_headers(h, t1))  # the user came in on a message
        await nice.subscribe("/open/room", "s")
        assert await svc.subscriber_count("/open/room") == 3
        assert await svc.disconnect_user("troll", "banned by a moderator") == 2
        for sock in (a, b):
            with pytest.raises(ConnectionClosed) as closed:
                await sock.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
            assert closed.value.rcvd.reason == "banned by a moderator"
        await eventually(lambda: svc.router.index.count_exact("/open/room") == 1, what="kicked subs gone")
        assert await svc.disconnect_user("troll", "again") == 0
        await nice.publish("/open/room", ["still here"])
        assert (await nice.data("s"))["event"] == '"still here"'


async def test_stats_and_namespaces(server: Running) -> None:
    assert {n.name for n in server.service.namespaces()} >= {"default", "open", "users"}
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        await c.subscribe("/default/s", "s")
        stats: dict[str, Any] = server.service.stats()
        assert stats["connections"] == 1 and stats["channels"] == 1
