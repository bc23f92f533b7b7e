"""Shared by end-to-end tests and benchmarks: run the real `playcast up` and a real headless Chromium.

Starts processes for real on loopback and free ports; stops them and reports what was left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    # WebRTC on loopback only, no mDNS multicast
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Playcast:
    """A running `playcast up`."""

    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    login_url: str
    credentials: dict[str, str]
    output: list[str]
    tmp: Path  # the private TMPDIR of this run: every session dir and process of it is marked by this path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def boto3(self):  # type: ignore[no-untyped-def]
        import boto3

        c = self.credentials
        return boto3.client("gameliftstreams", endpoint_url=c["endpoint_url"], region_name=c["region_name"],
                            aws_access_key_id=c["aws_access_key_id"],
                            aws_secret_access_key=c["aws_secret_access_key"])

    def log_text(self) -> str:
        return "".join(self.output)


@contextmanager
def playcast_up(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120.0,
                check_leaks: bool = True, data_dir: Path | None = None,
                port: int | None = None, command: str = "up") -> Iterator[Playcast]:
    """Run `playcast up` (or `playcast server` with command="server") on a free port with a temp data dir (or
    `data_dir`, kept afterwards, to restart on it) and a private TMPDIR; SIGTERM it afterwards.

    With `check_leaks`, once it has stopped, no process or session dir of this run may be left (AssertionError)."""
    from tests.leaks import assert_no_session_leftovers

    port = port if port is not None else free_port()  # a given port: a restart where clients already point
    keep_data = data_dir is not None
    data_dir = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="playcast-test-data-"))
    tmp = Path(tempfile.mkdtemp(prefix="playcast-test-tmp-"))
    cmd = [str(REPO / ".venv" / "bin" / "playcast"), command, "--port", str(port), "--data-dir", str(data_dir),
           *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp), **(env or {})}, cwd=REPO)
    output: list[str] = []
    ready: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("PLAYCAST_READY "):
                ready.append(line.split(" ", 1)[1].strip())
            if os.environ.get("PLAYCAST_TEST_ECHO"):
                sys.stderr.write(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    try:
        while not ready:
            if proc.poll() is not None:
                raise RuntimeError(f"playcast {command} exited early:\n" + "".join(output)[-4000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"playcast {command} did not become ready:\n" + "".join(output)[-4000:])
            time.sleep(0.1)
        creds = json.loads((data_dir / "credentials.json").read_text())
        yield Playcast(proc, port, data_dir, ready[0], creds, output, tmp)
    except BaseException:
        check_leaks = False  # the test's own failure is the news; do not mask it
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        import shutil

        try:
            if check_leaks:
                assert_no_session_leftovers(set(), wait_s=10, scope=str(tmp))
        finally:
            if not keep_data:
                shutil.rmtree(data_dir, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def chromium(headless: bool = True) -> Iterator[object]:
    """A Playwright Browser on Debian's Chromium with the project's flags."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=headless)
        try:
            yield browser
        finally:
            browser.close()


def wait_until(cond, timeout: float, what: str, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `cond()` until it returns something truthy (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


async def await_until(cond, timeout: float, what: str, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """wait_until() for async tests: polls `cond()` (sync or async) without blocking the event loop."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
