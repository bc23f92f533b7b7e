"""A session's files through stock boto3 against the whole app (a real host over the host protocol) and a real S3
(moto_server): ExportStreamSessionFiles marks the export PENDING, the session's end writes the zip of its
ApplicationLogPaths and the game's output to OutputUri (ExportFilesMetadata SUCCEEDED), the ApplicationLogPaths go
to ApplicationLogOutputUri (LogFileLocationUri); a link out of the session's files is refused; bad targets fail."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import (
    AssembledServer,
    aws_error,
    create_app,
    create_group,
    make_settings,
    start_active_session,
    start_assembled,
)
from tests.control.support import make_app_dir
from tests.harness import wait_until
from tests.s3_support import MotoServer

pytestmark = pytest.mark.netns

GAME = """#!/bin/sh
mkdir -p "$HOME/logs" app-logs
echo "home log of $$" > "$HOME/logs/game.log"
echo "not a log" > "$HOME/logs/notes.bin"
ln -s /etc/hostname "$HOME/logs/escape.log"
echo "run log" > app-logs/run.txt
echo "the game says hello" >&2
touch "$HOME/ready"
exec sleep 1000
"""
LOG_PATHS = ["$HOME/logs", "app-logs/run.txt", "~/missing.log"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[tuple[AssembledServer, Any]]:
    tmp = tmp_path_factory.mktemp("files")
    s3 = moto.client()
    for bucket in ("exports", "logs"):
        s3.create_bucket(Bucket=bucket)
    settings = make_settings(tmp, slots=2, width=320, height=240, fps=15, bitrate_kbps=300, encoder="x264",
                             placement_timeout_s=30, s3_endpoint_url=moto.url,
                             output_buckets=["exports", "logs", "no-such-bucket"])
    with pytest.MonkeyPatch.context() as env:
        for k, v in moto.env().items():  # the server's S3 credentials, from the usual AWS environment
            env.setenv(k, v)
        srv = start_assembled(settings)
        try:
            yield srv, s3
        finally:
            srv.stop()


def _session(srv: AssembledServer, tmp: Path) -> tuple[Any, str, str]:
    gls = srv.client()
    app = create_app(gls, make_app_dir(tmp, GAME), ApplicationLogPaths=LOG_PATHS,
                     ApplicationLogOutputUri="s3://logs/playcast/")
    group = create_group(gls, app["Id"])
    sid = start_active_session(gls, group["Id"], app["Id"])
    tree = srv.settings.data_dir / "apps" / app["Id"]  # the embedded host runs the server's tree
    wait_until(lambda: (tree / "app-logs" / "run.txt").exists(), 30, "the game wrote its logs")
    return gls, group["Id"], sid


def _zip(s3: Any, uri: str) -> zipfile.ZipFile:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def _settled_export(gls: Any, group: str, sid: str) -> dict[str, Any]:
    return wait_until(lambda: (m := gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
                               .get("ExportFilesMetadata")) and m["Status"] != "PENDING" and m, 60, "export done")


def test_export_and_logs_are_written_when_the_session_ends(world: tuple[AssembledServer, Any],
                                                           tmp_path: Path) -> None:
    srv, s3 = world
    gls, group, sid = _session(srv, tmp_path / "game")
    assert "ExportFilesMetadata" not in gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
    gls.export_stream_session_files(Identifier=group, StreamSessionIdentifier=sid, OutputUri="s3://exports/run1.zip")
    got = gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
    assert got["ExportFilesMetadata"] == {"Status": "PENDING", "OutputUri": "s3://exports/run1.zip"}
    pending = gls.list_stream_sessions(Identifier=group, ExportFilesStatus="PENDING")["Items"]
    assert [i["Arn"] for i in pending] == [got["Arn"]] and pending[0]["ExportFilesMetadata"]["Status"] == "PENDING"

    gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
    meta = _settled_export(gls, group, sid)
    assert meta == {"Status": "SUCCEEDED", "OutputUri": "s3://exports/run1.zip"}, meta
    with _zip(s3, "s3://exports/run1.zip") as zf:
        names = sorted(zf.namelist())
        assert names == ["MANIFEST.txt", "app/app-logs/run.txt", "home/logs/game.log", "session/app.log"], names
        assert zf.read("home/logs/game.log").startswith(b"home log of ")
        assert zf.read("app/app-logs/run.txt") == b"run log\n"
        assert b"the game says hello" in zf.read("session/app.log")
        manifest = zf.read("MANIFEST.txt").decode()
        assert "refused home/logs/escape.log: it leads out of the session's files" in manifest  # the link out
        assert "missing '~/missing.log'" in manifest
    assert [i["Arn"] for i in gls.list_stream_sessions(Identifier=group, ExportFilesStatus="SUCCEEDED")["Items"]] \
        == [got["Arn"]]

    ended = wait_until(lambda: gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
                       .get("LogFileLocationUri"), 30, "LogFileLocationUri")
    app_id = got["ApplicationArn"].rsplit("/", 1)[-1]
    assert ended == f"s3://logs/playcast/{app_id}/{sid}/logs.zip"
    with _zip(s3, ended) as zf:  # the ApplicationLogPaths only: the game's own output is an export's
        assert sorted(zf.namelist()) == ["MANIFEST.txt", "app/app-logs/run.txt", "home/logs/game.log"]


EXITS = """#!/bin/sh
mkdir -p "$HOME/logs" app-logs
echo "home log of $$" > "$HOME/logs/game.log"
echo "run log" > app-logs/run.txt
while [ ! -e go ]; do sleep 0.1; done
echo "the game is done" >&2
exit 3
"""


def test_a_game_that_exits_by_itself_still_has_its_logs_and_export_written(world: tuple[AssembledServer, Any],
                                                                          tmp_path: Path) -> None:
    srv, s3 = world
    gls = srv.client()
    app = create_app(gls, make_app_dir(tmp_path / "game", EXITS), ApplicationLogPaths=LOG_PATHS,
                     ApplicationLogOutputUri="s3://logs/exits/")
    group = create_group(gls, app["Id"])["Id"]
    sid = start_active_session(gls, group, app["Id"])
    gls.export_stream_session_files(Identifier=group, StreamSessionIdentifier=sid, OutputUri="s3://exports/exit.zip")
    tree = srv.settings.data_dir / "apps" / app["Id"]  # the embedded host runs the server's tree
    wait_until(lambda: (tree / "app-logs" / "run.txt").exists(), 30, "the game wrote its logs")
    (tree / "go").touch()  # now the game exits, code 3
    ended = wait_until(lambda: (g := gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid))
                       ["Status"] == "TERMINATED" and g, 60, "the session ended by the game's exit")
    assert ended["StatusReason"] == "applicationExit", ended
    assert _settled_export(gls, group, sid) == {"Status": "SUCCEEDED", "OutputUri": "s3://exports/exit.zip"}
    with _zip(s3, "s3://exports/exit.zip") as zf:
        assert "home/logs/game.log" in zf.namelist() and b"the game is done" in zf.read("session/app.log")
    logs = wait_until(lambda: gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
                      .get("LogFileLocationUri"), 30, "LogFileLocationUri")
    with _zip(s3, logs) as zf:
        assert sorted(zf.namelist()) == ["MANIFEST.txt", "app/app-logs/run.txt", "home/logs/game.log"]


def test_bad_export_requests_are_refused_and_a_missing_bucket_fails(world: tuple[AssembledServer, Any],
                                                                    tmp_path: Path) -> None:
    srv, _s3 = world
    gls, group, sid = _session(srv, tmp_path / "game")
    with aws_error("ValidationException", 400, match="PLAYCAST_OUTPUT_BUCKETS"):
        gls.export_stream_session_files(Identifier=group, StreamSessionIdentifier=sid,
                                        OutputUri="s3://someone-else/x.zip")
    with aws_error("ResourceNotFoundException", 404):
        gls.export_stream_session_files(Identifier=group, StreamSessionIdentifier="ABCDEFGHIJ123",
                                        OutputUri="s3://exports/x.zip")
    gls.export_stream_session_files(Identifier=group, StreamSessionIdentifier=sid,
                                    OutputUri="s3://no-such-bucket/sessions/")
    meta = gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)["ExportFilesMetadata"]
    assert meta["Status"] == "PENDING" and meta["OutputUri"].startswith("s3://no-such-bucket/sessions/")
    assert meta["OutputUri"].endswith(f"-{group}-{sid}.zip")  # a name made from the session, as GameLift does
    gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
    meta = _settled_export(gls, group, sid)
    assert meta["Status"] == "FAILED" and "NoSuchBucket" in meta["StatusReason"], meta
    with aws_error("ValidationException", 400, match="files can be exported only"):
        wait_until(lambda: gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)["Status"]
                   == "TERMINATED", 30, "terminated")
        gls.export_stream_session_files(Identifier=group, StreamSessionIdentifier=sid,
                                        OutputUri="s3://exports/late.zip")
