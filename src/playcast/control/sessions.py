"""The stream-session state machine: start/placement, host events, reconnection, termination and timeouts.

State lives in the database (it survives a restart); this module calls the HostPool but knows no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update

from playcast.hostproto.types import (
    LaunchSpec,
    Placement,
    PlacementError,
    SessionEvent,
    SessionEventKind,
    SignalError,
    launch_key,
)

from ..store import queries
from ..store.models import ApplicationRow, AssociationRow, StreamGroupRow, StreamSessionRow
from .capacity import CEILING_REACHED, NO_HOST_HERE
from .capacity_ledger import lock_locations
from .errors import ConflictError, InternalError, NotFoundError, ValidationError
from .fleet_directory import pick_host
from .ids import STREAM_GROUP, new_stream_session_id
from .pages import list_page
from .placement_stats import GROUP_MAXIMUM, HOST_ERROR, INTERNAL, NO_CAPACITY, NO_HOST, TIMEOUT, Refusal
from .signal import BadSignal, parse_offer
from .stream_groups import USABLE
from .watch import ChangeWatch

if TYPE_CHECKING:
    from .plane import ControlPlane

log = logging.getLogger(__name__)

ACTIVATING = "ACTIVATING"
ACTIVE = "ACTIVE"
CONNECTED = "CONNECTED"
PENDING = "PENDING_CLIENT_RECONNECTION"
RECONNECTING = "RECONNECTING"
TERMINATING = "TERMINATING"
TERMINATED = "TERMINATED"
ERROR = "ERROR"
RUNNING = (ACTIVATING, ACTIVE, CONNECTED, PENDING, RECONNECTING, TERMINATING)
PLACED = (ACTIVE, CONNECTED, PENDING, RECONNECTING)  # a host runs it and it may be terminated
FINAL = (TERMINATED, ERROR)
RESUMABLE = (PENDING, ACTIVE, CONNECTED)
ERROR_REASONS = {"internalError", "invalidSignalRequest", "placementTimeout", "applicationLogS3DestinationError",
                 "assumeRoleFailed"}
DEFAULT_CONNECTION_TIMEOUT_S = 120
DEFAULT_SESSION_LENGTH_S = 43200
MAX_OFFER_DIGESTS = 64
PLACEMENT_GRACE_S = 10.0  # a host may take this long past the placement timeout before the placement is given up
SHUTTING_DOWN = "server shutting down"
NO_ROOM = ("no capacity for the stream group in its locations (MaximumCapacity reached, or every host slot runs a "
           "session or is held as another group's always-on capacity)")


def _digest(signal_request: str) -> str:
    return hashlib.sha256(signal_request.encode()).hexdigest()


class StreamSessions:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.watch = ChangeWatch()
        self._capacity = ChangeWatch()  # key: stream group id; notified when one of its sessions ends
        self._reserved: dict[tuple[str, str], int] = {}  # (group, location) -> placements in flight
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._reserve_lock = asyncio.Lock()
        self._placing: dict[str, asyncio.Task[None]] = {}  # session id -> its placement task (on this replica)
        self._cancel_messages: dict[str, str] = {}  # session id -> why its placement task was cancelled
        self._timer: asyncio.Task[None] | None = None
        self.tick_s = 1.0
        self._started_at = time.time()

    # -- reading --------------------------------------------------------------------------------------

    async def load(self, s: Any, group_identifier: str, session_identifier: str) -> StreamSessionRow:
        group_id = self.plane.arns.resolve(group_identifier, STREAM_GROUP)
        if session_identifier.startswith("arn:"):
            _, parts = self.plane.arns.parse(session_identifier)
            if len(parts) != 2 or parts[0] != group_id:
                raise NotFoundError(f"Stream session {session_identifier} not found in stream group {group_id}")
            session_id = parts[1]
        else:
            session_id = session_identifier
        if await s.get(StreamGroupRow, group_id) is None:
            raise NotFoundError(f"Stream group {group_identifier} not found")
        row = await s.get(StreamSessionRow, session_id)
        if row is None or row.stream_group_id != group_id:
            raise NotFoundError(f"Stream session {session_identifier} not found in stream group {group_id}")
        return row

    async def row(self, session_id: str) -> StreamSessionRow | None:
        async with self.plane.db.session() as s:
            return await s.get(StreamSessionRow, session_id)

    @staticmethod
    def render(row: StreamSessionRow) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Arn": row.arn, "Description": row.description, "StreamGroupId": row.stream_group_id,
            "UserId": row.user_id, "Status": row.status, "StatusReason": row.status_reason,
            "StatusMessage": row.status_message, "Protocol": row.protocol, "Location": row.location, "SignalRequest": row.signal_request,
            "SignalResponse": row.signal_response or "", "ConnectionTimeoutSeconds": row.connection_timeout_s,
            "SessionLengthSeconds": row.session_length_s, "AdditionalLaunchArgs": list(row.launch_args or []),
            "AdditionalEnvironmentVariables": dict(row.launch_env or {}),
            "PerformanceStatsConfiguration": {"SharedWithClient": bool(row.perf_stats_shared)},
            "LastUpdatedAt": row.updated_at, "CreatedAt": row.created_at, "ApplicationArn": row.application_arn,
            "ApplicationStartedAt": row.application_started_at, "StreamingStartedAt": row.streaming_started_at,
            "StreamingEndedAt": row.streaming_ended_at,
        }
        out.update(StreamSessions._export_metadata(row))
        if row.log_uri is not None:
            out["LogFileLocationUri"] = row.log_uri
        return out

    @staticmethod
    def _export_metadata(row: StreamSessionRow) -> dict[str, Any]:
        if row.export_status is None:
            return {}
        return {"ExportFilesMetadata": {"Status": row.export_status, "StatusReason": row.export_reason,
                                        "OutputUri": row.export_uri}}

    @staticmethod
    def summary(row: StreamSessionRow) -> dict[str, Any]:
        return {"Arn": row.arn, "UserId": row.user_id, "Status": row.status, "StatusReason": row.status_reason,
                "Protocol": row.protocol, "LastUpdatedAt": row.updated_at, "CreatedAt": row.created_at,
                "ApplicationArn": row.application_arn, "Location": row.location,
                **StreamSessions._export_metadata(row)}

    async def get(self, group_identifier: str, session_identifier: str) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            return self.render(await self.load(s, group_identifier, session_identifier))

    async def list(self, group_identifier: str | None, status: str | None, export_status: str | None,
                   max_results: int | None, next_token: str | None, user_id: str | None = None,
                   statuses: tuple[str, ...] | None = None) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            stmt = select(StreamSessionRow)
            if group_identifier is not None:
                group_id = self.plane.arns.resolve(group_identifier, STREAM_GROUP)
                if await s.get(StreamGroupRow, group_id) is None:
                    raise NotFoundError(f"Stream group {group_identifier} not found")
                stmt = stmt.where(StreamSessionRow.stream_group_id == group_id)
            if status:
                stmt = stmt.where(StreamSessionRow.status == status)
            if statuses:
                stmt = stmt.where(StreamSessionRow.status.in_(list(statuses)))
            if export_status:
                stmt = stmt.where(StreamSessionRow.export_status == export_status)
            if user_id is not None:
                stmt = stmt.where(StreamSessionRow.user_id == user_id)
            return await list_page(s, stmt, StreamSessionRow, max_results, next_token, self.summary)

    async def wait_for(self, session_id: str, done: Callable[[StreamSessionRow], bool],
                       timeout: float) -> StreamSessionRow | None:
        """Wait until `done(row)` holds (or the row is gone) or `timeout` passes; returns the last row read."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.watch.arm(session_id)
            row = await self.row(session_id)
            if row is None or done(row):
                return row
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return row
            await self.watch.wait(event, min(remaining, 1.0))  # 1 s poll: changes made by other replicas

    # -- transitions ----------------------------------------------------------------------------------

    async def _cas(self, session_id: str, from_statuses: tuple[str, ...] | list[str], **values: Any) -> bool:
        async with self.plane.db.session() as s:
            changed = await queries.compare_and_set_session(s, session_id, from_statuses, values)
            await s.commit()
        if changed:
            status = values.get("status")
            if status:
                log.info("session %s -> %s%s", session_id, status,
                         f" ({values['status_reason']})" if values.get("status_reason") else "")
            self.watch.notify(session_id)
            if status in FINAL or status == ACTIVE:  # a slot was taken or freed: warm targets follow
                self.plane.stream_groups.capacity_changed()
            if status in FINAL:
                group_id = await self._group_of(session_id)
                if group_id:
                    self._capacity.notify(group_id)
        return changed

    async def _group_of(self, session_id: str) -> str | None:
        row = await self.row(session_id)
        return row.stream_group_id if row else None

    async def _end(self, session_id: str, from_statuses: tuple[str, ...], reason: str,
                   message: str | None = None) -> bool:
        """Move a placed session to TERMINATING, stop it on its host, then TERMINATED(reason)."""
        if not await self._cas(session_id, from_statuses, status=TERMINATING, status_reason=reason,
                               status_message=message, deadline_at=None):
            return False
        await self.plane.session_files.collect_at_end(session_id)
        try:
            await self.plane.host_pool.terminate(session_id, "idle" if reason == "idleTimeout" else "terminated")
        except Exception:  # noqa: BLE001 - the session is over for the client either way
            log.exception("session %s: HostPool.terminate failed", session_id)
        now = time.time()
        await self._cas(session_id, (TERMINATING,), status=TERMINATED, status_reason=reason,
                        streaming_ended_at=now)
        return True

    async def _cleanup_host(self, session_id: str) -> None:
        try:
            await self.plane.host_pool.terminate(session_id)
        except Exception:  # noqa: BLE001
            log.exception("session %s: HostPool.terminate (cleanup) failed", session_id)

    # -- start and placement --------------------------------------------------------------------------

    async def start(self, group_identifier: str, params: dict[str, Any]) -> dict[str, Any]:
        async def create(s: Any) -> tuple[str, None]:
            group = await self.plane.stream_groups.load(s, group_identifier)
            if group.status not in USABLE:
                raise ConflictError(f"Stream group {group.id} is {group.status}, not ACTIVE")
            app = await self.plane.applications.load(s, params["ApplicationIdentifier"])
            assoc = await s.get(AssociationRow, (group.id, app.id))
            if assoc is None:
                raise ValidationError(f"Application {app.id} is not associated with stream group {group.id}")
            if app.status != "READY":
                raise ConflictError(f"Application {app.id} is {app.status}, not READY")
            group_locations = [loc["LocationName"] for loc in group.locations if loc.get("Status") != "REMOVING"]
            requested = list(params.get("Locations") or [])
            unknown = [loc for loc in requested if loc not in group_locations]
            if unknown:
                raise ValidationError(f"Location(s) {', '.join(unknown)} are not in stream group {group.id} "
                                      f"(it has {', '.join(group_locations)})")
            now = time.time()
            session_id = new_stream_session_id()
            conn_timeout = params.get("ConnectionTimeoutSeconds") or DEFAULT_CONNECTION_TIMEOUT_S
            length = params.get("SessionLengthSeconds") or DEFAULT_SESSION_LENGTH_S
            s.add(StreamSessionRow(
                id=session_id, arn=self.plane.arns.stream_session(group.id, session_id), stream_group_id=group.id,
                application_id=app.id, application_arn=app.arn, description=params.get("Description"),
                user_id=params.get("UserId"), status=ACTIVATING, status_reason=None, protocol=params["Protocol"],
                location=None, requested_locations=requested, signal_request=params["SignalRequest"],
                signal_response=None, connection_timeout_s=conn_timeout, session_length_s=length,
                launch_args=list(params.get("AdditionalLaunchArgs") or []),
                launch_env=dict(params.get("AdditionalEnvironmentVariables") or {}),
                perf_stats_shared=bool((params.get("PerformanceStatsConfiguration") or {}).get("SharedWithClient")),
                offer_digests=[_digest(params["SignalRequest"])],
                warm=False, created_at=now, updated_at=now, expires_at=now + length))
            return session_id, None

        async def replay(session_id: str | None, _resp: Any) -> dict[str, Any]:
            row = await self.row(session_id or "")
            if row is None:
                raise NotFoundError(f"Stream session {session_id} no longer exists")
            return self.render(row)

        def after(session_id: str | None) -> None:
            assert session_id is not None
            task = self.plane.spawn(self._place(session_id), f"place-{session_id}")
            self._placing[session_id] = task
            task.add_done_callback(lambda _t: self._placing.pop(session_id, None))

        return await self.plane.idempotent("StartStreamSession", params.get("ClientToken"),
                                           {**params, "Identifier": group_identifier}, create, replay, after)

    async def _candidates(self, row: StreamSessionRow) -> list[str]:
        """The session's locations in preference order where the group may start one more session now
        (control/capacity.refusal: its ceiling, other groups' always-on floors, the hosts' slots)."""
        async with self.plane.db.session() as s:
            group = await s.get(StreamGroupRow, row.stream_group_id)
            if group is None:
                return []
            return await self._room_in(s, group, row, self._reserved)

    @property
    def placement_limit_s(self) -> float:
        """How long after StartStreamSession a session may stay ACTIVATING before the timers end it."""
        return float(self.plane.settings.placement_timeout_s) + PLACEMENT_GRACE_S

    async def _place(self, session_id: str) -> None:
        """Place one session. Whatever happens in here (an error anywhere, a cancellation), the session leaves
        ACTIVATING and keeps neither a host slot nor a capacity reservation it did not get to use."""
        started = time.monotonic()
        try:
            await self._try_place(session_id, started)
        except asyncio.CancelledError:
            message = self._cancel_messages.pop(session_id, "placement cancelled")
            await self._placement_failed(session_id, "internalError", message)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure ends the session in ERROR
            log.exception("session %s: placement crashed", session_id)
            await self._count_failure(session_id, INTERNAL, started)
            await self._placement_failed(session_id, "internalError",
                                         f"placement failed: {type(exc).__name__}: {str(exc)[:200]}")

    async def _count_failure(self, session_id: str, reason: str, started: float, location: str | None = None,
                             message: str = "") -> None:
        """Count a failed placement for operators, in `location` or else the session's first wanted one. Never
        raises: what happens to the session must not depend on a figure."""
        try:
            if location is None:
                row = await self.row(session_id)
                location = (row.location or next(iter(row.requested_locations or ()), None)) if row else None
            await self.plane.placement_stats.failed_at(Refusal(reason, location or "", message),
                                                       time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001
            log.warning("session %s: placement failure not counted: %r", session_id, exc)

    async def _try_place(self, session_id: str, started: float) -> None:
        row = await self.row(session_id)
        if row is None or row.status != ACTIVATING:
            return
        if self.plane.stopping:
            await self._cas(session_id, (ACTIVATING,), status=ERROR, status_reason="internalError",
                            status_message=SHUTTING_DOWN)
            return
        try:
            offer = parse_offer(row.signal_request, allow_no_client=True)
        except BadSignal as exc:
            await self._cas(session_id, (ACTIVATING,), status=ERROR, status_reason="invalidSignalRequest",
                            status_message=str(exc))
            return
        async with self.plane.db.session() as s:
            app = await s.get(ApplicationRow, row.application_id)
        if app is None or app.status != "READY":
            await self._cas(session_id, (ACTIVATING,), status=ERROR, status_reason="internalError",
                            status_message="application is no longer READY")
            return
        launch = self.plane.applications.launch_spec(app, row.launch_args, row.launch_env)
        deadline = time.monotonic() + float(self.plane.settings.placement_timeout_s)
        group_id = row.stream_group_id
        reserved = await self._reserve(row, deadline, launch, started)
        if reserved is None:
            return
        locations, host_id = reserved
        try:  # the reservation is held until the session counts in its location itself (or has failed)
            placement = Placement(session_id=session_id, stream_group_id=group_id, locations=tuple(locations),
                                  launch=launch, signal_request=offer, host_id=host_id)
            remaining = max(1.0, deadline - time.monotonic())
            try:
                result = await asyncio.wait_for(self.plane.host_pool.place(placement, remaining),
                                                remaining + PLACEMENT_GRACE_S)
            except PlacementError as exc:  # a host's placementTimeout: no slot of its came free in time
                await self._count_failure(session_id, NO_CAPACITY if exc.reason == "placementTimeout" else HOST_ERROR,
                                          started, locations[0] if len(locations) == 1 else None, str(exc))
                await self._placement_failed(session_id, exc.reason, str(exc))
                return
            except TimeoutError:
                await self._count_failure(session_id, TIMEOUT, started, locations[0] if len(locations) == 1 else None)
                await self._placement_failed(session_id, "placementTimeout",
                                             "no host slot within the placement timeout")
                return
            self.plane.placement_stats.placed_at(result.location, result.warm, time.monotonic() - started)
            now = time.time()
            ok = await self._cas(session_id, (ACTIVATING,), status=ACTIVE, status_reason=None,
                                 location=result.location, host_id=result.host_id, slot_id=result.slot_id,
                                 warm=result.warm, signal_response=result.signal_response or "",
                                 application_started_at=now, deadline_at=now + row.connection_timeout_s)
        finally:
            if host_id is None:
                self._unreserve(group_id, locations)
            else:  # the row's own location and host were the reservation: its status now counts (or frees) it
                self._capacity.notify(group_id)
        if not ok:  # ended while we were placing (app exited, timer, group deleted): stop what we started
            log.info("session %s ended during placement; cleaning up its slot", session_id)
            await self._cleanup_host(session_id)
            self._capacity.notify(group_id)

    async def _reserve(self, row: StreamSessionRow, deadline: float, launch: LaunchSpec,
                       started: float) -> tuple[list[str], str | None] | None:
        """Wait for room under the group's capacity (and, with hosts in the database, for a host slot), then
        reserve it: (the locations to try, the host whose slot is reserved or None). None when the session ended
        meanwhile or the timeout passed (then it is ERROR)."""
        group_id = row.stream_group_id
        directory = self.plane.fleet_directory
        while True:
            event = self._capacity.arm(group_id)
            if directory is not None:
                async with self._reserve_lock:  # one placement transaction at a time here (SQLite has no row locks)
                    reserved, why = await self._reserve_in_database(row, launch)
                if reserved is not None:
                    return reserved
            else:
                why = Refusal(NO_CAPACITY, next(iter(row.requested_locations or ()), row.location or ""), NO_ROOM)
                lock = self._group_locks.setdefault(group_id, asyncio.Lock())
                async with lock:
                    locations = await self._candidates(row)
                    for loc in locations:  # no await from here until the caller's try/finally holds them
                        self._reserved[(group_id, loc)] = self._reserved.get((group_id, loc), 0) + 1
                if locations:
                    return locations, None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if await self._cas(row.id, (ACTIVATING,), status=ERROR, status_reason="placementTimeout",
                                   status_message=why.message):
                    await self._count_failure(row.id, why.reason, started, why.location, why.message)
                return None
            await self._capacity.wait(event, min(remaining, 1.0))
            current = await self.row(row.id)
            if current is None or current.status != ACTIVATING:
                return None

    async def _reserve_in_database(self, row: StreamSessionRow,
                                   launch: LaunchSpec) -> tuple[tuple[list[str], str] | None, Refusal]:
        """One transaction: the group's capacity per location (its row locked), then a host slot (host rows
        locked), written on the session's own row (location, host) so every replica's next placement counts it.
        Returns (([location], host id), a Refusal of nothing) or (None, why not yet)."""
        postgres = self.plane.db.engine.dialect.name == "postgresql"
        async with self.plane.db.session() as s, s.begin():
            query = select(StreamGroupRow).where(StreamGroupRow.id == row.stream_group_id)
            group = (await s.execute(query.with_for_update() if postgres else query)).scalar_one_or_none()
            first = next(iter(row.requested_locations or ()), None)
            if group is None:
                return None, Refusal(INTERNAL, first or "", "the stream group is gone")
            if postgres:  # the locations' slots are shared by every group: one placement there at a time
                await lock_locations(s, row.requested_locations or [loc["LocationName"] for loc in group.locations])
            refusals: list[str] = []
            candidates = await self._room_in(s, group, row, refusals=refusals)
            if not candidates:
                wanted = first or next((loc["LocationName"] for loc in group.locations), "")
                # more hosts would not help when the group's own ceiling is what is reached everywhere; none online
                # is no_host (as when no host could be picked), full ones no_capacity
                if refusals and all(r.startswith(CEILING_REACHED) for r in refusals):
                    return None, Refusal(GROUP_MAXIMUM, wanted, NO_ROOM)
                if refusals and all(r.startswith(NO_HOST_HERE) for r in refusals):
                    return None, Refusal(NO_HOST, wanted, f"no host is online in {wanted}")
                return None, Refusal(NO_CAPACITY, wanted, NO_ROOM)
            picked = await pick_host(s, candidates, launch_key(launch), now=time.time(),
                                     lost_after_s=float(self.plane.settings.host_lost_after_s), lock=postgres)
            if picked is None:
                return None, Refusal(NO_HOST, candidates[0], f"no host is online in {', '.join(candidates)}")
            location, host_id = picked
            done = await s.execute(update(StreamSessionRow).where(
                StreamSessionRow.id == row.id, StreamSessionRow.status == ACTIVATING).values(
                location=location, host_id=host_id, updated_at=time.time()))
            if done.rowcount != 1:
                return None, Refusal(INTERNAL, location, "the session ended")
        return ([location], host_id), Refusal("", location, "")

    async def _room_in(self, s: Any, group: StreamGroupRow, row: StreamSessionRow,
                       reserved: dict[tuple[str, str], int] | None = None,
                       refusals: list[str] | None = None) -> list[str]:
        """The session's locations in preference order where the group may start one more session now (sessions
        placed or being placed count, this one does not, nor do `reserved` placements in flight per (group,
        location); control/capacity.refusal decides, and why not each other location is added to `refusals`)."""
        out = []
        for name in row.requested_locations or [loc["LocationName"] for loc in group.locations]:
            here = {g: n for (g, loc), n in (reserved or {}).items() if loc == name}
            fig = await self.plane.stream_groups.figures(s, name, exclude_session=row.id, reserved=here)
            why = fig.refusal(group.id)
            if why is None:
                out.append(name)
            elif refusals is not None:
                refusals.append(why)
        return out

    def _unreserve(self, group_id: str, locations: list[str]) -> None:
        for loc in locations:
            key = (group_id, loc)
            self._reserved[key] -= 1
            if self._reserved[key] <= 0:
                del self._reserved[key]
        self._capacity.notify(group_id)

    async def _stop_placement(self, session_id: str) -> bool:
        """Cancel this replica's placement task of the session, if one runs, and wait for it to clean up."""
        task = self._placing.get(session_id)
        if task is None or task.done() or task is asyncio.current_task():
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=30)
        return True

    async def _drop_placement(self, session_id: str) -> None:
        """For a session ended while ACTIVATING: stop its placement here, or, when none runs here, free any slot a
        host still holds for it."""
        if not await self._stop_placement(session_id):
            await self._cleanup_host(session_id)

    def cancel_placements(self, message: str = SHUTTING_DOWN) -> int:
        """Cancel every placement running here (server shutdown): each frees what it took and ends its session
        ERROR(internalError) with `message`, as reconcile() would after a restart. Returns how many."""
        tasks = [(sid, t) for sid, t in self._placing.items() if not t.done()]
        for sid, task in tasks:
            self._cancel_messages[sid] = message
            task.cancel()
        return len(tasks)

    async def _placement_failed(self, session_id: str, reason: str, message: str) -> None:
        await self._cleanup_host(session_id)
        if reason == "applicationExit":
            await self._cas(session_id, (ACTIVATING,), status=TERMINATED, status_reason="applicationExit",
                            status_message=message, streaming_ended_at=time.time())
        else:
            await self._cas(session_id, (ACTIVATING,), status=ERROR,
                            status_reason=reason if reason in ERROR_REASONS else "internalError",
                            status_message=message)
        log.warning("session %s: placement failed: %s (%s)", session_id, reason, message)

    # -- reconnection ---------------------------------------------------------------------------------

    async def connect(self, group_identifier: str, session_identifier: str, signal_request: str,
                      client_token: str | None = None) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            row = await self.load(s, group_identifier, session_identifier)
        session_id = row.id

        async def create(_s: Any) -> tuple[str, dict[str, Any]]:
            answer = await self._reconnect(session_id, signal_request)
            return session_id, {"SignalResponse": answer}

        async def replay(_sid: str | None, resp: dict[str, Any] | None) -> dict[str, Any]:
            return dict(resp or {})

        return await self.plane.idempotent("CreateStreamSessionConnection", client_token,
                                           {"Session": session_id, "SignalRequest": signal_request}, create, replay)

    async def _reconnect(self, session_id: str, signal_request: str) -> str:
        row = await self.row(session_id)
        if row is None:
            raise NotFoundError(f"Stream session {session_id} not found")
        if row.status not in (ACTIVE, PENDING):
            raise ConflictError(f"Stream session {session_id} is {row.status}; a new connection needs "
                                f"ACTIVE or PENDING_CLIENT_RECONNECTION")
        digest = _digest(signal_request)
        if signal_request == row.signal_request or digest in (row.offer_digests or []):
            raise ValidationError("SignalRequest must be a new offer, not one this session has already used")
        try:
            offer = parse_offer(signal_request, allow_no_client=False)
        except BadSignal as exc:
            raise ValidationError(f"Invalid SignalRequest: {exc}") from exc
        assert offer is not None
        previous = row.status
        if not await self._cas(session_id, (previous,), status=RECONNECTING, status_reason=None):
            raise ConflictError(f"Stream session {session_id} changed state; try again")
        try:
            answer = await self.plane.host_pool.connect(session_id, offer)
        except SignalError as exc:
            await self._cas(session_id, (RECONNECTING,), status=previous)
            raise ValidationError(f"Invalid SignalRequest: {exc}") from exc
        except Exception as exc:
            log.exception("session %s: HostPool.connect failed", session_id)
            await self._cas(session_id, (RECONNECTING,), status=previous)
            raise InternalError(f"Could not attach the new connection: {exc}") from exc
        now = time.time()
        digests = [*(row.offer_digests or []), digest][-MAX_OFFER_DIGESTS:]
        if not await self._cas(session_id, (RECONNECTING,), status=ACTIVE, signal_response=answer,
                               deadline_at=now + row.connection_timeout_s, offer_digests=digests):
            raise ConflictError(f"Stream session {session_id} ended while connecting")
        return answer

    # -- termination ----------------------------------------------------------------------------------

    async def terminate(self, group_identifier: str, session_identifier: str, *,
                        cancel_placement: bool = False) -> None:
        """End a session: TERMINATING now, TERMINATED(apiTerminated) once its host has stopped it.

        Like GameLift Streams, a session still ACTIVATING is refused (ConflictError); with `cancel_placement` (the
        player's own DELETE) its placement is cancelled instead and it ends the same way."""
        async with self.plane.db.session() as s:
            row = await self.load(s, group_identifier, session_identifier)
        if row.status == ACTIVATING and not cancel_placement:
            raise ConflictError(f"Stream session {row.id} is ACTIVATING; terminate it once it is ACTIVE")
        if row.status in FINAL or row.status == TERMINATING:
            return
        endable = (ACTIVATING, *PLACED) if cancel_placement else PLACED
        if await self._cas(row.id, endable, status=TERMINATING, status_reason="apiTerminated", deadline_at=None):
            self.plane.spawn(self._finish_terminate(row.id, "apiTerminated"), f"terminate-{row.id}")

    async def _finish_terminate(self, session_id: str, reason: str) -> None:
        await self._stop_placement(session_id)  # ended while ACTIVATING: its placement must not go on
        await self.plane.session_files.collect_at_end(session_id)
        await self._cleanup_host(session_id)
        await self._cas(session_id, (TERMINATING,), status=TERMINATED, status_reason=reason,
                        streaming_ended_at=time.time())

    async def end_in_location(self, group_id: str, location: str, message: str) -> None:
        """End every session of the group in `location` (the location is being removed): placed ones
        TERMINATED(apiTerminated) with `message` once their host has stopped them, placements cancelled."""
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(StreamSessionRow.id, StreamSessionRow.status).where(
                StreamSessionRow.stream_group_id == group_id, StreamSessionRow.location == location,
                StreamSessionRow.status.in_(RUNNING)))).all()
        for session_id, status in rows:
            if status == ACTIVATING:
                if await self._cas(session_id, (ACTIVATING,), status=ERROR, status_reason="internalError",
                                   status_message=message):
                    await self._drop_placement(session_id)
            elif status == TERMINATING:
                await self._finish_terminate(session_id, "apiTerminated")
            else:
                await self._end(session_id, PLACED, "apiTerminated", message=message)

    async def terminate_group(self, group_id: str) -> None:
        """End every session of a stream group (used when the group is deleted)."""
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(StreamSessionRow.id, StreamSessionRow.status).where(
                StreamSessionRow.stream_group_id == group_id, StreamSessionRow.status.in_(RUNNING)))).all()
        for session_id, status in rows:
            if status == ACTIVATING:
                await self._cas(session_id, (ACTIVATING,), status=ERROR, status_reason="internalError",
                                status_message="stream group deleted")
                await self._drop_placement(session_id)
            elif status == TERMINATING:
                await self._finish_terminate(session_id, "apiTerminated")
            else:
                await self._end(session_id, PLACED, "apiTerminated")

    # -- host events ----------------------------------------------------------------------------------

    async def on_event(self, event: SessionEvent) -> None:
        """HostPool event handler. Never raises."""
        try:
            await self._on_event(event)
        except Exception:  # noqa: BLE001
            log.exception("session %s: handling %s failed", event.session_id, event.kind)

    async def _on_event(self, event: SessionEvent) -> None:
        sid, kind, at = event.session_id, event.kind, event.at
        if kind == SessionEventKind.CLIENT_CONNECTED:
            row = await self.row(sid)
            await self._cas(sid, (ACTIVE, PENDING, RECONNECTING), status=CONNECTED, status_reason=None,
                            connected_at=at, last_input_at=at, deadline_at=None,
                            streaming_started_at=(row.streaming_started_at if row and row.streaming_started_at
                                                  else at))
        elif kind == SessionEventKind.CLIENT_DISCONNECTED:
            row = await self.row(sid)
            timeout = row.connection_timeout_s if row else DEFAULT_CONNECTION_TIMEOUT_S
            await self._cas(sid, (CONNECTED,), status=PENDING, deadline_at=at + timeout)
        elif kind == SessionEventKind.INPUT:
            async with self.plane.db.session() as s:
                await s.execute(update(StreamSessionRow).where(
                    StreamSessionRow.id == sid, StreamSessionRow.status == CONNECTED).values(last_input_at=at))
                await s.commit()
        elif kind == SessionEventKind.APP_EXITED:
            if await self._cas(sid, (ACTIVATING, *PLACED), status=TERMINATING, status_reason="applicationExit",
                               deadline_at=None):
                self.plane.spawn(self._finish_terminate(sid, "applicationExit"), f"exited-{sid}")
        elif kind == SessionEventKind.ENDED:
            # Normally we asked for it (the session is TERMINATING or over already). A placed session that
            # ends without being asked (its host stopped it) is over too.
            message = event.detail.get("message")
            if await self._cas(sid, PLACED, status=TERMINATED, status_reason="internalError",
                               status_message=message if isinstance(message, str) else "the host ended the session",
                               deadline_at=None,
                               streaming_ended_at=at):
                log.warning("session %s: ended by its host", sid)

    # -- timers ---------------------------------------------------------------------------------------

    def start_timers(self) -> None:
        self._started_at = time.time()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._timer_loop(), name="session-timers")

    async def stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def _timer_loop(self) -> None:
        while True:
            try:
                await self.check_timeouts()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the timers alive
                log.exception("session timer scan failed")
            await asyncio.sleep(self.tick_s)

    async def check_timeouts(self, now: float | None = None) -> None:
        """End sessions whose placement, connection, reconnection, idle or session-length time is up, and those
        on hosts that no replica holds any more."""
        now = time.time() if now is None else now
        if self.plane.fleet_peers is not None:
            await self._end_on_orphaned_hosts(now)
        async with self.plane.db.session() as s:
            unplaced = (await s.execute(select(StreamSessionRow.id).where(
                StreamSessionRow.status == ACTIVATING,
                StreamSessionRow.created_at <= now - self.placement_limit_s))).scalars().all()
        for session_id in unplaced:
            self.plane.spawn(self._expire_placement(session_id), f"placement-timeout-{session_id}")
        idle_limit = now - self.plane.settings.idle_timeout_s
        idle_since = func.coalesce(StreamSessionRow.last_input_at, StreamSessionRow.connected_at,
                                   StreamSessionRow.updated_at)
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(StreamSessionRow).where(
                StreamSessionRow.status.in_(PLACED),
                or_(StreamSessionRow.expires_at <= now,
                    and_(StreamSessionRow.status.in_((ACTIVE, PENDING)), StreamSessionRow.deadline_at <= now),
                    and_(StreamSessionRow.status == CONNECTED, idle_since <= idle_limit))))).scalars().all()
        for row in rows:
            if row.expires_at <= now:
                reason = "maxSessionLengthTimeout"
            elif row.status == ACTIVE:
                reason = "connectionTimeout"
            elif row.status == PENDING:
                reason = "reconnectionTimeout"
            elif row.status == CONNECTED:
                reason = "idleTimeout"
            else:
                continue
            self.plane.spawn(self._end(row.id, (row.status,), reason), f"timeout-{row.id}")

    async def _end_on_orphaned_hosts(self, now: float) -> None:
        """With several replicas, a host is watched by the replica holding its connection; when that replica dies
        too, nobody would notice the host gone. A host unheard of for `host_rejoin_s` whose replica is dead is
        lost here: its sessions end (each once: the status change is a compare-and-set)."""
        rejoin_s = float(self.plane.settings.host_rejoin_s)
        directory = self.plane.fleet_directory
        if directory is None or now - self._started_at < rejoin_s:
            return  # just started: reconcile() gives hosts that long to dial in

        peers = self.plane.fleet_peers
        assert peers is not None
        gone = await directory.orphaned_hosts(peers.others() | {peers.replica_id}, now - rejoin_s)  # its snapshot
        if not gone:
            return
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(StreamSessionRow.id, StreamSessionRow.status, StreamSessionRow.host_id)
                                    .where(StreamSessionRow.host_id.in_(gone),
                                           StreamSessionRow.status.in_(PLACED)))).all()
        for session_id, status, host_id in rows:
            log.warning("session %s: its host %s is held by no replica; ending it", session_id, host_id)
            self.plane.spawn(self._end(session_id, (status,), "internalError",
                                       message=f"its host {host_id} was lost"), f"host-lost-{session_id}")

    async def _expire_placement(self, session_id: str) -> None:
        """The backstop for placements that neither finish nor fail (a hung host call, a bug, a replica that died):
        ERROR(placementTimeout), then the placement task is cancelled and whatever slot it took is freed."""
        if not await self._cas(session_id, (ACTIVATING,), status=ERROR, status_reason="placementTimeout",
                               status_message="not placed within the placement timeout"):
            return
        log.warning("session %s: still ACTIVATING past the placement timeout; ended", session_id)
        await self._count_failure(session_id, TIMEOUT, time.monotonic() - self.placement_limit_s)
        await self._drop_placement(session_id)

    # -- restart --------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """After a restart: half-done steps are settled; sessions on hosts joined now that do not report them are
        over; sessions on hosts not joined (yet) wait up to `host_rejoin_s` for their host to come back."""
        try:
            running = set(self.plane.host_pool.running_sessions())
            online = set(self.plane.host_pool.hosts_online())
        except Exception:  # noqa: BLE001
            log.exception("HostPool state unreadable; treating all sessions as gone")
            running, online = set(), set()
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(StreamSessionRow).where(
                StreamSessionRow.status.in_(RUNNING)))).scalars().all()
        peers = self.plane.fleet_peers
        others = peers.others() if peers is not None else set()
        now = time.time()
        waiting: list[str] = []
        for row in rows:
            alive = row.id in running
            if others and row.status in (ACTIVATING, TERMINATING):
                continue  # another replica may be placing or ending it; the timers' backstop ends it if not
            if row.status == ACTIVATING:
                if alive:
                    await self._cleanup_host(row.id)
                await self._cas(row.id, (ACTIVATING,), status=ERROR, status_reason="internalError",
                                status_message="the server restarted during placement")
            elif row.status == TERMINATING:
                if alive:
                    await self._cleanup_host(row.id)
                await self._cas(row.id, (TERMINATING,), status=TERMINATED, streaming_ended_at=now)
            elif alive:
                if row.status == RECONNECTING:
                    await self._cas(row.id, (RECONNECTING,), status=PENDING,
                                    deadline_at=now + row.connection_timeout_s)
            elif row.host_id is not None and row.host_id not in online:
                waiting.append(row.id)  # its host may still be there, about to dial this replica
            else:
                await self._cas(row.id, (row.status,), status=TERMINATED, status_reason="internalError",
                                status_message="the session's processes are gone after a restart",
                                streaming_ended_at=now, deadline_at=None)
        if waiting:
            log.info("%d session(s) wait for their hosts to come back", len(waiting))
            self.plane.spawn(self._end_unclaimed(waiting), "sessions-await-hosts")

    async def _end_unclaimed(self, session_ids: list[str]) -> None:
        """Sessions whose host did not come back within `host_rejoin_s` of this start are over."""
        await asyncio.sleep(float(self.plane.settings.host_rejoin_s))
        running = set(self.plane.host_pool.running_sessions())
        for session_id in session_ids:
            if session_id in running:
                continue
            row = await self.row(session_id)
            if row is not None and row.status in PLACED:
                await self._end(session_id, (row.status,), "internalError",
                                message=f"its host {row.host_id} did not come back after the server restarted")

    async def host_joined(self, host_id: str, reported: set[str]) -> None:
        """A host (re)joined saying it runs `reported`: those the control plane still has placed there carry on;
        those it has not are stopped on the host; those it has there and the host lost are over."""
        async with self.plane.db.session() as s:
            mine = {row.id: row for row in (await s.execute(select(StreamSessionRow).where(
                StreamSessionRow.host_id == host_id, StreamSessionRow.status.in_(PLACED)))).scalars().all()}
        for session_id in sorted(reported - set(mine)):
            log.warning("host %s runs session %s, which is not placed there (over, or another host's): stopping "
                        "it there", host_id, session_id)
            try:
                await self.plane.host_pool.terminate_on(host_id, session_id)
            except Exception:  # noqa: BLE001
                log.exception("session %s: stopping it on host %s failed", session_id, host_id)
        now = time.time()
        for session_id, row in mine.items():
            if session_id not in reported:
                await self._cas(session_id, (row.status,), status=TERMINATED, status_reason="internalError",
                                status_message=f"its host {host_id} came back without it",
                                streaming_ended_at=now, deadline_at=None)
