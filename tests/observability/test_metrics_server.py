"""GET /metrics of a real `playcast server`: the bearer token when PLAYCAST_METRICS_TOKEN is set, and the events
families moving with a real WebSocket subscriber and HTTP publishes."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.events.support import api_key_headers, client, playcast_server
from tests.observability.scrape import Scrape, ascrape, scrape_when
from tests.whip.support import wait_until

TIMEOUT = 30.0


async def test_metrics_token_is_required_when_set() -> None:
    with playcast_server({"PLAYCAST_METRICS_TOKEN": "m3trics-s3cret"}) as srv:
        async with httpx.AsyncClient(base_url=f"http://{srv.host}", timeout=TIMEOUT) as http:
            r = await http.get("/metrics")
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            assert "PLAYCAST_METRICS_TOKEN" in r.text and "playcast_" not in r.text
            for wrong in ("Bearer nope", "Bearer m3trics-s3cre", "Basic m3trics-s3cret", "m3trics-s3cret"):
                assert (await http.get("/metrics", headers={"Authorization": wrong})).status_code == 401
            m = await ascrape(http, Authorization="Bearer m3trics-s3cret")
            assert m.value("playcast_events_connections") == 0
            assert m.value("playcast_host_slots", location="local") == 0  # a replica without slots
            assert (await http.get("/healthz")).status_code in (200, 503)  # other routes need no metrics token


async def test_server_events_families_move_with_subscribers_and_publishes() -> None:
    with playcast_server({}) as srv:
        key = srv.credentials()["events_api_key"]
        async with httpx.AsyncClient(base_url=f"http://{srv.host}", timeout=TIMEOUT) as http:

            async def until(cond: Callable[[Scrape], bool], what: str) -> Scrape:
                return await wait_until(lambda: scrape_when(http, cond), TIMEOUT, what, interval=0.25)

            start = await ascrape(http)
            assert start.value("playcast_events_connections") == 0
            assert start.value("playcast_events_subscriptions") == 0
            published = start.value("playcast_events_published_total")
            delivered = start.value("playcast_events_deliveries_total")
            assert start.types["playcast_events_published"] == "counter"

            async with client(srv.realtime_url, api_key_headers(srv.host, key)) as a, \
                    client(srv.realtime_url, api_key_headers(srv.host, key)) as b:
                assert (await a.subscribe("/default/metrics", "s1"))["type"] == "subscribe_success"
                assert (await b.subscribe("/default/*", "s2"))["type"] == "subscribe_success"
                m = await ascrape(http)
                assert m.value("playcast_events_connections") == 2
                assert m.value("playcast_events_subscriptions") == 2
                assert m.value("playcast_events_channels") == 2  # one channel, one wildcard

                r = await http.post(srv.http_url, headers={"x-api-key": key}, json={
                    "channel": "/default/metrics", "events": [json.dumps({"n": 1}), json.dumps({"n": 2})]})
                assert r.status_code == 200 and len(r.json()["successful"]) == 2
                for c, sub in ((a, "s1"), (a, "s1"), (b, "s2"), (b, "s2")):
                    await c.data(sub)
                m = await ascrape(http)
                assert m.value("playcast_events_published_total") == published + 2
                assert m.value("playcast_events_deliveries_total") == delivered + 4  # 2 events x 2 subscribers
                assert m.value("playcast_events_slow_consumer_disconnects_total") == 0

                # A refused publish (bad key) counts nothing.
                r = await http.post(srv.http_url, headers={"x-api-key": "da2-wrong"}, json={
                    "channel": "/default/metrics", "events": [json.dumps("x")]})
                assert r.status_code == 401
                assert (await ascrape(http)).value("playcast_events_published_total") == published + 2

            m = await until(lambda m: m.value("playcast_events_connections") == 0, "sockets gone")
            assert m.value("playcast_events_subscriptions") == 0
