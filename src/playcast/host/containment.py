"""Nothing a host process starts outlives it: what the owner of a host pool (`playcast up`, a host agent) does at
start-up, and what each session's runtime uses to start its processes.

- every direct child gets PR_SET_PDEATHSIG(SIGKILL) (procgroup.child_setup), the game a keeper (host/keeper.py:
  a subreaper that kills whatever the game started when the host's lifeline breaks);
- each session gets a cgroup v2 cgroup where the machine allows it (host/cgroups.py), killed when it ends;
- each session is recorded in the host's data dir, and a starting host cleans up after the records of a dead one
  (host/leftovers.py).
Wiring only; no process is started here except the cgroup probe's."""

from __future__ import annotations

import logging
from pathlib import Path

from playcast.host import cgroups
from playcast.host.cgroups import SessionCgroups
from playcast.host.leftovers import SessionRecord, SessionRecords
from playcast.procgroup import ChildSetup, child_setup

log = logging.getLogger(__name__)


class SessionContainment:
    """One session's share: `setup` for each process it starts (`keeper_setup` for the game's keeper), `track()` what
    started, `close()` at the end."""

    def __init__(self, cgroup: Path | None, record: SessionRecord | None) -> None:
        self.cgroup = cgroup
        self.record = record
        procs = cgroups.procs_file(cgroup) if cgroup is not None else None
        self.setup: ChildSetup = child_setup(procs)
        self.keeper_setup: ChildSetup = child_setup(procs, die_with_host=False)  # it has the lifeline instead

    def track(self, role: str, pid: int | None) -> None:
        if self.record is not None and pid is not None:
            self.record.add_process(role, pid)

    def track_display(self, number: int) -> None:
        if self.record is not None:
            self.record.set_display(number)

    def track_path(self, path: Path) -> None:
        if self.record is not None:
            self.record.add_path(path)

    def close(self) -> None:
        """After a clean stop: kill anything still in the session's cgroup, remove it, forget the record. Blocking
        (a thread's job) only when something was left."""
        if self.cgroup is not None:
            left = cgroups.kill_and_remove(self.cgroup)
            if left:
                log.warning("session processes were still running at its end: killed", extra={
                    "cgroup": str(self.cgroup), "pids": left})
        if self.record is not None:
            self.record.delete()


class HostContainment:
    """Per host process. `start()` once (blocking: run it in a thread), then `session()` per launch.

    `state_dir`: where session records go (the host's data dir); without one nothing is recorded or cleaned."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.records = SessionRecords(state_dir / "host-sessions") if state_dir is not None else None
        self.cgroups: SessionCgroups | None = None
        self.started = False

    def start(self) -> list[str]:
        """Clean up after dead predecessors on this data dir, probe for cgroups, log what protects sessions.
        Returns the clean-up's lines."""
        cleaned = self.records.reap() if self.records is not None else []
        self.cgroups, how = SessionCgroups.probe()
        log.info("session containment: PR_SET_PDEATHSIG on every child, a subreaper keeper per game; %s",
                 how if self.cgroups is not None else f"no session cgroups ({how})",
                 extra={"cgroups": self.cgroups is not None, "records": self.records is not None})
        self.started = True
        return cleaned

    def session(self, workdir: Path) -> SessionContainment:
        record = self.records.open(workdir) if self.records is not None else None
        cgroup = None
        if self.cgroups is not None:
            try:
                cgroup = self.cgroups.create(workdir.name)
            except OSError as exc:
                log.warning("no cgroup for this session: %s", exc.strerror or exc, extra={"session_dir": str(workdir)})
        if record is not None and cgroup is not None:
            record.set_cgroup(cgroup)
        return SessionContainment(cgroup, record)
