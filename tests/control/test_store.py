"""The store: schema creation, upgrade of older tables, WAL on SQLite, keyset pagination, compare-and-set."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from playcast.store import queries
from playcast.store.db import open_database
from playcast.store.models import ApplicationRow, StreamSessionRow


def _session_row(i: int, status: str = "ACTIVE") -> StreamSessionRow:
    now = 1000.0 + i
    return StreamSessionRow(id=f"S{i:012d}", arn=f"arn:{i}", stream_group_id="sg-1", application_id="a-1",
                            application_arn="arn:a", status=status, protocol="WebRTC", signal_request="x",
                            connection_timeout_s=120, session_length_s=60, created_at=now, updated_at=now,
                            expires_at=now + 60)


async def test_sqlite_wal_and_tables(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'p.db'}")
    try:
        async with db.session() as s:
            mode = (await s.execute(text("PRAGMA journal_mode"))).scalar()
            assert mode == "wal"
            names = set((await s.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))).scalars())
        assert {"applications", "stream_groups", "group_applications", "stream_sessions", "tags", "idempotency",
                "server_secrets"} <= names
    finally:
        await db.close()


async def test_older_table_gets_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE server_secrets (name VARCHAR(64) PRIMARY KEY)")  # 'value' missing
    con.commit()
    con.close()
    db = await open_database(f"sqlite+aiosqlite:///{path}")
    try:
        assert await queries.get_or_create_secret(db.sessionmaker, "cookie")
    finally:
        await db.close()


async def test_pagination_and_compare_and_set(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        async with db.session() as s:
            s.add_all([_session_row(i) for i in range(5)])
            await s.commit()
        async with db.session() as s:
            rows, token = await queries.paginate(s, select(StreamSessionRow), StreamSessionRow, 2, None)
            assert [r.id for r in rows] == ["S000000000000", "S000000000001"] and token
            rows, token = await queries.paginate(s, select(StreamSessionRow), StreamSessionRow, 2, token)
            rows, token = await queries.paginate(s, select(StreamSessionRow), StreamSessionRow, 2, token)
            assert [r.id for r in rows] == ["S000000000004"] and token is None
            with pytest.raises(queries.BadPageToken):
                await queries.paginate(s, select(StreamSessionRow), StreamSessionRow, 2, "%%%")
            assert await queries.compare_and_set_session(s, "S000000000000", ["ACTIVE"], {"status": "CONNECTED"})
            assert not await queries.compare_and_set_session(s, "S000000000000", ["ACTIVE"], {"status": "ERROR"})
            await s.commit()
            row = await s.get(StreamSessionRow, "S000000000000")
            assert row.status == "CONNECTED" and row.updated_at > time.time() - 5
            assert await s.get(ApplicationRow, "a-none") is None
    finally:
        await db.close()
