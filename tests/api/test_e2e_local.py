"""End to end over the real LocalHostPool (Xvfb, audio sink, app, capture/encode worker per slot): warm slots,
cold launches, an app that exits, termination; and a real aiortc client that connects, drops and reconnects.

The WebRTC test needs the private network namespace (`netns` marker); the rest runs anywhere on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from tests.api.support import (
    FAST,
    REGION,
    ServerHandle,
    create_app,
    create_group,
    make_settings,
    session_id,
    start_server,
)
from tests.control.support import make_app_dir
from tests.harness import wait_until
from tests.leaks import ScopedTmp

MARKER = "pc-e2e-marker"
SCRIPT = f'#!/bin/sh\n# {MARKER}\nexec sleep "${{1:-1000}}"\n'


def _pids_of(arg: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:1] == [b"sleep"] and arg.encode() in cmd:
                out.append(int(p.name))
    return out


@pytest.fixture
def localserver(tmp_path: Path) -> Any:
    scope = ScopedTmp()
    root = scope.__enter__()

    async def make() -> LocalHostPool:
        pool = LocalHostPool(REGION, 2, RuntimeOptions(width=320, height=240, fps=15, bitrate_kbps=300,
                                                       encoder="libx264", app_message_port=None,
                                                       temp_root=root))
        await pool.start()
        return pool

    async def close(pool: LocalHostPool) -> None:
        await pool.close()

    handle = start_server(make_settings(tmp_path, placement_timeout_s=30), make, close)
    try:
        yield handle
    finally:
        handle.stop()
        scope.__exit__(None, None, None)



def _status(gls: Any, group: str, arn: str) -> dict[str, Any]:
    return gls.get_stream_session(Identifier=group, StreamSessionIdentifier=arn)


def test_warm_cold_exit_terminate(localserver: ServerHandle, tmp_path: Path) -> None:
    gls = localserver.client()
    app = create_app(gls, make_app_dir(tmp_path / "game", SCRIPT))
    group = create_group(gls, app["Id"], LocationConfigurations=[{"LocationName": REGION, "AlwaysOnCapacity": 1}])
    # a warm slot is launched for the group and shows in the capacity numbers
    wait_until(lambda: gls.get_stream_group(Identifier=group["Id"])["LocationStates"][0]["IdleCapacity"] == 1, 30,
          "a warm slot")
    warm = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                    SignalRequest="NO_CLIENT_CONNECTION")
    gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=warm["Arn"],
                                                 WaiterConfig=FAST)
    # a session with extra args cannot use the warm slot: cold launch with "sleep 4321"
    cold = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                    SignalRequest="NO_CLIENT_CONNECTION", AdditionalLaunchArgs=["4321"])
    gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=cold["Arn"],
                                                 WaiterConfig=FAST)
    loc = gls.get_stream_group(Identifier=group["Id"])["LocationStates"][0]
    assert loc["AllocatedCapacity"] == 2
    (pid,) = wait_until(lambda: _pids_of("4321"), 10, "the cold session's game process")
    os.kill(pid, signal.SIGKILL)  # the game crashes
    wait_until(lambda: _status(gls, group["Id"], cold["Arn"])["Status"] == "TERMINATED", 15, "applicationExit")
    assert _status(gls, group["Id"], cold["Arn"])["StatusReason"] == "applicationExit"
    assert _status(gls, group["Id"], warm["Arn"])["Status"] == "ACTIVE"  # the other session is unaffected
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=warm["Arn"])
    wait_until(lambda: _status(gls, group["Id"], warm["Arn"])["Status"] == "TERMINATED", 15, "TERMINATED")
    assert _status(gls, group["Id"], warm["Arn"])["StatusReason"] == "apiTerminated"
    gls.delete_stream_group(Identifier=group["Id"])
    gls.get_waiter("stream_group_deleted").wait(Identifier=group["Id"], WaiterConfig=FAST)
    wait_until(lambda: localserver.pool.capacity(REGION).allocated == 0, 15, "warm slot released")


async def _offer(pc: Any) -> str:
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("input")
    await pc.setLocalDescription(await pc.createOffer())
    return json.dumps({"type": "offer", "sdp": pc.localDescription.sdp})


async def _first_frame(pc: Any, answer: str) -> tuple[int, int]:
    from aiortc import RTCSessionDescription

    frames: asyncio.Queue[Any] = asyncio.Queue()

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def pump() -> None:
            while True:
                frames.put_nowait(await track.recv())
        asyncio.ensure_future(pump())

    doc = json.loads(answer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=doc["sdp"], type=doc["type"]))
    frame = await asyncio.wait_for(frames.get(), 20)
    return frame.width, frame.height


@pytest.mark.netns
def test_webrtc_connect_drop_reconnect(localserver: ServerHandle, tmp_path: Path) -> None:
    from aiortc import RTCPeerConnection

    gls = localserver.client()
    app = create_app(gls, make_app_dir(tmp_path / "game", SCRIPT))
    group = create_group(gls, app["Id"])
    loop = asyncio.new_event_loop()
    try:
        pc = RTCPeerConnection()
        offer = loop.run_until_complete(_offer(pc))
        s = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                     SignalRequest=offer, ConnectionTimeoutSeconds=30, AdditionalLaunchArgs=["7771"])
        gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                     WaiterConfig=FAST)
        answer = _status(gls, group["Id"], s["Arn"])["SignalResponse"]
        assert loop.run_until_complete(_first_frame(pc, answer)) == (320, 240)
        wait_until(lambda: _status(gls, group["Id"], s["Arn"])["Status"] == "CONNECTED", 15, "CONNECTED")
        (game_pid,) = wait_until(lambda: _pids_of("7771"), 10, "the game process")
        loop.run_until_complete(pc.close())
        wait_until(lambda: _status(gls, group["Id"], s["Arn"])["Status"] == "PENDING_CLIENT_RECONNECTION", 40,
              "PENDING_CLIENT_RECONNECTION")
        pc2 = RTCPeerConnection()
        offer2 = loop.run_until_complete(_offer(pc2))
        out = gls.create_stream_session_connection(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                   SignalRequest=offer2)
        assert loop.run_until_complete(_first_frame(pc2, out["SignalResponse"])) == (320, 240)
        wait_until(lambda: _status(gls, group["Id"], s["Arn"])["Status"] == "CONNECTED", 15, "CONNECTED again")
        assert _pids_of("7771") == [game_pid], "the game was restarted"
        gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=session_id(s["Arn"]))
        wait_until(lambda: _status(gls, group["Id"], s["Arn"])["Status"] == "TERMINATED", 15, "TERMINATED")
        loop.run_until_complete(pc2.close())
    finally:
        loop.close()


def test_a_game_that_cannot_start_leaves_the_group_active_not_allocated(localserver: ServerHandle, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A location waits ACTIVATING for its always-on slots to be launched, but not for ever: with a game that
    exits at once it is ACTIVE after the limit, and AllocatedCapacity says nothing runs."""
    from playcast.control import stream_groups

    monkeypatch.setattr(stream_groups, "PROVISION_LIMIT_S", 2.0)
    gls = localserver.client()
    app = create_app(gls, make_app_dir(tmp_path / "broken", "#!/nonexistent/interpreter\n"))
    group = create_group(gls, app["Id"], LocationConfigurations=[{"LocationName": REGION, "AlwaysOnCapacity": 1}])
    loc = gls.get_stream_group(Identifier=group["Id"])["LocationStates"][0]
    assert (loc["Status"], loc["AlwaysOnCapacity"], loc["AllocatedCapacity"]) == ("ACTIVE", 1, 0)
    gls.delete_stream_group(Identifier=group["Id"])
    gls.get_waiter("stream_group_deleted").wait(Identifier=group["Id"], WaiterConfig=FAST)
