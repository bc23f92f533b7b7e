"""The player shows their webcam: Play -> Go live -> Camera (Chromium's fake camera, published over WHIP from the
page) -> a viewer's page shows the webcam next to the gameplay; Camera off -> it disappears. Screenshots kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.harness import CHROMIUM, CHROMIUM_ARGS, playcast_up, wait_until
from tests.whip.support import OwnLeftovers

pytestmark = pytest.mark.netns

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ENV = {"PLAYCAST_WIDTH": "640", "PLAYCAST_HEIGHT": "360", "PLAYCAST_FPS": "30", "PLAYCAST_BITRATE_KBPS": "1200"}
CAM_FRAMES_JS = "document.querySelector('#cam')?.getVideoPlaybackQuality().totalVideoFrames ?? 0"


@contextmanager
def chromium_with_fake_camera() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            yield browser
        finally:
            browser.close()



def test_viewer_page_shows_the_camera_published_over_whip() -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    own = OwnLeftovers()
    with playcast_up("--slots", "1", env={**ENV, **own.env}) as pc, chromium_with_fake_camera() as browser:
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        player = browser.new_context(viewport={"width": 1400, "height": 900},
                                     permissions=["camera", "microphone"]).new_page()
        player.goto(pc.login_url)
        player.wait_for_function("!document.querySelector('#play').disabled", timeout=30000)
        player.click("#play")
        player.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=40000)
        assert player.is_disabled("#camera")  # nothing to publish into before going live
        player.click("#goLive")
        player.wait_for_function("document.querySelector('#goLive').dataset.url", timeout=15000)
        link = player.evaluate("document.querySelector('#goLive').dataset.url")
        broadcast_id = player.evaluate("document.documentElement.dataset.live")
        player.wait_for_function("!document.querySelector('#camera').disabled", timeout=10000)
        player.click("#camera")
        player.wait_for_function("document.querySelector('#camera').dataset.state === 'live'", timeout=30000)

        viewer = browser.new_context(viewport={"width": 1400, "height": 820}).new_page()
        viewer.goto(link)
        viewer.wait_for_function("document.documentElement.dataset.broadcast === 'live'", timeout=30000)
        viewer.wait_for_function("document.documentElement.dataset.cam === 'live'", timeout=30000)
        wait_until(lambda: viewer.evaluate(CAM_FRAMES_JS) > 30, 30, "webcam frames on the viewer page")
        cam_size = viewer.evaluate("[document.querySelector('#cam').videoWidth, document.querySelector('#cam').videoHeight]")
        # Chrome's fake camera at 640x360 (its encoder may scale down while its bandwidth estimate ramps up).
        assert cam_size[0] >= 320 and abs(cam_size[0] / cam_size[1] - 16 / 9) < 0.05, cam_size
        assert viewer.evaluate("document.querySelector('#video').videoWidth") == 640  # the game, next to it
        box = viewer.evaluate("(() => { const s = document.querySelector('#screen').getBoundingClientRect();"
                              " const c = document.querySelector('#camBox').getBoundingClientRect();"
                              " return [c.width > 100, c.right <= s.right + 1, c.bottom <= s.bottom + 1]; })()")
        assert box == [True, True, True]
        stage = httpx.get(f"{pc.base_url}/v1/broadcasts/{broadcast_id}", headers=admin).json()["stage"]
        assert stage["live"] and stage["publisher"]["connected"] and stage["viewers"] == 1
        assert stage["publisher"]["videoSize"][0] >= 320
        time.sleep(1.0)  # let a few more frames paint before the picture is taken
        viewer.screenshot(path=str(ARTIFACTS / "viewer-with-camera.png"))
        player.screenshot(path=str(ARTIFACTS / "player-camera-on.png"))

        # Camera off: the publisher DELETEs its WHIP session; the viewer's corner picture goes away.
        player.click("#camera")
        player.wait_for_function("document.querySelector('#camera').dataset.state === 'off'", timeout=10000)
        wait_until(lambda: not httpx.get(f"{pc.base_url}/v1/broadcasts/{broadcast_id}", headers=admin)
              .json()["stage"]["live"], 15, "the stage empty after Camera off")
        viewer.wait_for_function("document.documentElement.dataset.cam === 'off'", timeout=30000)
        assert viewer.evaluate("document.documentElement.dataset.broadcast") == "live"  # the game plays on
        assert player.evaluate("document.documentElement.dataset.state") == "playing"
    own.assert_clean()
