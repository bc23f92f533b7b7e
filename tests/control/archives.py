"""Builders for real tar and zip archives (hostile ones included) from one list of entries, and a snapshot of a
directory tree to prove that an ingest wrote nothing outside the application directory. No fixtures here."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = b"#!/bin/sh\nexec sleep 1000\n"
SENTINEL = b"the original content, which no archive may change\n"


@dataclass(frozen=True)
class Entry:
    """One archive member: kind is file | dir | symlink | hardlink | fifo | chardev | blockdev."""

    kind: str
    name: str
    data: bytes = b""
    target: str = ""
    mode: int = 0o644


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Entry:
    return Entry("file", name, data=data, mode=mode)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry("dir", name, mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry("symlink", name, target=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    return Entry("hardlink", name, target=target)


def special(kind: str, name: str) -> Entry:
    return Entry(kind, name)


GAME = file("game.sh", SCRIPT, 0o755)

_TAR_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
              "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE,
              "blockdev": tarfile.BLKTYPE}
_ZIP_TYPES = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO,
              "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK}


def make_tar(path: Path, entries: list[Entry]) -> Path:
    """A gzip'd tar (plain .tar when the name ends in .tar) holding exactly `entries`, in order (PAX names)."""
    with tarfile.open(path, "w" if path.name.endswith(".tar") else "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = _TAR_TYPES[e.kind]
            info.mode = e.mode
            if e.kind in ("symlink", "hardlink"):
                info.linkname = e.target
            if e.kind in ("chardev", "blockdev"):
                info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
            info.size = len(e.data) if e.kind == "file" else 0
            tf.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
    return path


def make_zip(path: Path, entries: list[Entry], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding exactly `entries`, in order, with Unix modes in external_attr (how Info-ZIP stores them:
    a symlink's target is its content). Hard links have no zip form."""
    with zipfile.ZipFile(path, "w", compression) as zf, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # hostile archives repeat names on purpose
        for e in entries:
            if e.kind == "hardlink":
                raise ValueError("zip archives cannot hold hard links")
            name = e.name + "/" if e.kind == "dir" and not e.name.endswith("/") else e.name
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix: external_attr carries st_mode
            info.external_attr = (_ZIP_TYPES[e.kind] | e.mode) << 16
            if e.kind == "dir":
                info.external_attr |= 0x10  # MS-DOS directory bit, as zip(1) sets it
            info.compress_type = compression
            zf.writestr(info, e.target.encode() if e.kind == "symlink" else e.data)
    return path


def make_archive(fmt: str, directory_: Path, stem: str, entries: list[Entry]) -> Path:
    """make_tar or make_zip by `fmt` ("tar" or "zip") into `directory_`/`stem`.tar.gz|.zip."""
    if fmt == "tar":
        return make_tar(directory_ / f"{stem}.tar.gz", entries)
    return make_zip(directory_ / f"{stem}.zip", entries)


def issue_link_chain_entries(outside: Path) -> list[Entry]:
    """Issue 8 item 1: `a -> .`, then `a/a/…(12)/e -> ../…(12)<outside>`, then files written through `e`
    (`x.txt` new, `keep.txt` over the sentinel). As text, e's target collapses to a path inside; as the kernel
    resolves it (a/a/… is the root itself), it climbs to / and down into `outside`."""
    deep = "/".join(["a"] * 12)
    return [GAME, symlink("a", "."), symlink(f"{deep}/e", "../" * 12 + str(outside).lstrip("/")),
            file("e/x.txt", b"written outside"), file("e/keep.txt", b"overwritten")]


def cve_2025_4517_entries(apps_dir: Path) -> list[Entry]:
    """The tar of CPython's test_realpath_limit_attack (CVE-2025-4517), sized for an application unpacked in
    `apps_dir`/<id>.partial: 16 nested directories whose names are long enough that, once the 16 step links are
    expanded, os.path.realpath passes PATH_MAX and stops resolving; there, a link back to the top; then
    `escape -> <that link>/..×3` (three levels above the unpack directory: the dir holding the data dir); then
    files written through it into `escape/outside/` (`x.txt` new, `keep.txt` over the sentinel)."""
    dest = apps_dir / "a-000000000.partial"  # as long as the directory ingest unpacks into
    steps = "abcdefghijklmnop"
    component = "d" * ((os.pathconf("/", "PC_PATH_MAX") - len(str(dest)) - 1) // (len(steps) + 1))
    entries: list[Entry] = [GAME]
    path = ""
    for step in steps:
        entries.append(directory(f"{path}{component}", mode=0o777))
        entries.append(symlink(f"{path}{step}", component))
        path += component + "/"
    linkpath = "/".join(steps) + "/" + "l" * 254
    entries.append(symlink(linkpath, "/".join([".."] * len(steps))))
    entries.append(symlink("escape", linkpath + "/.." * 3))
    entries.append(file("escape/outside/x.txt", b"written outside"))
    entries.append(file("escape/outside/keep.txt", b"overwritten"))
    return entries


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under `root` (links not followed) → (kind, content or link target); paths under `skip` left out."""
    out: dict[str, tuple[str, bytes | str]] = {}
    for top, dirs, files in os.walk(root):
        here = Path(top)
        dirs[:] = [d for d in dirs if not any((here / d).is_relative_to(s) for s in skip)]
        for name in [*dirs, *files]:
            p = here / name
            if any(p.is_relative_to(s) for s in skip):
                continue
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", "")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", p.read_bytes())
            else:
                out[rel] = ("other", stat.filemode(st.st_mode))
    return out
