"""What placement did, for operators: placements and placement failures by location and reason, how long each
took, and each refusal for want of a host slot written to the database, where every replica's capacity signal
(control/capacity_signal.py) reads the recent ones.

Counts and records only; placing is control/sessions.py's job, exposing them is metrics.py's."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select

from playcast.store.db import Database
from playcast.store.hosts import PlacementRefusalRow

log = logging.getLogger(__name__)

# Why a placement failed (the `reason` label of playcast_placement_failures_total).
NO_CAPACITY = "no_capacity"  # hosts in the location, every slot busy until the placement timeout
NO_HOST = "no_host"  # no host online in any of the session's locations
HOST_ERROR = "host_error"  # the host failed the launch, went away, or answered with an error
TIMEOUT = "timeout"  # the host did not answer within the placement timeout
GROUP_MAXIMUM = "group_maximum"  # the stream group's MaximumCapacity there was reached (more hosts would not help)
INTERNAL = "internal"  # the control plane itself failed
REASONS = (NO_CAPACITY, NO_HOST, HOST_ERROR, TIMEOUT, GROUP_MAXIMUM, INTERNAL)
WANT_SLOTS = (NO_CAPACITY, NO_HOST)  # refusals that more host slots in the location would have avoided
KEEP_REFUSALS_S = 3600.0  # older refusal rows are deleted (the capacity window is at most this long)
BUCKETS_S = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
WARM, COLD, FAILED = "warm", "cold", "failed"  # the `result` label of playcast_placement_duration_seconds


@dataclass(frozen=True)
class Refusal:
    """Why a session could not have a slot yet: the failure reason, the location it concerns, for people."""

    reason: str
    location: str
    message: str


@dataclass
class Histogram:
    """Cumulative bucket counts (upper bounds BUCKETS_S, then +Inf), the sum and the count of what was observed."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                self.counts[i] += 1
        self.counts[-1] += 1
        self.total_s += seconds

    def buckets(self) -> list[tuple[str, int]]:
        return [*((str(b), n) for b, n in zip(BUCKETS_S, self.counts, strict=False)), ("+Inf", self.counts[-1])]


class PlacementStats:
    """Counters of this replica (Prometheus sums them over replicas) and the shared refusal log."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.placed: dict[tuple[str, bool], int] = {}  # (location, warm) -> placements
        self.failed: dict[tuple[str, str], int] = {}  # (location, reason) -> failures
        self.durations: dict[tuple[str, str], Histogram] = {}  # (location, WARM|COLD|FAILED) -> seconds

    def placed_at(self, location: str, warm: bool, seconds: float) -> None:
        self.placed[(location, warm)] = self.placed.get((location, warm), 0) + 1
        self.durations.setdefault((location, WARM if warm else COLD), Histogram()).observe(seconds)

    async def failed_at(self, refusal: Refusal, seconds: float) -> None:
        """Count the failure; one that more slots would have avoided is also written to the refusal log."""
        key = (refusal.location, refusal.reason)
        self.failed[key] = self.failed.get(key, 0) + 1
        self.durations.setdefault((refusal.location, FAILED), Histogram()).observe(seconds)
        if refusal.reason not in WANT_SLOTS or not self.db.is_open:
            return
        now = self.clock()
        try:
            async with self.db.session() as s:
                s.add(PlacementRefusalRow(location=refusal.location, reason=refusal.reason, at=now))
                await s.execute(delete(PlacementRefusalRow).where(PlacementRefusalRow.at < now - KEEP_REFUSALS_S))
                await s.commit()
        except Exception as exc:  # noqa: BLE001 - a lost figure must not change what happens to the session
            log.warning("placement refusal not recorded: %r", exc)

    async def recent_refusals(self, window_s: float) -> dict[str, int]:
        """Refusals for want of a slot in the last `window_s` seconds, on every replica, by location."""
        async with self.db.session() as s:
            rows = (await s.execute(select(PlacementRefusalRow.location, func.count()).where(
                PlacementRefusalRow.at >= self.clock() - window_s).group_by(PlacementRefusalRow.location))).all()
        return {location: int(n) for location, n in rows}
