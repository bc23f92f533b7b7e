"""Adopts a database that playcast created before it had migrations (tables by create_all, columns by ALTER TABLE).

Brings it to the first revision's schema keeping every row; never drops, renames or retypes anything."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

log = logging.getLogger(__name__)


class LegacySchemaError(RuntimeError):
    """An old database cannot be brought to the first revision without inventing data."""


def predates_migrations(conn: sa.Connection, baseline: sa.MetaData) -> bool:
    """Some of the first revision's tables exist but no alembic_version table does."""
    names = set(sa.inspect(conn).get_table_names())
    return "alembic_version" not in names and bool(names & set(baseline.tables))


def adopt(conn: sa.Connection, baseline: sa.MetaData, fill: Mapping[tuple[str, str], Any]) -> list[str]:
    """Create the tables, columns and indexes of `baseline` that are missing; NULLs in a column `baseline` declares
    NOT NULL get the value `fill` names for it, and the column becomes NOT NULL. Returns what was changed."""
    inspector = sa.inspect(conn)
    ops = Operations(MigrationContext.configure(conn))
    changes: list[str] = []
    for table in baseline.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(conn)
            changes.append(f"created table {table.name}")
            continue
        have = {c["name"]: c for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                ops.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
                changes.append(f"added column {table.name}.{column.name}")
        loose = [c for c in table.columns if not c.nullable and (c.name not in have or have[c.name]["nullable"])]
        for column in loose:
            _fill_nulls(conn, table, column, fill)
        if loose:
            with ops.batch_alter_table(table.name) as batch:
                for column in loose:
                    batch.alter_column(column.name, existing_type=column.type, nullable=False)
            changes.extend(f"made {table.name}.{c.name} NOT NULL" for c in loose)
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)
                changes.append(f"created index {index.name}")
    for change in changes:
        log.info("database from before migrations: %s", change)
    return changes


def _fill_nulls(conn: sa.Connection, table: sa.Table, column: sa.Column[Any],
                fill: Mapping[tuple[str, str], Any]) -> None:
    is_null = table.c[column.name].is_(None)
    if (table.name, column.name) in fill:
        conn.execute(sa.update(table).where(is_null).values({column.name: fill[(table.name, column.name)]}))
        return
    nulls = conn.execute(sa.select(sa.func.count()).select_from(table).where(is_null)).scalar_one()
    if nulls:
        raise LegacySchemaError(f"{table.name}.{column.name} is NULL in {nulls} rows and must not be; "
                                "no value is known to fill it with")
