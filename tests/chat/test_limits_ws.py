"""Rate limits (per room, per user) and the review hook (allow, deny, rewrite, timeout and errors -> fallback) with
real WebSocket clients against a server configured through PLAYCAST_CHAT_* (long windows so timing cannot flake)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chat.conftest import serve_chat
from tests.chat.support import ChatServer, running_sessions
from tests.chat.users import viewer

ENV = {"PLAYCAST_CHAT_ROOM_RATE": "10/60", "PLAYCAST_CHAT_USER_RATE": "3/60",
       "PLAYCAST_CHAT_REVIEW_HOOK": "tests.chat.hooks:deny_swearing", "PLAYCAST_CHAT_REVIEW_BUDGET_MS": "150",
       "PLAYCAST_CHAT_REVIEW_FALLBACK": "DENY"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, own_tmp: str) -> Iterator[ChatServer]:
    yield from serve_chat(tmp_path_factory.mktemp("chat-strict"), own_tmp, env=ENV)


@pytest.fixture
def rooms(srv: ChatServer, app_dir: Path):  # type: ignore[no-untyped-def]
    with running_sessions(srv, app_dir, 2) as sids:
        yield sids


async def test_room_and_user_rate_limits(srv: ChatServer, rooms: list[str]) -> None:
    sid, other = rooms
    ch = f"/chat/{sid}"
    users = [viewer(srv, name, sid) for name in ("Ann", "Bob", "Cat", "Dan")]
    watcher = viewer(srv, "Watcher", sid)
    async with watcher.client(srv) as w:
        await w.subscribe(ch)
        clients = [u.client(srv) for u in users]
        for c in clients:
            await c.connect()
        try:
            # One user: 3 per window; the 4th and 5th of a burst fail with a clear reason, the rest go out.
            reply = await clients[0].publish(ch, *[{"content": f"ann {i}"} for i in range(5)])
            assert [s["index"] for s in reply["successful"]] == [0, 1, 2]
            assert [f["index"] for f in reply["failed"]] == [3, 4]
            assert all("user rate limit reached (3 per 60 s)" in f["message"] for f in reply["failed"])
            # The room: 10 per window across all users (Ann's refused attempts did not count).
            for c, name in zip(clients[1:3], ("bob", "cat"), strict=True):
                reply = await c.publish(ch, *[{"content": f"{name} {i}"} for i in range(3)])
                assert len(reply["successful"]) == 3
            reply = await clients[3].publish(ch, *[{"content": f"dan {i}"} for i in range(3)])
            assert len(reply["successful"]) == 1
            assert all("RateLimitExceededException: room rate limit reached (10 per 60 s)" in f["message"]
                       for f in reply["failed"])
            await w.wait_for(ch, lambda e: e.get("content") == "dan 0")
            # Reactions have limits of their own; the socket is fine after refusals.
            await clients[3].subscribe(ch + "/reactions")
            await clients[3].publish_ok(ch + "/reactions", {"kind": "fire"})
            await clients[3].wait_for(ch + "/reactions", lambda e: e.get("kind") == "fire")
            # Another room is not affected by this room's limit.
            async with viewer(srv, "Eve", other).client(srv) as e:
                await e.subscribe(f"/chat/{other}")
                await e.publish_ok(f"/chat/{other}", {"content": "quiet here"})
                await e.wait_for(f"/chat/{other}", lambda ev: ev.get("content") == "quiet here")
        finally:
            for c in clients:
                await c.close()
        got = [e["content"] for e in w.events[ch] if e["type"] == "MESSAGE"]
        assert len(got) == 10 and "ann 3" not in got and "dan 1" not in got


async def test_review_hook(srv: ChatServer, rooms: list[str]) -> None:
    sid = rooms[0]
    ch = f"/chat/{sid}"
    watcher = viewer(srv, "Watcher", sid)
    async with watcher.client(srv) as w:
        await w.subscribe(ch)

        async def say(name: str, text: str) -> dict:
            async with viewer(srv, name, sid).client(srv) as c:
                return await c.publish(ch, {"content": text, "attributes": {"lang": "en"}})

        assert (await say("A", "hello there"))["successful"]
        denied = await say("B", "a forbidden word")
        assert denied["failed"][0]["message"] == "MessageDeniedException: that word is not allowed here"
        assert (await say("C", "oh darn"))["successful"]
        masked = await w.wait_for(ch, lambda e: e.get("content", "").startswith("oh "))
        assert masked["content"] == "oh d**n" and masked["attributes"] == {"masked": "1"}

        # Late (the hook sleeps 5 s, the budget is 150 ms) or failing hook: the fallback verdict (DENY) decides.
        t0 = time.monotonic()
        late = await say("D", "slow one")
        assert time.monotonic() - t0 < 4.0, "the review budget was not enforced"
        assert late["failed"] and "could not be reviewed" in late["failed"][0]["message"]
        assert (await say("E", "crash please"))["failed"]

        # With fallback ALLOW the same messages go through unchanged.
        srv.chat.rooms.reviewer.fallback = "ALLOW"
        try:
            assert (await say("F", "slow again"))["successful"]
            assert (await say("G", "crash again"))["successful"]
        finally:
            srv.chat.rooms.reviewer.fallback = "DENY"
        await w.wait_for(ch, lambda e: e.get("content") == "crash again")
        contents = [e["content"] for e in w.events[ch] if e["type"] == "MESSAGE"]
        assert contents == ["hello there", "oh d**n", "slow again", "crash again"]
