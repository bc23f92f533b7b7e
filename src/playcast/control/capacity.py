"""Capacity as GameLift Streams defines it, for the stream groups sharing one location's host slots: the always-on
floor each group holds, the warm (idle) slots each keeps within its ceiling, and whether one more session may start.

Pure functions of plain values: no I/O, no database, no HostPool, no AWS wire shapes beyond reading a location's
stored capacity fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """One stream group's capacity settings in one location.

    `always_on`: slots held for the group whether used or not (a floor on its allocated capacity).
    `target_idle`: slots kept launched and idle beyond its sessions, within the ceiling.
    `maximum`: the ceiling on allocated capacity (sessions + idle); None: bounded by the hosts' slots only."""

    always_on: int = 0
    target_idle: int = 0
    maximum: int | None = None

    @property
    def ceiling(self) -> int | None:
        return None if self.maximum is None else max(self.maximum, self.always_on)


def limits_of(loc: Mapping[str, Any]) -> Limits:
    """A location's stored settings (LocationConfiguration fields) as Limits.

    MaximumCapacity is the ceiling; the deprecated OnDemandCapacity makes it AlwaysOn + OnDemand. Neither given
    (AWS then applies "internal defaults"): playcast sets no ceiling of its own, the hosts' slots bound the group
    (so `playcast up --warm N` keeps streaming past its N always-on slots)."""
    always_on = int(loc.get("AlwaysOnCapacity") or 0)
    target_idle = int(loc.get("TargetIdleCapacity") or 0)
    if loc.get("MaximumCapacity") is not None:
        return Limits(always_on, target_idle, int(loc["MaximumCapacity"]))
    if loc.get("OnDemandCapacity") is not None:
        return Limits(always_on, target_idle, always_on + int(loc["OnDemandCapacity"]))
    return Limits(always_on, target_idle)


@dataclass(frozen=True)
class GroupLoad:
    """A group in a location: its limits and its sessions placed or being placed there (`busy`)."""

    group_id: str
    limits: Limits
    busy: int


@dataclass(frozen=True)
class GroupShare:
    """What one group gets of a location's slots.

    `requested`: the allocated capacity the group asks for now: max(floor, sessions + target idle) within its
    ceiling. `held`: idle slots of its always-on floor reserved for it (no other group may use them). `warm`: idle
    slots to keep launched for it (`held` plus its share of target idle). `short`: always-on slots it asked for and
    the hosts cannot hold (shown as not allocated)."""

    group_id: str
    requested: int
    held: int
    warm: int
    short: int


def requested(load: GroupLoad) -> int:
    """max(AlwaysOn, sessions + TargetIdle), capped by the ceiling (never below the sessions already running)."""
    want = max(load.limits.always_on, load.busy + load.limits.target_idle)
    ceiling = load.limits.ceiling
    if ceiling is not None:
        want = min(want, max(ceiling, load.busy))
    return max(want, load.busy)


def plan(slots: int, loads: Sequence[GroupLoad]) -> dict[str, GroupShare]:
    """Share `slots` among the groups of one location, in the order given (the earlier group first).

    Sessions come first (they run already); then each group's always-on floor is held, in order, as far as the
    slots left allow; then the slots still free are dealt one at a time, round robin, to the groups whose
    requested capacity is not met yet (target idle). Sessions + warm never exceed `slots` (unless the sessions
    alone do) and no group is given more than its ceiling."""
    free = max(0, slots - sum(load.busy for load in loads))
    held: dict[str, int] = {}
    short: dict[str, int] = {}
    for load in loads:
        need = max(0, min(load.limits.always_on, requested(load)) - load.busy)
        held[load.group_id] = min(need, free)
        short[load.group_id] = need - held[load.group_id]
        free -= held[load.group_id]
    extra = {load.group_id: 0 for load in loads}
    wants = {load.group_id: requested(load) - load.busy - held[load.group_id] for load in loads}
    while free > 0:
        dealt = False
        for load in loads:
            if free > 0 and extra[load.group_id] < wants[load.group_id]:
                extra[load.group_id] += 1
                free -= 1
                dealt = True
        if not dealt:
            break
    return {load.group_id: GroupShare(load.group_id, requested(load), held[load.group_id],
                                      held[load.group_id] + extra[load.group_id], short[load.group_id])
            for load in loads}


CEILING_REACHED = "the stream group's capacity here is reached"  # refusal()'s words when more hosts would not help
NO_HOST_HERE = "no host with slots is online here"  # refusal()'s words when the location has no slots at all


def refusal(slots: int, loads: Sequence[GroupLoad], group_id: str) -> str | None:
    """Why one more session of `group_id` cannot start in this location now, or None when it can.

    It can when the group is under its ceiling and either one of its own held always-on slots is idle or a slot
    is free that no other group's always-on floor holds (another group's target-idle warm slot may be taken)."""
    load = next((g for g in loads if g.group_id == group_id), None)
    if load is None:
        return "the stream group is not in this location"
    ceiling = load.limits.ceiling
    if ceiling is not None and load.busy >= ceiling:
        return f"{CEILING_REACHED} ({load.busy} of {ceiling})"
    if slots <= 0:
        return NO_HOST_HERE
    shares = plan(slots, loads)
    if shares[group_id].held > 0:
        return None
    free = slots - sum(g.busy for g in loads) - sum(s.held for s in shares.values())
    if free > 0:
        return None
    return f"every slot of the hosts here ({slots}) runs a session or is held as another group's always-on capacity"
