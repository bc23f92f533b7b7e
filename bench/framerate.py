"""Delivered frame rate and host CPU while playing the demo, at 720p60 and 1080p60.

Run: ./dev bench framerate [--seconds 15] [--sizes 1280x720,1920x1080]
Frame rate: frames the page's <video> presented (requestVideoFrameCallback) and frames decoded (getStats) over
the window, divided by its length. CPU: utime+stime of every process of the session (Xvfb, game, capture+encode
worker, PulseAudio, parec) and, separately, of the server process (aiortc packetisation, SRTP, input), in % of
one core (200 % = both cores of this machine). Chromium's own CPU is reported apart: it is the client."""

from __future__ import annotations

import argparse
import os
import time

from client import (
    VIDEO_STATS_JS,
    cmdline,
    cpu_seconds,
    default_target,
    open_page,
    process_tree,
    start_session,
    terminate,
)

from tests.harness import chromium, playcast_up


def measure(size: str, seconds: float) -> dict[str, float]:
    w, h = size.split("x")
    env = {"PLAYCAST_WIDTH": w, "PLAYCAST_HEIGHT": h, "PLAYCAST_FPS": "60",
           "PLAYCAST_BITRATE_KBPS": "6000" if int(h) <= 720 else "10000"}
    with playcast_up("--slots", "1", "--warm", "0", env=env) as pc, chromium() as browser:
        target = default_target(pc)
        page = open_page(browser, pc)
        sid, _, _ = start_session(page, pc, target)
        # Keep the game busy: hold a key so the ship moves and the picture changes every frame.
        page.click("#video")
        page.keyboard.down("ArrowRight")
        time.sleep(3.0)
        server_pid = pc.process.pid
        tree = [p for p in process_tree(server_pid) if p != server_pid]
        chrome = [p for p in process_tree(1) if "chromium" in cmdline(p) and p not in tree]
        s0, t0 = page.evaluate(VIDEO_STATS_JS), time.monotonic()
        c0 = {p: cpu_seconds(p) for p in tree}
        srv0 = cpu_seconds(server_pid)
        ch0 = sum(cpu_seconds(p) for p in chrome)
        time.sleep(seconds)
        s1, t1 = page.evaluate(VIDEO_STATS_JS), time.monotonic()
        session_cpu = sum(cpu_seconds(p) - c0[p] for p in tree)
        server_cpu = cpu_seconds(server_pid) - srv0
        chrome_cpu = sum(cpu_seconds(p) for p in chrome) - ch0
        page.keyboard.up("ArrowRight")
        per_proc = sorted(((cpu_seconds(p) - c0[p]) / (t1 - t0) * 100, os.path.basename(cmdline(p).split(" ")[0])
                           + (" " + cmdline(p).split(" ")[2] if "-m" in cmdline(p) else "")) for p in tree)
        terminate(pc, target, sid)
    dt = t1 - t0
    return {
        "presented_fps": (s1["presented"] - s0["presented"]) / dt,
        "decoded_fps": (s1["decoded"] - s0["decoded"]) / dt,
        "dropped": s1["dropped"] - s0["dropped"],
        "mbps": (s1["bytes"] - s0["bytes"]) * 8 / dt / 1e6,
        "session_cpu": session_cpu / dt * 100,
        "server_cpu": server_cpu / dt * 100,
        "chrome_cpu": chrome_cpu / dt * 100,
        "res": f"{s1['w']}x{s1['h']}",
        "per_proc": per_proc,  # type: ignore[dict-item]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        r = measure(size, args.seconds)
        rows.append((size, r))
        print(f"{size}@60: {r}", flush=True)
    print()
    print(f"delivered frame rate and CPU over {args.seconds:.0f} s, demo game with the ship moving "
          "(100 % = one core; this machine has 2)")
    for size, r in rows:
        print(f"  {size}@60 -> received {r['res']}: presented {r['presented_fps']:.1f} fps, decoded "
              f"{r['decoded_fps']:.1f} fps, dropped {r['dropped']}, {r['mbps']:.2f} Mbit/s | host CPU: session "
              f"processes {r['session_cpu']:.0f} %, server {r['server_cpu']:.0f} % | client Chromium "
              f"{r['chrome_cpu']:.0f} %")
        print("      per process: " + ", ".join(f"{name} {cpu:.0f}%" for cpu, name in reversed(r["per_proc"])))


if __name__ == "__main__":
    main()
