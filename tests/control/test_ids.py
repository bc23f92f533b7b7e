"""Ids and ARNs: formats, parsing, Identifier resolution."""

from __future__ import annotations

import re

import pytest

from playcast.control.errors import NotFoundError, ValidationError
from playcast.control.ids import (
    APPLICATION,
    STREAM_GROUP,
    STREAM_SESSION,
    ArnFactory,
    new_application_id,
    new_stream_group_id,
    new_stream_session_id,
)

ARNS = ArnFactory("local", "123456789012")


def test_id_formats() -> None:
    for _ in range(50):
        assert re.fullmatch(r"a-[A-Za-z0-9]{9}", new_application_id())
        assert re.fullmatch(r"sg-[A-Za-z0-9]{9}", new_stream_group_id())
        assert re.fullmatch(r"[A-Za-z0-9]{12,13}", new_stream_session_id())
    assert len({new_stream_session_id() for _ in range(1000)}) == 1000


def test_arn_formats_and_parse() -> None:
    assert ARNS.application("a-123456789") == "arn:aws:gameliftstreams:local:123456789012:application/a-123456789"
    assert ARNS.stream_group("sg-123456789") == "arn:aws:gameliftstreams:local:123456789012:streamgroup/sg-123456789"
    s = ARNS.stream_session("sg-123456789", "ABC123def4567")
    assert s == "arn:aws:gameliftstreams:local:123456789012:streamsession/sg-123456789/ABC123def4567"
    assert ARNS.parse(s) == (STREAM_SESSION, ["sg-123456789", "ABC123def4567"])
    assert ARNS.parse(ARNS.application("a-1")) == (APPLICATION, ["a-1"])


def test_resolve_accepts_id_or_arn() -> None:
    assert ARNS.resolve("a-123456789", APPLICATION) == "a-123456789"
    assert ARNS.resolve(ARNS.application("a-123456789"), APPLICATION) == "a-123456789"
    assert ARNS.resolve(ARNS.stream_group("sg-1"), STREAM_GROUP) == "sg-1"
    with pytest.raises(ValidationError):
        ARNS.resolve(ARNS.stream_group("sg-1"), APPLICATION)


def test_foreign_and_malformed_arns() -> None:
    with pytest.raises(NotFoundError):
        ARNS.parse("arn:aws:gameliftstreams:us-west-2:123456789012:application/a-1")
    with pytest.raises(NotFoundError):
        ARNS.parse("arn:aws:gameliftstreams:local:999999999999:application/a-1")
    for bad in ("arn:aws:s3:::bucket", "arn:aws:gameliftstreams:local:123456789012:widget/x",
                "arn:aws:gameliftstreams:local:123456789012:streamsession/only-one",
                "arn:aws:gameliftstreams:local:123456789012:application/a/b"):
        with pytest.raises(ValidationError):
            ARNS.parse(bad)
