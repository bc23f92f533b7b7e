"""Fuzz-test setup: hypothesis's own example printer back, and one real `playcast up` for the tests that need it.

schemathesis (its pytest plugin loads in every run) swaps hypothesis's RepresentationPrinter for one that prints
nothing, so every failing hypothesis test would report `x=,`; the fuzz tests need the failing example shown."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import hypothesis.core
import pytest
from hypothesis.vendor import pretty

from tests.harness import Playcast, playcast_up

hypothesis.core.RepresentationPrinter = pretty.RepresentationPrinter  # type: ignore[misc]


@pytest.fixture(scope="package")
def up() -> Iterator[Playcast]:
    """A real `playcast up` (demo app included), shared by the fuzz tests that talk to the whole server."""
    with playcast_up() as pc:
        yield pc


@pytest.fixture(scope="package")
def user_cookie(up: Playcast) -> str:
    """A browser user's `playcast_user` cookie, from the login link `playcast up` printed."""
    login = httpx.get(up.login_url, follow_redirects=False, timeout=30)
    assert login.status_code in (302, 303), login.text
    return login.cookies["playcast_user"]
