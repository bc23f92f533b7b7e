"""The capacity signal an external autoscaler acts on: per location, the host slots wanted but not there
(`playcast_location_slots_wanted`), computed from the database so that every replica reports the same figure.

Reads hosts, sessions, stream groups and recent refusals; decides nothing and starts nothing (playcast does not
manage machines: an autoscaler adds hosts when this is above 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from playcast.control.fleet_directory import ONLINE, RUNNING_STATUSES, HostView
from playcast.store.models import StreamGroupRow, StreamSessionRow

from .capacity import limits_of


@dataclass(frozen=True)
class LocationDemand:
    """One location's slots against what is asked of it (docs/fleet-metrics.md defines each term)."""

    location: str
    slots: int  # slots of the ONLINE hosts there heard from within the lost-host timeout
    in_use: int  # sessions placed or being placed on those hosts (waiting on a full one included)
    waiting: int  # sessions still waiting for any host there (none online), where their group has room
    refused: int  # sessions refused there for want of a slot within the capacity window
    warm_wanted: int  # idle slots the groups keep there beyond their sessions (AlwaysOn floor, TargetIdle)

    @property
    def needed(self) -> int:
        """Slots asked of the location in all (what an autoscaler divides by the slots per host)."""
        return self.in_use + self.waiting + self.refused + self.warm_wanted

    @property
    def wanted(self) -> int:
        """Slots asked but not there (0 when there is room for everything)."""
        return max(0, self.needed - self.slots)


def _idle_wanted(cfg: dict[str, Any], running: int) -> int:
    """Idle slots a group keeps in one location with `running` sessions there: enough for AlwaysOnCapacity
    allocated in all, and TargetIdleCapacity idle beyond its sessions, both under MaximumCapacity."""
    want = max(int(cfg.get("AlwaysOnCapacity") or 0), running + int(cfg.get("TargetIdleCapacity") or 0))
    ceiling = limits_of(cfg).ceiling
    if ceiling is not None:
        want = min(want, ceiling)
    return max(0, want - running)


async def location_demands(s: Any, hosts: list[HostView], refused: dict[str, int], *, now: float,
                           lost_after_s: float) -> list[LocationDemand]:
    """Every location that has hosts, stream groups or recent refusals, sorted by name, in one read (`s`)."""
    online = {h.host_id: h for h in hosts if h.status == ONLINE and h.fresh(now, lost_after_s)}
    slots: dict[str, int] = {}
    for h in online.values():
        slots[h.location] = slots.get(h.location, 0) + h.slots
    groups = (await s.execute(select(StreamGroupRow.id, StreamGroupRow.locations))).all()
    configs = {gid: {loc["LocationName"]: loc for loc in locs or ()} for gid, locs in groups}
    sessions = (await s.execute(select(StreamSessionRow.stream_group_id, StreamSessionRow.host_id,
                                       StreamSessionRow.location, StreamSessionRow.requested_locations).where(
        StreamSessionRow.status.in_(RUNNING_STATUSES)))).all()
    in_use: dict[str, int] = {}
    running: dict[tuple[str, str], int] = {}  # (group, location) -> its sessions placed there
    unplaced: list[tuple[str, list[str]]] = []
    for group_id, host_id, location, requested in sessions:
        if host_id is None:
            unplaced.append((group_id, list(requested or ())))
            continue
        if location is not None:
            running[(group_id, location)] = running.get((group_id, location), 0) + 1
        if host_id in online:
            where = online[host_id].location
            in_use[where] = in_use.get(where, 0) + 1
    waiting: dict[str, int] = {}
    for group_id, requested in unplaced:
        cfgs = configs.get(group_id, {})
        for name in requested or list(cfgs):  # the first of its locations where its group has room
            cfg = cfgs.get(name)
            ceiling = limits_of(cfg).ceiling if cfg is not None else 0
            if cfg is not None and (ceiling is None or running.get((group_id, name), 0) < ceiling):
                if slots.get(name, 0) == 0:  # with hosts there it is being placed on one (counted in in_use)
                    waiting[name] = waiting.get(name, 0) + 1
                break
    warm: dict[str, int] = {}
    for group_id, cfgs in configs.items():
        for name, cfg in cfgs.items():
            if cfg.get("Status") == "REMOVING":
                continue
            warm[name] = warm.get(name, 0) + _idle_wanted(cfg, running.get((group_id, name), 0))
    names = {h.location for h in hosts} | set(warm) | set(refused) | set(waiting)
    return [LocationDemand(n, slots.get(n, 0), in_use.get(n, 0), waiting.get(n, 0), refused.get(n, 0),
                           warm.get(n, 0)) for n in sorted(names)]
