"""LocalHostPool end to end at the host level: real Xvfb, real app processes, real aiortc client peer.

Runs inside a private network namespace (see tests/conftest.py `netns` marker): ICE only sees loopback."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto.types import LaunchSpec, Placement, PlacementError, SessionEvent, SignalError
from tests.leaks import ScopedTmp
from tests.peers import PlayerPeer as Client

pytestmark = pytest.mark.netns


def _app(tmp_path: Path, name: str, body: str) -> LaunchSpec:
    d = tmp_path / name
    d.mkdir()
    script = d / "run"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return LaunchSpec.make(f"a-{name}", str(d), "run")


@pytest.fixture
async def pool():
    with ScopedTmp() as scope:  # checks on exit that no process or session dir of these sessions is left
        p = LocalHostPool("local", 2, RuntimeOptions(width=640, height=360, fps=30, bitrate_kbps=1500,
                                                     temp_root=scope))
        events: list[SessionEvent] = []

        async def record(e: SessionEvent) -> None:
            events.append(e)

        p.on_event(record)
        p.events = events  # type: ignore[attr-defined]
        await p.start()
        yield p
        await p.close()


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_warm_session_streams_reconnects_to_same_process_and_cleans_up(pool, tmp_path: Path) -> None:
    spec = _app(tmp_path, "sleeper", "exec sleep 600")
    await pool.set_warm_target("sg-1", "local", [spec], 1)
    await wait_for(lambda: pool.capacity("local").idle == 1, 20)
    warm_runtime = next(s.runtime for s in pool.slots if s.idle_warm)
    app_pid = warm_runtime.app.pid

    client = Client()
    t0 = time.monotonic()
    result = await pool.place(Placement("s1", "sg-1", (), spec, await client.offer()), 30)
    assert result.warm is True
    await client.accept(result.signal_response)
    first = await asyncio.wait_for(client.first_frame, 10)
    assert first - t0 < 2.0
    await wait_for(lambda: len(client.frames) >= 20)
    assert client.frames[-1][1:] == (640, 360)
    await wait_for(lambda: any(e.kind == "client_connected" for e in pool.events))

    # Drop the client: the host reports it; the same app process keeps running.
    await client.close()
    await wait_for(lambda: any(e.kind == "client_disconnected" for e in pool.events))
    slot = next(s for s in pool.slots if s.session_id == "s1")
    assert slot.runtime.app.pid == app_pid and slot.runtime.app_running

    # Reconnect with a new offer to the same running app.
    client2 = Client()
    answer = await pool.connect("s1", await client2.offer())
    await client2.accept(answer)
    await asyncio.wait_for(client2.first_frame, 10)
    assert slot.runtime.app.pid == app_pid

    # Warm capacity is replenished with a fresh launch while the session runs.
    await wait_for(lambda: pool.capacity("local").idle == 1, 20)
    await pool.terminate("s1")
    await client2.close()
    assert any(e.kind == "ended" and e.session_id == "s1" for e in pool.events)
    assert not os.path.exists(f"/proc/{app_pid}")


async def test_cold_launch_when_launch_spec_differs(pool, tmp_path: Path) -> None:
    spec = _app(tmp_path, "sleeper", "exec sleep 600")
    await pool.set_warm_target("sg-1", "local", [spec], 1)
    await wait_for(lambda: pool.capacity("local").idle == 1, 20)
    other = LaunchSpec.make(spec.application_id, spec.source_dir, spec.executable, args=["--level", "2"])
    result = await pool.place(Placement("s2", "sg-1", (), other, None), 30)
    assert result.warm is False and result.signal_response is None
    slot = next(s for s in pool.slots if s.session_id == "s2")
    assert slot.runtime.spec.args == ("--level", "2")
    await pool.terminate("s2")


async def test_bad_offers_fail_cleanly_and_leave_others_running(pool, tmp_path: Path) -> None:
    spec = _app(tmp_path, "sleeper", "exec sleep 600")
    ok = await pool.place(Placement("good", "sg-1", (), spec, None), 30)
    assert ok.signal_response is None
    for bad in ["not json", json.dumps({"type": "answer", "sdp": "v=0"}), json.dumps({"type": "offer", "sdp": "garbage"}),
                json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"})]:
        with pytest.raises(PlacementError) as err:
            await pool.place(Placement("bad", "sg-1", (), spec, bad), 30)
        assert err.value.reason == "invalidSignalRequest"
        with pytest.raises(SignalError):
            await pool.connect("good", bad)
    assert "good" in pool.running_sessions() and "bad" not in pool.running_sessions()
    # The good session still accepts a real client.
    client = Client()
    await client.accept(await pool.connect("good", await client.offer()))
    await asyncio.wait_for(client.first_frame, 10)
    await client.close()
    await pool.terminate("good")


async def test_missing_or_crashing_app(pool, tmp_path: Path) -> None:
    missing = LaunchSpec.make("a-missing", str(tmp_path), "does-not-exist")
    with pytest.raises(PlacementError) as err:
        await pool.place(Placement("m", "sg-1", (), missing, None), 30)
    assert err.value.reason == "applicationExit"

    crasher = _app(tmp_path, "crasher", "exit 3")
    try:
        await pool.place(Placement("c", "sg-1", (), crasher, None), 30)
    except PlacementError as exc:  # it may die before placement finishes
        assert exc.reason == "applicationExit"
    else:
        await wait_for(lambda: any(e.kind == "app_exited" and e.session_id == "c" for e in pool.events))
        await pool.terminate("c")
    assert pool.running_sessions() == set()


async def test_placement_times_out_when_full(tmp_path: Path) -> None:
    scope = ScopedTmp()
    root = scope.__enter__()
    p = LocalHostPool("local", 1, RuntimeOptions(width=320, height=240, fps=30, temp_root=root))
    await p.start()
    try:
        spec = _app(tmp_path, "sleeper", "exec sleep 600")
        await p.place(Placement("one", "sg", (), spec, None), 30)
        with pytest.raises(PlacementError) as err:
            await p.place(Placement("two", "sg", (), spec, None), 0.5)
        assert err.value.reason == "placementTimeout"
        with pytest.raises(PlacementError):
            await p.place(Placement("three", "sg", ("elsewhere",), spec, None), 0.5)
    finally:
        await p.close()
    scope.__exit__(None, None, None)


async def test_platform_messages_reach_the_game_and_come_back(pool) -> None:
    demo = Path(__file__).resolve().parents[2] / "src" / "playcast" / "demo" / "app"
    spec = LaunchSpec.make("a-demo", str(demo), "playcast-demo")
    await pool.place(Placement("p1", "sg-1", (), spec, None), 60)
    slot = next(s for s in pool.slots if s.session_id == "p1")
    await wait_for(lambda: slot.runtime.bridge.game_connected, 20)
    payload = json.dumps({"type": "chat", "user": "viewer", "text": "hi game"}).encode()
    assert await pool.send_app_message("p1", payload)
    # The demo echoes every message to its sender: for client id 0 that is the platform -> APP_MESSAGE event.
    await wait_for(lambda: any(e.kind == "app_message" and e.detail.get("payload") == payload for e in pool.events), 10)
    assert not await pool.send_app_message("nope", b"x")
    assert not await pool.send_app_message("p1", b"x" * 70000)
    await pool.terminate("p1")
