"""hls.js in headless Chromium plays the LL-HLS of a real session (Xvfb + demo game + x264 worker + fan-out),
then plays the recording of it as VOD and seeks in it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import pytest
from hls_support import Viewers, serve
from playwright.async_api import Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from playcast.api.hls import hls_routes
from playcast.host.audio import AudioSink
from playcast.host.display import VirtualDisplay
from playcast.media.encoder import EncoderProcess
from playcast.media.fanout import PacketFanout
from playcast.media.hls import HlsPackager, HlsRegistry
from playcast.media.recorder import Recorder, RecordingStatus
from playcast.storage import LocalStorage
from playcast.storage.http import storage_routes
from playcast.web.routes import vendor_routes

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "src" / "playcast" / "demo" / "app" / "playcast-demo"
PAGE = Path(__file__).parent / "pages" / "player.html"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
WIDTH, HEIGHT, FPS = 640, 360, 30
SHIP_RGB = [90, 220, 255]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def _page(request: Request) -> FileResponse:
    return FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def _until(page: Page, expr: str, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expr)
        if value:
            return value
        if time.monotonic() > deadline:
            state = await page.evaluate("JSON.stringify(window.hlsState)")
            raise AssertionError(f"{what} did not happen within {timeout} s; player state: {state}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _game(display: VirtualDisplay, tmp_path: Path, audio: AudioSink):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "DISPLAY": display.name,
           "PLAYCAST_PYTHON": sys.executable, "PLAYCAST_WIDTH": str(WIDTH), "PLAYCAST_HEIGHT": str(HEIGHT),
           "PYTHONPATH": str(ROOT / "src"), "XDG_RUNTIME_DIR": str(tmp_path), **audio.env()}
    log = open(tmp_path / "game.log", "wb")  # noqa: SIM115
    proc = await asyncio.create_subprocess_exec(str(LAUNCHER), "--seed", "3", "--fps", str(FPS), env=env,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


@pytest.mark.timeout(240)
async def test_hlsjs_plays_live_session_and_recording(tmp_path: Path) -> None:
    started: list[int] = []  # every process this test starts; all must be gone at the end
    artifacts = ROOT / "test-artifacts" / "hls"
    artifacts.mkdir(parents=True, exist_ok=True)
    display = await VirtualDisplay.start(WIDTH, HEIGHT)
    started.append(display.process.pid)
    audio = AudioSink(tmp_path / "session")
    encoder: EncoderProcess | None = None
    fanout: PacketFanout | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await audio.start()
        started.extend(audio.pids())
        async with _game(display, tmp_path, audio) as game:
            started.append(game.pid)
            encoder = await EncoderProcess.start(display.name, WIDTH, HEIGHT, FPS, 1500, "x264")
            started.append(encoder.process.pid)
            fanout = PacketFanout(encoder.read, encoder.request_keyframe)
            fanout.on_first_sink = encoder.start_capture
            fanout.on_no_sinks = encoder.pause_capture
            fanout.start()
            sink = fanout.add_sink("hls", max_packets=240)
            packager = HlsPackager(FPS, request_keyframe=sink.request_keyframe, nominal_bitrate_kbps=1500)
            tasks.append(asyncio.ensure_future(packager.pump_video(sink)))
            if audio.available:
                tasks.append(asyncio.ensure_future(packager.pump_audio(audio.chunks())))
            registry = HlsRegistry()
            registry.add("live1", packager)
            storage = LocalStorage(tmp_path / "recordings")
            recorder = Recorder(packager, storage, "live1/rec", thumbnail_interval_s=2.0)
            await recorder.start()
            app = Starlette(routes=[*vendor_routes(), Route("/player", _page), *hls_routes(registry, viewers=Viewers()),
                                    *storage_routes(storage)])
            async with serve(app) as base, async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 700, "height": 700})
                    await page.goto(f"{base}/player?src={base}/hls/live1/master.m3u8")
                    # live: hls.js in low-latency mode plays parts and follows the live edge (how far behind is a
                    # benchmark figure, `./dev bench glass`; here only a loose bound that a stall cannot trip)
                    await _until(page, "hlsState.currentTime > 4 && !hlsState.paused && hlsState.partsLoaded > 5", 60,
                                 "live playback from parts")
                    state = await page.evaluate("hlsState")
                    assert state["supported"] and state["fatal"] is None, state
                    assert state["live"] and state["lowLatency"], state
                    assert (state["width"], state["height"]) == (WIDTH, HEIGHT)
                    await _until(page, "hlsState.behindWallClock !== null && hlsState.behindWallClock < 10", 20,
                                 "playback near the live edge")
                    t1, decoded1 = await page.evaluate("[hlsState.currentTime, hlsState.decoded]")
                    await _until(page, f"hlsState.currentTime > {t1 + 1.5} && hlsState.decoded > {decoded1 + 30}",
                                 20, "live playback going on")
                    # it is the game: its cyan ship is in the decoded picture, the picture is not flat
                    snap = await page.evaluate(f"snapshot({SHIP_RGB}, 50)")
                    assert snap["near"] > 30 and snap["std"] > 5, snap
                    if audio.available:
                        assert await page.evaluate("hlsState.audioBytes") > 0  # the AAC track decodes
                    await page.screenshot(path=str(artifacts / "live.png"))
                    assert game.returncode is None
                    # end of the broadcast: the last segment completes, the recording is finalized
                    await packager.close()
                    await recorder.stop()
                    registry.remove("live1")
                    assert recorder.status == RecordingStatus.ENDED and recorder.segments_written >= 5
                    assert recorder.thumbnails_written >= 2

                    # the recording plays as VOD and seeks
                    vod = await browser.new_page(viewport={"width": 700, "height": 700})
                    await vod.goto(f"{base}/player?src={base}/recordings/{recorder.playlist_key}")
                    await _until(vod, "hlsState.currentTime > 1 && hlsState.duration > 0", 60, "VOD playback")
                    vstate = await vod.evaluate("hlsState")
                    assert vstate["live"] is False and vstate["fatal"] is None, vstate
                    assert abs(vstate["duration"] - recorder.duration_s) < 1.0, (vstate, recorder.duration_s)
                    target = round(recorder.duration_s * 0.6, 1)
                    await vod.evaluate(f"document.getElementById('v').currentTime = {target}")
                    await _until(vod, f"hlsState.currentTime > {target + 0.5} && !hlsState.paused", 30,
                                 "playback after seeking")
                    snap = await vod.evaluate(f"snapshot({SHIP_RGB}, 50)")
                    assert snap["near"] > 30 and snap["std"] > 5, snap
                    await vod.screenshot(path=str(artifacts / "vod.png"))
                finally:
                    await browser.close()
    finally:
        if not packager.closed if "packager" in locals() else False:
            await packager.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if fanout is not None:
            await fanout.stop()
        if encoder is not None:
            await encoder.stop()
        await audio.stop()
        await display.stop()
    deadline = time.monotonic() + 5
    while [p for p in started if _alive(p)] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not [p for p in started if _alive(p)], "processes left running"
    assert not Path(f"/tmp/.X11-unix/X{display.number}").exists()
    assert not (tmp_path / "session" / "pulse").exists()
