"""The demo game on a real Xvfb: rendering, keyboard/mouse input via xdotool, the latency probe,
application messages over a real AppMessageBridge, and its sound through a real per-session PulseAudio."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat

import numpy as np
import pytest
from demo_support import LAUNCHER, ship_position, xdotool

from playcast.host.appmessages import AppMessageBridge
from playcast.host.audio import AudioSink

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
                       reason="needs Xvfb and xdotool"),
]


def test_launcher_is_executable_in_git():
    assert LAUNCHER.stat().st_mode & stat.S_IXUSR
    text = LAUNCHER.read_text()
    assert text.startswith("#!/bin/sh") and 'exec "${PLAYCAST_PYTHON:-python3}" -m playcast.demo.game "$@"' in text


async def wait_ship(game, predicate, timeout: float = 5.0, name: str | None = None) -> tuple[float, float]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        image = await game.screenshot()
        pos = ship_position(image)
        if pos is not None and predicate(pos):
            if name:
                await game.screenshot(name)
            return pos
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"ship at {pos}, condition not met")
        await asyncio.sleep(0.05)


async def test_renders_and_moves_with_keyboard_and_mouse(launch_demo):
    game = await launch_demo()
    image = await game.wait_rendered()
    await game.screenshot("start")
    assert image.shape == (720, 1280, 3)
    # a real picture: background, targets, HUD text, ship
    assert (np.all(image == (14, 16, 32), axis=2)).mean() > 0.5  # mostly background
    assert np.all(image == (255, 90, 120), axis=2).sum() > 1000  # targets
    assert image[14:46, 84:260].max() > 200  # score text next to (never inside) the probe area
    start = ship_position(image)
    assert start is not None

    # keyboard: hold Right -> the ship moves right; hold Up (W) -> it moves up
    await xdotool(game.display, "keydown", "Right")
    await asyncio.sleep(0.4)
    await xdotool(game.display, "keyup", "Right")
    after_right = await wait_ship(game, lambda p: p[0] > start[0] + 80, name="after-right")
    assert abs(after_right[1] - start[1]) < 3
    await xdotool(game.display, "keydown", "w")
    await asyncio.sleep(0.3)
    await xdotool(game.display, "keyup", "w")
    after_up = await wait_ship(game, lambda p: p[1] < after_right[1] - 60)
    assert abs(after_up[0] - after_right[0]) < 3
    # and it stops when the key is released
    still = await game.screenshot()
    await asyncio.sleep(0.2)
    assert ship_position(await game.screenshot()) == ship_position(still)

    # mouse, absolute: the ship follows the pointer
    await xdotool(game.display, "mousemove", "300", "500")
    await wait_ship(game, lambda p: abs(p[0] - 300) < 4 and abs(p[1] - 500 + 2) < 6, name="mouse-abs")
    # mouse, relative: M locks the pointer; motion moves the ship by the relative amount
    await xdotool(game.display, "key", "m")
    await asyncio.sleep(0.2)
    before = ship_position(await game.screenshot())
    assert before is not None
    await xdotool(game.display, "mousemove_relative", "--", "120", "-40")
    moved = await wait_ship(game, lambda p: p[0] > before[0] + 60, name="mouse-rel")
    assert moved[1] < before[1] - 10
    assert "mouse mode: relative" in game.log()


async def test_latency_probe_square(launch_demo):
    game = await launch_demo({"PLAYCAST_DEMO_PROBE": "1"})
    await game.wait_rendered()

    async def probe_is(value: int, timeout: float = 3.0) -> np.ndarray:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            image = await game.screenshot()
            square = image[0:64, 0:64]
            if np.all(square == value):
                return image
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"probe square not {value}: min {square.min()} max {square.max()}")
            await asyncio.sleep(0.03)

    image = await probe_is(0)
    assert not np.all(image[0:64, 64:70] == 0)  # exactly 64 px wide: the background starts right after
    for _ in range(2):
        await xdotool(game.display, "keydown", "space")
        image = await probe_is(255)
        await xdotool(game.display, "keyup", "space")
        await probe_is(0)
    assert np.all(image[0:64, 0:64] == 255) and not np.all(image[64:70, 0:64] == 255)
    # held Space also fires: the score counts up eventually, but the square only tracks the key


async def test_no_probe_without_env(launch_demo):
    game = await launch_demo()
    image = await game.wait_rendered()
    assert not np.all(image[0:64, 0:64] == 0)  # background, stars, grid: not the black probe


async def test_echoes_application_messages_over_a_real_bridge(launch_demo):
    received: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    bridge = AppMessageBridge(lambda cid, data: received.put_nowait((cid, data)))
    port = await bridge.start()
    try:
        bridge.client_connected(7)
        assert bridge.send_to_app(7, b"queued before the game connected")
        game = await launch_demo({"PLAYCAST_APP_MESSAGE_PORT": str(port)})
        await bridge.wait_game_connected(20)
        assert await asyncio.wait_for(received.get(), 10) == (7, b"queued before the game connected")
        chat = json.dumps({"type": "chat", "user": "alice", "text": "nice shot \U0001F525"}).encode()
        reaction = json.dumps({"type": "reaction", "user": "bob", "emoji": "\U0001F44F"}).encode()
        for payload in (b"hello from the browser", chat, reaction, "héllo ünïcode".encode()):
            assert bridge.send_to_app(7, payload)
            assert await asyncio.wait_for(received.get(), 10) == (7, payload)
        bridge.client_connected(9)
        assert bridge.send_to_app(9, b"\x00\xffbinary")
        assert await asyncio.wait_for(received.get(), 10) == (9, b"\x00\xffbinary")
        await asyncio.sleep(0.2)
        image = await game.screenshot("messages")
        # the feed is drawn bottom-left: chat text, the golden reaction line and the raw message line
        feed = image[480:690, 0:700]
        assert np.all(feed == (225, 230, 245), axis=2).sum() > 100  # chat
        assert np.all(feed == (255, 215, 70), axis=2).sum() > 100  # reaction
        assert np.all(feed == (170, 220, 255), axis=2).sum() > 100  # raw messages
        assert np.all(image == (255, 215, 70), axis=2).sum() > 1000  # the reaction dropped a golden target

        # the bridge goes away and comes back on the same port: the game reconnects by itself
        await bridge.close()
        bridge = AppMessageBridge(lambda cid, data: received.put_nowait((cid, data)))
        assert await bridge.start(port) == port
        await bridge.wait_game_connected(20)
        bridge.client_connected(3)
        assert bridge.send_to_app(3, b"after reconnect")
        assert await asyncio.wait_for(received.get(), 10) == (3, b"after reconnect")
        assert "connected to the app-message bridge" in game.log()
    finally:
        await bridge.close()


async def test_plays_sound_into_the_session_sink(launch_demo, tmp_path):
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio not installed")
    sink = AudioSink(tmp_path / "session")
    (tmp_path / "session").mkdir()
    assert await sink.start(), sink.reason
    try:
        game = await launch_demo(sink.env())
        await game.wait_rendered()
        loud = 0
        reader = sink.chunks()
        # before any input: (mostly) silence; a target drifting into the ship may play one hit sound
        levels = []
        for _ in range(25):
            chunk = await asyncio.wait_for(reader.__anext__(), 5)
            levels.append(int(np.abs(np.frombuffer(chunk, "<i2")).max()))
        assert sum(level > 1000 for level in levels) <= 10, levels
        await xdotool(game.display, "keydown", "space")  # fire: each shot plays a blip
        try:
            for _ in range(50):  # one second of holding fire: a blip every 120 ms
                chunk = await asyncio.wait_for(reader.__anext__(), 5)
                if np.abs(np.frombuffer(chunk, "<i2")).max() > 1000:
                    loud += 1
        finally:
            await xdotool(game.display, "keyup", "space")
            await reader.aclose()
        assert loud >= 15, f"only {loud} loud chunks:\n{game.log()}"
        assert "audio on" in game.log()
    finally:
        code = await game.terminate()
        await sink.stop()
    assert code == 0


async def test_runs_silently_without_audio_device(launch_demo):
    game = await launch_demo({"SDL_AUDIODRIVER": "pulse", "PULSE_SERVER": "unix:/nonexistent/socket"})
    await game.wait_rendered()
    await xdotool(game.display, "key", "space")
    await asyncio.sleep(0.3)
    assert game.proc.returncode is None
    assert "running silently" in game.log()


async def test_bad_message_port_is_ignored(launch_demo):
    game = await launch_demo({"PLAYCAST_APP_MESSAGE_PORT": "not-a-port"})
    await game.wait_rendered()
    assert "ignoring PLAYCAST_APP_MESSAGE_PORT" in game.log()
