"""Broadcast a running session to WHEP viewers: real `playcast up`, real Chromium viewers, real HTTP errors."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import chromium, playcast_up, wait_until

pytestmark = pytest.mark.netns

VIEWER_PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="video" autoplay muted playsinline></video>
<script type="module">
import { WhepPlayer } from '/static/whep-player.js';
window.states = [];
window.startViewer = (url, token) => {
  const v = document.querySelector('#video');
  window.firstFrameMs = null;
  const t0 = performance.now();
  v.requestVideoFrameCallback(() => { window.firstFrameMs = performance.now() - t0; });
  window.player = new WhepPlayer(v, url, {token, onState: (s) => window.states.push(s)});
  return window.player.start();
};
window.ready = true;
</script></body></html>"""

FRAMES_JS = """async () => { const r = await window.player.getStats(); let n = 0;
  r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded; }); return n; }"""



def _viewer(browser, pc):  # type: ignore[no-untyped-def]
    page = browser.new_context().new_page()
    page.goto(pc.base_url + "/healthz")
    page.set_content(VIEWER_PAGE)
    page.wait_for_function("window.ready === true")
    return page


def _start_session(pc) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    client = pc.boto3()
    group = client.list_stream_groups()["Items"][0]["Id"]
    app = client.get_stream_group(Identifier=group)["DefaultApplication"]["Id"]
    s = client.start_stream_session(Identifier=group, ApplicationIdentifier=app, Protocol="WebRTC",
                                    SignalRequest="NO_CLIENT_CONNECTION")
    sid = s["Arn"].split("/")[-1]
    client.get_waiter("stream_session_active").wait(Identifier=group, StreamSessionIdentifier=sid,
                                                    WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return group, sid


def test_whep_viewers_public_and_private_and_errors() -> None:
    with playcast_up("--slots", "2") as pc, chromium() as browser:
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        http = httpx.Client(base_url=pc.base_url, timeout=30)
        group, sid = _start_session(pc)

        # The API: auth, validation, unknown session.
        assert http.post("/v1/broadcasts", json={"streamSessionId": sid}).status_code == 401
        assert http.post("/v1/broadcasts", headers=admin, content=b"{").status_code == 400
        assert http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": "nope"}).status_code == 404
        r = http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid})
        assert r.status_code == 201, r.text
        b = r.json()
        assert set(b) >= {"broadcastId", "viewerPageUrl", "whepUrl", "hlsUrl", "whipIngestUrl", "viewerToken"}
        # Creating again returns the same live broadcast.
        assert http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid}).json()["broadcastId"] \
            == b["broadcastId"]

        # Two viewers decode the same stream; the second joins late and still starts at a keyframe.
        v1 = _viewer(browser, pc)
        v1.evaluate("([u, t]) => window.startViewer(u, t)", [b["whepUrl"], None])
        wait_until(lambda: v1.evaluate(FRAMES_JS) > 30, 20, "viewer 1 frames")
        assert v1.evaluate("[document.querySelector('#video').videoWidth, document.querySelector('#video').videoHeight]") \
            == [1280, 720]
        v2 = _viewer(browser, pc)
        v2.evaluate("([u, t]) => window.startViewer(u, t)", [b["whepUrl"], None])
        wait_until(lambda: v2.evaluate("window.firstFrameMs") is not None, 20, "the late viewer's first frame")
        wait_until(lambda: v2.evaluate(FRAMES_JS) > 10, 20, "viewer 2 frames")
        status = http.get(f"/v1/broadcasts/{b['broadcastId']}/status").json()
        assert status["status"] == "LIVE" and status["viewerCount"] == 2

        # WHEP error paths.
        url = f"/whep/{b['broadcastId']}"
        assert http.post(url, content=b"v=0", headers={"Content-Type": "text/plain"}).status_code == 415
        assert http.post(url, content=b"garbage", headers={"Content-Type": "application/sdp"}).status_code == 400
        r = http.post(url, content=b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
                      headers={"Content-Type": "application/sdp"})
        assert r.status_code == 422
        assert http.post("/whep/b-unknown", content=b"v=0", headers={"Content-Type": "application/sdp"}).status_code \
            == 404
        opts = http.options(url)
        assert opts.status_code == 204 and opts.headers["accept-post"] == "application/sdp"
        assert opts.headers["access-control-allow-origin"] == "*"
        assert http.delete(f"{url}/v999").status_code == 404

        # A private broadcast of the same session is refused without / with a wrong token.
        http.delete(f"/v1/broadcasts/{b['broadcastId']}", headers=admin)
        wait_until(lambda: v1.evaluate("window.states.includes('ended') || window.states.includes('waiting')"), 20,
              "viewers told the broadcast ended")
        r = http.post(url, content=b"v=0\r\n", headers={"Content-Type": "application/sdp"})
        assert r.status_code == 409 and r.headers["retry-after"]
        priv = http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid, "private": True}).json()
        purl = f"/whep/{priv['broadcastId']}"
        assert http.post(purl, content=b"v=0\r\n", headers={"Content-Type": "application/sdp"}).status_code == 401
        assert http.post(purl, content=b"v=0\r\n", headers={"Content-Type": "application/sdp",
                                                              "Authorization": "Bearer wrong"}).status_code == 403
        assert http.get(f"/v1/broadcasts/{priv['broadcastId']}/status").status_code == 401
        v3 = _viewer(browser, pc)
        v3.evaluate("([u, t]) => window.startViewer(u, t)", [priv["whepUrl"], priv["viewerToken"]])
        wait_until(lambda: v3.evaluate(FRAMES_JS) > 10, 20, "private viewer frames")

        # Ending the session ends its broadcast.
        pc.boto3().terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
        wait_until(lambda: http.get(f"/v1/broadcasts/{priv['broadcastId']}", headers=admin).json()["status"] == "ENDED",
              20, "broadcast ended with its session")
