"""Unpack application content (the members of a tar, zip or directory) into an empty directory so that nothing
is ever written outside it, whatever the members say.

Must not follow links, trust member names, or rely on tarfile's filters (Python 3.11.7 predates CVE-2025-4517's fix)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .members import (
    DIR,
    FILE,
    HARDLINK,
    SYMLINK,
    Member,
    UnsafeContent,
    directory_members,
    open_dir,
    open_real_path,
    tar_members,
    zip_members,
)

MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS
_CHUNK = 1 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_MODE = 0o755


@dataclass(frozen=True)
class Limits:
    """Bounds on what one application may unpack to (a zip bomb stops at these)."""

    max_files: int
    max_bytes: int


@dataclass(frozen=True)
class _Node:
    kind: str
    target: str = ""  # SYMLINK only


class TreeWriter:
    """Creates members under the directory `root_fd` refers to, and keeps a record of what it created.

    Every path component is created or opened relative to its parent's descriptor with O_NOFOLLOW, so no link
    (from the archive or already on disk) can redirect a write, and nothing is written through a link at all;
    files are created O_EXCL. A symbolic link is kept only if its target, resolved through the links made so far
    (and again over the finished tree), stays inside; a hard link only to a regular file made before it."""

    def __init__(self, root_fd: int, limits: Limits) -> None:
        self.root_fd = root_fd
        self.limits = limits
        self.nodes: dict[tuple[str, ...], _Node] = {(): _Node(DIR)}
        self.links: list[Member] = []
        self.count = 0
        self.bytes = 0

    def add(self, m: Member) -> None:
        self.count += 1
        if self.count > self.limits.max_files:
            raise UnsafeContent(f"the content has more than {self.limits.max_files} entries; raise "
                                "PLAYCAST_APP_MAX_FILES to allow it")
        if not m.parts:
            if m.kind == DIR:  # "./": the root, which exists
                return
            raise m.refuse("it names the application directory itself")
        existing = self.nodes.get(m.parts)
        if existing is not None:
            if existing.kind == DIR and m.kind == DIR:  # a directory listed again, or after its files
                return
            how = f"twice as a {m.kind}" if existing.kind == m.kind else f"as a {existing.kind}, then as a {m.kind}"
            raise m.refuse(f"the name appears more than once ({how})")
        parent = self._parent(m)
        try:
            if m.kind == FILE:
                self._file(m, parent)
            elif m.kind == DIR:
                self._mkdir(m, parent, m.parts)
            elif m.kind == SYMLINK:
                self._symlink(m, parent)
            elif m.kind == HARDLINK:
                self._hardlink(m, parent)
            else:
                raise m.refuse(f"unknown member kind {m.kind!r}")
        except FileExistsError as exc:  # the record above says no; the file system is the final word
            raise m.refuse("the name appears more than once") from exc
        except OSError as exc:
            raise m.refuse(f"it cannot be unpacked ({exc.strerror or exc})") from exc
        finally:
            self._close(parent)

    def finish(self) -> None:
        """Check every symbolic link again over the finished tree: a link that was dangling when made (and so
        looked inside) may point outside once later members exist."""
        for m in self.links:
            self._check_link(m)

    # -- members -----------------------------------------------------------------------------------------------

    def _file(self, m: Member, parent: int) -> None:
        if self.bytes + m.size > self.limits.max_bytes:
            raise self._too_big(m)
        assert m.open is not None
        fd = os.open(m.parts[-1], _NEW_FILE, 0o600, dir_fd=parent)
        self.nodes[m.parts] = _Node(FILE)
        with os.fdopen(fd, "wb") as out, m.open() as src:
            while chunk := src.read(_CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_bytes:
                    raise self._too_big(m)
                out.write(chunk)
            os.fchmod(out.fileno(), m.mode)

    def _mkdir(self, m: Member, parent: int, parts: tuple[str, ...]) -> None:
        try:
            os.mkdir(parts[-1], _DIR_MODE, dir_fd=parent)
        except FileExistsError as exc:
            raise m.refuse(f"{'/'.join(parts)!r} already exists as something other than a directory") from exc
        self.nodes[parts] = _Node(DIR)
        fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.fchmod(fd, _DIR_MODE)  # whatever the umask; setgid/sticky never carried over
        finally:
            os.close(fd)

    def _symlink(self, m: Member, parent: int) -> None:
        self._check_link(m)
        os.symlink(m.target, m.parts[-1], dir_fd=parent)
        self.nodes[m.parts] = _Node(SYMLINK, m.target)
        self.links.append(m)

    def _hardlink(self, m: Member, parent: int) -> None:
        if self.nodes.get(m.target_parts, _Node(DIR)).kind != FILE:
            raise m.refuse(f"it is a hard link to {m.target!r}, which is not a regular file extracted before it")
        src_dir = open_dir(self.root_fd, m.target_parts[:-1])
        try:
            os.link(m.target_parts[-1], m.parts[-1], src_dir_fd=src_dir, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(src_dir)
        self.nodes[m.parts] = _Node(FILE)

    # -- paths ---------------------------------------------------------------------------------------------------

    def _parent(self, m: Member) -> int:
        """A descriptor for the member's directory, creating missing directories; never through a link or file."""
        fd = self.root_fd
        for i in range(1, len(m.parts)):
            prefix = m.parts[:i]
            node = self.nodes.get(prefix)
            if node is not None and node.kind == SYMLINK:
                self._close(fd)
                raise m.refuse(f"its path goes through the symbolic link {'/'.join(prefix)!r}; content is never "
                               "written through a link")
            if node is not None and node.kind != DIR:
                self._close(fd)
                raise m.refuse(f"its path goes through {'/'.join(prefix)!r}, which is a file")
            try:
                if node is None:
                    self._mkdir(m, fd, prefix)
                nxt = os.open(prefix[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                why = "a link or a file" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
                raise m.refuse(f"its directory {'/'.join(prefix)!r} cannot be used ({why})") from exc
            finally:
                self._close(fd)
            fd = nxt
        return fd

    def _close(self, fd: int) -> None:
        if fd != self.root_fd:
            os.close(fd)

    def _check_link(self, m: Member) -> None:
        why = self._leaves_root(m.parts[:-1], m.target)
        if why:
            raise m.refuse(f"its symbolic link to {m.target!r} {why}")

    def _leaves_root(self, base: tuple[str, ...], target: str) -> str | None:
        """Why `target`, read in directory `base`, is refused: it leads outside the root (or through too many
        links); None when it stays inside.

        Component by component, following the links created so far (up to MAX_LINK_HOPS); '..' is applied to the
        path as resolved so far, never to the text. A name not (yet) in the tree is taken as a plain directory;
        finish() asks again once the tree is complete."""
        outside = "points outside the application directory"
        if target.startswith("/"):
            return outside
        here = list(base)
        pending = [p for p in reversed(target.split("/")) if p not in ("", ".")]
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if not here:
                    return outside
                here.pop()
                continue
            node = self.nodes.get((*here, part))
            if node is not None and node.kind == SYMLINK:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return f"goes through more than {MAX_LINK_HOPS} links"
                if node.target.startswith("/"):
                    return outside
                pending.extend(p for p in reversed(node.target.split("/")) if p not in ("", "."))
                continue
            here.append(part)
        return None

    def _too_big(self, m: Member) -> UnsafeContent:
        return m.refuse(f"with it the content unpacks to more than {self.limits.max_bytes} bytes; raise "
                        "PLAYCAST_APP_MAX_BYTES to allow it")


def unpack(kind: str, source: Path, dest: Path, limits: Limits) -> None:
    """Unpack `source` (kind "tar", "zip" or "dir"; a real path, opened without following links) into the empty
    directory `dest`. Raises UnsafeContent (the message names the member and why) on anything refused or
    unreadable; `dest` may then hold a partial tree."""
    try:
        with _members(kind, source) as members:
            unpack_members(members, dest, limits)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError) as exc:  # RuntimeError: zipfile's encrypted members
        raise UnsafeContent(f"cannot unpack {source.name}: {exc}") from exc
    except OSError as exc:  # reading the source; writes are reported per member
        raise UnsafeContent(f"cannot read {source.name}: {exc.strerror or exc}") from exc


def unpack_members(members: Iterable[Member], dest: Path, limits: Limits) -> int:
    """Write `members` (from any reader: an archive, a directory, an object store) into the empty directory
    `dest` under the same rules as unpack(); returns the bytes written. Raises UnsafeContent for a refused member;
    errors of the reader itself propagate."""
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        writer = TreeWriter(root_fd, limits)
        for member in members:
            writer.add(member)
        writer.finish()
        return writer.bytes
    finally:
        os.close(root_fd)


@contextlib.contextmanager
def _members(kind: str, source: Path) -> Iterator[Iterator[Member]]:
    if kind in ("tar", "zip"):
        with os.fdopen(open_real_path(source, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise UnsafeContent(f"cannot unpack {source.name}: it is not a regular file")
            if kind == "tar":
                with tarfile.open(fileobj=fh, mode="r:*") as tf:
                    yield tar_members(tf)
            else:
                with zipfile.ZipFile(fh) as zf:
                    yield zip_members(zf)
    else:
        with contextlib.closing(directory_members(source)) as members:
            yield members
