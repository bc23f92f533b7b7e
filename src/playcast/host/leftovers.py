"""Session records in the host's data dir, and the clean-up, when a host process starts, of what a dead one left:
its processes still alive, its session dirs, its X display locks, its session cgroups.

A process is only ever killed when its start time (and the boot) match the record, so a reused pid is never touched.
Files and /proc only: it knows nothing of media, the control plane or HTTP."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playcast.host import cgroups
from playcast.json_input import parse_json

log = logging.getLogger(__name__)

RECORD_VERSION = 1
X_LOCK = "/tmp/.X{}-lock"
X_SOCKET = "/tmp/.X11-unix/X{}"
_KILL_WAIT_S = 3.0


# ---------------------------------------------------------------------- /proc
def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw.rsplit(b")", 1)[1].decode(errors="replace").split()


def process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot), or None when it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessMark:
    """A process as a record knows it. `leads_group`: its pgid is its pid (started in a session of its own)."""

    role: str
    pid: int
    start: int
    leads_group: bool = False

    @classmethod
    def of(cls, role: str, pid: int) -> ProcessMark | None:
        start = process_start(pid)
        if start is None:
            return None
        try:
            leads = os.getpgid(pid) == pid
        except OSError:
            leads = False
        return cls(role, pid, start, leads)

    def alive(self) -> bool:
        return process_start(self.pid) == self.start


# ---------------------------------------------------------------------- records
@dataclass
class SessionRecord:
    """One live session's record (`<records dir>/<session dir name>.json`), rewritten atomically as its processes
    start; deleted when the session ends cleanly."""

    path: Path
    owner: ProcessMark
    boot: str
    workdir: str
    cgroup: str | None = None
    display: int | None = None
    paths: list[str] = field(default_factory=list)  # more dirs of the session outside its workdir
    processes: list[ProcessMark] = field(default_factory=list)

    def add_process(self, role: str, pid: int) -> None:
        mark = ProcessMark.of(role, pid)
        if mark is not None:
            self.processes.append(mark)
            self._write()

    def set_display(self, number: int) -> None:
        self.display = number
        self._write()

    def set_cgroup(self, path: Path) -> None:
        self.cgroup = str(path)
        self._write()

    def add_path(self, path: Path) -> None:
        self.paths.append(str(path))
        self._write()

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        body = {"version": RECORD_VERSION, "owner": asdict(self.owner), "boot": self.boot, "workdir": self.workdir,
                "cgroup": self.cgroup, "display": self.display, "paths": self.paths,
                "processes": [asdict(p) for p in self.processes]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)


class SessionRecords:
    """The host's records dir: `open()` one per session; `reap()` at start-up."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self, workdir: Path) -> SessionRecord:
        self.directory.mkdir(parents=True, exist_ok=True)
        owner = ProcessMark.of("host", os.getpid())
        assert owner is not None
        record = SessionRecord(self.directory / f"{workdir.name}.json", owner, boot_id(), str(workdir))
        record._write()
        return record

    def reap(self) -> list[str]:
        """Clean up after every record whose host process is gone; one line per session cleaned (also logged).
        Records of a host process still running (another host on the same data dir) are left alone."""
        if not self.directory.is_dir():
            return []
        cleaned: list[str] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = _load(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable session record removed: %s (%s)", path, exc)
                path.unlink(missing_ok=True)
                continue
            if record.boot == boot_id() and record.owner.alive():
                continue
            line = _clean(record)
            log.warning("cleaned up after a dead host process: %s", line,
                        extra={"record": str(path), "host_pid": record.owner.pid})
            cleaned.append(line)
            record.delete()
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        return cleaned


def _load(path: Path) -> SessionRecord:
    raw = parse_json(path.read_bytes())
    if not isinstance(raw, dict) or raw.get("version") != RECORD_VERSION:
        raise ValueError("not a session record of this version")

    def mark(d: object) -> ProcessMark:
        if not isinstance(d, dict):
            raise TypeError("a process entry is not an object")
        return ProcessMark(str(d["role"]), int(d["pid"]), int(d["start"]), bool(d.get("leads_group", False)))

    display = raw.get("display")
    return SessionRecord(path, mark(raw["owner"]), str(raw["boot"]), str(raw["workdir"]),
                         str(raw["cgroup"]) if raw.get("cgroup") else None,
                         int(display) if display is not None else None,
                         [str(p) for p in raw.get("paths") or []], [mark(p) for p in raw.get("processes") or []])


# ---------------------------------------------------------------------- clean-up
def _clean(record: SessionRecord) -> str:
    done: list[str] = []
    if record.boot == boot_id():  # after a reboot none of its processes can be alive
        killed = _kill(record)
        if killed:
            done.append("killed " + ", ".join(killed))
    workdir = Path(record.workdir)
    for path in [workdir, *map(Path, record.paths)]:
        if path.name.startswith("playcast-") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}")
    if record.display is not None:
        done += _remove_x_lock(record)
    return f"session {workdir.name}: " + ("; ".join(done) or "nothing left")


def _kill(record: SessionRecord) -> list[str]:
    killed: list[str] = []
    me, my_group = os.getpid(), os.getpgid(0)
    if record.cgroup is not None and Path(record.cgroup).name.startswith("playcast-"):
        found = cgroups.kill_and_remove(Path(record.cgroup))
        killed += [f"pid {pid} (cgroup)" for pid in found]
    victims: dict[int, str] = {}
    for mark in record.processes:
        if mark.pid != me and mark.alive():
            victims[mark.pid] = mark.role
    for mark in record.processes:
        # Its group is ours while its leader is ours, or while the leader is gone: a pid stays taken as long as
        # any process has it as a process group id, so no other group can have that number meanwhile.
        if mark.leads_group and mark.pid != my_group and (mark.alive() or process_start(mark.pid) is None):
            for pid in _group_members(mark.pid):
                victims.setdefault(pid, f"{mark.role}'s group")
    for pid in _carrying(record.workdir):  # a game's detached children still have their HOME/TMPDIR in there
        victims.setdefault(pid, "environment in the session dir")
    victims.pop(me, None)
    starts = {pid: process_start(pid) for pid in victims}
    for pid, role in victims.items():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        killed.append(f"pid {pid} ({role})")
    deadline = time.monotonic() + _KILL_WAIT_S
    while time.monotonic() < deadline and any(process_start(p) == s and s is not None for p, s in starts.items()):
        time.sleep(0.02)
    return killed


def _all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _group_members(pgid: int) -> list[int]:
    out = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is not None and len(fields) > 2 and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
            out.append(pid)
    return out


def _carrying(workdir: str) -> list[int]:
    """Processes whose environment names something inside `workdir`."""
    marker = (workdir.rstrip("/") + "/").encode()
    out = []
    for pid in _all_pids():
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes() and process_start(pid) is not None:
                out.append(pid)
        except OSError:
            continue
    return out


def _remove_x_lock(record: SessionRecord) -> list[str]:
    """The display's lock file and socket, unless another live X server holds that display by now (its pid is in the
    lock, or the socket accepts connections). Xvfb -displayfd makes no lock file; older or other servers may."""
    assert record.display is not None
    lock = Path(X_LOCK.format(record.display))
    sock = Path(X_SOCKET.format(record.display))
    try:
        holder = int(lock.read_text().strip())
    except (OSError, ValueError):
        holder = 0
    if (holder and process_start(holder) is not None) or accepts_connections(sock):
        return [f"display :{record.display} is in use by another X server now: its files were left"]
    done = []
    for path in (lock, sock):
        try:
            path.unlink()
            done.append(f"removed {path}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            done.append(f"could not remove {path}: {exc.strerror}")
    return done or [f"display :{record.display} left no files"]


def accepts_connections(path: Path) -> bool:
    """Whether a process listens on the unix socket `path` (a stale socket file refuses)."""
    if not path.exists():
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(str(path))
        return True
    except OSError:  # ECONNREFUSED: nobody listens there any more
        return False
    finally:
        s.close()
