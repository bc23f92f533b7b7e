"""`playcast up` as a user runs it: flags, fixed credentials from the environment, credentials.json, /healthz,
the demo registered in a default stream group with a warm slot, and a clean stop."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest

from playcast.control.ingest import NOT_ACCEPTED
from tests.api.support import aws_error, create_app
from tests.control.support import make_app_dir
from tests.harness import playcast_up, wait_until

KEY_ID = "PCAKTESTFIXEDKEY0001"
SECRET = "fixed-secret-for-the-cli-test-0123456789"


def test_up_with_fixed_credentials_writes_credentials_and_serves(tmp_path: Path) -> None:
    from_env, from_flag = make_app_dir(tmp_path / "env-root" / "game"), make_app_dir(tmp_path / "flag-root" / "game")
    env = {"PLAYCAST_ACCESS_KEY_ID": KEY_ID, "PLAYCAST_SECRET_ACCESS_KEY": SECRET,
           "PLAYCAST_APP_SOURCE_ROOTS": str(tmp_path / "env-root")}
    with playcast_up("--slots", "1", "--app-source-root", str(tmp_path / "flag-root"), env=env) as pc:
        creds = json.loads((pc.data_dir / "credentials.json").read_text())
        assert creds["endpoint_url"] == pc.base_url
        assert creds["aws_access_key_id"] == KEY_ID and creds["aws_secret_access_key"] == SECRET
        assert creds["region_name"] == "local" and len(creds["admin_token"]) >= 32
        assert (pc.data_dir / "credentials.json").stat().st_mode & 0o077 == 0  # owner-only
        with urllib.request.urlopen(pc.base_url + "/healthz") as resp:
            assert resp.status == 200
        assert "/login?token=" in pc.login_url

        client = pc.boto3()
        apps = client.list_applications()["Items"]
        assert [a["Description"] for a in apps] == ["playcast-demo"] and apps[0]["Status"] == "READY"
        group = client.list_stream_groups()["Items"][0]
        detail = client.get_stream_group(Identifier=group["Id"])
        assert detail["Status"] == "ACTIVE" and detail["DefaultApplication"]["Id"] == apps[0]["Id"]
        assert detail["LocationStates"][0]["AlwaysOnCapacity"] == 1

        # application sources: the env's root and the flag's root are accepted, anything else gets one answer
        for source in (from_env, from_flag):
            create_app(client, source, Description=source.parent.name)
        for refused in ("/etc", str(tmp_path / "missing"), str(tmp_path)):
            with aws_error("ValidationException", 400, NOT_ACCEPTED):
                create_app(client, Path(refused), wait=False)

        wrong = boto3.client("gameliftstreams", endpoint_url=pc.base_url, region_name="local",
                             aws_access_key_id=KEY_ID, aws_secret_access_key="not-the-secret")
        with pytest.raises(botocore.exceptions.ClientError) as err:
            wrong.list_applications()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_sigterm_does_not_wait_for_placements_or_the_requests_held_on_them() -> None:
    """SIGTERM while a placement waits for a slot and a browser's POST /v1/play/sessions is held on another one:
    `playcast up` exits within 5 s, the held request gets an answer, and no session process is left behind
    (playcast_up's leak check)."""
    with playcast_up("--slots", "1", env={"PLAYCAST_PLACEMENT_TIMEOUT_S": "300"}) as pc:
        client = pc.boto3()
        group = client.list_stream_groups()["Items"][0]["Id"]
        app = client.list_applications()["Items"][0]["Id"]

        def start() -> str:
            return client.start_stream_session(Identifier=group, ApplicationIdentifier=app, Protocol="WebRTC",
                                               SignalRequest="NO_CLIENT_CONNECTION")["Arn"]

        def status(arn: str) -> str:
            return client.get_stream_session(Identifier=group, StreamSessionIdentifier=arn)["Status"]

        busy = start()  # takes the only slot
        wait_until(lambda: status(busy) == "ACTIVE", 60, "the first session ACTIVE")
        start()  # no slot free: its placement waits (up to the 300 s placement timeout)
        browser = httpx.Client(timeout=30)
        assert browser.get(pc.login_url).status_code == 303
        answers: list[httpx.Response | Exception] = []

        def post() -> None:
            try:
                answers.append(browser.post(pc.base_url + "/v1/play/sessions",
                                            json={"applicationId": app, "signalRequest": "NO_CLIENT_CONNECTION"}))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                answers.append(exc)

        threading.Thread(target=post, daemon=True).start()

        def placing() -> bool:
            items = client.list_stream_sessions(Identifier=group)["Items"]
            return sum(1 for i in items if i["Status"] == "ACTIVATING") == 2
        wait_until(placing, 10, "two sessions waiting for a slot")
        t0 = time.monotonic()
        pc.process.send_signal(signal.SIGTERM)
        pc.process.wait(timeout=5)
        assert time.monotonic() - t0 < 5
        wait_until(lambda: answers, 5, "the held request's answer")
        answer = answers[0]
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 503 and "shutting down" in answer.json()["error"]["message"], answer.text
