"""Reusable queries: keyset pagination, compare-and-set status updates, tags, idempotency records, secrets.

Takes an AsyncSession from the caller and never commits on its own unless the function says so."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..json_input import parse_json
from .models import IdempotencyRow, SecretRow, StreamSessionRow, TagRow

T = TypeVar("T")


class BadPageToken(ValueError):
    """The NextToken given by a client is not one we issued."""


def _encode_token(created_at: float, row_id: str) -> str:
    raw = json.dumps([created_at, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at, row_id = parse_json(raw, max_bytes=1024)
        return float(created_at), str(row_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadPageToken("Invalid NextToken") from exc


async def paginate(session: AsyncSession, stmt: Select[tuple[T]], model: Any, limit: int,
                   next_token: str | None) -> tuple[list[T], str | None]:
    """Page through `stmt` ordered by (created_at, id). Returns (rows, next token or None)."""
    if next_token:
        created_at, row_id = _decode_token(next_token)
        stmt = stmt.where(or_(model.created_at > created_at,
                              and_(model.created_at == created_at, model.id > row_id)))
    stmt = stmt.order_by(model.created_at, model.id).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars().all())
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        return rows, _encode_token(last.created_at, last.id)
    return rows, None


async def compare_and_set_session(session: AsyncSession, session_id: str, from_statuses: Iterable[str],
                                  values: dict[str, Any]) -> bool:
    """Update a stream session only if its status is one of `from_statuses`. Returns whether it changed."""
    values = dict(values)
    values.setdefault("updated_at", time.time())
    stmt = (update(StreamSessionRow)
            .where(StreamSessionRow.id == session_id, StreamSessionRow.status.in_(list(from_statuses)))
            .values(**values))
    result = await session.execute(stmt)
    return bool(result.rowcount)


# -- tags ---------------------------------------------------------------------------------------------

async def get_tags(session: AsyncSession, arn: str) -> dict[str, str]:
    rows = (await session.execute(select(TagRow).where(TagRow.resource_arn == arn))).scalars().all()
    return {r.key: r.value for r in rows}


async def put_tags(session: AsyncSession, arn: str, tags: dict[str, str]) -> None:
    existing = {r.key: r for r in (await session.execute(
        select(TagRow).where(TagRow.resource_arn == arn))).scalars().all()}
    for key, value in tags.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(TagRow(resource_arn=arn, key=key, value=value))


async def remove_tags(session: AsyncSession, arn: str, keys: Sequence[str]) -> None:
    await session.execute(delete(TagRow).where(TagRow.resource_arn == arn, TagRow.key.in_(list(keys))))


async def drop_tags(session: AsyncSession, arns: Sequence[str]) -> None:
    if arns:
        await session.execute(delete(TagRow).where(TagRow.resource_arn.in_(list(arns))))


# -- idempotency --------------------------------------------------------------------------------------

async def find_idempotent(session: AsyncSession, operation: str, token: str) -> IdempotencyRow | None:
    return await session.get(IdempotencyRow, (operation, token))


def add_idempotent(session: AsyncSession, operation: str, token: str, request_hash: str,
                   resource_id: str | None, response: dict[str, Any] | None = None) -> None:
    session.add(IdempotencyRow(operation=operation, client_token=token, request_hash=request_hash,
                               resource_id=resource_id, response=response, created_at=time.time()))


# -- secrets ------------------------------------------------------------------------------------------

async def get_or_create_secret(db_sessionmaker: Any, name: str, first: str | None = None) -> str:
    """Return the named server secret, creating it on first use (`first`, else random; shared by all replicas).
    Commits."""
    async with db_sessionmaker() as session:
        row = await session.get(SecretRow, name)
        if row is not None:
            return row.value
        value = first or secrets.token_hex(32)
        session.add(SecretRow(name=name, value=value))
        try:
            await session.commit()
            return value
        except IntegrityError:
            await session.rollback()
    async with db_sessionmaker() as session:
        row = await session.get(SecretRow, name)
        assert row is not None
        return row.value
