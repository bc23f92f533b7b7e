"""Application content as a stream of checked members: a tar or zip archive, or a directory, read entry by entry,
each name split into safe parts and each entry classified (file, directory, symbolic link, hard link).

Reads only, follows no link, writes nothing; refuses names and entry types that must never be unpacked."""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

FILE, DIR, SYMLINK, HARDLINK = "file", "directory", "symbolic link", "hard link"
MAX_LINK_TARGET = 4095  # bytes; Linux refuses longer symlink targets (PATH_MAX - 1)
_DRIVE = re.compile(r"^[A-Za-z]:")
_SPECIAL = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO (named pipe)",
            stat.S_IFSOCK: "a socket"}
ONLY = "application content holds only files, directories and links"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeContent(ValueError):
    """A member, or the content as a whole, is refused; the message names the member and says why."""


@dataclass(frozen=True)
class Member:
    """One entry. `parts` is the checked relative path (empty: the root itself); `target` is a symbolic link's
    text, or for a hard link the name of the earlier member it repeats (`target_parts` checked like `parts`)."""

    label: str  # "archive member" or "source entry", for messages
    name: str  # as the source spells it, for messages
    parts: tuple[str, ...]
    kind: str
    mode: int = 0o644
    size: int = 0
    target: str = ""
    target_parts: tuple[str, ...] = ()
    open: Callable[[], BinaryIO] | None = None

    def refuse(self, why: str) -> UnsafeContent:
        return refusal(self.label, self.name, why)


def refusal(label: str, name: str, why: str) -> UnsafeContent:
    """"<label> '<name>' is refused: <why>", a very long name shortened in the middle."""
    shown = name if len(name) <= 160 else f"{name[:100]}…{name[-50:]}"
    return UnsafeContent(f"{label} {shown!r} is refused: {why}")


def split_name(label: str, name: str) -> tuple[str, ...]:
    """The parts of an archive name, refusing absolute names, '..', backslashes and drive letters."""
    def refuse(why: str) -> UnsafeContent:
        return refusal(label, name, why)
    if "\x00" in name:
        raise refuse("its name holds a NUL byte")
    if name.startswith("/"):
        raise refuse("its name is an absolute path")
    if "\\" in name:
        raise refuse("its name holds a backslash (a Windows path separator)")
    if _DRIVE.match(name):
        raise refuse("its name starts with a drive letter")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise refuse("its name has a '..' component, which would climb out of the application directory")
    return parts


def _safe_mode(mode: int) -> int:
    """Permission bits as unpacked: no setuid, setgid, sticky or group/other write; the owner may read and write."""
    return (stat.S_IMODE(mode) & 0o755) | 0o600


def _symlink_text(label: str, name: str, raw: bytes) -> str:
    if not raw or len(raw) > MAX_LINK_TARGET or b"\x00" in raw:
        raise refusal(label, name, "its symbolic link target is empty, too long or holds a NUL byte")
    return os.fsdecode(raw)


# -- tar ------------------------------------------------------------------------------------------------------


def tar_members(tf: tarfile.TarFile) -> Iterator[Member]:
    label = "archive member"
    for ti in tf:
        parts = split_name(label, ti.name)
        if ti.isreg():
            yield Member(label, ti.name, parts, FILE, _safe_mode(ti.mode), ti.size,
                         open=partial(_tar_open, tf, ti))
        elif ti.isdir():
            yield Member(label, ti.name, parts, DIR)
        elif ti.issym():
            yield Member(label, ti.name, parts, SYMLINK, target=_symlink_text(label, ti.name,
                                                                              os.fsencode(ti.linkname)))
        elif ti.islnk():
            yield Member(label, ti.name, parts, HARDLINK, target=ti.linkname,
                         target_parts=split_name(f"hard link {ti.name!r} to", ti.linkname))
        else:
            what = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
                    tarfile.FIFOTYPE: "a FIFO (named pipe)"}.get(ti.type, f"of unsupported type {ti.type!r}")
            raise refusal(label, ti.name, f"it is {what}; {ONLY}")


def _tar_open(tf: tarfile.TarFile, ti: tarfile.TarInfo) -> BinaryIO:
    fh = tf.extractfile(ti)
    if fh is None:  # isreg() members always have content; keep the type checker and a broken archive honest
        raise refusal("archive member", ti.name, "it has no content")
    return fh


# -- zip ------------------------------------------------------------------------------------------------------


def zip_members(zf: zipfile.ZipFile) -> Iterator[Member]:
    label = "archive member"
    for info in zf.infolist():
        parts = split_name(label, info.filename)
        mode = info.external_attr >> 16  # st_mode when written on Unix; 0 from most Windows tools
        kind = stat.S_IFMT(mode)
        if info.is_dir() or kind == stat.S_IFDIR:
            yield Member(label, info.filename, parts, DIR)
        elif kind == stat.S_IFLNK:
            if info.file_size > MAX_LINK_TARGET:
                raise refusal(label, info.filename, "its symbolic link target is too long")
            yield Member(label, info.filename, parts, SYMLINK,
                         target=_symlink_text(label, info.filename, zf.read(info)))
        elif kind in (0, stat.S_IFREG):
            yield Member(label, info.filename, parts, FILE, _safe_mode(mode) if mode else 0o644, info.file_size,
                         open=partial(zf.open, info))
        else:
            raise refusal(label, info.filename, f"it is {_SPECIAL.get(kind, 'of an unknown file type')}; {ONLY}")


# -- directory ------------------------------------------------------------------------------------------------


def directory_members(root: Path) -> Iterator[Member]:
    """The tree under `root`, parents before children, without following any link (symbolic links are members)."""
    label = "source entry"
    root_fd = open_real_path(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pending: list[tuple[str, ...]] = [()]
        while pending:
            here = pending.pop()
            fd = open_dir(root_fd, here)
            try:
                with os.scandir(fd) as it:
                    names = sorted(entry.name for entry in it)
                for name in names:
                    parts = (*here, name)
                    shown = "/".join(parts)
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        yield Member(label, shown, parts, DIR)
                        pending.append(parts)
                    elif stat.S_ISREG(st.st_mode):
                        yield Member(label, shown, parts, FILE, _safe_mode(st.st_mode), st.st_size,
                                     open=partial(_open_source_file, fd, name, shown))
                    elif stat.S_ISLNK(st.st_mode):
                        yield Member(label, shown, parts, SYMLINK,
                                     target=_symlink_text(label, shown, os.readlink(os.fsencode(name), dir_fd=fd)))
                    else:
                        what = _SPECIAL.get(stat.S_IFMT(st.st_mode), "of an unknown file type")
                        raise refusal(label, shown, f"it is {what}; {ONLY}")
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def open_real_path(path: Path, flags: int) -> int:
    """Open the absolute, link-free `path` (a real path checked earlier) from / with O_NOFOLLOW at every step, so
    a link swapped in since the check fails (OSError) instead of leading somewhere else."""
    top = os.open("/", _DIR_FLAGS)
    try:
        parent = open_dir(top, path.parts[1:-1])
    finally:
        os.close(top)
    try:
        return os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)


def open_dir(root_fd: int, parts: tuple[str, ...]) -> int:
    """A new descriptor for root/parts, opened component by component; refuses (OSError) any link on the way."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def _open_source_file(dir_fd: int, name: str, shown: str) -> BinaryIO:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise refusal("source entry", shown, "it changed from a file while being copied")
    return os.fdopen(fd, "rb")
