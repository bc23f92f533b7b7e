"""Stream groups: locations and capacity, application associations, warm-slot targets on the HostPool.

Validates location/capacity configuration and keeps HostPool.set_warm_target in step; no HTTP here."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from ..store import queries
from ..store.models import ApplicationRow, AssociationRow, StreamGroupRow, StreamSessionRow
from .errors import ConflictError, NotFoundError, ValidationError
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


def warm_count(loc: dict[str, Any], total_slots: int) -> int:
    """Idle slots to keep launched: max(AlwaysOn, TargetIdle), capped by MaximumCapacity and the host's slots."""
    want = max(loc.get("AlwaysOnCapacity") or 0, loc.get("TargetIdleCapacity") or 0)
    if loc.get("MaximumCapacity") is not None:
        want = min(want, loc["MaximumCapacity"])
    return max(0, min(want, total_slots))


def max_sessions(loc: dict[str, Any]) -> int | None:
    """The most concurrent sessions the group may run in this location (None = bounded by hosts only)."""
    if loc.get("MaximumCapacity") is not None:
        return int(loc["MaximumCapacity"])
    if loc.get("OnDemandCapacity") is not None:
        return int(loc.get("AlwaysOnCapacity") or 0) + int(loc["OnDemandCapacity"])
    return None


class StreamGroups:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # latest refresh per group

    # -- reading --------------------------------------------------------------------------------------

    async def load(self, s: Any, identifier: str) -> StreamGroupRow:
        group_id = self.plane.arns.resolve(identifier, STREAM_GROUP)
        row = await s.get(StreamGroupRow, group_id)
        if row is None:
            raise NotFoundError(f"Stream group {identifier} not found")
        return row

    def location_state(self, loc: dict[str, Any]) -> dict[str, Any]:
        name = loc["LocationName"]
        try:
            cap = self.plane.host_pool.capacity(name)
            allocated, idle, total = cap.allocated, cap.idle, cap.total_slots
        except Exception:  # noqa: BLE001 - no hosts in that location
            allocated = idle = total = 0
        out = {"LocationName": name, "Status": loc.get("Status", ACTIVATING),
               "RequestedCapacity": warm_count(loc, total), "AllocatedCapacity": allocated, "IdleCapacity": idle}
        for key in CAPACITY_KEYS:
            if loc.get(key) is not None:
                out[key] = loc[key]
        return out

    async def associated_apps(self, s: Any, group_id: str) -> list[ApplicationRow]:
        return list((await s.execute(
            select(ApplicationRow).join(AssociationRow, AssociationRow.application_id == ApplicationRow.id)
            .where(AssociationRow.stream_group_id == group_id).order_by(AssociationRow.created_at)
        )).scalars().all())

    async def render(self, s: Any, row: StreamGroupRow) -> dict[str, Any]:
        apps = await self.associated_apps(s, row.id)
        out: dict[str, Any] = {
            "Arn": row.arn, "Id": row.id, "Description": row.description, "StreamClass": row.stream_class,
            "LocationStates": [self.location_state(loc) for loc in row.locations],
            "Status": row.status, "StatusReason": row.status_reason, "CreatedAt": row.created_at,
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

    def _location_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        name = cfg["LocationName"]
        known = self.plane.locations()
        if name not in known:
            raise ValidationError(f"Location {name!r} is not available; this deployment has: {', '.join(known)}")
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

    def _location_configs(self, cfgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [c["LocationName"] for c in cfgs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValidationError(f"Duplicate location(s) in LocationConfigurations: {', '.join(dupes)}")
        return [self._location_config(c) for c in cfgs]

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
        configs = self._location_configs(list(params.get("LocationConfigurations") or []))
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

    async def _writable(self, s: Any, identifier: str) -> StreamGroupRow:
        row = await self.load(s, identifier)
        if row.status == DELETING:
            raise ConflictError(f"Stream group {row.id} is being deleted")
        return row

    async def update(self, identifier: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            if "Description" in params:
                row.description = params["Description"]
            if params.get("DefaultApplicationIdentifier"):
                app = await self._app_for_association(s, params["DefaultApplicationIdentifier"])
                row.default_application_id = app.id
                await self._associate(s, row.id, [app.id])
            if params.get("LocationConfigurations"):
                current = {loc["LocationName"]: loc for loc in row.locations}
                for cfg in self._location_configs(params["LocationConfigurations"]):
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
        new = self._location_configs(cfgs)
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
            states = [self.location_state(c) for c in new]
            group_arn = row.arn
        self._spawn_refresh(row.id)
        return {"Identifier": group_arn, "Locations": states}

    async def remove_locations(self, identifier: str, names: list[str]) -> None:
        async with self.plane.db.session() as s:
            row = await self._writable(s, identifier)
            if self.plane.primary_location in names:
                raise ValidationError(f"The primary location {self.plane.primary_location} cannot be removed; "
                                      "set its capacity to 0 instead")
            have = {loc["LocationName"] for loc in row.locations}
            missing = sorted(set(names) - have)
            if missing:
                raise ValidationError(f"Stream group {row.id} has no location(s) {', '.join(missing)}")
            row.locations = [loc for loc in row.locations if loc["LocationName"] not in names]
            row.updated_at = time.time()
            await s.commit()
            group_id = row.id
        for name in names:
            await self._set_warm(group_id, name, [], 0)

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

    async def refresh(self, group_id: str) -> None:
        """Push warm targets for every location of the group, then mark the group and its locations ACTIVE."""
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            async with self.plane.db.session() as s:
                row = await s.get(StreamGroupRow, group_id)
                if row is None or row.status == DELETING:
                    return
                apps = [a for a in await self.associated_apps(s, group_id) if a.status == "READY"]
                launches = [self.plane.applications.launch_spec(a) for a in apps]
                locations = [dict(loc) for loc in row.locations]
                pause_idle = pause_warm(await queries.get_tags(s, row.arn))
            failed = False
            for loc in locations:
                count = warm_count(loc, self.plane.total_slots(loc["LocationName"])) if launches else 0
                try:
                    await self._set_warm(group_id, loc["LocationName"], launches, count, pause_idle)
                    loc["Status"] = ACTIVE
                except Exception:  # noqa: BLE001 - reported as location ERROR
                    log.exception("stream group %s: set_warm_target failed in %s", group_id, loc["LocationName"])
                    loc["Status"] = ERROR
                    failed = True
            async with self.plane.db.session() as s:
                row = await s.get(StreamGroupRow, group_id)
                if row is None or row.status == DELETING:
                    return
                by_name = {loc["LocationName"]: loc["Status"] for loc in locations}
                row.locations = [{**loc, "Status": by_name.get(loc["LocationName"], loc.get("Status", ACTIVATING))}
                                 for loc in row.locations]
                row.status = ACTIVE_WITH_ERRORS if failed else ACTIVE
                row.status_reason = "internalError" if failed else None
                row.updated_at = time.time()
                await s.commit()

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
