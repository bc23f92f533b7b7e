"""Stream sessions through boto3 over a server whose hosts run real subprocesses (ProcessHostPool)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import WaiterError

from playcast.hostproto.types import SessionEventKind
from tests.api.support import FAST, aws_error, create_app, create_group, session_id
from tests.harness import wait_until

OFFER = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"})
OFFER2 = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 98\r\n"})
DEEP_SIGNAL = "[" * 100_000  # parsing it overflows the stack unless the parser limits depth
# what a placement that fails on its offer ends with: internalError when the failure is unforeseen, invalidSignalRequest
# once the offer parser refuses such nesting itself
PLACEMENT_FAILED = ("internalError", "invalidSignalRequest")


@pytest.fixture
def ready(gls: Any, app_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    app = create_app(gls, app_dir)
    return app, create_group(gls, app["Id"])


def start(gls: Any, group: dict[str, Any], app: dict[str, Any], signal: str = OFFER, **extra: Any) -> dict[str, Any]:
    return gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Arn"], Protocol="WebRTC",
                                    SignalRequest=signal, **extra)


def wait_status(gls: Any, group: dict[str, Any], arn: str, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        s = gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=arn)
        if s["Status"] == status:
            return s
        assert time.monotonic() < deadline, (s["Status"], s.get("StatusReason"))
        time.sleep(0.05)


def test_session_lifecycle(procserver: Any, gls: Any, ready: Any) -> None:
    app, group = ready
    s = start(gls, group, app, UserId="player-1", Description="test run", ConnectionTimeoutSeconds=60,
              SessionLengthSeconds=600, AdditionalLaunchArgs=["--x"], AdditionalEnvironmentVariables={"K": "v"},
              PerformanceStatsConfiguration={"SharedWithClient": True})
    assert s["ResponseMetadata"]["HTTPStatusCode"] == 201 and s["Status"] == "ACTIVATING"
    assert s["Arn"].startswith(f"arn:aws:gameliftstreams:local:123456789012:streamsession/{group['Id']}/")
    assert s["StreamGroupId"] == group["Id"] and s["ApplicationArn"] == app["Arn"]
    gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                 WaiterConfig=FAST)
    sid = session_id(s["Arn"])
    got = gls.get_stream_session(Identifier=group["Arn"], StreamSessionIdentifier=sid)
    assert got["Status"] == "ACTIVE" and json.loads(got["SignalResponse"])["type"] == "answer"
    assert got["Location"] == "local" and got["UserId"] == "player-1" and got["Description"] == "test run"
    assert got["AdditionalLaunchArgs"] == ["--x"] and got["AdditionalEnvironmentVariables"] == {"K": "v"}
    assert got["ConnectionTimeoutSeconds"] == 60 and got["SessionLengthSeconds"] == 600
    assert got["PerformanceStatsConfiguration"] == {"SharedWithClient": True}
    assert got["SignalRequest"] == OFFER and got["ApplicationStartedAt"] >= got["CreatedAt"]

    procserver.run(procserver.pool.client_event(sid, SessionEventKind.CLIENT_CONNECTED))
    wait_status(gls, group, s["Arn"], "CONNECTED")
    with aws_error("ConflictException", 409):
        gls.create_stream_session_connection(Identifier=group["Id"], StreamSessionIdentifier=sid, SignalRequest=OFFER2)
    procserver.run(procserver.pool.client_event(sid, SessionEventKind.CLIENT_DISCONNECTED))
    wait_status(gls, group, s["Arn"], "PENDING_CLIENT_RECONNECTION")
    with aws_error("ValidationException", 400, "new offer"):
        gls.create_stream_session_connection(Identifier=group["Id"], StreamSessionIdentifier=sid, SignalRequest=OFFER)
    conn = gls.create_stream_session_connection(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                SignalRequest=OFFER2)
    assert json.loads(conn["SignalResponse"])["type"] == "answer"
    assert gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=sid)["Status"] == "ACTIVE"

    resp = gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=sid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    done = wait_status(gls, group, s["Arn"], "TERMINATED")
    assert done["StatusReason"] == "apiTerminated" and done["StreamingEndedAt"]
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=sid)  # no-op now
    assert sid not in procserver.pool.running


def test_no_client_connection_session(procserver: Any, gls: Any, ready: Any) -> None:
    app, group = ready
    s = start(gls, group, app, "NO_CLIENT_CONNECTION")
    gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                 WaiterConfig=FAST)
    got = gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"])
    assert got["SignalResponse"] == "" and got["Status"] == "ACTIVE"
    conn = gls.create_stream_session_connection(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                SignalRequest=OFFER)
    assert json.loads(conn["SignalResponse"])["type"] == "answer"
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"])


def test_waiter_fails_on_error_status(gls: Any, ready: Any) -> None:
    app, group = ready
    s = start(gls, group, app, "this is not an offer")
    with pytest.raises(WaiterError):
        gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                     WaiterConfig=FAST)
    got = gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"])
    assert (got["Status"], got["StatusReason"]) == ("ERROR", "invalidSignalRequest")


def test_terminate_activating_conflict(procserver: Any, gls: Any, ready: Any) -> None:
    app, group = ready
    first = [start(gls, group, app, "NO_CLIENT_CONNECTION")["Arn"] for _ in range(2)]
    for arn in first:
        wait_status(gls, group, arn, "ACTIVE")
    queued = start(gls, group, app, "NO_CLIENT_CONNECTION")  # both slots busy: waits for one
    time.sleep(0.3)
    assert gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=queued["Arn"])["Status"] == "ACTIVATING"
    with aws_error("ConflictException", 409, "ACTIVATING"):
        gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=queued["Arn"])
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=first[0])
    wait_status(gls, group, queued["Arn"], "ACTIVE")
    for arn in (first[1], queued["Arn"]):
        gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=arn)
        wait_status(gls, group, arn, "TERMINATED")


def test_placement_that_crashes_ends_the_session_in_error(procserver: Any, gls: Any, ready: Any) -> None:
    """A SignalRequest nested 100,000 deep makes the placement fail (the offer parser gives up); the session
    ends ERROR with a reason at once (not after the placement timeout), Get and List show it, it holds no slot."""
    app, group = ready
    s = start(gls, group, app, DEEP_SIGNAL)
    assert s["ResponseMetadata"]["HTTPStatusCode"] == 201 and s["Status"] == "ACTIVATING"
    t0 = time.monotonic()

    def ended() -> dict[str, Any] | None:
        got = gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"])
        return got if got["Status"] != "ACTIVATING" else None
    got = wait_until(ended, procserver.settings.placement_timeout_s / 2, "the session to leave ACTIVATING")
    assert time.monotonic() - t0 < procserver.settings.placement_timeout_s / 2
    assert got["Status"] == "ERROR" and got["StatusReason"] in PLACEMENT_FAILED, got
    listed = {i["Arn"]: i for i in gls.list_stream_sessions(Identifier=group["Id"])["Items"]}
    assert (listed[s["Arn"]]["Status"], listed[s["Arn"]]["StatusReason"]) == ("ERROR", got["StatusReason"])
    assert session_id(s["Arn"]) not in procserver.pool.running
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"])  # over: a no-op
    # the failed placement gave its capacity back: both slots still take sessions
    for arn in [start(gls, group, app, "NO_CLIENT_CONNECTION")["Arn"] for _ in range(2)]:
        wait_status(gls, group, arn, "ACTIVE")


def test_errors(gls: Any, ready: Any, app_dir: Path) -> None:
    app, group = ready
    with aws_error("ResourceNotFoundException", 404):
        start(gls, {"Id": "sg-000000000"}, app)
    with aws_error("ResourceNotFoundException", 404):
        gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier="a-000000000", Protocol="WebRTC",
                                 SignalRequest=OFFER)
    with aws_error("ResourceNotFoundException", 404):
        gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier="NoSuchSession")
    with aws_error("ResourceNotFoundException", 404):
        gls.get_stream_session(Identifier="sg-000000000", StreamSessionIdentifier="NoSuchSession")
    with aws_error("ResourceNotFoundException", 404):
        gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier="NoSuchSession")
    with aws_error("ResourceNotFoundException", 404):
        gls.create_stream_session_connection(Identifier=group["Id"], StreamSessionIdentifier="NoSuchSession",
                                             SignalRequest=OFFER)
    with aws_error("ResourceNotFoundException", 404):
        gls.list_stream_sessions(Identifier="sg-000000000")
    with aws_error("ValidationException", 400, "less than or equal to 3600"):
        start(gls, group, app, ConnectionTimeoutSeconds=3601)
    with aws_error("ValidationException", 400, "less than or equal to 86400"):
        start(gls, group, app, SessionLengthSeconds=86401)
    with aws_error("ValidationException", 400, "enum"):
        gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="RTMP",
                                 SignalRequest=OFFER)
    with aws_error("ValidationException", 400, "regular expression"):
        start(gls, group, app, UserId="has spaces")
    with aws_error("ValidationException", 400, "not in stream group"):
        start(gls, group, app, Locations=["local-2"])
    other = create_app(gls, app_dir, Description="other")
    with aws_error("ValidationException", 400, "not associated"):
        start(gls, group, other)
    with aws_error("ValidationException", 400, "Status"):
        gls.list_stream_sessions_by_account(Status="SLEEPING")
    with aws_error("ValidationException", 400, "NextToken"):
        gls.list_stream_sessions(Identifier=group["Id"], NextToken="bogus")
    with aws_error("ValidationException", 400):
        gls.list_stream_sessions_by_account(MaxResults=500)


def test_list_pagination_filters_and_tags(gls: Any, ready: Any, app_dir: Path) -> None:
    app, group = ready
    group2 = create_group(gls, app["Id"], Description="second")
    arns = [start(gls, group, app, "{broken")["Arn"] for _ in range(3)]
    arns2 = [start(gls, group2, app, "{broken")["Arn"] for _ in range(2)]
    for arn in arns:
        wait_status(gls, group, arn, "ERROR")
    for arn in arns2:
        wait_status(gls, group2, arn, "ERROR")
    pages = list(gls.get_paginator("list_stream_sessions").paginate(Identifier=group["Id"],
                                                                     PaginationConfig={"PageSize": 2}))
    assert [i["Arn"] for p in pages for i in p["Items"]] == arns and len(pages) == 2
    item = pages[0]["Items"][0]
    assert item["Status"] == "ERROR" and item["StatusReason"] == "invalidSignalRequest"
    assert item["ApplicationArn"] == app["Arn"] and item["Protocol"] == "WebRTC"
    everyone = [i["Arn"] for p in gls.get_paginator("list_stream_sessions_by_account").paginate(
        PaginationConfig={"PageSize": 3}) for i in p["Items"]]
    assert everyone == arns + arns2
    assert len(gls.list_stream_sessions_by_account(Status="ERROR")["Items"]) == 5
    assert gls.list_stream_sessions_by_account(Status="ACTIVE")["Items"] == []
    assert gls.list_stream_sessions(Identifier=group["Id"], ExportFilesStatus="SUCCEEDED")["Items"] == []
    gls.tag_resource(ResourceArn=arns[0], Tags={"run": "7"})
    assert gls.list_tags_for_resource(ResourceArn=arns[0])["Tags"] == {"run": "7"}
    gls.untag_resource(ResourceArn=arns[0], TagKeys=["run"])
    assert gls.list_tags_for_resource(ResourceArn=arns[0])["Tags"] == {}
    with aws_error("ResourceNotFoundException", 404):
        gls.tag_resource(ResourceArn=arns[0][:-3] + "zzz", Tags={"a": "b"})


def test_start_idempotency(procserver: Any, gls: Any, ready: Any) -> None:
    app, group = ready
    token = "start-" + "0" * 40
    a = start(gls, group, app, "NO_CLIENT_CONNECTION", ClientToken=token)
    b = start(gls, group, app, "NO_CLIENT_CONNECTION", ClientToken=token)
    assert a["Arn"] == b["Arn"]
    with aws_error("ConflictException", 409):
        start(gls, group, app, "NO_CLIENT_CONNECTION", ClientToken=token, UserId="someone-else")
    wait_status(gls, group, a["Arn"], "ACTIVE")
    assert len(gls.list_stream_sessions(Identifier=group["Id"])["Items"]) == 1
    assert len(procserver.pool.placements) == 1
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=a["Arn"])
