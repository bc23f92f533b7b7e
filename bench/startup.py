"""Time from StartStreamSession to the first decoded video frame in headless Chromium, warm and cold.

Run: ./dev bench startup [--warm N] [--cold N]   (inside a private netns, as ./dev does)
Warm: the default stream group keeps one slot with the demo already running. Cold: each session asks for an
extra environment variable, so no warm slot matches and the game is launched for it."""

from __future__ import annotations

import argparse
import time

from client import default_target, open_page, start_session, summary, terminate, wait_idle_capacity

from tests.harness import chromium, playcast_up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--warm", type=int, default=10)
    ap.add_argument("--cold", type=int, default=5)
    args = ap.parse_args()
    warm_first, warm_active, cold_first, cold_active = [], [], [], []
    with playcast_up("--slots", "2", "--warm", "1") as pc, chromium() as browser:
        target = default_target(pc)
        page = open_page(browser, pc)
        for i in range(args.warm):
            wait_idle_capacity(pc, target, 1)
            time.sleep(0.5)  # let the fresh warm game settle
            sid, active, first = start_session(page, pc, target)
            warm_active.append(active)
            warm_first.append(first)
            print(f"warm {i + 1}/{args.warm}: ACTIVE {active * 1000:.0f} ms, first frame {first * 1000:.0f} ms",
                  flush=True)
            terminate(pc, target, sid)
        for i in range(args.cold):
            wait_idle_capacity(pc, target, 1)
            sid, active, first = start_session(page, pc, target, env={"BENCH_COLD_RUN": str(i)})
            cold_active.append(active)
            cold_first.append(first)
            print(f"cold {i + 1}/{args.cold}: ACTIVE {active * 1000:.0f} ms, first frame {first * 1000:.0f} ms",
                  flush=True)
            terminate(pc, target, sid)
    print()
    print("StartStreamSession -> first decoded frame (1280x720@60, headless Chromium, loopback)")
    print(summary("  warm first frame", warm_first))
    print(summary("  warm ACTIVE     ", warm_active))
    print(summary("  cold first frame", cold_first))
    print(summary("  cold ACTIVE     ", cold_active))


if __name__ == "__main__":
    main()
