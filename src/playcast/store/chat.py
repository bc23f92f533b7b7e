"""Chat history and bans: every chat message, reaction, metadata event and moderation action with its server time.

Tables plus a batching writer and the queries chat needs; no channel, socket or HTTP logic here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import JSON, Float, Index, String, Text, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base

if TYPE_CHECKING:
    from .db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

# Entry kinds
MESSAGE = "MESSAGE"
REACTION = "REACTION"
EVENT = "EVENT"
DELETE_MESSAGE = "DELETE_MESSAGE"
DISCONNECT_USER = "DISCONNECT_USER"
BAN_USER = "BAN_USER"
UNBAN_USER = "UNBAN_USER"
MODERATION_KINDS = (DELETE_MESSAGE, DISCONNECT_USER, BAN_USER, UNBAN_USER)


class ChatEntryRow(Base):
    __tablename__ = "chat_entries"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # 12 alnum, as IVS chat message ids
    room_id: Mapped[str] = mapped_column(String(64))  # the stream session id
    kind: Mapped[str] = mapped_column(String(24))
    sender_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sender_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sender_role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text, nullable=True)  # message text, reaction kind, event name
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # message id / user id acted on
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)  # server time, unix seconds
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # MESSAGE only
    deleted_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # id of the DELETE_MESSAGE entry

    __table_args__ = (Index("ix_chat_entries_room_time", "room_id", "created_at", "id"),)


class ChatBanRow(Base):
    __tablename__ = "chat_bans"

    room_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    banned_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class Entry:
    """What gets written: one row of chat_entries."""

    id: str
    room_id: str
    kind: str
    sender_id: str | None
    sender_name: str | None
    sender_role: str
    created_at: float
    content: str | None = None
    attributes: dict[str, Any] | None = None
    target_id: str | None = None
    reason: str | None = None

    def row(self) -> ChatEntryRow:
        return ChatEntryRow(id=self.id, room_id=self.room_id, kind=self.kind, sender_id=self.sender_id,
                            sender_name=self.sender_name, sender_role=self.sender_role, content=self.content,
                            attributes=dict(self.attributes or {}), target_id=self.target_id, reason=self.reason,
                            created_at=self.created_at)


class StoreClosed(RuntimeError):
    """The chat store was closed; nothing more is written."""


Op = Callable[[AsyncSession], Awaitable[Any]]


class ChatStore:
    """Writes go through one writer task that commits them in batches (one transaction for everything queued
    meanwhile), so a busy room costs one commit per batch, not per message; each caller awaits its own commit."""

    def __init__(self, db: Database, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="chat-store-writer")

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        try:
            async with self.db.session() as s:
                results = [await op(s) for op, _ in batch]
                await s.commit()
        except Exception as exc:  # noqa: BLE001 - retry one by one so one bad op fails alone
            if len(batch) > 1:
                for item in batch:
                    await self._run_batch([item])
                return
            log.warning("chat store write failed: %s", exc)
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _submit(self, op: Op) -> Any:
        if self._closed or self._writer is None:
            raise StoreClosed("the chat store is not running")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((op, fut))
        return await fut

    # -- writes -------------------------------------------------------------------------------------

    async def record(self, entry: Entry) -> None:
        """Persist one entry; returns once it is committed."""

        async def op(s: AsyncSession) -> None:
            s.add(entry.row())
            await s.flush()

        await self._submit(op)

    async def delete_message(self, room_id: str, message_id: str, deletion: Entry) -> ChatEntryRow | None:
        """Mark a message deleted and record the DELETE_MESSAGE entry in one transaction.

        Returns the message row (already deleted before: unchanged, deletion not recorded), or None if the
        room has no such message."""

        async def op(s: AsyncSession) -> ChatEntryRow | None:
            row = await s.get(ChatEntryRow, message_id)
            if row is None or row.room_id != room_id or row.kind != MESSAGE:
                return None
            if row.deleted_at is None:
                row.deleted_at = deletion.created_at
                row.deleted_by = deletion.id
                s.add(deletion.row())
                await s.flush()
            return row

        return await self._submit(op)

    async def ban(self, room_id: str, user_id: str, entry: Entry) -> bool:
        """Ban a user from a room and record the BAN_USER entry. False if already banned (nothing written)."""

        async def op(s: AsyncSession) -> bool:
            if await s.get(ChatBanRow, (room_id, user_id)) is not None:
                return False
            s.add(ChatBanRow(room_id=room_id, user_id=user_id, banned_by=entry.sender_id, reason=entry.reason,
                             created_at=entry.created_at))
            s.add(entry.row())
            await s.flush()
            return True

        try:
            return await self._submit(op)
        except IntegrityError:  # a concurrent ban (another replica) won
            return False

    async def unban(self, room_id: str, user_id: str, entry: Entry) -> bool:
        """Lift a ban and record the UNBAN_USER entry. False if the user was not banned."""

        async def op(s: AsyncSession) -> bool:
            result = await s.execute(delete(ChatBanRow).where(ChatBanRow.room_id == room_id,
                                                              ChatBanRow.user_id == user_id))
            if not result.rowcount:
                return False
            s.add(entry.row())
            await s.flush()
            return True

        return await self._submit(op)

    # -- reads --------------------------------------------------------------------------------------

    async def message(self, room_id: str, message_id: str) -> ChatEntryRow | None:
        async with self.db.session() as s:
            row = await s.get(ChatEntryRow, message_id)
        return row if row is not None and row.room_id == room_id and row.kind == MESSAGE else None

    async def banned_users(self, room_id: str) -> set[str]:
        async with self.db.session() as s:
            rows = (await s.execute(select(ChatBanRow.user_id).where(ChatBanRow.room_id == room_id))).scalars()
            return set(rows.all())

    async def bans(self, room_id: str) -> list[ChatBanRow]:
        async with self.db.session() as s:
            stmt = select(ChatBanRow).where(ChatBanRow.room_id == room_id).order_by(ChatBanRow.created_at)
            return list((await s.execute(stmt)).scalars().all())

    async def entries(self, room_id: str, start: float, end: float, limit: int,
                      after: tuple[float, str] | None = None) -> list[ChatEntryRow]:
        """Entries of a room with start <= created_at <= end, oldest first, at most `limit`; `after` is the
        (created_at, id) of the last entry of the previous page."""
        stmt = select(ChatEntryRow).where(ChatEntryRow.room_id == room_id, ChatEntryRow.created_at >= start,
                                          ChatEntryRow.created_at <= end)
        if after is not None:
            stmt = stmt.where(or_(ChatEntryRow.created_at > after[0],
                                  and_(ChatEntryRow.created_at == after[0], ChatEntryRow.id > after[1])))
        stmt = stmt.order_by(ChatEntryRow.created_at, ChatEntryRow.id).limit(limit)
        async with self.db.session() as s:
            return list((await s.execute(stmt)).scalars().all())

    async def latest(self, room_id: str, start: float, end: float, limit: int) -> list[ChatEntryRow]:
        """The newest `limit` entries with start <= created_at <= end, oldest first."""
        stmt = (select(ChatEntryRow)
                .where(ChatEntryRow.room_id == room_id, ChatEntryRow.created_at >= start,
                       ChatEntryRow.created_at <= end)
                .order_by(ChatEntryRow.created_at.desc(), ChatEntryRow.id.desc()).limit(limit))
        async with self.db.session() as s:
            rows = list((await s.execute(stmt)).scalars().all())
        rows.reverse()
        return rows

    async def entries_by_id(self, ids: list[str]) -> dict[str, ChatEntryRow]:
        if not ids:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(ChatEntryRow).where(ChatEntryRow.id.in_(ids)))).scalars().all()
        return {r.id: r for r in rows}
