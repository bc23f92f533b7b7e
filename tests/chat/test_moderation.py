"""Moderation with real WebSocket clients: DELETE_MESSAGE reaches every client, disconnect closes a user's sockets,
a ban closes them and keeps the user out (subscribe, publish, token) until unbanned; who may moderate (player,
moderator/admin token) and the REST errors (401/403/404/409)."""

from __future__ import annotations

import httpx
import pytest

from playcast.events.protocol import CLOSE_KICKED
from tests.chat.appsync import Refused
from tests.chat.support import ChatServer
from tests.chat.users import token_for, viewer


async def test_delete_message_everyone_applies(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    sid, player_http = room
    ch = f"/chat/{sid}"
    ann, bob = viewer(srv, "Ann", sid), viewer(srv, "Bob", sid)
    player = token_for(player_http, "Pia", sid)
    async with ann.client(srv) as a, bob.client(srv) as b, player.client(srv) as p:
        for c in (a, b, p):
            await c.subscribe(ch)
        await a.publish_ok(ch, {"content": "spam spam spam"})
        await a.publish_ok(ch, {"content": "a fine message"})
        spam = await p.wait_for(ch, lambda e: e.get("content") == "spam spam spam")
        fine = await p.wait_for(ch, lambda e: e.get("content") == "a fine message")

        # A viewer cannot delete; the refusal is per event and nothing is broadcast.
        reply = await b.publish(ch, {"action": "DELETE_MESSAGE", "messageId": spam["id"]})
        assert reply["failed"] and "UnauthorizedException" in reply["failed"][0]["message"]

        # The player deletes over the socket: every client gets DELETE_MESSAGE for that id.
        await p.publish_ok(ch, {"action": "DELETE_MESSAGE", "messageId": spam["id"], "reason": "spam"})
        for c in (a, b, p):
            d = await c.wait_for(ch, lambda e: e["type"] == "DELETE_MESSAGE")
            assert d["messageId"] == spam["id"] and d["reason"] == "spam" and d["sender"]["role"] == "player"
        reply = await p.publish(ch, {"action": "DELETE_MESSAGE", "messageId": spam["id"]})
        assert "ConflictException" in reply["failed"][0]["message"]

        # The admin deletes over REST; clients get the same event.
        admin = srv.admin()
        r = admin.request("DELETE", f"/v1/chat/{sid}/messages/{fine['id']}", json={"reason": "off topic"})
        assert r.status_code == 200, r.text
        assert r.json()["messageId"] == fine["id"] and r.json()["sender"]["role"] == "admin"
        d2 = await b.wait_for(ch, lambda e: e["type"] == "DELETE_MESSAGE" and e["messageId"] == fine["id"])
        assert d2["reason"] == "off topic"

    # REST errors: unknown message 404, unknown room 404, viewer 403, nobody 401, already deleted 409.
    assert admin.delete(f"/v1/chat/{sid}/messages/AAAAAAAAAAAA").status_code == 404
    assert admin.delete(f"/v1/chat/NoSuchRoom123/messages/{fine['id']}").status_code == 404
    assert ann.http.delete(f"/v1/chat/{sid}/messages/{fine['id']}").status_code == 403
    assert httpx.delete(f"{srv.url}/v1/chat/{sid}/messages/{fine['id']}").status_code == 401
    assert admin.delete(f"/v1/chat/{sid}/messages/{fine['id']}").status_code == 409


async def test_disconnect_and_ban(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    sid, player_http = room
    ch = f"/chat/{sid}"
    troll, ann = viewer(srv, "Troll", sid), viewer(srv, "Ann", sid)
    player = token_for(player_http, "Pia", sid)
    async with ann.client(srv) as a, player.client(srv) as p:
        await a.subscribe(ch)
        await p.subscribe(ch)

        # Disconnect (player, over the socket): the troll's sockets close with 4403; others are unaffected.
        t1, t2 = troll.client(srv), troll.client(srv)
        for t in (t1, t2):
            await t.connect()
            await t.subscribe(ch)
        await p.publish_ok(ch, {"action": "DISCONNECT_USER", "userId": troll.user_id, "reason": "calm down"})
        for t in (t1, t2):
            code, reason = await t.wait_closed()
            assert code == CLOSE_KICKED and "calm down" in reason
        ev = await a.wait_for(ch, lambda e: e["type"] == "DISCONNECT_USER")
        assert ev["userId"] == troll.user_id and ev["connections"] == 2

        # The same over REST (the admin): one socket closed; a viewer may not; unknown users close nothing.
        t3 = troll.client(srv)
        await t3.connect()
        await t3.subscribe(ch)
        assert ann.http.post(f"/v1/chat/{sid}/disconnections", json={"userId": troll.user_id}).status_code == 403
        r = srv.admin().post(f"/v1/chat/{sid}/disconnections", json={"userId": troll.user_id})
        assert r.status_code == 200 and r.json()["connections"] == 1
        assert (await t3.wait_closed())[0] == CLOSE_KICKED
        r = srv.admin().post(f"/v1/chat/{sid}/disconnections", json={"userId": "u-nobody-here"})
        assert r.status_code == 200 and r.json()["connections"] == 0

        # Not banned: the troll may come back.
        async with troll.client(srv) as t:
            await t.subscribe(ch)
            await t.publish_ok(ch, {"content": "sorry"})
            await a.wait_for(ch, lambda e: e.get("content") == "sorry")

            # Ban (REST, by the player): the socket closes; subscribe, publish and a room token are refused.
            r = player_http.post(f"/v1/chat/{sid}/bans", json={"userId": troll.user_id, "reason": "again"})
            assert r.status_code == 201, r.text
            assert r.json()["connections"] == 1
            code, _ = await t.wait_closed()
            assert code == CLOSE_KICKED
        banned = await a.wait_for(ch, lambda e: e["type"] == "BAN_USER")
        assert banned["userId"] == troll.user_id and banned["reason"] == "again"
        async with troll.client(srv) as t:
            for channel in (ch, ch + "/reactions", ch + "/presence", f"{ch}/*"):
                with pytest.raises(Refused) as info:
                    await t.subscribe(channel)
                assert "banned" in info.value.message
            with pytest.raises(Refused) as info:
                await t.publish(ch, {"content": "let me in"})
            assert info.value.error_type == "UnauthorizedException"
        assert troll.http.get("/v1/events/token", params={"room": sid}).status_code == 403
        assert troll.http.get(f"/v1/chat/{sid}/messages").status_code == 403
        assert player_http.post(f"/v1/chat/{sid}/bans", json={"userId": troll.user_id}).status_code == 409
        info = player_http.get(f"/v1/chat/{sid}").json()
        assert [b["userId"] for b in info["bans"]] == [troll.user_id]

        # Nobody bans themselves or the player; viewers do not ban at all.
        assert player_http.post(f"/v1/chat/{sid}/bans", json={"userId": player.user_id}).status_code == 400
        assert ann.http.post(f"/v1/chat/{sid}/bans", json={"userId": player.user_id}).status_code == 403
        reply = await a.publish(ch, {"action": "BAN_USER", "userId": troll.user_id})
        assert "UnauthorizedException" in reply["failed"][0]["message"]
        assert player_http.post(f"/v1/chat/{sid}/bans", json={"nope": 1}).status_code == 400
        assert player_http.post(f"/v1/chat/{sid}/bans", content=b"{not json").status_code == 400

        # A moderator token (role moderator) unbans over the socket; the user may chat again.
        mod = token_for(srv.admin(), "Mod")  # admin tokens carry the admin role: moderation rights everywhere
        async with mod.client(srv) as m:
            await m.publish_ok(ch, {"action": "UNBAN_USER", "userId": troll.user_id})
        await a.wait_for(ch, lambda e: e["type"] == "UNBAN_USER")
        assert player_http.delete(f"/v1/chat/{sid}/bans/{troll.user_id}").status_code == 404
        async with troll.client(srv) as t:
            await t.subscribe(ch)
            await t.publish_ok(ch, {"content": "I'll behave"})


async def test_moderator_role_token(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    """A token with the moderator role (issued by the events core, as an operator's backend would) moderates."""
    sid, _ = room
    ch = f"/chat/{sid}"
    ann = viewer(srv, "Ann", sid)
    mod_token = srv.events.auth.issue_user_token("mod-1", "Moe", ["moderator"], {"chat": {"pub": True, "sub": True}})
    from tests.chat.appsync import Client

    async with ann.client(srv) as a, Client(srv.realtime_url, srv.http_url, token=mod_token) as m:
        await a.subscribe(ch)
        await m.subscribe(ch)
        await a.publish_ok(ch, {"content": "delete me"})
        msg = await m.wait_for(ch, lambda e: e.get("content") == "delete me")
        await m.publish_ok(ch, {"action": "DELETE_MESSAGE", "messageId": msg["id"]})
        d = await a.wait_for(ch, lambda e: e["type"] == "DELETE_MESSAGE")
        assert d["sender"] == {"userId": "mod-1", "displayName": "Moe", "role": "moderator"}
