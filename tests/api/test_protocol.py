"""Wire-level behaviour: SigV4 refusal, model-driven validation seen over raw HTTP, AWS error shapes,
unsupported operations, unknown routes, timestamps as epoch seconds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.api.support import ACCESS_KEY, REGION, RUNTIME, SECRET_KEY, aws_error, create_app, create_group


def signed(server: Any, method: str, path: str, body: Any = None, *, query: str = "", secret: str = SECRET_KEY,
           when: dt.datetime | None = None) -> httpx.Response:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    url = server.url + path + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials(ACCESS_KEY, secret), "gameliftstreams", REGION)
    if when is None:
        signer.add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(req)
    return httpx.request(method, url, headers=dict(req.headers.items()), content=data, timeout=30)


def assert_aws_error(resp: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["x-amzn-errortype"] == code
    assert resp.headers.get("x-amzn-requestid")
    body = resp.json()
    assert isinstance(body["message"], str) and fragment in body["message"], body


def test_unsigned_and_malformed_auth_refused(procserver: Any) -> None:
    r = httpx.get(procserver.url + "/applications")
    assert_aws_error(r, 403, "MissingAuthenticationTokenException")
    r = httpx.get(procserver.url + "/applications", headers={"Authorization": "Bearer nope"})
    assert_aws_error(r, 400, "IncompleteSignatureException")
    r = httpx.post(procserver.url + "/applications", json={})
    assert_aws_error(r, 403, "MissingAuthenticationTokenException")


def test_bad_signatures_refused_through_boto3(procserver: Any) -> None:
    with aws_error("InvalidSignatureException", 403, "signature"):
        procserver.client(aws_secret_access_key="wrong-secret").list_applications()
    with aws_error("UnrecognizedClientException", 403):
        procserver.client(aws_access_key_id="AKIDSOMEONEELSE").list_applications()
    with aws_error("InvalidSignatureException", 403, "region"):
        procserver.client(region_name="us-east-1").list_applications()
    r = signed(procserver, "GET", "/applications", when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    assert_aws_error(r, 403, "InvalidSignatureException", "expired")
    assert signed(procserver, "GET", "/applications").status_code == 200


def test_tampered_body_refused(procserver: Any, app_dir: Path) -> None:
    body = json.dumps({"Description": "a", "RuntimeEnvironment": RUNTIME, "ExecutablePath": "game.sh",
                       "ApplicationSourceUri": str(app_dir)}).encode()
    url = procserver.url + "/applications"
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "gameliftstreams", REGION).add_auth(req)
    r = httpx.post(url, headers=dict(req.headers.items()), content=body.replace(b'"a"', b'"b"'))
    assert_aws_error(r, 403, "InvalidSignatureException")
    assert procserver.client().list_applications()["Items"] == []


@pytest.mark.parametrize("method, path, query, body, fragment", [
    ("GET", "/applications", "MaxResults=0", None, "greater than or equal to 1"),
    ("GET", "/applications", "MaxResults=101", None, "less than or equal to 100"),
    ("GET", "/applications", "MaxResults=ten", None, "not an integer"),
    ("POST", "/applications", "", {"Description": "x"}, "must not be null"),
    ("POST", "/applications", "", {"Description": "", "RuntimeEnvironment": RUNTIME, "ExecutablePath": "g",
                                   "ApplicationSourceUri": "/x"}, "greater than or equal to 1"),
    ("POST", "/applications", "", {"Description": "d", "RuntimeEnvironment": {"Type": "UBUNTU", "Version": 22},
                                   "ExecutablePath": "g", "ApplicationSourceUri": "/x"}, "must be a string"),
    ("POST", "/applications", "", {"Description": "d", "RuntimeEnvironment": RUNTIME, "ExecutablePath": "g",
                                   "ApplicationSourceUri": "/x", "ClientToken": "short"}, "greater than or equal to 32"),
    ("POST", "/streamgroups", "", {"Description": "g", "StreamClass": "gen4n_high", "LocationConfigurations": []},
     "greater than or equal to 1"),
    ("POST", "/streamgroups", "", {"Description": "g", "StreamClass": "gen4n_high",
                                   "LocationConfigurations": [{"LocationName": "local", "AlwaysOnCapacity": -1}]},
     "greater than or equal to 0"),
    ("POST", "/streamgroups/sg-123456789/streamsessions", "", {"Protocol": "WebRTC", "SignalRequest": "x",
                                                               "ApplicationIdentifier": "a-1",
                                                               "ConnectionTimeoutSeconds": 0},
     "greater than or equal to 1"),
    ("POST", "/streamgroups/sg-123456789/streamsessions", "", {"Protocol": "WebRTC", "SignalRequest": "",
                                                               "ApplicationIdentifier": "a-1"}, "SignalRequest"),
    ("POST", "/tags/arn%3Aaws%3Agameliftstreams%3Alocal%3A123456789012%3Aapplication%2Fa-1", "", {"Tags": {}},
     "greater than or equal to 1"),
    ("DELETE", "/streamgroups/sg-123456789/locations", "", None, "must not be null"),
])
def test_raw_http_validation(procserver: Any, method: str, path: str, query: str, body: Any, fragment: str) -> None:
    assert_aws_error(signed(procserver, method, path, body, query=query), 400, "ValidationException", fragment)


def test_serialization_and_unknown_routes(procserver: Any) -> None:
    assert_aws_error(signed(procserver, "POST", "/applications", b"{not json"), 400, "SerializationException")
    assert_aws_error(signed(procserver, "POST", "/applications", b"[1, 2]"), 400, "SerializationException")
    # a \u escape naming a lone surrogate (the validation message echoing it was a 500)
    for field in ("Description", "ExecutablePath"):
        body = {"Description": "d", "RuntimeEnvironment": RUNTIME, "ExecutablePath": "g", "ApplicationSourceUri": "/x",
                field: "\ud800"}
        assert_aws_error(signed(procserver, "POST", "/applications", body), 400, "SerializationException",
                         "lone surrogate")
    assert_aws_error(signed(procserver, "GET", "/applications/a-1/widgets"), 404, "UnknownOperationException")
    assert_aws_error(signed(procserver, "PUT", "/applications"), 404, "UnknownOperationException", "method")


def test_unsupported_operations_answer_aws_errors(gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir)
    group = create_group(gls, app["Id"])
    with aws_error("ValidationException", 400, "not supported by playcast"):
        gls.create_stream_url(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                              UrlExpiresAfterMinutes=5, Locations=["local"])
    with aws_error("ResourceNotFoundException", 404):  # supported now (tests/api/test_session_files.py)
        gls.export_stream_session_files(Identifier=group["Id"], StreamSessionIdentifier="ABCDEFGHIJKLM",
                                        OutputUri="s3://bucket/out/")
    with aws_error("ValidationException", 400, "not supported by playcast"):
        gls.list_application_shader_caches(Identifier=app["Id"])
    with aws_error("ValidationException", 400, "not supported by playcast"):
        gls.create_stream_session_admin_shell(Identifier=group["Id"], StreamSessionIdentifier="ABCDEFGHIJKLM")
    with aws_error("ValidationException", 400, "not supported by playcast"):
        gls.list_stream_urls()


def test_timestamps_are_epoch_seconds_and_nulls_omitted(procserver: Any, app_dir: Path) -> None:
    gls = procserver.client()
    app = create_app(gls, app_dir)
    r = signed(procserver, "GET", f"/applications/{app['Id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert isinstance(doc["CreatedAt"], float | int) and abs(doc["CreatedAt"] - dt.datetime.now().timestamp()) < 60
    assert "StatusReason" not in doc and "ApplicationLogOutputUri" not in doc
    assert "status_message" not in doc and "content_dir" not in doc


def test_oversized_bodies_are_a_413_validation_exception_for_boto3(procserver: Any) -> None:
    """Over the API's 1 MiB, and over the server-wide 2 MiB: botocore reads its own error code either way."""
    gls = procserver.client(config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    for size in (3 << 19, 3 << 20):
        with aws_error("ValidationException", 413, "larger than 1048576 bytes"):
            gls.create_application(Description="x" * size, RuntimeEnvironment=RUNTIME, ExecutablePath="g",
                                   ApplicationSourceUri="/x")
    assert procserver.client().list_applications()["Items"] == []
