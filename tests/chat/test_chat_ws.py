"""Chat over real AppSync Events WebSockets against the real server: messages, reactions, metadata, presence, and
the refusals (unknown rooms, bad channels, server-only channels, bad payloads) that leave other clients untouched."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.chat.appsync import Client, Refused
from tests.chat.support import API_KEY, ChatServer
from tests.chat.users import token_for, viewer

ID_RE = re.compile(r"^[A-Za-z0-9]{12}$")


async def test_messages_reactions_metadata(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    sid, player_http = room
    ann, bob = viewer(srv, "Ann", sid), viewer(srv, "Bob", sid)
    player = token_for(player_http, "Pia", sid)
    assert ann.doc["room"]["role"] == "viewer" and not ann.doc["room"]["canModerate"]
    assert player.doc["room"]["role"] == "player" and player.doc["room"]["canModerate"]
    assert set(ann.doc["room"]["reactions"]) >= {"heart", "fire"}
    ch = f"/chat/{sid}"
    async with ann.client(srv) as a, bob.client(srv) as b, player.client(srv) as p:
        for c in (a, b, p):
            await c.subscribe(ch)
            await c.subscribe(ch + "/reactions")
            await c.subscribe(ch + "/meta")
        before = time.time()
        await a.publish_ok(ch, {"content": "hello 👋", "attributes": {"color": "red"}, "requestId": "r1"})
        msg = await b.wait_for(ch, lambda e: e["type"] == "MESSAGE")
        assert ID_RE.match(msg["id"]) and msg["roomId"] == sid
        assert msg["content"] == "hello 👋" and msg["attributes"] == {"color": "red"} and msg["requestId"] == "r1"
        assert msg["sender"] == {"userId": ann.user_id, "displayName": "Ann", "role": "viewer"}
        assert before - 1 <= msg["ts"] <= time.time() + 1 and msg["sendTime"].endswith("Z")
        assert (await a.wait_for(ch, lambda e: e["type"] == "MESSAGE"))["id"] == msg["id"]  # the sender too

        # A bare string is a message too; the player's messages carry the player role.
        await p.publish_ok(ch, "welcome!")
        pm = await a.wait_for(ch, lambda e: e.get("content") == "welcome!")
        assert pm["sender"]["role"] == "player" and pm["sender"]["displayName"] == "Pia"

        # Per-event failures: too long, empty, wrong types, unknown action; the good event in the batch goes out.
        reply = await a.publish(ch, {"content": "x" * 501}, {"content": "  "}, {"content": "ok one"},
                                {"content": 5}, {"action": "SHOUT", "content": "hi"})
        assert [s["index"] for s in reply["successful"]] == [2]
        failed = {f["index"]: f["message"] for f in reply["failed"]}
        assert set(failed) == {0, 1, 3, 4}
        assert "limit is 500" in failed[0] and "empty" in failed[1] and "string" in failed[3] \
            and "unknown action" in failed[4]
        await b.wait_for(ch, lambda e: e.get("content") == "ok one")
        assert not any(e.get("content", "").startswith("xxx") for e in b.events[ch])

        # Reactions: a fixed set of kinds, each with its emoji.
        await b.publish_ok(ch + "/reactions", {"kind": "heart"})
        r = await p.wait_for(ch + "/reactions", lambda e: e["type"] == "REACTION")
        assert r["kind"] == "heart" and r["emoji"] == "❤️" and r["sender"]["userId"] == bob.user_id
        reply = await b.publish(ch + "/reactions", {"kind": "poop"})
        assert reply["failed"] and "reaction" in reply["failed"][0]["message"]

        # Metadata (game state, donations): the player (and moderators, backends) only.
        reply = await a.publish(ch + "/meta", {"name": "donation", "attributes": {"amount": "5"}})
        assert reply["failed"] and "UnauthorizedException" in reply["failed"][0]["message"]
        await p.publish_ok(ch + "/meta", {"name": "donation", "attributes": {"amount": "5", "from": "Ann"}})
        meta = await a.wait_for(ch + "/meta", lambda e: e["type"] == "EVENT")
        assert meta["name"] == "donation" and meta["attributes"] == {"amount": "5", "from": "Ann"}

    # AppSync's HTTP publish goes through the same rules (here: a user token, then a too-long message).
    async with bob.client(srv) as b:
        await b.subscribe(ch)
        r = httpx.post(srv.http_url, headers={"Authorization": ann.token}, timeout=30,
                       json={"channel": ch, "events": [json.dumps({"content": "via HTTP"}),
                                                       json.dumps({"content": "y" * 600})]})
        assert r.status_code == 200, r.text
        assert [s["index"] for s in r.json()["successful"]] == [0] and r.json()["failed"][0]["index"] == 1
        via = await b.wait_for(ch, lambda e: e.get("content") == "via HTTP")
        assert via["sender"]["userId"] == ann.user_id

    # A backend with the API key publishes metadata as the system.
    async with Client(srv.realtime_url, srv.http_url, api_key=API_KEY) as backend, ann.client(srv) as a:
        await a.subscribe(ch + "/meta")
        await backend.publish_ok(ch + "/meta", {"name": "game-state", "attributes": {"level": "3"}})
        state = await a.wait_for(ch + "/meta", lambda e: e.get("name") == "game-state")
        assert state["sender"]["role"] == "system"


async def test_presence_counts_and_join_leave(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    sid, _ = room
    ch = f"/chat/{sid}"
    watcher, ann, bob = viewer(srv, "Watcher", sid), viewer(srv, "Ann", sid), viewer(srv, "Bob", sid)
    async with watcher.client(srv) as w:
        await w.subscribe(ch + "/presence")
        await w.subscribe(ch)
        first = await w.wait_for(ch + "/presence", lambda e: e["viewers"] == 1)
        assert first["counts"]["room"] == 1 and first["counts"]["presence"] == 1
        a = ann.client(srv)
        await a.connect()
        await a.subscribe(ch)
        joined = await w.wait_for(ch + "/presence", lambda e: e["viewers"] == 2)
        assert {"userId": ann.user_id, "displayName": "Ann"} in joined["joined"]
        async with bob.client(srv) as b:
            await b.subscribe(ch)
            await b.subscribe(ch + "/reactions")
            three = await w.wait_for(ch + "/presence", lambda e: e["viewers"] == 3)
            assert three["counts"]["reactions"] >= 0
        left = await w.wait_for(ch + "/presence", lambda e: e["viewers"] == 2 and e["left"])
        assert left["left"] == [{"userId": bob.user_id, "displayName": "Bob"}]
        await a.close()
        await w.wait_for(ch + "/presence", lambda e: e["viewers"] == 1 and any(
            x["userId"] == ann.user_id for x in e["left"]))
        info = watcher.http.get(f"/v1/chat/{sid}").json()
        assert info["viewers"] == 1 and info["id"] == sid and "bans" not in info


async def test_refusals_do_not_affect_others(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    sid, _ = room
    ch = f"/chat/{sid}"
    ann, bob = viewer(srv, "Ann", sid), viewer(srv, "Bob", sid)
    async with ann.client(srv) as a, bob.client(srv) as b:
        await b.subscribe(ch)
        for bad, kind in ((f"/chat/{sid}/nonsense", "unknown chat channel"), ("/chat/NoSuchSession1", "no chat room"),
                          ("/chat/*", "only admins")):
            with pytest.raises(Refused) as info:
                await a.subscribe(bad)
            assert kind in info.value.message, info.value.message
        for server_only in ("presence", "game"):
            with pytest.raises(Refused) as info:
                await a.publish(f"{ch}/{server_only}", {"type": "PRESENCE", "viewers": 1000})
            assert info.value.error_type == "UnauthorizedException"
        with pytest.raises(Refused) as info:
            await a.publish("/chat/NoSuchSession1", {"content": "hi"})
        assert info.value.error_type == "NotFoundException"
        # The connection is still fine, and so is everyone else's.
        await a.publish_ok(ch, {"content": "still here"})
        await b.wait_for(ch, lambda e: e.get("content") == "still here")
    # Admins may watch every room at once.
    admin = token_for(srv.admin(), "Admin")
    async with admin.client(srv) as adm, ann.client(srv) as a:
        await adm.subscribe("/chat/*")
        await a.publish_ok(ch, {"content": "seen by the admin"})
        # `/chat/*` matches one segment below /chat only; rooms' own channels are /chat/<id>.
        await adm.wait_for("/chat/*", lambda e: e.get("content") == "seen by the admin")
