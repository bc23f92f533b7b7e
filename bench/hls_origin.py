"""HLS origin throughput: requests per second per core for playlists and parts, measured with wrk.

Run: ./dev bench hls_origin [--seconds 5] [--connections 32]
A separate server process (uvicorn, one worker, uvloop + httptools) serves a packager that holds a window of real
x264 segments (filled before the run, so no encoding competes for the CPU), as a public broadcast and as a private
one (viewer token checked, playlists rewritten to carry it). wrk (Debian package) drives each URL;
"per core" = requests answered / CPU seconds the server process used during that run (utime + stime), so the
figure does not depend on wrk sharing this 2-core machine."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRIVATE_TOKEN = "bench-viewer-token-0123456789abcdef"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "hls"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int) -> None:
    """The server side (run in a child process): fill a packager, then serve it with uvicorn."""
    import uvicorn
    from hls_support import SyntheticEncoder, Viewers, tone
    from starlette.applications import Starlette

    from playcast.api.hls import hls_routes
    from playcast.media.hls import HlsPackager, HlsRegistry
    from playcast.web.routes import vendor_routes

    async def main() -> None:
        enc = SyntheticEncoder(1280, 720, fps=30, bitrate_kbps=2500)
        packager = HlsPackager(30, request_keyframe=enc.request_keyframe, nominal_bitrate_kbps=2500)
        t0 = time.time()
        packager.push_video(enc.encode(t0))
        for i in range(1, 30 * 8):
            at = t0 + i / 30
            packager.push_video(enc.encode(at))
            packager.push_audio(tone(1 / 30, start_sample=i * 1600), at=at)
            if i % 15 == 0:
                await asyncio.sleep(0.01)
        registry = HlsRegistry()
        registry.add("bench", packager)
        registry.add("private", packager)  # the same stream as a private broadcast: token checked, URIs rewritten
        viewers = Viewers(private={"private": PRIVATE_TOKEN})
        app = Starlette(routes=[*vendor_routes(), *hls_routes(registry, viewers=viewers)])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                loop="uvloop", http="httptools", lifespan="off")
        src = packager.source
        part_msn, part_index = src.last_part
        part = src.segment(part_msn).parts[part_index]  # type: ignore[union-attr]
        seg = src.segment(src.live_msn - 1)
        print("ready", src.live_msn, part_msn, part_index, part.number, len(part.data), len(seg.data),  # type: ignore[union-attr]
              flush=True)
        await uvicorn.Server(config).serve()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, seconds: float, connections: int) -> tuple[int, float, str]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} error responses\n{out}")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    return requests, float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), p50.group(1) if p50 else "?"  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk; ./dev install does it)")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line or line[0] != "ready":
            sys.exit("the bench server did not start")
        msn, part_msn, part_index, part_number, part_size, seg_size = map(int, line[1:7])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        base = f"http://127.0.0.1:{port}/hls/bench"
        private = f"http://127.0.0.1:{port}/hls/private"
        urls = {
            "master playlist": f"{base}/master.m3u8",
            "media playlist": f"{base}/source/index.m3u8",
            "media playlist, _HLS_msn (ready)": f"{base}/source/index.m3u8?_HLS_msn={msn - 1}&_HLS_part=0",
            f"part ({part_size / 1000:.0f} KB)": f"{base}/source/part{part_number}.m4s",
            f"segment ({seg_size / 1000:.0f} KB)": f"{base}/source/seg{msn - 1}.m4s",
            "private: media playlist, ?token=": f"{private}/source/index.m3u8?token={PRIVATE_TOKEN}",
            "private: part, ?token=": f"{private}/source/part{part_number}.m4s?token={PRIVATE_TOKEN}",
        }
        print(f"HLS origin, one uvicorn worker; wrk -t1 -c{args.connections} -d{args.seconds:g}s; "
              f"{os.cpu_count()} cores on this machine")
        print(f"{'request':36} {'req/s':>9} {'req/s per core':>15} {'server CPU':>11} {'p50':>9}")
        for name, url in urls.items():
            c0, t0 = _cpu(proc.pid), time.monotonic()
            requests, rps, p50 = _wrk(url, args.seconds, args.connections)
            cpu, wall = _cpu(proc.pid) - c0, time.monotonic() - t0
            print(f"{name:36} {rps:9.0f} {requests / max(cpu, 1e-6):15.0f} {100 * cpu / wall:10.0f}% {p50:>9}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
