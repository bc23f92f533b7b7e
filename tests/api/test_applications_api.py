"""Applications through a stock boto3 client: create/get/list/update/delete, waiters, errors, pagination, tags."""

from __future__ import annotations

import base64
import datetime as dt
import io
import tarfile
from pathlib import Path
from typing import Any

from playcast.control.ingest import NOT_ACCEPTED
from tests.api.support import FAST, RUNTIME, aws_error, create_app, create_group, wire_json


def test_create_get_update_delete(gls: Any, app_dir: Path) -> None:
    app = gls.create_application(Description="my game", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                                 ApplicationSourceUri=app_dir.as_uri(), ApplicationLogPaths=["logs/"],
                                 Tags={"team": "qa"})
    assert app["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert app["Arn"] == f"arn:aws:gameliftstreams:local:123456789012:application/{app['Id']}"
    assert app["Status"] == "INITIALIZED" and isinstance(app["CreatedAt"], dt.datetime)
    gls.get_waiter("application_ready").wait(Identifier=app["Arn"], WaiterConfig=FAST)
    got = gls.get_application(Identifier=app["Id"])
    assert got["Status"] == "READY" and got["RuntimeEnvironment"] == RUNTIME
    assert got["ApplicationLogPaths"] == ["logs/"] and got["AssociatedStreamGroups"] == []
    assert got["ReplicationStatuses"] == [{"Location": "local", "Status": "COMPLETED"}]
    assert gls.list_tags_for_resource(ResourceArn=app["Arn"])["Tags"] == {"team": "qa"}
    upd = gls.update_application(Identifier=app["Arn"], Description="renamed",
                                 ApplicationLogOutputUri="s3://my-bucket/logs/")
    assert upd["Description"] == "renamed" and upd["ApplicationLogOutputUri"] == "s3://my-bucket/logs/"
    assert upd["LastUpdatedAt"] >= upd["CreatedAt"]
    resp = gls.delete_application(Identifier=app["Id"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    gls.get_waiter("application_deleted").wait(Identifier=app["Id"], WaiterConfig=FAST)
    with aws_error("ResourceNotFoundException", 404):
        gls.get_application(Identifier=app["Id"])


def test_application_ready_waiter_fails_on_error(gls: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tf:
        info = tarfile.TarInfo("../../escape.sh")
        data = b"#!/bin/sh\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    app = gls.create_application(Description="bad", RuntimeEnvironment=RUNTIME, ExecutablePath="escape.sh",
                                 ApplicationSourceUri=str(bad))
    from botocore.exceptions import WaiterError
    try:
        gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=FAST)
    except WaiterError as exc:
        assert "ERROR" in str(exc)
    else:
        raise AssertionError("waiter should fail")
    got = gls.get_application(Identifier=app["Id"])
    assert got["Status"] == "ERROR"
    assert got["StatusReason"] == "internalError"
    assert wire_json(gls, "GetApplication", Identifier=app["Id"])["StatusMessage"] == ("archive member '../../escape.sh' is refused: its name has a '..' "
                                   "component, which would climb out of the application directory")


def test_errors(gls: Any, app_dir: Path, tmp_path: Path) -> None:
    with aws_error("ResourceNotFoundException", 404):
        gls.get_application(Identifier="a-000000000")
    with aws_error("ResourceNotFoundException"):
        gls.update_application(Identifier="arn:aws:gameliftstreams:local:123456789012:application/a-000000000",
                               Description="x")
    with aws_error("ResourceNotFoundException"):
        gls.delete_application(Identifier="a-000000000")
    with aws_error("ValidationException", 400, "Linux applications only"):
        gls.create_application(Description="x", RuntimeEnvironment={"Type": "PROTON", "Version": "20241007"},
                               ExecutablePath="game.exe", ApplicationSourceUri=str(app_dir))
    with aws_error("ValidationException", 400, "PLAYCAST_APP_SOURCE_BUCKETS"):  # no bucket allowed here
        gls.create_application(Description="x", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri="s3://bucket/prefix/")
    for refused in (str(tmp_path / "missing"), "/etc", "file:///etc", "/nonexistent"):  # one answer for all
        with aws_error("ValidationException", 400, NOT_ACCEPTED):
            gls.create_application(Description="x", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                                   ApplicationSourceUri=refused)
    with aws_error("ValidationException", 400, "inside"):
        gls.create_application(Description="x", RuntimeEnvironment=RUNTIME, ExecutablePath="../game.sh",
                               ApplicationSourceUri=str(app_dir))
    # model constraints that botocore does not check client-side
    with aws_error("ValidationException", 400, "less than or equal to 80"):
        gls.create_application(Description="x" * 81, RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri=str(app_dir))
    with aws_error("ValidationException", 400, "regular expression"):
        gls.create_application(Description="bad<chars>", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri=str(app_dir))
    with aws_error("ValidationException", 400, "less than or equal to 10"):
        gls.create_application(Description="x", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri=str(app_dir), ApplicationLogPaths=["l"] * 11)
    with aws_error("ValidationException", 400):
        gls.get_application(Identifier="not valid!")
    assert gls.list_applications()["Items"] == []


def test_delete_associated_conflict(gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir)
    group = create_group(gls, app["Id"])
    with aws_error("ConflictException", 409, "disassociate"):
        gls.delete_application(Identifier=app["Id"])
    gls.delete_stream_group(Identifier=group["Id"])
    gls.get_waiter("stream_group_deleted").wait(Identifier=group["Id"], WaiterConfig=FAST)
    gls.delete_application(Identifier=app["Id"])


def test_pagination(gls: Any, app_dir: Path) -> None:
    ids = [create_app(gls, app_dir, wait=False, Description=f"game-{i}")["Id"] for i in range(7)]
    page = gls.list_applications(MaxResults=3)
    assert len(page["Items"]) == 3 and page["NextToken"]
    seen: list[str] = []
    for p in gls.get_paginator("list_applications").paginate(PaginationConfig={"PageSize": 3}):
        seen += [i["Id"] for i in p["Items"]]
    assert seen == ids
    item = page["Items"][0]
    assert set(item) >= {"Arn", "Id", "Description", "Status", "CreatedAt", "LastUpdatedAt", "RuntimeEnvironment"}
    with aws_error("ValidationException", 400):
        gls.list_applications(MaxResults=101)
    with aws_error("ValidationException", 400, "NextToken"):
        gls.list_applications(NextToken="bogus")
    lone_surrogate = base64.urlsafe_b64encode(b'[1, "\\ud800"]').decode()  # SQL could not bind it: was a 500
    with aws_error("ValidationException", 400, "NextToken"):
        gls.list_applications(NextToken=lone_surrogate)


def test_client_token_idempotency(gls: Any, app_dir: Path) -> None:
    token = "tok-" + "x" * 40
    a = gls.create_application(Description="g", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri=str(app_dir), ClientToken=token)
    b = gls.create_application(Description="g", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri=str(app_dir), ClientToken=token)
    assert a["Id"] == b["Id"]
    with aws_error("ConflictException", 409, "ClientToken"):
        gls.create_application(Description="other", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                               ApplicationSourceUri=str(app_dir), ClientToken=token)
    # botocore fills in a fresh ClientToken when none is given: two plain calls make two apps
    create_app(gls, app_dir, wait=False)
    create_app(gls, app_dir, wait=False)
    assert len(gls.list_applications()["Items"]) == 3


def test_tags(gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir, wait=False)
    gls.tag_resource(ResourceArn=app["Arn"], Tags={"a": "1", "b": "2"})
    gls.untag_resource(ResourceArn=app["Arn"], TagKeys=["a"])
    assert gls.list_tags_for_resource(ResourceArn=app["Arn"])["Tags"] == {"b": "2"}
    missing = "arn:aws:gameliftstreams:local:123456789012:application/a-000000000"
    with aws_error("ResourceNotFoundException", 404):
        gls.tag_resource(ResourceArn=missing, Tags={"a": "1"})
    with aws_error("ResourceNotFoundException", 404):
        gls.list_tags_for_resource(ResourceArn=missing)
    with aws_error("ValidationException", 400):
        gls.tag_resource(ResourceArn=app["Arn"], Tags={"k" * 129: "v"})
    with aws_error("ValidationException", 400):
        gls.list_tags_for_resource(ResourceArn="arn:aws:s3:::bucket")
