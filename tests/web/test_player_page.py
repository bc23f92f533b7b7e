"""The player page against the real server (control plane + /v1/play + web routes) with an empty host pool.

Covers the states reachable without a stream: login needed, no games, a game that cannot start (no capacity).
Screenshots are kept in test-artifacts/. Playing for real is tests/e2e/test_player.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from playcast.config import Settings
from playcast.control.login_tokens import LoginTokens
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.server import build_app
from playcast.web.routes import web_routes

from .support import ServerThread

ACCESS_KEY, SECRET_KEY = "PCAKTESTPLAYERPAGE", "secret-test-player-page"
ARTIFACTS = Path(os.environ.get("PLAYCAST_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def player_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    data_dir = tmp_path_factory.mktemp("playcast-data")
    tokens = LoginTokens()

    async def make():  # type: ignore[no-untyped-def]
        settings = Settings(data_dir=data_dir, bind_host="127.0.0.1", port=0, access_key_id=ACCESS_KEY,
                            secret_access_key=SECRET_KEY, placement_timeout_s=1,
                            app_source_roots=[tmp_path_factory.getbasetemp()])  # where the tests make games
        pool = LocalHostPool(settings.effective_location, 0, RuntimeOptions())
        await pool.start()
        app = build_app(settings, pool, admin_token="admin-token-test", login_tokens=tokens,
                        extra_routes=web_routes())
        return app, pool.close

    server = ServerThread(make).start()
    server.tokens = tokens  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"player-{name}.png"
    page.screenshot(path=str(path))
    return path


def test_without_login_the_page_asks_for_the_login_link(page: Page, player_server: ServerThread) -> None:
    page.goto(f"{player_server.url}/play")
    page.wait_for_selector("html[data-state=error][data-error=login]", timeout=10000)
    assert page.text_content("#cardTitle") == "Sign in to play"
    assert "login link" in (page.text_content("#cardText") or "")
    assert page.is_disabled("#play") and page.is_disabled("#end") and page.is_disabled("#fullscreen")
    assert page.evaluate("window.playcast ?? null") is None
    shot(page, "login")
    assert page.page_errors == []  # type: ignore[attr-defined]


def test_signed_in_without_games(page: Page, player_server: ServerThread) -> None:
    token = player_server.tokens.issue()  # type: ignore[attr-defined]
    page.goto(f"{player_server.url}/login?token={token}")
    page.wait_for_url("**/play")
    page.wait_for_selector("html[data-state=idle]")
    page.wait_for_function("document.getElementById('cardTitle').textContent === 'No games yet'")
    assert page.is_disabled("#play")
    assert page.text_content("#game") == "No games available"
    shot(page, "no-games")
    # the stats and messages toggles work without a stream
    page.click("#statsToggle")
    assert page.is_visible("#stats")
    page.click("#messagesToggle")
    assert page.is_visible("#messages")
    assert page.is_disabled("#messageText")
    page.click("#messagesClose")
    assert not page.is_visible("#messages")
    assert page.page_errors == []  # type: ignore[attr-defined]


def test_narrow_screen_layout(page: Page, player_server: ServerThread) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{player_server.url}/play")
    page.wait_for_selector("html[data-state=error][data-error=login]")
    box = page.locator("#card").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    shot(page, "login-narrow")


def sign_in(page: Page, server: ServerThread) -> None:
    token = server.tokens.issue()  # type: ignore[attr-defined]
    page.goto(f"{server.url}/login?token={token}")
    page.wait_for_url("**/play")


@pytest.mark.netns
def test_a_game_that_cannot_start_shows_the_reason(page: Page, player_server: ServerThread, tmp_path: Path) -> None:
    import boto3

    app_dir = tmp_path / "game"
    app_dir.mkdir()
    (app_dir / "game.sh").write_text("#!/bin/sh\nsleep 600\n")
    (app_dir / "game.sh").chmod(0o755)
    gls = boto3.client("gameliftstreams", endpoint_url=player_server.url, region_name=Settings().region,
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    fast = {"Delay": 1, "MaxAttempts": 60}
    app = gls.create_application(Description="Space Rocks", ExecutablePath="game.sh",
                                 RuntimeEnvironment={"Type": "UBUNTU", "Version": "22_04_LTS"},
                                 ApplicationSourceUri=str(app_dir))
    gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=fast)
    group = gls.create_stream_group(Description="g", StreamClass="gen4n_high", DefaultApplicationIdentifier=app["Id"])
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig=fast)

    sign_in(page, player_server)
    page.wait_for_selector("html[data-state=idle]")
    page.wait_for_function("!document.querySelector('#play').disabled")
    assert page.text_content("#game option") == "Space Rocks"
    shot(page, "ready")
    page.click("#play")
    page.wait_for_selector("html[data-state=starting]", timeout=5000)
    page.wait_for_selector("html[data-state=error][data-error=start]", timeout=30000)
    assert page.text_content("#cardTitle") == "Could not start the game"
    assert page.text_content("#cardText")
    assert page.is_enabled("#play") and page.is_disabled("#end")
    assert page.evaluate("localStorage.getItem('playcast.session')") is None
    shot(page, "start-failed")
    assert page.page_errors == []  # type: ignore[attr-defined]
    gls.delete_stream_group(Identifier=group["Id"])
