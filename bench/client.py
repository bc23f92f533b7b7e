"""Benchmark client: a bare page on the playcast server that uses only the JS SDK, signalled through boto3.

Shared by the benchmarks in this folder; prints nothing itself."""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import Playcast  # noqa: E402

PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="video" autoplay muted playsinline style="display:block"></video><audio id="audio" autoplay></audio>
<script type="module">
import { PlaycastStreams } from '/sdk/playcast-streams.js';
window.PlaycastStreams = PlaycastStreams;
window.benchReady = true;
</script></body></html>"""

NEW_CLIENT_JS = """async () => {
  if (window.sdk) window.sdk.close();
  const v = document.querySelector('#video');
  window.firstFrameAt = null; window.frameTimes = [];
  window.sdk = new window.PlaycastStreams({videoElement: v, audioElement: document.querySelector('#audio')});
  const onFrame = (now, meta) => {
    if (window.firstFrameAt === null) window.firstFrameAt = performance.timeOrigin + meta.presentationTime;
    window.frameTimes.push(meta.presentationTime);
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  return await window.sdk.generateSignalRequest();
}"""


VIDEO_STATS_JS = """async () => { const r = await window.sdk.getVideoRTCStats(); let o = {};
  r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') o = {decoded: s.framesDecoded,
    dropped: s.framesDropped || 0, bytes: s.bytesReceived, w: s.frameWidth, h: s.frameHeight}; });
  o.presented = window.frameTimes.length; return o; }"""
"""The player's video so far: frames decoded and dropped (getStats), bytes, size, frames presented (rVFC)."""


@dataclass
class Target:
    group_id: str
    app_id: str


def open_page(browser, pc: Playcast):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1920, "height": 1100})
    page = ctx.new_page()
    page.goto(pc.base_url + "/healthz")
    page.set_content(PAGE)
    page.wait_for_function("window.benchReady === true")
    return page


def default_target(pc: Playcast) -> Target:
    client = pc.boto3()
    group = next(g for g in client.list_stream_groups()["Items"] if g.get("Description") == "default")
    detail = client.get_stream_group(Identifier=group["Id"])
    return Target(group["Id"], detail["DefaultApplication"]["Id"])


def wait_idle_capacity(pc: Playcast, target: Target, want: int, timeout: float = 90) -> None:
    client = pc.boto3()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = client.get_stream_group(Identifier=target.group_id)["LocationStates"]
        if states and states[0].get("IdleCapacity", 0) >= want:
            return
        time.sleep(0.2)
    raise RuntimeError("warm capacity did not come back")


def start_session(page, pc: Playcast, target: Target, env: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
                  args: list[str] | None = None) -> tuple[str, float, float]:
    """Start a session for this page; return (session id, seconds to ACTIVE, seconds to first decoded frame)."""
    client = pc.boto3()
    offer = page.evaluate(NEW_CLIENT_JS)
    t0 = time.time()
    session = client.start_stream_session(
        Identifier=target.group_id, ApplicationIdentifier=target.app_id, Protocol="WebRTC", SignalRequest=offer,
        AdditionalEnvironmentVariables=env or {}, AdditionalLaunchArgs=args or [])
    session_id = session["Arn"].split("/")[-1]
    while True:
        s = client.get_stream_session(Identifier=target.group_id, StreamSessionIdentifier=session_id)
        if s["Status"] == "ACTIVE" and s.get("SignalResponse"):
            break
        if s["Status"] in ("ERROR", "TERMINATED"):
            raise RuntimeError(f"session failed: {s['Status']} {s.get('StatusReason')}")
        time.sleep(0.01)
    t_active = time.time() - t0
    page.evaluate("async (s) => { await window.sdk.processSignalResponse(s); window.sdk.attachInput(); }",
                  s["SignalResponse"])
    page.wait_for_function("window.firstFrameAt !== null", timeout=30000)
    first = page.evaluate("window.firstFrameAt") / 1000.0
    return session_id, t_active, first - t0


def terminate(pc: Playcast, target: Target, session_id: str) -> None:
    client = pc.boto3()
    client.terminate_stream_session(Identifier=target.group_id, StreamSessionIdentifier=session_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get_stream_session(Identifier=target.group_id,
                                     StreamSessionIdentifier=session_id)["Status"] == "TERMINATED":
            return
        time.sleep(0.1)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary(name: str, values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    v = [x * scale for x in values]
    return (f"{name}: n={len(v)} p50={pct(v, 50):.1f}{unit} p95={pct(v, 95):.1f}{unit} "
            f"min={min(v):.1f}{unit} max={max(v):.1f}{unit} mean={statistics.fmean(v):.1f}{unit}")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p.name))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_state(pid: int) -> str:
    """One letter from /proc/<pid>/stat (R running, S sleeping, T stopped, Z zombie); '-' once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "-"


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
