"""`playcast server` (the same events wiring as `playcast up`): credentials.json gets the events key and URLs,
namespace `default` works over WebSocket and HTTP, and the API key and the token signing secret survive a
restart (the secret lives in the database), so issued user tokens stay valid."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from playcast.events.auth import EventsAuth
from playcast.events.protocol import SUBPROTOCOL, encode_auth_subprotocol
from playcast.events.wiring import SECRET_NAME
from tests.events.support import api_key_headers, client, playcast_server, token_headers


async def test_server_credentials_default_namespace_and_restart() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="playcast-test-events-cli-"))
    try:
        with playcast_server({}, data_dir=data_dir) as first:
            creds = first.credentials()
            key = creds["events_api_key"]
            assert key.startswith("da2-") and len(key) == 30
            assert creds["events_http_url"] == f"http://{first.host}/event"
            assert creds["events_realtime_url"] == f"ws://{first.host}/event/realtime"
            async with client(creds["events_realtime_url"], api_key_headers(first.host, key)) as c, \
                    httpx.AsyncClient() as http:
                ok = await c.subscribe("/default/cli", "s")
                assert ok["type"] == "subscribe_success"
                resp = await http.post(creds["events_http_url"], headers={"x-api-key": key},
                                       json={"channel": "/default/cli", "events": [json.dumps("via http")]})
                assert resp.status_code == 200
                assert (await c.data("s"))["event"] == '"via http"'
            port = first.port

        with sqlite3.connect(data_dir / "playcast.db") as db:
            (secret_hex,) = db.execute("SELECT value FROM server_secrets WHERE name = ?", (SECRET_NAME,)).fetchone()
        token = EventsAuth(key, bytes.fromhex(secret_hex)).issue_user_token("u1", rights={"*": {"sub": True}})
        forged = EventsAuth(key, b"x" * 32).issue_user_token("u1", rights={"*": {"sub": True}})

        with playcast_server({}, data_dir=data_dir, port=port) as second:
            assert second.credentials()["events_api_key"] == key  # kept across restarts
            async with client(second.realtime_url, token_headers(second.host, token)) as c:
                # the token signed before the restart still authenticates (namespace `default` is API-key only)
                err = await c.subscribe("/default/cli", "s")
                assert "USER_TOKEN may not subscribe" in err["errors"][0]["message"]
            async with client(second.realtime_url, None, init=False,
                              subprotocols=[SUBPROTOCOL, encode_auth_subprotocol(token_headers(second.host,
                                                                                                 forged))]) as c:
                await c.send({"type": "connection_init"})
                assert (await c.expect("connection_error"))["errors"][0]["message"].startswith("invalid token")
                with pytest.raises(ConnectionClosed):
                    await c.next()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
