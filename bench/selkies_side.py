"""The Selkies side of bench/vs_selkies.py: Selkies from PyPI in a venv of its own under the bench's cache (never in
the repository), on its own Xvfb display with bench/barcode_game.py as its X client; starts and stops them, no more.

`python bench/selkies_side.py --install` makes the venv (./dev runs it outside the bench's network namespace,
which has no route to the package index); the bench only checks that it is there."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playcast.procgroup import child_setup  # each child dies with the bench, even a SIGKILLed one

SELKIES_VERSION = "2.1.0"
REPO = Path(__file__).resolve().parent.parent
GAME = Path(__file__).resolve().parent / "barcode_game.py"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "playcast-bench"


def venv_dir() -> Path:
    return cache_dir() / "selkies-venv"


def installed_version() -> str | None:
    py = venv_dir() / "bin" / "python"
    if not py.exists() or not (venv_dir() / "bin" / "selkies").exists():
        return None
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('selkies'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def install() -> None:
    """Create the venv and pip install selkies==SELKIES_VERSION into it, unless that is already there."""
    have = installed_version()
    if have == SELKIES_VERSION:
        print(f"selkies {have} already installed in {venv_dir()}", flush=True)
        return
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        print(f"==> creating {venv}", flush=True)
        subprocess.run([sys.executable if sys.prefix == sys.base_prefix else "python3", "-m", "venv", str(venv)],
                       check=True)
    print(f"==> pip install selkies=={SELKIES_VERSION} into {venv} (once; about a minute)", flush=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--progress-bar", "off", "--upgrade", "pip"], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--progress-bar", "off", f"selkies=={SELKIES_VERSION}"],
                   check=True)
    print(f"==> selkies {installed_version()} installed", flush=True)


def require_installed() -> Path:
    have = installed_version()
    if have != SELKIES_VERSION:
        raise SystemExit(f"selkies {SELKIES_VERSION} is not in {venv_dir()} (found: {have}); run "
                         "`./dev bench vs_selkies` (it installs it first) or `python bench/selkies_side.py --install`")
    return venv_dir() / "bin" / "selkies"


def stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM the process group this module started (its leader is `proc`), SIGKILL what is left after grace_s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(5)


@contextmanager
def xvfb(width: int, height: int) -> Iterator[tuple[str, subprocess.Popen]]:  # type: ignore[type-arg]
    """An Xvfb display of its own, started with the arguments playcast's sessions use (host/display.py)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
         "-noreset", "-dpi", "96", "+extension", "XTEST", "+extension", "MIT-SHM"],
        pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=child_setup())
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not report a display number")
        yield f":{number}", proc
    finally:
        stop_group(proc)


@contextmanager
def game(display: str, width: int, height: int, count_file: Path,
         log: Path) -> Iterator[subprocess.Popen]:  # type: ignore[type-arg]
    """bench/barcode_game.py on `display`, with the repository's interpreter (the same pygame playcast runs)."""
    env = {**os.environ, "DISPLAY": display, "PLAYCAST_WIDTH": str(width), "PLAYCAST_HEIGHT": str(height),
           "BARCODE_COUNT_FILE": str(count_file), "SDL_VIDEO_X11_NET_WM_BYPASS_COMPOSITOR": "0"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, str(GAME), "--size", f"{width}x{height}"], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                preexec_fn=child_setup())
    try:
        deadline = time.monotonic() + 20
        while not count_file.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the barcode game exited ({proc.returncode}): {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the barcode game drew nothing in 20 s")
            time.sleep(0.1)
        yield proc
    finally:
        stop_group(proc)


def selkies_argv(port: int, width: int, height: int, bitrate_kbps: int) -> list[str]:
    return [str(require_installed()), "--mode", "webrtc", "--encoder", "h264enc", "--use-cpu", "true",
            "--framerate", "60", "--manual-width", str(width), "--manual-height", str(height),
            "--video-bitrate", str(bitrate_kbps),
            "--addr", "127.0.0.1", "--port", str(port), "--enable-basic-auth", "false",
            "--audio-enabled", "false", "--microphone-enabled", "false", "--webcam-enabled", "false",
            "--gamepad-enabled", "false", "--printing-enabled", "false", "--file-transfers", "none",
            "--enable-clipboard", "false", "--enable-resize", "false"]


@contextmanager
def selkies(display: str, port: int, width: int, height: int, bitrate_kbps: int,
            log: Path) -> Iterator[subprocess.Popen]:  # type: ignore[type-arg]
    """Selkies in WebRTC mode on `display`, its web client on http://127.0.0.1:`port`/ (no login, no audio)."""
    home = Path(tempfile.mkdtemp(prefix="selkies-home-"))
    (home / "run").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYCAST_", "PULSE_", "VIRTUAL_ENV"))}
    env.update({"DISPLAY": display, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run"),
                "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1"})
    with open(log, "ab") as out:
        proc = subprocess.Popen(selkies_argv(port, width, height, bitrate_kbps), env=env, cwd=str(home),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                preexec_fn=child_setup())
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"selkies exited ({proc.returncode}): {log.read_text()[-3000:]}")
            try:
                with NO_PROXY.open(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"selkies did not serve its page in 60 s: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        stop_group(proc)
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--install", action="store_true", help="install Selkies into the bench cache's venv")
    if ap.parse_args().install:
        install()
