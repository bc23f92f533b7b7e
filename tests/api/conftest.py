"""Fixtures for API tests: the real server over a ProcessHostPool (real subprocesses), a boto3 client, a test app.

Each test gets a fresh server and database; the test fails if a child process is left behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import REGION, ServerHandle, make_settings, start_server
from tests.control.procpool import ProcessHostPool
from tests.control.support import child_pids, make_app_dir


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return make_app_dir(tmp_path / "game")


@pytest.fixture
def procserver(tmp_path: Path) -> Iterator[ServerHandle]:
    """The server over a ProcessHostPool with 2 slots in location 'local' (+ 'local-2' with one slot)."""
    before = child_pids()

    async def make() -> ProcessHostPool:
        return ProcessHostPool(REGION, slots=2, extra_locations=("local-2",))

    async def close(pool: ProcessHostPool) -> None:
        await pool.close()

    handle = start_server(make_settings(tmp_path), make, close)
    try:
        yield handle
    finally:
        handle.stop()
        deadline = time.monotonic() + 5
        while child_pids() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (child_pids() - before), "child processes left behind"


@pytest.fixture
def gls(procserver: ServerHandle) -> Any:
    return procserver.client()
