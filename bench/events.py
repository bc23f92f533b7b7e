"""Events benchmark: subscribers held by one `playcast server` process, fan-out deliveries per core, and
publish-to-delivery latency, with the load generator in its own processes.

Run: ./dev bench events [--subscribers 10000] [--workers 4] [--burst 100] [--latency-subs 5000] [--rate 10]
     [--duration 20]   (inside a private netns, as ./dev does)
The server is the real `playcast server` (uvicorn + uvloop, in-process bus). Subscriber workers are separate
processes holding raw WebSocket connections (AppSync subprotocols and header auth, connection_init, subscribe);
the publisher is another process. Server CPU is read from /proc, so "per core" = deliveries per CPU-second of
the server process."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
API_KEY = "da2-benchmarkkey00000000000000"
ALL = "/default/all"  # every connection subscribes here (fan-out throughput)
HALF = "/default/half"  # every other connection also subscribes here (latency at a given rate)
HIST_BUCKET_US = 100  # latency histogram resolution
HIST_BUCKETS = 50_000  # up to 5 s


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------- raw WebSocket client

def _auth_protocol(host: str) -> str:
    header = json.dumps({"host": host, "x-api-key": API_KEY}).encode()
    return "header-" + base64.urlsafe_b64encode(header).decode().rstrip("=")


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return head + mask + body


class Stats:
    def __init__(self) -> None:
        self.ready = 0
        self.data = 0
        self.latency = [0] * HIST_BUCKETS
        self.measure = False
        self.errors: list[str] = []


class Subscriber(asyncio.Protocol):
    """One connection: handshake, connection_init, subscribe to its channels, then count data frames."""

    def __init__(self, host: str, channels: list[str], stats: Stats, done: asyncio.Future[None]) -> None:
        self.host = host
        self.channels = channels
        self.stats = stats
        self.done = done
        self.buf = b""
        self.upgraded = False
        self.pending = len(channels)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /event/realtime HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: aws-appsync-event-ws, {_auth_protocol(self.host)}\r\n\r\n")
        transport.write(request.encode())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed during setup: {exc}"))
        elif self.pending == 0:
            self.stats.errors.append(f"connection lost: {exc}")

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(masked_text_frame(json.dumps(msg).encode()))

    def _pong(self, payload: bytes) -> None:
        assert self.transport is not None
        frame = bytearray(masked_text_frame(payload))
        frame[0] = 0x8A
        self.transport.write(bytes(frame))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.done.set_exception(ConnectionError(buf[:200].decode(errors="replace")))
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self._send({"type": "connection_init"})
            for i, channel in enumerate(self.channels):
                self._send({"type": "subscribe", "id": f"s{i}-{id(self)}", "channel": channel})
        pos, size = 0, len(buf)
        stats = self.stats
        while size - pos >= 2:
            n = buf[pos + 1] & 0x7F
            h = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                h = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                h = 10
            end = pos + h + n
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode != 1:
                if opcode == 9:  # ping: answer, or uvicorn drops us after its ping timeout
                    self._pong(buf[pos + h:end])
                pos = end
                continue
            if self.pending:
                msg = json.loads(buf[pos + h:end])
                if msg["type"] == "subscribe_success":
                    self.pending -= 1
                    if not self.pending:
                        stats.ready += 1
                        self.done.set_result(None)
                elif msg["type"] not in ("connection_ack", "ka"):
                    self.done.set_exception(ConnectionError(str(msg)))
            elif buf[pos + h + 9] == 100:  # {"type":"d... = data; "ka" is '{"type":"ka"}'
                stats.data += 1
                if stats.measure:
                    i = buf.find(b'"event":"\\"', pos + h, end)
                    j = buf.find(b"\\", i + 11, end)
                    if i > 0 and j > 0:
                        delay_us = (time.time_ns() - int(buf[i + 11:j])) // 1000
                        stats.latency[min(HIST_BUCKETS - 1, max(0, delay_us // HIST_BUCKET_US))] += 1
            pos = end
        self.buf = buf[pos:]


async def _worker_async(pipe: Any, host: str, port: int, count: int, first_index: int) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    transports: list[asyncio.BaseTransport] = []
    sem = asyncio.Semaphore(100)

    async def open_one(index: int) -> None:
        channels = [ALL, HALF] if index % 2 == 0 else [ALL]
        async with sem:
            done: asyncio.Future[None] = loop.create_future()
            transport, _ = await loop.create_connection(lambda: Subscriber(host, channels, stats, done),
                                                        "127.0.0.1", port)
            transports.append(transport)
            await asyncio.wait_for(done, 60)

    while True:
        cmd = await loop.run_in_executor(None, pipe.recv)
        op = cmd["op"]
        if op == "connect":
            t0 = time.perf_counter()
            results = await asyncio.gather(*(open_one(first_index + i) for i in range(count)),
                                           return_exceptions=True)
            failures = [repr(r) for r in results if isinstance(r, BaseException)]
            pipe.send({"ready": stats.ready, "seconds": time.perf_counter() - t0, "failures": failures[:5],
                       "failed": len(failures)})
        elif op == "reset":
            stats.data = 0
            stats.latency = [0] * HIST_BUCKETS
            stats.measure = cmd.get("measure", False)
            pipe.send({"ok": True})
        elif op == "report":
            pipe.send({"data": stats.data, "latency": stats.latency if stats.measure else None,
                       "errors": stats.errors[:5]})
        elif op == "close":
            for t in transports:
                t.abort()
            pipe.send({"ok": True})
            return


def worker(pipe: Any, host: str, port: int, count: int, first_index: int) -> None:
    raise_nofile()
    try:
        import uvloop

        uvloop.run(_worker_async(pipe, host, port, count, first_index))
    except ImportError:
        asyncio.run(_worker_async(pipe, host, port, count, first_index))


# ------------------------------------------------------------------------------------- publisher process

async def _publisher_async(pipe: Any, url: str, host: str) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    async with connect(url, subprotocols=["aws-appsync-event-ws", _auth_protocol(host)]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        seq = 0

        async def publish(channel: str) -> None:
            nonlocal seq
            seq += 1
            stamp = json.dumps(str(time.time_ns()))
            await ws.send(json.dumps({"type": "publish", "id": f"p{seq}", "channel": channel, "events": [stamp]}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("id") == f"p{seq}":
                    if msg["type"] != "publish_success":
                        raise RuntimeError(msg)
                    return

        while True:
            cmd = await loop.run_in_executor(None, pipe.recv)
            if cmd["op"] == "burst":  # back to back: each publish returns after the fan-out
                t0 = time.perf_counter()
                for _ in range(cmd["count"]):
                    await publish(cmd["channel"])
                pipe.send({"seconds": time.perf_counter() - t0})
            elif cmd["op"] == "rate":  # paced: `rate` publishes per second for `seconds`
                interval = 1.0 / cmd["rate"]
                start = time.perf_counter()
                n = int(cmd["rate"] * cmd["seconds"])
                for i in range(n):
                    delay = start + i * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await publish(cmd["channel"])
                pipe.send({"published": n, "seconds": time.perf_counter() - start})
            elif cmd["op"] == "close":
                pipe.send({"ok": True})
                return


def publisher(pipe: Any, url: str, host: str) -> None:
    try:
        import uvloop

        uvloop.run(_publisher_async(pipe, url, host))
    except ImportError:
        asyncio.run(_publisher_async(pipe, url, host))


# ------------------------------------------------------------------------------------- the server process

class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="playcast-bench-events-"))
        env = {**os.environ, "PLAYCAST_EVENTS_API_KEY": API_KEY}
        env.pop("PLAYCAST_REDIS_URL", None)
        cmd = [str(REPO / ".venv" / "bin" / "playcast"), "server", "--port", str(self.port), "--data-dir",
               str(self.data_dir), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=REPO)
        ready = threading.Event()
        self.output: list[str] = []

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if line.startswith("PLAYCAST_READY"):
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 120
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("playcast server did not start:\n" + "".join(self.output)[-3000:])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------- orchestration

def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(hist: list[int], q: float) -> float:
    total = sum(hist)
    if not total:
        return float("nan")
    target = q * total
    acc = 0
    for i, n in enumerate(hist):
        acc += n
        if acc >= target:
            return (i + 0.5) * HIST_BUCKET_US / 1000.0
    return float("nan")


def ask(pipes: list[Any], cmd: dict[str, Any]) -> list[dict[str, Any]]:
    for p in pipes:
        p.send(cmd)
    return [p.recv() for p in pipes]


def wait_total(pipes: list[Any], expected: int, timeout: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    total = 0
    while time.perf_counter() - t0 < timeout:
        total = sum(r["data"] for r in ask(pipes, {"op": "report"}))
        if total >= expected:
            break
        time.sleep(0.05)
    return total, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=10_000, help="connections held (one subscription each)")
    ap.add_argument("--workers", type=int, default=4, help="subscriber processes")
    ap.add_argument("--burst", type=int, default=100, help="events published back to back for the fan-out figure")
    ap.add_argument("--rate", type=float, default=10.0, help="publishes per second in the latency phase")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the latency phase")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the server to core 0 and the load generator to the other cores")
    args = ap.parse_args()
    nofile = raise_nofile()
    need = args.subscribers // args.workers + 200
    print(f"open files limit {nofile} (per process; each worker needs ~{need}, the server ~{args.subscribers + 200})")
    if nofile < args.subscribers + 200:
        sys.exit(f"raise `ulimit -n` to at least {args.subscribers + 200}")

    ctx = mp.get_context("spawn")
    server = Server()
    procs: list[Any] = []
    pipes: list[Any] = []
    try:
        print(f"server: playcast server pid {server.proc.pid} on {server.host}; RSS {server.rss_mb():.0f} MB idle")
        per = [args.subscribers // args.workers + (1 if i < args.subscribers % args.workers else 0)
               for i in range(args.workers)]
        first = 0
        for count in per:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(child, server.host, server.port, count, first), daemon=True)
            p.start()
            procs.append(p)
            pipes.append(parent)
            first += count
        pub_parent, pub_child = ctx.Pipe()
        pub = ctx.Process(target=publisher, args=(pub_child, f"ws://{server.host}/event/realtime", server.host),
                          daemon=True)
        pub.start()
        procs.append(pub)
        cores = sorted(os.sched_getaffinity(0))
        if not args.no_pin and len(cores) >= 2:
            # The load generator must not preempt the server it measures: one core each side.
            os.sched_setaffinity(server.proc.pid, {cores[0]})
            for p in procs:
                os.sched_setaffinity(p.pid, set(cores[1:]))
            os.sched_setaffinity(0, set(cores[1:]))
            print(f"pinned: server on core {cores[0]}, load generator on cores {cores[1:]}")

        rss0, cpu0 = server.rss_mb(), server.cpu_seconds()
        results = ask(pipes, {"op": "connect"})
        ready = sum(r["ready"] for r in results)
        failed = sum(r["failed"] for r in results)
        seconds = max(r["seconds"] for r in results)
        rss1 = server.rss_mb()
        half = sum(1 for i in range(args.subscribers) if i % 2 == 0)
        print(f"\n[1] subscribers held by one server process: {ready} of {args.subscribers} "
              f"({ready + half} subscriptions) connected+subscribed in {seconds:.1f} s, {failed} failed"
              + (f" e.g. {results[0]['failures'][:2]}" if failed else ""))
        print(f"    server RSS {rss1:.0f} MB (+{(rss1 - rss0) * 1024 / max(1, ready):.1f} KB per connection), "
              f"setup CPU {server.cpu_seconds() - cpu0:.1f} s")

        # one event to everyone: all connections are really held
        ask(pipes, {"op": "reset"})
        t0 = time.perf_counter()
        pub_parent.send({"op": "burst", "channel": ALL, "count": 1})
        pub_parent.recv()
        total, _ = wait_total(pipes, ready, 60)
        print(f"    one event to all: {total} of {ready} delivered within {(time.perf_counter() - t0) * 1000:.0f} ms "
              "(polled)")

        # fan-out throughput: `burst` events back to back to every connection
        ask(pipes, {"op": "reset"})
        cpu0, t0 = server.cpu_seconds(), time.perf_counter()
        pub_parent.send({"op": "burst", "channel": ALL, "count": args.burst})
        pub_seconds = pub_parent.recv()["seconds"]
        total, _ = wait_total(pipes, ready * args.burst, 300)
        wall = time.perf_counter() - t0
        cpu = server.cpu_seconds() - cpu0
        print(f"\n[2] fan-out, one publisher: {args.burst} events x {ready} subscribers = {total} deliveries")
        print(f"    server accepted the publishes in {pub_seconds:.2f} s; all delivered after {wall:.2f} s "
              f"({total / wall:,.0f} deliveries/s wall)")
        print(f"    server CPU {cpu:.2f} s -> {total / max(cpu, 1e-9):,.0f} deliveries per CPU-second (per core)")

        # latency at a steady rate to `half` of the connections
        ask(pipes, {"op": "reset", "measure": True})
        cpu0 = server.cpu_seconds()
        load0 = sum(proc_cpu(p.pid) for p in procs)
        pub_parent.send({"op": "rate", "channel": HALF, "rate": args.rate, "seconds": args.duration})
        sent = pub_parent.recv()
        expected = sent["published"] * half
        total, _ = wait_total(pipes, expected, 60)
        cpu = server.cpu_seconds() - cpu0
        reports = ask(pipes, {"op": "report"})
        hist = [0] * HIST_BUCKETS
        for r in reports:
            for i, n in enumerate(r["latency"] or []):
                hist[i] += n
        print(f"\n[3] latency: {half} subscribers x {args.rate:g} msg/s for {sent['seconds']:.0f} s "
              f"({half * args.rate:,.0f} deliveries/s): {total} of {expected} delivered")
        print(f"    publish -> delivery p50 {percentile(hist, 0.50):.1f} ms, p90 {percentile(hist, 0.90):.1f} ms, "
              f"p99 {percentile(hist, 0.99):.1f} ms, max {percentile(hist, 1.0):.1f} ms")
        load = sum(proc_cpu(p.pid) for p in procs) - load0
        print(f"    server CPU {cpu / sent['seconds'] * 100:.0f} % of one core; load generator processes "
              f"{load / sent['seconds'] * 100:.0f} % (of the machine's {os.cpu_count()} cores)")
        errors = [e for r in reports for e in r["errors"]]
        if errors:
            print(f"    client errors: {errors[:3]}")

        ask(pipes, {"op": "close"})
        pub_parent.send({"op": "close"})
        pub_parent.recv()
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        server.stop()


if __name__ == "__main__":
    main()
