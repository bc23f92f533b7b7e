"""Schema migrations at start-up: a fresh database, one from before migrations, models against revisions, replicas
upgrading at once. Each on SQLite and on a real PostgreSQL (started for this module; skipped without its binaries)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import orm
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from playcast.store import migrate, schema
from playcast.store.broadcasts import BroadcastRow
from playcast.store.chat import ChatEntryRow
from playcast.store.db import open_database
from playcast.store.legacy import LegacySchemaError
from playcast.store.models import SecretRow, StreamSessionRow
from tests.control import premigration_schema as old
from tests.control.test_postgres import postgres_url  # noqa: F401 - the fixture

NewDatabase = Callable[[], Awaitable[str]]


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> str:
    """"sqlite", or the URL of the PostgreSQL server started for this module."""
    return "sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def new_database(server: str, tmp_path: Path) -> NewDatabase:
    """A factory of URLs of empty databases, all in one SQLite directory or on one PostgreSQL server."""
    count = 0

    async def sqlite_db() -> str:
        nonlocal count
        count += 1
        return f"sqlite+aiosqlite:///{tmp_path / f'db{count}.sqlite'}"

    async def postgres_db() -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        url = make_url(server)
        conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return url.set(database=name).render_as_string(hide_password=False)

    return sqlite_db if server == "sqlite" else postgres_db


async def _on(url: str, fn: Callable[[sa.Connection], Any]) -> Any:
    """Run `fn` on a connection of its own to `url`, in a transaction that is committed."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _models_diff(conn: sa.Connection) -> list[Any]:
    """What autogenerate would write: the models against the database (empty when the two agree)."""
    return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata)


def _snapshot(conn: sa.Connection) -> dict[str, Any]:
    """The reflected schema, in a form that two databases of one dialect can be compared by. Columns are sorted by
    name: an added column comes last in its table, and where it stands does not matter."""
    inspector = sa.inspect(conn)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        tables[name] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)),
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(name)),
        }
    return tables


def _versions(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


async def _open_and_close(url: str) -> None:
    db = await open_database(url)
    await db.close()


async def _fresh_snapshot(new_database: NewDatabase) -> dict[str, Any]:
    url = await new_database()
    await _open_and_close(url)
    return await _on(url, _snapshot)


def _old_rows() -> list[old.Base]:
    now = 1000.0
    return [
        old.ApplicationRow(id="a-1", arn="arn:a-1", description="game", runtime_type="UBUNTU",
                           runtime_version="22_04_LTS", executable_path="game.sh", source_uri="/src",
                           log_paths=["/log"], status="READY", content_dir="/content", created_at=now,
                           updated_at=now),
        old.StreamSessionRow(id="S1", arn="arn:s-1", stream_group_id="sg-1", application_id="a-1",
                             application_arn="arn:a-1", status="ACTIVE", protocol="WebRTC", signal_request="offer",
                             offer_digests=["d1"], connection_timeout_s=120, session_length_s=600,
                             launch_env={"K": "V"}, created_at=now, updated_at=now, expires_at=now + 600),
        old.BroadcastRow(id="b-1", stream_session_id="S1", stream_group_id="sg-1", owner="admin", status="LIVE",
                         viewer_token="vt", publish_token="pt", created_at=now),
        old.ChatEntryRow(id="c-1", room_id="S1", kind="MESSAGE", sender_id="u-1", sender_role="viewer",
                         content="hi", attributes={"a": "b"}, created_at=now),
        old.SecretRow(name="cookie", value="00ff"),
    ]


async def test_a_fresh_database_is_at_head_and_matches_the_models(new_database: NewDatabase) -> None:
    """The drift check: a database upgraded to head has exactly the tables models.py declares. Fails when a model
    changes without a revision (write one with ./dev migration)."""
    url = await new_database()
    await _open_and_close(url)
    await _open_and_close(url)  # already at head: nothing to do
    assert await _on(url, _versions) == [migrate.head()]
    assert await _on(url, _models_diff) == []


async def test_a_database_from_before_migrations_is_adopted_with_its_rows(new_database: NewDatabase) -> None:
    """Created by the last code without migrations (create_all of its models) and holding rows: it is stamped and
    upgraded in place, every row is kept, and its schema is the same as a fresh database's."""
    url = await new_database()
    await _on(url, old.Base.metadata.create_all)
    await _on(url, _add_old_rows)

    db = await open_database(url)
    try:
        async with db.session() as s:
            session = await s.get(StreamSessionRow, "S1")
            assert session.offer_digests == ["d1"] and session.launch_env == {"K": "V"}
            assert (await s.get(BroadcastRow, "b-1")).publish_token == "pt"
            assert (await s.get(ChatEntryRow, "c-1")).attributes == {"a": "b"}
            assert (await s.get(SecretRow, "cookie")).value == "00ff"
    finally:
        await db.close()
    assert await _on(url, _versions) == [migrate.head()]
    assert await _on(url, _models_diff) == []
    assert await _on(url, _snapshot) == await _fresh_snapshot(new_database)


def _add_old_rows(conn: sa.Connection) -> None:
    with orm.Session(conn) as session:
        session.add_all(_old_rows())
        session.flush()


def _as_first_releases_left_it(conn: sa.Connection) -> None:
    """The schema of an older playcast, upgraded by the ALTER TABLEs it ran at start-up, holding rows: no chat
    tables yet, stream_sessions without offer_digests (nor one index), broadcasts.publish_token added as a nullable
    column (NULL in old rows)."""
    old.Base.metadata.create_all(conn)
    _add_old_rows(conn)
    for ddl in ["DROP TABLE chat_entries", "DROP TABLE chat_bans", "DROP INDEX ix_stream_sessions_status",
                "ALTER TABLE stream_sessions DROP COLUMN offer_digests",
                "ALTER TABLE broadcasts DROP COLUMN publish_token",
                'ALTER TABLE broadcasts ADD COLUMN "publish_token" VARCHAR(128)']:  # as the old start-up did
        conn.execute(sa.text(ddl))


async def test_an_older_database_gets_its_missing_tables_and_columns(new_database: NewDatabase) -> None:
    """Missing tables and columns are created, an index that is gone comes back, and the NULLs an old ALTER TABLE
    left in a NOT NULL column are filled with the model's default; the rows are kept."""
    url = await new_database()
    await _on(url, _as_first_releases_left_it)
    db = await open_database(url)
    try:
        async with db.session() as s:
            session = await s.get(StreamSessionRow, "S1")
            assert session.offer_digests == [] and session.signal_request == "offer"
            assert (await s.get(BroadcastRow, "b-1")).publish_token == ""
            s.add(ChatEntryRow(id="c-2", room_id="S1", kind="MESSAGE", sender_role="viewer", attributes={},
                               created_at=1.0))
            await s.commit()
    finally:
        await db.close()
    assert await _on(url, _models_diff) == []
    assert await _on(url, _snapshot) == await _fresh_snapshot(new_database)


async def test_an_old_database_that_cannot_be_adopted_is_left_untouched(new_database: NewDatabase) -> None:
    """A NOT NULL column missing from a table with rows, with no value known for it: open_database refuses with a
    clear error and the whole adoption is rolled back (no table, column or version row added)."""
    url = await new_database()

    def secrets_without_value(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE server_secrets (name VARCHAR(64) PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO server_secrets (name) VALUES ('cookie')"))

    await _on(url, secrets_without_value)
    before = await _on(url, _snapshot)
    with pytest.raises(LegacySchemaError, match=r"server_secrets\.value is NULL in 1 rows"):
        await open_database(url)
    assert await _on(url, _snapshot) == before


async def test_a_database_from_a_newer_playcast_is_refused(new_database: NewDatabase) -> None:
    """A revision this code does not have (a newer replica upgraded the database): a clear error, nothing changed."""
    url = await new_database()
    await _open_and_close(url)
    await _on(url, lambda c: c.execute(sa.text("UPDATE alembic_version SET version_num = '9999'")))
    with pytest.raises(migrate.SchemaTooNew, match=r"revision 9999, which this playcast does not know"):
        await open_database(url)
    assert await _on(url, _versions) == ["9999"]


UPGRADER = """
import asyncio, sys
from playcast.store.db import open_database

async def main() -> None:
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    db = await open_database(sys.argv[1])
    await db.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("start", ["empty", "premigration"])
async def test_replicas_upgrading_one_database_at_once_all_succeed(new_database: NewDatabase, start: str) -> None:
    """Three processes told to open one database at the same instant (as replicas of a fleet starting together):
    each waits for the others' upgrade, all succeed, and the database ends at head with one schema."""
    url = await new_database()
    if start == "premigration":
        await _on(url, _as_first_releases_left_it)
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADER, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    try:
        for p in procs:  # every one imported playcast and waits
            assert p.stdout is not None
            assert (await asyncio.to_thread(p.stdout.readline)) == b"ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        results = await asyncio.gather(*(asyncio.to_thread(p.communicate, timeout=120) for p in procs))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
    assert await _on(url, _versions) == [migrate.head()]
    assert await _on(url, _models_diff) == []
    assert await _on(url, _snapshot) == await _fresh_snapshot(new_database)


async def test_an_up_to_date_database_opens_while_an_upgrade_holds_the_lock(new_database: NewDatabase) -> None:
    """Start-up of a replica whose database is already at head reads the version and takes no lock."""
    url = await new_database()
    await _open_and_close(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        holder = sqlite3.connect(parsed.database, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")

        async def release() -> None:
            holder.close()
    else:
        conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                     database=parsed.database)
        await conn.execute("SELECT pg_advisory_lock($1, $2)", *migrate.PG_LOCK_KEYS)
        release = conn.close  # type: ignore[assignment]
    try:
        await asyncio.wait_for(_open_and_close(url), 5)
    finally:
        await release()
