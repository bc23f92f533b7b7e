"""Pack an application's unpacked content into one reproducible .tar.gz named by its SHA-256: the same tree always
gives the same bytes (sorted members, no times, owners or host names), so equal content is one archive.

Reads the tree through members.directory_members (no link followed); writes only the one output file."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .members import DIR, FILE, SYMLINK, directory_members

COMPRESSLEVEL = 1  # game content is mostly compressed already: favour speed
ARCHIVE_SUFFIX = ".tar.gz"


@dataclass(frozen=True)
class PackedArchive:
    sha256: str  # hex digest of the archive's bytes
    size: int  # the archive's size in bytes
    files: int  # members packed
    content_bytes: int  # the sum of the regular files' sizes


class _Digesting(io.RawIOBase):
    """A write-only file that hashes and counts what goes through it to `out`."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.out.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _info(name: str, kind: int, mode: int, size: int = 0, target: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = kind, mode, size, target
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
    return ti


def pack_tree(root: Path, out_path: Path) -> PackedArchive:
    """Write `root`'s tree (a real path) to `out_path` (created, must not exist) as .tar.gz; returns its digest.
    Raises UnsafeContent / OSError when the tree cannot be read (then `out_path` is removed)."""
    files = content = 0
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as raw:
            digesting = _Digesting(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=digesting, compresslevel=COMPRESSLEVEL, mtime=0) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
                for m in directory_members(root):
                    name = "/".join(m.parts)
                    files += 1
                    if m.kind == DIR:
                        tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                    elif m.kind == SYMLINK:
                        tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, target=m.target))
                    elif m.kind == FILE:
                        assert m.open is not None
                        with m.open() as src:
                            size = os.fstat(src.fileno()).st_size
                            tar.addfile(_info(name, tarfile.REGTYPE, m.mode, size), src)
                        content += size
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return PackedArchive(digesting.digest.hexdigest(), digesting.size, files, content)
