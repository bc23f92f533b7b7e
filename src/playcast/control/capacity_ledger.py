"""One location's capacity figures as the control plane knows them: the hosts' slots and each group's idle warm slots
(from the hosts' last heartbeats, in the database), every stream group's limits and sessions there.

Reads only (placement, warm targets and LocationStates use them); the arithmetic is control/capacity.py's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text

from playcast.control.capacity import GroupLoad, GroupShare, Limits, limits_of, plan, refusal
from playcast.store.hosts import HostRow
from playcast.store.models import StreamGroupRow, StreamSessionRow

RUNNING_STATUSES = ("ACTIVATING", "ACTIVE", "CONNECTED", "PENDING_CLIENT_RECONNECTION", "RECONNECTING",
                    "TERMINATING")
ONLINE, DRAINING = "ONLINE", "DRAINING"
HELD_STATUSES = ("ACTIVATING", "ACTIVE")  # a location REMOVING (or in ERROR) holds no floor


@dataclass(frozen=True)
class LocationFigures:
    """`slots`: what the location's hosts have for sessions; `loads`: every group with sessions or capacity
    there, the oldest group first; `idle`: idle warm slots per group as the hosts last reported them
    (`measured`: False when the HostPool gives no per-group figures, e.g. a pool used directly in tests)."""

    location: str
    slots: int
    loads: tuple[GroupLoad, ...]
    idle: Mapping[str, int] = field(default_factory=dict)
    measured: bool = True

    def shares(self) -> dict[str, GroupShare]:
        return plan(self.slots, self.loads)

    def refusal(self, group_id: str) -> str | None:
        return refusal(self.slots, self.loads, group_id)

    def busy(self, group_id: str) -> int:
        return next((g.busy for g in self.loads if g.group_id == group_id), 0)


def group_limits(row: StreamGroupRow, location: str) -> Limits | None:
    """The group's limits in `location`, None when the group is not there (or no longer holds capacity there)."""
    if row.status == "DELETING":
        return None
    for loc in row.locations:
        if loc["LocationName"] == location and loc.get("Status", "ACTIVATING") in HELD_STATUSES:
            return limits_of(loc)
    return None


async def hosts_figures(s: Any, location: str, *, now: float, lost_after_s: float) -> tuple[int, dict[str, int]]:
    """(slots for sessions, idle warm slots per group) of the location's hosts heard from within lost_after_s.

    An ONLINE host counts all its slots; a DRAINING one only those its sessions still use (it takes no more)."""
    rows = (await s.execute(select(HostRow).where(
        HostRow.location == location, HostRow.status.in_((ONLINE, DRAINING)),
        HostRow.heartbeat_at >= now - lost_after_s))).scalars().all()
    slots = sum(r.slots if r.status == ONLINE else min(r.busy, r.slots) for r in rows)
    idle = Counter(g for r in rows if r.status == ONLINE for g in (r.warm_groups or ()))
    return slots, dict(idle)


async def location_figures(s: Any, location: str, slots: int, idle: Mapping[str, int] | None = None, *,
                           exclude_session: str | None = None,
                           reserved: Mapping[str, int] | None = None) -> LocationFigures:
    """Every group's load in `location`: sessions placed or being placed there (rows whose location is set,
    `exclude_session` left out) plus `reserved` placements in flight per group, and its limits there."""
    query = select(StreamSessionRow.stream_group_id, func.count()).where(
        StreamSessionRow.location == location, StreamSessionRow.status.in_(RUNNING_STATUSES))
    if exclude_session is not None:
        query = query.where(StreamSessionRow.id != exclude_session)
    busy = Counter(dict((await s.execute(query.group_by(StreamSessionRow.stream_group_id))).all()))
    busy.update(reserved or {})
    groups = (await s.execute(select(StreamGroupRow).order_by(StreamGroupRow.created_at,
                                                              StreamGroupRow.id))).scalars().all()
    loads: list[GroupLoad] = []
    for row in groups:
        limits = group_limits(row, location)
        if limits is not None or busy.get(row.id):
            loads.append(GroupLoad(row.id, limits or Limits(0, 0, 0), int(busy.get(row.id, 0))))
    return LocationFigures(location, slots, tuple(loads), dict(idle or {}), idle is not None)


async def lock_locations(s: Any, locations: list[str]) -> None:
    """PostgreSQL only: hold each location's advisory lock until the transaction `s` ends (in name order, so two
    placements never wait on each other), so that placements of different groups in one location, on any
    replica, see each other's sessions and always-on floors rather than the same free slot."""
    for name in sorted(set(locations)):
        await s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"playcast-location:{name}"})
