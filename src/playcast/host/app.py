"""Launch and stop one session's game process: argv (never a shell), its own process group and home.

Knows nothing of displays or media beyond the environment it is handed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from playcast.procgroup import signal_group, stop_group

log = logging.getLogger(__name__)


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
    """A running game. `exited` resolves with the return code when it ends by itself or is stopped."""

    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, source_dir: str, executable: str, args: tuple[str, ...], env: Mapping[str, str],
                    home: Path) -> AppProcess:
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
        try:
            proc = await asyncio.create_subprocess_exec(
                str(path), *args, cwd=str(path.parent), env=full_env, stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile, stderr=logfile, start_new_session=True,
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {executable!r}: {exc.strerror or exc}") from exc
        finally:
            logfile.close()
        log.info("app started", extra={"pid": proc.pid, "executable": executable, "argv": list(args)})
        return cls(process=proc, log_path=log_path)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait(self) -> int:
        return await self.process.wait()

    def pause(self) -> None:
        """SIGSTOP the whole process group: it keeps its memory and its window's last picture, and burns no CPU."""
        if self.running:
            signal_group(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the whole process group (harmless when it was not paused)."""
        if self.running:
            signal_group(self.pid, signal.SIGCONT)

    async def stop(self, grace_s: float = 3.0) -> int:
        """SIGTERM the whole process group (continuing it if paused), then SIGKILL what is left after `grace_s`."""
        # Children may outlive the leader: always finish the group off.
        return await stop_group(self.process, grace_s, kill_stragglers=True)

    def tail_log(self, max_bytes: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode(errors="replace")

