"""Nothing survives its host (issue 9, item 9): a host process killed by SIGKILL takes every process it started
with it, detached grandchildren of the game included, and the next start on its data dir removes what is left
(session dirs, X locks) without touching a process that merely reuses a recorded pid.

Real processes throughout: a real LocalHostPool in a child process (tests/host/pool_process.py) that the test
SIGKILLs, and `playcast up` itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from playcast.host.app import STOP_GRACE_S
from playcast.host.leftovers import X_LOCK, X_SOCKET, accepts_connections, process_start
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto.types import LaunchSpec, Placement, PlacementError
from tests.broadcast.test_whep import _start_session
from tests.harness import REPO, await_until, playcast_up, wait_until
from tests.leaks import ScopedTmp, session_leftovers

# A game that starts a grandchild which ignores SIGTERM, leaves the game's session (setsid) and is orphaned (double
# fork), then drops its environment (so only the process tree can find it), and records its pid.
DETACHING_GAME = r'''
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        os.execve("/bin/sleep", ["sleep", "1000"], {})
    os._exit(0)
os.wait()
if sys.argv[2:] == ["exit"]:  # once told to (the test makes <marker>.go)
    while not os.path.exists(sys.argv[1] + ".go"):
        time.sleep(0.05)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(1)
'''


def _detaching_app(root: Path, name: str, marker: Path, *args: str) -> Path:
    app = root / name
    app.mkdir()
    (app / "game.py").write_text(DETACHING_GAME)
    (app / "run").write_text(f'#!/bin/sh\nexec "$PLAYCAST_PYTHON" game.py {marker} {" ".join(args)}\n')
    (app / "run").chmod(0o755)
    return app


def _alive(pid: int) -> bool:
    return process_start(pid) is not None  # a zombie is dead


def _processes(scope: Path) -> list[str]:
    return sorted(x for x in session_leftovers(scope=str(scope)) if x.startswith("pid "))


def _start_pool_process(state_dir: Path, scope: Path, app_dir: Path, executable: str) -> tuple[
        subprocess.Popen[str], dict[str, object]]:
    env = {**os.environ, "TMPDIR": str(scope)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.host.pool_process", str(state_dir), str(scope),
                             str(app_dir), executable], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError(f"the pool process did not start: {line!r} (exit {proc.wait()})")
    return proc, json.loads(line[len("READY "):])


def test_sigkilled_host_takes_a_detached_grandchild_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    app = _detaching_app(tmp_path, "app", marker)
    scope = Path(tempfile.mkdtemp(prefix="playcast-test-tmp-"))
    proc, info = _start_pool_process(tmp_path / "data", scope, app, "run")
    try:
        wait_until(marker.exists, 10, "the grandchild to start")
        grandchild = int(marker.read_text())
        assert _alive(grandchild) and os.getsid(grandchild) not in (info["game"], info["keeper"])
        assert _alive(int(info["game"]))  # type: ignore[arg-type]
        assert any("Xvfb" in p for p in _processes(scope))

        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not _alive(grandchild), 5, "the detached grandchild to die with its host")
        wait_until(lambda: not _processes(scope), 5, "every process of the killed host to die")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", str(scope)], check=False)


def test_sigkilled_playcast_up_leaves_no_process_and_the_next_start_cleans_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with playcast_up("--slots", "2", data_dir=data, check_leaks=False) as pc:  # one warm slot (the default)
        _, sid = _start_session(pc)  # client-less: StartStreamSession with NO_CLIENT_CONNECTION, then ACTIVE
        # A broadcast keeps a viewer worker ready: one of every kind of process a session has is running.
        r = httpx.post(f"{pc.base_url}/v1/broadcasts", json={"streamSessionId": sid}, timeout=30,
                       headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})
        assert r.status_code == 201, r.text
        kinds = {"Xvfb": 2, "playcast.demo.game": 2, "pulseaudio": 2, "parec": 2, "playcast.media.capture_proc": 2,
                 "playcast.media.viewer_proc": 1}

        def running() -> Counter[str]:
            return Counter(k for p in _processes(pc.tmp) for k in kinds if k in p)

        wait_until(lambda: all(running()[k] >= n for k, n in kinds.items()), 20, f"{kinds} to run")
        sessions = sorted(pc.tmp.glob("playcast-session-*"))
        assert len(sessions) == 2  # the session and the warm slot
        displays = [json.loads(p.read_text())["display"] for p in (data / "host-sessions").glob("*.json")]
        assert len(displays) == 2

        pc.process.send_signal(signal.SIGKILL)
        pc.process.wait()
        t0 = time.monotonic()
        wait_until(lambda: not _processes(pc.tmp), 5, "every process of the killed `playcast up` to die")
        assert time.monotonic() - t0 < 5
        # Each game's keeper outlives the host just long enough to remove its session's directory.
        wait_until(lambda: not any(p.exists() for p in sessions), 5, "the keepers to remove the session dirs")
        # What is left when the keepers die too (kill -9 of the whole tree, the OOM killer): the next start cleans.
        for p in sessions:
            (p / "home").mkdir(parents=True)
        for n in displays:
            # What a SIGKILLed Xvfb leaves: its socket file, nobody listening. /tmp/.X11-unix is shared with the
            # other test runs on this machine (each in its own network namespace, all starting at display 0), whose
            # Xvfbs unlink and rebind these paths: put a stale one back where one of them took ours away.
            sock = Path(X_SOCKET.format(n))
            if not sock.exists():
                with socket.socket(socket.AF_UNIX) as s:
                    s.bind(str(sock))

        with playcast_up("--no-demo", data_dir=data) as again:  # (the demo group's warm slot is in the database)
            assert not any(p.exists() for p in sessions), "the next start left the dead one's session dirs"
            for n in displays:  # gone, unless a live X server (of another test run) has taken that number since
                lock, sock = Path(X_LOCK.format(n)), Path(X_SOCKET.format(n))
                assert not lock.exists() or _alive(int(lock.read_text().strip()))
                assert not sock.exists() or accepts_connections(sock), f"{sock} of the dead run was left"
            log = again.log_text()
            assert "cleaned up after a dead host process" in log
            for n in displays:  # (another run may have unlinked our stale socket meanwhile: "left no files")
                assert f"removed {X_SOCKET.format(n)}" in log or f"display :{n} " in log, log[-3000:]
            assert not any((data / "host-sessions" / f"{p.name}.json").exists() for p in sessions)


async def test_a_recorded_pid_reused_by_another_process_is_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    records = data / "host-sessions"
    records.mkdir(parents=True)
    workdir = Path(tempfile.mkdtemp(prefix="playcast-session-"))
    (workdir / "home").mkdir()
    dead = subprocess.Popen(["sleep", "1000"])  # the host process that wrote the record
    dead_start = process_start(dead.pid)
    dead.kill()
    dead.wait()
    ours = subprocess.Popen(["sleep", "1000"], start_new_session=True)  # really the dead host's: it is killed
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)  # has a pid the record names, not its start
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        other_start = process_start(other.pid)
        ours_start = process_start(ours.pid)
        assert dead_start is not None and other_start is not None and ours_start is not None
        (records / f"{workdir.name}.json").write_text(json.dumps({
            "version": 1, "owner": {"role": "host", "pid": dead.pid, "start": dead_start, "leads_group": False},
            "boot": boot, "workdir": str(workdir), "cgroup": None, "display": None, "paths": [],
            "processes": [
                {"role": "game", "pid": other.pid, "start": other_start - 1, "leads_group": True},
                {"role": "xvfb", "pid": ours.pid, "start": ours_start, "leads_group": True},
            ]}))
        pool = LocalHostPool("local", 0, RuntimeOptions(), state_dir=data)
        await pool.start()
        await pool.close()
        assert ours.wait(5) == -signal.SIGKILL
        assert other.poll() is None and _alive(other.pid), "a process that reuses a recorded pid was killed"
        assert not workdir.exists()
        assert not list(records.iterdir())
    finally:
        for p in (ours, other):
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


async def test_a_session_end_takes_the_games_detached_grandchildren_with_it(tmp_path: Path) -> None:
    """Stopped by the pool, or exiting by itself: whatever the game left running goes with it."""
    stopped, exited = tmp_path / "stopped.pid", tmp_path / "exited.pid"
    with ScopedTmp() as scope:
        pool = LocalHostPool("local", 2, RuntimeOptions(width=320, height=240, fps=15, bitrate_kbps=300,
                                                        temp_root=scope), state_dir=tmp_path / "data")
        await pool.start()
        events: list[str] = []

        async def on_event(e) -> None:  # type: ignore[no-untyped-def]
            events.append(f"{e.session_id} {e.kind}")

        pool.on_event(on_event)
        try:
            for sid, marker, args in (("stop", stopped, ()), ("exit", exited, ("exit",))):
                spec = LaunchSpec.make(f"a-{sid}", str(_detaching_app(tmp_path, sid, marker, *args)), "run")
                await pool.place(Placement(sid, "g", (), spec, None), 60)
            await await_until(lambda: stopped.exists() and exited.exists(), 10, "both grandchildren to start")
            Path(f"{exited}.go").touch()
            await await_until(lambda: "exit app_exited" in events, 10, "the exiting game's end")
            await await_until(lambda: not _alive(int(exited.read_text())), 3, "the exited game's grandchild to go")
            grandchild = int(stopped.read_text())
            assert _alive(grandchild)
            await pool.terminate("stop")  # its game and the grandchild ignore SIGTERM: SIGKILL after the grace
            assert not _alive(grandchild)
            await pool.terminate("exit")
            assert not list((tmp_path / "data" / "host-sessions").iterdir())  # records go with clean ends
        finally:
            await pool.close()
    assert STOP_GRACE_S <= 5


async def test_a_game_that_cannot_be_executed_is_an_application_exit(tmp_path: Path) -> None:
    app = tmp_path / "broken"
    app.mkdir()
    (app / "run").write_text("#!/nonexistent/interpreter\n")
    (app / "run").chmod(0o755)
    with ScopedTmp() as scope:
        pool = LocalHostPool("local", 1, RuntimeOptions(width=320, height=240, fps=15, temp_root=scope))
        await pool.start()
        try:
            with pytest.raises(PlacementError) as err:
                await pool.place(Placement("b", "g", (), LaunchSpec.make("a-b", str(app), "run"), None), 30)
            assert err.value.reason == "applicationExit"
            assert "No such file or directory" in str(err.value)
        finally:
            await pool.close()
