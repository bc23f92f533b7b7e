"""The game bridge with the real demo game in a real session: chat messages and reactions reach the game as JSON
application messages from client 0; the game's own messages to client 0 (the demo echoes) come back on
/chat/<id>/game for every subscriber."""

from __future__ import annotations

import pytest

from playcast.events.chat.shapes import from_game, game_payload
from tests.chat.support import DEMO_APP_DIR, ChatServer, end_session, start_session
from tests.chat.users import viewer


@pytest.fixture
def demo_room(srv: ChatServer):  # type: ignore[no-untyped-def]
    group, sid = start_session(srv, DEMO_APP_DIR, executable="playcast-demo", description="demo")
    try:
        yield sid
    finally:
        end_session(srv, group, sid)


async def test_chat_and_reactions_reach_the_game_and_back(srv: ChatServer, demo_room: str) -> None:
    sid = demo_room
    ch = f"/chat/{sid}"
    ann, bob = viewer(srv, "Ann", sid), viewer(srv, "Bob", sid)
    async with ann.client(srv) as a, bob.client(srv) as b:
        await b.subscribe(ch + "/game")
        await a.publish_ok(ch, {"content": "go left!"})
        await a.publish_ok(ch + "/reactions", {"kind": "fire"})
        chat = await b.wait_for(ch + "/game", lambda e: e.get("data", {}).get("type") == "chat", timeout=60)
        assert chat["type"] == "GAME" and chat["data"]["text"] == "go left!" and chat["data"]["user"] == "Ann"
        assert chat["data"]["userId"] == ann.user_id and chat["data"]["role"] == "viewer"
        react = await b.wait_for(ch + "/game", lambda e: e.get("data", {}).get("type") == "reaction", timeout=30)
        assert react["data"]["emoji"] == "🔥" and react["data"]["kind"] == "fire" and react["data"]["user"] == "Ann"
        # Order is kept per session: the chat message was delivered to the game before the reaction.
        types = [e["data"]["type"] for e in b.events[ch + "/game"]]
        assert types.index("chat") < types.index("reaction")
        # Nobody but the server publishes on the game channel.
        reply = await a.publish_raw(ch + "/game", [{"type": "GAME", "data": "fake"}])
        assert reply["type"] != "publish_success" and reply["errors"][0]["errorType"] == "UnauthorizedException"


def test_payload_shapes() -> None:
    ev = {"type": "MESSAGE", "id": "AbCdEfGh1234", "content": "hi", "ts": 1.5,
          "sender": {"userId": "u-1", "displayName": "Ann", "role": "viewer"}}
    assert game_payload(ev) == (b'{"type":"chat","text":"hi","id":"AbCdEfGh1234","user":"Ann","userId":"u-1",'
                                b'"role":"viewer","ts":1.5}')
    assert game_payload({"type": "DELETE_MESSAGE"}) is None
    assert from_game(b'{"score": 3}', 2.0)["data"] == {"score": 3}
    assert from_game(b"plain words", 2.0)["text"] == "plain words"
    assert from_game(b"\xff\xfe", 2.0)["binaryBytes"] == 2
