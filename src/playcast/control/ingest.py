"""Application content ingest: resolve ApplicationSourceUri, copy or unpack it, check ExecutablePath.

Blocking file-system code meant for a worker thread (asyncio.to_thread); no database access here."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class SourceError(ValueError):
    """The source URI or ExecutablePath is unusable; the message says why (answered as ValidationException)."""


class IngestError(RuntimeError):
    """Copying/unpacking or the post-unpack checks failed; the message says why (application goes ERROR)."""


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # "dir" | "tar" | "zip"


def resolve_source(uri: str) -> Source:
    """Parse ApplicationSourceUri: an absolute directory path, a file:// URI, or a .tar.gz/.tgz/.tar/.zip file."""
    if "://" in uri:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise SourceError(
                f"ApplicationSourceUri scheme {parsed.scheme!r} is not supported by playcast: use a local "
                "directory path, a file:// URI, or a .tar.gz/.tgz/.zip archive on the server")
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(f"file:// URI must name a local path, not host {parsed.netloc!r}")
        path = Path(unquote(parsed.path))
    else:
        path = Path(uri)
    if not path.is_absolute():
        raise SourceError(f"ApplicationSourceUri must be an absolute path or file:// URI, got {uri!r}")
    if path.is_dir():
        return Source(path, "dir")
    if not path.exists():
        raise SourceError(f"ApplicationSourceUri {uri!r} does not exist on the server")
    name = path.name.lower()
    if name.endswith(".zip"):
        return Source(path, "zip")
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return Source(path, "tar")
    raise SourceError(f"ApplicationSourceUri {uri!r} is neither a directory nor a .tar.gz/.tgz/.tar/.zip archive")


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


def _unsafe_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts


def _extract_tar(src: Path, dest: Path) -> None:
    try:
        with tarfile.open(src, "r:*") as tf:
            for member in tf:
                if _unsafe_name(member.name):
                    raise IngestError(f"unsafe archive member rejected: {member.name!r} would be extracted "
                                      "outside the application directory")
            tf.extractall(dest, filter="data")  # also refuses links that escape, devices, setuid bits
    except tarfile.FilterError as exc:
        raise IngestError(f"unsafe archive member rejected: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise IngestError(f"cannot unpack {src.name}: {exc}") from exc


def _extract_zip(src: Path, dest: Path) -> None:
    real_dest = dest.resolve()
    try:
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if _unsafe_name(name):
                    raise IngestError(f"unsafe archive member rejected: {name!r} would be extracted outside "
                                      "the application directory")
                target = dest.joinpath(*parts) if parts else dest
                mode = info.external_attr >> 16
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if stat.S_ISLNK(mode):
                    link = zf.read(info).decode("utf-8", "replace")
                    resolved = Path(os.path.normpath(target.parent / link))
                    if os.path.isabs(link) or not _inside(real_dest, resolved.resolve()):
                        raise IngestError(f"unsafe archive member rejected: symlink {name!r} -> {link!r} "
                                          "points outside the application directory")
                    os.symlink(link, target)
                    continue
                with zf.open(info) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                perm = stat.S_IMODE(mode) & 0o755 if mode else 0o644
                os.chmod(target, perm | 0o600)
    except zipfile.BadZipFile as exc:
        raise IngestError(f"cannot unpack {src.name}: {exc}") from exc


def ingest(source: Source, dest: Path, executable: str) -> None:
    """Copy/unpack `source` into `dest` (replaced atomically) and verify `executable` inside it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if source.kind == "dir":
            try:
                shutil.copytree(source.path, tmp, symlinks=True)
            except (shutil.Error, OSError) as exc:
                raise IngestError(f"cannot copy {source.path}: {exc}") from exc
        else:
            tmp.mkdir()
            (_extract_tar if source.kind == "tar" else _extract_zip)(source.path, tmp)
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
