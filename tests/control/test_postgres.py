"""The same control plane over a real PostgreSQL (asyncpg), started on loopback on a free port for this module.

Skipped only where no PostgreSQL server binaries are installed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from playcast.config import Settings
from playcast.control.errors import ConflictError
from playcast.control.plane import ControlPlane
from playcast.store.db import open_database
from tests import postgres
from tests.control.procpool import ProcessHostPool
from tests.control.support import wait_until


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not postgres.available():
        pytest.skip("PostgreSQL server binaries are not installed")
    with postgres.postgres_server() as url:
        yield url


@pytest.fixture
async def pg_plane(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, ProcessHostPool]]:
    settings = Settings(data_dir=tmp_path / "data", region="local", account_id="123456789012",
                        database_url=postgres_url, placement_timeout_s=5, app_source_roots=[tmp_path])
    pool = ProcessHostPool("local", slots=2)
    db = await open_database(settings.database)
    plane = ControlPlane(settings, pool, db)
    plane.sessions.tick_s = 0.1
    await plane.start()
    yield plane, pool
    await plane.stop()
    await pool.close()
    await db.close()


async def test_full_flow_on_postgres(pg_plane: tuple[ControlPlane, ProcessHostPool], app_dir: Path) -> None:
    plane, pool = pg_plane
    token = "p" * 40
    app = await plane.applications.create({"Description": "pg game", "ExecutablePath": "game.sh",
                                           "RuntimeEnvironment": {"Type": "UBUNTU", "Version": "22_04_LTS"},
                                           "ApplicationSourceUri": str(app_dir), "ClientToken": token,
                                           "Tags": {"db": "pg"}})
    again = await plane.applications.create({"Description": "pg game", "ExecutablePath": "game.sh",
                                             "RuntimeEnvironment": {"Type": "UBUNTU", "Version": "22_04_LTS"},
                                             "ApplicationSourceUri": str(app_dir), "ClientToken": token,
                                             "Tags": {"db": "pg"}})
    assert again["Id"] == app["Id"]

    async def ready():  # type: ignore[no-untyped-def]
        return (await plane.applications.get(app["Id"]))["Status"] == "READY"
    await wait_until(ready)
    group = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high",
                                              "DefaultApplicationIdentifier": app["Id"],
                                              "LocationConfigurations": [{"LocationName": "local",
                                                                          "AlwaysOnCapacity": 1}]})

    async def active():  # type: ignore[no-untyped-def]
        return (await plane.stream_groups.get(group["Id"]))["Status"] == "ACTIVE"
    await wait_until(active)
    with pytest.raises(ConflictError):
        await plane.applications.delete(app["Id"])
    ids = []
    for _ in range(3):
        s = await plane.sessions.start(group["Id"], {"ApplicationIdentifier": app["Id"], "Protocol": "WebRTC",
                                                     "SignalRequest": "NO_CLIENT_CONNECTION"})
        ids.append(s["Arn"].rsplit("/", 1)[1])
    rows = [await plane.sessions.wait_for(sid, lambda r: r.status != "ACTIVATING", 10) for sid in ids[:2]]
    assert [r.status for r in rows] == ["ACTIVE", "ACTIVE"]
    page = await plane.sessions.list(group["Id"], None, None, 2, None)
    assert len(page["Items"]) == 2 and page["NextToken"]
    rest = await plane.sessions.list(group["Id"], None, None, 2, page["NextToken"])
    assert [i["Arn"].rsplit("/", 1)[1] for i in page["Items"] + rest["Items"]] == ids
    await plane.sessions.terminate(group["Id"], ids[0])
    assert (await plane.sessions.wait_for(ids[2], lambda r: r.status != "ACTIVATING", 10)).status == "ACTIVE"
    assert (await plane.tags.list(app["Arn"]))["Tags"] == {"db": "pg"}
    await plane.stream_groups.delete(group["Id"])

    async def group_gone():  # type: ignore[no-untyped-def]
        return not (await plane.stream_groups.list(None, None))["Items"]
    await wait_until(group_gone)
    assert not pool.running


async def test_placements_in_one_location_take_turns(postgres_url: str, tmp_path: Path) -> None:
    """capacity_ledger.lock_locations: a second placement transaction in a location waits (PostgreSQL shows its
    advisory lock not granted) until the first commits; one in another location does not wait."""
    from sqlalchemy import text

    from playcast.control.capacity_ledger import lock_locations

    settings = Settings(data_dir=tmp_path / "data", region="local", account_id="123456789012",
                        database_url=postgres_url)
    db = await open_database(settings.database)
    try:
        async with db.session() as first, db.session() as other, db.session() as watch:
            await first.begin()
            await lock_locations(first, ["edge-1", "local"])
            async with db.session() as elsewhere, elsewhere.begin():
                await lock_locations(elsewhere, ["edge-2"])  # another location: granted at once

            async def second() -> None:
                async with other.begin():
                    await lock_locations(other, ["local"])

            waiting = asyncio.ensure_future(second())

            async def blocked():  # type: ignore[no-untyped-def]
                return (await watch.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))).scalar() == 1
            await wait_until(blocked)
            assert not waiting.done()
            await first.commit()
            await asyncio.wait_for(waiting, 10)
    finally:
        await db.close()
