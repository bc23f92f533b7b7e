"""GameLift Streams capacity through stock boto3, on two hosts in two locations (the embedded host of the assembled
app in `local`, a second LocalHostPool in `edge-1` joined to the same Fleet over a MemoryChannel with a minted
host token): LocationStates from the hosts' figures, always-on capacity held for its group only, Add/Remove
StreamGroupLocations against the locations the hosts serve, sessions of a removed location ended with a reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from playcast.host.agent import HostAgent, HostIdentity
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto.channel import MemoryChannel
from tests.api.support import (
    FAST,
    REGION,
    AssembledServer,
    aws_error,
    create_app,
    make_settings,
    start_assembled,
)
from tests.control.support import make_app_dir
from tests.harness import wait_until
from tests.leaks import ScopedTmp

EDGE = "edge-1"


@dataclass
class TwoLocations:
    srv: AssembledServer
    edge: LocalHostPool
    tmp: Path

    @property
    def gls(self) -> Any:
        return self.srv.client()


def _options(root: Path) -> RuntimeOptions:
    return RuntimeOptions(width=160, height=120, fps=10, bitrate_kbps=200, encoder="x264", app_message_port=None,
                          temp_root=root)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[TwoLocations]:
    with ScopedTmp() as root:  # on exit: nothing of the edge host's sessions is left
        settings = make_settings(tmp_path, slots=1, width=160, height=120, fps=10, bitrate_kbps=200,
                                 encoder="x264", placement_timeout_s=4)
        srv = start_assembled(settings)
        joined: list[Any] = []
        try:
            _token_row, token = srv.run(srv.app.state.plane.host_tokens.create("edge host"))

            async def join() -> tuple[LocalHostPool, list[asyncio.Task[None]], MemoryChannel]:
                pool = LocalHostPool(EDGE, 2, _options(root), host_id="h-edge")
                await pool.start()
                agent = HostAgent(pool, HostIdentity("h-edge", token, EDGE, "test", "libx264"))
                host_end, server_end = MemoryChannel.pair()
                tasks = [asyncio.ensure_future(srv.built.fleet.serve(server_end, shares_disk=True)),  # this machine
                         asyncio.ensure_future(agent.serve(host_end))]
                await srv.built.fleet.wait_for_host("h-edge", 10)
                return pool, tasks, host_end

            joined.append(srv.run(join()))
            yield TwoLocations(srv, joined[0][0], tmp_path)
        finally:
            if joined:
                pool, tasks, host_end = joined[0]

                async def leave() -> None:
                    await host_end.close()
                    for task in tasks:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(task, 30)
                    await pool.close()

                srv.run(leave(), timeout=60)
            srv.stop()


def _state(gls: Any, group: str, location: str) -> dict[str, Any] | None:
    states = gls.get_stream_group(Identifier=group)["LocationStates"]
    return next((s for s in states if s["LocationName"] == location), None)


def _figures(state: dict[str, Any] | None) -> tuple[int, int, int] | None:
    if state is None:
        return None
    return state["RequestedCapacity"], state["AllocatedCapacity"], state["IdleCapacity"]


def _start(gls: Any, group: str, app: str, *locations: str) -> str:
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", Locations=list(locations))
    return str(s["Arn"].rsplit("/", 1)[-1])


def _session(gls: Any, group: str, sid: str) -> dict[str, Any]:
    return dict(gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid))


def _message(two: TwoLocations, sid: str) -> str:
    row = two.srv.run(two.srv.app.state.plane.sessions.row(sid))
    return str(row.status_message or "")


def test_capacity_across_two_locations_and_groups(two: TwoLocations) -> None:
    gls = two.gls
    app = create_app(gls, make_app_dir(two.tmp / "game"))["Id"]
    held = gls.create_stream_group(Description="held", StreamClass="gen4n_high", DefaultApplicationIdentifier=app,
                                   LocationConfigurations=[{"LocationName": REGION, "AlwaysOnCapacity": 1}])["Id"]
    gls.get_waiter("stream_group_active").wait(Identifier=held, WaiterConfig=FAST)
    assert _figures(_state(gls, held, REGION)) == (1, 1, 1)  # ACTIVE once its always-on slot is launched

    # a location no registered host serves is refused; edge-1, which a host serves, is added
    with aws_error("ValidationException", 400, "not available"):
        gls.add_stream_group_locations(Identifier=held, LocationConfigurations=[{"LocationName": "mars-1"}])
    out = gls.add_stream_group_locations(Identifier=held, LocationConfigurations=[
        {"LocationName": EDGE, "AlwaysOnCapacity": 1, "TargetIdleCapacity": 1, "MaximumCapacity": 2}])
    assert [(s["LocationName"], s["Status"]) for s in out["Locations"]] == [(EDGE, "ACTIVATING")]
    assert gls.get_stream_group(Identifier=held)["Status"] == "UPDATING_LOCATIONS"
    gls.get_waiter("stream_group_active").wait(Identifier=held, WaiterConfig=FAST)

    # edge-1 went ACTIVE once its floor was launched: Allocated/Idle come from the hosts' heartbeats, per location
    assert _figures(_state(gls, held, EDGE)) == (1, 1, 1)
    edge = _state(gls, held, EDGE)
    assert edge is not None and edge["Status"] == "ACTIVE"
    assert (edge["AlwaysOnCapacity"], edge["TargetIdleCapacity"], edge["MaximumCapacity"]) == (1, 1, 2)

    # local's one slot is held for `held`: another group's session there cannot take it
    other = gls.create_stream_group(Description="other", StreamClass="gen4n_high",
                                    DefaultApplicationIdentifier=app,
                                    LocationConfigurations=[{"LocationName": REGION, "MaximumCapacity": 1}])["Id"]
    gls.get_waiter("stream_group_active").wait(Identifier=other, WaiterConfig=FAST)
    refused = _start(gls, other, app, REGION)
    got = wait_until(lambda: (s := _session(gls, other, refused))["Status"] != "ACTIVATING" and s, 30,
                     "the other group's session given up")
    assert (got["Status"], got["StatusReason"]) == ("ERROR", "placementTimeout")
    assert "always-on" in _message(two, refused)  # why, for the operator (botocore's shape has no field for it)

    # a session of `held` in edge-1 takes its warm slot; target idle keeps one more launched within Maximum 2
    sid = _start(gls, held, app, EDGE)
    gls.get_waiter("stream_session_active").wait(Identifier=held, StreamSessionIdentifier=sid, WaiterConfig=FAST)
    assert _session(gls, held, sid)["Location"] == EDGE
    # (figures follow the hosts' heartbeats: a claimed warm slot may still be counted idle for a moment)
    wait_until(lambda: _figures(_state(gls, held, EDGE)) == (2, 2, 1), 60, "1 session + 1 idle, 2 requested")
    assert gls.get_stream_group(Identifier=held)["Status"] == "ACTIVE"

    # removing edge-1: REMOVING, its session ends TERMINATED with why, its slots are freed, then it is gone
    gls.remove_stream_group_locations(Identifier=held, Locations=[EDGE])
    ended = wait_until(lambda: (s := _session(gls, held, sid))["Status"] == "TERMINATED" and s, 30,
                       "the edge session ended")
    assert ended["StatusReason"] == "apiTerminated" and f"location {EDGE} was removed" in _message(two, sid)
    wait_until(lambda: _state(gls, held, EDGE) is None, 30, "edge-1 gone from the group")
    assert gls.get_stream_group(Identifier=held)["Status"] == "ACTIVE"
    wait_until(lambda: two.srv.run(_edge_empty(two.edge)), 30, "edge-1's slots freed")
    local = _state(gls, held, REGION)
    assert local is not None and local["AllocatedCapacity"] == 1  # the other location untouched


async def _edge_empty(pool: LocalHostPool) -> bool:
    return not pool.running_sessions() and not pool.idle_warm_groups(EDGE)


def test_always_on_past_the_hosts_slots_is_shown_not_allocated(two: TwoLocations) -> None:
    gls = two.gls
    app = create_app(gls, make_app_dir(two.tmp / "game"))["Id"]
    big = gls.create_stream_group(Description="big", StreamClass="gen4n_high", DefaultApplicationIdentifier=app,
                                  LocationConfigurations=[{"LocationName": REGION, "AlwaysOnCapacity": 3}])["Id"]

    def settled() -> dict[str, Any] | None:
        g = gls.get_stream_group(Identifier=big)
        return g if g["Status"] != "ACTIVATING" else None

    g = wait_until(settled, 30, "the group settled")
    assert (g["Status"], g["StatusReason"]) == ("ACTIVE_WITH_ERRORS", "noAvailableInstances")
    wait_until(lambda: (_state(gls, big, REGION) or {}).get("AllocatedCapacity") == 1, 60, "the one slot launched")
    local = _state(gls, big, REGION)
    assert local is not None and (local["AlwaysOnCapacity"], local["RequestedCapacity"]) == (3, 3)
