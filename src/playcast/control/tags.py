"""Tags on applications, stream groups and stream sessions, addressed by ARN.

Checks that the tagged resource exists; storage is store/queries.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import queries
from ..store.models import ApplicationRow, StreamGroupRow, StreamSessionRow
from .errors import NotFoundError, ValidationError
from .ids import APPLICATION, STREAM_GROUP
from .stream_groups import check_group_tags

if TYPE_CHECKING:
    from .plane import ControlPlane

MAX_TAGS = 50


class Tags:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def _check(self, s: Any, arn: str) -> str | None:
        """Raise NotFoundError unless the resource exists; its id when it is a stream group, else None."""
        kind, parts = self.plane.arns.parse(arn)
        model = {APPLICATION: ApplicationRow, STREAM_GROUP: StreamGroupRow}.get(kind, StreamSessionRow)
        row = await s.get(model, parts[-1])
        if row is None or row.arn != arn:
            raise NotFoundError(f"Resource {arn} not found")
        return parts[-1] if kind == STREAM_GROUP else None

    async def list(self, arn: str) -> dict[str, Any]:
        async with self.plane.db.session() as s:
            await self._check(s, arn)
            return {"Tags": await queries.get_tags(s, arn)}

    async def tag(self, arn: str, tags: dict[str, str]) -> None:
        async with self.plane.db.session() as s:
            group_id = await self._check(s, arn)
            if group_id is not None:
                check_group_tags(tags)
            reserved = sorted(k for k in tags if k.lower().startswith("aws:"))
            if reserved:
                raise ValidationError(f"Tag keys starting with 'aws:' are reserved: {', '.join(reserved)}")
            current = await queries.get_tags(s, arn)
            if len(set(current) | set(tags)) > MAX_TAGS:
                raise ValidationError(f"A resource can have at most {MAX_TAGS} tags")
            await queries.put_tags(s, arn, tags)
            await s.commit()
        if group_id is not None:
            self.plane.stream_groups.tags_changed(group_id)

    async def untag(self, arn: str, keys: list[str]) -> None:
        async with self.plane.db.session() as s:
            group_id = await self._check(s, arn)
            await queries.remove_tags(s, arn, keys)
            await s.commit()
        if group_id is not None:
            self.plane.stream_groups.tags_changed(group_id)
