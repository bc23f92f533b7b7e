"""The Fleet with real hosts: LocalHostPools (real Xvfb and game processes) joined by HostAgents over in-memory
channels, so every request, reply, heartbeat and event crosses the host protocol's wire format.

Placement by location and load, warm slots matched by launch, requests routed to a session's host, a host that
goes away, refused and misbehaving hosts, cancelled placements."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from playcast.control.fleet import Fleet
from playcast.host.agent import HostAgent, HostIdentity, HostRefused
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto import codec
from playcast.hostproto.channel import MemoryChannel
from playcast.hostproto.messages import (
    Event,
    Heartbeat,
    Hello,
    Refused,
    Reply,
    Request,
    SessionState,
    Welcome,
)
from playcast.hostproto.types import LaunchSpec, Placement, PlacementError, SessionEvent, SessionEventKind
from tests.harness import await_until
from tests.leaks import ScopedTmp

TOKEN = "fleet-test-token"


def _app(tmp_path: Path, name: str = "game") -> LaunchSpec:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    script = d / "run"
    script.write_text("#!/bin/sh\nexec sleep 1000\n")
    script.chmod(0o755)
    return LaunchSpec.make(f"a-{name}", str(d), "run")


@dataclass
class World:
    fleet: Fleet
    scope: ScopedTmp
    pools: dict[str, LocalHostPool] = field(default_factory=dict)
    agents: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    channels: dict[str, MemoryChannel] = field(default_factory=dict)
    events: list[SessionEvent] = field(default_factory=list)
    ahead: float = 0.0  # the fleet's clock runs this far ahead of the real one (a test moves time on)

    async def add_host(self, host_id: str, location: str, slots: int = 1, token: str = TOKEN) -> HostAgent:
        pool = LocalHostPool(location, slots, RuntimeOptions(width=160, height=120, fps=10, bitrate_kbps=200,
                                                             encoder="x264", app_message_port=None,
                                                             temp_root=self.scope), host_id=host_id)
        await pool.start()
        self.pools[host_id] = pool
        agent = HostAgent(pool, HostIdentity(host_id, token, location, "test", "libx264"))
        host_end, server_end = MemoryChannel.pair()
        self.channels[host_id] = host_end
        asyncio.ensure_future(self.fleet.serve(server_end))
        self.agents[host_id] = asyncio.ensure_future(agent.serve(host_end))
        return agent

    async def rejoin(self, host_id: str, agent: HostAgent) -> None:
        """The host's link drops (its processes live on) and it dials again on a new channel."""
        await self.channels[host_id].close()
        with contextlib.suppress(Exception):
            await self.agents[host_id]
        host_end, server_end = MemoryChannel.pair()
        self.channels[host_id] = host_end
        asyncio.ensure_future(self.fleet.serve(server_end))
        self.agents[host_id] = asyncio.ensure_future(agent.serve(host_end))

    async def kill_host(self, host_id: str) -> None:
        """The host's link is cut (its channel closes) and its machine stops its sessions."""
        await self.channels[host_id].close()
        with contextlib.suppress(Exception):
            await self.agents[host_id]
        await self.pools.pop(host_id).close()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    with ScopedTmp() as scope:  # on exit: no process or session dir of these hosts is left

        async def authorize(hello: Hello) -> str | None:
            return None if hello.token == TOKEN else "wrong host token"

        w = World(Fleet(authorize, heartbeat_s=0.2, lost_after_s=1.5, clock=lambda: time.monotonic() + w.ahead),
                  scope)

        async def record(e: SessionEvent) -> None:
            w.events.append(e)

        w.fleet.on_event(record)
        try:
            yield w
        finally:
            await w.fleet.close()
            for task in w.agents.values():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 30)
            for pool in w.pools.values():
                await pool.close()


def _placement(session_id: str, spec: LaunchSpec, *locations: str, group: str = "sg-1") -> Placement:
    return Placement(session_id, group, tuple(locations), spec, None)


async def test_placement_follows_locations_then_load(world: World, tmp_path: Path) -> None:
    for host_id, location in (("h-a1", "loc-a"), ("h-a2", "loc-a"), ("h-b1", "loc-b")):
        await world.add_host(host_id, location)
        await world.fleet.wait_for_host(host_id, 10)
    assert world.fleet.locations() == ["loc-a", "loc-b"]
    assert world.fleet.capacity("loc-a").total_slots == 2
    spec = _app(tmp_path)
    first = await world.fleet.place(_placement("s-1", spec, "loc-b", "loc-a"), 20)
    assert (first.host_id, first.location, first.warm) == ("h-b1", "loc-b", False)
    second = await world.fleet.place(_placement("s-2", spec, "loc-a"), 20)
    third = await world.fleet.place(_placement("s-3", spec, "loc-a"), 20)
    assert {second.host_id, third.host_id} == {"h-a1", "h-a2"}  # the least loaded host each time
    assert world.fleet.running_sessions() == {"s-1", "s-2", "s-3"}
    await await_until(lambda: world.fleet.capacity("loc-a").allocated == 2, 5, "heartbeats show both busy")
    # requests go to the session's own host
    assert await world.fleet.send_app_message("s-3", b"hi") is True  # queued for the game by its host
    assert await world.fleet.send_app_message("s-none", b"hi") is False
    await world.fleet.terminate("s-2")
    await await_until(lambda: any(e.session_id == "s-2" and e.kind == SessionEventKind.ENDED
                                  for e in world.events), 10, "s-2 ENDED through the channel")
    assert "s-2" not in world.fleet.running_sessions()
    assert world.pools[second.host_id].running_sessions() == set()


async def test_a_full_location_sends_placements_to_the_next(world: World, tmp_path: Path) -> None:
    await world.add_host("h-a", "loc-a")
    await world.add_host("h-b", "loc-b")
    await world.fleet.wait_for_host("h-b", 10)
    await world.fleet.wait_for_host("h-a", 10)
    spec = _app(tmp_path)
    assert (await world.fleet.place(_placement("s-1", spec, "loc-a", "loc-b"), 20)).location == "loc-a"
    assert (await world.fleet.place(_placement("s-2", spec, "loc-a", "loc-b"), 20)).location == "loc-b"


async def test_warm_slots_are_matched_by_launch(world: World, tmp_path: Path) -> None:
    await world.add_host("h-1", "loc-a")
    await world.add_host("h-2", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    await world.fleet.wait_for_host("h-2", 10)
    spec, other = _app(tmp_path, "game"), _app(tmp_path, "other")
    await world.fleet.set_warm_target("sg-1", "loc-a", [spec], 1)
    await await_until(lambda: world.fleet.capacity("loc-a").idle == 1, 30, "one warm slot in loc-a")
    warm_host = next(h for h, p in world.pools.items() if p.warm_launches())
    result = await world.fleet.place(_placement("s-1", spec, "loc-a"), 20)
    assert (result.host_id, result.warm) == (warm_host, True)
    cold = await world.fleet.place(_placement("s-2", other, "loc-a"), 20)
    assert cold.warm is False and cold.host_id != warm_host


async def test_warm_slots_go_to_the_hosts_with_room(world: World, tmp_path: Path) -> None:
    """Warm targets are dealt by room: with h-1's only slot running a session, two groups' warm slots go to h-2
    and h-3 (one each), never to the full host; the heartbeats say which group each idle slot is kept for."""
    for host_id in ("h-1", "h-2", "h-3"):
        await world.add_host(host_id, "loc-a")
        await world.fleet.wait_for_host(host_id, 10)
    spec = _app(tmp_path)
    placed = await world.fleet.place(_placement("s-1", spec, "loc-a"), 20)
    assert placed.host_id == "h-1"  # the least loaded, by id
    await await_until(lambda: world.fleet.capacity("loc-a").allocated == 1, 10, "h-1 busy in its heartbeat")
    await world.fleet.set_warm_target("sg-1", "loc-a", [spec], 1)
    await world.fleet.set_warm_target("sg-2", "loc-a", [spec], 1)
    await await_until(lambda: world.fleet.capacity("loc-a").idle == 2, 30, "two warm slots in loc-a")
    assert world.pools["h-1"].idle_warm_groups("loc-a") == []
    assert sorted(world.pools["h-2"].idle_warm_groups("loc-a") + world.pools["h-3"].idle_warm_groups("loc-a")) == ["sg-1", "sg-2"]
    await await_until(lambda: sorted(g for c in world.fleet.hosts.values() if c.heartbeat
                                     for g in c.heartbeat.warm_groups) == ["sg-1", "sg-2"], 10, "warm groups heard")


async def test_a_lost_host_ends_its_sessions_and_leaves_the_others(world: World, tmp_path: Path) -> None:
    await world.add_host("h-1", "loc-a")
    await world.add_host("h-2", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    await world.fleet.wait_for_host("h-2", 10)
    spec = _app(tmp_path)
    a = await world.fleet.place(_placement("s-1", spec, "loc-a"), 20)
    b = await world.fleet.place(_placement("s-2", spec, "loc-a"), 20)
    assert a.host_id != b.host_id
    await world.kill_host(a.host_id)
    ended = await await_until(lambda: next((e for e in world.events if e.session_id == "s-1"
                                            and e.kind == SessionEventKind.ENDED), None), 10, "s-1 ENDED")
    assert a.host_id in str(ended.detail["message"])
    assert world.fleet.locations() == ["loc-a"] and world.fleet.capacity("loc-a").total_slots == 1
    assert world.fleet.running_sessions() == {"s-2"}
    assert not any(e.session_id == "s-2" and e.kind == SessionEventKind.ENDED for e in world.events)
    with pytest.raises(LookupError):
        await world.fleet.add_viewer("s-1", "v=0\r\n")


async def test_a_wrong_token_is_refused_and_told_why(world: World) -> None:
    await world.add_host("h-bad", "loc-a", token="not-the-token")
    with pytest.raises(HostRefused, match="wrong host token"):
        await world.agents["h-bad"]
    assert world.fleet.hosts == {}


async def test_a_host_that_sends_garbage_is_cut_off(world: World) -> None:
    host_end, server_end = MemoryChannel.pair()
    serving = asyncio.ensure_future(world.fleet.serve(server_end))
    await host_end.send(codec.encode(Hello("h-x", TOKEN, "loc-a", 1, "test", "libx264")))
    assert isinstance(codec.decode_server(await host_end.recv()), Welcome)
    for i in range(10):
        await host_end.send(f'{{"v": 1, "type": "heartbeat", "seq": "{i}"}}')
    await asyncio.wait_for(serving, 10)
    assert "h-x" not in world.fleet.hosts
    # a second host that says nothing in time, or something else first, is turned away with a reason
    host_end, server_end = MemoryChannel.pair()
    serving = asyncio.ensure_future(world.fleet.serve(server_end))
    await host_end.send(codec.encode(Welcome("h-y", 1)))
    refused = codec.decode_server(await host_end.recv())
    assert isinstance(refused, Refused) and "hello" in refused.reason
    await asyncio.wait_for(serving, 10)


async def test_a_cancelled_placement_is_undone_on_its_host(world: World, tmp_path: Path) -> None:
    await world.add_host("h-1", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    spec = _app(tmp_path)
    await world.fleet.place(_placement("s-1", spec, "loc-a"), 20)
    waiting = asyncio.ensure_future(world.fleet.place(_placement("s-2", spec, "loc-a"), 60))  # no slot: it waits
    await await_until(lambda: world.fleet.hosts["h-1"].pending_placements == 1, 5, "the placement sent")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await world.fleet.terminate("s-1")
    third = await world.fleet.place(_placement("s-3", spec, "loc-a"), 20)  # the freed slot goes to s-3, not s-2
    assert third.host_id == "h-1"
    assert world.pools["h-1"].running_sessions() == {"s-3"}


async def test_no_host_in_the_locations_is_a_placement_error(world: World, tmp_path: Path) -> None:
    await world.add_host("h-1", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    with pytest.raises(PlacementError, match="no host is connected in loc-z"):
        await world.fleet.place(_placement("s-1", _app(tmp_path), "loc-z"), 5)


async def test_a_host_that_comes_back_in_time_keeps_its_sessions(world: World, tmp_path: Path) -> None:
    agent = await world.add_host("h-1", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    joined: list[tuple[str, set[str]]] = []

    async def on_joined(host_id: str, sessions: set[str]) -> None:
        joined.append((host_id, sessions))

    world.fleet.on_host_joined(on_joined)
    await world.fleet.place(_placement("s-1", _app(tmp_path), "loc-a"), 20)
    await world.rejoin("h-1", agent)
    await await_until(lambda: joined, 10, "the host rejoined")
    assert joined == [("h-1", {"s-1"})]  # it says what it still runs
    conn = world.fleet.hosts["h-1"]
    for _ in range(4):  # past the window a lost host would have had, in steps a heartbeating host bridges
        world.ahead += (world.fleet.lost_after_s + 1) / 4
        await await_until(lambda: conn.last_seen >= world.fleet.clock() - 0.1, 10, "a heartbeat after the step")
        await world.fleet.check_hosts()
    assert not any(e.kind == SessionEventKind.ENDED for e in world.events)
    assert world.fleet.hosts.get("h-1") is conn  # not cut off
    assert world.fleet.running_sessions() == {"s-1"}
    assert await world.fleet.send_app_message("s-1", b"still there") is True  # routed to the new channel


async def test_a_host_cannot_take_over_another_hosts_session(world: World, tmp_path: Path) -> None:
    """A host (with a valid token) that claims a session running on another host, reports its end and lists it
    in heartbeats changes nothing: requests still go to the real host, nothing is reported ENDED; told to stop
    it, only the claimer is asked."""
    await world.add_host("h-1", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    await world.fleet.place(_placement("s-1", _app(tmp_path), "loc-a"), 20)
    host_end, server_end = MemoryChannel.pair()
    serving = asyncio.ensure_future(world.fleet.serve(server_end))
    await host_end.send(codec.encode(Hello("h-rogue", TOKEN, "loc-a", 1, "test", "libx264", sessions=("s-1",))))
    assert isinstance(codec.decode_server(await host_end.recv()), Welcome)
    await host_end.send(codec.encode(Event(SessionEvent("s-1", SessionEventKind.ENDED, time.time(),
                                                        {"message": "taken over"}))))
    await host_end.send(codec.encode(Heartbeat(1, 1, 1, 0, (), (SessionState("s-1"),))))
    rogue = world.fleet.hosts["h-rogue"]
    await await_until(lambda: rogue.heartbeat is not None, 10, "the rogue's frames were read")  # in order
    assert not any(e.session_id == "s-1" and e.kind == SessionEventKind.ENDED for e in world.events)
    assert await world.fleet.send_app_message("s-1", b"still mine") is True  # h-1 answers; the rogue never would
    stopping = asyncio.ensure_future(world.fleet.terminate_on("h-rogue", "s-1"))
    request = codec.decode_server(await asyncio.wait_for(host_end.recv(), 10))
    assert isinstance(request, Request) and request.op == "terminate" and request.args["session_id"] == "s-1"
    await host_end.send(codec.encode(Reply(request.id, gone=True)))
    await asyncio.wait_for(stopping, 10)
    assert await world.fleet.send_app_message("s-1", b"and still") is True
    assert not any(e.session_id == "s-1" and e.kind == SessionEventKind.ENDED for e in world.events)
    await host_end.close()
    await asyncio.wait_for(serving, 10)


async def _hello(world: World, host_id: str, key: str | None) -> tuple[MemoryChannel, object]:
    host_end, server_end = MemoryChannel.pair()
    asyncio.ensure_future(world.fleet.serve(server_end))
    await host_end.send(codec.encode(Hello(host_id, TOKEN, "loc-a", 1, "test", "libx264", host_key=key)))
    return host_end, codec.decode_server(await asyncio.wait_for(host_end.recv(), 10))


async def test_a_host_id_stays_with_the_machine_that_first_joined_with_it(world: World) -> None:
    """The id is bound to the host key it first joined with: another machine with a valid token but another key
    (or none) is refused and told why; the first machine reconnects as before."""
    first, answer = await _hello(world, "h-1", "key-of-machine-1")
    assert isinstance(answer, Welcome)
    for key in ("key-of-machine-2", None):
        other, answer = await _hello(world, "h-1", key)
        assert isinstance(answer, Refused) and "belongs to another machine" in answer.reason, answer
        await other.close()
    assert world.fleet.hosts["h-1"].hello.host_key == "key-of-machine-1"  # still the first one's connection
    again, answer = await _hello(world, "h-1", "key-of-machine-1")
    assert isinstance(answer, Welcome)
    await first.close()
    await again.close()


async def test_a_silent_host_is_cut_off_and_lost(world: World, tmp_path: Path) -> None:
    host_end, server_end = MemoryChannel.pair()
    serving = asyncio.ensure_future(world.fleet.serve(server_end))
    await host_end.send(codec.encode(Hello("h-quiet", TOKEN, "loc-a", 1, "test", "libx264", sessions=("s-9",))))
    assert isinstance(codec.decode_server(await host_end.recv()), Welcome)
    t0 = asyncio.get_running_loop().time()
    ended = await await_until(lambda: next((e for e in world.events if e.session_id == "s-9"), None), 10,
                              "the silent host's session ENDED")
    took = asyncio.get_running_loop().time() - t0
    assert ended.kind == SessionEventKind.ENDED and "h-quiet" in str(ended.detail["message"])
    assert world.fleet.lost_after_s <= took < 3 * world.fleet.lost_after_s + 1, took
    await asyncio.wait_for(serving, 10)
    assert "h-quiet" not in world.fleet.hosts


async def test_the_pause_setting_reaches_the_hosts_warm_slots(world: World) -> None:
    demo = LaunchSpec.make("a-demo", str(Path(__file__).resolve().parents[2] / "src" / "playcast" / "demo" / "app"),
                           "playcast-demo")
    await world.add_host("h-1", "loc-a")
    await world.fleet.wait_for_host("h-1", 10)
    pool = world.pools["h-1"]

    def warm_runtime():  # type: ignore[no-untyped-def]
        return next((s.runtime for s in pool.slots if s.idle_warm), None)

    await world.fleet.set_warm_target("sg-1", "loc-a", [demo], 1)  # pausing is the default
    runtime = await await_until(lambda: (r := warm_runtime()) is not None and r.paused and r, 60,
                                "the host's warm slot to be paused")
    await world.fleet.set_warm_target("sg-1", "loc-a", [demo], 1, pause_idle=False)
    await await_until(lambda: not runtime.paused and runtime.app_running, 20, "the slot to run again")
    assert warm_runtime() is runtime  # the same launch, resumed, not replaced
