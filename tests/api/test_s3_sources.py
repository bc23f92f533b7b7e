"""ApplicationSourceUri s3://bucket/prefix against a real S3 (moto_server): the objects under the prefix become the
application (packed into its content archive and launched); a missing bucket, an empty or missing prefix, an
unreachable endpoint end in ERROR with a StatusReason and leave nothing; a bucket not allowed is refused at once."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import WaiterError

from tests.api.support import (
    FAST,
    RUNTIME,
    aws_error,
    create_group,
    make_settings,
    procpool_server,
    start_active_session,
    wire_json,
)
from tests.s3_support import MotoServer

GAME = b"#!/bin/sh\nexec sleep 1000\n"


@pytest.fixture
def s3_world(tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Path]]:
    for k, v in moto.env().items():
        if k != "PLAYCAST_S3_ENDPOINT_URL":
            monkeypatch.setenv(k, v)
    s3 = moto.client()
    for bucket in ("games", "empty-games"):
        if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="games", Key="demo/v1/game.sh", Body=GAME)
    s3.put_object(Bucket="games", Key="demo/v1/data/level1.txt", Body=b"level one\n")
    s3.put_object(Bucket="games", Key="demo/v10/other.txt", Body=b"not under demo/v1/")
    settings = make_settings(tmp_path, s3_endpoint_url=moto.url,
                             app_source_buckets=["games", "empty-games", "no-such-bucket"])
    with procpool_server(settings, slots=1) as handle:
        yield handle.client(), settings.data_dir


def _failed(gls: Any, app: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(WaiterError):
        gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=FAST)
    return wire_json(gls, "GetApplication", Identifier=app["Id"])


def _create(gls: Any, uri: str) -> dict[str, Any]:
    return gls.create_application(Description="s3 game", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                                  ApplicationSourceUri=uri)


def _leftovers(data_dir: Path) -> list[str]:
    """What ingest left in the data dir's apps and archives (nothing for a failed one)."""
    found = []
    for sub in ("apps", "archives"):
        root = data_dir / sub
        if root.exists():
            found += [f"{sub}/{p.name}" for p in root.iterdir()]
    return found


def test_an_s3_prefix_becomes_the_application_and_launches(s3_world: tuple[Any, Path]) -> None:
    gls, data_dir = s3_world
    app = _create(gls, "s3://games/demo/v1/")
    gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=FAST)
    got = gls.get_application(Identifier=app["Id"])
    assert got["Status"] == "READY" and got["ApplicationSourceUri"] == "s3://games/demo/v1/"
    archives = list((data_dir / "archives").glob("*.tar.gz"))
    assert len(archives) == 1
    with tarfile.open(archives[0]) as tf:  # exactly the objects under the prefix, the executable executable
        members = {m.name: m for m in tf.getmembers()}
        assert sorted(members) == ["data", "data/level1.txt", "game.sh"]
        assert members["game.sh"].mode & 0o100
        assert tf.extractfile("game.sh").read() == GAME  # type: ignore[union-attr]

    group = create_group(gls, app["Id"])
    sid = start_active_session(gls, group["Id"], app["Id"])  # the executable runs
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=sid)


@pytest.mark.parametrize("uri, words", [
    ("s3://no-such-bucket/game", "cannot read ApplicationSourceUri s3://no-such-bucket/game: the bucket does not exist"),
    ("s3://empty-games", "ApplicationSourceUri s3://empty-games holds no objects"),
    ("s3://games/no/such/prefix", "ApplicationSourceUri s3://games/no/such/prefix holds no objects"),
])
def test_a_missing_or_empty_s3_source_is_an_error_and_leaves_nothing(s3_world: tuple[Any, Path], uri: str,
                                                                      words: str) -> None:
    gls, data_dir = s3_world
    app = _create(gls, uri)
    got = _failed(gls, app)
    assert got["Status"] == "ERROR" and got["StatusReason"] == "internalError", got
    assert words in got["StatusMessage"], got["StatusMessage"]
    assert _leftovers(data_dir) == []


def test_an_s3_prefix_without_the_executable_is_an_error(s3_world: tuple[Any, Path]) -> None:
    gls, data_dir = s3_world
    app = gls.create_application(Description="s3 game", RuntimeEnvironment=RUNTIME, ExecutablePath="missing.sh",
                                 ApplicationSourceUri="s3://games/demo/v1")
    got = _failed(gls, app)
    assert got["StatusReason"] == "internalError"
    assert "ExecutablePath 'missing.sh' does not exist" in got["StatusMessage"]
    assert _leftovers(data_dir) == []


def test_a_bucket_the_server_does_not_read_is_refused_at_once(s3_world: tuple[Any, Path]) -> None:
    gls, data_dir = s3_world
    with aws_error("ValidationException", 400, match="PLAYCAST_APP_SOURCE_BUCKETS"):
        _create(gls, "s3://someone-elses-bucket/game")
    with aws_error("ValidationException", 400, match="s3://bucket or s3://bucket/prefix"):
        _create(gls, "s3://Bad_Bucket/game")
    assert gls.list_applications()["Items"] == []


def test_an_unreachable_s3_endpoint_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.harness import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = make_settings(tmp_path, s3_endpoint_url=f"http://127.0.0.1:{free_port()}", app_source_buckets=["*"])
    with procpool_server(settings, slots=1) as handle:
        gls = handle.client()
        got = _failed(gls, _create(gls, "s3://games/demo"))
        assert got["Status"] == "ERROR" and "cannot read ApplicationSourceUri s3://games/demo" in got["StatusMessage"]
        assert _leftovers(settings.data_dir) == []

