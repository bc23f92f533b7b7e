"""Broadcast costs: host CPU per WHEP viewer, viewers one core sustains, and the player unaffected by viewers.

Run: ./dev bench broadcast [--viewers 10,25] [--seconds 10]
Setup: `playcast up` at 1280x720@60, 2.5 Mbit/s; one session with a Chromium player (input-to-photon probe on);
a broadcast of it; WHEP viewers from bench/whep_load.py in separate niced processes (full WebRTC endpoints: ICE,
DTLS, SRTP-decrypt every packet, then count whole frames by RTP sequence and marker; no decoding, no NACK). For each
audience size: the server process's CPU (HTTP, the player's peer, one fan-out sink per viewer worker), the viewer
workers' CPU (`python -m playcast.media.viewer_proc`: the viewers' peers, RTP packetisation + SRTP), the other
session processes' CPU (capture and encode: the same single worker whatever the audience; Xvfb; the game), each
viewer's whole frames per second, broken frames and lost packets, and the player's delivered fps and input-to-photon
latency. The added host CPU per viewer counts the server and the viewer workers."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from client import cmdline, cpu_seconds, default_target, open_page, pct, process_tree, start_session
from latency import PROBE_JS

from tests.harness import chromium, playcast_up

HERE = Path(__file__).resolve().parent
VIEWER_WORKER = "playcast.media.viewer_proc"


def session_cpu(server: int) -> dict[int, float]:
    """CPU seconds so far of every process under the server (not the server itself), by pid."""
    return {p: cpu_seconds(p) for p in process_tree(server) if p != server}


def udp_drops() -> int:
    """Datagrams the kernel dropped at full receive buffers, over every UDP socket of this network namespace (the
    bench runs in its own: the server's, the workers' and the viewers' sockets only)."""
    total = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        total += sum(int(line.split()[-1]) for line in lines if line.strip())
    return total


def machine_idle() -> tuple[float, float]:
    """(idle jiffies, all jiffies) of the whole machine so far, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def cpu_split(before: dict[int, float], after: dict[int, float], dt: float) -> tuple[float, float, int]:
    """(viewer workers' CPU %, other session processes' CPU %, viewer workers) between two session_cpu() snapshots;
    a process that started in between counts from 0."""
    workers = other = 0.0
    n = 0
    for pid, t in after.items():
        used = t - before.get(pid, 0.0)
        if VIEWER_WORKER in cmdline(pid):
            workers += used
            n += 1
        else:
            other += used
    return workers / dt * 100, other / dt * 100, n


def player_latency(page, samples: int) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(samples):
        before = page.evaluate("window.probe.results.length")
        page.keyboard.down("Space")
        deadline = time.monotonic() + 2
        while page.evaluate("window.probe.results.length") == before and time.monotonic() < deadline:
            time.sleep(0.005)
        page.evaluate("window.probe.sawBlack = false")
        page.keyboard.up("Space")
        deadline = time.monotonic() + 2
        while not page.evaluate("window.probe.sawBlack") and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.12)
    res = page.evaluate("window.probe.results")
    return [r for r in res[-samples:]]


def video_counters(http: httpx.Client, sid: str) -> tuple[float, float, float]:
    """(frames from the encoder, packets dropped by slow consumers, consumers) of the session, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.labels.get("session") == sid:
                values[sample.name] = sample.value
    return (values["playcast_video_packets_total"], values["playcast_video_dropped_packets_total"],
            values["playcast_video_sinks"])


PLAYER_STATS_JS = """async () => { const r = await window.sdk.getVideoRTCStats(); let o = {decoded: 0};
    r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') o.decoded = s.framesDecoded; });
    o.presented = window.frameTimes.length; return o; }"""


def player_fps(page, seconds: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(frames decoded per second, frames presented per second) by the player's page over `seconds`."""
    s0, t0 = page.evaluate(PLAYER_STATS_JS), time.monotonic()
    time.sleep(seconds)
    s1, dt = page.evaluate(PLAYER_STATS_JS), time.monotonic() - t0
    return (s1["decoded"] - s0["decoded"]) / dt, (s1["presented"] - s0["presented"]) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--viewers", default="10,50")
    ap.add_argument("--per-process", type=int, default=25, help="viewers per load-generator process")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--latency-samples", type=int, default=25)
    ap.add_argument("--no-player", action="store_true",
                    help="no Chromium player (session started with NO_CLIENT_CONNECTION): frees the client CPU "
                         "for a larger audience when measuring viewers per core")
    args = ap.parse_args()
    env = {"PLAYCAST_BITRATE_KBPS": "2500"}
    rows = []
    with playcast_up("--slots", "1", "--warm", "0", env=env) as pc, chromium() as browser:
        target = default_target(pc)
        page = None
        if args.no_player:
            client = pc.boto3()
            sid = client.start_stream_session(
                Identifier=target.group_id, ApplicationIdentifier=target.app_id, Protocol="WebRTC",
                SignalRequest="NO_CLIENT_CONNECTION", ConnectionTimeoutSeconds=3600)["Arn"].split("/")[-1]
            client.get_waiter("stream_session_active").wait(Identifier=target.group_id, StreamSessionIdentifier=sid,
                                                            WaiterConfig={"Delay": 1})
        else:
            page = open_page(browser, pc)
            sid, _, _ = start_session(page, pc, target, env={"PLAYCAST_DEMO_PROBE": "1"})
            page.evaluate(PROBE_JS)
            page.click("#video")
        admin = {"Authorization": f"Bearer {pc.credentials['admin_token']}"}
        http = httpx.Client(base_url=pc.base_url, timeout=30)
        b = http.post("/v1/broadcasts", headers=admin, json={"streamSessionId": sid}).json()
        server = pc.process.pid
        time.sleep(2)

        def measure(n: int) -> dict[str, object]:
            loads: list[subprocess.Popen[str]] = []
            # The audience stands in for other machines: SCHED_IDLE processes (chrt --idle) run only on CPU time
            # nobody else wants and yield at once when the host or the player's browser wakes up.
            per = args.per_process
            for k in range(0, n, per):
                loads.append(subprocess.Popen(
                    ["chrt", "--idle", "0", sys.executable, str(HERE / "whep_load.py"), b["whepUrl"], "--viewers",
                     str(min(per, n - k)), "--seconds", str(args.seconds + 6 + args.latency_samples * 0.3)],
                    stdout=subprocess.PIPE, text=True))
            for load in loads:
                assert load.stdout is not None
                line = json.loads(load.stdout.readline())
                assert line["event"] == "connected", line
            v0, d0 = video_counters(http, sid), udp_drops()
            c0, s0, t0 = cpu_seconds(server), session_cpu(server), time.monotonic()
            l0, m0 = sum(cpu_seconds(load.pid) for load in loads), machine_idle()
            if page is not None:
                fps, presented = player_fps(page, args.seconds)
            else:
                time.sleep(args.seconds)
                fps = presented = float("nan")
            dt = time.monotonic() - t0
            v1, d1 = video_counters(http, sid), udp_drops()
            server_cpu = (cpu_seconds(server) - c0) / dt * 100
            worker_cpu, other_cpu, workers = cpu_split(s0, session_cpu(server), dt)
            load_cpu = (sum(cpu_seconds(load.pid) for load in loads) - l0) / dt * 100
            m1 = machine_idle()
            idle = (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1]) * 100
            lat = player_latency(page, args.latency_samples) if page is not None else [float("nan")]
            result: dict[str, object] = {"viewers": n, "server_cpu": server_cpu, "worker_cpu": worker_cpu,
                                         "workers": workers, "session_cpu": other_cpu,
                                         "encoder_fps": (v1[0] - v0[0]) / dt, "fanout_dropped": v1[1] - v0[1],
                                         "sinks": v1[2], "udp_drops": d1 - d0, "load_cpu": load_cpu,
                                         "machine_idle": idle,
                                         "player_fps": fps, "player_presented_fps": presented, "lat_p50": pct(lat, 50), "lat_p95": pct(lat, 95)}
            if loads:
                done = []
                for load in loads:
                    assert load.stdout is not None
                    done.append(json.loads(load.stdout.readline()))
                    load.wait()
                result.update({"viewer_fps_min": min(d["fps_min"] for d in done),
                               "viewer_fps_median": sorted(d["fps_median"] for d in done)[len(done) // 2],
                               "viewer_frames": sum(d["frames"] for d in done),
                               "viewer_broken_frames": sum(d["broken_frames"] for d in done),
                               "viewer_packets": sum(d["packets"] for d in done),
                               "viewer_lost": sum(d["lost"] for d in done),
                               "viewer_audio_lost": sum(d["audio_lost"] for d in done),
                               "viewer_mbps": sum(d["mbps_per_viewer"] for d in done) / len(done)})
            print(json.dumps(result), flush=True)
            return result

        rows.append(measure(0))
        for n in [int(x) for x in args.viewers.split(",")]:
            rows.append(measure(n))
    base = rows[0]
    print()
    print("broadcast to WHEP viewers: 1280x720@60, 2.5 Mbit/s, one encode (100 % = one core)")
    for r in rows:
        extra = ""
        if r["viewers"]:
            host = r["server_cpu"] + r["worker_cpu"] - base["server_cpu"] - base["worker_cpu"]  # type: ignore[operator]
            per = host / r["viewers"]  # type: ignore[operator]
            extra = (f" | +{per:.2f} % host CPU (server + viewer workers) per viewer -> "
                     f"{100 / per if per > 0 else float('inf'):.0f} viewers per core | viewer fps min {r['viewer_fps_min']:.1f} median {r['viewer_fps_median']:.1f}, "
                     f"{r['viewer_frames']} whole frames, {r['viewer_broken_frames']} broken, video packets lost "
                     f"{r['viewer_lost']} of {r['viewer_packets']}, audio packets lost {r['viewer_audio_lost']}, "
                     f"{r['viewer_mbps']:.2f} Mbit/s each")
        print(f"  {r['viewers']:3d} viewers: server {r['server_cpu']:.0f} %, {r['workers']} viewer workers "
              f"{r['worker_cpu']:.0f} %, other session processes {r['session_cpu']:.0f} %, the audience's load generators "
              f"{r['load_cpu']:.0f} %, machine idle {r['machine_idle']:.0f} % of all cores | encoder {r['encoder_fps']:.1f} fps, {r['sinks']:.0f} consumers, "
              f"{r['fanout_dropped']:.0f} packets dropped by the fan-out, {r['udp_drops']} datagrams dropped at full UDP "
              f"receive buffers | player decoded {r['player_fps']:.1f} fps "
              f"(presented {r['player_presented_fps']:.1f}), input-to-photon p50 "
              f"{r['lat_p50']:.1f} ms p95 {r['lat_p95']:.1f} ms{extra}")


if __name__ == "__main__":
    main()
