"""The main job end to end: `playcast up`, the player page in headless Chromium, the demo game over WebRTC.

Play -> 1280x720 frames decoded -> keys move the ship (seen in the decoded video) -> an application message
round-trips -> the tab drops and reconnects to the same running game -> End -> nothing left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.harness import chromium, playcast_up, wait_until

pytestmark = pytest.mark.netns

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Centroid of the demo ship's colour (90, 220, 255) in the decoded video frame, in video pixels.
SHIP_POS_JS = """() => {
  const v = document.querySelector('#video');
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d', {willReadFrequently: true}); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0, sx = 0, sy = 0;
  for (let y = 0; y < c.height; y += 2) for (let x = 0; x < c.width; x += 2) {
    const i = (y * c.width + x) * 4;
    if (Math.abs(d[i] - 90) < 40 && Math.abs(d[i+1] - 220) < 40 && d[i+2] > 200) { n++; sx += x; sy += y; }
  }
  return n > 20 ? [sx / n, sy / n] : null;
}"""

FRAMES_DECODED_JS = """async () => {
  const r = await window.playcast.getVideoRTCStats();
  let n = 0; r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded; });
  return n;
}"""


def _game_pids(scope: Path) -> set[int]:
    """Demo game processes of the `playcast up` whose private TMPDIR is `scope` (not other tests' games)."""
    pids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if b"playcast.demo.game" in (p / "cmdline").read_bytes() and \
                        str(scope).encode() in (p / "environ").read_bytes():
                    pids.add(int(p.name))
            except OSError:
                pass
    return pids



def test_play_move_message_drop_reconnect_terminate() -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with playcast_up("--slots", "2") as pc, chromium() as browser:
        client = pc.boto3()
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        page.goto(pc.login_url)
        page.wait_for_function("!document.querySelector('#play').disabled", timeout=30000)
        # Wait for the warm slot so Play is a warm start.
        groups = client.list_stream_groups()["Items"]
        wait_until(lambda: client.get_stream_group(Identifier=groups[0]["Id"])["LocationStates"][0]
              .get("IdleCapacity", 0) >= 1, 60, "a warm slot")
        page.click("#play")
        page.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=30000)
        page.wait_for_function("document.querySelector('#video').videoWidth === 1280 && "
                               "document.querySelector('#video').videoHeight === 720", timeout=15000)
        wait_until(lambda: page.evaluate(FRAMES_DECODED_JS) > 30, 15, "30 decoded frames")
        sessions = client.list_stream_sessions_by_account()["Items"]
        assert len(sessions) == 1
        arn = sessions[0]["Arn"]
        group_id, session_id = arn.split("/")[-2], arn.split("/")[-1]
        wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
              ["Status"] == "CONNECTED", 10, "CONNECTED")
        page.screenshot(path=str(ARTIFACTS / "e2e-playing.png"))

        # Keys move the ship, as seen in the decoded video.
        start = wait_until(lambda: page.evaluate(SHIP_POS_JS), 10, "the ship in the video")
        page.keyboard.down("ArrowRight")
        time.sleep(0.4)
        page.keyboard.up("ArrowRight")
        # The demo moves 520 px/s: 0.4 s of ArrowRight is ~200 px (poll: a loaded machine may lag a little).
        right = wait_until(lambda: (p := page.evaluate(SHIP_POS_JS)) and p[0] - start[0] > 100 and p, 5, "ship moved right")
        page.keyboard.down("ArrowUp")
        time.sleep(0.3)
        page.keyboard.up("ArrowUp")
        moved = wait_until(lambda: (p := page.evaluate(SHIP_POS_JS)) and right[1] - p[1] > 60 and p, 5, "ship moved up")
        time.sleep(0.3)
        moved = page.evaluate(SHIP_POS_JS)

        # Audio: firing plays the demo's shot sound; it reaches the browser as Opus with real energy.
        energy_js = """async () => { const r = await window.playcast.getAudioRTCStats(); let e = 0;
            r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'audio') e = s.totalAudioEnergy || 0; });
            return e; }"""
        energy0 = page.evaluate(energy_js)
        for _ in range(5):
            page.keyboard.press("Space")
            time.sleep(0.15)
        wait_until(lambda: page.evaluate(energy_js) > energy0 + 1e-4, 10, "audio energy from the shot sound")

        # An application message round-trips through the game (the demo echoes it).
        page.click("#messagesToggle")
        page.fill("#messageText", "hello from e2e")
        page.click("#messageSend")
        page.wait_for_function(
            "[...document.querySelectorAll('#messageLog li')].filter(li => li.textContent.includes('hello from e2e'))"
            ".length >= 2", timeout=10000)  # ours (out) and the game's echo (in)
        page.screenshot(path=str(ARTIFACTS / "e2e-message.png"))

        # Drop the tab: the session waits for the client; the game keeps running.
        pids = _game_pids(pc.tmp)
        page.close()
        wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
              ["Status"] == "PENDING_CLIENT_RECONNECTION", 40, "PENDING_CLIENT_RECONNECTION")

        # Reopen: the page reconnects to the same session, same process, same game state.
        page = ctx.new_page()
        page.goto(pc.base_url + "/play")
        page.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=30000)
        wait_until(lambda: page.evaluate(FRAMES_DECODED_JS) > 10, 15, "frames after reconnect")
        wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
              ["Status"] == "CONNECTED", 10, "CONNECTED again")
        assert pids <= _game_pids(pc.tmp), "the game process was restarted"
        after = wait_until(lambda: page.evaluate(SHIP_POS_JS), 10, "the ship after reconnect")
        assert abs(after[0] - moved[0]) < 6 and abs(after[1] - moved[1]) < 6, (moved, after)
        page.screenshot(path=str(ARTIFACTS / "e2e-reconnected.png"))

        # End: terminated, and the session's processes are gone.
        page.click("#end")
        wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
              ["Status"] == "TERMINATED", 20, "TERMINATED")
        status = client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
        assert status["StatusReason"] == "apiTerminated"
        wait_until(lambda: not (pids - _game_pids(pc.tmp)) or len(pids) > 1, 10, "the session's game to exit")
        ctx.close()


def _browser_pids() -> list[int]:
    """Chromium processes started by this test process (through Playwright's driver)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, stack = [], [os.getpid()]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            if b"chromium" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def test_network_loss_goes_pending_then_the_page_resumes_the_same_game() -> None:
    with playcast_up("--slots", "2") as pc, chromium() as browser:
        client = pc.boto3()
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(pc.login_url)
        page.wait_for_function("!document.querySelector('#play').disabled", timeout=30000)
        page.click("#play")
        page.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=30000)
        arn = client.list_stream_sessions_by_account()["Items"][0]["Arn"]
        group_id, session_id = arn.split("/")[-2], arn.split("/")[-1]
        wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
              ["Status"] == "CONNECTED", 10, "CONNECTED")
        pids = _game_pids(pc.tmp)
        # The client goes silent without closing anything (as when the network drops): freeze the browser.
        frozen = _browser_pids()
        assert frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
                  ["Status"] == "PENDING_CLIENT_RECONNECTION", 30, "PENDING_CLIENT_RECONNECTION after silence")
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        # The page notices and reconnects to the same game by itself.
        wait_until(lambda: client.get_stream_session(Identifier=group_id, StreamSessionIdentifier=session_id)
              ["Status"] == "CONNECTED", 60, "CONNECTED after the network came back")
        page.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=30000)
        assert pids <= _game_pids(pc.tmp)
