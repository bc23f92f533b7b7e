"""Chat test users: a browser identity (login cookie or guest cookie or admin) with its events token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.chat.appsync import Client
from tests.chat.support import ChatServer


@dataclass
class User:
    http: httpx.Client
    token: str
    user_id: str
    name: str
    doc: dict[str, Any]

    def client(self, srv: ChatServer) -> Client:
        return Client(srv.realtime_url, srv.http_url, token=self.token)


def token_for(http: httpx.Client, name: str, room: str | None = None) -> User:
    params = {"displayName": name, **({"room": room} if room else {})}
    r = http.get("/v1/events/token", params=params)
    assert r.status_code == 200, r.text
    doc = r.json()
    return User(http, doc["token"], doc["userId"], doc["displayName"], doc)


def viewer(srv: ChatServer, name: str, room: str | None = None) -> User:
    return token_for(srv.browser_user(), name, room)
