"""Per-session audio: an isolated PulseAudio daemon with a null sink, captured with parec as 20 ms PCM chunks.

Owns the daemon and capture processes and their files; it must not encode, packetize or know about WebRTC.

Layout inside the session directory given to us (removed again by `stop()`)::

    <session_dir>/pulse/home/            HOME, XDG_CONFIG_HOME of the daemon (state, cookie)
    <session_dir>/pulse/runtime/         XDG_RUNTIME_DIR of the daemon
    <session_dir>/pulse/playcast.pa      the generated startup script (-F)
    <session_dir>/pulse/client.conf      for clients: autospawn = no (a dying daemon is never respawned)
    <session_dir>/pulse/native           the daemon's socket (a short /tmp path when this one is too long)

If PulseAudio cannot start, the reason is logged, `available` stays False and the session runs without audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

from playcast.procgroup import ChildSetup, child_setup

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
CHANNELS = 2
SAMPLE_WIDTH = 2  # s16le
CHUNK_MS = 20
CHUNK_SAMPLES = SAMPLE_RATE * CHUNK_MS // 1000  # 960
CHUNK_BYTES = CHUNK_SAMPLES * CHANNELS * SAMPLE_WIDTH  # 3840

_MAX_UNIX_PATH = 100  # sun_path is 108 bytes; keep a margin


class AudioSink:
    """One session's PulseAudio daemon (null sink "playcast") and its capture.

    Use: ``await sink.start()``; pass ``sink.env()`` to the game; read ``sink.chunks()`` or
    ``async for chunk in sink`` (any number of readers); ``await sink.stop()``. `setup`: the preexec_fn of the
    daemon, parec and pactl (default: child_setup(), so no daemon outlives the host)."""

    def __init__(self, session_dir: Path | str, *, sink_name: str = "playcast",
                 start_timeout: float = 5.0, setup: ChildSetup | None = None) -> None:
        self.session_dir = Path(session_dir)
        self.sink_name = sink_name
        self.start_timeout = start_timeout
        self.available = False
        self.reason: str | None = None  # why audio is unavailable, when it is
        self._dir = self.session_dir / "pulse"
        self._socket_dir: Path | None = None  # a separate short dir when the session path is too long
        self._socket: Path | None = None
        self._daemon: asyncio.subprocess.Process | None = None
        self._parec: asyncio.subprocess.Process | None = None
        self._log_tasks: list[asyncio.Task[None]] = []
        self._daemon_log: deque[str] = deque(maxlen=20)
        self._capture: asyncio.Task[None] | None = None
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self.subscriber_backlog = 10  # chunks (200 ms)
        self._tool_env: dict[str, str] = {}
        self._setup = setup or child_setup()

    # ---------------------------------------------------------------- public
    @property
    def socket_path(self) -> Path | None:
        return self._socket

    @property
    def socket_dir(self) -> Path | None:
        """The short dir holding the daemon's socket when the session dir's path is too long for one (else None)."""
        return self._socket_dir

    def pids(self) -> list[int]:
        """Process ids this sink runs (daemon, parec) while they are alive."""
        return [p.pid for p in (self._daemon, self._parec) if p is not None and p.returncode is None]

    def env(self) -> dict[str, str]:
        """Environment for the game process so its audio goes to this session's sink ({} without audio)."""
        if not self.available or self._socket is None:
            return {}
        return {**self._client_env(), "PULSE_SINK": self.sink_name, "SDL_AUDIODRIVER": "pulse"}

    async def start(self) -> bool:
        """Start the daemon and the capture. Returns `available`; never raises for a missing/broken PulseAudio."""
        if self.available:
            return True
        try:
            await self._start()
        except Exception as exc:  # noqa: BLE001 - any failure means "no audio", never a failed session
            self.reason = str(exc) or exc.__class__.__name__
            logger.warning("session audio unavailable, running without audio: %s", self.reason)
            await self._teardown()
            return False
        self.available = True
        return True

    async def suspend(self, suspended: bool) -> bool:
        """Suspend (or resume) the null sink: while suspended its clock stops, so the daemon, parec and the chunk
        pump all sleep (nothing is captured, not even silence). Resuming restarts the clock at once. True when
        the daemon did it; False without audio or when pactl failed (the sink then keeps its state)."""
        if not self.available:
            return False
        return await self._pactl("suspend-sink", self.sink_name, "1" if suspended else "0") is not None

    async def stop(self) -> None:
        """Kill parec and the daemon, remove every file this sink created. Idempotent."""
        self.available = False
        await self._teardown()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield captured PCM (s16le, stereo, 48 kHz) in 20 ms chunks of 3840 bytes until the sink stops.

        Silence is captured as zero bytes while nothing plays. Any number of consumers may read at once;
        each gets every chunk from the moment it subscribes, and a consumer more than `subscriber_backlog`
        chunks behind loses its oldest ones (so a stalled reader never adds latency or blocks capture).
        ``async for chunk in sink`` is the same."""
        if self._capture is None or self._capture.done():
            return
        inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._subscribers.add(inbox)
        try:
            while True:
                chunk = await inbox.get()
                if chunk is None:
                    return
                yield chunk
        finally:
            self._subscribers.discard(inbox)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    # ---------------------------------------------------------------- internals
    async def _start(self) -> None:
        daemon_bin = shutil.which("pulseaudio")
        parec_bin = shutil.which("parec")
        if daemon_bin is None or parec_bin is None or shutil.which("pactl") is None:
            raise RuntimeError("pulseaudio/parec not installed (Debian: pulseaudio pulseaudio-utils)")
        if self._dir.exists():
            shutil.rmtree(self._dir, ignore_errors=True)
        home = self._dir / "home"
        runtime = self._dir / "runtime"
        config_dir = home / ".config" / "pulse"
        for d in (config_dir, runtime):
            d.mkdir(parents=True, mode=0o700)
        cookie = config_dir / "cookie"
        cookie.write_bytes(secrets.token_bytes(256))
        cookie.chmod(0o600)
        (self._dir / "client.conf").write_text("autospawn = no\n")
        sock = self._dir / "native"
        if len(str(sock)) > _MAX_UNIX_PATH:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="playcast-pulse-"))
            sock = self._socket_dir / "native"
        for path in (sock, self._dir):
            if any(c in str(path) for c in "\"'\n"):
                raise RuntimeError(f"unusable path for PulseAudio: {path!r}")
        self._socket = sock
        script = self._dir / "playcast.pa"
        script.write_text(
            f'load-module module-native-protocol-unix socket="{sock}" auth-anonymous=1\n'
            f"load-module module-null-sink sink_name={self.sink_name} rate={SAMPLE_RATE} channels={CHANNELS}"
            f" sink_properties=device.description={self.sink_name}\n"
            f"set-default-sink {self.sink_name}\n"
            f"set-default-source {self.sink_name}.monitor\n"
        )
        daemon_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_RUNTIME_DIR": str(runtime),
            "LANG": "C.UTF-8",
            # no DISPLAY and no reachable session bus: the daemon must not autolaunch dbus-daemon or X11 modules
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
        }
        args = [daemon_bin, "-n", "--daemonize=no", "--system=false", "--exit-idle-time=-1",
                "--use-pid-file=no", "--realtime=no", "--high-priority=no", "--disable-shm=yes",
                "--log-target=stderr",
                "--log-level=notice", "-F", str(script)]
        self._daemon = await asyncio.create_subprocess_exec(
            *args, env=daemon_env, cwd=str(self._dir), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            preexec_fn=self._setup)
        self._log_tasks.append(asyncio.create_task(self._pump_log(self._daemon, "pulseaudio")))
        await self._wait_socket(self._daemon, sock)
        self._tool_env = {**os.environ, **self._client_env()}
        self._tool_env.pop("DISPLAY", None)
        await self._check_sink()
        self._parec = await asyncio.create_subprocess_exec(
            parec_bin, "--raw", "--format=s16le", f"--rate={SAMPLE_RATE}", f"--channels={CHANNELS}",
            "--latency-msec=10", "-d", f"{self.sink_name}.monitor", "--client-name=playcast-capture",
            env=self._tool_env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, preexec_fn=self._setup)
        self._log_tasks.append(asyncio.create_task(self._pump_log(self._parec, "parec")))
        self._capture = asyncio.create_task(self._pump_capture(self._parec))
        await self._restart_sink_clock()
        logger.info("session audio ready: pulseaudio pid %d, socket %s", self._daemon.pid, sock)

    def _client_env(self) -> dict[str, str]:
        assert self._socket is not None
        return {
            "PULSE_SERVER": f"unix:{self._socket}",
            "PULSE_COOKIE": str(self._dir / "home" / ".config" / "pulse" / "cookie"),
            "PULSE_CLIENTCONFIG": str(self._dir / "client.conf"),
        }

    async def _pactl(self, *args: str) -> bytes | None:
        """Run pactl against this daemon; stdout, or None when it failed."""
        proc = await asyncio.create_subprocess_exec(
            "pactl", *args, env=self._tool_env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, preexec_fn=self._setup)
        out, _ = await proc.communicate()
        return out if proc.returncode == 0 else None

    async def _check_sink(self) -> None:
        """pulseaudio -F carries on past failing script lines: make sure our sink really exists."""
        out = await self._pactl("list", "short", "sinks")
        if out is None or self.sink_name not in [line.split("\t")[1] for line in out.decode().splitlines()
                                                  if "\t" in line]:
            await asyncio.sleep(0.05)  # let the log pump catch the daemon's error lines
            errors = [line for line in self._daemon_log if line.startswith("E:")]
            raise RuntimeError(f"pulseaudio has no sink {self.sink_name!r}: " + ("; ".join(errors) or "unknown"))

    async def _restart_sink_clock(self) -> None:
        """Make capture flow now rather than up to 2 s later.

        An idle null sink sleeps for its maximum latency (2 s) and only adopts parec's 10 ms latency at its
        next wake-up; suspending and resuming it restarts its timer. Failure here only delays the first chunk."""
        deadline = time.monotonic() + self.start_timeout
        while not (await self._pactl("list", "short", "source-outputs") or b"").strip():
            if time.monotonic() > deadline or self._parec is None or self._parec.returncode is not None:
                logger.debug("parec did not attach to the monitor in time; first audio may be late")
                return
            await asyncio.sleep(0.01)
        await self._pactl("suspend-sink", self.sink_name, "1")
        await self._pactl("suspend-sink", self.sink_name, "0")

    async def _wait_socket(self, proc: asyncio.subprocess.Process, sock: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if proc.returncode is not None:
                await asyncio.sleep(0.05)  # let the log pump catch the last lines
                detail = "; ".join(self._daemon_log) or "no output"
                raise RuntimeError(f"pulseaudio exited with status {proc.returncode}: {detail}")
            if sock.exists() and await asyncio.to_thread(_can_connect, sock):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"pulseaudio did not open {sock} within {self.start_timeout:.0f} s")
            await asyncio.sleep(0.02)

    async def _pump_capture(self, proc: asyncio.subprocess.Process) -> None:
        """Read parec's stdout all the time (so no stale audio piles up in the pipe) and fan chunks out."""
        assert proc.stdout is not None
        try:
            while True:
                try:
                    chunk = await proc.stdout.readexactly(CHUNK_BYTES)
                except (asyncio.IncompleteReadError, ConnectionError):
                    if self.available:
                        logger.warning("audio capture ended unexpectedly; the session continues silent")
                    return
                for inbox in self._subscribers:
                    if inbox.qsize() >= self.subscriber_backlog:
                        inbox.get_nowait()
                    inbox.put_nowait(chunk)
        finally:
            for inbox in self._subscribers:
                inbox.put_nowait(None)

    async def _pump_log(self, proc: asyncio.subprocess.Process, name: str) -> None:
        assert proc.stderr is not None
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if name == "pulseaudio":
                self._daemon_log.append(text)
            if text.startswith("E:"):
                logger.warning("%s[%d]: %s", name, proc.pid, text)
            else:
                logger.debug("%s[%d]: %s", name, proc.pid, text)

    async def _teardown(self) -> None:
        if self._capture is not None:
            self._capture.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._capture
            self._capture = None
        for proc in (self._parec, self._daemon):
            if proc is not None:
                await _terminate(proc)
        self._parec = None
        self._daemon = None
        for task in self._log_tasks:
            task.cancel()
        if self._log_tasks:
            await asyncio.gather(*self._log_tasks, return_exceptions=True)
        self._log_tasks.clear()
        if self._dir.exists():
            await asyncio.to_thread(shutil.rmtree, self._dir, True)
        if self._socket_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._socket_dir, True)
            self._socket_dir = None
        self._socket = None


def _can_connect(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


async def _terminate(proc: asyncio.subprocess.Process, grace: float = 2.0) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    else:
        await proc.wait()
