"""History and replay: every message, reaction, metadata event and moderation action is persisted with server time;
GET /v1/chat/{id}/messages returns a time range (paged, or the latest N) with moderation applied."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from tests.chat.support import ChatServer
from tests.chat.users import token_for, viewer
from tests.harness import wait_until


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_replay_by_time_range_with_moderation(srv: ChatServer, room) -> None:  # type: ignore[no-untyped-def]
    sid, player_http = room
    ch = f"/chat/{sid}"
    ann, bob = viewer(srv, "Ann", sid), viewer(srv, "Bob", sid)
    player = token_for(player_http, "Pia", sid)
    sent = []
    async with ann.client(srv) as a, bob.client(srv) as b, player.client(srv) as p:
        await p.subscribe(ch)
        for i, c in enumerate((a, b, a)):
            await c.publish_ok(ch, {"content": f"m{i}"})
            sent.append(await p.wait_for(ch, lambda e, i=i: e.get("content") == f"m{i}"))
            wait_until(lambda: time.time() > sent[-1]["ts"] + 0.05, 1, "the clock to move on")
        await b.publish_ok(ch + "/reactions", {"kind": "clap"})
        await p.publish_ok(ch + "/meta", {"name": "level", "attributes": {"n": "2"}})
        await p.publish_ok(ch, {"action": "DELETE_MESSAGE", "messageId": sent[1]["id"], "reason": "rude"})
        deletion = await p.wait_for(ch, lambda e: e["type"] == "DELETE_MESSAGE")
    t0, t2 = sent[0]["ts"], sent[2]["ts"]

    # Everything, oldest first, for a viewer: the deleted message comes with its deletion, without its content.
    doc = ann.http.get(f"/v1/chat/{sid}/messages", params={"from": _iso(t0 - 1)}).json()
    kinds = [(i["type"], i.get("content") or i.get("kind") or i.get("name") or i.get("messageId"))
             for i in doc["items"]]
    assert kinds == [("MESSAGE", "m0"), ("MESSAGE", None), ("MESSAGE", "m2"), ("REACTION", "clap"),
                     ("EVENT", "level"), ("DELETE_MESSAGE", sent[1]["id"])]
    deleted = doc["items"][1]
    assert deleted["id"] == sent[1]["id"] and deleted["deleted"]["id"] == deletion["id"]
    assert deleted["deleted"]["reason"] == "rude" and deleted["deleted"]["ts"] >= deleted["ts"]
    assert doc["items"][0] == {k: v for k, v in sent[0].items()}  # the same shape as the live event
    assert doc["nextToken"] is None

    # The player (a moderator of the room) still sees what was deleted.
    mod_doc = player_http.get(f"/v1/chat/{sid}/messages", params={"from": t0 - 1}).json()
    assert mod_doc["items"][1]["content"] == "m1" and mod_doc["items"][1]["deleted"]["reason"] == "rude"

    # A range [t1, t2] (epoch milliseconds work too): only what happened then; the deletion (later) still rides
    # along with its message so a replay honours it.
    doc = ann.http.get(f"/v1/chat/{sid}/messages",
                       params={"from": int(sent[1]["ts"] * 1000), "to": f"{t2:.6f}"}).json()
    assert [i["id"] for i in doc["items"]] == [sent[1]["id"], sent[2]["id"]]
    assert doc["items"][0]["deleted"]["type"] == "DELETE_MESSAGE"

    # Paging and "latest N".
    page1 = ann.http.get(f"/v1/chat/{sid}/messages", params={"limit": 4}).json()
    page2 = ann.http.get(f"/v1/chat/{sid}/messages", params={"limit": 4, "nextToken": page1["nextToken"]}).json()
    assert len(page1["items"]) == 4 and len(page2["items"]) == 2 and page2["nextToken"] is None
    latest = ann.http.get(f"/v1/chat/{sid}/messages", params={"latest": 2}).json()
    assert [i["type"] for i in latest["items"]] == ["EVENT", "DELETE_MESSAGE"]

    # Bad input is refused clearly; unknown rooms are 404; strangers are 401.
    for params, what in (({"from": "yesterday"}, "ISO 8601"), ({"from": t2, "to": t0}, "before"),
                         ({"limit": 0}, "between"), ({"latest": 5000}, "between"), ({"nextToken": "@@"}, "nextToken")):
        r = ann.http.get(f"/v1/chat/{sid}/messages", params=params)
        assert r.status_code == 400 and what in r.json()["error"]["message"], (params, r.text)
    assert ann.http.get("/v1/chat/NoSuchRoom123/messages").status_code == 404
    assert httpx.get(f"{srv.url}/v1/chat/{sid}/messages").status_code == 401
