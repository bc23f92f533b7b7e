"""The keeper: a tiny parent for one game, a child subreaper, so that no process the game starts (however it
detaches: setsid, double fork) outlives the game's session or the host.

Runs as its own program (`python -I -S keeper.py --grace S [--remove DIR] [--x-display N] -- GAME ARGV...`),
standard library only; it knows nothing of playcast. Its contract with the host (host/app.py):

- stdin is the host's lifeline (host/lifeline.py): a pipe nobody writes to. EOF means the host process is gone (by
  any signal, SIGKILL included): every process below the keeper is SIGKILLed at once, the session's directory
  (--remove) and the X display's socket and lock (--x-display, once the Xvfb named in the lock is gone: it dies with
  the host by PDEATHSIG) are removed, and the keeper exits. Nobody else is left to clean them.
- stdout carries one line, then closes: `started <game pid>`, or `failed <errno>` when the game cannot be executed.
- stderr is the game's log; the game gets it as stdout and stderr too, and /dev/null as stdin.
- The game leads its own session and process group (pgid = its pid) and gets PR_SET_PDEATHSIG(SIGKILL) on the
  keeper. Orphans below it are re-parented to the keeper (PR_SET_CHILD_SUBREAPER), so it always finds them.
- SIGTERM: SIGTERM (and SIGCONT) to the game's group and to every process below; after --grace seconds, or as soon as
  the game has exited, SIGKILL every process left below.
- When the game exits by itself, whatever it left running is killed (SIGTERM, then SIGKILL) the same way.
- The keeper's exit status mirrors the game's (same code, or death by the same signal).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_SWEEP_LIMIT_S = 5.0  # SIGKILL rounds until nothing is left below us (each round: a /proc scan)
_HOST_DEATH_WINDOW_S = 1.0  # see Keeper._host_gone_soon
_X_OWNER_WAIT_S = 3.0  # how long the display's Xvfb may take to die with the host before we give up on its files

_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _report(line: str) -> None:
    try:
        os.write(1, line.encode() + b"\n")
        os.close(1)
    except OSError:
        pass


def _stat_fields(pid: int | str) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (state first, then the parent's pid); [] if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent_of(pid: str) -> int:
    fields = _stat_fields(pid)
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return 0


def _below(me: int) -> list[int]:
    """Every live process below `me` (children, theirs, ...), from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            children.setdefault(_parent_of(entry), []).append(int(entry))
    out: list[int] = []
    todo = [me]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Keeper:
    def __init__(self, argv: list[str], grace_s: float, remove: list[str] | None = None,
                 x_display: int | None = None) -> None:
        self.argv = argv
        self.grace_s = grace_s
        self.remove = remove or []
        self.x_display = x_display
        self.me = os.getpid()
        self.game = 0
        self.status: int | None = None  # the game's wait status, once it has been reaped
        self.stop_requested = False
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the wakeup fd

    def _on_term(self, *_: object) -> None:
        self.stop_requested = True

    def run(self) -> int:
        if _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            os.write(2, b"playcast keeper: PR_SET_CHILD_SUBREAPER failed\n")
        keeper = self.me

        def die_with_keeper() -> None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != keeper:  # the keeper died before the prctl took
                os.kill(os.getpid(), signal.SIGKILL)

        try:
            game = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=2, stderr=2,
                                    start_new_session=True, preexec_fn=die_with_keeper)
        except OSError as exc:
            _report(f"failed {exc.errno or errno.ENOEXEC}")
            return 127
        self.game = game.pid
        _report(f"started {game.pid}")
        deadline: float | None = None
        while True:
            self._reap()
            if self._host_gone():
                self._kill_everything()
                self._remove_leftovers()
                break
            if self.status is not None:  # the game has exited: nothing it started may stay
                _signal_all(_below(self.me), signal.SIGTERM)
                self._kill_everything()
                if self._host_gone_soon():  # it may have exited because the host died (its X server with it)
                    self._remove_leftovers()
                break
            if self.stop_requested and deadline is None:
                deadline = time.monotonic() + self.grace_s
                self._signal_game_and_below(signal.SIGTERM)
                self._signal_game_and_below(signal.SIGCONT)  # a paused game must see its SIGTERM
            if deadline is not None and time.monotonic() >= deadline:
                self._kill_everything()
                break
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                select.select([0, self._wake_r], [], [], timeout)
            except OSError:
                pass
            try:
                os.read(self._wake_r, 512)
            except BlockingIOError:
                pass
        return self._exit_code()

    def _host_gone(self) -> bool:
        try:
            readable, _, _ = select.select([0], [], [], 0)
            return bool(readable) and os.read(0, 1) == b""
        except OSError:  # no lifeline at all: nobody to outlive
            return True

    def _host_gone_soon(self) -> bool:
        """Whether the host is gone, after the game exited. A dying host's children can get their PDEATHSIG (it
        fires as the thread that started them exits) before its last thread releases the lifeline: when the game's
        X server is already dead, the lifeline gets a moment to tell."""
        if self._host_gone():
            return True
        if self.x_display is None or _x_server_alive(self.x_display):
            return False
        try:
            select.select([0], [], [], _HOST_DEATH_WINDOW_S)
        except OSError:
            pass
        return self._host_gone()

    def _signal_game_and_below(self, sig: int) -> None:
        try:
            os.killpg(self.game, sig)
        except (ProcessLookupError, PermissionError):
            pass
        _signal_all(_below(self.me), sig)

    def _reap(self) -> bool:
        """Collect every exited child (ours and adopted orphans); False once we have no children at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.game:
                self.status = status

    def _kill_everything(self) -> None:
        """SIGKILL every process below us until none is left: orphans of the killed ones come to us and are killed
        in the next round."""
        limit = time.monotonic() + _SWEEP_LIMIT_S
        while time.monotonic() < limit:
            below = _below(self.me)
            _signal_all(below, signal.SIGKILL)
            if not self._reap() and not below:
                return
            time.sleep(0.01)
        os.write(2, b"playcast keeper: processes still running after SIGKILL\n")

    def _remove_leftovers(self) -> None:
        """After the host's death: the session directory, and the X display's files once its server is gone."""
        limit = time.monotonic() + _X_OWNER_WAIT_S
        for path in self.remove:  # the session's other processes die with the host meanwhile, writing as they go:
            while os.path.lexists(path) and time.monotonic() < limit:  # remove until nothing is there
                shutil.rmtree(path, ignore_errors=True)
                if os.path.lexists(path):
                    time.sleep(0.02)
        if self.x_display is None:
            return
        lock = _x_lock(self.x_display)
        limit = time.monotonic() + _X_OWNER_WAIT_S
        while _x_server_alive(self.x_display):
            if time.monotonic() > limit:
                return  # not ours to remove while a server still holds the display
            time.sleep(0.02)
        for path in (f"/tmp/.X11-unix/X{self.x_display}", lock):
            try:
                os.unlink(path)
            except OSError:
                pass

    def _exit_code(self) -> int:
        status = self.status
        if status is None:
            return 128 + signal.SIGKILL
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the game may have dumped core; we must not
            signal.set_wakeup_fd(-1)
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return 128 + sig
        return os.WEXITSTATUS(status)


def _x_lock(display: int) -> str:
    return f"/tmp/.X{display}-lock"


def _x_server_alive(display: int) -> bool:
    """Whether the X server named in the display's lock file still runs (not gone, not a zombie)."""
    try:
        with open(_x_lock(display), "rb") as f:
            owner = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    fields = _stat_fields(owner) if owner > 0 else []
    return bool(fields) and fields[0] != b"Z"


def main(args: list[str]) -> int:
    usage = "usage: keeper.py --grace SECONDS [--remove DIR]... [--x-display N] -- ARGV...\n"
    grace: float | None = None
    remove: list[str] = []
    x_display: int | None = None
    try:
        while args and args[0] != "--":
            flag, value, args = args[0], args[1], args[2:]
            if flag == "--grace":
                grace = float(value)
            elif flag == "--remove":
                remove.append(value)
            elif flag == "--x-display":
                x_display = int(value)
            else:
                raise ValueError(flag)
    except (IndexError, ValueError):
        sys.stderr.write(usage)
        return 2
    if grace is None or len(args) < 2:
        sys.stderr.write(usage)
        return 2
    return Keeper(args[1:], grace, remove, x_display).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
