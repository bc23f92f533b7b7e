"""Idle warm slots are paused once their game has drawn, resumed when claimed, and cleaned up while paused.

Real LocalHostPool, real demo game, Xvfb, PulseAudio and capture worker; the processes' state and CPU time are read
from /proc. Runs inside a private network namespace (the WebRTC client only sees loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from Xlib import display as xdisplay

from playcast.host.display import VirtualDisplay
from playcast.host.first_frame import FirstFrameWatch
from playcast.host.input.xtest import XTestInjector
from playcast.host.pool import LocalHostPool, Slot
from playcast.host.runtime import RuntimeOptions, SessionRuntime
from playcast.hostproto.types import LaunchSpec, Placement
from playcast.procgroup import stop_group
from tests.harness import await_until
from tests.host.test_pool_webrtc import Client
from tests.leaks import ScopedTmp

pytestmark = pytest.mark.netns

DEMO = LaunchSpec.make("a-demo", str(Path(__file__).resolve().parents[2] / "src" / "playcast" / "demo" / "app"),
                       "playcast-demo")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def state(pid: int) -> str:
    fields = _stat(pid)
    return fields[0] if fields is not None else "gone"


def cpu_s(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * TICK_S if fields is not None else 0.0


def group_members(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def slot_processes(runtime: SessionRuntime) -> dict[int, str]:
    """Every process of one slot, by pid: the game's whole process group, Xvfb, PulseAudio, parec, capture."""
    assert runtime.app and runtime.display and runtime.encoder and runtime.audio
    procs = {pid: "game" for pid in group_members(runtime.app.pid)}
    procs[runtime.display.process.pid] = "Xvfb"
    procs[runtime.encoder.process.pid] = "capture worker"
    for pid in runtime.audio.pids():
        procs[pid] = "pulseaudio/parec"
    return procs


async def cpu_over(procs: dict[int, str], window_s: float) -> tuple[dict[str, float], float]:
    """CPU seconds each kind of process used over `window_s`, and the window's real length."""
    before = {pid: cpu_s(pid) for pid in procs}
    t0 = time.monotonic()
    await asyncio.sleep(window_s)  # a measurement window, not a wait for something to happen
    used: dict[str, float] = {}
    for pid, name in procs.items():
        used[name] = used.get(name, 0.0) + cpu_s(pid) - before[pid]
    return used, time.monotonic() - t0


def warm_slot(pool: LocalHostPool, group: str) -> Slot | None:
    return next((s for s in pool.slots if s.idle_warm and s.warm_group == group), None)


def paused_slot(pool: LocalHostPool, group: str) -> Slot | None:
    slot = warm_slot(pool, group)
    return slot if slot is not None and slot.runtime is not None and state(slot.runtime.app.pid) == "T" else None


@pytest.fixture
async def pool():
    with ScopedTmp() as scope:  # on exit: no process or session dir of these slots is left
        p = LocalHostPool("local", 2, RuntimeOptions(width=640, height=360, fps=30, bitrate_kbps=1500,
                                                     temp_root=scope))
        await p.start()
        yield p
        await p.close()


async def test_warm_slot_pauses_after_first_frame_and_a_claim_resumes_it(pool: LocalHostPool) -> None:
    await pool.set_warm_target("sg-1", "local", [DEMO], 1)
    slot = await await_until(lambda: paused_slot(pool, "sg-1"), 60, "the warm slot's game to be stopped (T)")
    runtime = slot.runtime
    assert runtime is not None and runtime.paused
    assert runtime.first_frame is not None and runtime.first_frame.drawn.is_set()  # paused only after a frame
    procs = slot_processes(runtime)
    assert all(state(pid) == "T" for pid, name in procs.items() if name == "game")
    assert {"game", "Xvfb", "capture worker", "pulseaudio/parec"} <= set(procs.values())

    used, window = await cpu_over(procs, 3.0)
    assert used["game"] == 0.0, used  # a stopped process group gets no CPU at all
    # <= 1 % of one core for all of the slot's processes together (+1 tick: /proc counts in whole ticks)
    assert sum(used.values()) <= 0.01 * window + TICK_S, used

    client = Client()
    t0 = time.monotonic()
    result = await pool.place(Placement("s1", "sg-1", (), DEMO, await client.offer()), 30)
    assert result.warm is True and slot.session_id == "s1" and not runtime.paused
    await client.accept(result.signal_response)
    first = await asyncio.wait_for(client.first_frame, 10)
    assert first - t0 < 2.0  # generous: loaded CI; bench/warm.py measures the real figure
    assert all(state(pid) != "T" for pid in group_members(runtime.app.pid))
    game_cpu = cpu_s(runtime.app.pid)
    await await_until(lambda: cpu_s(runtime.app.pid) > game_cpu, 10, "the resumed game to run again")
    await await_until(lambda: len(client.frames) >= 10, 10, "frames to keep coming")
    await pool.terminate("s1")
    await client.close()


async def test_terminating_paused_slots_leaves_nothing(pool: LocalHostPool) -> None:
    await pool.set_warm_target("sg-1", "local", [DEMO], 2)
    await await_until(lambda: sum(1 for s in pool.slots if s.runtime is not None and s.runtime.paused) == 2, 60,
                      "both warm slots to be paused")
    runtimes = [s.runtime for s in pool.slots if s.runtime is not None]
    procs = {pid: name for r in runtimes for pid, name in slot_processes(r).items()}

    # Retire one (the group wants fewer): the stopped game must take its SIGTERM, not wait for a SIGKILL.
    await pool.set_warm_target("sg-1", "local", [DEMO], 1)
    await await_until(lambda: sum(1 for s in pool.slots if s.runtime is not None) == 1, 20, "one slot retired")
    retired = next(r for r in runtimes if all(s.runtime is not r for s in pool.slots))
    assert retired.app is not None
    await await_until(lambda: retired.app.process.returncode is not None, 20, "the retired game to end")
    assert retired.app.process.returncode != -signal.SIGKILL

    # Close the host with the other one still paused.
    kept = next(r for r in runtimes if r is not retired)
    assert kept.paused
    await pool.close()
    assert kept.app is not None and kept.app.process.returncode != -signal.SIGKILL
    gone = {pid: name for pid, name in procs.items() if state(pid) not in ("gone", "Z")}
    assert not gone, f"left running: {gone}"


async def test_pause_opt_out_keeps_the_warm_game_running(pool: LocalHostPool) -> None:
    # Two groups warm at the same time: by the time one is paused, the opted-out one would be too.
    await pool.set_warm_target("sg-paused", "local", [DEMO], 1)
    await pool.set_warm_target("sg-running", "local", [DEMO], 1, pause_idle=False)
    await await_until(lambda: paused_slot(pool, "sg-paused"), 60, "the default group's slot to be paused")
    running = await await_until(lambda: warm_slot(pool, "sg-running"), 60, "the opted-out group's warm slot")
    runtime = running.runtime
    assert runtime is not None
    await await_until(lambda: runtime.first_frame is not None and runtime.first_frame.drawn.is_set(), 30,
                      "the opted-out game's first frame")
    procs = slot_processes(runtime)
    used, _ = await cpu_over(procs, 2.0)
    assert used["game"] > 0 and not runtime.paused, used
    assert all(state(pid) != "T" for pid in group_members(runtime.app.pid))

    # The setting follows the target: turning pausing on pauses the idle slot, off resumes it.
    await pool.set_warm_target("sg-running", "local", [DEMO], 1, pause_idle=True)
    await await_until(lambda: paused_slot(pool, "sg-running"), 20, "the slot to be paused once allowed")
    await pool.set_warm_target("sg-running", "local", [DEMO], 1, pause_idle=False)
    await await_until(lambda: state(runtime.app.pid) not in ("T", "gone") and not runtime.paused, 20,
                      "the slot to run again once pausing is off")


async def test_stop_group_ends_a_stopped_group_with_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "600", start_new_session=True)
    os.killpg(proc.pid, signal.SIGSTOP)
    await await_until(lambda: state(proc.pid) == "T", 5, "sleep to be stopped")
    t0 = time.monotonic()
    code = await stop_group(proc, 5.0)
    assert code == -signal.SIGTERM and time.monotonic() - t0 < 4.0


def _draw_a_window(name: str) -> None:
    """A minimal X client (this display's own, reached like libxcb does): map a window, fill it."""
    conn = xdisplay.Display(name)
    screen = conn.screen()
    window = screen.root.create_window(0, 0, 100, 100, 0, screen.root_depth, background_pixel=screen.black_pixel)
    window.map()
    gc = window.create_gc(foreground=screen.white_pixel)
    window.fill_rectangle(gc, 0, 0, 100, 100)
    conn.sync()
    conn.close()


async def test_x_clients_reach_their_own_display_behind_a_foreign_path_socket() -> None:
    display = await VirtualDisplay.start(320, 240)
    path = f"/tmp/.X11-unix/X{display.number}"
    # What another network namespace's Xvfb with the same number does to the shared /tmp: the path is its socket.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    decoy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    decoy.bind(path)
    decoy.listen()

    def refuse() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = decoy.accept()
                conn.close()

    threading.Thread(target=refuse, daemon=True).start()
    try:
        watch = await FirstFrameWatch.open(display.name)
        try:
            assert not watch.drawn.is_set()
            await asyncio.to_thread(_draw_a_window, display.name)
            await asyncio.wait_for(watch.drawn.wait(), 10)
        finally:
            watch.close()
        injector = XTestInjector(display.name, 320, 240)  # the input injector opens displays the same way
        injector.close()
    finally:
        decoy.close()
        await display.stop()
