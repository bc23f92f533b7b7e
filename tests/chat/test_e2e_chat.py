"""End to end in headless Chromium: the player plays the demo game on the player page, shares a viewer link; a
second browser context opens it (viewer page); both chat and react through the <playcast-chat> component; the
viewer's reaction reaches the game (its echo shows in both panels and a golden bonus target appears in the player's
video); the player deletes a message and bans the viewer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chat.conftest import assert_nothing_left
from tests.harness import Playcast, chromium, playcast_up, wait_until

pytestmark = pytest.mark.netns

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Pixels of the demo's golden bonus colour (255, 215, 70) in the player's decoded video.
GOLD_JS = """() => {
  const v = document.querySelector('#video');
  if (!v.videoWidth) return -1;
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d', {willReadFrequently: true}); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 8)
    if (Math.abs(d[i] - 255) < 30 && Math.abs(d[i+1] - 215) < 30 && Math.abs(d[i+2] - 70) < 45) n++;
  return n;
}"""


def panel_texts(page, selector: str = "li.msg") -> list[str]:  # type: ignore[no-untyped-def]
    return page.evaluate("""(sel) => [...document.querySelector('playcast-chat').shadowRoot
        .querySelectorAll('.log ' + sel)].map(li => li.textContent)""", selector)


@pytest.fixture
def pc(own_tmp: str) -> Iterator[Playcast]:
    """The real `playcast up` (demo game, warm slot, events + chat), its session files under our temp dir."""
    env = {"PLAYCAST_WIDTH": "960", "PLAYCAST_HEIGHT": "540", "PLAYCAST_FPS": "30", "TMPDIR": own_tmp}
    try:
        with playcast_up("--slots", "1", env=env) as up:
            gls = up.boto3()
            group = gls.list_stream_groups()["Items"][0]["Id"]
            wait_until(lambda: gls.get_stream_group(Identifier=group)["LocationStates"][0].get("IdleCapacity", 0)
                       >= 1, 90, "a warm slot with the demo game")
            yield up
    finally:
        assert_nothing_left(own_tmp)


def test_player_and_viewer_chat_react_moderate(pc: Playcast) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        # The player: log in, play, the chat panel opens beside the game with the player as its moderator.
        pctx = browser.new_context(viewport={"width": 1500, "height": 820})
        player = pctx.new_page()
        player.goto(pc.login_url)
        player.wait_for_function("!document.querySelector('#play').disabled", timeout=30000)
        player.click("#play")
        player.wait_for_function("document.documentElement.dataset.state === 'playing'", timeout=60000)
        player.wait_for_function("document.querySelector('#video').videoWidth > 0", timeout=30000)
        player.wait_for_function("document.querySelector('playcast-chat').dataset.state === 'live'", timeout=30000)
        assert player.evaluate("document.querySelector('playcast-chat').dataset.role") == "player"
        sid = player.evaluate("document.querySelector('playcast-chat').room")

        # Share: a viewer link (the clipboard may be unavailable headless; the button keeps the URL).
        player.click("#share")
        player.wait_for_function("document.querySelector('#share').dataset.url", timeout=15000)
        link = player.evaluate("document.querySelector('#share').dataset.url")
        assert f"/watch/{sid}?invite=" in link

        # The viewer: another browser context (no login), opens the link.
        vctx = browser.new_context(viewport={"width": 1300, "height": 760})
        viewer = vctx.new_page()
        viewer.goto(link)
        viewer.wait_for_function("document.querySelector('playcast-chat').dataset.state === 'live'", timeout=30000)
        assert "invite=" not in viewer.url  # the invitation is not kept in the address bar
        assert viewer.evaluate("document.querySelector('playcast-chat').dataset.role") == "viewer"
        # Names until people pick their own: the player is "Player", an invited guest "guest-xxxx".
        assert player.inner_text("playcast-chat .name") == "Player"
        assert viewer.inner_text("playcast-chat .name").startswith("guest-")
        player.wait_for_function("Number(document.querySelector('playcast-chat').dataset.viewers) >= 2",
                                 timeout=15000)
        # Without an invitation the viewer page says how to get in, and shows no chat.
        stranger = browser.new_context().new_page()
        stranger.goto(f"{pc.base_url}/watch/{sid}")
        stranger.wait_for_selector("#chatLocked:not([hidden])", timeout=15000)
        assert "share link" in stranger.inner_text("#chatLocked") and stranger.is_hidden("playcast-chat")
        stranger.context.close()

        # Chat both ways through the component's own form.
        viewer.fill("playcast-chat .text", "hello from the viewer")
        viewer.press("playcast-chat .text", "Enter")
        wait_until(lambda: any("hello from the viewer" in t for t in panel_texts(player)), 15, "viewer -> player")
        player.fill("playcast-chat .text", "welcome, viewer!")
        player.click("playcast-chat .send button")
        wait_until(lambda: any("welcome, viewer!" in t and "player" in t for t in panel_texts(viewer)), 15,
                   "player -> viewer (with the player badge)")
        assert viewer.locator("playcast-chat .mod-actions").count() == 0  # viewers get no moderator actions

        # A reaction from the viewer: floats on the player's screen, reaches the game (echo in both panels)
        # and the game drops a golden bonus target, seen in the player's video.
        gold_before = player.evaluate(GOLD_JS)
        viewer.click("playcast-chat .react[data-kind='heart']")
        player.wait_for_selector("#screen .float", timeout=10000)
        for page in (player, viewer):
            wait_until(lambda p=page: any("reacted ❤️" in t for t in panel_texts(p, "li.sys.game")), 20,
                       "the game's echo of the reaction")
            wait_until(lambda p=page: any("hello from the viewer" in t for t in panel_texts(p, "li.msg.game-seen")),
                       20, "the game's echo of the chat message marks it")
        wait_until(lambda: player.evaluate(GOLD_JS) > gold_before + 40, 20, "a golden bonus target in the game")
        player.screenshot(path=str(ARTIFACTS / "chat-player.png"))
        viewer.screenshot(path=str(ARTIFACTS / "chat-viewer.png"))

        # The viewer's connection drops (disconnected by the admin): the panel reconnects by itself and gets
        # what was said meanwhile.
        guest_id = viewer.evaluate("document.querySelector('playcast-chat').session.userId")
        viewer.evaluate("""() => { window.__states = [];
            document.querySelector('playcast-chat').addEventListener('chat-state', e => __states.push(e.detail.state)); }""")
        r = httpx.post(f"{pc.base_url}/v1/chat/{sid}/disconnections", json={"userId": guest_id},
                       headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"}, timeout=30)
        assert r.status_code == 200 and r.json()["connections"] == 1
        # (typed key by key: the game's input capture leaves keys typed into the chat box alone)
        player.locator("playcast-chat .text").press_sequentially("said while you were away")
        player.press("playcast-chat .text", "Enter")
        viewer.wait_for_function("__states.includes('reconnecting') && __states.at(-1) === 'live'", timeout=30000)
        wait_until(lambda: any("said while you were away" in t for t in panel_texts(viewer)), 15,
                   "the missed message")

        # Moderation from the player's panel: delete the viewer's message, then ban the viewer.
        viewer.fill("playcast-chat .text", "something rude")
        viewer.press("playcast-chat .text", "Enter")
        wait_until(lambda: any("something rude" in t for t in panel_texts(player)), 15, "the rude message")
        rude = player.locator("playcast-chat li.msg", has_text="something rude")
        rude.hover()
        rude.locator("button[data-act='delete']").click()
        for page in (player, viewer):
            wait_until(lambda p=page: any("message removed by a moderator" in t for t in panel_texts(p)) and
                       not any("something rude" in t for t in panel_texts(p)), 15, "the deletion applied")
        hello = player.locator("playcast-chat li.msg", has_text="hello from the viewer")
        hello.hover()
        hello.locator("button[data-act='ban']").click()
        viewer.wait_for_function("document.querySelector('playcast-chat').dataset.state === 'banned'",
                                 timeout=15000)
        wait_until(lambda: any("was banned" in t for t in panel_texts(player, "li.sys")), 15, "the ban notice")
        player.screenshot(path=str(ARTIFACTS / "chat-player-moderated.png"))
        viewer.screenshot(path=str(ARTIFACTS / "chat-viewer-banned.png"))

        # The player ends the session; the panel goes away.
        player.click("#end")
        player.wait_for_function("document.documentElement.dataset.state === 'ended'", timeout=30000)
        assert player.evaluate("document.querySelector('playcast-chat').hidden")
        pctx.close()
        vctx.close()
