"""Hostile archives and refused sources as a user meets them: a stock boto3 CreateApplication against the real
server, then GetApplication; the application ends ERROR (StatusReason internalError) with a StatusMessage that names the member, and nothing
outside the application directory changed."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from playcast.control.ingest import NOT_ACCEPTED
from tests.api.support import RUNTIME, ServerHandle, aws_error, create_app, wire_json
from tests.control.archives import (
    GAME,
    SENTINEL,
    Entry,
    cve_2025_4517_entries,
    file,
    issue_link_chain_entries,
    make_tar,
    make_zip,
    snapshot,
    symlink,
)
from tests.control.support import make_app_dir


def refused_through_the_api(procserver: ServerHandle, tmp_path: Path, archive: Path) -> str:
    """CreateApplication from `archive`; wait for ERROR; check nothing outside the app dir changed. The reason."""
    gls = procserver.client()
    data = procserver.settings.data_dir.resolve()
    apps = data / "apps"
    apps.mkdir(parents=True, exist_ok=True)  # made by the first ingest; here before the snapshot
    skip = (apps, *(data / f"playcast.db{s}" for s in ("", "-journal", "-wal", "-shm")))
    before, apps_before = snapshot(tmp_path, skip), sorted(os.listdir(apps))
    app = gls.create_application(Description="hostile", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                                 ApplicationSourceUri=str(archive))
    deadline = time.monotonic() + 30
    while (got := gls.get_application(Identifier=app["Id"]))["Status"] not in ("READY", "ERROR"):
        assert time.monotonic() < deadline, got["Status"]
        time.sleep(0.1)
    assert snapshot(tmp_path, skip) == before
    assert (tmp_path / "outside" / "keep.txt").read_bytes() == SENTINEL
    assert not (tmp_path / "outside" / "x.txt").exists()
    assert sorted(os.listdir(apps)) == apps_before  # neither the content nor its .partial dir, nothing else
    assert got["Status"] == "ERROR" and got["StatusReason"] == "internalError", got  # the AWS enum, exactly
    return wire_json(gls, "GetApplication", Identifier=app["Id"])["StatusMessage"]


def outside_and_archives(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_bytes(SENTINEL)
    (tmp_path / "archives").mkdir()
    return tmp_path / "archives"


def test_issue_link_chain_zip_ends_error(procserver: ServerHandle, tmp_path: Path) -> None:
    archive = make_zip(outside_and_archives(tmp_path) / "chain.zip", issue_link_chain_entries(tmp_path / "outside"))
    reason = refused_through_the_api(procserver, tmp_path, archive)
    assert reason == ("archive member 'a/a/a/a/a/a/a/a/a/a/a/a/e' is refused: its path goes "
                      "through the symbolic link 'a'; content is never written through a link")


def test_cve_2025_4517_tar_ends_error(procserver: ServerHandle, tmp_path: Path) -> None:
    archives = outside_and_archives(tmp_path)
    entries = cve_2025_4517_entries(procserver.settings.data_dir.resolve() / "apps")
    reason = refused_through_the_api(procserver, tmp_path, make_tar(archives / "cve.tar", entries))
    assert reason.startswith("archive member 'a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/lll")
    assert reason.endswith("is refused: its path goes through the symbolic link 'a'; content is never written "
                           "through a link")


def test_duplicate_name_zip_ends_error(procserver: ServerHandle, tmp_path: Path) -> None:
    entries: list[Entry] = [GAME, file("data.txt"), symlink("data.txt", "game.sh")]
    reason = refused_through_the_api(procserver, tmp_path, make_zip(outside_and_archives(tmp_path) / "dup.zip",
                                                                    entries))
    assert reason == ("archive member 'data.txt' is refused: the name appears more than once "
                      "(as a file, then as a symbolic link)")


def test_sources_outside_the_roots_get_one_answer(gls: Any, procserver: ServerHandle, tmp_path: Path) -> None:
    """/etc, a path that does not exist and a link under a root to outside it: the same ValidationException."""
    outside = make_app_dir(Path(tempfile.mkdtemp(prefix="playcast-not-a-root-")))  # not under the run's tmp dir
    try:
        (tmp_path / "to-outside").symlink_to(outside)
        for refused in ("/etc", "/etc/passwd", "file:///etc", str(tmp_path / "missing"), "/nonexistent/game",
                        str(outside), str(tmp_path / "to-outside")):
            with aws_error("ValidationException", 400, NOT_ACCEPTED):
                gls.create_application(Description="x", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                                       ApplicationSourceUri=refused)
        assert gls.list_applications()["Items"] == []
        create_app(gls, make_app_dir(tmp_path / "game"))  # under the root the server was given
    finally:
        shutil.rmtree(outside)
