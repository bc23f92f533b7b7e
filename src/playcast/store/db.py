"""Opens the database (SQLite via aiosqlite by default, PostgreSQL via asyncpg) and hands out sessions.

Engine and schema only; queries live in store/queries.py."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from . import broadcasts as _broadcasts  # noqa: F401  (registers its table on Base)
from . import chat as _chat_tables  # noqa: F401 - registers the chat tables on Base
from . import hosts as _host_tables  # noqa: F401 - registers the fleet tables on Base
from .models import Base

log = logging.getLogger(__name__)


class Database:
    """An async engine plus a sessionmaker. Use `async with db.session() as s:`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self.is_open = True

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def close(self) -> None:
        if self.is_open:
            self.is_open = False
            await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _add_missing_columns(conn: Connection) -> None:
    """Bring tables created by an older playcast up to date by adding new (nullable) columns.

    Only additions are handled here; anything else needs a real migration."""
    inspector = inspect(conn)
    for table in Base.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            ddl = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
            log.info("database: added column %s.%s", table.name, column.name)


async def open_database(url: str) -> Database:
    """Create the engine for `url`, create missing tables and return the Database."""
    parsed = make_url(url)
    kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 10}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(_add_missing_columns)
    log.info("database open: %s", parsed.render_as_string(hide_password=True))
    return Database(engine)
