"""Several machines on one: a bridge in the test's private network namespace and one network namespace per host
joined to it by a veth pair (addresses 10.<n>.0.0/24 of our own, nothing routed anywhere else), and `playcast host`
processes started inside them with private TMPDIRs and leak checks.

No fixtures here (see conftest.py); everything made is removed by the context managers, also after a failure."""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness import REPO

PREFIX = "pct"  # every bridge, veth and namespace of these tests starts with it (a sweeper finds leftovers)
_serial = itertools.count(1)  # one per machines() in this process, so names never repeat within a run


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def sweep() -> None:
    """Remove namespaces and links a killed test run left (names start with PREFIX and this run's pid is gone)."""
    for name in _ip("netns", "list", check=False).stdout.split():
        if name.startswith(PREFIX) and not _pid_alive(name.split("-")[1] if "-" in name else ""):
            _ip("netns", "del", name, check=False)


def _pid_alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


@dataclass
class Machines:
    """The bridge (the test's own address on it: `server_ip`) and the host namespaces made so far."""

    tag: str
    subnet: int
    bridge: str
    short: str = ""  # a prefix short enough for interface names (15 characters at most)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def server_ip(self) -> str:
        return f"10.{self.subnet}.0.1"

    def add(self) -> tuple[str, str]:
        """A new namespace on the bridge: (its name, its address)."""
        n = len(self.namespaces) + 1
        ns, veth = f"{self.tag}-h{n}", f"{self.short}v{n}"
        address = f"10.{self.subnet}.0.{10 + n}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        self.links.append(veth)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("link", "set", f"{veth}p", "netns", ns)
        for args in (("link", "set", "lo", "up"), ("addr", "add", f"{address}/24", "dev", f"{veth}p"),
                     ("link", "set", f"{veth}p", "up")):
            _ip("-n", ns, *args)
        return ns, address


@contextmanager
def machines() -> Iterator[Machines]:
    """A bridge with the test's address, for host namespaces made with `add()`; all removed afterwards."""
    sweep()
    serial = next(_serial)
    tag = f"{PREFIX}-{os.getpid()}-{serial}"
    subnet = 100 + (os.getpid() + serial) % 100
    bridge = f"pcb{os.getpid() % 100000}x{serial % 100}"
    _ip("link", "add", bridge, "type", "bridge")
    m = Machines(tag, subnet, bridge, short=f"p{os.getpid() % 100000}x{serial % 100}")
    try:
        _ip("addr", "add", f"{m.server_ip}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        yield m
    finally:
        for ns in m.namespaces:
            _kill_everything_in(ns)
            _ip("netns", "del", ns, check=False)
        for veth in m.links:  # deleting our end removes the pair, even while a process holds the namespace open
            _ip("link", "del", veth, check=False)
        _ip("link", "del", bridge, check=False)


def _kill_everything_in(ns: str) -> None:
    """SIGKILL whatever still runs in `ns` (a failed test's host and its children), so the namespace really goes."""
    for pid in _ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@dataclass
class HostProcess:
    """`playcast host` running in a namespace; `tmp` is its private TMPDIR (the leak-check scope)."""

    process: subprocess.Popen[str]
    namespace: str
    address: str
    data_dir: Path
    tmp: Path
    output: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return "".join(self.output)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)


@contextmanager
def playcast_host(m: Machines, server_url: str, token: str, *, location: str, slots: int = 1,
                  env: dict[str, str] | None = None, check_leaks: bool = True,
                  hide: tuple[Path, ...] = ()) -> Iterator[HostProcess]:
    """`playcast host` in a new namespace on `m`'s bridge (small video so several fit on 2 cores); SIGTERM
    afterwards and, with `check_leaks`, nothing of it may be left (processes carrying its TMPDIR, session dirs).
    `hide`: directories the host must not see (an empty tmpfs is mounted over each in its own mount namespace,
    as if it ran on another machine: e.g. the server's data dir)."""
    from tests.leaks import assert_no_session_leftovers

    ns, address = m.add()
    data_dir = Path(tempfile.mkdtemp(prefix="playcast-test-host-"))
    tmp = Path(tempfile.mkdtemp(prefix="playcast-test-tmp-"))
    host_cmd = [str(REPO / ".venv" / "bin" / "playcast"), "host", "--server", server_url, "--token", token,
                "--location", location, "--slots", str(slots), "--data-dir", str(data_dir)]
    if hide:  # `ip netns exec` gives the command a mount namespace of its own: these mounts stay in it
        mounts = " && ".join(f"mount -t tmpfs -o ro,size=1m playcast-hidden {shlex.quote(str(d))}" for d in hide)
        host_cmd = ["sh", "-c", f"{mounts} && exec {shlex.join(host_cmd)}"]
    cmd = ["ip", "netns", "exec", ns, *host_cmd]
    child_env = {**os.environ, "TMPDIR": str(tmp), "PLAYCAST_WIDTH": "320", "PLAYCAST_HEIGHT": "240",
                 "PLAYCAST_FPS": "15", "PLAYCAST_BITRATE_KBPS": "300", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                            cwd=REPO)
    host = HostProcess(proc, ns, address, data_dir, tmp)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            host.output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield host
    finally:
        _stop(proc, 30)
        if check_leaks:
            assert_no_session_leftovers(set(), scope=str(tmp), wait_s=10)


@dataclass
class NftTable:
    """An nftables table made in the test's namespace; `dropped()` counts what its counted drop rules dropped."""

    table: str

    def dropped(self) -> int:
        out = subprocess.run(["nft", "list", "table", "ip", self.table], capture_output=True, text=True,
                             check=True).stdout
        return sum(int(n) for n in __import__("re").findall(r"counter packets (\d+) bytes \d+ drop", out))


@contextmanager
def nft_table(table: str, rules: str) -> Iterator[NftTable]:
    """The nftables table `rules` define (named `table`), in the test's namespace while the block runs."""
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield NftTable(table)
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, check=False)


def _stop(proc: subprocess.Popen[str], timeout_s: float) -> None:
    """SIGTERM `proc` if it still runs, SIGKILL it after `timeout_s`; it is reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def default_route(m: Machines) -> Iterator[None]:
    """A default route over the bridge in the test's namespace, for as long as it is needed: Chromium gathers no
    ICE candidates of its own on a machine without one (nothing leaves: the bridge leads nowhere else)."""
    _ip("route", "add", "default", "dev", m.bridge)
    try:
        yield
    finally:
        _ip("route", "del", "default", "dev", m.bridge, check=False)


@contextmanager
def one_to_one_nat(m: Machines, private: str, public: str) -> Iterator[NftTable]:
    """`public` stands for a host's `private` address, as a cloud's 1:1 NAT does, for this (the test's) namespace:
    UDP to `public` goes to `private` with the same port, UDP from `private` seems to come from `public`, and UDP
    to `private` directly (its own host candidates) is dropped and counted."""
    table = f"pcnat{os.getpid() % 100000}"
    rules = f"""table ip {table} {{
  chain to_public {{ type nat hook output priority -100; ip daddr {public} meta l4proto udp dnat to {private}; }}
  chain from_private {{ type nat hook input priority 100; ip saddr {private} meta l4proto udp snat to {public}; }}
  chain direct {{ type filter hook output priority 0;
    ip daddr {private} meta l4proto udp ct status dnat accept;
    ip daddr {private} meta l4proto udp ct status snat accept;
    ip daddr {private} meta l4proto udp counter drop; }}
}}"""
    with nft_table(table, rules) as nat:
        _ip("route", "add", f"{public}/32", "dev", m.bridge)
        try:
            yield nat
        finally:
            _ip("route", "del", f"{public}/32", "dev", m.bridge, check=False)


@dataclass
class TurnServer:
    """coturn on an address of its own on the test's bridge, long-term credentials `username`/`credential`."""

    url: str
    address: str
    port: int
    username: str
    credential: str
    output: list[str] = field(default_factory=list)

    def ice_servers(self) -> str:
        import json

        return json.dumps([{"urls": self.url, "username": self.username, "credential": self.credential}])


@contextmanager
def turn_server(m: Machines) -> Iterator[TurnServer]:
    """Debian's coturn listening on the bridge (UDP, no TLS), relaying from the same address; stopped after."""
    from tests.harness import free_port

    port = free_port()
    address = f"10.{m.subnet}.0.2"  # an address of its own: coturn relays to no peer on its relay address
    _ip("addr", "add", f"{address}/24", "dev", m.bridge)
    work = Path(tempfile.mkdtemp(prefix="playcast-test-turn-"))
    cmd = ["turnserver", "-n", f"--listening-ip={address}", f"--listening-port={port}",
           f"--relay-ip={address}", "--min-port=49200", "--max-port=49400", "--lt-cred-mech",
           "--user=playcast:turn-secret", "--realm=playcast.test", "--no-tls", "--no-dtls", "--no-cli",
           f"--allowed-peer-ip=10.{m.subnet}.0.0-10.{m.subnet}.0.255", f"--pidfile={work / 'pid'}",
           "--log-file=stdout", "--simple-log", "--no-multicast-peers", "--no-tcp", "-v", f"--db={work / 'turndb'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True).start()
    try:
        deadline = time.monotonic() + 15
        while not _stun_answers(address, port):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-2000:]
        yield TurnServer(f"turn:{address}:{port}?transport=udp", address, port, "playcast", "turn-secret", lines)
    finally:
        _stop(proc, 10)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        _ip("addr", "del", f"{address}/24", "dev", m.bridge, check=False)


def _stun_answers(address: str, port: int) -> bool:
    """Whether a STUN Binding request to address:port is answered within 0.2 s."""
    import socket

    txid = os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        probe.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + txid, (address, port))
        try:
            data = probe.recv(2048)
        except OSError:
            return False
    return data[:2] == b"\x01\x01" and data[8:20] == txid


@contextmanager
def udp_only_through(host: str, address: str, port: int) -> Iterator[NftTable]:
    """This namespace and `host` exchange UDP only by `address`:`port` (a TURN server's) on this side: everything
    else either way is dropped and counted (a host behind a NAT that maps no port)."""
    table = f"pcudp{os.getpid() % 100000}"
    rules = f"""table ip {table} {{
  chain out {{ type filter hook output priority 0; ip daddr {host} ip saddr != {address} udp sport != {port} counter drop;
               ip daddr {host} ip saddr != {address} meta l4proto udp counter drop; }}
  chain in {{ type filter hook input priority 0; ip saddr {host} ip daddr != {address} meta l4proto udp counter drop;
              ip saddr {host} udp dport != {port} counter drop; }}
}}"""
    with nft_table(table, rules) as blocked:
        yield blocked


def game_pids(host: HostProcess) -> set[int]:
    """Pids of the demo game processes of this host (they carry its TMPDIR)."""
    out = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"playcast.demo.game" in cmd or b"playcast-demo" in cmd:
            if str(host.tmp).encode() in env:
                out.add(int(proc.name))
    return out


class ChromiumPlayer:
    """Headless Chromium playing one stream session with the web SDK, loaded from a server replica's origin: the
    SDK makes the offer, the test starts the session (boto3) and hands the answer back; every presented video
    frame's time is recorded (requestVideoFrameCallback). Playwright's sync API runs on a thread of its own, so
    async tests can use it through `await asyncio.to_thread(...)` calls."""

    _SETUP = """async () => {
        const sdk = await import('/sdk/playcast-streams.js');
        const video = document.createElement('video');
        video.muted = true; video.autoplay = true; video.playsInline = true;
        document.body.appendChild(video);
        window.frameTimes = [];
        const onFrame = () => { window.frameTimes.push(Date.now()); video.requestVideoFrameCallback(onFrame); };
        video.requestVideoFrameCallback(onFrame);
        window.client = new sdk.PlaycastStreams({videoElement: video, clientConnection: {}});
        return await window.client.generateSignalRequest();
    }"""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._browser_cm: object = None
        self._page: object = None

    def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        return self._thread.submit(fn, *args).result(120)

    def _open(self, origin: str) -> str:
        from tests.harness import chromium

        self._browser_cm = chromium()
        browser = self._browser_cm.__enter__()  # type: ignore[attr-defined]
        self._page = browser.new_page()
        self._page.goto(f"{origin}/healthz")  # type: ignore[attr-defined]
        return self._page.evaluate(self._SETUP)  # type: ignore[attr-defined]

    def offer(self, origin: str) -> str:
        """Open the page on `origin` and return the SDK's signal request (the WebRTC offer)."""
        return self._run(self._open, origin)

    def accept(self, signal_response: str) -> None:
        self._run(lambda: self._page.evaluate(  # type: ignore[attr-defined]
            "async (answer) => { await window.client.processSignalResponse(answer); }", signal_response))

    def frame_times(self) -> list[float]:
        """Wall-clock seconds of every frame presented so far."""
        return [t / 1000 for t in self._run(lambda: self._page.evaluate("window.frameTimes"))]  # type: ignore[attr-defined]

    def remote_address(self) -> str | None:
        """The address of the remote candidate of the player's selected ICE pair (where its media goes)."""
        return self._run(lambda: self._page.evaluate("""async () => {
            const stats = await window.client._pc.getStats();
            let pair = null;
            stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
            if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
            const remote = pair ? stats.get(pair.remoteCandidateId) : null;
            return remote ? (remote.address || remote.ip) : null;
        }"""))  # type: ignore[attr-defined]

    def screenshot(self, path: Path) -> None:
        self._run(lambda: self._page.screenshot(path=str(path)))  # type: ignore[attr-defined]

    def close(self) -> None:
        def shut() -> None:
            if self._browser_cm is not None:
                self._browser_cm.__exit__(None, None, None)  # type: ignore[attr-defined]

        try:
            self._run(shut)
        finally:
            self._thread.shutdown(wait=True)


async def until(read: Any, ok: Any, timeout: float) -> Any:
    """Poll the blocking `read()` (in a thread) every 0.2 s until `ok(value)`; its value, or AssertionError
    naming the last one after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(read)
        if ok(value):
            return value
        assert time.monotonic() < deadline, value
        await asyncio.sleep(0.2)

