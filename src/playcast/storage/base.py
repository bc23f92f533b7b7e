"""The Storage interface recordings (and other archives) are written to: put, get, list, delete, url.

Blocking calls, safe from any thread (call them off the event loop); backends live in local.py and s3.py."""

from __future__ import annotations

import abc
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/mp4",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".json": "application/json",
}


class StorageError(Exception):
    """A write or read failed (unwritable target, unreachable endpoint, bad credentials ...). `code` is the
    service's short reason when it gave one (e.g. "NoSuchBucket", "AccessDenied"), for messages to API callers."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StorageFull(StorageError):
    """No space (disk full, quota exceeded, 507 Insufficient Storage)."""


class ObjectNotFound(StorageError, KeyError):
    """No object under that key."""

    def __init__(self, message: str, code: str | None = "NoSuchKey") -> None:
        super().__init__(message, code)

    def __str__(self) -> str:
        return Exception.__str__(self)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def check_key(key: str) -> str:
    """Keys are relative '/'-separated paths without '.', '..' or empty segments; anything else is refused."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise ValueError("storage key must be a non-empty string of at most 1024 characters")
    if key.startswith("/") or "\\" in key or "\x00" in key or any(ord(c) < 32 for c in key):
        raise ValueError(f"bad storage key {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"bad storage key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    if prefix == "":
        return prefix
    return check_key(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "")


def content_type_for(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


class Storage(abc.ABC):
    """An object store. Keys look like paths: `recordings/<id>/media/hls/source/seg3.m4s`."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None,
                  cache_control: str | None = None) -> None:
        """Store `data` under `key` (replacing any object there). Raises StorageFull / StorageError."""

    def put_file(self, key: str, path: Path | str, content_type: str | None = None,
                 cache_control: str | None = None) -> None:
        """Store a local file's content under `key`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self.put_bytes(key, data, content_type, cache_control)

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound when there is none."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """The object as a file to read in chunks (close it); ObjectNotFound when there is none."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose keys start with `prefix`, sorted by key."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""

    @abc.abstractmethod
    def url(self, key: str) -> str:
        """A URL a browser or player can GET the object from."""

    def exists(self, key: str) -> bool:
        try:
            self.get(key)
        except ObjectNotFound:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix`; returns how many."""
        items = self.list(prefix)
        for item in items:
            self.delete(item.key)
        return len(items)

    def describe(self) -> str:
        """Where objects go, for logs and status messages."""
        return type(self).__name__
