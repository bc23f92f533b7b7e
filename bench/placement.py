"""StartStreamSession -> ACTIVE with 1 and 3 hosts, warm and cold, p50/p95 and their ratios, in one run.

Run: ./dev bench placement [--samples 5] [--slots 2] [--hosts 1,3]
For each host count: a `playcast server` (the control plane, no slots of its own, bound to the bridge) and N
`playcast host` processes (location `bench`, --slots each, 320x240@15 video), each in a network namespace of its
own on a bridge (tests/fleet/support.py; needs root in a private network namespace, which ./dev bench gives).
Two stream groups on the demo game: `warm` keeps TargetIdleCapacity 1 (one paused warm slot, claimed by a start
with the same launch), `cold` none, and its starts add an environment variable so they never match a warm slot.
One sample: StartStreamSession(SignalRequest=NO_CLIENT_CONNECTION) -> ACTIVE, seen by polling GetStreamSession
every 20 ms; then TerminateStreamSession -> TERMINATED, and for warm until the warm slot is back and paused.
Prints the load average before and after and the other sessions' processes running on the machine meanwhile."""

from __future__ import annotations

import argparse
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from client import pct, summary

from playcast.config import DEMO_APP_DIR
from tests.fleet.support import machines, playcast_host
from tests.harness import Playcast, playcast_up, wait_until
from tests.observability.scrape import Scrape, parse

LOCATION = "bench"
POLL_S = 0.02


def _admin(pc: Playcast) -> dict[str, str]:
    return {"Authorization": f"Bearer {pc.credentials['admin_token']}"}


def scrape(pc: Playcast) -> Scrape:
    r = httpx.get(f"{pc.base_url}/metrics", timeout=30,
                  headers={"Authorization": f"Bearer {pc.credentials['metrics_token']}"})
    r.raise_for_status()
    return parse(r.text)


def paused_warm(pc: Playcast) -> float:
    return sum(scrape(pc).labelled("playcast_fleet_host_slots_warm_paused", "host").values())


@dataclass
class Groups:
    app_id: str
    warm: str
    cold: str


def make_groups(pc: Playcast) -> Groups:
    gls = pc.boto3()
    app = gls.create_application(Description="bench", RuntimeEnvironment={"Type": "UBUNTU", "Version": "22_04_LTS"},
                                 ExecutablePath="playcast-demo", ApplicationSourceUri=str(DEMO_APP_DIR))
    gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig={"Delay": 0.5, "MaxAttempts": 240})
    ids = []
    for name, config in (("warm", {"LocationName": LOCATION, "TargetIdleCapacity": 1}),
                         ("cold", {"LocationName": LOCATION})):
        group = gls.create_stream_group(Description=name, StreamClass="gen4n_high",
                                        DefaultApplicationIdentifier=app["Id"], LocationConfigurations=[config])
        gls.get_waiter("stream_group_active").wait(Identifier=group["Id"],
                                                   WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})
        ids.append(group["Id"])
    return Groups(app["Id"], *ids)


def one_start(pc: Playcast, group: str, app_id: str, env: dict[str, str]) -> float:
    """Seconds from StartStreamSession to ACTIVE; the session is terminated (and TERMINATED) before returning."""
    gls = pc.boto3()
    t0 = time.monotonic()
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", AdditionalEnvironmentVariables=env)
    sid = s["Arn"].rsplit("/", 1)[-1]
    while True:
        got = gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
        if got["Status"] == "ACTIVE":
            break
        if got["Status"] != "ACTIVATING" or time.monotonic() - t0 > 120:
            raise RuntimeError(f"session {sid}: {got['Status']} {got.get('StatusReason')} {got.get('StatusMessage')}")
        time.sleep(POLL_S)
    elapsed = time.monotonic() - t0
    gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
    wait_until(lambda: gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)["Status"]
               == "TERMINATED", 60, "the session TERMINATED")
    return elapsed


@dataclass
class Run:
    hosts: int
    warm: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    warm_hits: float = 0.0  # placements the control plane counted as warm (should equal len(warm))


def bench_hosts(n_hosts: int, slots: int, samples: int) -> Run:
    run = Run(n_hosts)
    with ExitStack() as stack:
        m = stack.enter_context(machines())
        pc = stack.enter_context(playcast_up("--bind", "0.0.0.0", "--log-level", "warning", command="server"))
        url = f"http://{m.server_ip}:{pc.port}"
        for _ in range(n_hosts):
            token = httpx.post(f"{pc.base_url}/v1/hosts/tokens", json={}, headers=_admin(pc), timeout=30).json()
            stack.enter_context(playcast_host(m, url, token["token"], location=LOCATION, slots=slots))
        wait_until(lambda: sum(h["status"] == "ONLINE" for h in httpx.get(
            f"{pc.base_url}/v1/hosts", headers=_admin(pc), timeout=30).json()["items"]) == n_hosts, 90,
            f"{n_hosts} hosts online")
        groups = make_groups(pc)
        for i in range(samples):  # alternate, so that drift in the machine's load hits both alike
            wait_until(lambda: paused_warm(pc) >= 1, 90, "a paused warm slot")
            run.warm.append(one_start(pc, groups.warm, groups.app_id, {}))
            run.cold.append(one_start(pc, groups.cold, groups.app_id, {"PLAYCAST_BENCH_SAMPLE": str(i)}))
        run.warm_hits = sum(v for (name, labels), v in scrape(pc).samples.items()
                            if name == "playcast_placements_total" and ("warm", "true") in labels)
    return run


def others() -> str:
    """What else runs here: game, Xvfb and Chromium processes, and pytest runs (other sessions' tests)."""
    counts = {"demo game": 0, "Xvfb": 0, "chromium": 0, "pytest": 0}
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "playcast.demo.game" in cmd:
            counts["demo game"] += 1
        elif cmd.startswith("Xvfb"):
            counts["Xvfb"] += 1
        elif "chromium" in cmd and "--type=" not in cmd:
            counts["chromium"] += 1
        elif "bin/pytest" in cmd:
            counts["pytest"] += 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5, help="warm and cold starts per host count (default 5)")
    ap.add_argument("--slots", type=int, default=2, help="slots per host (default 2)")
    ap.add_argument("--hosts", default="1,3", help="host counts to compare, the first is the base (default 1,3)")
    args = ap.parse_args()
    counts = [int(x) for x in args.hosts.split(",")]
    print(f"cpus {os.cpu_count()}, load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"running here: {others()}")
    runs: list[Run] = []
    for n in counts:
        t0 = time.monotonic()
        run = bench_hosts(n, args.slots, args.samples)
        runs.append(run)
        print(f"{n} host(s) x {args.slots} slots ({time.monotonic() - t0:.0f} s, warm placements counted by the "
              f"server: {run.warm_hits:.0f}/{len(run.warm)}; load {os.getloadavg()[0]:.2f}; {others()})")
        print("  " + summary("warm StartStreamSession -> ACTIVE", run.warm))
        print("  " + summary("cold StartStreamSession -> ACTIVE", run.cold))
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = runs[0]
    for run in runs:
        print(f"{run.hosts} host(s): warm/cold p50 x{pct(run.warm, 50) / pct(run.cold, 50):.2f}, "
              f"p95 x{pct(run.warm, 95) / pct(run.cold, 95):.2f}")
        if run is not base:
            for kind in ("warm", "cold"):
                a: list[float] = getattr(run, kind)
                b: list[float] = getattr(base, kind)
                print(f"  {kind}: {run.hosts} hosts vs {base.hosts}: p50 x{pct(a, 50) / pct(b, 50):.2f}, "
                      f"p95 x{pct(a, 95) / pct(b, 95):.2f}")


if __name__ == "__main__":
    main()
