"""Fixtures for browser tests: the real web routes under uvicorn on a free loopback port, headless Chromium.

Everything started here (server thread, socket, Chromium processes) is stopped and checked gone after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from .support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    WEBRTC_ARGS,
    ServerThread,
    chromium_pids,
    in_private_netns,
    static_app,
)


@pytest.fixture(scope="module")
def web_server() -> Iterator[ServerThread]:
    async def make() -> tuple[object, None]:
        return static_app(), None

    server = ServerThread(make).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    args = CHROMIUM_ARGS + (WEBRTC_ARGS if in_private_netns() else [])
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield b
        finally:
            b.close()
    assert chromium_pids() == set(), "Chromium processes left running"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
