"""playcast against Selkies on the same machine, in the same run, on the same picture: motion-to-photon, frame rates,
frames the game got drawn and CPU by process, at 720p60 and/or 1080p60, optionally under UDP loss.

Run: ./dev bench vs_selkies [--seconds 20] [--size 1280x720|1920x1080|both] [--loss PCT] [--runs 1]
(./dev installs Selkies first, from PyPI into ~/.cache/playcast-bench/selkies-venv; bench/selkies_side.py.)

Source, both sides: bench/barcode_game.py, 60 fps; each frame carries the wall-clock ms at which it was drawn in a
barcode (bench/barcode.py). playcast: `playcast up --warm 0`, the game uploaded with boto3 as an application, a
session started from the JS SDK's offer. Selkies 2.1.0: `--mode webrtc --encoder h264enc --use-cpu true
--framerate 60 --manual-width W --manual-height H`, no audio, no login, on an Xvfb of its own (same flags as
playcast's), its own web client. Both at the same bitrate (--bitrate-kbps; 6000 at 720p, 10000 at 1080p).
Client, both: one headless Chromium; every presented frame (requestVideoFrameCallback) has its barcode decoded;
motion-to-photon = wall clock at the frame's expectedDisplayTime - the ms in its barcode. Also: presented fps
(presentedFrames), decoded fps (getStats), distinct source frames seen per second, the longest gap between
presented frames and between new pictures, frames the game drew per second (it counts them), and CPU by process
(utime+stime over the window, % of one core) of each side's whole process tree except the game and Xvfb (shown
apart), with the audio processes (PulseAudio, parec) apart as well: "video path" = total - audio.
--loss PCT: an nftables table of the bench's own in its namespace drops PCT % of UDP during the window; then
three bursts of 100 ms of total UDP loss; recovery = from a burst's end to the first presented frame drawn after
the burst began. The sides run one after the other (order alternating by run); nothing else of the bench runs."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import barcode
import procstat
import selkies_side
from client import REPO, Target, open_page, start_session, terminate
from client import pct as _pct

from tests.harness import chromium, free_port, playcast_up

SETTLE_S = 3.0
AUDIO = ("pulseaudio", "parec", "pactl")
BURSTS, BURST_S = 3, 0.1
RUNTIME = {"Type": "UBUNTU", "Version": "22_04_LTS"}
FAST = {"Delay": 0.5, "MaxAttempts": 120}
FIND_VIDEO_JS = """() => [...document.querySelectorAll('video')].find(v => v.srcObject &&
  v.srcObject.getVideoTracks().length && v.videoWidth > 0) || null"""


class Nft:
    """One nftables table of the bench's own (in its private namespace): random UDP loss, bursts of total loss.
    Rules change through one `nft -i` kept open, each change confirmed (a listing follows it) before its time is
    taken: a new nft process per change would add tens of ms to a 100 ms burst on a loaded machine."""

    TABLE = "inet playcast_vs_selkies"

    def __enter__(self) -> Nft:
        subprocess.run(["nft", "-f", "-"], check=True, text=True,
                       input=f"table {self.TABLE} {{\n chain out {{\n type filter hook output priority 0; "
                             "policy accept;\n }\n}\n")
        self.shell = subprocess.Popen(["nft", "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=1)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.shell.stdin is not None
        self.shell.stdin.close()
        try:
            self.shell.wait(5)
        except subprocess.TimeoutExpired:
            self.shell.kill()
            self.shell.wait()
        subprocess.run(["nft", "delete", "table", *self.TABLE.split()], check=False)

    def _run(self, command: str) -> None:
        assert self.shell.stdin is not None and self.shell.stdout is not None
        self.shell.stdin.write(f"{command}\nlist chain {self.TABLE} out\n")
        self.shell.stdin.flush()
        out = []
        while (line := self.shell.stdout.readline()) != "}\n":
            if not line:
                raise RuntimeError("nft -i ended: " + "".join(out))
            out.append(line)
        if any("Error" in x for x in out):
            raise RuntimeError(f"nft refused {command!r}: {''.join(out)}")

    def loss(self, percent: float) -> None:
        self._run(f"flush chain {self.TABLE} out")
        self._run(f"add rule {self.TABLE} out meta l4proto udp numgen random mod 1000 < {round(percent * 10)} drop")

    def clear(self) -> None:
        self._run(f"flush chain {self.TABLE} out")

    def burst(self, seconds: float) -> tuple[float, float]:
        """Drop all UDP for `seconds`; (wall time from which it surely dropped, from which it surely passed)."""
        self._run(f"add rule {self.TABLE} out meta l4proto udp drop")
        on = time.time()
        time.sleep(seconds)
        self.clear()
        return on, time.time()


@dataclass
class Live:
    """A side streaming to `page`: its processes are `roots` and their descendants."""

    page: object
    roots: list[int]
    count_file: Path
    notes: list[str] = field(default_factory=list)


def only_loopback() -> bool:
    return {n for _, n in socket.if_nameindex()} <= {"lo"}


def app_dir(work: Path) -> Path:
    d = work / "apps" / "barcode"
    d.mkdir(parents=True)
    for f in ("barcode_game.py", "barcode.py"):
        shutil.copy(REPO / "bench" / f, d / f)
    launcher = d / "barcode-game"
    launcher.write_text('#!/bin/sh\nexec "${PLAYCAST_PYTHON:-python3}" "$(dirname "$0")/barcode_game.py" "$@"\n')
    launcher.chmod(0o755)
    return d


@contextmanager
def playcast_live(browser, w: int, h: int, kbps: int, work: Path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    src = app_dir(work)
    count_file = work / "playcast-frames"
    env = {"PLAYCAST_WIDTH": str(w), "PLAYCAST_HEIGHT": str(h), "PLAYCAST_FPS": "60",
           "PLAYCAST_BITRATE_KBPS": str(kbps), "PLAYCAST_APP_SOURCE_ROOTS": str(src.parent)}
    with playcast_up("--slots", "1", "--warm", "0", env=env) as pc:
        gls = pc.boto3()
        app = gls.create_application(Description="barcode", RuntimeEnvironment=RUNTIME, ExecutablePath="barcode-game",
                                     ApplicationSourceUri=str(src))
        gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=FAST)
        group = gls.create_stream_group(Description="vs-selkies", StreamClass="gen4n_high",
                                        DefaultApplicationIdentifier=app["Id"])
        gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig=FAST)
        target = Target(group["Id"], app["Id"])
        page = open_page(browser, pc)
        sid = None
        try:
            page.evaluate(barcode.PC_HOOK_JS)
            page.evaluate(barcode.DECODE_JS)
            sid, active_s, first_s = start_session(page, pc, target, env={"BARCODE_COUNT_FILE": str(count_file)})
            page.evaluate(barcode.RECORD_JS, page.query_selector("#video"))
            yield Live(page, [pc.process.pid], count_file, [f"session ACTIVE in {active_s:.1f}s, first frame "
                                                            f"{first_s:.1f}s"])
        finally:
            if sid is not None:
                terminate(pc, target, sid)
            page.context.close()


@contextmanager
def selkies_live(browser, w: int, h: int, kbps: int, work: Path) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    port = free_port()
    count_file = work / "selkies-frames"
    with (selkies_side.xvfb(w, h) as (display, xvfb),
          selkies_side.game(display, w, h, count_file, work / "selkies-game.log") as game,
          selkies_side.selkies(display, port, w, h, kbps, work / "selkies.log") as proc):
        ctx = browser.new_context(viewport={"width": 1920, "height": 1100})
        try:
            ctx.add_init_script(barcode.PC_HOOK_JS)
            ctx.add_init_script(barcode.DECODE_JS)
            page = ctx.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]))
            t0 = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/")
            try:
                page.wait_for_function(FIND_VIDEO_JS, timeout=60000)
            except Exception as exc:
                shot = Path(tempfile.gettempdir()) / "vs-selkies-client.png"
                page.screenshot(path=str(shot))
                raise RuntimeError(f"Selkies' client showed no video in 60 s ({exc.__class__.__name__}); screenshot "
                                   f"{shot}; its console:\n" + "\n".join(console[-25:])) from exc
            video = page.evaluate_handle(FIND_VIDEO_JS)
            page.evaluate("(v) => { if (v.paused) v.play(); }", video)
            page.evaluate(barcode.RECORD_JS, video)
            yield Live(page, [proc.pid, xvfb.pid, game.pid], count_file,
                       [f"first frame {time.monotonic() - t0:.1f}s after opening the page"])
        finally:
            ctx.close()


def read_count(path: Path) -> tuple[int, float]:
    frames, at = path.read_text().split()
    return int(frames), float(at)


def kind(pid: int, procs: dict[int, procstat.Proc]) -> tuple[str, str]:
    """(role, name): role 'game', 'Xvfb' or 'side'."""
    n = procstat.name(pid, procs[pid].comm if pid in procs else "?")
    if n == "barcode_game":
        return "game", n
    if pid in procs and procs[pid].comm == "Xvfb":
        return "Xvfb", "Xvfb"
    return "side", n


def cpu_report(before, after, roots: list[int], th0, seconds: float) -> dict:  # type: ignore[no-untyped-def]
    pids = procstat.descendants(before, roots) | procstat.descendants(after, roots)
    roles = {pid: kind(pid, after if pid in after else before) for pid in pids}
    names = {pid: n for pid, (_, n) in roles.items()}
    side = {p for p, (r, _) in roles.items() if r == "side"}
    procs = procstat.by_name(before, after, side, seconds, names)
    audio = sum(v for k, v in procs.items() if k in AUDIO)
    client = {p for p in after if p not in pids and any("chrom" in a or "playwright" in a
                                                        for a in procstat.cmdline(p)[:1])}
    rest = set(after) - pids - client
    others = procstat.by_name(before, after, rest, seconds, {})
    busy = [p for p in side if procstat.used(before, after, p) / seconds * 100 > 5]
    threads = procstat.thread_use(th0, busy, seconds)
    return {
        "procs": procs, "total": sum(procs.values()), "audio": audio, "video": sum(procs.values()) - audio,
        "game": sum(procstat.used(before, after, p) for p, (r, _) in roles.items() if r == "game") / seconds * 100,
        "xvfb": sum(procstat.used(before, after, p) for p, (r, _) in roles.items() if r == "Xvfb") / seconds * 100,
        "client": sum(procstat.used(before, after, p) for p in client) / seconds * 100,
        "others": {k: v for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:5] if v >= 1},
        "threads": {names[p]: dict(sorted(t.items(), key=lambda kv: -kv[1])[:6]) for p, t in threads.items()},
    }


def pct(values: list[float], p: float) -> float:
    return _pct(values, p) if values else float("nan")


def m2p_of(wall_ms: float, value: int) -> float:
    d = (wall_ms - value) % 2**32
    return d - 2**32 if d > 2**31 else d


def analyse(rec: dict, lo: float, hi: float) -> dict:  # type: ignore[type-arg]
    fix = rec["timeOrigin"] + rec["clockFix"]
    rows = [(t, pf, v) for t, pf, v in zip(rec["t"], rec["pf"], rec["v"], strict=True) if lo <= t <= hi]
    m2p, fresh, seen, implausible = [], [], set(), 0
    newest, last_new_t, gap_new = -1.0, None, 0.0
    for t, _, v in rows:
        if v < 0:
            continue
        d = m2p_of(fix + t, v)
        if not -5 <= d <= 5000:
            implausible += 1
            continue
        m2p.append(d)
        drawn = fix + t - d
        if v not in seen:
            seen.add(v)
            fresh.append(d)
        if drawn > newest:
            newest = drawn
            if last_new_t is not None:
                gap_new = max(gap_new, t - last_new_t)
            last_new_t = t
    ts = [t for t, _, _ in rows]
    span = (ts[-1] - ts[0]) / 1000 if len(ts) > 1 else 0.0
    return {
        "n": len(rows), "m2p": m2p, "fresh": fresh, "refused": sum(1 for _, _, v in rows if v < 0),
        "implausible": implausible, "distinct_fps": len(seen) / span if span else 0.0,
        "presented_fps": (rows[-1][1] - rows[0][1]) / span if span else 0.0,
        "callbacks_fps": len(rows) / span if span else 0.0,
        # between two callbacks presentedFrames tells how many frames were shown: the gap per frame shown
        "gap_presented": max(((b[0] - a[0]) / max(b[1] - a[1], 1) for a, b in zip(rows, rows[1:], strict=False)),
                             default=0.0),
        "gap_callbacks": max((b - a for a, b in zip(ts, ts[1:], strict=False)), default=0.0), "gap_new": gap_new,
    }


def recoveries(rec: dict, bursts: list[tuple[float, float]]) -> list[dict]:  # type: ignore[type-arg]
    fix = rec["timeOrigin"] + rec["clockFix"]
    out = []
    for on, off in bursts:
        on_ms, off_ms = on * 1000, off * 1000
        first = None
        near = [(fix + t, pf) for t, pf in zip(rec["t"], rec["pf"], strict=True) if on_ms - 500 <= fix + t <= off_ms + 2000]
        for t, v in zip(rec["t"], rec["v"], strict=True):
            wall = fix + t
            if wall > off_ms and v >= 0 and wall - m2p_of(wall, v) >= on_ms:
                first = wall - off_ms
                break
        out.append({"burst_ms": off_ms - on_ms, "recovery_ms": first,
                    "gap_ms": max(((b[0] - a[0]) / max(b[1] - a[1], 1) for a, b in zip(near, near[1:], strict=False)),
                                  default=None)})
    return out


def measure(live: Live, seconds: float, nft: Nft | None, loss: float | None) -> dict:  # type: ignore[type-arg]
    page = live.page
    if nft is not None and loss:
        nft.loss(loss)
    time.sleep(SETTLE_S)
    before = procstat.snapshot()
    th0 = {p: procstat.threads(p) for p in procstat.descendants(before, live.roots)}
    s0, c0, load0, t0 = page.evaluate(barcode.STATS_JS), read_count(live.count_file), os.getloadavg(), time.monotonic()
    time.sleep(seconds)
    s1, c1, dt = page.evaluate(barcode.STATS_JS), read_count(live.count_file), time.monotonic() - t0
    after = procstat.snapshot()
    load1 = os.getloadavg()
    out: dict = {"cpu": cpu_report(before, after, live.roots, th0, dt), "load": (load0, load1), "notes": live.notes}
    bursts = []
    if nft is not None:
        nft.clear()
        if loss:
            time.sleep(1.0)
            for _ in range(BURSTS):
                bursts.append(nft.burst(BURST_S))
                time.sleep(2.0)
    rec = page.evaluate("window.__rec")
    out.update(analyse(rec, s0["now"], s1["now"]))
    pdt = (s1["now"] - s0["now"]) / 1000
    out.update(decoded_fps=(s1["decoded"] - s0["decoded"]) / pdt, mbps=(s1["bytes"] - s0["bytes"]) * 8 / pdt / 1e6,
               freezes=s1["freezes"] - s0["freezes"], freeze_ms=(s1["freeze_s"] - s0["freeze_s"]) * 1000,
               nacks=s1["nacks"] - s0["nacks"], plis=s1["plis"] - s0["plis"], lost=s1["lost"] - s0["lost"],
               res=f"{s1['w']}x{s1['h']}", codec=s1["codec"], game_fps=(c1[0] - c0[0]) / (c1[1] - c0[1]),
               bursts=recoveries(rec, bursts))
    return out


def side_lines(name: str, r: dict) -> list[str]:  # type: ignore[type-arg]
    if "error" in r:
        return [f"  {name}: FAILED: {r['error']}"]
    c = r["cpu"]
    lines = [
        f"  {name}: motion-to-photon p50 {pct(r['m2p'], 50):.1f} ms, p95 {pct(r['m2p'], 95):.1f} ms "
        f"(n={len(r['m2p'])}; first showing of each picture p50 {pct(r['fresh'], 50):.1f} ms)",
        f"    presented {r['presented_fps']:.1f} fps, decoded {r['decoded_fps']:.1f} fps, distinct source frames "
        f"{r['distinct_fps']:.1f} fps, game drew {r['game_fps']:.1f} fps | {r['res']} {r['codec']} "
        f"{r['mbps']:.2f} Mbit/s | barcodes refused {r['refused']}, implausible {r['implausible']}",
        f"    rVFC callbacks {r['callbacks_fps']:.1f}/s (each decodes the frame then shown) | longest gap between "
        f"presented frames {r['gap_presented']:.0f} ms (between callbacks {r['gap_callbacks']:.0f} ms, between new "
        f"pictures {r['gap_new']:.0f} ms) | Chromium freezes {r['freezes']} ({r['freeze_ms']:.0f} ms)",
        f"    NACKs {r['nacks']}, PLIs {r['plis']}, packets lost {r['lost']}",
        f"    CPU (% of one core): total {c['total']:.0f} (video path {c['video']:.0f}, audio {c['audio']:.0f}): "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(c["procs"].items(), key=lambda kv: -kv[1]) if v >= 0.5),
        f"      apart: game {c['game']:.0f}, Xvfb {c['xvfb']:.0f}, client Chromium {c['client']:.0f}; "
        f"load average {r['load'][0][0]:.2f} -> {r['load'][1][0]:.2f}; else running: "
        + (", ".join(f"{k} {v:.0f}" for k, v in c["others"].items()) or "nothing over 1 %"),
    ]
    for proc, th in c["threads"].items():
        lines.append(f"      threads of {proc}: " + ", ".join(f"{k} {v:.0f}" for k, v in th.items() if v >= 1))
    for i, b in enumerate(r["bursts"], 1):
        rec = f"{b['recovery_ms']:.0f} ms" if b["recovery_ms"] is not None else "never"
        gap = f"{b['gap_ms']:.0f} ms" if b["gap_ms"] is not None else "-"
        lines.append(f"    burst {i} ({b['burst_ms']:.0f} ms of no UDP): recovered {rec} after it, longest gap "
                     f"between presented frames around it {gap}")
    lines += [f"    ({n})" for n in r["notes"]]
    return lines


def ratio_lines(res: dict) -> list[str]:  # type: ignore[type-arg]
    p, s = res.get("playcast", {}), res.get("selkies", {})
    if "m2p" not in p or "m2p" not in s or not p["m2p"] or not s["m2p"]:
        return ["  ratios: - (a side did not measure)"]

    def q(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    return [f"  ratios playcast/Selkies: m2p p50 {q(pct(p['m2p'], 50), pct(s['m2p'], 50))}, p95 "
            f"{q(pct(p['m2p'], 95), pct(s['m2p'], 95))}, CPU total {q(p['cpu']['total'], s['cpu']['total'])}, CPU "
            f"video path {q(p['cpu']['video'], s['cpu']['video'])}, game frames drawn "
            f"{q(p['game_fps'], s['game_fps'])}, distinct source frames {q(p['distinct_fps'], s['distinct_fps'])}"]


def run_side(name: str, browser, size: tuple[int, int], kbps: int, args, nft: Nft | None) -> dict:  # type: ignore[no-untyped-def]
    work = Path(tempfile.mkdtemp(prefix=f"vs-selkies-{name}-"))
    live = playcast_live if name == "playcast" else selkies_live
    try:
        with live(browser, *size, kbps, work) as lv:
            return measure(lv, args.seconds, nft, args.loss)
    except Exception as exc:  # noqa: BLE001 - one side failing must not hide the other's figures
        log = work / "selkies.log"
        tail = log.read_text()[-1500:] if name == "selkies" and log.exists() else ""
        return {"error": f"{type(exc).__name__}: {exc}" + (f"\n    selkies log tail:\n{tail}" if tail else "")}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--size", default="1280x720", help="1280x720, 1920x1080 or both")
    ap.add_argument("--loss", type=float, default=None, help="drop this %% of UDP in the window, then bursts")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--bitrate-kbps", type=int, default=None, help="both sides (default 6000 <= 720p, else 10000)")
    ap.add_argument("--only", choices=("playcast", "selkies"), default=None, help="measure one side only")
    args = ap.parse_args()
    if not only_loopback():
        raise SystemExit("run it inside a private network namespace: ./dev bench vs_selkies ...")
    sizes = ["1280x720", "1920x1080"] if args.size == "both" else [args.size]
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"playcast {rev.stdout.strip()} vs Selkies {selkies_side.installed_version()}: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
          flush=True)
    results = []
    with chromium() as browser, (Nft() if args.loss is not None else nullcontext()) as nft:
        for run in range(args.runs):
            for size in sizes:
                w, h = (int(x) for x in size.split("x"))
                kbps = args.bitrate_kbps or (6000 if h <= 720 else 10000)
                order = ["selkies", "playcast"] if run % 2 == 0 else ["playcast", "selkies"]
                order = [s for s in order if args.only in (None, s)]
                res = {}
                print(f"\nrun {run + 1}, {size}@60, {kbps} kbit/s, {args.seconds:.0f} s window"
                      + (f", {args.loss:g} % UDP loss" if args.loss is not None else ""), flush=True)
                for side in order:
                    res[side] = run_side(side, browser, (w, h), kbps, args, nft)
                    print("\n".join(side_lines(side, res[side])), flush=True)
                print("\n".join(ratio_lines(res)), flush=True)
                results.append((run + 1, size, res))
    if len(results) > 1:
        print("\nall runs: m2p p50/p95 ms, distinct source fps, game fps, CPU total / video path (% of one core)")
        for run, size, res in results:
            cells = []
            for side in ("selkies", "playcast"):
                r = res.get(side, {})
                cells.append(f"{side} " + (f"{pct(r['m2p'], 50):.0f}/{pct(r['m2p'], 95):.0f}, "
                                           f"{r['distinct_fps']:.0f}, {r['game_fps']:.0f}, "
                                           f"{r['cpu']['total']:.0f}/{r['cpu']['video']:.0f}"
                                           if r.get("m2p") else "-"))
            print(f"  run {run} {size}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
