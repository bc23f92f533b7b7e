"""The stream-session state machine over a real database and real subprocesses (ProcessHostPool)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from playcast.config import Settings
from playcast.control.errors import ConflictError, NotFoundError, ValidationError
from playcast.control.plane import ControlPlane
from playcast.hostproto.types import SessionEventKind
from playcast.store.db import open_database
from tests.control.procpool import ProcessHostPool
from tests.control.support import make_app_dir, wait_until

OFFER = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"})
OFFER2 = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\n"})


async def setup_app(plane: ControlPlane, app_dir: Path, **group: Any) -> tuple[str, str]:
    app = await plane.applications.create({"Description": "game", "ExecutablePath": "game.sh",
                                           "RuntimeEnvironment": {"Type": "UBUNTU", "Version": "22_04_LTS"},
                                           "ApplicationSourceUri": str(app_dir)})

    async def ready():  # type: ignore[no-untyped-def]
        return (await plane.applications.get(app["Id"]))["Status"] == "READY"
    await wait_until(ready)
    g = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high",
                                          "DefaultApplicationIdentifier": app["Id"], **group})

    async def active():  # type: ignore[no-untyped-def]
        return (await plane.stream_groups.get(g["Id"]))["Status"] == "ACTIVE"
    await wait_until(active)
    return app["Id"], g["Id"]


async def start(plane: ControlPlane, group: str, app: str, signal: str = "NO_CLIENT_CONNECTION", **extra: Any) -> str:
    s = await plane.sessions.start(group, {"ApplicationIdentifier": app, "Protocol": "WebRTC",
                                           "SignalRequest": signal, **extra})
    assert s["Status"] == "ACTIVATING"
    return s["Arn"].rsplit("/", 1)[1]


async def settled(plane: ControlPlane, sid: str, timeout: float = 10) -> Any:
    row = await plane.sessions.wait_for(sid, lambda r: r.status != "ACTIVATING", timeout)
    assert row is not None
    return row


async def status_becomes(plane: ControlPlane, sid: str, status: str, timeout: float = 10) -> Any:
    row = await plane.sessions.wait_for(sid, lambda r: r.status == status, timeout)
    assert row is not None and row.status == status, (row.status, row.status_reason) if row else None
    return row


async def test_full_lifecycle_with_reconnect(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app, OFFER, UserId="player-1")
    row = await settled(plane, sid)
    assert row.status == "ACTIVE" and json.loads(row.signal_response)["type"] == "answer"
    assert row.location == "local" and row.host_id == "proc-host" and sid in pool.running
    created = row.updated_at
    await pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED)
    row = await status_becomes(plane, sid, "CONNECTED")
    assert row.updated_at >= created and row.streaming_started_at
    await pool.client_event(sid, SessionEventKind.INPUT)
    await pool.client_event(sid, SessionEventKind.CLIENT_DISCONNECTED)
    await status_becomes(plane, sid, "PENDING_CLIENT_RECONNECTION")
    with pytest.raises(ValidationError, match="new offer"):
        await plane.sessions.connect(group, sid, OFFER)
    out = await plane.sessions.connect(group, sid, OFFER2)
    assert json.loads(out["SignalResponse"])["type"] == "answer"
    assert pool.running[sid].offers == [OFFER, OFFER2]
    assert (await plane.sessions.get(group, sid))["Status"] == "ACTIVE"
    await pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED)
    await status_becomes(plane, sid, "CONNECTED")
    with pytest.raises(ConflictError):
        await plane.sessions.connect(group, sid, json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 3\r\n"}))
    await plane.sessions.terminate(group, sid)
    row = await status_becomes(plane, sid, "TERMINATED")
    assert row.status_reason == "apiTerminated" and row.streaming_ended_at
    assert sid not in pool.running
    await plane.sessions.terminate(group, sid)  # already over: no-op
    assert (await plane.sessions.get(group, sid))["StatusReason"] == "apiTerminated"


async def test_reconnect_with_bad_offer_keeps_session(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app)
    assert (await settled(plane, sid)).status == "ACTIVE"
    with pytest.raises(ValidationError):
        await plane.sessions.connect(group, sid, "not json")
    with pytest.raises(ValidationError, match="Invalid SignalRequest"):  # host refuses the SDP
        await plane.sessions.connect(group, sid, json.dumps({"type": "offer", "sdp": "v=0\r\nno video\r\n"}))
    assert (await plane.sessions.get(group, sid))["Status"] == "ACTIVE"
    out = await plane.sessions.connect(group, sid, OFFER, client_token="c" * 32)
    again = await plane.sessions.connect(group, sid, OFFER, client_token="c" * 32)  # idempotent replay
    assert out == again and len(pool.running[sid].offers) == 1


async def test_app_exit_terminates(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app)
    assert (await settled(plane, sid)).status == "ACTIVE"
    os.killpg(pool.running[sid].proc.pid, 9)  # the game crashes
    row = await status_becomes(plane, sid, "TERMINATED")
    assert row.status_reason == "applicationExit"


async def test_host_ending_a_session_is_reported(plane: ControlPlane, pool: ProcessHostPool,
                                                 app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app)
    assert (await settled(plane, sid)).status == "ACTIVE"
    await pool.terminate(sid)  # the host stops it on its own (not asked by the control plane)
    row = await status_becomes(plane, sid, "TERMINATED")
    assert row.status_reason == "internalError"


async def test_app_exiting_at_launch(plane: ControlPlane, tmp_path: Path) -> None:
    d = make_app_dir(tmp_path / "quick", script="#!/bin/sh\nexit 3\n")
    app, group = await setup_app(plane, d)
    sid = await start(plane, group, app)
    row = await settled(plane, sid)
    assert (row.status, row.status_reason) == ("TERMINATED", "applicationExit")


@pytest.mark.parametrize("signal, why", [
    ("{not json", "not JSON"), (json.dumps({"type": "answer", "sdp": "v=0"}), "offer"),
    (json.dumps({"type": "offer"}), "SDP"), (json.dumps({"type": "offer", "sdp": "v=0\r\nno video"}), "video"),
    ("[" * 100_000, "nested deeper than 64 levels"),  # was RecursionError in the placement task: ACTIVATING for ever
])
async def test_invalid_signal_request(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path, signal: str,
                                      why: str) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app, signal)
    row = await settled(plane, sid)
    assert (row.status, row.status_reason) == ("ERROR", "invalidSignalRequest")
    assert why in (row.status_message or "")
    assert not pool.running


async def test_terminate_while_activating_conflicts_and_placement_timeout(
        plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    plane.settings.placement_timeout_s = 2
    app, group = await setup_app(plane, app_dir)
    first = [await start(plane, group, app) for _ in range(2)]
    for sid in first:
        assert (await settled(plane, sid)).status == "ACTIVE"
    waiting = await start(plane, group, app)  # host full: stays ACTIVATING
    await asyncio.sleep(0.3)
    assert (await plane.sessions.get(group, waiting))["Status"] == "ACTIVATING"
    with pytest.raises(ConflictError, match="ACTIVATING"):
        await plane.sessions.terminate(group, waiting)
    row = await settled(plane, waiting, timeout=10)
    assert (row.status, row.status_reason) == ("ERROR", "placementTimeout")
    for sid in first:  # the others are untouched
        assert (await plane.sessions.get(group, sid))["Status"] == "ACTIVE"


async def test_session_stuck_activating_is_ended_by_the_timers(plane: ControlPlane, pool: ProcessHostPool,
                                                              app_dir: Path) -> None:
    """The backstop: a session still ACTIVATING past the placement timeout is ended ERROR(placementTimeout) by the
    session timers, and its placement (here really waiting for a host slot) is cancelled and lets go of its share
    of the group's capacity."""
    plane.settings.placement_timeout_s = 600  # the placement would wait this long on its own
    app, group = await setup_app(plane, app_dir,
                                 LocationConfigurations=[{"LocationName": "local", "MaximumCapacity": 3}])
    # long connection timeouts: the clock given to check_timeouts below must not end these
    first = [await start(plane, group, app, ConnectionTimeoutSeconds=3600) for _ in range(2)]
    for sid in first:
        assert (await settled(plane, sid)).status == "ACTIVE"
    stuck = await start(plane, group, app)  # under MaximumCapacity, but both host slots run a session: it waits
    row = await plane.sessions.row(stuck)
    assert len(pool.placements) == 2  # the control plane knows the slots: it does not ask a full host
    assert row is not None and row.status == "ACTIVATING"
    await plane.sessions.check_timeouts(now=row.created_at + plane.settings.placement_timeout_s + 60)
    row = await settled(plane, stuck, timeout=5)
    assert (row.status, row.status_reason) == ("ERROR", "placementTimeout") and row.status_message
    # its placement is gone: it no longer counts against MaximumCapacity, so the next one reaches the host
    nxt = await start(plane, group, app)
    await plane.sessions.terminate(group, first[0])
    assert (await settled(plane, nxt)).status == "ACTIVE"
    assert len(pool.placements) == 3 and stuck not in pool.running
    assert (await plane.sessions.get(group, first[1]))["Status"] == "ACTIVE"


async def test_stop_cancels_placements_at_once(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    """Stopping the control plane does not wait for placements: they are cancelled at once and their sessions end
    ERROR(internalError) "server shutting down" (what reconcile() would make of them after a restart)."""
    plane.settings.placement_timeout_s = 600
    app, group = await setup_app(plane, app_dir)
    for sid in [await start(plane, group, app) for _ in range(2)]:
        assert (await settled(plane, sid)).status == "ACTIVE"
    stuck = await start(plane, group, app)  # both slots run a session: its placement waits for one
    assert (await plane.sessions.row(stuck)).status == "ACTIVATING" and len(pool.placements) == 2  # type: ignore[union-attr]
    t0 = time.monotonic()
    await plane.stop()
    assert time.monotonic() - t0 < 3
    row = await plane.sessions.row(stuck)
    assert row is not None
    assert (row.status, row.status_reason, row.status_message) == ("ERROR", "internalError", "server shutting down")


async def test_waiting_placement_gets_freed_slot(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    first = [await start(plane, group, app) for _ in range(2)]
    for sid in first:
        await settled(plane, sid)
    waiting = await start(plane, group, app)
    await asyncio.sleep(0.2)
    await plane.sessions.terminate(group, first[0])
    assert (await settled(plane, waiting)).status == "ACTIVE"


async def test_group_maximum_capacity(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    plane.settings.placement_timeout_s = 1
    app, group = await setup_app(plane, app_dir,
                                 LocationConfigurations=[{"LocationName": "local", "MaximumCapacity": 1}])
    a = await start(plane, group, app)
    assert (await settled(plane, a)).status == "ACTIVE"
    b = await start(plane, group, app)
    row = await settled(plane, b)
    assert (row.status, row.status_reason) == ("ERROR", "placementTimeout")
    assert len(pool.placements) == 1  # the second never reached a host


@pytest.mark.parametrize("phase", ["ACTIVE", "PENDING_CLIENT_RECONNECTION"])
async def test_connection_and_reconnection_timeouts(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path,
                                                    phase: str) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app, OFFER, ConnectionTimeoutSeconds=1)
    await settled(plane, sid)
    if phase == "PENDING_CLIENT_RECONNECTION":
        await pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED)
        await status_becomes(plane, sid, "CONNECTED")
        await pool.client_event(sid, SessionEventKind.CLIENT_DISCONNECTED)
        await status_becomes(plane, sid, phase)
    t0 = time.monotonic()
    row = await status_becomes(plane, sid, "TERMINATED", timeout=5)
    assert row.status_reason == ("connectionTimeout" if phase == "ACTIVE" else "reconnectionTimeout")
    assert 0.5 < time.monotonic() - t0 < 5
    assert sid not in pool.running


async def test_idle_timeout_counts_from_last_input(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    plane.settings.idle_timeout_s = 2
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app, OFFER)
    await settled(plane, sid)
    await pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED)
    for _ in range(6):  # input keeps it alive past the idle timeout
        await asyncio.sleep(0.5)
        await pool.client_event(sid, SessionEventKind.INPUT)
    assert (await plane.sessions.get(group, sid))["Status"] == "CONNECTED"
    row = await status_becomes(plane, sid, "TERMINATED", timeout=5)
    assert row.status_reason == "idleTimeout"
    assert (sid, "idle") in pool.terminated


async def test_max_session_length(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app, OFFER, SessionLengthSeconds=1)
    await settled(plane, sid)
    await pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED)
    row = await status_becomes(plane, sid, "TERMINATED", timeout=5)
    assert row.status_reason == "maxSessionLengthTimeout"


async def test_start_validation(plane: ControlPlane, app_dir: Path, tmp_path: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    with pytest.raises(NotFoundError):
        await start(plane, "sg-000000000", app)
    with pytest.raises(NotFoundError):
        await start(plane, group, "a-000000000")
    other = await plane.applications.create({"Description": "other", "ExecutablePath": "game.sh",
                                             "RuntimeEnvironment": {"Type": "UBUNTU", "Version": "x"},
                                             "ApplicationSourceUri": str(app_dir)})
    with pytest.raises(ValidationError, match="not associated"):
        await start(plane, group, other["Id"])
    with pytest.raises(ValidationError, match="not in stream group"):
        await start(plane, group, app, Locations=["elsewhere"])
    with pytest.raises(NotFoundError):
        await plane.sessions.get(group, "NoSuchSession1")
    with pytest.raises(NotFoundError):
        await plane.sessions.terminate(group, "NoSuchSession1")


async def test_launch_args_and_env_reach_the_host(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app, AdditionalLaunchArgs=["--level", "2"],
                      AdditionalEnvironmentVariables={"B": "2", "A": "1"})
    await settled(plane, sid)
    spec = pool.placements[-1].launch
    assert spec.args == ("--level", "2") and spec.env == (("A", "1"), ("B", "2"))
    assert spec.source_dir == str(plane.applications.apps_dir / app)


async def test_waiters_wake_on_change(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    sid = await start(plane, group, app)
    await settled(plane, sid)
    waiter = asyncio.ensure_future(plane.sessions.wait_for(sid, lambda r: r.status == "CONNECTED", 10))
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED)
    row = await waiter
    assert row.status == "CONNECTED" and time.monotonic() - t0 < 0.9  # woken, not the 1 s polling fallback


async def test_restart_reconciles_lost_sessions(settings: Settings, app_dir: Path) -> None:
    pool1 = ProcessHostPool("local", slots=2)
    db = await open_database(settings.database)
    plane = ControlPlane(settings, pool1, db)
    await plane.start()
    try:
        app, group = await setup_app(plane, app_dir)
        kept = await start(plane, group, app)
        lost = await start(plane, group, app)
        await settled(plane, kept)
        await settled(plane, lost)
    finally:
        await plane.stop()
        await db.close()
    # "restart": the host still runs `kept`, `lost` is gone
    await pool1.terminate(lost)
    db = await open_database(settings.database)
    plane = ControlPlane(settings, pool1, db)
    await plane.start()
    try:
        assert (await plane.sessions.get(group, kept))["Status"] == "ACTIVE"
        got = await plane.sessions.get(group, lost)
        assert (got["Status"], got["StatusReason"]) == ("TERMINATED", "internalError")
        assert (await plane.applications.get(app))["Status"] == "READY"
        assert (await plane.stream_groups.get(group))["Status"] == "ACTIVE"
    finally:
        await plane.stop()
        await pool1.close()
        await db.close()


async def test_list_sessions_filters_and_pages(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app, group = await setup_app(plane, app_dir)
    ids = [await start(plane, group, app, "{bad", UserId=f"u{i}") for i in range(5)]
    for sid in ids:
        await settled(plane, sid)
    seen, token = [], None
    while True:
        page = await plane.sessions.list(group, None, None, 2, token)
        seen += [i["Arn"].rsplit("/", 1)[1] for i in page["Items"]]
        token = page["NextToken"]
        if not token:
            break
    assert seen == ids
    assert len((await plane.sessions.list(None, "ERROR", None, None, None))["Items"]) == 5
    assert (await plane.sessions.list(None, "ACTIVE", None, None, None))["Items"] == []
    with pytest.raises(ValidationError):
        await plane.sessions.list(None, None, None, None, "garbage!")
