"""The auth matrix with real clients: API key vs user tokens (rights per namespace, '*' rights), per-namespace
auth modes, per-message credentials, and refusals for bad keys and forged, expired or missing tokens."""

from __future__ import annotations

import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from playcast.events.auth import EventsAuth
from playcast.events.protocol import SUBPROTOCOL
from tests.events.support import API_KEY, SECRET, Running, api_key_headers, client, token_headers


def _token(server: Running, rights: dict[str, dict[str, bool]], user: str = "u1", roles: tuple[str, ...] = ()) -> str:
    return server.service.auth.issue_user_token(user, f"User {user}", roles, rights, ttl_s=600)


async def _refused_at_connect(server: Running, subprotocols: list[str], why: str) -> None:
    async with client(server.realtime_url, None, subprotocols=subprotocols, init=False) as c:
        await c.send({"type": "connection_init"})
        err = await c.expect("connection_error")
        assert err["errors"][0]["errorType"] == "UnauthorizedException"
        assert why in err["errors"][0]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await c.next()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_connection_refused_for_bad_or_missing_credentials(server: Running) -> None:
    from playcast.events.protocol import encode_auth_subprotocol as enc

    await _refused_at_connect(server, [SUBPROTOCOL], "missing")
    await _refused_at_connect(server, [SUBPROTOCOL, "header-%%%notbase64"], "missing or undecodable")
    await _refused_at_connect(server, [SUBPROTOCOL, enc({"host": server.host, "x-api-key": "da2-wrong"})],
                              "invalid API key")
    await _refused_at_connect(server, [SUBPROTOCOL, enc({"host": server.host})], "no credentials")
    forged = EventsAuth(API_KEY, b"f" * 32).issue_user_token("mallory", rights={"*": {"pub": True, "sub": True}})
    await _refused_at_connect(server, [SUBPROTOCOL, enc(token_headers(server.host, forged))], "invalid token")
    expired = EventsAuth(API_KEY, SECRET, clock=lambda: time.time() - 7200).issue_user_token("late", ttl_s=60)
    await _refused_at_connect(server, [SUBPROTOCOL, enc(token_headers(server.host, expired))], "Token expired")
    none_alg = jwt.encode({"iss": "playcast", "sub": "x", "iat": int(time.time()), "exp": int(time.time()) + 60},
                          key=None, algorithm="none")
    await _refused_at_connect(server, [SUBPROTOCOL, enc(token_headers(server.host, none_alg))], "invalid token")
    # a refused socket answers nothing else and other sockets are untouched
    async with client(server.realtime_url, api_key_headers(server.host)) as ok:
        assert (await ok.subscribe("/default/fine", "s"))["type"] == "subscribe_success"


MATRIX = [
    # (identity, namespace, subscribe allowed, publish allowed)
    ("apikey", "default", True, True),
    ("apikey", "open", True, True),
    ("apikey", "users", False, False),
    ("scoped", "default", False, False),  # namespace `default` takes API keys only
    ("scoped", "open", True, False),  # token rights: open sub only
    ("scoped", "users", True, True),
    ("star", "default", False, False),
    ("star", "open", True, True),
    ("star", "users", True, True),
    ("norights", "open", False, False),
    ("norights", "users", False, False),
]


@pytest.mark.parametrize("who, namespace, may_sub, may_pub", MATRIX)
async def test_auth_matrix(server: Running, who: str, namespace: str, may_sub: bool, may_pub: bool) -> None:
    rights = {"scoped": {"users": {"pub": True, "sub": True}, "open": {"sub": True}},
              "star": {"*": {"pub": True, "sub": True}}, "norights": {}}
    headers = api_key_headers(server.host) if who == "apikey" else token_headers(server.host,
                                                                                 _token(server, rights[who]))
    async with client(server.realtime_url, headers) as c:
        sub = await c.subscribe(f"/{namespace}/room", "s")
        assert sub["type"] == ("subscribe_success" if may_sub else "subscribe_error"), sub
        if not may_sub:
            assert sub["errors"][0]["errorType"] == "UnauthorizedException"
        pub = await c.publish(f"/{namespace}/room", [{"who": who}])
        assert pub["type"] == ("publish_success" if may_pub else "publish_error"), pub
        if not may_pub:
            assert pub["errors"][0]["errorType"] == "UnauthorizedException"
        if may_sub and may_pub:
            assert (await c.data("s"))["event"] == '{"who": "' + who + '"}'


async def test_message_credentials_override_the_connection(server: Running) -> None:
    token = _token(server, {"users": {"pub": True, "sub": True}}, user="alice", roles=("viewer",))
    async with client(server.realtime_url, api_key_headers(server.host)) as c:
        # the connection's API key may not use `users`; the message's token may
        denied = await c.subscribe("/users/r", "a")
        assert denied["type"] == "subscribe_error"
        ok = await c.subscribe("/users/r", "b", auth=token_headers(server.host, token))
        assert ok["type"] == "subscribe_success"
        # a forged token on one message is refused and the socket stays usable
        forged = EventsAuth(API_KEY, b"z" * 32).issue_user_token("alice", rights={"users": {"pub": True}})
        bad = await c.publish("/users/r", ["x"], auth=token_headers(server.host, forged))
        assert bad["type"] == "publish_error" and "invalid token" in bad["errors"][0]["message"]
        # a lone surrogate in a message's key or token: the frame is not valid JSON (was a "retry" ServiceUnavailable)
        for odd in ({"x-api-key": "\ud800"}, {"Authorization": "\ud800"}):
            await c.send({"type": "subscribe", "id": "c", "channel": "/users/r", "authorization": odd})
            refused = await c.wait_for(lambda m: m["type"] == "error")
            assert refused["errors"][0]["errorType"] == "BadRequestException", refused
        good = await c.publish("/users/r", ["y"], auth=token_headers(server.host, "Bearer " + token))
        assert good["type"] == "publish_success"
        assert (await c.data("b"))["event"] == '"y"'


async def test_identity_reaches_handlers(server: Running) -> None:
    seen = []

    class Spy:
        async def on_publish(self, ctx):  # type: ignore[no-untyped-def]
            seen.append(ctx.identity)
            return None

        async def on_subscribe(self, ctx):  # type: ignore[no-untyped-def]
            seen.append(ctx.identity)

        async def on_unsubscribe(self, ctx):  # type: ignore[no-untyped-def]
            pass

    server.service.register_handler("users", Spy())
    token = _token(server, {"users": {"pub": True, "sub": True}}, user="bob", roles=("moderator",))
    async with client(server.realtime_url, token_headers(server.host, token)) as c:
        await c.subscribe("/users/r", "s")
        await c.publish("/users/r", [1])
    assert len(seen) == 2
    for identity in seen:
        assert identity.auth_mode == "USER_TOKEN" and identity.user_id == "bob"
        assert identity.display_name == "User bob" and identity.is_moderator
        assert identity.connection_id and identity.claims["ns"]["users"] == {"pub": True, "sub": True}


async def test_a_refused_socket_that_stays_silent_is_closed() -> None:
    from playcast.events.connection import EventsLimits
    from playcast.events.protocol import encode_auth_subprotocol
    from tests.events.conftest import make_service
    from tests.events.support import events_server, eventually

    async with events_server(make_service(EventsLimits(auth_grace_s=0.2))) as server:
        bad = [SUBPROTOCOL, encode_auth_subprotocol({"host": server.host, "x-api-key": "da2-wrong"})]
        async with client(server.realtime_url, None, subprotocols=bad, init=False) as c:
            err = await c.expect("connection_error")  # sent without any message from the client
            assert err["errors"][0]["message"] == "invalid API key"
            with pytest.raises(ConnectionClosed) as closed:
                await c.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        await eventually(lambda: not server.service.connections, what="refused socket unregistered")
