"""Storage in a local directory (the default for recordings), with an optional size quota.

Atomic writes (temp file + rename) so readers never see half an object; never leaves its root directory."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from playcast.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageFull,
    check_key,
    check_prefix,
)

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class LocalStorage(Storage):
    """Objects are files below `root`. `base_url` (e.g. the server's `/recordings`) makes `url()` an HTTP URL;
    `quota_bytes` caps the total size (StorageFull beyond it)."""

    def __init__(self, root: Path | str, *, base_url: str | None = None, quota_bytes: int | None = None,
                 create: bool = True) -> None:
        self.root = Path(root).absolute()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self._used: int | None = None
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create storage directory {self.root}: {exc.strerror or exc}") from exc

    def describe(self) -> str:
        return f"directory {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _usage(self) -> int:
        if self._used is None:
            self._used = sum(item.size for item in self.list())
        return self._used

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None,
                  cache_control: str | None = None) -> None:
        self._write(key, len(data), lambda out: out.write(data))

    def put_file(self, key: str, path: Path | str, content_type: str | None = None,
                 cache_control: str | None = None) -> None:
        """Copy a local file in, in chunks (never whole in memory), atomically."""
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc

        def copy(out: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        self._write(key, size, copy)

    def _write(self, key: str, size: int, fill: Callable[[BinaryIO], object]) -> None:
        """Write `size` bytes under `key` with `fill` into a temp file renamed over the object (within quota)."""
        target = self._path(key)
        with self._lock:
            old = target.stat().st_size if target.is_file() else 0
            if self.quota_bytes is not None and self._usage() - old + size > self.quota_bytes:
                raise StorageFull(f"storage quota of {self.quota_bytes} bytes reached in {self.root}")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
                try:
                    with os.fdopen(fd, "wb") as out:
                        fill(out)
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno in _FULL:
                    raise StorageFull(f"no space left for {key} in {self.root}: {reason}") from exc
                raise StorageError(f"cannot write {key} to {self.root}: {reason}") from exc
            if self._used is not None:
                self._used += size - old

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key} from {self.root}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key} from {self.root}: {exc.strerror or exc}") from exc

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        prefix = check_prefix(prefix)
        items: list[ObjectInfo] = []
        if not self.root.is_dir():
            return items
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".put-"):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        items.append(ObjectInfo(key, full.stat().st_size))
                    except FileNotFoundError:
                        continue
        return sorted(items, key=lambda i: i.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._lock:
            try:
                size = path.stat().st_size
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as exc:
                raise StorageError(f"cannot delete {key} from {self.root}: {exc.strerror or exc}") from exc
            if self._used is not None:
                self._used -= size
            # drop directories left empty, up to the root
            parent = path.parent
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def url(self, key: str) -> str:
        path = self._path(key)
        if self.base_url:
            return f"{self.base_url}/{quote(check_key(key))}"
        return path.as_uri()
