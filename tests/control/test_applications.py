"""Application ingest through the control plane: directories, file:// URIs, archives, and what is rejected."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from playcast.config import DEMO_APP_DIR, Settings
from playcast.control.errors import ConflictError, NotFoundError, ValidationError
from playcast.control.ingest import NOT_ACCEPTED
from playcast.control.plane import ControlPlane
from tests.control.support import make_app_dir, wait_until

RUNTIME = {"Type": "UBUNTU", "Version": "22_04_LTS"}


def params(source: str, exe: str = "game.sh", **extra: object) -> dict:  # type: ignore[type-arg]
    return {"Description": "game", "RuntimeEnvironment": RUNTIME, "ExecutablePath": exe,
            "ApplicationSourceUri": source, **extra}


async def settle(plane: ControlPlane, app_id: str) -> dict:  # type: ignore[type-arg]
    async def done():  # type: ignore[no-untyped-def]
        a = await plane.applications.get(app_id)
        return a if a["Status"] in ("READY", "ERROR") else None
    return await wait_until(done)


def make_tar(path: Path, members: dict[str, bytes], modes: dict[str, int] | None = None,
             links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = (modes or {}).get(name, 0o644)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def make_zip(path: Path, members: dict[str, bytes], modes: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | stat.S_IFREG) << 16
            zf.writestr(info, data)
    return path


SCRIPT = b"#!/bin/sh\nexec sleep 1000\n"


async def test_directory_source_copied_and_ready(plane: ControlPlane, app_dir: Path) -> None:
    (app_dir / "data").mkdir()
    (app_dir / "data" / "level1.txt").write_text("hello")
    app = await plane.applications.create(params(str(app_dir)))
    assert app["Status"] == "INITIALIZED" and app["Id"].startswith("a-")
    done = await settle(plane, app["Id"])
    assert done["Status"] == "READY"
    content = plane.applications.apps_dir / app["Id"]
    assert (content / "data" / "level1.txt").read_text() == "hello"
    assert os.access(content / "game.sh", os.X_OK)
    # the copy is independent of the source
    shutil.rmtree(app_dir)
    assert (content / "game.sh").exists()


async def test_file_uri_directory(plane: ControlPlane, app_dir: Path) -> None:
    app = await plane.applications.create(params(app_dir.as_uri()))
    assert (await settle(plane, app["Id"]))["Status"] == "READY"


async def test_tar_gz_and_tgz_via_path_and_file_uri(plane: ControlPlane, tmp_path: Path) -> None:
    a = make_tar(tmp_path / "game.tar.gz", {"bin/run.sh": SCRIPT, "assets/a.txt": b"x"}, {"bin/run.sh": 0o755})
    b = shutil.copy(a, tmp_path / "game.tgz")
    for source in (str(a), Path(b).as_uri()):
        app = await plane.applications.create(params(source, "bin/run.sh"))
        assert (await settle(plane, app["Id"]))["Status"] == "READY", source
        content = plane.applications.apps_dir / app["Id"]
        assert os.access(content / "bin" / "run.sh", os.X_OK)
        assert (content / "assets" / "a.txt").read_bytes() == b"x"


async def test_zip_keeps_exec_bit(plane: ControlPlane, tmp_path: Path) -> None:
    z = make_zip(tmp_path / "game.zip", {"game/start": SCRIPT, "game/readme.txt": b"r"}, {"game/start": 0o755})
    app = await plane.applications.create(params(z.as_uri(), "game/start"))
    assert (await settle(plane, app["Id"]))["Status"] == "READY"
    content = plane.applications.apps_dir / app["Id"]
    assert os.access(content / "game" / "start", os.X_OK)
    assert not os.access(content / "game" / "readme.txt", os.X_OK)


async def test_elf_binary_accepted(plane: ControlPlane, tmp_path: Path) -> None:
    d = tmp_path / "elf"
    d.mkdir()
    shutil.copy("/bin/sleep", d / "game")
    app = await plane.applications.create(params(str(d), "game"))
    assert (await settle(plane, app["Id"]))["Status"] == "READY"


async def test_tar_traversal_rejected(plane: ControlPlane, tmp_path: Path) -> None:
    outside = tmp_path / "data" / "apps" / "evil.sh"
    t = make_tar(tmp_path / "evil.tar.gz", {"game.sh": SCRIPT, "../evil.sh": SCRIPT}, {"game.sh": 0o755})
    app = await plane.applications.create(params(str(t)))
    done = await settle(plane, app["Id"])
    assert done["Status"] == "ERROR" and done["StatusReason"] == "internalError"
    detail = await plane.applications.status_detail(app["Id"])
    assert detail and "'../evil.sh' is refused" in detail and detail == done["StatusMessage"]
    assert not outside.exists()
    assert not (plane.applications.apps_dir / app["Id"]).exists()
    assert not (plane.applications.apps_dir / f"{app['Id']}.partial").exists()


async def test_tar_absolute_and_escaping_link_rejected(plane: ControlPlane, tmp_path: Path) -> None:
    t1 = make_tar(tmp_path / "abs.tar.gz", {"game.sh": SCRIPT, "/tmp/playcast-abs-evil": b"x"}, {"game.sh": 0o755})
    t2 = make_tar(tmp_path / "link.tar.gz", {"game.sh": SCRIPT}, {"game.sh": 0o755}, links={"etc": "../../../../etc"})
    for t in (t1, t2):
        app = await plane.applications.create(params(str(t)))
        done = await settle(plane, app["Id"])
        assert done["Status"] == "ERROR", t
    assert not Path("/tmp/playcast-abs-evil").exists()


async def test_zip_traversal_rejected(plane: ControlPlane, tmp_path: Path) -> None:
    z = make_zip(tmp_path / "evil.zip", {"game.sh": SCRIPT, "../../zip-evil.sh": SCRIPT}, {"game.sh": 0o755})
    app = await plane.applications.create(params(str(z)))
    done = await settle(plane, app["Id"])
    assert done["Status"] == "ERROR"
    assert "'../../zip-evil.sh' is refused" in (await plane.applications.status_detail(app["Id"]) or "")
    assert not (tmp_path / "zip-evil.sh").exists() and not (tmp_path / "data" / "zip-evil.sh").exists()


async def test_archive_with_bad_executable_goes_error(plane: ControlPlane, tmp_path: Path) -> None:
    cases = {
        "missing": make_tar(tmp_path / "m.tar.gz", {"other.sh": SCRIPT}),
        "not-exec-format": make_tar(tmp_path / "t.tar.gz", {"game.sh": b"just text\n"}),
    }
    for name, t in cases.items():
        app = await plane.applications.create(params(str(t)))
        done = await settle(plane, app["Id"])
        assert done["Status"] == "ERROR", name
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    app = await plane.applications.create(params(str(broken)))
    assert (await settle(plane, app["Id"]))["Status"] == "ERROR"


@pytest.mark.parametrize("exe, why", [
    ("/bin/sh", "relative"), ("../game.sh", "inside"), ("sub/../../game.sh", "inside"), ("", "file"),
])
async def test_executable_path_rejected_syntactically(plane: ControlPlane, app_dir: Path, exe: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        await plane.applications.create(params(str(app_dir), exe))


async def test_directory_checks_are_immediate(plane: ControlPlane, tmp_path: Path) -> None:
    d = make_app_dir(tmp_path / "d", script="no shebang here\n")
    with pytest.raises(ValidationError, match="neither an ELF binary nor a #! script"):
        await plane.applications.create(params(str(d)))
    with pytest.raises(ValidationError, match="does not exist"):
        await plane.applications.create(params(str(d), "nope.sh"))
    (d / "escape").symlink_to("/bin/sh")
    with pytest.raises(ValidationError, match="outside"):
        await plane.applications.create(params(str(d), "escape"))
    (d / "sub").mkdir()
    with pytest.raises(ValidationError, match="not a regular file"):
        await plane.applications.create(params(str(d), "sub"))


async def test_unusable_sources(plane: ControlPlane, tmp_path: Path, app_dir: Path) -> None:
    with pytest.raises(ValidationError, match="not one this server reads"):  # no PLAYCAST_APP_SOURCE_BUCKETS
        await plane.applications.create(params("s3://bucket/game/"))
    with pytest.raises(ValidationError, match="not supported by playcast"):
        await plane.applications.create(params("https://example.com/game.zip"))
    with pytest.raises(ValidationError, match="absolute"):
        await plane.applications.create(params("relative/dir"))
    (tmp_path / "file.bin").write_bytes(b"x")
    for unusable in (tmp_path / "missing", tmp_path / "file.bin"):
        with pytest.raises(ValidationError) as info:
            await plane.applications.create(params(str(unusable)))
        assert info.value.message == NOT_ACCEPTED
    with pytest.raises(ValidationError, match="data directory"):
        await plane.applications.create(params(str(tmp_path)))  # would copy the apps dir into itself
    with pytest.raises(ValidationError, match="Linux applications only"):
        await plane.applications.create({**params(str(app_dir)), "RuntimeEnvironment": {"Type": "PROTON", "Version": "20241007"}})
    with pytest.raises(ValidationError, match="Linux applications only"):
        await plane.applications.create({**params(str(app_dir)), "RuntimeEnvironment": {"Type": "WINDOWS", "Version": "2022"}})
    assert (await plane.applications.list(None, None))["Items"] == []


async def test_update_delete_and_files_removed(plane: ControlPlane, app_dir: Path) -> None:
    app = await plane.applications.create(params(str(app_dir), ApplicationLogPaths=["logs/"]))
    await settle(plane, app["Id"])
    upd = await plane.applications.update(app["Arn"], {"Description": "renamed", "ApplicationLogPaths": []})
    assert upd["Description"] == "renamed" and upd["ApplicationLogPaths"] == []
    content = plane.applications.apps_dir / app["Id"]
    assert content.exists()
    await plane.applications.delete(app["Id"])

    async def gone():  # type: ignore[no-untyped-def]
        try:
            await plane.applications.get(app["Id"])
        except NotFoundError:
            return True
        return False
    await wait_until(gone)
    assert not content.exists()


async def test_delete_associated_conflicts(plane: ControlPlane, app_dir: Path) -> None:
    app = await plane.applications.create(params(str(app_dir)))
    await settle(plane, app["Id"])
    await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high",
                                      "DefaultApplicationIdentifier": app["Id"]})
    with pytest.raises(ConflictError, match="disassociate"):
        await plane.applications.delete(app["Id"])
    assert (await plane.applications.get(app["Id"]))["Status"] == "READY"


async def test_idempotent_create(plane: ControlPlane, app_dir: Path) -> None:
    token = "t" * 40
    a = await plane.applications.create(params(str(app_dir), ClientToken=token))
    b = await plane.applications.create(params(str(app_dir), ClientToken=token))
    assert a["Id"] == b["Id"]
    with pytest.raises(ConflictError):
        await plane.applications.create(params(str(app_dir), ClientToken=token, Description="other"))
    assert len((await plane.applications.list(None, None))["Items"]) == 1


async def test_sources_only_under_allowed_roots(plane: ControlPlane, settings: Settings, tmp_path: Path) -> None:
    """Issue 8 item 7: ApplicationSourceUri must lie (links resolved) under a configured root, the uploads dir or
    the demo; whether a refused path exists or not, the answer is the same."""
    allowed = make_app_dir(tmp_path / "allowed" / "game")
    elsewhere = make_app_dir(tmp_path / "elsewhere" / "game")
    (tmp_path / "allowed" / "to-elsewhere").symlink_to(elsewhere)
    (tmp_path / "allowed" / "to-etc").symlink_to("/etc")
    settings.app_source_roots = [tmp_path / "allowed"]
    for refused in ["/etc", "/etc/", "file:///etc", "/etc/shadow", "/nonexistent/game", str(tmp_path / "missing"),
                    str(elsewhere), elsewhere.as_uri(), str(tmp_path / "allowed" / "to-elsewhere"),
                    str(tmp_path / "allowed" / "to-etc"), str(tmp_path / "allowed" / "missing"),
                    str(tmp_path / "allowed" / "game" / ".." / ".." / "elsewhere" / "game"),
                    str(tmp_path / "allowed") + "/\x00"]:
        with pytest.raises(ValidationError) as info:
            await plane.applications.create(params(refused))
        assert info.value.message == NOT_ACCEPTED, refused
    assert (await plane.applications.list(None, None))["Items"] == []
    for accepted in [str(allowed), allowed.as_uri(), str(tmp_path / "allowed" / "." / "game")]:
        app = await plane.applications.create(params(accepted))
        assert (await settle(plane, app["Id"]))["Status"] == "READY", accepted
    settings.app_source_roots = []  # uploads and the demo stay allowed
    uploaded = make_app_dir(settings.uploads_dir / "u1")
    app = await plane.applications.create(params(str(uploaded)))
    assert (await settle(plane, app["Id"]))["Status"] == "READY"
    demo = await plane.applications.create(params(str(DEMO_APP_DIR), "playcast-demo"))
    assert (await settle(plane, demo["Id"]))["Status"] == "READY"
    with pytest.raises(ValidationError) as info:
        await plane.applications.create(params(str(allowed)))
    assert info.value.message == NOT_ACCEPTED


def test_source_roots_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLAYCAST_APP_SOURCE_ROOTS", f"{tmp_path / 'a'}{os.pathsep}{os.pathsep}{tmp_path / 'b'}")
    s = Settings(data_dir=tmp_path / "data")
    assert s.app_source_roots == [tmp_path / "a", tmp_path / "b"]
    assert s.source_roots == [tmp_path / "a", tmp_path / "b", tmp_path / "data" / "uploads", DEMO_APP_DIR]
    monkeypatch.setenv("PLAYCAST_APP_SOURCE_ROOTS", "relative/games")
    with pytest.raises(ValueError, match="absolute"):
        Settings()
