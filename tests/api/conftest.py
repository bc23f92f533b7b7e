"""Fixtures for API tests: the real server over a ProcessHostPool (real subprocesses), a boto3 client, a test app.

Each test gets a fresh server and database; the test fails if a child process is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import ServerHandle, make_settings, procpool_server
from tests.control.support import make_app_dir


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return make_app_dir(tmp_path / "game")


@pytest.fixture
def procserver(tmp_path: Path) -> Iterator[ServerHandle]:
    """The server over a ProcessHostPool with 2 slots in location 'local' (+ 'local-2' with one slot)."""
    with procpool_server(make_settings(tmp_path), slots=2, extra_locations=("local-2",)) as handle:
        yield handle


@pytest.fixture
def gls(procserver: ServerHandle) -> Any:
    return procserver.client()
