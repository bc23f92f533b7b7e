"""Fixtures for control-plane tests: a real SQLite database in a temp dir, a ProcessHostPool, a ControlPlane.

Everything started here is stopped after each test, and the test fails if a child process is left behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from playcast.config import Settings
from playcast.control.plane import ControlPlane
from playcast.store.db import open_database
from tests.control.procpool import ProcessHostPool
from tests.control.support import child_pids, make_app_dir


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return make_app_dir(tmp_path / "game")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", region="local", account_id="123456789012",
                    access_key_id="AKIDTEST", secret_access_key="secret", placement_timeout_s=5,
                    app_source_roots=[tmp_path])  # tests build their applications in tmp_path


@pytest.fixture
async def pool() -> AsyncIterator[ProcessHostPool]:
    p = ProcessHostPool("local", slots=2)
    yield p
    await p.close()


@pytest.fixture
async def plane(settings: Settings, pool: ProcessHostPool) -> AsyncIterator[ControlPlane]:
    before = child_pids()
    db = await open_database(settings.database)
    cp = ControlPlane(settings, pool, db)
    cp.sessions.tick_s = 0.1
    await cp.start()
    yield cp
    await cp.stop()
    await pool.close()
    await db.close()
    deadline = time.monotonic() + 5
    while child_pids() - before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not (child_pids() - before), "child processes left behind"
