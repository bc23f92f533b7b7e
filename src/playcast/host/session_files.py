"""A session's files as one zip, for the control plane to read back in chunks: its ApplicationLogPaths (relative to
the application's tree, or to the session's home as `$HOME/...` or `~/...`) and, for an export, the game's own output.

Reads only regular files inside the session's home or the application's tree (a link out of them is refused and
named in the zip's MANIFEST.txt), within size caps; blocking code for a worker thread."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from playcast.hostproto.types import EXPORT_BUNDLE, LOGS_BUNDLE, FileBundle

MAX_FILE_BYTES = 50 << 20  # each log file, as GameLift Streams caps them
MAX_BUNDLE_BYTES = 512 << 20  # all files of one bundle
LOG_SUFFIXES = (".txt", ".log", ".utrace")  # what a directory in ApplicationLogPaths contributes
HOME_VARIABLES = ("$HOME", "~")  # a first path component meaning the session's home, as GameLift Streams reads it
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SessionPlaces:
    home: Path  # the session's $HOME (the game's own, per session)
    content: Path  # the application's tree the session was launched from
    game_output: Path  # the game's stdout/stderr log


def _base_and_rel(places: SessionPlaces, log_path: str) -> tuple[Path, PurePosixPath, str] | str:
    """(base, relative path, name in the zip) for one ApplicationLogPaths entry, or why it is refused."""
    parts = PurePosixPath(log_path).parts
    if parts and parts[0] in HOME_VARIABLES:
        base, rel, top = places.home, PurePosixPath(*parts[1:]) if len(parts) > 1 else PurePosixPath("."), "home"
    else:
        base, rel, top = places.content, PurePosixPath(log_path), "app"
    if rel.is_absolute() or ".." in rel.parts or "\x00" in log_path:
        return "it must be a relative path without '..'"
    return base, rel, top


def _inside(base: Path, path: Path) -> Path | None:
    """`path` with every link resolved, if it stays inside `base`."""
    real_base, real = os.path.realpath(base), os.path.realpath(path)
    return Path(real) if real == real_base or real.startswith(real_base + os.sep) else None


class _Bundle:
    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.bytes = 0
        self.manifest: list[str] = []

    def add(self, path: Path, base: Path, arcname: str) -> None:
        real = _inside(base, path)
        if real is None:
            self.manifest.append(f"refused {arcname}: it leads out of the session's files")
            return
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self.manifest.append(f"skipped {arcname}: {exc.strerror or exc}")
            return
        with os.fdopen(fd, "rb") as src:
            st = os.fstat(src.fileno())
            if not stat.S_ISREG(st.st_mode):
                self.manifest.append(f"skipped {arcname}: not a regular file")
                return
            size = min(st.st_size, MAX_FILE_BYTES)
            if self.bytes + size > MAX_BUNDLE_BYTES:
                self.manifest.append(f"skipped {arcname}: the bundle would pass {MAX_BUNDLE_BYTES} bytes")
                return
            with self.zf.open(arcname, "w") as out:
                left = size
                while left > 0 and (chunk := src.read(min(_CHUNK, left))):
                    out.write(chunk)
                    left -= len(chunk)
            self.bytes += size
            note = f" (cut at {MAX_FILE_BYTES} bytes)" if st.st_size > MAX_FILE_BYTES else ""
            self.manifest.append(f"collected {arcname}{note}")

    def add_log_path(self, places: SessionPlaces, log_path: str) -> None:
        found = _base_and_rel(places, log_path)
        if isinstance(found, str):
            self.manifest.append(f"refused {log_path!r}: {found}")
            return
        base, rel, top = found
        target = base / rel
        if target.is_dir() and _inside(base, target) is not None:  # its log files, not recursively
            for entry in sorted(target.iterdir()):
                if entry.name.lower().endswith(LOG_SUFFIXES) and (entry.is_file() or entry.is_symlink()):
                    self.add(entry, base, f"{top}/{(rel / entry.name).as_posix()}")
        elif target.exists() or target.is_symlink():
            self.add(target, base, f"{top}/{rel.as_posix()}")
        else:
            self.manifest.append(f"missing {log_path!r}")


def make_bundle(places: SessionPlaces, log_paths: list[str], export: bool, out_dir: Path) -> FileBundle:
    """Zip `log_paths` (and, with `export`, the game's output) into `out_dir`; returns what was written."""
    name = EXPORT_BUNDLE if export else LOGS_BUNDLE
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = out_dir / (name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        bundle = _Bundle(zf)
        for log_path in log_paths:
            bundle.add_log_path(places, log_path)
        if export:
            bundle.add(places.game_output, places.home, "session/app.log")
        zf.writestr("MANIFEST.txt", "\n".join(bundle.manifest) + "\n")
    os.replace(tmp, path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return FileBundle(name, path.stat().st_size, digest.hexdigest())


def read_chunk(out_dir: Path, name: str, offset: int, limit: int) -> bytes:
    """Up to `limit` bytes of a bundle made by make_bundle, from `offset` (empty at its end)."""
    if name not in (LOGS_BUNDLE, EXPORT_BUNDLE):
        raise LookupError(f"no bundle {name!r}")
    try:
        with open(out_dir / name, "rb") as fh:
            fh.seek(offset)
            return fh.read(limit)
    except FileNotFoundError:
        raise LookupError(f"bundle {name} was not made for this session") from None
