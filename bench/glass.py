"""Glass-to-glass latency of broadcast viewers: WHEP and LL-HLS, against the player's own picture.

Run: ./dev bench glass [--samples N]
The demo runs with PLAYCAST_DEMO_PROBE=1 (a 64x64 square, white while Space is held). A key press in the player's
page starts each sample; each page (player, WHEP viewer, hls.js LL-HLS viewer) records the wall-clock presentation time
of the first frame whose probe is white (requestVideoFrameCallback). Reported: key -> picture for each, and how far each
viewer is behind the player. All pages are in one headless Chromium on this machine (loopback)."""

from __future__ import annotations

import argparse
import random
import time

import httpx
from client import default_target, open_page, start_session, summary, terminate

from tests.harness import chromium, playcast_up

PROBE_ATTACH_JS = """(selector) => {
  const v = document.querySelector(selector);
  const c = document.createElement('canvas'); c.width = 8; c.height = 8;
  const g = c.getContext('2d', {willReadFrequently: true});
  window.whites = []; window.isWhite = false;
  const f = (now, meta) => {
    if (v.videoWidth) {
      g.drawImage(v, 24 * v.videoWidth / 1280, 24 * v.videoHeight / 720, 8, 8, 0, 0, 8, 8);
      const d = g.getImageData(4, 4, 1, 1).data;
      const white = d[0] > 200 && d[1] > 200 && d[2] > 200;
      if (white && !window.isWhite) window.whites.push(performance.timeOrigin + meta.presentationTime);
      window.isWhite = white;
    }
    v.requestVideoFrameCallback(f);
  };
  v.requestVideoFrameCallback(f);
}"""

KEY_JS = """() => { window.keyTimes = [];
  window.addEventListener('keydown', (e) => { if (e.code === 'Space' && !e.repeat)
    window.keyTimes.push(performance.timeOrigin + e.timeStamp); }, true); }"""

WHEP_PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="video" autoplay muted playsinline></video>
<script type="module">
import { WhepPlayer } from '/static/whep-player.js';
window.start = (url) => new WhepPlayer(document.querySelector('#video'), url).start();
window.ready = true;
</script></body></html>"""

HLS_PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="video" autoplay muted playsinline></video>
<script src="/static/vendor/hls.js"></script>
<script>
window.start = (url) => {
  const hls = new Hls({lowLatencyMode: true, liveSyncDurationCount: 1, maxLiveSyncPlaybackRate: 1.5});
  hls.loadSource(url); hls.attachMedia(document.querySelector('#video'));
  document.querySelector('#video').play().catch(() => {});
};
window.ready = true;
</script></body></html>"""


def viewer(browser, pc, html: str, url: str):  # type: ignore[no-untyped-def]
    page = browser.new_context().new_page()
    page.goto(pc.base_url + "/healthz")
    page.set_content(html)
    page.wait_for_function("window.ready === true")
    page.evaluate("(u) => window.start(u)", url)
    page.wait_for_function("document.querySelector('#video').videoWidth > 0", timeout=30000)
    page.evaluate(PROBE_ATTACH_JS, "#video")
    return page


JOIN_JS = """async (url) => {
  const v = document.querySelector('#video');
  const t0 = performance.now();
  const first = new Promise((resolve) => v.requestVideoFrameCallback(() => resolve(performance.now() - t0)));
  await window.start(url);
  return await first;
}"""


def late_joins(browser, pc, url: str, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds from a new WHEP viewer's start() to its first presented frame, while the game has been running."""
    out = []
    for _ in range(n):
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(pc.base_url + "/healthz")
        page.set_content(WHEP_PAGE)
        page.wait_for_function("window.ready === true")
        out.append(page.evaluate(JOIN_JS, url) / 1000)
        ctx.close()
        time.sleep(0.5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--joins", type=int, default=10, help="late WHEP viewers timed from start to first frame")
    args = ap.parse_args()
    key_to: dict[str, list[float]] = {"player": [], "whep": [], "hls": []}
    behind: dict[str, list[float]] = {"whep": [], "hls": []}
    missed = 0
    with playcast_up("--slots", "1", "--warm", "0") as pc, chromium() as browser:
        target = default_target(pc)
        player = open_page(browser, pc)
        sid, _, _ = start_session(player, pc, target, env={"PLAYCAST_DEMO_PROBE": "1"})
        player.evaluate(KEY_JS)
        player.evaluate(PROBE_ATTACH_JS, "#video")
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        b = httpx.Client(base_url=pc.base_url, timeout=30).post(
            "/v1/broadcasts", headers=admin, json={"streamSessionId": sid}).json()
        pages = {"player": player, "whep": viewer(browser, pc, WHEP_PAGE, b["whepUrl"]),
                 "hls": viewer(browser, pc, HLS_PAGE, b["hlsUrl"])}
        time.sleep(6)  # let hls.js settle at its live edge
        player.click("#video")
        for i in range(args.samples):
            counts = {k: p.evaluate("window.whites.length") for k, p in pages.items()}
            player.keyboard.down("Space")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(
                    p.evaluate("window.whites.length") == counts[k] for k, p in pages.items()):
                time.sleep(0.01)
            player.keyboard.up("Space")
            got = {k: p.evaluate("window.whites") for k, p in pages.items()}
            key = player.evaluate("window.keyTimes")[-1]
            if any(len(got[k]) == counts[k] for k in pages):
                missed += 1
            else:
                seen = {k: got[k][counts[k]] for k in pages}
                for k in pages:
                    key_to[k].append((seen[k] - key) / 1000)
                for k in behind:
                    behind[k].append((seen[k] - seen["player"]) / 1000)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(p.evaluate("window.isWhite") for p in pages.values()):
                time.sleep(0.01)
            time.sleep(random.uniform(0.2, 0.5))
            print(f"sample {i + 1}/{args.samples}", flush=True)
        joins = late_joins(browser, pc, b["whepUrl"], args.joins)
        terminate(pc, target, sid)
    print()
    print("glass-to-glass, 1280x720@60, loopback, one headless Chromium for all pages")
    print(summary("  key -> player picture   ", key_to["player"]))
    print(summary("  key -> WHEP viewer      ", key_to["whep"]))
    print(summary("  key -> LL-HLS viewer    ", key_to["hls"]))
    print(summary("  WHEP viewer behind player  ", behind["whep"]))
    print(summary("  LL-HLS viewer behind player", behind["hls"]))
    print(f"  samples missed (a page saw no white within 10 s): {missed}")
    print(summary("  late WHEP viewer: start -> first frame", joins))


if __name__ == "__main__":
    main()
