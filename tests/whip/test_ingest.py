"""WHIP end to end on a real `playcast up`: FFmpeg's `whip` muxer (a client no one here wrote) publishing into a
broadcast's stage; the stage's WHEP viewers decoding it; every bad-input status of the ingest; playcast's own
WhipClient pushing a session's game through a 307 redirector that is down, then up, while the player plays on."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.harness import Playcast, playcast_up
from tests.whip.support import (
    FfmpegPublisher,
    LoopbackServer,
    OwnLeftovers,
    Redirector,
    WhepViewer,
    dominant,
    ecdsa_certificate,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.netns

SIZE = (640, 360)
FPS = 30
ENV = {"PLAYCAST_WIDTH": str(SIZE[0]), "PLAYCAST_HEIGHT": str(SIZE[1]), "PLAYCAST_FPS": str(FPS),
       "PLAYCAST_BITRATE_KBPS": "1200"}


@pytest.fixture(scope="module")
def pc():  # type: ignore[no-untyped-def]
    own = OwnLeftovers()
    with playcast_up("--slots", "2", "--warm", "0", env={**ENV, **own.env}) as running:
        yield running
    own.assert_clean()


def _admin(pc: Playcast) -> dict[str, str]:
    return {"Authorization": f"Bearer {pc.credentials['admin_token']}"}


async def _start_session(pc: Playcast, offer: str | None = None, env: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(group, session id, SignalResponse) of a new ACTIVE session of the demo game."""

    def run() -> tuple[str, str, str]:
        client = pc.boto3()
        group = client.list_stream_groups()["Items"][0]["Id"]
        app = client.get_stream_group(Identifier=group)["DefaultApplication"]["Id"]
        extra: dict[str, Any] = {"AdditionalEnvironmentVariables": env} if env else {}
        s = client.start_stream_session(Identifier=group, ApplicationIdentifier=app, Protocol="WebRTC",
                                        SignalRequest=offer or "NO_CLIENT_CONNECTION", **extra)
        sid = s["Arn"].split("/")[-1]
        client.get_waiter("stream_session_active").wait(Identifier=group, StreamSessionIdentifier=sid,
                                                        WaiterConfig={"Delay": 1, "MaxAttempts": 90})
        got = client.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
        return group, sid, got.get("SignalResponse", "")

    return await asyncio.to_thread(run)


async def _terminate(pc: Playcast, group: str, sid: str) -> None:
    await asyncio.to_thread(lambda: pc.boto3().terminate_stream_session(Identifier=group,
                                                                        StreamSessionIdentifier=sid))


async def _broadcast(http: httpx.AsyncClient, pc: Playcast, sid: str, **extra: Any) -> dict[str, Any]:
    r = await http.post("/v1/broadcasts", headers=_admin(pc), json={"streamSessionId": sid, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def _status(http: httpx.AsyncClient, pc: Playcast, bid: str) -> dict[str, Any]:
    r = await http.get(f"/v1/broadcasts/{bid}", headers=_admin(pc))
    assert r.status_code == 200, r.text
    return r.json()


async def _publisher_offer(silent_port: int) -> tuple[RTCPeerConnection, str]:
    """A real browser-like sendonly offer (aiortc) whose only candidate is a UDP port that never answers, so the
    publisher stays connecting (not failed) while the test works on its session. The caller closes it."""
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer.addTransceiver("audio", direction="sendonly")
    peer.addTransceiver("video", direction="sendonly")
    await peer.setLocalDescription(await peer.createOffer())
    lines, seen = [], False
    for line in peer.localDescription.sdp.split("\r\n"):
        if line.startswith("m="):
            seen = False
        if line.startswith("a=candidate:"):
            if seen:
                continue
            seen, line = True, f"a=candidate:1 1 udp 2130706431 127.0.0.1 {silent_port} typ host"
        lines.append(line)
    return peer, "\r\n".join(lines)


class Player:
    """The session's player: a real WebRTC client (aiortc) that decodes the game's video and counts frames."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.createDataChannel("input")
        self.pc.createDataChannel("messages")
        self.frame_times: list[float] = []
        self.pc.on("track", self._track)

    def _track(self, track) -> None:  # type: ignore[no-untyped-def]
        if track.kind != "video":
            return

        async def read() -> None:
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                self.frame_times.append(time.monotonic())

        asyncio.ensure_future(read())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return json.dumps({"type": "offer", "sdp": self.pc.localDescription.sdp})

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(**json.loads(answer)))

    async def fps(self, seconds: float = 3.0) -> float:
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        return sum(1 for t in self.frame_times if t >= t0) / (time.monotonic() - t0)


# ---------------------------------------------------------------------------------------------------------------
async def test_ffmpeg_whip_muxer_publishes_into_the_stage(pc: Playcast, tmp_path: Path) -> None:
    group, sid, _ = await _start_session(pc)
    async with httpx.AsyncClient(base_url=pc.base_url, timeout=30) as http:
        b = await _broadcast(http, pc, sid)
        bid = b["broadcastId"]
        # Nothing published yet: the stage's WHEP answers 409 + Retry-After.
        early = WhepViewer(f"{pc.base_url}/whep/{bid}/cam")
        r = await early.start(http)
        await early.close()
        assert r.status_code == 409 and int(r.headers["retry-after"]) > 0

        cert, key = ecdsa_certificate(tmp_path)
        publisher = FfmpegPublisher(b["whipIngestUrl"], b["publishToken"], cert, key, seconds=60).start()
        viewer = WhepViewer(f"{pc.base_url}/whep/{bid}/cam")
        try:
            async def connected() -> bool:
                p = (await _status(http, pc, bid))["stage"].get("publisher")
                return bool(p and p["connected"] and p["videoSize"] == [320, 240])

            await wait_until(connected, 40, "FFmpeg's publisher connected with 320x240 video")
            r = await viewer.start(http)
            assert r.status_code == 201, r.text
            assert r.headers["location"].startswith(f"/whep/{bid}/cam/")
            await wait_until(lambda: len(viewer.frames) >= 30, 30, "30 decoded frames from the stage")
            _, w, h, mean = viewer.frames[-1]
            assert (w, h) == (320, 240)
            assert dominant(mean) == "g", f"the stage shows FFmpeg's green picture, got mean RGB {mean}"
            await wait_until(lambda: sum(rms > 1000 for rms in viewer.audio_rms) >= 10, 30,
                             "FFmpeg's 440 Hz tone through the stage's Opus")
            stage = (await _status(http, pc, bid))["stage"]
            assert stage["live"] and stage["viewers"] == 1 and stage["renditionSize"] == [320, 240]
        finally:
            code, out = publisher.stop()
        assert code == 0, out
        assert "published" in out
        # The muxer DELETEs its session when it closes: the stage is empty at once.
        await wait_until(lambda: _live(http, pc, bid, False), 10, "the stage empty after FFmpeg's DELETE")
        await viewer.close()
        await http.delete(f"/v1/broadcasts/{bid}", headers=_admin(pc))
    await _terminate(pc, group, sid)


async def _live(http: httpx.AsyncClient, pc: Playcast, bid: str, want: bool) -> bool:
    return (await _status(http, pc, bid))["stage"]["live"] is want


# ---------------------------------------------------------------------------------------------------------------
async def test_ingest_statuses_for_bad_input(pc: Playcast) -> None:
    group, sid, _ = await _start_session(pc)
    peers: list[RTCPeerConnection] = []
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # swallows the ingest's connectivity checks
    silent.bind(("127.0.0.1", 0))
    async with httpx.AsyncClient(base_url=pc.base_url, timeout=30) as http:
        b = await _broadcast(http, pc, sid, private=True)
        bid, url = b["broadcastId"], f"/whip/{b['broadcastId']}"
        auth = {"Authorization": f"Bearer {b['publishToken']}"}
        sdp_h = {"Content-Type": "application/sdp"}
        peer, offer = await _publisher_offer(silent.getsockname()[1])
        peers.append(peer)

        # Discovery and CORS.
        r = await http.options(url)
        assert r.status_code == 200 and r.headers["accept-post"] == "application/sdp"
        assert r.headers["access-control-allow-origin"] == "*"
        assert "Location" in r.headers["access-control-expose-headers"]
        assert (await http.get(url)).status_code == 204
        assert (await http.head(url)).status_code == 204
        assert (await http.get("/whip/b-unknown")).status_code == 404

        # Content type, malformed SDP, unacceptable offers.
        assert (await http.post(url, content=offer, headers={**auth, "Content-Type": "text/plain"})).status_code == 415
        assert (await http.post(url, content=b"hello", headers={**auth, **sdp_h})).status_code == 400
        assert (await http.post(url, content=b"v=0\r\ns=-\r\n", headers={**auth, **sdp_h})).status_code == 400
        assert (await http.post(url, content=b"\xff\xfe", headers={**auth, **sdp_h})).status_code == 400
        two_video = offer + offer[offer.index("m=video"):]
        r = await http.post(url, content=two_video, headers={**auth, **sdp_h})
        assert r.status_code == 422 and "at most one" in r.text
        r = await http.post(url, content=offer.replace("a=sendonly", "a=recvonly"), headers={**auth, **sdp_h})
        assert r.status_code == 422 and "sendonly" in r.text
        r = await http.post(url, content=offer.replace("H264/90000", "H265/90000").replace("VP8/90000", "AV1/90000"),
                            headers={**auth, **sdp_h})
        assert r.status_code == 422 and "codec" in r.text

        # Auth: missing, wrong; unknown broadcast.
        r = await http.post(url, content=offer, headers=sdp_h)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert (await http.post(url, content=offer, headers={**sdp_h, "Authorization": "Bearer nope"})).status_code \
            == 403
        assert (await http.post(url, content=offer, headers={**sdp_h, **{"Authorization": f"Bearer {b['viewerToken']}"}})
                ).status_code == 403  # a viewer token does not publish
        assert (await http.post("/whip/b-unknown", content=offer, headers={**auth, **sdp_h})).status_code == 404

        # A good offer: 201 + Location + ETag + answer; the admin token publishes too and replaces the first.
        r1 = await http.post(url, content=offer, headers={**auth, **sdp_h})
        assert r1.status_code == 201, r1.text
        assert r1.headers["content-type"].startswith("application/sdp") and r1.text.startswith("v=0")
        assert "a=recvonly" in r1.text and "a=sendonly" not in r1.text
        loc1, etag1 = r1.headers["location"], r1.headers["etag"]
        assert loc1.startswith(f"/whip/{bid}/") and etag1.startswith('"')
        assert (await http.get(loc1, headers=auth)).status_code == 204

        # PATCH (RFC 8840 trickle / ICE restart): 415, 428, 412, 422, 204.
        frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\na=mid:0\r\n" \
               "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
        trickle = {**auth, "Content-Type": "application/trickle-ice-sdpfrag"}
        assert (await http.patch(loc1, content=frag, headers={**auth, **sdp_h})).status_code == 415
        assert (await http.patch(loc1, content=frag, headers=trickle)).status_code == 428
        assert (await http.patch(loc1, content=frag, headers={**trickle, "If-Match": '"stale"'})).status_code == 412
        assert (await http.patch(loc1, content=frag, headers={**trickle, "If-Match": "*"})).status_code == 422
        assert (await http.patch(loc1, content=frag, headers={**trickle, "If-Match": etag1})).status_code == 204
        bad = "a=candidate:garbage\r\n"
        assert (await http.patch(loc1, content=bad, headers={**trickle, "If-Match": etag1})).status_code == 400
        assert (await http.patch(loc1, content=frag, headers={"Content-Type": "application/trickle-ice-sdpfrag",
                                                              "If-Match": etag1})).status_code == 401

        peer2, offer2 = await _publisher_offer(silent.getsockname()[1])
        peers.append(peer2)
        r2 = await http.post(url, content=offer2, headers={**_admin(pc), **sdp_h})
        assert r2.status_code == 201
        loc2 = r2.headers["location"]
        assert loc2 != loc1
        stage = (await _status(http, pc, bid))["stage"]
        assert stage["publisher"]["id"] == loc2.rsplit("/", 1)[1]  # the newer publisher replaced the older
        assert (await http.delete(loc1, headers=auth)).status_code == 404
        assert (await http.delete(loc2)).status_code == 401
        assert (await http.delete(loc2, headers=auth)).status_code == 200
        assert (await http.delete(loc2, headers=auth)).status_code == 404
        assert not (await _status(http, pc, bid))["stage"]["live"]

        # The stage's WHEP: private broadcast rules; 409 while nothing is published; unknown viewer 404.
        cam = f"/whep/{bid}/cam"
        viewer_peer, viewer_offer = await _viewer_offer()
        peers.append(viewer_peer)
        assert (await http.post(cam, content=viewer_offer, headers=sdp_h)).status_code == 401
        assert (await http.post(cam, content=viewer_offer, headers={**sdp_h, "Authorization": "Bearer x"})
                ).status_code == 403
        vt = {"Authorization": f"Bearer {b['viewerToken']}"}
        r = await http.post(cam, content=viewer_offer, headers={**sdp_h, **vt})
        assert r.status_code == 409 and r.headers["retry-after"]
        assert (await http.post(cam, content=b"v=0", headers={**vt, "Content-Type": "text/plain"})).status_code == 415
        assert (await http.post(cam, content=b"nope", headers={**vt, **sdp_h})).status_code == 400
        assert (await http.post("/whep/b-unknown/cam", content=viewer_offer, headers=sdp_h)).status_code == 404
        assert (await http.delete(f"{cam}/c999", headers=vt)).status_code == 404
        r = await http.options(cam)
        assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
        assert (await http.head(cam)).status_code == 401  # a private stage: even whether a webcam is live
        assert (await http.head(cam, headers=vt)).status_code == 200

        # An ended broadcast takes no publisher: 409.
        assert (await http.delete(f"/v1/broadcasts/{bid}", headers=_admin(pc))).status_code == 204
        r = await http.post(url, content=offer, headers={**auth, **sdp_h})
        assert r.status_code == 409 and "ended" in r.text
        r = await http.post(cam, content=viewer_offer, headers={**sdp_h, **vt})
        assert r.status_code == 404 and "ended" in r.text  # for good: players stop retrying
    for p in peers:
        await p.close()
    silent.close()
    await _terminate(pc, group, sid)


async def _viewer_offer() -> tuple[RTCPeerConnection, str]:
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer.addTransceiver("video", direction="recvonly")
    peer.addTransceiver("audio", direction="recvonly")
    await peer.setLocalDescription(await peer.createOffer())
    return peer, peer.localDescription.sdp


# ---------------------------------------------------------------------------------------------------------------
async def test_session_egress_redirected_down_then_up_and_env_sidecar(pc: Playcast) -> None:
    """The session's game goes out through playcast's WhipClient: the endpoint (a 307 redirector on another host
    address) is down first: the egress retries with backoff while the player's fps holds; then it comes up, the
    redirect is followed with the Bearer token kept, and the stage shows the game. A second session started with
    IVS_WHIP_ENDPOINT / IVS_STAGE_TOKEN (the seed's sidecar contract) publishes by itself."""
    player = Player()
    group, sid, answer = await _start_session(pc, offer=await player.offer())
    await player.accept(answer)
    await wait_until(lambda: len(player.frame_times) > 20, 30, "the player's first frames")
    port = free_port("127.0.0.2")
    sessions = [(group, sid)]
    viewer: WhepViewer | None = None
    try:
        async with httpx.AsyncClient(base_url=pc.base_url, timeout=30) as http:
            b = await _broadcast(http, pc, sid)
            bid = b["broadcastId"]
            fps_before = await player.fps()
            endpoint = f"http://127.0.0.2:{port}/whip/{bid}"
            again = await _broadcast(http, pc, sid, whipEgress={"url": endpoint, "token": b["publishToken"]})
            assert again["broadcastId"] == bid  # the live broadcast, now with an egress
            bad = await http.post("/v1/broadcasts", headers=_admin(pc),
                                  json={"streamSessionId": sid, "whipEgress": {"url": "rtmp://x/app"}})
            assert bad.status_code == 400

            async def retrying() -> dict[str, Any] | None:
                egress = (await _status(http, pc, bid))["whipEgress"]
                e = egress[0] if egress else None
                return e if e and e["state"] == "retrying" and e["attempts"] >= 2 else None

            e = await wait_until(retrying, 30, "the egress retrying against the down endpoint")
            assert e["origin"] == "api" and "unreachable" in e["lastError"] and e["nextRetryAt"] > time.time() - 1
            assert e["url"] == endpoint and "token" not in json.dumps(e).lower()
            fps_down = await player.fps()
            assert fps_down >= 0.75 * fps_before, (fps_before, fps_down)

            redirector = Redirector(pc.base_url)
            async with LoopbackServer(redirector.app(), port, host="127.0.0.2"):

                async def connected() -> bool:
                    egress = (await _status(http, pc, bid))["whipEgress"]
                    return bool(egress and egress[0]["state"] == "connected")

                await wait_until(connected, 60, "the egress connected once the endpoint is up")
                posts = [s for s in redirector.seen if s[0] == "POST"]
                assert posts and posts[-1][1] == f"/whip/{bid}" and posts[-1][3].startswith(b"v=0")
                assert posts[-1][2] == f"Bearer {b['publishToken']}"
                viewer = WhepViewer(f"{pc.base_url}/whep/{bid}/cam")
                r = await viewer.start(http)
                assert r.status_code == 201, r.text
                await wait_until(lambda: len(viewer.frames) >= 20, 30, "the game through the stage")
                assert viewer.frames[-1][1:3] == SIZE
                stage = (await _status(http, pc, bid))["stage"]
                assert stage["publisher"]["videoSize"] == list(SIZE)
                await viewer.close()
                viewer = None
                # Ending the broadcast stops its egress (DELETE to the session URL) and ends the stage.
                assert (await http.delete(f"/v1/broadcasts/{bid}", headers=_admin(pc))).status_code == 204
                ended = await _status(http, pc, bid)
                assert ended["status"] == "ENDED" and ended["whipEgress"] == [] and not ended["stage"]["live"]

            # The sidecar contract: IVS_WHIP_ENDPOINT / IVS_STAGE_TOKEN in AdditionalEnvironmentVariables.
            b2 = await _broadcast(http, pc, sid)
            group2, sid2, _ = await _start_session(pc, env={"IVS_WHIP_ENDPOINT": b2["whipIngestUrl"],
                                                            "IVS_STAGE_TOKEN": b2["publishToken"]})
            sessions.append((group2, sid2))

            async def published() -> bool:
                p = (await _status(http, pc, b2["broadcastId"]))["stage"].get("publisher")
                return bool(p and p["connected"] and p["videoSize"] == list(SIZE))

            await wait_until(published, 60, "session 2 publishing into broadcast 2's stage by itself")
            b3 = await _broadcast(http, pc, sid2)
            egress = b3["whipEgress"]
            assert len(egress) == 1 and egress[0]["origin"] == "env" and egress[0]["state"] == "connected"
            assert egress[0]["url"] == b2["whipIngestUrl"]
    finally:
        if viewer is not None:
            await viewer.close()
        await player.pc.close()
        for g, s in sessions:
            await _terminate(pc, g, s)
