"""A host's content cache: an application's archive fetched once from the control plane (HTTP GET with the host's
token), checked against its size and SHA-256, unpacked by the safe extractor into `<cache>/<sha256>/`, launched from.

Never reads the control plane's disk, never keeps a partial download or tree (temp names, then one rename). Kept
under a size bound: past it, the trees used least recently go first, never one a slot runs or was just handed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from playcast.archives.extract import Limits, unpack
from playcast.archives.members import UnsafeContent
from playcast.host.app import LaunchError
from playcast.hostproto.types import CONTENT_PATH, ContentRef, LaunchSpec

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
HANDED_OUT_S = 600.0  # a tree handed to a launch counts as in use this long (until its runtime reports it)
_PARTIAL = ".partial-"  # names of downloads and trees in progress (removed at start: a dead predecessor's)


class ContentCache:
    """Trees of archives under `root`, fetched from the control plane at `server_url` with `token`."""

    def __init__(self, root: Path, server_url: str, token: str, limits: Limits, *, timeout_s: float = 60.0,
                 max_bytes: int = 20 << 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.limits = limits
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes  # unpacked trees' total; the newest one is kept even when it alone is larger
        self.clock = clock
        self.in_use: Callable[[], set[str]] = set  # digests of the trees slots run now (the pool tells)
        self.fetches = 0  # archives downloaded by this process (the rest came from the cache)
        self.evicted = 0
        self._locks: dict[str, asyncio.Lock] = {}
        self._handed: dict[str, float] = {}  # digest -> when it was last handed to a launch
        self._sizes: dict[str, int] = {}

    def clean(self) -> None:
        """Remove what a host process that died mid-fetch left (partial downloads and trees)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for entry in self.root.iterdir():
            if entry.name.startswith(_PARTIAL):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    async def directory(self, spec: LaunchSpec) -> Path:
        """The tree to launch `spec` from: its archive's, fetched first unless cached. A spec without content
        names a tree on this host already. Raises LaunchError saying what went wrong."""
        ref = spec.content
        if ref is None:
            return Path(spec.source_dir)
        tree = self.root / ref.sha256
        self._handed[ref.sha256] = self.clock()
        if tree.is_dir():
            with contextlib.suppress(OSError):
                os.utime(tree)  # used now: the last to go
            return tree
        lock = self._locks.setdefault(ref.sha256, asyncio.Lock())
        async with lock:  # concurrent launches of one archive: one fetch, the others wait for it
            if not tree.is_dir():
                await self._fetch_and_unpack(ref, tree)
                await asyncio.to_thread(self.evict)
        return tree

    def evict(self) -> list[str]:
        """Remove the least recently used trees until the cache is within max_bytes; never one a slot runs or one
        handed to a launch in the last HANDED_OUT_S. Returns the digests removed."""
        now = self.clock()
        keep = set(self.in_use()) | {d for d, at in self._handed.items() if now - at < HANDED_OUT_S}
        trees = sorted((e for e in self.root.iterdir() if e.is_dir() and not e.is_symlink()
                        and not e.name.startswith(_PARTIAL)), key=lambda e: e.stat().st_mtime)
        total = sum(self._size(e) for e in trees)
        removed: list[str] = []
        for entry in trees:
            if total <= self.max_bytes:
                break
            if entry.name in keep:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            total -= self._sizes.pop(entry.name, 0)
            self._handed.pop(entry.name, None)
            removed.append(entry.name)
            log.info("content %s evicted from the cache (over %d bytes)", entry.name, self.max_bytes)
        self.evicted += len(removed)
        return removed

    def _size(self, tree: Path) -> int:
        size = self._sizes.get(tree.name)
        if size is None:
            size = sum(f.lstat().st_size for f in tree.rglob("*") if f.is_file() and not f.is_symlink())
            self._sizes[tree.name] = size
        return size

    async def _fetch_and_unpack(self, ref: ContentRef, tree: Path) -> None:
        if not ref.url.startswith(CONTENT_PATH):
            raise LaunchError(f"content {ref.url} cannot be fetched: this host fetches content from its control "
                              "plane only")
        self.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.root, prefix=_PARTIAL, suffix=".tar.gz")
        download = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                await self._download(ref, out)
            await asyncio.to_thread(self._unpack, download, tree)
        finally:
            download.unlink(missing_ok=True)
        self.fetches += 1
        log.info("content %s fetched from the control plane (%d bytes)", ref.sha256, ref.size)

    async def _download(self, ref: ContentRef, out: object) -> None:
        digest, size = hashlib.sha256(), 0
        url = self.server_url + ref.url
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client, \
                    client.stream("GET", url, headers={"Authorization": f"Bearer {self.token}"}) as response:
                if response.status_code != 200:
                    body = (await response.aread())[:512].decode(errors="replace")
                    raise LaunchError(f"content {ref.sha256} could not be fetched from the control plane: HTTP "
                                      f"{response.status_code} {body}")
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    size += len(chunk)
                    if size > ref.size:
                        raise LaunchError(f"content {ref.sha256} is corrupt: the control plane sent more than its "
                                          f"{ref.size} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)  # type: ignore[attr-defined]
        except httpx.HTTPError as exc:
            raise LaunchError(f"content {ref.sha256} could not be fetched from the control plane: {exc}") from exc
        if size != ref.size:
            raise LaunchError(f"content {ref.sha256} is truncated: got {size} of {ref.size} bytes")
        if digest.hexdigest() != ref.sha256:
            raise LaunchError(f"content {ref.sha256} is corrupt: its SHA-256 is {digest.hexdigest()}")

    def _unpack(self, archive: Path, tree: Path) -> None:
        partial = Path(tempfile.mkdtemp(dir=self.root, prefix=_PARTIAL))
        try:
            try:
                unpack("tar", archive, partial, self.limits)
            except UnsafeContent as exc:
                raise LaunchError(f"content {tree.name} cannot be unpacked: {exc}") from exc
            os.chmod(partial, 0o755)
            os.rename(partial, tree)
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.rmtree(partial)
            raise
