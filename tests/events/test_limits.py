"""Per-connection limits with real clients: a flood gets TooManyRequestsException replies and then a 4429
close, a subscriber that stops reading is cut off; the other connections never notice."""

from __future__ import annotations

import json
import secrets

import pytest
from websockets.exceptions import ConnectionClosed

from playcast.events.connection import EventsLimits
from tests.events.conftest import make_service
from tests.events.support import api_key_headers, client, events_server, eventually


async def test_rate_limit_replies_then_recovers() -> None:
    limits = EventsLimits(messages_per_s=5, burst=10, flood_strikes=1000)
    async with events_server(make_service(limits)) as server, \
            client(server.realtime_url, api_key_headers(server.host), init=False) as c:
        for i in range(15):
            await c.send({"type": "publish", "id": f"p{i}", "channel": "/default/r", "events": [json.dumps(i)]})
        replies = {}
        while len(replies) < 15:
            msg = await c.wait_for(lambda m: str(m.get("id", "")).startswith("p"))
            replies[msg["id"]] = msg
        accepted = [k for k, m in replies.items() if m["type"] == "publish_success"]
        refused = [m for m in replies.values() if m["type"] == "error"]
        assert 10 <= len(accepted) < 15 and len(accepted) + len(refused) == 15
        assert all(m["errors"][0]["errorType"] == "TooManyRequestsException" for m in refused)

        async def publish_ok() -> bool:
            return (await c.publish("/default/r", ["again"]))["type"] == "publish_success"

        await eventually(publish_ok, what="tokens refilled")


async def test_flood_closes_only_the_flooding_socket() -> None:
    limits = EventsLimits(messages_per_s=5, burst=10, flood_strikes=20)
    async with events_server(make_service(limits)) as server:
        h = api_key_headers(server.host)
        async with client(server.realtime_url, h) as calm, client(server.realtime_url, h, init=False) as flood:
            await calm.subscribe("/default/calm", "s")
            for i in range(200):
                try:
                    await flood.send({"type": "publish", "id": f"f{i}", "channel": "/default/calm",
                                      "events": ["1"]})
                except ConnectionClosed:
                    break
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await flood.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
            # the calm client got the accepted floods' events and still works
            await calm.publish("/default/calm", ["calm"])
            await calm.wait_for(lambda m: m["type"] == "data" and m["event"] == '"calm"')
            await eventually(lambda: len(server.service.connections) == 1, what="flooder unregistered")


@pytest.mark.parametrize("fast", [True, False], ids=["transport", "asgi"])
async def test_a_subscriber_that_stops_reading_is_cut_off(fast: bool) -> None:
    limits = EventsLimits(send_buffer_bytes=1024 * 1024, send_queue_messages=20)
    async with events_server(make_service(limits), fast=fast) as server:
        h = api_key_headers(server.host)
        async with client(server.realtime_url, h) as slow, client(server.realtime_url, h) as fast, \
                client(server.realtime_url, h) as pub:
            await slow.subscribe("/default/firehose", "s")
            await fast.subscribe("/default/firehose", "s")
            big = json.dumps(secrets.token_urlsafe(150_000))  # incompressible (permessage-deflate on ASGI path)
            received = 0
            # `slow` never reads; `fast` keeps up. ~30 MB in total is far past the 1 MB send buffer limit.
            for _ in range(150):
                assert (await pub.publish("/default/firehose", [big], raw=True))["type"] == "publish_success"
                while fast.inbox or received < 1:
                    await fast.data("s")
                    received += 1
                received = 0
                if len(server.service.connections) == 2:
                    break
            await eventually(lambda: len(server.service.connections) == 2, what="slow consumer dropped")
            assert server.service.router.index.count_exact("/default/firehose") == 1
            await pub.publish("/default/firehose", ['"after"'], raw=True)
            assert (await fast.wait_for(lambda m: m.get("event") == '"after"'))["id"] == "s"
            # once it reads again, the slow client finds its connection cut (it can reconnect and recover)
            with pytest.raises(ConnectionClosed):
                while True:
                    await slow.next()
