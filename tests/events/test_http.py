"""`POST /event` (AppSync Events HTTP publish) with a real HTTP client: delivery to WebSocket subscribers,
per-event failures, and every refusal with its status and AppSync error body."""

from __future__ import annotations

import json

import httpx

from playcast.events.protocol import MAX_EVENT_BYTES, MAX_MESSAGE_BYTES
from tests.events.support import API_KEY, Running, api_key_headers, client


async def test_http_publish_reaches_websocket_subscribers(server: Running) -> None:
    async with client(server.realtime_url, api_key_headers(server.host)) as c, httpx.AsyncClient() as http:
        await c.subscribe("/default/http", "s")
        resp = await http.post(server.http_url, headers={"x-api-key": API_KEY},
                               json={"channel": "/default/http", "events": [json.dumps({"a": 1}), "[1,2]"]})
        assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "*"
        body = resp.json()
        assert body["failed"] == [] and [s["index"] for s in body["successful"]] == [0, 1]
        pre = await http.options(server.http_url, headers={"Origin": "https://app.example",
                                                           "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 204 and "x-api-key" in pre.headers["access-control-allow-headers"]
        assert [json.loads((await c.data("s"))["event"]) for _ in range(2)] == [{"a": 1}, [1, 2]]


async def test_http_publish_with_user_token(server: Running) -> None:
    token = server.service.auth.issue_user_token("u9", rights={"open": {"pub": True}})
    async with httpx.AsyncClient() as http:
        ok = await http.post(server.http_url, headers={"Authorization": token},
                             json={"channel": "/open/x", "events": ["1"]})
        assert ok.status_code == 200 and len(ok.json()["successful"]) == 1
        denied = await http.post(server.http_url, headers={"Authorization": token},
                                 json={"channel": "/users/x", "events": ["1"]})
        assert denied.status_code == 401
        assert denied.json()["errors"][0]["errorType"] == "UnauthorizedException"


async def test_http_refusals(server: Running) -> None:
    url, key = server.http_url, {"x-api-key": API_KEY}
    async with httpx.AsyncClient() as http:
        async def post(body: object, headers: dict[str, str] | None = None, raw: bytes | None = None) -> httpx.Response:
            if raw is not None:
                return await http.post(url, headers=headers if headers is not None else key, content=raw)
            return await http.post(url, headers=headers if headers is not None else key, json=body)

        cases = [
            (await post({"channel": "/default/a", "events": ["1"]}, headers={}), 401, "no credentials"),
            (await post({"channel": "/default/a", "events": ["1"]}, headers={"x-api-key": "da2-nope"}), 401,
             "invalid API key"),
            (await post(None, raw=b"{not json"), 400, "not valid JSON"),
            (await post([1, 2]), 400, "JSON object"),
            (await post({"events": ["1"]}), 400, "'channel'"),
            (await post({"channel": "/default/a", "events": []}), 400, "'events'"),
            (await post({"channel": "/default/a", "events": ["1"] * 6}), 400, "at most 5 events"),
            (await post({"channel": "/default/*", "events": ["1"]}), 400, "subscribing only"),
            (await post({"channel": "/nope/a", "events": ["1"]}), 400, "not defined"),
            (await post(None, raw=b"x" * (MAX_MESSAGE_BYTES + 1)), 400, "larger than"),
        ]
        for resp, status, why in cases:
            assert resp.status_code == status, (resp.status_code, resp.text)
            err = resp.json()["errors"][0]
            assert why in err["message"], err
            assert err["errorType"] == ("UnauthorizedException" if status == 401 else "BadRequestException")
            # what AWS SDKs (Amplify's REST client) read
            assert resp.headers["x-amzn-errortype"] == err["errorType"] and resp.json()["message"] == err["message"]

        mixed = await post({"channel": "/default/a", "events": ["{oops", json.dumps("z" * (MAX_EVENT_BYTES + 1)),
                                                                  "true"]})
        assert mixed.status_code == 200
        body = mixed.json()
        assert [s["index"] for s in body["successful"]] == [2]
        assert [(f["index"], f["code"]) for f in body["failed"]] == [(0, 400), (1, 400)]


async def test_http_publish_holding_a_lone_surrogate_is_a_bad_request(server: Running) -> None:
    """A lone surrogate (JSON's "\\ud800" escape) in the body: 400 BadRequestException (was 500)."""
    async with httpx.AsyncClient() as http:
        resp = await http.post(server.http_url, headers={"x-api-key": API_KEY},
                               content=json.dumps({"channel": "/default/sur", "events": ["\ud800", "true"]}))
        assert resp.status_code == 400, resp.text
        assert resp.headers["x-amzn-errortype"] == "BadRequestException" and "lone surrogate" in resp.text
