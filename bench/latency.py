"""Input-to-photon latency: key down in the page -> the demo's probe square turns white in a decoded frame.

Run: ./dev bench latency [--samples N] [--size 1280x720]
The demo runs with PLAYCAST_DEMO_PROBE=1: a 64x64 square at the top-left is white while Space is held.
t0 = the page's keydown event time (performance.now at dispatch); t1 = presentationTime of the first video
frame (requestVideoFrameCallback) whose probe pixel is white. Path measured: Chromium input -> SDK -> data
channel -> host -> XTest -> game frame -> Xvfb -> x11grab -> x264 -> RTP -> Chromium decode -> compositor."""

from __future__ import annotations

import argparse
import random
import time

from client import default_target, open_page, start_session, summary, terminate

from tests.harness import chromium, playcast_up

PROBE_JS = """() => {
  const v = document.querySelector('#video');
  const c = document.createElement('canvas'); c.width = 8; c.height = 8;
  const g = c.getContext('2d', {willReadFrequently: true});
  window.probe = {state: 'black', keyAt: null, results: [], waitingFor: null};
  window.addEventListener('keydown', (e) => {
    if (e.code === 'Space' && !e.repeat) { window.probe.keyAt = e.timeStamp; window.probe.waitingFor = 'white'; }
  }, true);
  window.addEventListener('keyup', (e) => {
    if (e.code === 'Space') window.probe.waitingFor = 'black';
  }, true);
  const onFrame = (now, meta) => {
    g.drawImage(v, 24, 24, 8, 8, 0, 0, 8, 8);   // the middle of the 64x64 probe square
    const d = g.getImageData(4, 4, 1, 1).data;
    const white = d[0] > 200 && d[1] > 200 && d[2] > 200;
    const p = window.probe;
    if (white && p.waitingFor === 'white') {
      p.results.push(meta.presentationTime - p.keyAt); p.waitingFor = null;
    } else if (!white && p.waitingFor === 'black') {
      p.waitingFor = null; p.sawBlack = true;
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=60)
    args = ap.parse_args()
    w, h = args.size.split("x")
    env = {"PLAYCAST_WIDTH": w, "PLAYCAST_HEIGHT": h, "PLAYCAST_FPS": str(args.fps)}
    with playcast_up("--slots", "1", "--warm", "0", env=env) as pc, chromium() as browser:
        target = default_target(pc)
        page = open_page(browser, pc)
        sid, _, _ = start_session(page, pc, target, env={"PLAYCAST_DEMO_PROBE": "1"})
        page.evaluate(PROBE_JS)
        time.sleep(2.0)  # let the stream settle
        page.click("#video")  # focus the page; the click lands on the game, harmless
        lost = 0
        for _ in range(args.samples):
            before = page.evaluate("window.probe.results.length")
            page.keyboard.down("Space")
            deadline = time.monotonic() + 2.0
            while page.evaluate("window.probe.results.length") == before and time.monotonic() < deadline:
                time.sleep(0.005)
            page.evaluate("window.probe.sawBlack = false")
            page.keyboard.up("Space")
            if page.evaluate("window.probe.results.length") == before:
                lost += 1
            deadline = time.monotonic() + 2.0
            while not page.evaluate("window.probe.sawBlack") and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(random.uniform(0.05, 0.25))  # decorrelate from the 60 Hz frame clock
        results = [r / 1000.0 for r in page.evaluate("window.probe.results")]
        stats = page.evaluate("""async () => { const r = await window.sdk.getVideoRTCStats(); let o = {};
            r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') o = {fps: s.framesPerSecond,
              jb: s.jitterBufferDelay / s.jitterBufferEmittedCount, decode: s.totalDecodeTime / s.framesDecoded,
              w: s.frameWidth, h: s.frameHeight}; }); return o; }""")
        terminate(pc, target, sid)
    print()
    print(f"input-to-photon at {args.size}@{args.fps} (headless Chromium on the same 2-core machine)")
    print(summary("  latency", results))
    print(f"  samples without a white frame within 2 s: {lost}")
    print(f"  receiver: {stats['w']}x{stats['h']} fps={stats['fps']} jitter-buffer={stats['jb'] * 1000:.1f}ms "
          f"decode={stats['decode'] * 1000:.1f}ms per frame")


if __name__ == "__main__":
    main()
