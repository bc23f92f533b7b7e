"""Brings a database to the newest revision at start-up, under a lock, so replicas that start together wait in turn.

Runs on a sync Connection (AsyncConnection.run_sync); creates no table outside the revisions in migrations/."""

from __future__ import annotations

import functools
import logging
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from . import legacy
from .migrations import DIRECTORY

log = logging.getLogger(__name__)

BASELINE = "0001"  # the revision a database from before migrations is adopted at (store/legacy.py)
# PostgreSQL advisory lock held, for the transaction, around every upgrade: pg_advisory_xact_lock(int4, int4), a key
# space apart from the single-bigint locks; 0x706c6179 is "play".
PG_LOCK_KEYS = (0x706C6179, 1)


class SchemaTooNew(RuntimeError):
    """The database was upgraded by a newer playcast than this one; this one does not know its schema."""


@functools.cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory(str(DIRECTORY))


def head() -> str:
    """The newest revision (there is one head: revisions form a line)."""
    revision = scripts().get_current_head()
    assert revision is not None, "no revisions in store/migrations/versions"
    return revision


def _known() -> set[str]:
    return {script.revision for script in scripts().walk_revisions()}


def config(conn: Connection) -> Config:
    """An Alembic config (no alembic.ini) whose env.py runs on `conn`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(DIRECTORY))
    cfg.attributes["connection"] = conn
    return cfg


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection) -> None:
    """Upgrade the database behind `conn` (not in a transaction) to head and commit; adopt one from before
    migrations first. A database already at head costs one read and takes no lock."""
    if current_revision(conn) == head():
        conn.rollback()
        return
    conn.rollback()
    try:
        _lock(conn)
        current = current_revision(conn)  # again, under the lock: another process may have upgraded meanwhile
        if current is None:
            _adopt_if_legacy(conn)
        elif current not in _known():
            raise SchemaTooNew(f"the database is at schema revision {current}, which this playcast does not know "
                               f"(its newest is {head()}): run a playcast at least as new as the one that "
                               "upgraded it")
        if current != head():
            command.upgrade(config(conn), "head")
            log.info("database upgraded from revision %s to %s", current, head())
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _lock(conn: Connection) -> None:
    """Begin the upgrade's transaction holding a lock that another upgrader waits for, until commit or rollback."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": PG_LOCK_KEYS[0], "b": PG_LOCK_KEYS[1]})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN EXCLUSIVE")  # waits up to the busy timeout for other writers
    else:
        raise RuntimeError(f"unsupported database {conn.dialect.name!r}: playcast runs on SQLite or PostgreSQL")


def _adopt_if_legacy(conn: Connection) -> None:
    first: ModuleType = scripts().get_revision(BASELINE).module
    baseline = first.schema()
    if legacy.predates_migrations(conn, baseline):
        legacy.adopt(conn, baseline, first.LEGACY_FILL)
        MigrationContext.configure(conn).stamp(scripts(), BASELINE)
        log.info("database from before migrations adopted at revision %s", BASELINE)
