"""Control-plane recovery after every replica is killed: how long until the fleet is whole again, against how long
one replica takes to start at all, in the same run.

Run: ./dev bench recovery [--rounds 3] [--sessions 4]
Two `playcast server` replicas on one PostgreSQL + Redis, three `playcast host`s in two locations in namespaces of
their own (tests/fleet/test_replicas.py's cluster), `--sessions` sessions playing to aiortc players. Each round
SIGKILLs both replicas, waits 2 s, starts them again and times, from the restart:
  ready:     both replicas answer (their PLAYCAST_READY line: database open, migrations checked, routes up);
  hosts:     every host is ONLINE again on both replicas and heard since the kill (re-registered);
  sessions:  every session is still CONNECTED on its host as both replicas report it (reconciled, none ended);
and the largest gap between decoded frames of any player across the round (the video does not pass the server).
The ratio printed is hosts / ready: what the fleet needs beyond starting the processes."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import time
from typing import Any

import client  # noqa: F401 - puts the repository on sys.path (tests/ holds the cluster helpers)

from tests.fleet.test_replicas import RUNTIME, Cluster, _replica, _sid, cluster
from tests.peers import PlayerPeer


def _group(c: Cluster, per_location: int) -> tuple[str, str]:
    from playcast.config import DEMO_APP_DIR

    gls = c.gls(0)
    app = gls.create_application(Description="game", RuntimeEnvironment=RUNTIME, ExecutablePath="playcast-demo",
                                 ApplicationSourceUri=str(DEMO_APP_DIR))
    gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})
    locations = [{"LocationName": loc, "AlwaysOnCapacity": 0, "OnDemandCapacity": per_location}
                 for loc in ("loc-a", "loc-b")]
    deadline = time.monotonic() + 10
    while True:
        try:
            group = gls.create_stream_group(Description="recovery", StreamClass="gen4n_high",
                                            DefaultApplicationIdentifier=app["Id"], LocationConfigurations=locations)
            break
        except gls.exceptions.ValidationException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    return group["Id"], app["Id"]


async def _until(read: Any, ok: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await asyncio.to_thread(read)
        except Exception:  # noqa: BLE001 - a replica still starting
            value = None
        if value is not None and ok(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached: {value}")
        await asyncio.sleep(0.1)


async def _play(c: Cluster, group: str, app_id: str, n: int) -> tuple[list[str], list[PlayerPeer]]:
    ids, peers = [], []
    for i in range(n):
        peer = PlayerPeer()
        location = ["loc-a", "loc-b"][i % 2]
        s = await asyncio.to_thread(c.gls(i % 2).start_stream_session, Identifier=group, ApplicationIdentifier=app_id,
                                    Protocol="WebRTC", SignalRequest=await peer.offer(), Locations=[location])
        sid = _sid(s["Arn"])
        got = await _until(lambda sid=sid: c.gls(0).get_stream_session(Identifier=group, StreamSessionIdentifier=sid),
                           lambda g: g["Status"] == "ACTIVE" and g.get("SignalResponse"), 90)
        await peer.accept(got["SignalResponse"])
        await asyncio.wait_for(peer.first_frame, 30)
        ids.append(sid)
        peers.append(peer)
    return ids, peers


def _all_connected(c: Cluster, group: str, ids: list[str]) -> bool:
    return all(c.gls(i).get_stream_session(Identifier=group, StreamSessionIdentifier=sid)["Status"] == "CONNECTED"
               for i in (0, 1) for sid in ids)


async def main(rounds: int, sessions: int) -> None:
    cm = cluster()
    c = await asyncio.to_thread(cm.__enter__)
    peers: list[PlayerPeer] = []
    rows: list[dict[str, float]] = []
    try:
        group, app_id = await asyncio.to_thread(_group, c, (sessions + 1) // 2)
        ids, peers = await _play(c, group, app_id, sessions)
        await _until(lambda: _all_connected(c, group, ids), bool, 30)
        for r in range(rounds):
            killed = time.monotonic()
            for replica in c.replicas:
                os.kill(replica.process.pid, signal.SIGKILL)
            for replica in c.replicas:
                await asyncio.to_thread(replica.process.wait, 10)
            await asyncio.sleep(2)
            t0 = time.monotonic()
            starting = [asyncio.to_thread(_replica, c, i) for i in (0, 1)]
            ready_at: list[float] = []

            async def timed(job: Any, ready_at: list[float] = ready_at) -> Any:
                got = await job
                ready_at.append(time.monotonic())
                return got

            c.replicas = list(await asyncio.gather(*(timed(j) for j in starting)))
            ready = max(ready_at) - t0
            killed_wall = time.time() - (time.monotonic() - killed)
            await _until(lambda: (c.hosts_online(0), c.hosts_online(1)),
                         lambda both, since=killed_wall: all(set(h) == set(c.host_ids.values())
                                                             and all(x["lastHeartbeatAt"] > since for x in h.values())
                                          for h in both), 120)
            hosts = time.monotonic() - t0
            await _until(lambda: _all_connected(c, group, ids), bool, 60)
            reconciled = time.monotonic() - t0
            gaps = [(b - a, a) for p in peers
                    for ts in ([t for t, _, _ in p.frames if t >= killed - 0.5],)
                    for a, b in zip(ts, ts[1:], strict=False)]
            gap, gap_at = max(gaps, default=(float("inf"), killed))
            rows.append({"ready": ready, "hosts": hosts, "sessions": reconciled, "gap": gap})
            print(f"round {r + 1}: ready {ready:.2f} s, hosts re-registered {hosts:.2f} s, sessions reconciled "
                  f"{reconciled:.2f} s after the restart; largest frame gap {gap * 1000:.0f} ms, from "
                  f"{gap_at - t0:+.2f} s after the restart (the kill: {killed - t0:+.2f} s)", flush=True)
    finally:
        for p in peers:
            await p.close()
        await asyncio.to_thread(cm.__exit__, None, None, None)
    med = {k: statistics.median(row[k] for row in rows) for k in ("ready", "hosts", "sessions", "gap")}
    print(f"\n{rounds} rounds, 2 replicas, 3 hosts, {sessions} sessions playing; load average at the end "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"median: replicas ready {med['ready']:.2f} s, hosts re-registered {med['hosts']:.2f} s "
          f"(x{med['hosts'] / med['ready']:.2f} of a replica start), sessions reconciled {med['sessions']:.2f} s, "
          f"largest frame gap {med['gap'] * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.sessions))
