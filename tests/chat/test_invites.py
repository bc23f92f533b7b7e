"""Viewer invitations: the player mints a signed link; redeeming it gives a guest cookie for that one room, which
gets chat tokens for that room only and nothing else (no games, no other rooms)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from playcast.api.chat import Invites
from tests.chat.appsync import Refused
from tests.chat.support import ChatServer, running_sessions
from tests.chat.users import token_for


@pytest.fixture
def rooms(srv: ChatServer, app_dir: Path):  # type: ignore[no-untyped-def]
    """Two sessions of one player, and that player's HTTP client."""
    player_http, player_id = srv.player()
    with running_sessions(srv, app_dir, 2, player_id) as sids:
        yield sids, player_http


async def test_invite_link_gives_a_guest_one_room(srv: ChatServer, rooms) -> None:  # type: ignore[no-untyped-def]
    (sid, other), player_http = rooms
    r = player_http.post(f"/v1/chat/{sid}/invites")
    assert r.status_code == 201, r.text
    invite = r.json()
    assert invite["url"] == f"{srv.url}/watch/{sid}?invite={invite['invite']}" and invite["expiresAt"].endswith("Z")

    # Only the player (or moderators/admin) invites; unknown rooms are 404; strangers 401.
    assert srv.browser_user().post(f"/v1/chat/{sid}/invites").status_code == 403
    assert player_http.post("/v1/chat/NoSuchRoom123/invites").status_code == 404
    assert httpx.post(f"{srv.url}/v1/chat/{sid}/invites").status_code == 401
    assert srv.admin().post(f"/v1/chat/{sid}/invites").status_code == 201

    guest = httpx.Client(base_url=srv.url, timeout=30)
    assert guest.get(f"/watch/{sid}", params={"invite": invite["invite"]}).status_code == 200  # the page
    assert guest.get(f"/v1/chat/{sid}").status_code == 401  # not yet redeemed
    non_ascii = invite["invite"][:-1] + "é"  # a MAC that is not ASCII: was a 500
    for bad in ("nonsense", invite["invite"].replace(sid, other), invite["invite"][:-2] + "00", "", non_ascii):
        assert guest.post("/v1/chat/invites/redeem", json={"invite": bad}).status_code == 403
    lone_surrogate = json.dumps({"invite": invite["invite"][:-1] + "\ud800"})  # names no character: was a 500
    assert guest.post("/v1/chat/invites/redeem", content=lone_surrogate,
                      headers={"Content-Type": "application/json"}).status_code == 400
    assert guest.post("/v1/chat/invites/redeem", content=b"[1").status_code == 400
    red = guest.post("/v1/chat/invites/redeem", json={"invite": invite["invite"]})
    assert red.status_code == 200 and red.json()["guest"] and red.json()["roomId"] == sid
    assert "httponly" in red.headers["set-cookie"].lower()
    guest_id = red.json()["userId"]
    assert guest_id.startswith(f"g-{sid}-")
    again = guest.post("/v1/chat/invites/redeem", json={"invite": invite["invite"]})
    assert again.json()["userId"] == guest_id  # the same guest on a second visit

    # The guest chats in that room and nowhere else, and cannot start games.
    g = token_for(guest, "Guest", sid)
    assert g.user_id == guest_id and g.doc["room"]["role"] == "viewer"
    assert guest.get("/v1/events/token", params={"room": other}).status_code == 403
    assert guest.get("/v1/events/token").status_code == 400
    assert guest.get("/v1/play/apps").status_code == 401
    async with g.client(srv) as c:
        await c.subscribe(f"/chat/{sid}")
        await c.publish_ok(f"/chat/{sid}", {"content": "hi from a guest"})
        await c.wait_for(f"/chat/{sid}", lambda e: e.get("content") == "hi from a guest")
        with pytest.raises(Refused) as info:
            await c.subscribe(f"/chat/{other}")
        assert "another stream" in info.value.message

    # A logged-in user keeps their own identity when they open an invitation.
    user = srv.browser_user()
    mine = user.post("/v1/chat/invites/redeem", json={"invite": invite["invite"]}).json()
    assert mine["guest"] is False and not mine["userId"].startswith("g-")


def test_invite_tokens() -> None:
    inv = Invites(b"k" * 32)
    token, _ = inv.mint("Room12345", ttl_s=60)
    assert inv.verify(token) == "Room12345"
    expired, _ = inv.mint("Room12345", ttl_s=-5)
    assert inv.verify(expired) is None
    assert Invites(b"x" * 32).verify(token) is None
    assert inv.verify("a.b.c") is None and inv.verify("bad room!.1.2") is None
