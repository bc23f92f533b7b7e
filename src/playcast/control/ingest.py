"""Application content ingest: accept ApplicationSourceUri only under the allowed roots (or in an allowed S3 bucket),
unpack or copy it (see archives/extract.py), check ExecutablePath.

Blocking file-system and storage code meant for a worker thread (asyncio.to_thread); no database access here."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from playcast.archives.extract import Limits, unpack, unpack_members
from playcast.archives.members import DIR, FILE, Member, UnsafeContent, split_name
from playcast.storage import Storage, StorageError

log = logging.getLogger(__name__)

class SourceError(ValueError):
    """The source URI or ExecutablePath is unusable; the message says why (answered as ValidationException)."""


class IngestError(RuntimeError):
    """Copying/unpacking or the post-unpack checks failed; the message says why (application goes ERROR with
    `reason`, GameLift's ApplicationStatusReason)."""

    def __init__(self, message: str, reason: str = "internalError") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    path: Path | None  # the real path (links resolved) that was checked against the roots; None for "s3"
    kind: str  # "dir" | "tar" | "zip" | "s3"
    uri: str = ""  # "s3": s3://bucket/prefix, as checked


S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
ACCESS_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                       "InvalidToken", "ExpiredToken"}
StorageOpener = Callable[[str], Storage]  # s3://bucket/prefix -> a Storage of the objects under it


def resolve_s3_source(uri: str, buckets: Sequence[str]) -> Source:
    """Accept `s3://bucket[/prefix]` when the bucket is one of `buckets` ("*": any the credentials reach)."""
    parsed = urlparse(uri)
    if not S3_BUCKET.fullmatch(parsed.netloc) or parsed.query or parsed.fragment:
        raise SourceError(f"ApplicationSourceUri {uri!r} must be s3://bucket or s3://bucket/prefix")
    if "*" not in buckets and parsed.netloc not in buckets:
        raise SourceError(f"ApplicationSourceUri bucket {parsed.netloc!r} is not one this server reads (see "
                          "PLAYCAST_APP_SOURCE_BUCKETS)")
    prefix = parsed.path.strip("/")
    try:
        split_name("ApplicationSourceUri", prefix)
    except UnsafeContent as exc:
        raise SourceError(str(exc)) from exc
    return Source(None, "s3", f"s3://{parsed.netloc}/{prefix}" if prefix else f"s3://{parsed.netloc}")


NOT_ACCEPTED = ("ApplicationSourceUri is not an application source this server accepts (it must be an existing "
                "directory or .zip/.tar.gz/.tgz/.tar file under an allowed source root; see "
                "PLAYCAST_APP_SOURCE_ROOTS)")


def resolve_source(uri: str, roots: Sequence[Path], buckets: Sequence[str] = ()) -> Source:
    """Parse ApplicationSourceUri (an absolute path or file:// URI to a directory or a .tar.gz/.tgz/.tar/.zip
    file, or s3://bucket/prefix) and accept a path only if its real path (links resolved) lies under one of
    `roots`, a bucket only if it is in `buckets`. Whether the path is outside the roots, missing or of the wrong
    kind, the answer is the same (no existence oracle); a bucket's objects are read at ingest."""
    if "://" in uri:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            return resolve_s3_source(uri, buckets)
        if parsed.scheme != "file":
            raise SourceError(
                f"ApplicationSourceUri scheme {parsed.scheme!r} is not supported by playcast: use s3://bucket/"
                "prefix, a local directory path, a file:// URI, or a .tar.gz/.tgz/.zip archive on the server")
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(f"file:// URI must name a local path, not host {parsed.netloc!r}")
        path = unquote(parsed.path)
    else:
        path = uri
    if not os.path.isabs(path):
        raise SourceError(f"ApplicationSourceUri must be an absolute path or file:// URI, got {uri!r}")
    try:
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(os.path.realpath(root)) for root in roots):
            raise SourceError(NOT_ACCEPTED)
        if real.is_dir():
            return Source(real, "dir")
        name = real.name.lower()
        if real.is_file() and name.endswith(".zip"):
            return Source(real, "zip")
        if real.is_file() and name.endswith((".tar.gz", ".tgz", ".tar")):
            return Source(real, "tar")
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long ...
        raise SourceError(NOT_ACCEPTED) from exc
    raise SourceError(NOT_ACCEPTED)


def check_executable_path(executable: str) -> PurePosixPath:
    """Syntactic checks of ExecutablePath: relative, no '..', not empty."""
    p = PurePosixPath(executable)
    if not executable or executable.endswith("/"):
        raise SourceError("ExecutablePath must name a file")
    if p.is_absolute() or executable.startswith("\\") or (len(executable) > 1 and executable[1] == ":"):
        raise SourceError(f"ExecutablePath must be relative to the application content, got {executable!r}")
    if ".." in p.parts:
        raise SourceError(f"ExecutablePath must stay inside the application content, got {executable!r}")
    return p


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.relative_to(root)
        return True
    except ValueError:
        return False


def verify_executable(root: Path, executable: str) -> Path:
    """Check that root/executable is a file inside root (symlinks resolved) and is ELF or a #! script."""
    rel = check_executable_path(executable)
    real_root = root.resolve()
    target = (root / rel)
    if not target.exists() and not target.is_symlink():
        raise SourceError(f"ExecutablePath {executable!r} does not exist in the application content")
    real = target.resolve()
    if not _inside(real_root, real):
        raise SourceError(f"ExecutablePath {executable!r} resolves outside the application content")
    if not real.is_file():
        raise SourceError(f"ExecutablePath {executable!r} is not a regular file")
    with real.open("rb") as fh:
        head = fh.read(4)
    if head != b"\x7fELF" and not head.startswith(b"#!"):
        raise SourceError(f"ExecutablePath {executable!r} is neither an ELF binary nor a #! script "
                          "(this host runs Linux applications only)")
    return real


def storage_members(storage: Storage, where: str) -> Iterator[Member]:
    """Every object of `storage` as a member (a key ending in "/" is a directory); each is read when unpacked."""
    objects = storage.list("")
    if not objects:
        raise IngestError(f"ApplicationSourceUri {where} holds no objects: nothing to stream")
    for obj in objects:
        parts = split_name("object", obj.key)
        if obj.key.endswith("/"):
            yield Member("object", obj.key, parts, DIR)
        else:
            yield Member("object", obj.key, parts, FILE, 0o644, obj.size,
                         open=lambda key=obj.key: storage.open_read(key))  # type: ignore[misc]


def _copy_s3(source: Source, dest: Path, limits: Limits, open_s3: StorageOpener | None) -> None:
    if open_s3 is None:
        raise IngestError(f"ApplicationSourceUri {source.uri}: this server has no S3 configured")
    try:
        unpack_members(storage_members(open_s3(source.uri), source.uri), dest, limits)
    except StorageError as exc:
        reason = "accessDenied" if exc.code in ACCESS_DENIED_CODES else "internalError"
        detail = {"NoSuchBucket": "the bucket does not exist"}.get(exc.code or "", str(exc))
        raise IngestError(f"cannot read ApplicationSourceUri {source.uri}: {detail}", reason) from exc


def ingest(source: Source, dest: Path, executable: str, limits: Limits,
           open_s3: StorageOpener | None = None) -> None:
    """Copy/unpack `source` into `dest` (replaced atomically) and verify `executable` inside it; on any failure
    nothing of it is left (dest's `.partial` sibling is removed) and nothing outside `dest` was written.
    `open_s3` reads an s3:// source."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        try:
            if source.kind == "s3":
                _copy_s3(source, tmp, limits, open_s3)
            else:
                assert source.path is not None
                unpack(source.kind, source.path, tmp, limits)
        except UnsafeContent as exc:
            raise IngestError(str(exc)) from exc
        try:
            real = verify_executable(tmp, executable)
        except SourceError as exc:
            raise IngestError(str(exc)) from exc
        mode = real.stat().st_mode
        if not mode & stat.S_IXUSR:
            os.chmod(real, stat.S_IMODE(mode) | stat.S_IXUSR)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("ingested %s (%s) into %s", source.path or source.uri, source.kind, dest)
