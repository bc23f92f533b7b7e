"""Hostile application content through the control plane: tar and zip archives and directories built to write
outside the application directory, and legitimate ones that must still work.

Each archive is built for real; each test proves that nothing outside the application directory changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from playcast.config import Settings
from playcast.control.plane import ControlPlane
from tests.control.archives import (
    GAME,
    SCRIPT,
    SENTINEL,
    Entry,
    cve_2025_4517_entries,
    directory,
    file,
    hardlink,
    issue_link_chain_entries,
    make_archive,
    make_tar,
    snapshot,
    special,
    symlink,
)
from tests.control.support import make_app_dir, wait_until

RUNTIME = {"Type": "UBUNTU", "Version": "22_04_LTS"}
FORMATS = ("tar", "zip")


class World:
    """A test's tmp dir: data dir, archives dir, and an outside dir with a sentinel file nobody may touch."""

    def __init__(self, plane: ControlPlane, tmp: Path) -> None:
        self.plane, self.tmp = plane, tmp.resolve()
        self.archives = self.tmp / "archives"
        self.archives.mkdir()
        self.outside = self.tmp / "outside"
        self.outside.mkdir()
        (self.outside / "keep.txt").write_bytes(SENTINEL)
        self.apps = plane.applications.apps_dir
        self.apps.mkdir(parents=True, exist_ok=True)
        self.db_files = tuple(self.apps.parent / f"playcast.db{s}" for s in ("", "-journal", "-wal", "-shm"))

    def archive(self, fmt: str, entries: list[Entry], stem: str = "game") -> Path:
        return make_archive(fmt, self.archives, stem, entries)

    async def ingest(self, source: Path, exe: str = "game.sh") -> tuple[str, str, str]:
        """Create an application from `source`, wait for READY/ERROR; assert nothing changed outside its
        directory (and, on ERROR, that neither it nor its .partial dir is left, and StatusReason is the AWS enum
        internalError). Returns (id, Status, StatusMessage)."""
        archives = self.apps.parent / "archives"  # the content archive of a READY application
        before = snapshot(self.tmp, skip=(*self.db_files, archives))
        app = await self.plane.applications.create({"Description": "game", "RuntimeEnvironment": RUNTIME,
                                                    "ExecutablePath": exe, "ApplicationSourceUri": str(source)})

        async def settled():  # type: ignore[no-untyped-def]
            a = await self.plane.applications.get(app["Id"])
            return a if a["Status"] in ("READY", "ERROR") else None
        done = await wait_until(settled, timeout=30)
        after = snapshot(self.tmp, skip=(*self.db_files, self.apps / app["Id"], archives))
        assert after == before, {k: after.get(k) for k in set(after) ^ set(before) | {
            k for k in after if k in before and after[k] != before[k]}}
        assert (self.outside / "keep.txt").read_bytes() == SENTINEL
        if done["Status"] == "ERROR":
            assert not (self.apps / app["Id"]).exists()
            assert not archives.exists() or list(archives.iterdir()) == []
            assert done["StatusReason"] == "internalError", done
        return app["Id"], done["Status"], done.get("StatusMessage") or ""

    async def refused(self, source: Path, *fragments: str, exe: str = "game.sh") -> str:
        """Ingest `source`; it must end ERROR with a StatusMessage holding every fragment. Returns the message."""
        _, status, reason = await self.ingest(source, exe)
        assert status == "ERROR", reason
        for fragment in fragments:
            assert fragment in reason, (fragment, reason)
        return reason

    async def accepted(self, source: Path, exe: str = "game.sh") -> Path:
        app_id, status, reason = await self.ingest(source, exe)
        assert status == "READY", reason
        return self.apps / app_id


@pytest.fixture
def world(plane: ControlPlane, tmp_path: Path) -> World:
    return World(plane, tmp_path)


# -- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["../outside/evil.txt", "sub/../../outside/evil.txt", "sub/../../../x.txt"])
async def test_dotdot_member_refused(world: World, fmt: str, name: str) -> None:
    await world.refused(world.archive(fmt, [GAME, file(name)]), repr(name), "'..'")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_absolute_member_refused(world: World, fmt: str) -> None:
    name = str(world.outside / "abs.txt")
    await world.refused(world.archive(fmt, [GAME, file(name)]), repr(name), "absolute")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["..\\outside\\evil.txt", "sub\\evil.txt", "C:/evil.txt", "c:evil.txt"])
async def test_backslash_and_drive_names_refused(world: World, fmt: str, name: str) -> None:
    reason = await world.refused(world.archive(fmt, [GAME, file(name)]), repr(name))
    assert "backslash" in reason or "drive letter" in reason, reason


# -- links ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("target", ["../../../outside", "/etc", "sub/../../x"])
async def test_symlink_escape_refused(world: World, fmt: str, target: str) -> None:
    entries = [GAME, directory("sub"), symlink("out", target), file("out/keep.txt", b"overwritten")]
    await world.refused(world.archive(fmt, entries), "'out'", "outside the application directory")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_issue_link_chain_refused(world: World, fmt: str) -> None:
    """Issue 8 item 1: `a -> .`, then `a/a/…(12)/e -> ../…(12)<outside>`, then `e/x.txt`: the name of e's
    directory collapses to `.` only after links are followed, so its target climbs out of the root."""
    await world.refused(world.archive(fmt, issue_link_chain_entries(world.outside)), "/".join(["a"] * 12) + "/e")
    assert not (world.outside / "x.txt").exists()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_top_level_link_chain_refused(world: World, fmt: str) -> None:
    """`m -> l/l/l/../../../outside` with `l -> .`: textually `outside` (inside), really three levels above the
    root. The target must be resolved through the links as built, never normalised as text first."""
    entries = [GAME, symlink("l", "."), symlink("m", "l/l/l/../../../outside"),
               file("m/x.txt", b"written outside"), file("m/keep.txt", b"overwritten")]
    await world.refused(world.archive(fmt, entries), "'m'", "outside the application directory")
    assert not (world.outside / "x.txt").exists()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_member_through_an_internal_symlink_refused(world: World, fmt: str) -> None:
    """Even a link that stays inside is never written through: `d -> sub` then `d/x.txt`."""
    entries = [GAME, directory("sub"), symlink("d", "sub"), file("d/x.txt")]
    await world.refused(world.archive(fmt, entries), "'d/x.txt'", "symbolic link")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_cve_2025_4517_shape_refused(world: World, fmt: str) -> None:
    reason = await world.refused(world.archive(fmt, cve_2025_4517_entries(world.apps)))
    assert "symbolic link" in reason, reason
    assert not (world.outside / "x.txt").exists()


async def test_hardlink_escapes_refused(world: World) -> None:
    cases = [
        (hardlink("hl", "../../outside/keep.txt"), "'..'"),
        (hardlink("hl", str(world.outside / "keep.txt")), "absolute"),
        (hardlink("hl", "missing.txt"), "not a regular file extracted before it"),
        (hardlink("hl", "l"), "not a regular file extracted before it"),  # a link to a symlink member
        (hardlink("hl", "sub"), "not a regular file extracted before it"),  # ... or to a directory
    ]
    for i, (link, why) in enumerate(cases):
        entries = [GAME, directory("sub"), symlink("l", "game.sh"), link, file("hl", b"overwritten")]
        await world.refused(make_tar(world.archives / f"hard{i}.tar.gz", entries), "'hl'", why)


async def test_hardlink_to_earlier_member_accepted(world: World) -> None:
    entries = [GAME, directory("bin"), hardlink("bin/run.sh", "game.sh")]
    content = await world.accepted(make_tar(world.archives / "hard.tar.gz", entries), exe="bin/run.sh")
    assert (content / "bin" / "run.sh").read_bytes() == SCRIPT
    assert os.access(content / "bin" / "run.sh", os.X_OK)


# -- special files and modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["chardev", "blockdev", "fifo"])
async def test_device_and_fifo_members_refused(world: World, fmt: str, kind: str) -> None:
    reason = await world.refused(world.archive(fmt, [GAME, directory("dev"), special(kind, "dev/thing")]),
                                 "'dev/thing'")
    assert "device" in reason or "FIFO" in reason, reason


@pytest.mark.parametrize("fmt", FORMATS)
async def test_setuid_setgid_sticky_bits_stripped(world: World, fmt: str) -> None:
    entries = [file("game.sh", SCRIPT, 0o6777), directory("shared", 0o3777), file("shared/tool", SCRIPT, 0o4755),
               file("shared/data.bin", b"d", 0o2666)]
    content = await world.accepted(world.archive(fmt, entries))
    for rel, want in [("game.sh", 0o755), ("shared/tool", 0o755), ("shared/data.bin", 0o644), ("shared", 0o755)]:
        assert stat.S_IMODE((content / rel).lstat().st_mode) == want, rel


# -- duplicates ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("entries", [
    [file("x"), symlink("x", "game.sh")],
    [symlink("x", "game.sh"), file("x", b"through the link")],
    [file("x", b"one"), file("x", b"two")],
    [file("x"), directory("x")],
    [directory("x"), file("x")],
    [symlink("x", "game.sh"), symlink("x", "other")],
], ids=["file+symlink", "symlink+file", "file twice", "dir over file", "file over dir", "symlink twice"])
async def test_duplicate_names_refused(world: World, fmt: str, entries: list[Entry]) -> None:
    await world.refused(world.archive(fmt, [GAME, *entries]), "member 'x", "more than once")  # zip: 'x/'


@pytest.mark.parametrize("fmt", FORMATS)
async def test_directory_listed_after_its_files_accepted(world: World, fmt: str) -> None:
    content = await world.accepted(world.archive(fmt, [GAME, file("d/f.txt", b"f"), directory("d"),
                                                       directory("d")]))
    assert (content / "d" / "f.txt").read_bytes() == b"f"


# -- bounds --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_unpacked_size_bound(world: World, settings: Settings, fmt: str) -> None:
    settings.app_max_bytes = 1 << 20
    bomb = world.archive(fmt, [GAME, file("zeros.bin", bytes(4 << 20))])
    assert bomb.stat().st_size < 64 << 10  # a small archive that unpacks to 4 MiB
    await world.refused(bomb, "'zeros.bin'", "more than 1048576 bytes", "PLAYCAST_APP_MAX_BYTES")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_member_count_bound(world: World, settings: Settings, fmt: str) -> None:
    settings.app_max_files = 50
    many = world.archive(fmt, [GAME, *(file(f"f{i}.txt") for i in range(60))])
    await world.refused(many, "more than 50", "PLAYCAST_APP_MAX_FILES")


# -- legitimate links ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_links_that_stay_inside_accepted(world: World, fmt: str) -> None:
    entries = [GAME, directory("lib"), file("lib/libfoo.so.1", b"elf"), symlink("lib/libfoo.so", "libfoo.so.1"),
               directory("assets"), symlink("assets/shared", "../lib"), symlink("run", "game.sh"),
               symlink("self", "."), symlink("later", "bin/tool"), directory("bin"), file("bin/tool", b"t")]
    content = await world.accepted(world.archive(fmt, entries), exe="run")
    assert os.readlink(content / "lib" / "libfoo.so") == "libfoo.so.1"
    assert (content / "assets" / "shared" / "libfoo.so").read_bytes() == b"elf"
    assert (content / "later").read_bytes() == b"t"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_dangling_link_that_later_escapes_refused(world: World, fmt: str) -> None:
    """`m -> x/x/x/../../../outside` stays inside while x is missing; once `x -> .` exists it points three levels
    above the root. The check that runs over the finished tree refuses it."""
    entries = [GAME, symlink("m", "x/x/x/../../../outside"), symlink("x", ".")]
    await world.refused(world.archive(fmt, entries), "'m'", "outside the application directory")


# -- directory sources (item 2) ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["../outside", "/etc", "sub/../../outside/keep.txt"])
async def test_directory_source_with_escaping_symlink_refused(world: World, target: str) -> None:
    src = make_app_dir(world.tmp / "src")
    (src / "sub").mkdir()
    (src / "link").symlink_to(target)
    await world.refused(src, "'link'", "outside the application directory")


async def test_directory_source_with_fifo_refused(world: World) -> None:
    src = make_app_dir(world.tmp / "src")
    os.mkfifo(src / "pipe")
    await world.refused(src, "'pipe'", "FIFO")


async def test_directory_source_internal_links_kept(world: World) -> None:
    src = make_app_dir(world.tmp / "src")
    (src / "lib").mkdir()
    (src / "lib" / "libfoo.so.1").write_bytes(b"elf")
    (src / "lib" / "libfoo.so").symlink_to("libfoo.so.1")
    (src / "up").symlink_to("lib/../game.sh")
    (src / "game.sh").chmod(0o4755)
    content = await world.accepted(src, exe="up")
    assert os.readlink(content / "lib" / "libfoo.so") == "libfoo.so.1"
    assert stat.S_IMODE((content / "game.sh").stat().st_mode) == 0o755
