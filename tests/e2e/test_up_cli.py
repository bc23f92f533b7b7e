"""`playcast up` as a user runs it: flags, fixed credentials from the environment, credentials.json, /healthz,
the demo registered in a default stream group with a warm slot, and a clean stop."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from playcast.control.ingest import NOT_ACCEPTED
from tests.api.support import aws_error, create_app
from tests.control.support import make_app_dir
from tests.harness import playcast_up

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
