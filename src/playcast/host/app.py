"""Launch and stop one session's game process: argv (never a shell), its own process group and home, under a keeper
(host/keeper.py) that kills whatever the game leaves running when it ends, is stopped, or the host dies.

Knows nothing of displays or media beyond the environment it is handed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from playcast.host import keeper
from playcast.host.lifeline import lifeline_fd
from playcast.procgroup import ChildSetup, child_setup, signal_group

log = logging.getLogger(__name__)

STOP_GRACE_S = 3.0  # SIGTERM to SIGKILL, for the game and everything it started
KEEPER_START_TIMEOUT_S = 10.0


class LaunchError(RuntimeError):
    """The executable is missing, not executable, or escapes the application directory."""


def resolve_executable(source_dir: str, executable: str) -> Path:
    """Return the absolute path of ExecutablePath inside source_dir, refusing escapes and non-executables."""
    root = Path(source_dir).resolve()
    if os.path.isabs(executable):
        raise LaunchError(f"ExecutablePath must be relative to the application directory: {executable!r}")
    path = (root / executable).resolve()
    if root not in path.parents:
        raise LaunchError(f"ExecutablePath escapes the application directory: {executable!r}")
    if not path.is_file():
        raise LaunchError(f"executable not found: {executable!r}")
    if not os.access(path, os.X_OK):
        raise LaunchError(f"executable is not executable: {executable!r}")
    return path


@dataclass
class AppProcess:
    """A running game under its keeper. `wait()` returns the game's exit code (negative: the signal that ended it)."""

    process: asyncio.subprocess.Process  # the keeper; its exit status mirrors the game's
    game_pid: int  # leads the game's own session and process group
    log_path: Path

    @property
    def pid(self) -> int:
        """The game's pid (and process group id)."""
        return self.game_pid

    @property
    def keeper_pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, source_dir: str, executable: str, args: tuple[str, ...], env: Mapping[str, str],
                    home: Path, setup: ChildSetup | None = None, remove_on_host_loss: Path | None = None,
                    x_display: int | None = None) -> AppProcess:
        """Start the game under a keeper; `setup` is the keeper's preexec_fn (default: child_setup(die_with_host=
        False): the keeper must not get PDEATHSIG, it reads the lifeline and outlives the host to kill the game's
        processes). `remove_on_host_loss` (the session's directory) and `x_display` are what the keeper cleans up if
        the host process dies without doing it."""
        path = resolve_executable(source_dir, executable)
        home.mkdir(parents=True, exist_ok=True)
        log_path = home / "app.log"
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(home / "run"),
            **env,
        }
        (home / "tmp").mkdir(exist_ok=True)
        (home / "run").mkdir(mode=0o700, exist_ok=True)
        logfile = open(log_path, "ab", buffering=0)  # noqa: SIM115 - handed to the child
        cleanup: list[str] = []
        if remove_on_host_loss is not None:
            cleanup += ["--remove", str(remove_on_host_loss)]
        if x_display is not None:
            cleanup += ["--x-display", str(x_display)]
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", keeper.__file__, "--grace", str(STOP_GRACE_S), *cleanup, "--", str(path),
                *args,
                cwd=str(path.parent), env=full_env, stdin=lifeline_fd(), stdout=asyncio.subprocess.PIPE,
                stderr=logfile, start_new_session=True, preexec_fn=setup or child_setup(die_with_host=False),
            )
        except OSError as exc:
            raise LaunchError(f"cannot start the keeper of {executable!r}: {exc.strerror or exc}") from exc
        finally:
            logfile.close()
        game_pid = await _keeper_report(proc, executable)
        log.info("app started", extra={"pid": game_pid, "keeper": proc.pid, "executable": executable,
                                       "argv": list(args)})
        return cls(process=proc, game_pid=game_pid, log_path=log_path)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait(self) -> int:
        return await self.process.wait()


    def pause(self) -> None:
        """SIGSTOP the game's process group: it keeps its memory and its window's last picture, and burns no CPU (the
        keeper sleeps in select(); it SIGCONTs the group before any SIGTERM it sends)."""
        if self.running:
            signal_group(self.game_pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the game's process group (harmless when it was not paused)."""
        if self.running:
            signal_group(self.game_pid, signal.SIGCONT)

    async def stop(self) -> int:
        """SIGTERM the game's group and everything it started, SIGKILL what is left after STOP_GRACE_S (the keeper
        does both; if the keeper does not end in time, it and the game's group are SIGKILLed from here)."""
        proc = self.process
        if proc.returncode is None:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S + 5)
            except TimeoutError:
                log.warning("app keeper did not stop in time: killing it", extra={"keeper": proc.pid})
                signal_group(proc.pid, signal.SIGKILL)  # the game gets SIGKILL too (PDEATHSIG on the keeper)
                signal_group(self.game_pid, signal.SIGKILL)
        return await proc.wait()

    def tail_log(self, max_bytes: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode(errors="replace")



async def _keeper_report(proc: asyncio.subprocess.Process, executable: str) -> int:
    """The keeper's one line: the game's pid, or why it could not be executed (LaunchError)."""
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), KEEPER_START_TIMEOUT_S)).decode(errors="replace")
    except BaseException as exc:  # cancelled, or a keeper that never reports: leave nothing behind
        signal_group(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())
        if isinstance(exc, TimeoutError):
            raise RuntimeError(f"the keeper of {executable!r} did not report within "
                               f"{KEEPER_START_TIMEOUT_S:.0f} s") from None
        raise
    word, _, value = line.strip().partition(" ")
    if word == "started" and value.isdigit():
        return int(value)
    code = await proc.wait()
    if word == "failed" and value.isdigit():
        raise LaunchError(f"cannot start {executable!r}: {os.strerror(int(value))}")
    raise LaunchError(f"cannot start {executable!r}: its keeper ended with status {code}")
