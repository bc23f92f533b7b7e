"""Protocol conformance with real WebSocket clients: every message type and every error path, on both sender
paths (frames straight onto uvicorn's transport, and plain ASGI send)."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from playcast.events.connection import EventsLimits
from playcast.events.protocol import MAX_EVENT_BYTES, SUBPROTOCOL
from tests.events.conftest import make_service
from tests.events.support import Running, api_key_headers, client, events_server


async def test_connect_ack_subscribe_publish_data_unsubscribe(any_server: Running) -> None:
    headers = api_key_headers(any_server.host)
    async with client(any_server.realtime_url, headers, init=False) as c:
        assert c.ws.subprotocol == SUBPROTOCOL
        await c.send({"type": "connection_init"})
        ack = await c.expect("connection_ack")
        assert ack["connectionTimeoutMs"] == 300000

        ok = await c.subscribe("/default/room1", "sub-1", auth=headers)
        assert ok == {"type": "subscribe_success", "id": "sub-1", "epoch": ok["epoch"], "offset": 0}

        reply = await c.publish("/default/room1", [{"msg": "hello"}, 42], auth=headers)
        assert reply["type"] == "publish_success"
        assert [s["index"] for s in reply["successful"]] == [0, 1] and reply["failed"] == []
        assert all(len(s["identifier"]) == 36 for s in reply["successful"])

        got = [await c.data("sub-1"), await c.data("sub-1")]
        assert [json.loads(d["event"]) for d in got] == [{"msg": "hello"}, 42]
        assert [d["offset"] for d in got] == [1, 2] and {d["channel"] for d in got} == {"/default/room1"}
        assert got[0]["epoch"] == ok["epoch"]

        await c.send({"type": "unsubscribe", "id": "sub-1"})
        assert await c.expect("unsubscribe_success", "sub-1")
        # after unsubscribing nothing more arrives: a marker on another subscription comes first
        await c.subscribe("/default/marker", "m")
        await c.publish("/default/room1", ["after"])
        await c.publish("/default/marker", ["mark"])
        first = await c.data()
        assert first["id"] == "m"


async def test_event_string_is_delivered_verbatim(any_server: Running) -> None:
    async with client(any_server.realtime_url, api_key_headers(any_server.host)) as c:
        await c.subscribe("/default/verbatim", "s")
        text = '{ "spaced" : [1, 2.50, "\\u00e9"] }'
        reply = await c.publish("/default/verbatim", [text], raw=True)
        assert reply["type"] == "publish_success"
        assert (await c.data("s"))["event"] == text


async def test_messages_without_init_and_with_connection_auth_only(any_server: Running) -> None:
    # connection_init is optional; a message without `authorization` uses the connection's credentials
    async with client(any_server.realtime_url, api_key_headers(any_server.host), init=False) as c:
        assert (await c.subscribe("/default/a", "s"))["type"] == "subscribe_success"
        assert (await c.publish("/default/a", [{"n": 1}]))["type"] == "publish_success"
        assert json.loads((await c.data("s"))["event"]) == {"n": 1}


async def test_malformed_and_unknown_messages_get_errors_and_the_socket_stays(any_server: Running) -> None:
    async with client(any_server.realtime_url, api_key_headers(any_server.host)) as c:
        await c.send("this is not json")
        err = await c.expect("error")
        assert [e["errorType"] for e in err["errors"]] == ["BadRequestException"]
        assert err["errors"][0]["message"].startswith("message is not valid JSON: Expecting value")

        await c.send("[1, 2]")
        assert (await c.expect("error"))["errors"][0]["errorType"] == "BadRequestException"

        await c.send({"type": "start", "id": "x1"})
        err = await c.expect("error", "x1")
        assert err["errors"][0]["errorType"] == "UnsupportedOperation"

        await c.send({"id": "x2"})
        assert (await c.expect("error", "x2"))["errors"][0]["errorType"] == "BadRequestException"

        await c.ws.send(b"\x00\x01binary")
        err = await c.expect("error")
        assert "binary" in err["errors"][0]["message"]

        await c.send({"type": "subscribe", "channel": "/default/a"})  # no id
        err = await c.expect("subscribe_error")
        assert "id" in err["errors"][0]["message"]

        await c.send({"type": "publish", "id": "p0", "channel": "/default/a", "events": []})
        assert (await c.expect("publish_error", "p0"))["errors"][0]["errorType"] == "BadRequestException"

        await c.send({"type": "publish", "id": "p1", "channel": "/default/a", "events": "nope"})
        assert (await c.expect("publish_error", "p1"))["errors"][0]["errorType"] == "BadRequestException"

        await c.send({"type": "unsubscribe", "id": "never-subscribed"})
        err = await c.expect("unsubscribe_error", "never-subscribed")
        assert err["errors"][0]["errorType"] == "BadRequestException"

        # still fully usable
        assert (await c.subscribe("/default/a", "s"))["type"] == "subscribe_success"


async def test_too_many_events_and_oversized_events(any_server: Running) -> None:
    async with client(any_server.realtime_url, api_key_headers(any_server.host)) as c:
        await c.subscribe("/default/big", "s")
        err = await c.publish("/default/big", [1, 2, 3, 4, 5, 6])
        assert err["type"] == "publish_error"
        assert err["errors"] == [{"errorType": "BadRequestException",
                                  "message": "at most 5 events per publish (6 given)"}]

        big = json.dumps("x" * (MAX_EVENT_BYTES + 10))
        fits = json.dumps("y" * (MAX_EVENT_BYTES - 10))
        reply = await c.publish("/default/big", [big, fits, "{bad json", 7], raw=True)
        assert reply["type"] == "publish_success"
        assert [s["index"] for s in reply["successful"]] == [1]
        failed = {f["index"]: f for f in reply["failed"]}
        assert set(failed) == {0, 2, 3}
        assert "240 KB" in failed[0]["message"] and failed[0]["code"] == 400
        assert failed[2]["message"].startswith("event is not valid JSON: Expecting")
        assert "string" in failed[3]["message"]
        got = await c.data("s")
        assert got["event"] == fits and got["offset"] == 1


async def test_frame_holding_a_lone_surrogate_is_a_bad_request_and_the_socket_stays(server: Running) -> None:
    """JSON's "\\ud800" escape names no character: a frame holding one is refused as not valid JSON (it was an
    uncaught UnicodeEncodeError that dropped the socket without a close)."""
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        await c.subscribe("/default/sur", "s")
        for events in (["\ud800"], ['"\ud800x"', "1"]):
            await c.send({"type": "publish", "id": "p", "channel": "/default/sur", "events": events})
            err = await c.wait_for(lambda m: m["type"] == "error")
            assert err["errors"][0]["errorType"] == "BadRequestException"
            assert "lone surrogate" in err["errors"][0]["message"]
        assert (await c.publish("/default/sur", [2]))["type"] == "publish_success"
        assert (await c.data("s"))["event"] == "2"


@pytest.mark.parametrize("channel, why", [
    ("default/no-slash", "starts with '/'"),
    ("/default/a/b/c/d/e", "at most 5 segments"),
    ("/-bad-/a", "namespace"),
    ("/default/sp ace", "segment"),
    ("/default//empty", "segment"),
    ("/default/a*", "segment"),
    ("/default/*/x", "segment"),
])
async def test_invalid_channels_are_refused(server: Running, channel: str, why: str) -> None:
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        err = await c.subscribe(channel, "s")
        assert err["type"] == "subscribe_error" and err["errors"][0]["errorType"] == "BadRequestException"
        assert why in err["errors"][0]["message"]
        pub = await c.publish(channel, [1])
        assert pub["type"] == "publish_error" and why in pub["errors"][0]["message"]


async def test_wildcards_only_for_subscribing_and_unknown_namespace(server: Running) -> None:
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        pub = await c.publish("/default/*", [1])
        assert pub["type"] == "publish_error" and "subscribing only" in pub["errors"][0]["message"]
        err = await c.subscribe("/nosuch/room", "s")
        assert err["type"] == "subscribe_error" and "not defined" in err["errors"][0]["message"]
        pub = await c.publish("/nosuch/room", [1])
        assert pub["type"] == "publish_error" and "not defined" in pub["errors"][0]["message"]


async def test_duplicate_subscription_id_and_subscription_limit() -> None:
    async with events_server(make_service(EventsLimits(max_subscriptions=5))) as server, \
            client(server.realtime_url, api_key_headers(server.host)) as c:
        assert (await c.subscribe("/default/a", "same"))["type"] == "subscribe_success"
        err = await c.subscribe("/default/b", "same")
        assert err["type"] == "subscribe_error" and "already in use" in err["errors"][0]["message"]
        for i in range(4):
            assert (await c.subscribe(f"/default/c{i}", f"n{i}"))["type"] == "subscribe_success"
        err = await c.subscribe("/default/one-too-many", "over")
        assert err["type"] == "subscribe_error" and err["errors"][0]["errorType"] == "LimitExceededException"
        await c.send({"type": "unsubscribe", "id": "n0"})
        await c.expect("unsubscribe_success", "n0")
        assert (await c.subscribe("/default/one-too-many", "over"))["type"] == "subscribe_success"


async def test_handshake_without_the_appsync_subprotocol_is_refused(server: Running) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as info:
        async with connect(server.realtime_url):
            pass
    assert info.value.response.status_code == 403


async def test_amplify_message_shapes(server: Running) -> None:
    """The frames Amplify JS's events client sends (checked against aws-amplify 6 with a real run, see
    docs/events.md): header auth with host and x-amz-date, subscribe/publish carrying `authorization` and a
    `payload` copy with `extensions.authorization`."""
    headers = api_key_headers(server.host)
    async with client(server.realtime_url, headers, init=False) as c:
        await c.send({"type": "connection_init"})
        await c.expect("connection_ack")
        auth = {**headers, "x-amz-user-agent": "aws-amplify/6.0 api/1 framework/0"}
        await c.send({"id": "amp-sub", "channel": "/default/amplify", "authorization": auth,
                      "payload": {"channel": "/default/amplify", "extensions": {"authorization": auth}},
                      "type": "subscribe"})
        await c.expect("subscribe_success", "amp-sub")
        events = [json.dumps({"via": "websocket"})]
        await c.send({"id": "amp-pub", "channel": "/default/amplify", "events": events, "authorization": auth,
                      "payload": {"events": events, "channel": "/default/amplify",
                                  "extensions": {"authorization": auth}}, "type": "publish"})
        assert (await c.wait_for(lambda m: m.get("id") == "amp-pub"))["type"] == "publish_success"
        data = await c.data("amp-sub")
        assert set(data) >= {"id", "event", "type"} and json.loads(data["event"]) == {"via": "websocket"}
        await c.send({"id": "amp-sub", "type": "unsubscribe"})
        await c.expect("unsubscribe_success", "amp-sub")
