"""Small helpers for API tests: boto3 error assertions and ready-made applications/groups.

Plain functions over a boto3 client; no fixtures here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

RUNTIME = {"Type": "UBUNTU", "Version": "22_04_LTS"}
FAST = {"Delay": 0.2, "MaxAttempts": 150}


@contextlib.contextmanager
def aws_error(code: str, status: int | None = None, match: str | None = None) -> Iterator[None]:
    """Expect a botocore ClientError with this error code (and HTTP status / message fragment)."""
    with pytest.raises(ClientError) as info:
        yield
    err = info.value.response["Error"]
    assert err["Code"] == code, info.value.response
    if status is not None:
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if match is not None:
        assert match in err["Message"], err["Message"]


def create_app(gls: Any, app_dir: Path, wait: bool = True, **extra: Any) -> dict[str, Any]:
    kwargs = dict(Description="game", RuntimeEnvironment=RUNTIME, ExecutablePath="game.sh",
                  ApplicationSourceUri=str(app_dir))
    kwargs.update(extra)
    app = gls.create_application(**kwargs)
    if wait:
        gls.get_waiter("application_ready").wait(Identifier=app["Id"], WaiterConfig=FAST)
    return app


def create_group(gls: Any, app_id: str | None = None, wait: bool = True, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(Description="group", StreamClass="gen4n_high")
    if app_id:
        kwargs["DefaultApplicationIdentifier"] = app_id
    kwargs.update(extra)
    group = gls.create_stream_group(**kwargs)
    if wait:
        gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig=FAST)
    return group


def session_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]
