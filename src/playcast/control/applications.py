"""Applications: create (ingest content off the event loop), get, list, update, delete.

Works on store rows and the data directory; the AWS wire shape is produced here, HTTP is not."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from playcast.archives.extract import Limits
from playcast.archives.members import UnsafeContent
from playcast.hostproto.types import LaunchSpec
from playcast.storage import Storage, StorageError, open_storage

from ..store import queries
from ..store.models import ApplicationRow, AssociationRow, StreamGroupRow
from .content import ContentArchives, content_ref, scratch_path
from .errors import ConflictError, NotFoundError, ValidationError
from .ids import APPLICATION, new_application_id
from .ingest import (
    IngestError,
    Source,
    SourceError,
    check_executable_path,
    ingest,
    resolve_source,
    verify_executable,
)
from .pages import list_page

if TYPE_CHECKING:
    from .plane import ControlPlane

log = logging.getLogger(__name__)

READY = "READY"
ERROR = "ERROR"
INITIALIZED = "INITIALIZED"
PROCESSING = "PROCESSING"
DELETING = "DELETING"
RUNNABLE_RUNTIMES = ("UBUNTU",)


class Applications:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        settings = plane.settings
        self.apps_dir = Path(settings.data_dir).resolve() / "apps"
        self.archives = ContentArchives(
            open_storage(settings.content_storage_url, s3_endpoint_url=settings.s3_endpoint_url,
                         s3_region=settings.s3_region))
        if settings.redis_url and not settings.content_storage:
            log.warning("PLAYCAST_CONTENT_STORAGE is not set: application archives stay in this replica's data "
                        "dir, so hosts joined to other replicas cannot fetch them; give every replica one "
                        "PLAYCAST_CONTENT_STORAGE (s3://bucket/prefix or a shared directory)")

    # -- reading --------------------------------------------------------------------------------------

    async def load(self, s: Any, identifier: str) -> ApplicationRow:
        app_id = self.plane.arns.resolve(identifier, APPLICATION)
        row = await s.get(ApplicationRow, app_id)
        if row is None:
            raise NotFoundError(f"Application {identifier} not found")
        return row

    async def render(self, s: Any, row: ApplicationRow) -> dict[str, Any]:
        group_rows = (await s.execute(
            select(StreamGroupRow).join(AssociationRow, AssociationRow.stream_group_id == StreamGroupRow.id)
            .where(AssociationRow.application_id == row.id).order_by(StreamGroupRow.created_at))).scalars().all()
        locations: list[str] = []
        for g in group_rows:
            for loc in g.locations:
                if loc["LocationName"] not in locations:
                    locations.append(loc["LocationName"])
        if not locations:
            locations = [self.plane.primary_location]
        replication = "COMPLETED" if row.status == READY else "REPLICATING"
        out: dict[str, Any] = {
            "Arn": row.arn,
            "Id": row.id,
            "Description": row.description,
            "RuntimeEnvironment": {"Type": row.runtime_type, "Version": row.runtime_version},
            "ExecutablePath": row.executable_path,
            "ApplicationLogPaths": list(row.log_paths or []),
            "ApplicationSourceUri": row.source_uri,
            "Status": row.status,
            "StatusReason": row.status_reason,  # the AWS enum, exactly: clients compare it
            "StatusMessage": row.status_message,  # playcast's extension: what went wrong, in words
            "ReplicationStatuses": [{"Location": loc, "Status": replication} for loc in locations],
            "CreatedAt": row.created_at,
            "LastUpdatedAt": row.updated_at,
            "AssociatedStreamGroups": [g.arn for g in group_rows],
        }
        if row.log_output_uri:
            out["ApplicationLogOutputUri"] = row.log_output_uri
        return out

    @staticmethod
    def summary(row: ApplicationRow) -> dict[str, Any]:
        return {"Arn": row.arn, "Id": row.id, "Description": row.description, "Status": row.status,
                "CreatedAt": row.created_at, "LastUpdatedAt": row.updated_at,
                "RuntimeEnvironment": {"Type": row.runtime_type, "Version": row.runtime_version}}

    async def get(self, identifier: str) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            return await self.render(s, await self.load(s, identifier))

    async def status_detail(self, identifier: str) -> str | None:
        """Our human-readable reason for an ERROR status (not part of the AWS shape)."""
        async with self.plane.db.session() as s:
            return (await self.load(s, identifier)).status_message

    async def list(self, max_results: int | None, next_token: str | None) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            return await list_page(s, select(ApplicationRow), ApplicationRow, max_results, next_token, self.summary)

    def launch_spec(self, row: ApplicationRow, args: list[str] | None = None,
                    env: dict[str, str] | None = None) -> LaunchSpec:
        """What a host starts: the server's unpacked copy (for a host on this disk) and, once packed, the archive
        every other host fetches."""
        content = content_ref(row.content_sha256, row.content_size) \
            if row.content_sha256 is not None and row.content_size is not None else None
        return LaunchSpec.make(row.id, row.content_dir, row.executable_path, args, env, content)

    # -- writing --------------------------------------------------------------------------------------

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        runtime = params["RuntimeEnvironment"]
        if runtime["Type"] not in RUNNABLE_RUNTIMES:
            raise ValidationError(f"RuntimeEnvironment Type {runtime['Type']} is not supported: this playcast host "
                                  "runs Linux applications only (use Type UBUNTU)")
        try:
            check_executable_path(params["ExecutablePath"])
            source = resolve_source(params["ApplicationSourceUri"], self.plane.settings.source_roots,
                                    self.plane.settings.app_source_buckets)
            if source.kind == "dir" and source.path is not None and self.apps_dir.is_relative_to(source.path):
                raise SourceError("ApplicationSourceUri must not contain the server's own data directory")
            if source.kind == "dir" and source.path is not None:  # cheap now: the caller gets a clear error at once
                await asyncio.to_thread(verify_executable, source.path, params["ExecutablePath"])
        except SourceError as exc:
            raise ValidationError(str(exc)) from exc

        async def create(s: Any) -> tuple[str, None]:
            now = time.time()
            app_id = new_application_id()
            arn = self.plane.arns.application(app_id)
            s.add(ApplicationRow(
                id=app_id, arn=arn, description=params["Description"], runtime_type=runtime["Type"],
                runtime_version=runtime["Version"], executable_path=params["ExecutablePath"],
                source_uri=params["ApplicationSourceUri"], log_paths=list(params.get("ApplicationLogPaths") or []),
                log_output_uri=params.get("ApplicationLogOutputUri") or None, status=INITIALIZED,
                status_reason=None, content_dir=str(self.apps_dir / app_id), created_at=now, updated_at=now))
            if params.get("Tags"):
                await queries.put_tags(s, arn, params["Tags"])
            return app_id, None

        async def replay(app_id: str | None, _resp: Any) -> dict[str, Any]:
            assert app_id is not None
            return await self.get(app_id)

        def after(app_id: str | None) -> None:
            assert app_id is not None
            self.plane.spawn(self._ingest(app_id, source), f"ingest-{app_id}")

        return await self.plane.idempotent("CreateApplication", params.get("ClientToken"), params,
                                           create, replay, after)

    async def _set_status(self, app_id: str, status: str, reason: str | None = None,
                          message: str | None = None) -> bool:
        """Set the status unless the application is gone or being deleted; returns whether it was set."""
        async with self.plane.db.session() as s:
            row = await s.get(ApplicationRow, app_id)
            if row is None or row.status == DELETING:
                return False
            row.status, row.status_reason, row.status_message = status, reason, message
            row.updated_at = time.time()
            await s.commit()
            return True

    def _open_s3(self, uri: str) -> Storage:
        settings = self.plane.settings
        return open_storage(uri, s3_endpoint_url=settings.s3_endpoint_url, s3_region=settings.s3_region)

    async def _set_ready(self, app_id: str, sha256: str, size: int) -> bool:
        async with self.plane.db.session() as s:
            row = await s.get(ApplicationRow, app_id)
            if row is None or row.status == DELETING:
                return False
            row.status, row.status_reason, row.status_message = READY, None, None
            row.content_sha256, row.content_size, row.updated_at = sha256, size, time.time()
            await s.commit()
            return True

    async def _discard_unused(self, sha256: str | None) -> None:
        """Remove the archive `sha256` unless another application has the same content."""
        if sha256 is None:
            return
        async with self.plane.db.session() as s:
            users = (await s.execute(select(ApplicationRow.id).where(
                ApplicationRow.content_sha256 == sha256).limit(1))).scalars().all()
        if not users:
            await asyncio.to_thread(self.archives.discard, sha256)

    async def _ingest(self, app_id: str, source: Source) -> None:
        async with self.plane.db.session() as s:
            row = await s.get(ApplicationRow, app_id)
            if row is None:
                return
            executable, dest = row.executable_path, Path(row.content_dir)
        await self._set_status(app_id, PROCESSING)
        try:
            settings = self.plane.settings
            await asyncio.to_thread(ingest, source, dest, executable,
                                    Limits(settings.app_max_files, settings.app_max_bytes), self._open_s3)
            packed = await asyncio.to_thread(self.archives.store, dest)
        except (IngestError, SourceError, UnsafeContent, StorageError) as exc:
            log.warning("application %s: ingest failed: %s", app_id, exc)
            await asyncio.to_thread(shutil.rmtree, dest, True)
            await self._set_status(app_id, ERROR, getattr(exc, "reason", "internalError"), str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any failure must end in ERROR, never a stuck PROCESSING
            log.exception("application %s: ingest crashed", app_id)
            await asyncio.to_thread(shutil.rmtree, dest, True)
            await self._set_status(app_id, ERROR, "internalError", f"internal error: {exc}")
            return
        if not await self._set_ready(app_id, packed.sha256, packed.size):  # deleted while we were copying
            await asyncio.to_thread(shutil.rmtree, dest, True)
            await self._discard_unused(packed.sha256)
            return
        log.info("application %s is READY", app_id)
        await self.plane.stream_groups.refresh_for_application(app_id)

    async def resume_pending(self) -> None:
        """After a restart: applications caught mid-ingest are ingested again."""
        async with self.plane.db.session() as s:
            rows = (await s.execute(select(ApplicationRow).where(
                ApplicationRow.status.in_([INITIALIZED, PROCESSING, DELETING])))).scalars().all()
        async with self.plane.db.session() as s:
            unpacked = (await s.execute(select(ApplicationRow).where(
                ApplicationRow.status == READY, ApplicationRow.content_sha256.is_(None)))).scalars().all()
        for row in unpacked:  # ingested before content archives existed: pack them now, for remote hosts
            self.plane.spawn(self._pack_ingested(row.id, Path(row.content_dir)), f"pack-{row.id}")
        for row in rows:
            if row.status == DELETING:
                self.plane.spawn(self._finish_delete(row.id, row.arn, Path(row.content_dir), row.content_sha256),
                                 f"delete-{row.id}")
                continue
            try:
                source = resolve_source(row.source_uri, self.plane.settings.source_roots,
                                        self.plane.settings.app_source_buckets)
            except SourceError as exc:
                await self._set_status(row.id, ERROR, "internalError", str(exc))
                continue
            self.plane.spawn(self._ingest(row.id, source), f"ingest-{row.id}")

    async def _pack_ingested(self, app_id: str, tree: Path) -> None:
        try:
            packed = await asyncio.to_thread(self.archives.store, tree)
        except (UnsafeContent, OSError, StorageError) as exc:
            log.warning("application %s: its content cannot be packed for remote hosts: %s", app_id, exc)
            return
        async with self.plane.db.session() as s:
            row = await s.get(ApplicationRow, app_id)
            if row is not None and row.status == READY:
                row.content_sha256, row.content_size = packed.sha256, packed.size
                await s.commit()
        log.info("application %s packed for remote hosts (%d bytes)", app_id, packed.size)

    async def update(self, identifier: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            row = await self.load(s, identifier)
            if row.status == DELETING:
                raise ConflictError(f"Application {row.id} is being deleted")
            if "Description" in params:
                row.description = params["Description"]
            if "ApplicationLogPaths" in params:
                row.log_paths = list(params["ApplicationLogPaths"])
            if "ApplicationLogOutputUri" in params:
                row.log_output_uri = params["ApplicationLogOutputUri"] or None
            row.updated_at = time.time()
            await s.commit()
            return await self.render(s, row)

    async def delete(self, identifier: str) -> None:
        async with self.plane.db.session() as s:
            row = await self.load(s, identifier)
            groups = (await s.execute(select(AssociationRow.stream_group_id).where(
                AssociationRow.application_id == row.id))).scalars().all()
            if groups:
                raise ConflictError(f"Application {row.id} is associated with stream group(s) "
                                    f"{', '.join(sorted(groups))}; disassociate it first")
            if row.status == DELETING:
                return
            row.status, row.updated_at = DELETING, time.time()
            arn, content, sha256 = row.arn, Path(row.content_dir), row.content_sha256
            await s.commit()
        self.plane.spawn(self._finish_delete(row.id, arn, content, sha256), f"delete-{row.id}")

    async def _finish_delete(self, app_id: str, arn: str, content: Path, sha256: str | None) -> None:
        await asyncio.to_thread(shutil.rmtree, content, True)
        await asyncio.to_thread(shutil.rmtree, content.with_name(content.name + ".partial"), True)
        await asyncio.to_thread(scratch_path(content).unlink, True)
        async with self.plane.db.session() as s:
            await s.execute(delete(ApplicationRow).where(ApplicationRow.id == app_id))
            await queries.drop_tags(s, [arn])
            await s.commit()
        await self._discard_unused(sha256)
        log.info("application %s deleted", app_id)

