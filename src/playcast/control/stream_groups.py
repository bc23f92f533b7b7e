"""Stream groups: locations and capacity, application associations, warm-slot targets on the HostPool.

Validates location/capacity configuration and keeps HostPool.set_warm_target in step; no HTTP here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from playcast.hostproto.types import launch_key

from ..store import queries
from ..store.hosts import HostRow
from ..store.models import ApplicationRow, AssociationRow, StreamGroupRow, StreamSessionRow
from .capacity_ledger import LocationFigures, hosts_figures, location_figures
from .errors import ConflictError, NotFoundError, ValidationError
from .host_pool import WarmFigures
from .ids import APPLICATION, STREAM_GROUP, new_stream_group_id
from .pages import list_page

if TYPE_CHECKING:
    from .plane import ControlPlane

log = logging.getLogger(__name__)

ACTIVATING = "ACTIVATING"
ACTIVE = "ACTIVE"
ACTIVE_WITH_ERRORS = "ACTIVE_WITH_ERRORS"
UPDATING_LOCATIONS = "UPDATING_LOCATIONS"
DELETING = "DELETING"
ERROR = "ERROR"
REMOVING = "REMOVING"
NO_INSTANCES = "noAvailableInstances"  # StreamGroupStatusReason: a location's hosts cannot hold its always-on floor
CAPACITY_EVERY_S = 1.0  # warm targets are recomputed at least this often (hosts' slots and sessions change)
PROVISION_LIMIT_S = 60.0  # a location whose held slots never come up (a game that cannot start) is ACTIVE after this
USABLE = (ACTIVE, ACTIVE_WITH_ERRORS, UPDATING_LOCATIONS)
EXPIRY_S = 365 * 24 * 3600
ACTIVATION_WAIT_S = 2.0
CAPACITY_KEYS = ("AlwaysOnCapacity", "OnDemandCapacity", "TargetIdleCapacity", "MaximumCapacity")
PAUSE_WARM_TAG = "playcast:pause-warm"  # stream-group tag: "false" keeps idle warm games running (default "true")


def check_group_tags(tags: dict[str, str]) -> None:
    """Refuse values playcast cannot read in its own tags on a stream group."""
    value = tags.get(PAUSE_WARM_TAG)
    if value is not None and value.strip().lower() not in ("true", "false"):
        raise ValidationError(f"Tag {PAUSE_WARM_TAG} must be 'true' or 'false', not {value!r}")


def pause_warm(tags: dict[str, str]) -> bool:
    """Whether the group's idle warm slots are paused once their game has drawn (tag absent: yes)."""
    return tags.get(PAUSE_WARM_TAG, "true").strip().lower() != "false"


class StreamGroups:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # latest refresh per group
        self._pushed: dict[tuple[str, str], tuple[int, tuple[str, ...], bool]] = {}  # last warm target sent
        self._capacity_changed = asyncio.Event()
        self._rebalance_lock = asyncio.Lock()

    # -- reading --------------------------------------------------------------------------------------

    async def load(self, s: Any, identifier: str) -> StreamGroupRow:
        group_id = self.plane.arns.resolve(identifier, STREAM_GROUP)
        row = await s.get(StreamGroupRow, group_id)
        if row is None:
            raise NotFoundError(f"Stream group {identifier} not found")
        return row

    async def figures(self, s: Any, location: str, *, exclude_session: str | None = None,
                      reserved: dict[str, int] | None = None) -> LocationFigures:
        """The location's slots (its hosts' rows when hosts join through the protocol, else the HostPool's count),
        idle warm slots per group, and every group's limits and sessions there."""
        if self.plane.fleet_directory is not None:
            slots, idle = await hosts_figures(s, location, now=time.time(),
                                              lost_after_s=float(self.plane.settings.host_lost_after_s))
        else:
            slots = self.plane.total_slots(location)
            pool = self.plane.host_pool
            idle = dict(Counter(pool.idle_warm_groups(location))) if isinstance(pool, WarmFigures) else None
        return await location_figures(s, location, slots, idle, exclude_session=exclude_session, reserved=reserved)

    @staticmethod
    def location_state(group_id: str, loc: dict[str, Any], fig: LocationFigures) -> dict[str, Any]:
        """A LocationState from the hosts' figures: Allocated = the group's sessions there + its idle warm slots,
        Requested = what it asks for now (max(AlwaysOn, sessions + TargetIdle) within its ceiling)."""
        share = fig.shares().get(group_id)
        busy = fig.busy(group_id)
        idle = fig.idle.get(group_id, 0)
        out = {"LocationName": loc["LocationName"], "Status": loc.get("Status", ACTIVATING),
               "RequestedCapacity": share.requested if share is not None else busy,
               "AllocatedCapacity": busy + idle, "IdleCapacity": idle}
        for key in CAPACITY_KEYS:
            if loc.get(key) is not None:
                out[key] = loc[key]
        return out

    async def location_states(self, s: Any, row: StreamGroupRow,
                              names: list[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """(LocationStates of the group, in its order, and the locations whose always-on floor the hosts cannot
        hold); `names` limits them to those locations."""
        states, short = [], []
        for loc in row.locations:
            if names is not None and loc["LocationName"] not in names:
                continue
            fig = await self.figures(s, loc["LocationName"])
            states.append(self.location_state(row.id, loc, fig))
            share = fig.shares().get(row.id)
            if share is not None and share.short > 0:
                short.append(loc["LocationName"])
        return states, short

    async def associated_apps(self, s: Any, group_id: str) -> list[ApplicationRow]:
        return list((await s.execute(
            select(ApplicationRow).join(AssociationRow, AssociationRow.application_id == ApplicationRow.id)
            .where(AssociationRow.stream_group_id == group_id).order_by(AssociationRow.created_at)
        )).scalars().all())

    async def render(self, s: Any, row: StreamGroupRow) -> dict[str, Any]:
        apps = await self.associated_apps(s, row.id)
        states, short = await self.location_states(s, row)
        status, reason = row.status, row.status_reason
        if short and status in (ACTIVE, ACTIVE_WITH_ERRORS):  # allocated capacity below the always-on floor
            status, reason = ACTIVE_WITH_ERRORS, reason or NO_INSTANCES
        out: dict[str, Any] = {
            "Arn": row.arn, "Id": row.id, "Description": row.description, "StreamClass": row.stream_class,
            "LocationStates": states,
            "Status": status, "StatusReason": reason, "CreatedAt": row.created_at,
            "LastUpdatedAt": row.updated_at, "ExpiresAt": row.expires_at,
            "AssociatedApplications": [a.arn for a in apps],
        }
        if row.default_application_id:
            out["DefaultApplication"] = {"Id": row.default_application_id,
                                         "Arn": self.plane.arns.application(row.default_application_id)}
        return out

    def summary(self, row: StreamGroupRow) -> dict[str, Any]:
        out: dict[str, Any] = {"Arn": row.arn, "Id": row.id, "Description": row.description,
                               "StreamClass": row.stream_class, "Status": row.status, "CreatedAt": row.created_at,
                               "LastUpdatedAt": row.updated_at, "ExpiresAt": row.expires_at}
        if row.default_application_id:
            out["DefaultApplication"] = {"Id": row.default_application_id,
                                         "Arn": self.plane.arns.application(row.default_application_id)}
        return out

    async def get(self, identifier: str, settle: bool = True) -> dict[str, Any]:
        """The group's AWS shape; with `settle`, a group being activated is answered once that is done (<= 2 s)."""
        async with self.plane.db.session() as s:
            row = await self.load(s, identifier)
            pending = self._refreshing.get(row.id)
            if not settle or row.status not in (ACTIVATING, UPDATING_LOCATIONS) or pending is None:
                return await self.render(s, row)
        # Activation takes milliseconds here: answer with its outcome rather than make a waiter (whose
        # model delay is 30 s) sleep through a whole polling interval.
        await asyncio.wait({pending}, timeout=ACTIVATION_WAIT_S)
        async with self.plane.db.session() as s:
            return await self.render(s, await self.load(s, identifier))

    async def list(self, max_results: int | None, next_token: str | None) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            return await list_page(s, select(StreamGroupRow), StreamGroupRow, max_results, next_token, self.summary)

    # -- validation -----------------------------------------------------------------------------------

    async def known_locations(self) -> list[str]:
        """The locations a stream group may have: the primary one and every location a registered host serves
        (joined to this replica or, in the database, to any)."""
        names = self.plane.locations()
        if self.plane.fleet_directory is not None:
            async with self.plane.db.session() as s:
                rows = (await s.execute(select(HostRow.location).distinct().order_by(HostRow.location))).scalars()
                names += [n for n in rows.all() if n not in names]
        return names

    def _location_config(self, cfg: dict[str, Any], known: list[str]) -> dict[str, Any]:
        name = cfg["LocationName"]
        if name not in known:
            raise ValidationError(f"Location {name!r} is not available: no registered host serves it; this deployment has: "
                                  f"{', '.join(known)}")
        if cfg.get("VpcTransitConfiguration"):
            raise ValidationError("VpcTransitConfiguration is not supported by playcast")
        if cfg.get("OnDemandCapacity") is not None and (
                cfg.get("MaximumCapacity") is not None or cfg.get("TargetIdleCapacity") is not None):
            raise ValidationError(f"Location {name}: OnDemandCapacity cannot be combined with MaximumCapacity "
                                  "or TargetIdleCapacity")
        always_on = cfg.get("AlwaysOnCapacity") or 0
        maximum = cfg.get("MaximumCapacity")
        if maximum is not None and maximum < always_on:
            raise ValidationError(f"Location {name}: MaximumCapacity ({maximum}) must be at least "
                                  f"AlwaysOnCapacity ({always_on})")
        if maximum is not None and cfg.get("TargetIdleCapacity") is not None and maximum < cfg["TargetIdleCapacity"]:
            raise ValidationError(f"Location {name}: MaximumCapacity ({maximum}) must be at least "
                                  f"TargetIdleCapacity ({cfg['TargetIdleCapacity']})")
        out: dict[str, Any] = {"LocationName": name, "Status": ACTIVATING}
        for key in CAPACITY_KEYS:
            if cfg.get(key) is not None:
                out[key] = int(cfg[key])
        return out

    async def _location_configs(self, cfgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [c["LocationName"] for c in cfgs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(f"Duplicate location(s) in LocationConfigurations: {', '.join(dupes)}")
        known = await self.known_locations() if cfgs else []
        return [self._location_config(c, known) for c in cfgs]

    async def _app_for_association(self, s: Any, identifier: str) -> ApplicationRow:
        app = await self.plane.applications.load(s, identifier)
        if app.status in ("ERROR", "DELETING"):
            raise ValidationError(f"Application {app.id} is {app.status} and cannot be associated")
        return app

    async def _associate(self, s: Any, group_id: str, app_ids: list[str]) -> None:
        existing = set((await s.execute(select(AssociationRow.application_id).where(
            AssociationRow.stream_group_id == group_id))).scalars().all())
        now = time.time()
        for i, app_id in enumerate(app_ids):
            if app_id not in existing:
                s.add(AssociationRow(stream_group_id=group_id, application_id=app_id, created_at=now + i * 1e-6))
                existing.add(app_id)

    # -- writing --------------------------------------------------------------------------------------

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        configs = await self._location_configs(list(params.get("LocationConfigurations") or []))
        check_group_tags(params.get("Tags") or {})
        if not any(c["LocationName"] == self.plane.primary_location for c in configs):
            configs.insert(0, {"LocationName": self.plane.primary_location, "Status": ACTIVATING})
        else:  # primary first
            configs.sort(key=lambda c: c["LocationName"] != self.plane.primary_location)

        async def create(s: Any) -> tuple[str, None]:
            default_app = None
            if params.get("DefaultApplicationIdentifier"):
                default_app = await self._app_for_association(s, params["DefaultApplicationIdentifier"])
            now = time.time()
            group_id = new_stream_group_id()
            arn = self.plane.arns.stream_group(group_id)
            s.add(StreamGroupRow(id=group_id, arn=arn, description=params["Description"],
                                 stream_class=params["StreamClass"],
                                 default_application_id=default_app.id if default_app else None,
                                 locations=configs, status=ACTIVATING, status_reason=None, created_at=now,
                                 updated_at=now, expires_at=now + EXPIRY_S))
            if default_app is not None:
                await self._associate(s, group_id, [default_app.id])
            if params.get("Tags"):
                await queries.put_tags(s, arn, params["Tags"])
            return group_id, None

        async def replay(group_id: str | None, _resp: Any) -> dict[str, Any]:
            assert group_id is not None
            return await self.get(group_id, settle=False)

        def after(group_id: str | None) -> None:
            assert group_id is not None
            self._spawn_refresh(group_id)

        return await self.plane.idempotent("CreateStreamGroup", params.get("ClientToken"), params,
                                           create, replay, after)

    @staticmethod
    async def _live(s: Any, group_id: str) -> StreamGroupRow | None:
        """The group's row, None when it is gone or being deleted."""
        row = await s.get(StreamGroupRow, group_id)
        return None if row is None or row.status == DELETING else row

    async def _writable(self, s: Any, identifier: str) -> StreamGroupRow:
        row = await self.load(s, identifier)
        if row.status == DELETING:
            raise ConflictError(f"Stream group {row.id} is being deleted")
        return row

    async def update(self, identifier: str, params: dict[str, Any]) -> dict[str, Any]:
        configs = await self._location_configs(list(params.get("LocationConfigurations") or []))
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            if "Description" in params:
                row.description = params["Description"]
            if params.get("DefaultApplicationIdentifier"):
                app = await self._app_for_association(s, params["DefaultApplicationIdentifier"])
                row.default_application_id = app.id
                await self._associate(s, row.id, [app.id])
            if configs:
                current = {loc["LocationName"]: loc for loc in row.locations}
                for cfg in configs:
                    if cfg["LocationName"] not in current:
                        raise ValidationError(f"Location {cfg['LocationName']} is not in stream group {row.id}; "
                                              "use AddStreamGroupLocations to add it")
                    cfg["Status"] = current[cfg["LocationName"]].get("Status", ACTIVE)
                    current[cfg["LocationName"]] = cfg
                row.locations = [current[loc["LocationName"]] for loc in row.locations]
            row.updated_at = time.time()
            await s.commit()
            out = await self.render(s, row)
        self._spawn_refresh(row.id)
        return out

    async def add_locations(self, identifier: str, cfgs: list[dict[str, Any]]) -> dict[str, Any]:
        new = await self._location_configs(cfgs)
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            have = {loc["LocationName"] for loc in row.locations}
            dupes = sorted(c["LocationName"] for c in new if c["LocationName"] in have)
            if dupes:
                raise ValidationError(f"Stream group {row.id} already has location(s) {', '.join(dupes)}; "
                                      "use UpdateStreamGroup to change capacity")
            row.locations = list(row.locations) + new
            if row.status in (ACTIVE, ACTIVE_WITH_ERRORS):
                row.status = UPDATING_LOCATIONS
            row.updated_at = time.time()
            await s.commit()
            states, _short = await self.location_states(s, row, [c["LocationName"] for c in new])
            group_arn = row.arn
        self._spawn_refresh(row.id)
        return {"Identifier": group_arn, "Locations": states}

    async def remove_locations(self, identifier: str, names: list[str]) -> None:
        """The locations go REMOVING at once (no new sessions there; their capacity is released); their sessions
        end TERMINATED(apiTerminated) with a StatusMessage saying why, then the locations are gone."""
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            if self.plane.primary_location in names:
                raise ValidationError(f"The primary location {self.plane.primary_location} cannot be removed; "
                                      "set its capacity to 0 instead")
            have = {loc["LocationName"] for loc in row.locations}
            missing = sorted(set(names) - have)
            if missing:
                raise ValidationError(f"Stream group {row.id} has no location(s) {', '.join(missing)}")
            row.locations = [{**loc, "Status": REMOVING} if loc["LocationName"] in names else loc
                             for loc in row.locations]
            if row.status in (ACTIVE, ACTIVE_WITH_ERRORS):
                row.status = UPDATING_LOCATIONS
            row.updated_at = time.time()
            await s.commit()
            group_id = row.id
        self.capacity_changed()
        self.plane.spawn(self._finish_remove(group_id, sorted(set(names))), f"remove-locations-{group_id}")

    async def _finish_remove(self, group_id: str, names: list[str]) -> None:
        for name in names:
            await self.plane.sessions.end_in_location(
                group_id, name, f"location {name} was removed from stream group {group_id}")
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            async with self.plane.db.session() as s:
                row = await self._live(s, group_id)
                if row is None:
                    return
                row.locations = [loc for loc in row.locations
                                 if not (loc["LocationName"] in names and loc.get("Status") == REMOVING)]
                row.updated_at = time.time()
                await s.commit()
            await self._settle(group_id)
        log.info("stream group %s: location(s) %s removed", group_id, ", ".join(names))
        await self.rebalance(names)

    async def associate(self, identifier: str, app_identifiers: list[str]) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            apps = [await self._app_for_association(s, i) for i in app_identifiers]
            await self._associate(s, row.id, [a.id for a in apps])
            row.updated_at = time.time()
            await s.commit()
            out = {"Arn": row.arn, "ApplicationArns": [a.arn for a in apps]}
        self._spawn_refresh(row.id)
        return out

    async def disassociate(self, identifier: str, app_identifiers: list[str]) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            app_ids = [self.plane.arns.resolve(i, APPLICATION) for i in app_identifiers]
            if row.default_application_id in app_ids:
                raise ValidationError(f"Application {row.default_application_id} is the default application of "
                                      f"stream group {row.id}; change the default first")
            await s.execute(delete(AssociationRow).where(AssociationRow.stream_group_id == row.id,
                                                         AssociationRow.application_id.in_(app_ids)))
            row.updated_at = time.time()
            await s.commit()
            out = {"Arn": row.arn, "ApplicationArns": [self.plane.arns.application(a) for a in app_ids]}
        self._spawn_refresh(row.id)
        return out

    async def delete(self, identifier: str) -> None:
        async with self.plane.db.session() as s:
            row = await self.load(s, identifier)
            if row.status == DELETING:
                return
            row.status, row.updated_at = DELETING, time.time()
            await s.commit()
        self.plane.spawn(self._finish_delete(row.id), f"delete-{row.id}")

    async def _finish_delete(self, group_id: str) -> None:
        await self.plane.sessions.terminate_group(group_id)
        async with self.plane.db.session() as s:
            row = await s.get(StreamGroupRow, group_id)
            if row is None:
                return
            locations = [loc["LocationName"] for loc in row.locations]
        for name in locations:
            await self._set_warm(group_id, name, [], 0)
        async with self.plane.db.session() as s:
            row = await s.get(StreamGroupRow, group_id)
            if row is None:
                return
            session_arns = (await s.execute(select(StreamSessionRow.arn).where(
                StreamSessionRow.stream_group_id == group_id))).scalars().all()
            await queries.drop_tags(s, [row.arn, *session_arns])
            await s.execute(delete(StreamSessionRow).where(StreamSessionRow.stream_group_id == group_id))
            await s.execute(delete(AssociationRow).where(AssociationRow.stream_group_id == group_id))
            await s.delete(row)
            await s.commit()
        self._locks.pop(group_id, None)
        for key in [k for k in self._pushed if k[0] == group_id]:
            del self._pushed[key]
        self.capacity_changed()
        log.info("stream group %s deleted", group_id)

    # -- warm capacity --------------------------------------------------------------------------------

    def tags_changed(self, group_id: str) -> None:
        """Its tags were changed (TagResource / UntagResource): push the warm targets again (playcast:pause-warm)."""
        self._spawn_refresh(group_id)

    def _spawn_refresh(self, group_id: str) -> None:
        task = self.plane.spawn(self.refresh(group_id), f"refresh-{group_id}")
        self._refreshing[group_id] = task

        def _forget(done: asyncio.Task[None]) -> None:
            if self._refreshing.get(group_id) is done:
                del self._refreshing[group_id]

        task.add_done_callback(_forget)

    async def _set_warm(self, group_id: str, location: str, launches: list[Any], count: int,
                        pause_idle: bool = True) -> None:
        await self.plane.host_pool.set_warm_target(group_id, location, launches, count, pause_idle)
        self._pushed[(group_id, location)] = (count, tuple(launch_key(x) for x in launches), pause_idle)

    async def refresh(self, group_id: str) -> None:
        """Push warm targets for every location of the group, then set the statuses of its locations (ACTIVE once
        provisioned, ERROR where the hosts could not be told) and its own."""
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            async with self.plane.db.session() as s:
                row = await self._live(s, group_id)
                if row is None:
                    return
                names = [loc["LocationName"] for loc in row.locations if loc.get("Status") != REMOVING]
            failed = {loc for (g, loc) in await self.rebalance(names, force_group=group_id) if g == group_id}
            await self._settle(group_id, failed)

    async def _provisioned(self, s: Any, group_id: str, location: str, launches: bool) -> bool:
        """Whether the group's capacity in `location` is allocated: its held always-on slots are launched (idle
        warm in the hosts' heartbeats). Without heartbeat figures (a HostPool used directly) or anything to
        launch, pushing the targets is all there is to wait for."""
        fig = await self.figures(s, location)
        share = fig.shares().get(group_id)
        if not launches or not fig.measured or share is None:
            return True
        return fig.idle.get(group_id, 0) >= share.held

    async def _settle(self, group_id: str, failed: set[str] | None = None) -> None:
        """Each location's status (`failed`: where the warm targets could not be set; None: only see whether the
        ACTIVATING ones are provisioned by now), and the group's from theirs: ACTIVATING (a new group) or
        UPDATING_LOCATIONS while one is ACTIVATING or REMOVING, then ACTIVE (ACTIVE_WITH_ERRORS with one in ERROR)."""
        async with self.plane.db.session() as s:
            row = await self._live(s, group_id)
            if row is None:
                return
            launches = any(a.status == "READY" for a in await self.associated_apps(s, group_id))
            waited_out = time.time() - row.updated_at > PROVISION_LIMIT_S
            locations = []
            for loc in row.locations:
                status = loc.get("Status", ACTIVATING)
                if status != REMOVING and failed is not None and loc["LocationName"] in failed:
                    status = ERROR
                elif status == ACTIVATING or (status == ERROR and failed is not None):
                    provisioned = await self._provisioned(s, group_id, loc["LocationName"], launches)
                    if not provisioned and waited_out:
                        log.warning("stream group %s: its always-on slots in %s are not up after %.0f s; ACTIVE "
                                    "anyway (AllocatedCapacity shows what runs)", group_id, loc["LocationName"],
                                    PROVISION_LIMIT_S)
                    status = ACTIVE if provisioned or waited_out else ACTIVATING
                locations.append({**loc, "Status": status})
            statuses = {loc["Status"] for loc in locations}
            if REMOVING in statuses or (ACTIVATING in statuses and row.status != ACTIVATING):
                status = UPDATING_LOCATIONS
            elif ACTIVATING in statuses:
                status = ACTIVATING
            else:
                status = ACTIVE_WITH_ERRORS if ERROR in statuses else ACTIVE
            reason = "internalError" if ERROR in statuses else None
            if (locations, status, reason) != (row.locations, row.status, row.status_reason):
                row.locations, row.status, row.status_reason = locations, status, reason
                row.updated_at = time.time()
                await s.commit()

    async def _settle_pending(self) -> None:
        """Groups with a location still ACTIVATING: is it provisioned by now?"""
        async with self.plane.db.session() as s:
            pending = (await s.execute(select(StreamGroupRow.id).where(
                StreamGroupRow.status.in_((ACTIVATING, UPDATING_LOCATIONS))))).scalars().all()
        for group_id in pending:
            if group_id in self._refreshing:  # its refresh settles it
                continue
            async with self._locks.setdefault(group_id, asyncio.Lock()):
                await self._settle(group_id)

    def capacity_changed(self) -> None:
        """Sessions started or ended, or a location's settings changed: recompute the warm targets soon."""
        self._capacity_changed.set()

    async def _warm_inputs(self, s: Any) -> dict[str, tuple[list[Any], bool]]:
        """Per stream group (not being deleted): the launches of its READY applications and its pause setting."""
        out: dict[str, tuple[list[Any], bool]] = {}
        for row in (await s.execute(select(StreamGroupRow).where(StreamGroupRow.status != DELETING))).scalars():
            apps = [a for a in await self.associated_apps(s, row.id) if a.status == "READY"]
            out[row.id] = ([self.plane.applications.launch_spec(a) for a in apps],
                           pause_warm(await queries.get_tags(s, row.arn)))
        return out

    async def rebalance(self, locations: list[str], force_group: str | None = None) -> set[tuple[str, str]]:
        """Share each location's slots among its groups (control/capacity.plan) and tell the hosts every warm
        target that changed (all of `force_group`'s). Returns the (group, location) whose target failed."""
        failed: set[tuple[str, str]] = set()
        async with self._rebalance_lock:
            async with self.plane.db.session() as s:
                inputs = await self._warm_inputs(s)
                figures = [await self.figures(s, name) for name in locations]
            for fig in figures:
                shares = fig.shares()
                groups = {g for (g, loc) in self._pushed if loc == fig.location} | set(shares)
                changes = []
                for group_id in sorted(groups):
                    launches, pause_idle = inputs.get(group_id, ([], True))
                    share = shares.get(group_id)
                    count = share.warm if share is not None and launches else 0
                    want = (count, tuple(launch_key(x) for x in launches) if count else (), pause_idle)
                    last = self._pushed.get((group_id, fig.location))
                    if group_id != force_group and (last == want or (last is None and count == 0)):
                        continue
                    changes.append((count - (last[0] if last else 0), group_id, launches, count, pause_idle))
                # lowered targets first: while slots move between groups no host is asked for more than it has
                for _delta, group_id, launches, count, pause_idle in sorted(changes, key=lambda c: c[0]):
                    try:
                        await self._set_warm(group_id, fig.location, launches if count else [], count, pause_idle)
                    except Exception:  # noqa: BLE001 - reported as location ERROR by refresh
                        log.exception("stream group %s: set_warm_target failed in %s", group_id, fig.location)
                        self._pushed.pop((group_id, fig.location), None)
                        failed.add((group_id, fig.location))
                    if count == 0 and (group_id, fig.location) in self._pushed and group_id not in inputs:
                        del self._pushed[(group_id, fig.location)]
        return failed

    async def _all_locations(self) -> list[str]:
        names = set(self.plane.host_pool.locations()) | {loc for (_g, loc) in self._pushed}
        async with self.plane.db.session() as s:
            for locations in (await s.execute(select(StreamGroupRow.locations))).scalars():
                names |= {loc["LocationName"] for loc in locations}
        return sorted(names)

    async def watch_capacity(self) -> None:
        """Until the plane stops: recompute warm targets each CAPACITY_EVERY_S, sooner after capacity_changed()
        (hosts join and leave, sessions start and end, other replicas change groups)."""
        while not self.plane.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._capacity_changed.wait(), CAPACITY_EVERY_S)
            self._capacity_changed.clear()
            if self.plane.stopping:
                return
            try:
                await self.rebalance(await self._all_locations())
                await self._settle_pending()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.warning("recomputing warm targets failed", exc_info=True)

    async def refresh_for_application(self, app_id: str) -> None:
        async with self.plane.db.session() as s:
            group_ids = (await s.execute(select(AssociationRow.stream_group_id).where(
                AssociationRow.application_id == app_id))).scalars().all()
        for gid in group_ids:
            await self.refresh(gid)

    async def resume(self) -> None:
        """After a restart: push warm targets again, finish deletions."""
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(StreamGroupRow.id, StreamGroupRow.status))).all()
        for gid, status in rows:
            if status == DELETING:
                self.plane.spawn(self._finish_delete(gid), f"delete-{gid}")
            else:
                self._spawn_refresh(gid)
        self.plane.spawn(self.watch_capacity(), "capacity-watch")
