"""One page of a List* operation (ListApplications, ListStreamGroups, ListStreamSessions): `{"Items", "NextToken"}`.

Reads only; a NextToken we did not issue becomes a ValidationError, as AWS answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store import queries
from .errors import ValidationError

DEFAULT_PAGE_SIZE = 25


async def list_page(session: AsyncSession, stmt: Select[Any], model: Any, max_results: int | None,
                    next_token: str | None, summary: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The page of `stmt` (rows of `model`) after `next_token`, each row as `summary(row)`."""
    try:
        rows, token = await queries.paginate(session, stmt, model, max_results or DEFAULT_PAGE_SIZE, next_token)
    except queries.BadPageToken as exc:
        raise ValidationError(str(exc)) from exc
    return {"Items": [summary(r) for r in rows], "NextToken": token}
