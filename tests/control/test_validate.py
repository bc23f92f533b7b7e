"""The generic model-driven validator against real botocore shapes."""

from __future__ import annotations

import pytest

from playcast.api.aws.model import service_model
from playcast.api.aws.validate import InputInvalid, validate


def shape(op: str):  # type: ignore[no-untyped-def]
    return service_model().operation_model(op).input_shape


def errors(op: str, params: dict) -> list[str]:  # type: ignore[type-arg]
    try:
        validate(shape(op), params)
    except InputInvalid as exc:
        return exc.errors
    return []


GOOD_APP = {"Description": "my game", "RuntimeEnvironment": {"Type": "UBUNTU", "Version": "22_04_LTS"},
            "ExecutablePath": "game.sh", "ApplicationSourceUri": "/tmp/x"}


def test_valid_input_passes() -> None:
    assert errors("CreateApplication", GOOD_APP) == []
    assert errors("StartStreamSession", {"Identifier": "sg-1", "Protocol": "WebRTC", "SignalRequest": "x",
                                         "ApplicationIdentifier": "a-1", "ConnectionTimeoutSeconds": 3600,
                                         "AdditionalEnvironmentVariables": {"A_B": "1"}}) == []


def test_required_members() -> None:
    errs = errors("CreateApplication", {"Description": "x"})
    assert len(errs) == 3
    assert any("'RuntimeEnvironment'" in e and "must not be null" in e for e in errs)
    assert any("'RuntimeEnvironment.Version'" in e for e in errors(
        "CreateApplication", {**GOOD_APP, "RuntimeEnvironment": {"Type": "UBUNTU"}}))


def test_lengths_ranges_enums() -> None:
    assert any("less than or equal to 80" in e for e in errors("CreateApplication", {**GOOD_APP, "Description": "x" * 81}))
    assert any("enum value set" in e for e in errors(
        "CreateApplication", {**GOOD_APP, "RuntimeEnvironment": {"Type": "MSDOS", "Version": "6"}}))
    base = {"Identifier": "sg-1", "Protocol": "WebRTC", "SignalRequest": "x", "ApplicationIdentifier": "a-1"}
    assert any("less than or equal to 3600" in e for e in errors("StartStreamSession", {**base, "ConnectionTimeoutSeconds": 3601}))
    assert any("greater than or equal to 1" in e for e in errors("StartStreamSession", {**base, "SessionLengthSeconds": 0}))
    assert any("enum" in e for e in errors("StartStreamSession", {**base, "Protocol": "RTMP"}))
    assert any("greater than or equal to 1" in e for e in errors("StartStreamSession", {**base, "SignalRequest": ""}))
    assert any("greater than or equal to 32" in e for e in errors("StartStreamSession", {**base, "ClientToken": "short"}))


def test_list_and_map_sizes_and_patterns() -> None:
    base = {"Identifier": "sg-1", "Protocol": "WebRTC", "SignalRequest": "x", "ApplicationIdentifier": "a-1"}
    env = {f"K{i}": "v" for i in range(51)}
    assert any("less than or equal to 50" in e for e in errors("StartStreamSession", {**base, "AdditionalEnvironmentVariables": env}))
    assert any("regular expression" in e for e in errors("StartStreamSession", {**base, "AdditionalEnvironmentVariables": {"1BAD": "v"}}))
    assert any("regular expression" in e for e in errors("StartStreamSession", {**base, "Identifier": "bad id!"}))
    assert any("less than or equal to 100" in e for e in errors("StartStreamSession", {**base, "AdditionalLaunchArgs": ["a"] * 101}))
    assert any("greater than or equal to 1" in e for e in errors(
        "AssociateApplications", {"Identifier": "sg-1", "ApplicationIdentifiers": []}))


def test_types_and_sensitive_values_hidden() -> None:
    assert any("must be an integer" in e for e in errors("ListApplications", {"MaxResults": "ten"}))
    assert any("must be an integer" in e for e in errors("ListApplications", {"MaxResults": True}))
    assert any("must be a string" in e for e in errors("CreateApplication", {**GOOD_APP, "Description": 5}))
    assert any("must be a list" in e for e in errors("CreateApplication", {**GOOD_APP, "ApplicationLogPaths": "x"}))
    base = {"Identifier": "sg-1", "Protocol": "WebRTC", "ApplicationIdentifier": "a-1"}
    errs = errors("StartStreamSession", {**base, "SignalRequest": ""})
    assert errs and all("'***'" in e for e in errs if "SignalRequest" in e)


def test_message_format() -> None:
    with pytest.raises(InputInvalid) as info:
        validate(shape("CreateApplication"), {**GOOD_APP, "Description": "x" * 81})
    assert info.value.message.startswith("1 validation error detected: Value '")


def test_patterns_match_whole_value() -> None:
    assert any("regular expression" in e for e in errors("CreateApplication", {**GOOD_APP, "Description": "bad<name>"}))
    assert errors("CreateApplication", {**GOOD_APP, "Description": "ok name-1.0!"}) == []
    assert errors("CreateApplication", {**GOOD_APP, "ApplicationLogOutputUri": ""}) == []
    assert errors("CreateApplication", {**GOOD_APP, "ApplicationLogOutputUri": "s3://my-bucket/logs/"}) == []
    assert any("regular expression" in e for e in errors(
        "CreateApplication", {**GOOD_APP, "ApplicationLogOutputUri": "http://example.com/"}))
    arn = "arn:aws:gameliftstreams:local:123456789012:application/a-123456789"
    assert errors("GetApplication", {"Identifier": arn}) == []
    assert any("regular expression" in e for e in errors("StartStreamSession", {
        "Identifier": "sg-1", "Protocol": "WebRTC", "SignalRequest": "x", "ApplicationIdentifier": "a-1",
        "UserId": "user with spaces"}))
