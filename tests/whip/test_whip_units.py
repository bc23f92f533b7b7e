"""WHIP pieces that need no WebRTC: Link ice-server parsing, backoff bounds, publisher offer checks, stage sizes,
and the client's retry/give-up logic against a real loopback HTTP endpoint that answers with errors."""

from __future__ import annotations

import asyncio
import random

import pytest
from aiortc import RTCPeerConnection, VideoStreamTrack
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from playcast.media.stage import fit_size
from playcast.media.whip_client import (
    Backoff,
    IceServer,
    WhipClient,
    WhipState,
    parse_ice_server_links,
    redact,
)
from playcast.media.whip_offer import OfferRejected, check_publish_offer
from tests.whip.support import LoopbackServer, free_port


def test_ice_server_links() -> None:
    servers = parse_ice_server_links([
        '<stun:stun.example.net>; rel="ice-server"',
        '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; '
        'credential="my;Pass,word"; credential-type="password", <https://x.example>; rel="help"',
        '<turns:t.example.net:443?transport=tcp>;rel=ice-server;username=u2;credential=p2',
        '<urn:ietf:params:whip:ext:example>; rel="urn:ietf:params:whip:ext:example"',
    ])
    assert servers == [
        IceServer("stun:stun.example.net"),
        IceServer("turn:turn.example.net?transport=udp", "user", "my;Pass,word"),
        IceServer("turns:t.example.net:443?transport=tcp", "u2", "p2"),
    ]
    assert parse_ice_server_links(["garbage", ""]) == []


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(base_s=1.0, cap_s=8.0)
    assert [b.ceiling(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    rng = random.Random(7)
    for n in range(1, 10):
        delays = [b.delay(n, rng) for _ in range(200)]
        assert b.ceiling(n) / 2 <= min(delays) and max(delays) <= b.ceiling(n)
        assert max(delays) - min(delays) > b.ceiling(n) / 4  # really jittered


def test_redact_hides_tokens_in_urls() -> None:
    assert redact("https://user:pw@global.whip.live-video.net:443/path?token=abc") == \
        "https://global.whip.live-video.net:443/path"


def test_fit_size() -> None:
    assert fit_size(640, 480) == (640, 480)
    assert fit_size(1920, 1080) == (1280, 720)
    assert fit_size(1080, 1920) == (404, 720)
    assert fit_size(321, 241) == (320, 240)


async def _offer(*kinds: str, direction: str = "sendonly") -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_publish_offer_checks() -> None:
    good = await _offer("audio", "video")
    offer = check_publish_offer(good)
    assert offer.kinds == ["audio", "video"] and "video/H264" in offer.codecs["video"]

    def status(sdp: str) -> int:
        with pytest.raises(OfferRejected) as info:
            check_publish_offer(sdp)
        return info.value.status

    assert status("garbage") == 400
    assert status("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n") == 400  # no media at all
    assert status(good.replace("a=ice-ufrag:", "a=x-ufrag:")) == 400
    assert status(good.replace("a=fingerprint:", "a=x-fingerprint:")) == 400
    assert status(await _offer("video", "video")) == 422  # two video tracks
    assert status(await _offer("audio", "video", direction="recvonly")) == 422  # nothing sent
    vp9_only = _video_codecs_replaced(good, "VP9/90000")
    assert status(vp9_only) == 422


def _video_codecs_replaced(sdp: str, rtpmap: str) -> str:
    """The offer with its video section offering only `rtpmap` (payload type 98)."""
    out, in_video = [], False
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            in_video = line.startswith("m=video")
            if in_video:
                line = " ".join(line.split()[:3] + ["98"])
                out.append(line)
                out.append(f"a=rtpmap:98 {rtpmap}")
                continue
        if in_video and line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=ssrc-group:")):
            continue
        out.append(line)
    return "\r\n".join(out)


class _Track(VideoStreamTrack):
    pass


async def test_client_backs_off_then_gives_up_on_client_errors() -> None:
    """503 + Retry-After is honoured; repeated 403 ends in FAILED with the endpoint's message; no DELETE is sent
    for sessions that never existed; the Authorization header is on every request."""
    seen: list[tuple[str, str | None, float]] = []
    answers = iter([(503, {"Retry-After": "0"}), (503, {}), (403, {}), (403, {}), (403, {})])

    async def endpoint(request: Request) -> Response:
        seen.append((request.method, request.headers.get("authorization"), asyncio.get_running_loop().time()))
        status, headers = next(answers, (403, {}))
        return Response("stage token expired\n" if status == 403 else "busy\n", status, headers=headers)

    port = free_port()
    async with LoopbackServer(Starlette(routes=[Route("/whip", endpoint, methods=["POST", "DELETE"])]), port):
        states: list[WhipState] = []
        client = WhipClient(f"http://127.0.0.1:{port}/whip", "tok", _Track(), backoff=Backoff(0.2, 0.4),
                            max_client_errors=3, on_status=lambda s: states.append(s.state))
        client.start()
        status = await client.wait_for(WhipState.FAILED, timeout=30)
        await client.stop()
    assert status.attempts == 5 and status.last_http_status == 403
    assert "403" in (status.last_error or "") and "stage token expired" in (status.last_error or "")
    assert [m for m, _, _ in seen] == ["POST"] * 5
    assert all(auth == "Bearer tok" for _, auth, _ in seen)
    assert seen[1][2] - seen[0][2] < 0.15  # Retry-After: 0 was used instead of the backoff
    assert WhipState.RETRYING in states and states[-1] == WhipState.STOPPED


async def test_client_retries_an_endpoint_that_is_down() -> None:
    port = free_port()  # nothing listens there
    client = WhipClient(f"http://127.0.0.1:{port}/whip", None, _Track(), backoff=Backoff(0.1, 0.2), max_attempts=3)
    client.start()
    status = await client.wait_for(WhipState.FAILED, timeout=30)
    await client.stop()
    assert status.attempts == 3 and "unreachable" in (status.last_error or "")


def test_client_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError):
        WhipClient("rtmp://example.com/app", None, _Track())


async def test_client_learns_ice_servers_and_deletes_a_session_it_cannot_use() -> None:
    """A 201 whose answer is unusable: the Link ice-servers are kept for the next attempt, and the session the
    endpoint created is DELETEd at the resolved Location (relative to the URL that answered) with the token."""
    seen: list[tuple[str, str, str | None]] = []

    async def endpoint(request: Request) -> Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        if request.method == "DELETE":
            return Response(status_code=200)
        return Response("not sdp", 201, media_type="text/plain", headers={
            "Location": "sessions/abc", "ETag": '"e1"',
            "Link": '<stun:stun.example.net:3478>; rel="ice-server", '
                    '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="u"; credential="p"'})

    port = free_port()
    app = Starlette(routes=[Route("/whip/ep", endpoint, methods=["POST"]),
                            Route("/whip/sessions/abc", endpoint, methods=["DELETE"])])
    async with LoopbackServer(app, port):
        client = WhipClient(f"http://127.0.0.1:{port}/whip/ep", "tok", _Track(), backoff=Backoff(5, 5))
        client.start()
        status = await client.wait_for(WhipState.RETRYING, timeout=20)
        await client.stop()
    assert "answer is not application/sdp" in (status.last_error or "")
    assert client.learned_ice_servers == [IceServer("stun:stun.example.net:3478"),
                                          IceServer("turn:turn.example.net:3478?transport=udp", "u", "p")]
    assert seen == [("POST", "/whip/ep", "Bearer tok"), ("DELETE", "/whip/sessions/abc", "Bearer tok")]


async def test_client_gives_a_slow_endpoint_a_bounded_time() -> None:
    async def endpoint(request: Request) -> Response:
        await asyncio.sleep(3)
        return Response(status_code=503)

    port = free_port()
    async with LoopbackServer(Starlette(routes=[Route("/whip", endpoint, methods=["POST"])]), port):
        client = WhipClient(f"http://127.0.0.1:{port}/whip", None, _Track(), request_timeout_s=0.5,
                            backoff=Backoff(5, 5))
        client.start()
        status = await client.wait_for(WhipState.RETRYING, timeout=20)
        await client.stop()
    assert status.last_error == "endpoint did not answer within 0.5 s"
