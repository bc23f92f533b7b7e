"""A session's files leave its host as GameLift Streams has them leave: ExportStreamSessionFiles marks an export
PENDING; when the session ends (before its host stops it) the host zips its ApplicationLogPaths (and, for an export,
the game's output), the zip is read back over the host protocol and written to S3: the application's
ApplicationLogOutputUri (GetStreamSession's LogFileLocationUri) and the export's OutputUri (ExportFilesMetadata).

Domain code over the HostPool and storage; no HTTP, no AWS wire dicts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..store.models import ApplicationRow, StreamSessionRow
from .errors import ValidationError
from .ingest import S3_BUCKET

if TYPE_CHECKING:
    from .plane import ControlPlane

log = logging.getLogger(__name__)

PENDING, SUCCEEDED, FAILED = "PENDING", "SUCCEEDED", "FAILED"  # ExportFilesStatus
EXPORTABLE = ("ACTIVE", "CONNECTED", "PENDING_CLIENT_RECONNECTION", "RECONNECTING")
COLLECT_TIMEOUT_S = 30.0  # a session's end waits at most this long for its files


@dataclass(frozen=True)
class S3Target:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def s3_target(uri: str, buckets: Sequence[str], default_name: str, what: str) -> S3Target:
    """`s3://bucket/name.zip` as is, `s3://bucket/prefix/` + `default_name`; the bucket must be in `buckets`
    ("*": any). ValueError says what is wrong."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not S3_BUCKET.fullmatch(parsed.netloc) or parsed.query or parsed.fragment:
        raise ValueError(f"{what} {uri!r} must be s3://bucket/prefix/ or s3://bucket/name.zip")
    if "*" not in buckets and parsed.netloc not in buckets:
        raise ValueError(f"{what} bucket {parsed.netloc!r} is not one this server writes to (see "
                         "PLAYCAST_OUTPUT_BUCKETS)")
    path = parsed.path.lstrip("/")
    if not path.lower().endswith(".zip"):
        path = (path.rstrip("/") + "/" if path.strip("/") else "") + default_name
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"{what} {uri!r} has an empty, '.' or '..' path segment")
    return S3Target(parsed.netloc, path)


class SessionFiles:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    # -- ExportStreamSessionFiles -------------------------------------------------------------------------
    async def request_export(self, group_identifier: str, session_identifier: str, output_uri: str) -> None:
        """Mark the session's export PENDING (it is written when the session ends); ValidationError for a session
        not in progress or an OutputUri this server does not write to."""
        async with self.plane.db.session() as s:
            row = await self.plane.sessions.load(s, group_identifier, session_identifier)
            if row.status not in EXPORTABLE:
                raise ValidationError(f"Stream session {row.id} is {row.status}: files can be exported only from a "
                                      f"session that is {', '.join(EXPORTABLE)}")
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            name = f"{stamp}-{row.application_id}-{row.stream_group_id}-{row.id}.zip"
            try:
                target = s3_target(output_uri, self.plane.settings.output_buckets, name, "OutputUri")
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
            row.export_status, row.export_reason, row.export_uri = PENDING, None, target.uri
            row.updated_at = time.time()
            await s.commit()

    # -- the end of a session --------------------------------------------------------------------------------
    async def collect_at_end(self, session_id: str) -> None:
        """Before the session's host stops it: fetch what is due (its logs, its pending export) and write them to
        S3 in the background. Never raises: a failure is the export's FAILED reason or a log line."""
        async with self.plane.db.session() as s:
            row = await s.get(StreamSessionRow, session_id)
            app = await s.get(ApplicationRow, row.application_id) if row is not None else None
        if row is None or app is None:
            return
        log_paths = list(app.log_paths or [])
        if log_paths and app.log_output_uri:
            try:
                target = s3_target(app.log_output_uri, self.plane.settings.output_buckets,
                                   f"{app.id}/{row.id}/logs.zip", "ApplicationLogOutputUri")
            except ValueError as exc:
                log.warning("session %s: application logs not written: %s", session_id, exc)
            else:
                await self._collect(session_id, log_paths, False, target)
        if row.export_status == PENDING and row.export_uri:
            bucket, _, key = row.export_uri.removeprefix("s3://").partition("/")
            await self._collect(session_id, log_paths, True, S3Target(bucket, key))

    async def _collect(self, session_id: str, log_paths: list[str], export: bool, target: S3Target) -> None:
        try:
            path = await asyncio.wait_for(self._fetch(session_id, log_paths, export), COLLECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the host gone, a protocol error, a full disk: all a reason
            why = "its host did not answer in time" if isinstance(exc, TimeoutError) else str(exc)
            await self._done(session_id, export, target, f"the session's files could not be collected: {why}")
            return
        self.plane.spawn(self._upload(session_id, export, path, target), f"files-{session_id}")

    async def _fetch(self, session_id: str, log_paths: list[str], export: bool) -> Path:
        """Have the host zip the files, read the zip back chunk by chunk into a temp file, check it."""
        pool = self.plane.host_pool
        (bundle,) = await pool.collect_files(session_id, log_paths, export)
        fd, name = tempfile.mkstemp(dir=self.plane.settings.data_dir, prefix=".session-files-", suffix=".zip")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                while size < bundle.size:
                    chunk = await pool.read_file(session_id, bundle.name, size)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            if size != bundle.size or digest.hexdigest() != bundle.sha256:
                raise ValueError(f"the host sent {size} of {bundle.size} bytes of {bundle.name}, or other bytes")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return Path(name)

    async def _upload(self, session_id: str, export: bool, path: Path, target: S3Target) -> None:
        from playcast.storage import open_storage

        settings = self.plane.settings
        try:
            storage = open_storage(f"s3://{target.bucket}", s3_endpoint_url=settings.s3_endpoint_url,
                                   s3_region=settings.s3_region)
            await asyncio.to_thread(storage.put_file, target.key, path, "application/zip")
        except Exception as exc:  # noqa: BLE001 - StorageError, boto3's S3UploadFailedError ...: all a FAILED reason
            await self._done(session_id, export, target, f"cannot write {target.uri}: {exc}")
            return
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        await self._done(session_id, export, target, None)

    async def _done(self, session_id: str, export: bool, target: S3Target, failure: str | None) -> None:
        if failure is not None:
            log.warning("session %s: %s", session_id, failure)
        async with self.plane.db.session() as s:
            row = await s.get(StreamSessionRow, session_id)
            if row is None:
                return
            if export:
                row.export_status, row.export_reason = (FAILED, failure) if failure else (SUCCEEDED, None)
            elif failure is None:
                row.log_uri = target.uri
            row.updated_at = time.time()
            await s.commit()
        self.plane.sessions.watch.notify(session_id)
