"""The chat store over a real SQLite file: batched writes, deletion with its moderation entry, bans, time ranges."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from playcast.events.chat import shapes
from playcast.store.chat import (
    BAN_USER,
    DELETE_MESSAGE,
    MESSAGE,
    REACTION,
    UNBAN_USER,
    ChatStore,
    StoreClosed,
)
from playcast.store.db import open_database
from tests.control.test_postgres import postgres_url  # noqa: F401 - the fixture

WHO = {"userId": "u-1", "displayName": "Ann", "role": "viewer"}
MOD = {"userId": "u-mod", "displayName": "Mo", "role": "moderator"}


async def test_store_sqlite(tmp_path: Path) -> None:
    await _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}")


async def test_store_postgres(postgres_url: str) -> None:  # noqa: F811
    """The same over a real PostgreSQL (asyncpg) started on loopback for this module."""
    await _roundtrip(postgres_url)


async def _roundtrip(url: str) -> None:
    db = await open_database(url)
    store = ChatStore(db)
    store.start()
    try:
        entries = [shapes.entry_for(MESSAGE, "room1", WHO, 1000.0 + i, content=f"m{i}", attributes={"i": str(i)})
                   for i in range(50)]
        await asyncio.gather(*(store.record(e) for e in entries))  # concurrent: batched into few commits
        await store.record(shapes.entry_for(REACTION, "room1", WHO, 1010.5, content="heart"))
        await store.record(shapes.entry_for(MESSAGE, "room2", WHO, 1010.0, content="elsewhere"))
        with pytest.raises(Exception):  # noqa: B017 - a duplicate id fails alone, others in its batch land
            await asyncio.gather(store.record(entries[0]), store.record(
                shapes.entry_for(MESSAGE, "room1", WHO, 2000.0, content="late")))
        rows = await store.entries("room1", 1005.0, 1009.0, 100)
        assert [r.content for r in rows] == ["m5", "m6", "m7", "m8", "m9"]
        assert rows[0].attributes == {"i": "5"}
        page1 = await store.entries("room1", 0, 3000, 20)
        page2 = await store.entries("room1", 0, 3000, 20, after=(page1[-1].created_at, page1[-1].id))
        everything = await store.entries("room1", 0, 3000, 1000)
        assert len(page1) == 20 and [r.id for r in page1 + page2] == [r.id for r in everything[:40]]
        latest = await store.latest("room1", 0, 3000, 3)
        assert [r.content for r in latest] == ["m48", "m49", "late"]

        deletion = shapes.entry_for(DELETE_MESSAGE, "room1", MOD, 1100.0, target_id=entries[3].id, reason="spam")
        row = await store.delete_message("room1", entries[3].id, deletion)
        assert row is not None and row.deleted_by == deletion.id and row.deleted_at == 1100.0
        again = shapes.entry_for(DELETE_MESSAGE, "room1", MOD, 1101.0, target_id=entries[3].id)
        assert (await store.delete_message("room1", entries[3].id, again)).deleted_by == deletion.id
        assert await store.delete_message("room2", entries[4].id, again) is None  # other room
        assert (await store.entries_by_id([deletion.id, again.id])).keys() == {deletion.id}

        ban = shapes.entry_for(BAN_USER, "room1", MOD, 1200.0, target_id="u-1", reason="rude")
        assert await store.ban("room1", "u-1", ban)
        assert not await store.ban("room1", "u-1", shapes.entry_for(BAN_USER, "room1", MOD, 1201.0, target_id="u-1"))
        assert await store.banned_users("room1") == {"u-1"} and await store.banned_users("room2") == set()
        unban = shapes.entry_for(UNBAN_USER, "room1", MOD, 1300.0, target_id="u-1")
        assert await store.unban("room1", "u-1", unban)
        assert not await store.unban("room1", "u-1", unban)
        kinds = [r.kind for r in await store.entries("room1", 1099.0, 1400.0, 10)]
        assert kinds == [DELETE_MESSAGE, BAN_USER, UNBAN_USER]
    finally:
        await store.close()
        await db.close()
    with pytest.raises(StoreClosed):
        await store.record(entries[0])

    # Everything survived a restart of the database.
    db = await open_database(url)
    store = ChatStore(db)
    try:
        assert len(await store.entries("room1", 0, 3000, 1000)) == 55
        assert (await store.message("room1", entries[3].id)).deleted_by == deletion.id
        assert await store.message("room2", entries[3].id) is None
    finally:
        await db.close()
