"""Opens the database (SQLite via aiosqlite by default, PostgreSQL via asyncpg) and hands out sessions.

Engine and start-up upgrade only; the schema is in migrations/, queries live in store/queries.py."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from . import migrate

log = logging.getLogger(__name__)


class Database:
    """An async engine plus a sessionmaker. Use `async with db.session() as s:`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self.is_open = True

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def ping(self) -> None:
        """A round trip to the database (`SELECT 1`); raises what the driver raises when it is unreachable."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

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


async def open_database(url: str) -> Database:
    """Create the engine for `url`, upgrade the database to the newest migration and return the Database."""
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
    try:
        async with engine.connect() as conn:
            await conn.run_sync(migrate.upgrade)
    except BaseException:
        await engine.dispose()
        raise
    log.info("database open: %s", parsed.render_as_string(hide_password=True))
    return Database(engine)
