"""Fixtures for demo-game tests: a real Xvfb (host.display) and the demo started through its real launcher.

Everything started here is stopped after the test, and the test checks the game exited by itself on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from demo_support import HEIGHT, LAUNCHER, WIDTH, DemoGame

from playcast.host.display import VirtualDisplay


@pytest.fixture
async def display() -> AsyncIterator[VirtualDisplay]:
    d = await VirtualDisplay.start(WIDTH, HEIGHT)
    try:
        yield d
    finally:
        await d.stop()
    assert not Path(f"/tmp/.X11-unix/X{d.number}").exists()


@pytest.fixture
async def launch_demo(display: VirtualDisplay, tmp_path: Path) -> AsyncIterator[Callable]:
    """Start the demo through its launcher script, as the host does; yields a starter taking extra env."""
    games: list[DemoGame] = []

    async def start(extra_env: dict[str, str] | None = None, *args: str) -> DemoGame:
        home = tmp_path / f"home{len(games)}"
        home.mkdir()
        runtime = tmp_path / f"run{len(games)}"  # as a session gets: libpulse & co. keep their files in here
        runtime.mkdir(mode=0o700)
        log_path = tmp_path / f"demo{len(games)}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "DISPLAY": display.name,
            "PLAYCAST_PYTHON": sys.executable,
            **(extra_env or {}),
        }
        with open(log_path, "wb") as logfile:
            proc = await asyncio.create_subprocess_exec(
                str(LAUNCHER), "--seed", "7", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile, stderr=logfile)
        game = DemoGame(display, proc, log_path, tmp_path)
        games.append(game)
        return game

    yield start
    for game in games:
        code = await game.terminate()
        assert code == 0, f"demo did not exit cleanly on SIGTERM ({code}):\n{game.log()}"
        assert "demo stopped after" in game.log()
    # nothing the game touched lives outside the test's directory (e.g. libpulse's /tmp/pulse-* runtime dirs)
    for link in tmp_path.rglob("*-runtime"):
        assert os.path.realpath(link).startswith(str(tmp_path)), f"{link} -> {os.readlink(link)}"
