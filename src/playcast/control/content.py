"""Application content archives on the server: an ingested tree packed once into a content-addressed .tar.gz
(archives/pack.py) and kept in the content storage (a local directory or S3) under its SHA-256, for hosts to fetch.

Blocking storage and file-system code meant for worker threads; no HTTP, no database."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import BinaryIO

from playcast.archives.pack import ARCHIVE_SUFFIX, PackedArchive, pack_tree
from playcast.hostproto.types import CONTENT_PATH, ContentRef
from playcast.storage import ObjectNotFound, Storage

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def archive_key(sha256: str) -> str:
    """The storage key of the archive whose digest is `sha256` (64 lowercase hex digits, else ValueError)."""
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError("an archive is named by 64 lowercase hex digits")
    return sha256 + ARCHIVE_SUFFIX


def content_ref(sha256: str, size: int) -> ContentRef:
    """What a LaunchSpec carries: the archive, fetched from the control plane the host joined."""
    return ContentRef(sha256, size, CONTENT_PATH + sha256)


def scratch_path(tree: Path) -> Path:
    """Where `tree`'s archive is written while it is packed: beside it (removed with it)."""
    return tree.with_name(tree.name + ".pack" + ARCHIVE_SUFFIX)


class ContentArchives:
    """The archives in `storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def store(self, tree: Path) -> PackedArchive:
        """Pack `tree` and keep the archive (equal trees give one archive); the scratch file never stays.
        Raises UnsafeContent/OSError (the tree) or StorageError (the storage)."""
        path = scratch_path(tree)
        path.unlink(missing_ok=True)  # a crashed predecessor's
        try:
            packed = pack_tree(tree, path)
            self.storage.put_file(archive_key(packed.sha256), path, content_type="application/gzip")
        finally:
            path.unlink(missing_ok=True)
        return packed

    def open(self, sha256: str) -> BinaryIO:
        """The archive to stream out (close it). Raises ObjectNotFound (or ValueError for a bad digest)."""
        return self.storage.open_read(archive_key(sha256))

    def discard(self, sha256: str) -> None:
        """Remove an archive no application uses any more (gone already is fine)."""
        with contextlib.suppress(ObjectNotFound):
            self.storage.delete(archive_key(sha256))
