"""The player presses Go live; a viewer opens the link and watches the game; Go live again ends it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import chromium, playcast_up, wait_until

pytestmark = pytest.mark.netns

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_go_live_from_the_player_page() -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with playcast_up("--slots", "2") as pc, chromium() as browser:
        player = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        player.goto(pc.login_url)
        player.wait_for_function("!document.querySelector('#play').disabled", timeout=30000)
        player.click("#play")
        player.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=30000)
        player.wait_for_function("!document.querySelector('#goLive').disabled", timeout=10000)
        player.click("#goLive")
        player.wait_for_function("document.querySelector('#goLive').dataset.url", timeout=15000)
        link = player.evaluate("document.querySelector('#goLive').dataset.url")
        assert "/watch/" in link and "broadcast=" in link
        player.screenshot(path=str(ARTIFACTS / "player-live.png"))

        viewer = browser.new_context(viewport={"width": 1400, "height": 820}).new_page()
        viewer.goto(link)
        viewer.wait_for_function("document.documentElement.dataset.broadcast === 'live'", timeout=30000)
        viewer.wait_for_function("document.querySelector('#video').videoWidth === 1280", timeout=20000)
        wait_until(lambda: viewer.evaluate("document.querySelector('#video').getVideoPlaybackQuality()"
                                      ".totalVideoFrames") > 30, 20, "viewer frames")
        viewer.screenshot(path=str(ARTIFACTS / "viewer-from-go-live.png"))

        # The player's stream is unaffected, and a second press ends the broadcast for the viewer.
        assert player.evaluate("document.documentElement.dataset.state") == "playing"
        player.click("#goLive")
        player.wait_for_function("!document.querySelector('#goLive').classList.contains('live')", timeout=10000)
        viewer.wait_for_function("document.documentElement.dataset.broadcast === 'offline'", timeout=20000)
