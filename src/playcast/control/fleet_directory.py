"""The fleet in the database: every host as last heard from (written by the replica that holds its connection) and
the replicas alive, so that any replica places sessions on any host, counts capacity, and reconciles after a
restart from what is known rather than from its own memory.

Reads and writes of the hosts and replicas tables only; the Fleet feeds it (joins, heartbeats, departures)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from playcast.control.host_connection import HostConnection
from playcast.hostproto import codec
from playcast.hostproto.media_endpoint import HostMediaEndpoint
from playcast.store.db import Database
from playcast.store.hosts import HostRow, ReplicaRow
from playcast.store.models import StreamSessionRow

log = logging.getLogger(__name__)

ONLINE, DRAINING, OFFLINE = "ONLINE", "DRAINING", "OFFLINE"
RUNNING_STATUSES = ("ACTIVATING", "ACTIVE", "CONNECTED", "PENDING_CLIENT_RECONNECTION", "RECONNECTING",
                    "TERMINATING")


@dataclass(frozen=True)
class HostView:
    """One host as a replica reads it from the database."""

    host_id: str
    location: str
    slots: int
    busy: int
    warm: int
    paused: int
    warm_launches: tuple[str, ...]
    status: str
    replica_id: str | None
    heartbeat_at: float
    sessions: dict[str, Any]  # session id -> state (codec wire form)
    version: str
    encoder: str

    def fresh(self, now: float, lost_after_s: float) -> bool:
        return self.status != OFFLINE and now - self.heartbeat_at <= lost_after_s


def _view(row: HostRow) -> HostView:
    return HostView(row.id, row.location, row.slots, row.busy, row.warm, row.paused or 0,
                    tuple(row.warm_launches or ()),
                    row.status, row.replica_id, row.heartbeat_at, dict(row.sessions or {}), row.version, row.encoder)


def key_digest(host_key: str) -> str:
    """What the database keeps of a host key (hosts.key_sha256): never the key itself."""
    return hashlib.sha256(host_key.encode()).hexdigest()


class FleetDirectory:
    def __init__(self, db: Database, replica_id: str, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.replica_id = replica_id
        self.clock = clock

    # ------------------------------------------------------------------ this replica
    async def replica_alive(self) -> None:
        now = self.clock()
        async with self.db.session() as s:
            row = await s.get(ReplicaRow, self.replica_id)
            if row is None:
                s.add(ReplicaRow(id=self.replica_id, started_at=now, heartbeat_at=now))
            else:
                row.heartbeat_at = now
            await s.commit()

    async def replica_gone(self) -> None:
        """This replica stops: its hosts' rows say OFFLINE until they dial another one."""
        async with self.db.session() as s:
            await s.execute(update(HostRow).where(HostRow.replica_id == self.replica_id).values(status=OFFLINE))
            row = await s.get(ReplicaRow, self.replica_id)
            if row is not None:
                await s.delete(row)
            await s.commit()

    # ------------------------------------------------------------------ hosts, from the Fleet
    async def joined(self, conn: HostConnection, status: str) -> None:
        h = conn.hello
        now = self.clock()
        async with self.db.session() as s:
            row = await s.get(HostRow, h.host_id)
            if row is None:
                row = HostRow(id=h.host_id, joined_at=now)
                s.add(row)
            row.location, row.slots, row.status, row.replica_id = h.location, h.slots, status, self.replica_id
            if row.key_sha256 is None and h.host_key:  # the id is this machine's from now on
                row.key_sha256 = key_digest(h.host_key)
            row.version, row.encoder, row.public_address = h.version, h.encoder, h.public_address
            row.media_url, row.media_key = h.media_url, h.media_key
            row.busy, row.warm, row.paused, row.warm_launches, row.warm_groups = len(h.sessions), 0, 0, [], []
            row.sessions = {sid: {"session_id": sid, "viewers": 0} for sid in h.sessions}
            row.joined_at = row.joined_at or now
            row.heartbeat_at = now
            await s.commit()

    async def heard(self, conn: HostConnection) -> None:
        """The host's figures as of its last heartbeat (or reply)."""
        hb = conn.heartbeat
        async with self.db.session() as s:
            await s.execute(update(HostRow).where(HostRow.id == conn.host_id,
                                                  HostRow.replica_id == self.replica_id).values(
                slots=conn.slots, busy=min(conn.busy, conn.slots), warm=conn.warm, paused=conn.paused,
                warm_launches=list(hb.warm_launches) if hb is not None else [],
                warm_groups=list(hb.warm_groups) if hb is not None else [],
                sessions={sid: codec.state_to_wire(st) for sid, st in conn.sessions.items()},
                heartbeat_at=self.clock()))
            await s.commit()

    async def set_status(self, host_id: str, status: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(HostRow).where(HostRow.id == host_id).values(status=status))
            await s.commit()

    async def left(self, host_id: str) -> None:
        """The host's connection to this replica ended (if it is on another replica by now, nothing changes)."""
        async with self.db.session() as s:
            await s.execute(update(HostRow).where(HostRow.id == host_id, HostRow.replica_id == self.replica_id)
                            .values(status=OFFLINE))
            await s.commit()

    async def key_of(self, host_id: str) -> str | None:
        async with self.db.session() as s:
            return (await s.execute(select(HostRow.key_sha256).where(HostRow.id == host_id))).scalar_one_or_none()

    async def proves(self, host_id: str, host_key: str) -> bool:
        """Whether `host_key` is the key `host_id` is bound to (a host never bound proves nothing)."""
        known = await self.key_of(host_id)
        return known is not None and hmac.compare_digest(known, key_digest(host_key))

    async def forget(self, host_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(HostRow, host_id)
            if row is not None:
                await s.delete(row)
                await s.commit()

    # ------------------------------------------------------------------ reads
    async def hosts(self) -> list[HostView]:
        async with self.db.session() as s:
            rows = (await s.execute(select(HostRow).order_by(HostRow.location, HostRow.id))).scalars().all()
        return [_view(r) for r in rows]

    async def orphaned_hosts(self, live: set[str], heard_before: float) -> list[str]:
        """Hosts not OFFLINE, last heard before `heard_before`, whose replica is not in `live`: no replica holds
        them any more (theirs died with them, or they never dialled another). Marked OFFLINE and returned."""
        async with self.db.session() as s:
            rows = (await s.execute(select(HostRow).where(HostRow.status != OFFLINE,
                                                          HostRow.heartbeat_at < heard_before))).scalars().all()
            gone = [r.id for r in rows if r.replica_id not in live]
            if gone:
                await s.execute(update(HostRow).where(HostRow.id.in_(gone), HostRow.heartbeat_at < heard_before)
                                .values(status=OFFLINE))
                await s.commit()
        return gone

    async def media_endpoint(self, session_id: str) -> HostMediaEndpoint | None:
        """The LL-HLS endpoint of the host the session was placed on, whichever replica holds that host (None: the
        session is on no host, or on one without an endpoint, such as a server's embedded host)."""
        async with self.db.session() as s:
            row = (await s.execute(select(HostRow.media_url, HostRow.media_key).join(
                StreamSessionRow, StreamSessionRow.host_id == HostRow.id).where(
                StreamSessionRow.id == session_id, HostRow.status != OFFLINE))).first()
        if row is None or row.media_url is None or row.media_key is None:
            return None
        return HostMediaEndpoint(row.media_url, row.media_key)

    async def live_replicas(self, stale_after_s: float) -> set[str]:
        async with self.db.session() as s:
            rows = (await s.execute(select(ReplicaRow.id).where(
                ReplicaRow.heartbeat_at >= self.clock() - stale_after_s))).scalars().all()
        return set(rows)


async def pick_host(s: Any, locations: list[str], launch_key: str, *, now: float, lost_after_s: float,
                    lock: bool) -> tuple[str, str] | None:
    """In one placement's transaction `s`: the (location, host) to reserve a slot on — in the locations' order
    the first with room: a host there with an idle warm slot of this launch, else its least loaded host with a
    free slot; with no room anywhere, the least loaded host of the first location that has one (it waits, or
    evicts another launch's warm slot). Load counts every session placed or being placed on a host (rows with
    its host id), so concurrent placements see each other. With `lock`, host rows are locked FOR UPDATE (in id
    order) until the transaction ends. None when no host is online in any of the locations."""
    query = select(HostRow).where(HostRow.location.in_(locations), HostRow.status == ONLINE,
                                  HostRow.heartbeat_at >= now - lost_after_s).order_by(HostRow.id)
    if lock:
        query = query.with_for_update()
    hosts = (await s.execute(query)).scalars().all()
    if not hosts:
        return None
    loads = dict((await s.execute(
        select(StreamSessionRow.host_id, func.count()).where(
            StreamSessionRow.host_id.in_([h.id for h in hosts]),
            StreamSessionRow.status.in_(RUNNING_STATUSES)).group_by(StreamSessionRow.host_id))).all())
    fallback: tuple[str, str] | None = None
    for location in locations:
        here = sorted((h for h in hosts if h.location == location),
                      key=lambda h: (loads.get(h.id, 0) / max(1, h.slots), h.id))
        free = [h for h in here if loads.get(h.id, 0) < h.slots]
        warm = [h for h in free if launch_key in (h.warm_launches or ())]
        if warm or free:
            return location, (warm or free)[0].id
        if here and fallback is None:
            fallback = (location, here[0].id)
    return fallback
