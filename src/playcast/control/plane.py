"""The control plane object: owns the database handle, the HostPool, the per-resource services and timers.

Wires things together and runs background tasks; it holds no HTTP or media code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from playcast.bus.replica_calls import make_replica_calls
from playcast.control.fleet import Fleet
from playcast.control.fleet_directory import FleetDirectory
from playcast.control.fleet_peers import FleetPeers
from playcast.control.host_pool import HostPool
from playcast.control.placement_stats import PlacementStats

from ..config import Settings
from ..store import queries
from ..store.db import Database
from .errors import ConflictError
from .ids import ArnFactory

log = logging.getLogger(__name__)
T = TypeVar("T")
REPLICA_HEARTBEAT_S = 2.0


class ControlPlane:
    """Entry point for everything api/ needs: `.applications`, `.stream_groups`, `.sessions`, `.tags`."""

    def __init__(self, settings: Settings, host_pool: HostPool, db: Database) -> None:
        from .applications import Applications
        from .broadcasts import Broadcasts
        from .host_tokens import HostTokens
        from .session_files import SessionFiles
        from .sessions import StreamSessions
        from .stream_groups import StreamGroups
        from .tags import Tags

        self.settings = settings
        self.host_pool = host_pool
        self.db = db
        self.arns = ArnFactory(settings.region, settings.account_id)
        self.primary_location = settings.effective_location
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.applications = Applications(self)
        self.stream_groups = StreamGroups(self)
        self.sessions = StreamSessions(self)
        self.session_files = SessionFiles(self)
        self.tags = Tags(self)
        self.broadcasts = Broadcasts(self)
        self.host_tokens = HostTokens(db)
        self.placement_stats = PlacementStats(db)
        # hosts joined through the host protocol are kept in the database, so placement reserves slots there
        self.fleet_directory = FleetDirectory(db, host_pool.replica_id) if isinstance(host_pool, Fleet) else None
        self._replica_beat: asyncio.Task[None] | None = None
        # with Redis, other replicas may hold hosts: requests for those go to them (and the reads count them)
        self.fleet_peers = FleetPeers(db, self.fleet_directory, make_replica_calls(settings.redis_url,
                                                                                   host_pool.replica_id),
                                      lost_after_s=float(settings.host_lost_after_s)) \
            if self.fleet_directory is not None and settings.redis_url else None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to host events, reconcile state left by a previous run, start timers."""
        self.host_pool.on_event(self.sessions.on_event)
        self.host_pool.on_host_joined(self.sessions.host_joined)
        if self.fleet_directory is not None:
            assert isinstance(self.host_pool, Fleet)
            await self.fleet_directory.replica_alive()
            await self.host_pool.attach(self.fleet_directory)
            await self.host_pool.join_peers(self.fleet_peers)
            self._replica_beat = self.spawn(self._beat_replica(), "replica-heartbeat")
        await self.applications.resume_pending()
        await self.sessions.reconcile()
        await self.stream_groups.resume()
        self.sessions.start_timers()
        await self.broadcasts.start()

    async def _beat_replica(self) -> None:
        assert self.fleet_directory is not None
        while not self._stopping:
            await asyncio.sleep(REPLICA_HEARTBEAT_S)
            try:
                await self.fleet_directory.replica_alive()
            except Exception:  # noqa: BLE001 - the database may be back next time
                log.warning("replica heartbeat failed", exc_info=True)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def begin_stop(self) -> None:
        """The server is going down: start no placements and cancel the running ones now (their sessions end
        ERROR "server shutting down"), so nothing, a request waiting on one included, waits for them. Idempotent."""
        if not self._stopping:
            self._stopping = True
            cancelled = self.sessions.cancel_placements()
            if cancelled:
                log.info("shutting down: cancelled %d placement(s)", cancelled)

    async def stop(self) -> None:
        """Cancel placements, stop timers and wait (briefly) for background work to finish."""
        self.begin_stop()
        await self.sessions.stop_timers()
        if self._replica_beat is not None:
            self._replica_beat.cancel()
        if self.fleet_directory is not None:
            assert isinstance(self.host_pool, Fleet)
            await self.host_pool.attach(None)
            await self.host_pool.join_peers(None)
            try:
                await self.fleet_directory.replica_gone()
            except Exception:  # noqa: BLE001 - stopping anyway; the rows go stale by themselves
                log.warning("could not mark this replica's hosts offline", exc_info=True)
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    # -- helpers --------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background, keep a reference, log its failure."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def _done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(_done)
        return task

    def locations(self) -> list[str]:
        """Locations this deployment can stream from (the primary first)."""
        names = [self.primary_location]
        for loc in self.host_pool.locations():
            if loc not in names:
                names.append(loc)
        return names

    def total_slots(self, location: str) -> int:
        try:
            return self.host_pool.capacity(location).total_slots
        except Exception:  # noqa: BLE001 - a location without hosts has no slots
            return 0

    async def idempotent(self, operation: str, client_token: str | None, request: dict[str, Any],
                         create: Callable[[Any], Awaitable[tuple[str | None, dict[str, Any] | None]]],
                         replay: Callable[[str | None, dict[str, Any] | None], Awaitable[T]],
                         after_commit: Callable[[str | None], None] | None = None) -> T:
        """Run `create(session)` once per (operation, ClientToken); a repeat returns `replay(...)`.

        `create` adds its rows to the given session and returns (resource id, stored response); the
        idempotency record is committed in the same transaction, the answer is read, then
        `after_commit(resource id)` runs (only for the first request). Same token, different request -> ConflictError."""
        body = {k: v for k, v in request.items() if k != "ClientToken"}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        for _attempt in range(2):
            async with self.db.session() as s:
                if client_token:
                    found = await queries.find_idempotent(s, operation, client_token)
                    if found is not None:
                        if found.request_hash != digest:
                            raise ConflictError(
                                f"ClientToken {client_token!r} was already used with different parameters")
                        return await replay(found.resource_id, found.response)
                resource_id, response = await create(s)
                if client_token:
                    queries.add_idempotent(s, operation, client_token, digest, resource_id, response)
                try:
                    await s.commit()
                except IntegrityError:
                    if not client_token:
                        raise
                    await s.rollback()
                    continue  # a concurrent request with the same token won; replay it
                # the answer shows the resource as created (e.g. INITIALIZED), before the work `after_commit`
                # starts can move it on
                result = await replay(resource_id, response)
                if after_commit is not None:
                    after_commit(resource_id)
                return result
        raise ConflictError(f"ClientToken {client_token!r} is in use by a concurrent request")
