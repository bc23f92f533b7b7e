"""Application content ingest: accept ApplicationSourceUri only under the allowed roots, unpack or copy it (see
extract.py), check ExecutablePath.

Blocking file-system code meant for a worker thread (asyncio.to_thread); no database access here."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from playcast.archives.extract import Limits, unpack
from playcast.archives.members import UnsafeContent

log = logging.getLogger(__name__)

class SourceError(ValueError):
    """The source URI or ExecutablePath is unusable; the message says why (answered as ValidationException)."""


class IngestError(RuntimeError):
    """Copying/unpacking or the post-unpack checks failed; the message says why (application goes ERROR)."""


@dataclass(frozen=True)
class Source:
    path: Path  # the real path (links resolved) that was checked against the roots
    kind: str  # "dir" | "tar" | "zip"


NOT_ACCEPTED = ("ApplicationSourceUri is not an application source this server accepts (it must be an existing "
                "directory or .zip/.tar.gz/.tgz/.tar file under an allowed source root; see "
                "PLAYCAST_APP_SOURCE_ROOTS)")


def resolve_source(uri: str, roots: Sequence[Path]) -> Source:
    """Parse ApplicationSourceUri (an absolute path or file:// URI to a directory or a .tar.gz/.tgz/.tar/.zip
    file) and accept it only if its real path (links resolved) lies under one of `roots`. Whether the path is
    outside the roots, missing or of the wrong kind, the answer is the same (no existence oracle)."""
    if "://" in uri:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise SourceError(
                f"ApplicationSourceUri scheme {parsed.scheme!r} is not supported by playcast: use a local "
                "directory path, a file:// URI, or a .tar.gz/.tgz/.zip archive on the server")
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


def ingest(source: Source, dest: Path, executable: str, limits: Limits) -> None:
    """Copy/unpack `source` into `dest` (replaced atomically) and verify `executable` inside it; on any failure
    nothing of it is left (dest's `.partial` sibling is removed) and nothing outside `dest` was written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        try:
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
    log.info("ingested %s (%s) into %s", source.path, source.kind, dest)
