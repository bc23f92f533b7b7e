"""Hostile request bodies against a real `playcast up`: bodies far over any limit, declared or chunked, sent
without credentials, are answered before they are read and leave the server's memory flat; JSON nested 100,000
deep gets each service's own 400 (AWS, /v1, AppSync over HTTP and WebSocket), never a 500 or a dropped socket."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.exceptions import ConnectionClosed

from playcast.events.protocol import SUBPROTOCOL
from tests.events.support import api_key_headers, client
from tests.harness import Playcast, playcast_up
from tests.raw_http import MB, PeakRss, post_streaming

NESTED = "[" * 100_000
NESTED_SMALL = "[" * 10_000  # for routes that take at most 16 KB: still ten times what json.loads could recurse
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def pc() -> Iterator[Playcast]:
    with playcast_up("--slots", "1", "--warm", "0") as running:
        yield running


@pytest.fixture(scope="module")
def broadcast_id(pc: Playcast) -> str:
    """A broadcast of a session that has ended since: its WHIP endpoint still asks for the publish token first."""
    gls = pc.boto3()
    group = gls.list_stream_groups()["Items"][0]["Id"]
    app = gls.get_stream_group(Identifier=group)["DefaultApplication"]["Id"]
    sid = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app, Protocol="WebRTC",
                                   SignalRequest="NO_CLIENT_CONNECTION")["Arn"].rsplit("/", 1)[1]
    gls.get_waiter("stream_session_active").wait(Identifier=group, StreamSessionIdentifier=sid,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 90})
    r = httpx.post(pc.base_url + "/v1/broadcasts", json={"streamSessionId": sid, "hls": False},
                   headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})
    assert r.status_code == 201, r.text
    gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
    return r.json()["broadcastId"]


@pytest.fixture(scope="module")
def player(pc: Playcast) -> Iterator[httpx.Client]:
    """A browser user: logged in through the one-time login link."""
    with httpx.Client(base_url=pc.base_url, timeout=30) as http:
        assert http.get(pc.login_url.removeprefix(pc.base_url)).status_code in (200, 303)
        assert http.cookies.get("playcast_user")
        yield http


def _routes(bid: str) -> list[tuple[str, dict[str, str], int]]:
    """(path, headers, the route's own refusal) for each route an unauthenticated caller can POST a body to."""
    return [(f"/whip/{bid}", {"Content-Type": "application/sdp"}, 401),
            ("/v1/chat/invites/redeem", JSON, 413),  # no auth: the invitation is in the body; its limit is 16 KB
            ("/applications", JSON, 403),  # GameLift CreateApplication, unsigned
            ("/event", JSON, 401)]


@pytest.mark.parametrize("declared", [300 * MB, 3 * MB // 2, None], ids=["300MB", "1.5MB", "chunked"])
def test_bodies_are_refused_before_they_are_sent(pc: Playcast, broadcast_id: str, declared: int | None) -> None:
    """Over the server's 2 MiB ceiling or under it, or chunked: each route's auth answers before any byte is read
    (redeem has none: its own 16 KB limit does, on the Content-Length or on the bytes of a chunked body)."""
    for path, headers, own in _routes(broadcast_id):
        counts_bytes = declared is None and own == 413
        answer = post_streaming(pc.port, path, headers, declared=declared, total=8 * MB if counts_bytes else 0,
                                wait_first_s=0 if counts_bytes else 10, wait_after_s=0, timeout_s=20)
        assert answer.status == own, (path, declared, answer)
        if not counts_bytes:
            assert answer.sent_before_answer == 0, (path, declared, answer)


def test_large_unauthenticated_bodies_leave_memory_flat(pc: Playcast, broadcast_id: str) -> None:
    """Each route x (Content-Length 300 MB then 64 MB streamed, 64 MB chunked): VmRSS of `playcast up` rises by
    less than 30 MB at its peak (it used to hold every byte: 173 MB -> 1.35 GB for one 300 MB POST)."""
    for path, headers, _ in _routes(broadcast_id):  # the code paths once, so their first use is not counted
        post_streaming(pc.port, path, headers, declared=None, total=MB, timeout_s=20)
    with PeakRss(pc.process.pid) as rss:
        answers = [(path, declared, post_streaming(pc.port, path, headers, declared=declared, total=64 * MB,
                                                   timeout_s=60))
                   for path, headers, _ in _routes(broadcast_id) for declared in (300 * MB, None)]
    assert rss.growth_mb < 30, f"VmRSS rose {rss.growth_mb:.0f} MB (from {rss.baseline_kb // 1024} MB)"
    assert all(answer.status in (401, 403, 413) for _, _, answer in answers), answers


def _sign(pc: Playcast, method: str, path: str, body: bytes) -> dict[str, str]:
    c = pc.credentials
    req = AWSRequest(method=method, url=pc.base_url + path, data=body, headers=JSON)
    SigV4Auth(Credentials(c["aws_access_key_id"], c["aws_secret_access_key"]), "gameliftstreams",
              c["region_name"]).add_auth(req)
    return {k: v for k, v in req.headers.items() if k.lower() != "content-length"}


def _signed(pc: Playcast, method: str, path: str, body: bytes) -> httpx.Response:
    return httpx.request(method, pc.base_url + path, headers=_sign(pc, method, path, body), content=body, timeout=30)


@pytest.mark.parametrize("declared", [3 * MB // 2, None], ids=["1.5MB", "chunked"])
def test_a_signed_looking_gamelift_request_is_read_only_up_to_its_limit(pc: Playcast, declared: int | None) -> None:
    """Our key, a fresh date, the right scope: SigV4's header checks pass, and only the body can show the signature
    wrong. The body is read up to the API's 1 MiB and no further: 413 ValidationException."""
    headers = _sign(pc, "POST", "/applications", b"{}")  # signed for another body
    answer = post_streaming(pc.port, "/applications", headers, declared=declared, total=8 * MB,
                            wait_first_s=10 if declared else 0, wait_after_s=0, timeout_s=20)
    assert answer.status == 413 and "x-amzn-errortype: validationexception" in answer.head.lower(), answer
    if declared:
        assert answer.sent_before_answer == 0, answer  # its Content-Length alone says too much


def _v1_error(r: httpx.Response, status: int, type_: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == type_ and isinstance(err["message"], str), err
    return err["message"]


def test_nested_json_gets_the_aws_serialization_error(pc: Playcast) -> None:
    r = _signed(pc, "POST", "/applications", NESTED.encode())
    assert r.status_code == 400 and r.headers["x-amzn-errortype"] == "SerializationException", r.text
    assert "nested deeper than 64 levels" in r.json()["message"]
    assert pc.boto3().list_applications()["Items"]  # the API serves on


def test_nested_json_gets_the_v1_errors(pc: Playcast, player: httpx.Client) -> None:
    assert "nested deeper" in _v1_error(httpx.post(pc.base_url + "/v1/chat/invites/redeem", content=NESTED_SMALL,
                                                   headers=JSON), 400, "BadRequestException")
    assert "nested deeper" in _v1_error(player.post("/v1/play/sessions", content=NESTED, headers=JSON), 400,
                                        "ValidationException")
    admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}", **JSON}
    assert "nested deeper" in _v1_error(httpx.post(pc.base_url + "/v1/broadcasts", content=NESTED_SMALL,
                                                   headers=admin), 400, "ValidationException")


def test_a_nested_signal_request_ends_the_session_invalid(pc: Playcast, player: httpx.Client) -> None:
    """The SignalRequest is JSON inside a JSON string: it is parsed at placement, which ends the session ERROR
    invalidSignalRequest; the player's POST answers that at once."""
    app = player.get("/v1/play/apps").json()["applications"][0]["id"]
    message = _v1_error(player.post("/v1/play/sessions", json={"applicationId": app, "signalRequest": NESTED}),
                        400, "invalidSignalRequest")
    assert "nested deeper" in message


def _events_errors(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 400 and r.headers["x-amzn-errortype"] == "BadRequestException", r.text
    return r.json()["errors"]


def test_nested_json_gets_appsync_errors_over_http(pc: Playcast) -> None:
    url, key = pc.credentials["events_http_url"], {"x-api-key": pc.credentials["events_api_key"], **JSON}
    [err] = _events_errors(httpx.post(url, content=NESTED, headers=key))
    assert err["errorType"] == "BadRequestException" and "nested deeper" in err["message"]
    r = httpx.post(url, headers=key, json={"channel": "/default/deep", "events": [NESTED[:200_000], "1"]})
    assert r.status_code == 200, r.text
    assert [f["index"] for f in r.json()["failed"]] == [0] and "nested deeper" in r.json()["failed"][0]["message"]
    assert [s["index"] for s in r.json()["successful"]] == [1]


async def test_a_nested_websocket_frame_gets_an_error_and_the_socket_stays(pc: Playcast) -> None:
    host = f"127.0.0.1:{pc.port}"
    async with client(pc.credentials["events_realtime_url"], api_key_headers(host, pc.credentials["events_api_key"])
                      ) as c:
        await c.send(NESTED)
        err = await c.expect("error")
        assert err["errors"][0]["errorType"] == "BadRequestException" and "nested deeper" in err["errors"][0]["message"]
        assert (await c.subscribe("/default/after", "s"))["type"] == "subscribe_success"


async def test_a_nested_header_subprotocol_gets_the_appsync_connection_error(pc: Playcast) -> None:
    # 5,000 deep: the base64 still fits the 8 KB header line that the WebSocket handshake parser takes
    header = "header-" + base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    async with client(pc.credentials["events_realtime_url"], None, subprotocols=[SUBPROTOCOL, header],
                      init=False) as c:
        await c.send({"type": "connection_init"})
        err = await c.expect("connection_error")
        assert err["errors"][0]["errorType"] == "UnauthorizedException"
        with pytest.raises(ConnectionClosed) as closed:
            await c.next()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert json.loads(httpx.get(pc.base_url + "/healthz").text)["status"] == "ok"
