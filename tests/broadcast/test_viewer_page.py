"""The viewer page plays a broadcast: WHEP video with a live badge and viewer count; LL-HLS when asked (a private
broadcast's with its token)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.broadcast.test_whep import _start_session
from tests.harness import chromium, playcast_up, wait_until

pytestmark = pytest.mark.netns

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

DECODED_JS = """() => { const v = document.querySelector('#video');
  return v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0; }"""


def test_viewer_page_shows_the_live_broadcast() -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with playcast_up("--slots", "2") as pc, chromium() as browser:
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        http = httpx.Client(base_url=pc.base_url, timeout=30)
        group, sid = _start_session(pc)
        b = http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid, "private": True}).json()
        page = browser.new_context(viewport={"width": 1400, "height": 820}).new_page()
        page.goto(b["viewerPageUrl"])
        page.wait_for_function("document.documentElement.dataset.broadcast === 'live'", timeout=30000)
        page.wait_for_function("document.querySelector('#video').videoWidth === 1280", timeout=20000)
        wait_until(lambda: page.evaluate(DECODED_JS) > 30, 20, "frames in the viewer page")
        assert page.evaluate("document.documentElement.dataset.transport") == "whep"
        wait_until(lambda: "1 watching" in page.inner_text("#liveBadge"), 10, "the viewer count")
        page.screenshot(path=str(ARTIFACTS / "viewer-live.png"))

        # The same private broadcast over LL-HLS (hls.js): the page gives the token, the playlists carry it on.
        hls_page = browser.new_context(viewport={"width": 1400, "height": 820}).new_page()
        hls_requests: list[str] = []
        hls_page.on("request", lambda r: hls_requests.append(r.url) if "/hls/" in r.url else None)
        hls_page.goto(b["viewerPageUrl"] + "&mode=hls")
        hls_page.wait_for_function("document.documentElement.dataset.transport === 'hls'", timeout=30000)
        hls_page.wait_for_function("document.querySelector('#video').videoWidth === 1280", timeout=30000)
        wait_until(lambda: hls_page.evaluate(DECODED_JS) > 30, 30, "LL-HLS frames in the viewer page")
        hls_page.wait_for_function("document.documentElement.dataset.broadcast === 'live'", timeout=10000)
        hls_page.screenshot(path=str(ARTIFACTS / "viewer-private-hls.png"))
        # hls.js fetched the playlists, the init and media (segments or parts), every one by a URL with the token
        names = [u.split("?")[0].rsplit("/", 1)[-1] for u in hls_requests]
        assert {"master.m3u8", "index.m3u8", "init0.mp4"} <= set(names), names
        assert any(n.endswith(".m4s") for n in names), names
        assert all(f"token={b['viewerToken']}" in u for u in hls_requests), hls_requests

        # Without the viewer token a private broadcast shows nothing.
        other = browser.new_context().new_page()
        other.goto(b["viewerPageUrl"].split("&token=")[0])
        other.wait_for_function("document.documentElement.dataset.broadcast === 'error'", timeout=20000)

        # Ending the broadcast turns the page offline.
        http.delete(f"/v1/broadcasts/{b['broadcastId']}", headers=admin)
        page.wait_for_function("document.documentElement.dataset.broadcast === 'offline'", timeout=20000)
        pc.boto3().terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)


def test_recorded_broadcast_plays_back_as_vod_and_seeks() -> None:
    with playcast_up("--slots", "2") as pc, chromium() as browser:
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        http = httpx.Client(base_url=pc.base_url, timeout=30)
        group, sid = _start_session(pc)
        b = http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid, "record": True}).json()
        assert b["recording"]["status"] in ("STARTING", "RECORDING")
        # Someone watches live for a while, so there is something to record.
        page = browser.new_context(viewport={"width": 1400, "height": 820}).new_page()
        page.goto(b["viewerPageUrl"])
        page.wait_for_function("document.documentElement.dataset.broadcast === 'live'", timeout=30000)
        wait_until(lambda: http.get(f"/v1/broadcasts/{b['broadcastId']}", headers=admin).json()["recording"]
              ["status"] == "RECORDING", 20, "recording")
        # Wait until several segments are recorded, then end the session (and so the broadcast).
        vod_dir = pc.data_dir / "recordings" / "recordings" / b["broadcastId"]
        wait_until(lambda: len(list(vod_dir.glob("media/hls/*/seg*.m4s"))) >= 4, 30, "recorded segments")
        pc.boto3().terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
        wait_until(lambda: http.get(f"/v1/broadcasts/{b['broadcastId']}", headers=admin).json()["status"] == "ENDED",
              20, "broadcast ended")
        assert (vod_dir / "events" / "recording-started.json").exists()
        assert (vod_dir / "events" / "recording-ended.json").exists()
        assert list(vod_dir.glob("media/thumbnails/*.jpg"))
        master = http.get(f"/recordings/{b['broadcastId']}/media/hls/master.m3u8")
        assert master.status_code == 200
        media_uri = [line for line in master.text.splitlines() if line and not line.startswith("#")][0]
        media = http.get(f"/recordings/{b['broadcastId']}/media/hls/{media_uri}").text
        assert "#EXT-X-ENDLIST" in media and "#EXT-X-PROGRAM-DATE-TIME" in media
        # The viewer page switches to the recording, which plays and seeks.
        page.wait_for_function("document.documentElement.dataset.transport === 'vod'", timeout=30000)
        page.wait_for_function("isFinite(document.querySelector('#video').duration) && "
                               "document.querySelector('#video').duration > 3", timeout=30000)
        page.evaluate("document.querySelector('#video').play()")
        page.evaluate("""() => new Promise((resolve) => { const v = document.querySelector('#video');
            v.addEventListener('seeked', resolve, {once: true}); v.currentTime = v.duration / 2; })""")
        wait_until(lambda: page.evaluate("document.querySelector('#video').readyState") >= 2, 20, "frames after seek")
        page.screenshot(path=str(ARTIFACTS / "viewer-vod.png"))
        assert page.inner_text("#liveBadge") == "Recording"
        assert http.get(f"/recordings/{b['broadcastId']}/../../credentials.json").status_code == 404
