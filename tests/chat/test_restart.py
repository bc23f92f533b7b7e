"""Chat history and bans survive a server restart (same data directory, SQLite): replay still returns what was
said and deleted, and a banned user stays out."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.chat.appsync import Refused
from tests.chat.conftest import assert_nothing_left
from tests.chat.support import SLEEPER, make_app_dir, start_chat_server, start_session
from tests.chat.users import token_for


async def test_history_and_bans_survive_restart(tmp_path: Path, own_tmp: str) -> None:
    app_dir = make_app_dir(tmp_path / "game", SLEEPER)
    srv = start_chat_server(tmp_path, slots=1)
    try:
        player_http = srv.browser_user()
        player_id = player_http.get("/v1/events/token").json()["userId"]
        _, sid = start_session(srv, app_dir, user_id=player_id)
        ch = f"/chat/{sid}"
        ann_http, troll_http = srv.browser_user(), srv.browser_user()
        ann, troll = token_for(ann_http, "Ann", sid), token_for(troll_http, "Troll", sid)
        async with ann.client(srv) as a, troll.client(srv) as t:
            await a.subscribe(ch)
            await a.publish_ok(ch, {"content": "before the restart"})
            await t.publish_ok(ch, {"content": "rude words"})
            rude = await a.wait_for(ch, lambda e: e.get("content") == "rude words")
        assert player_http.delete(f"/v1/chat/{sid}/messages/{rude['id']}").status_code == 200
        assert player_http.post(f"/v1/chat/{sid}/bans", json={"userId": troll.user_id}).status_code == 201
        before = ann_http.get(f"/v1/chat/{sid}/messages").json()["items"]
        cookies = (dict(ann_http.cookies), dict(troll_http.cookies))
    finally:
        srv.stop()
    assert_nothing_left(own_tmp)

    srv = start_chat_server(tmp_path, slots=1)  # same data dir
    try:
        ann_http = httpx.Client(base_url=srv.url, cookies=cookies[0], timeout=30)  # the same browsers
        troll_http = httpx.Client(base_url=srv.url, cookies=cookies[1], timeout=30)
        after = ann_http.get(f"/v1/chat/{sid}/messages").json()["items"]
        assert after == before and [i["type"] for i in after] == ["MESSAGE", "MESSAGE", "DELETE_MESSAGE", "BAN_USER"]
        assert after[1]["content"] is None and after[1]["deleted"]["type"] == "DELETE_MESSAGE"
        assert troll_http.get("/v1/events/token", params={"room": sid}).status_code == 403
        # Even with a token for the namespace (no room given), the ban holds on the socket.
        troll = token_for(troll_http, "Troll")
        async with troll.client(srv) as t:
            try:
                await t.subscribe(f"/chat/{sid}")
                raise AssertionError("a banned user subscribed after the restart")
            except Refused as exc:
                assert "banned" in exc.message
    finally:
        srv.stop()
    assert_nothing_left(own_tmp)
