"""Idle warm slots: their CPU paused vs running, the player's fps with and without them, claim -> first frame.

Run: ./dev bench warm [--parts cpu,fps,claim] [--cpu-seconds 20] [--fps-seconds 15] [--claims 10]
cpu:   one `playcast up --slots 2 --warm 1` plus a second stream group with the same demo game, one always-on slot
       and the tag playcast:pause-warm=false: two idle warm slots side by side, one paused, one running. CPU is
       utime+stime of every process of each slot (game, Xvfb, PulseAudio, parec, capture worker) over the window,
       in % of one core.
fps:   the player's decoded frames per second (getStats in headless Chromium) on `playcast up` defaults
       (1280x720@60, the ship moving) with --slots 3 and --warm 0, --warm 2 (paused), --warm 2 with the default
       group tagged playcast:pause-warm=false; the window starts once the 2 warm slots are back (and paused).
claim: StartStreamSession -> first decoded frame when the session claims the warm slot, paused (the default) or
       running (the group tagged playcast:pause-warm=false), alternating, in one `playcast up --slots 2 --warm 1`."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from client import (
    VIDEO_STATS_JS,
    Target,
    cmdline,
    cpu_seconds,
    default_target,
    environ,
    open_page,
    proc_state,
    process_tree,
    start_session,
    summary,
    terminate,
    wait_idle_capacity,
)

from playcast.control.stream_groups import PAUSE_WARM_TAG
from tests.harness import Playcast, chromium, playcast_up, wait_until

GAME = "playcast.demo.game"


@dataclass
class SlotProcesses:
    """The processes of one slot of a `playcast up` host, found from its game's environment."""

    display: str
    game: int
    pids: dict[int, str] = field(default_factory=dict)  # pid -> what it is

    @property
    def paused(self) -> bool:
        return proc_state(self.game) == "T"


def slots_of(server_pid: int) -> list[SlotProcesses]:
    tree = [p for p in process_tree(server_pid) if p != server_pid]
    out = []
    for game in (p for p in tree if GAME in cmdline(p)):
        env = environ(game)
        display, workdir = env.get("DISPLAY", ""), str(Path(env.get("HOME", "/nonexistent")).parent)
        slot = SlotProcesses(display, game)
        for pid in tree:
            cmd = cmdline(pid)
            if _pgid(pid) == game:
                slot.pids[pid] = "game"
            elif "playcast.media.capture_proc" in cmd and f"--display {display} " in cmd:
                slot.pids[pid] = "capture"
            elif cmd.startswith(("/usr/bin/pulseaudio", "/usr/bin/parec")) and any(
                    v.startswith(workdir + "/") for v in environ(pid).values()):
                slot.pids[pid] = os.path.basename(cmd.split(" ")[0])
        xvfb = _xvfb_pid(display, [p for p in tree if cmdline(p).startswith("Xvfb ")])
        if xvfb is not None:
            slot.pids[xvfb] = "Xvfb"
        out.append(slot)
    return out


def _pgid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return -1


def _xvfb_pid(display: str, candidates: list[int]) -> int | None:
    """The Xvfb listening on /tmp/.X11-unix/X<n> (with -displayfd it writes no lock file): match socket inodes."""
    path = f"/tmp/.X11-unix/X{display.lstrip(':')}"
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return None
    inodes = {f"socket:[{f[6]}]" for f in (line.split() for line in lines) if len(f) >= 8 and f[7] == path}
    for pid in candidates:
        try:
            fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if fds & inodes:
            return pid
    return None


def cpu_window(slots: list[SlotProcesses], seconds: float, extra: dict[str, int]) -> tuple[list[dict[str, float]],
                                                                                          dict[str, float]]:
    """% of one core per process kind of each slot, and of each `extra` process, over `seconds`."""
    before = {pid: cpu_seconds(pid) for s in slots for pid in s.pids} | {p: cpu_seconds(p) for p in extra.values()}
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    per_slot = []
    for s in slots:
        kinds: dict[str, float] = {}
        for pid, kind in s.pids.items():
            kinds[kind] = kinds.get(kind, 0.0) + (cpu_seconds(pid) - before[pid]) / dt * 100
        per_slot.append(kinds)
    return per_slot, {name: (cpu_seconds(p) - before[p]) / dt * 100 for name, p in extra.items()}


def fmt(kinds: dict[str, float]) -> str:
    return f"{sum(kinds.values()):.2f} % (" + ", ".join(f"{k} {v:.2f}" for k, v in sorted(kinds.items())) + ")"


def location_of(pc: Playcast, target: Target) -> str:
    return pc.boto3().get_stream_group(Identifier=target.group_id)["LocationStates"][0]["LocationName"]


def tag_pause(pc: Playcast, target: Target, value: str) -> None:
    client = pc.boto3()
    arn = client.get_stream_group(Identifier=target.group_id)["Arn"]
    client.tag_resource(ResourceArn=arn, Tags={PAUSE_WARM_TAG: value})


# ---------------------------------------------------------------------------------------------- (a) cpu
def bench_cpu(seconds: float) -> dict[str, dict[str, float]]:
    with playcast_up("--slots", "2", "--warm", "1") as pc:
        target = default_target(pc)
        client = pc.boto3()
        client.create_stream_group(
            Description="bench warm slot not paused", StreamClass="gen4n_high",
            DefaultApplicationIdentifier=target.app_id,
            LocationConfigurations=[{"LocationName": location_of(pc, target), "AlwaysOnCapacity": 1,
                                     "TargetIdleCapacity": 1}],  # held and kept launched: a warm slot
            Tags={PAUSE_WARM_TAG: "false"})
        pid = pc.process.pid

        def side_by_side() -> list[SlotProcesses] | None:
            slots = slots_of(pid)
            paused = [s for s in slots if s.paused]
            return slots if len(slots) == 2 and len(paused) == 1 else None

        wait_until(side_by_side, 90, "one paused and one running warm slot")
        time.sleep(3.0)  # the running one well past its start-up
        slots = sorted(side_by_side() or [], key=lambda s: not s.paused)
        per_slot, extra = cpu_window(slots, seconds, {"server": pid})
        states = [s.paused for s in slots]
    assert states == [True, False], "a slot changed state during the window"
    paused, running = per_slot
    print(f"idle warm slot, paused:  {fmt(paused)}", flush=True)
    print(f"idle warm slot, running: {fmt(running)}", flush=True)
    print(f"server process (API + both slots' audio pumps): {extra['server']:.2f} %", flush=True)
    return {"paused": paused, "running": running, "server": extra}


# ---------------------------------------------------------------------------------------------- (b) fps
def bench_fps(browser, warm: int, pause: bool, seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    with playcast_up("--slots", "3", "--warm", str(warm)) as pc:
        target = default_target(pc)
        if not pause:
            tag_pause(pc, target, "false")
        page = open_page(browser, pc)
        if warm:
            wait_idle_capacity(pc, target, warm)
        sid, _, _ = start_session(page, pc, target)
        pid = pc.process.pid
        if warm:
            wait_idle_capacity(pc, target, warm)  # the claimed slot's replacement is launched
            if pause:
                wait_until(lambda: sum(s.paused for s in slots_of(pid)) == warm, 60, "the warm slots to pause")
        page.click("#video")
        page.keyboard.down("ArrowRight")  # the picture changes every frame
        time.sleep(3.0)
        slots = slots_of(pid)
        s0, t0 = page.evaluate(VIDEO_STATS_JS), time.monotonic()
        per_slot, extra = cpu_window(slots, seconds, {"server": pid})
        s1, t1 = page.evaluate(VIDEO_STATS_JS), time.monotonic()
        page.keyboard.up("ArrowRight")
        terminate(pc, target, sid)
        page.context.close()
    player = max(range(len(slots)), key=lambda i: per_slot[i].get("capture", 0.0))  # the one that encodes
    idle_cpu = sum(sum(k.values()) for i, k in enumerate(per_slot) if i != player)
    dt = t1 - t0
    out = {"decoded_fps": (s1["decoded"] - s0["decoded"]) / dt, "presented_fps": (s1["presented"] - s0["presented"]) / dt,
           "player_slot_cpu": sum(per_slot[player].values()), "idle_slots_cpu": idle_cpu,
           "server_cpu": extra["server"], "idle_slots": len(slots) - 1}
    label = f"--warm {warm}" + ("" if warm == 0 else " paused" if pause else f" {PAUSE_WARM_TAG}=false")
    print(f"{label}: decoded {out['decoded_fps']:.1f} fps, presented {out['presented_fps']:.1f} fps | CPU: "
          f"player's slot {out['player_slot_cpu']:.0f} %, {out['idle_slots']} idle slots {idle_cpu:.1f} %, "
          f"server {out['server_cpu']:.0f} %", flush=True)
    return out


# ---------------------------------------------------------------------------------------------- (c) claim
def bench_claim(browser, claims: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """Claims alternate between a paused and a running warm slot (the tag flipped in between), after one warm-up
    claim that is not counted (the run's first WebRTC session pays for imports and first connections)."""
    result: dict[bool, list[float]] = {True: [], False: []}
    with playcast_up("--slots", "2", "--warm", "1") as pc:
        target = default_target(pc)
        page = open_page(browser, pc)
        pid = pc.process.pid
        for i in range(2 * claims + 1):
            pause = i % 2 == 1  # 0: warm-up (running), then paused, running, paused ...
            tag_pause(pc, target, "true" if pause else "false")
            wait_idle_capacity(pc, target, 1)
            idle_since = time.monotonic()
            wait_until(lambda want=pause: [s for s in slots_of(pid) if s.paused == want], 60,
                       "the warm slot to be " + ("paused" if pause else "running"))
            time.sleep(max(0.0, idle_since + 2.0 - time.monotonic()))  # same idle time either way
            sid, _, first = start_session(page, pc, target)  # same launch: it claims the warm slot
            label = "warm-up" if i == 0 else "paused" if pause else "running"
            if i:
                result[pause].append(first)
            print(f"claim {label} {(i + 1) // 2}/{claims}: first frame {first * 1000:.0f} ms", flush=True)
            terminate(pc, target, sid)
        page.context.close()
    return result[True], result[False]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parts", default="cpu,fps,claim")
    ap.add_argument("--cpu-seconds", type=float, default=20)
    ap.add_argument("--fps-seconds", type=float, default=15)
    ap.add_argument("--claims", type=int, default=10)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    load0 = os.getloadavg()
    print(f"{os.cpu_count()} cores; load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    cpu = bench_cpu(args.cpu_seconds) if "cpu" in parts else None
    fps: dict[str, dict[str, float]] = {}
    claim = None
    if parts & {"fps", "claim"}:
        with chromium() as browser:
            if "fps" in parts:
                fps["0"] = bench_fps(browser, 0, True, args.fps_seconds)
                fps["2 paused"] = bench_fps(browser, 2, True, args.fps_seconds)
                fps["2 running"] = bench_fps(browser, 2, False, args.fps_seconds)
            if "claim" in parts:
                claim = bench_claim(browser, args.claims)
    load1 = os.getloadavg()
    print()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} ({os.cpu_count()} cores; 100 % = one core)")
    if cpu is not None:
        p, r = sum(cpu["paused"].values()), sum(cpu["running"].values())
        print(f"(a) idle warm slot over {args.cpu_seconds:.0f} s: paused {p:.2f} % of a core, running {r:.2f} % "
              f"-> paused/running = {p / r:.3f}" if r else "")
    if fps:
        base = fps["0"]["decoded_fps"]
        print(f"(b) player's decoded fps over {args.fps_seconds:.0f} s, 1280x720@60: --warm 0 {base:.1f}; "
              + "; ".join(f"--warm {k} {v['decoded_fps']:.1f} (x{v['decoded_fps'] / base:.2f})"
                          for k, v in fps.items() if k != "0"))
    if claim is not None:
        print("(c) StartStreamSession -> first decoded frame, claiming a warm slot:")
        print(summary("    paused ", claim[0]))
        print(summary("    running", claim[1]))


if __name__ == "__main__":
    main()
