"""Fuzz of the parsers of credentials and page tokens a caller hands in: the browser-user and guest cookie
(`CookieSigner.verify`), chat invitations (`Invites.verify`), the events API's headers (`EventsAuth.authenticate`:
API key or JWT) and the List* / chat-history page tokens. Any text -> the holder or None / the module's own error;
what was issued verifies; nothing else raises (non-ASCII MACs raised TypeError, lone surrogates UnicodeEncodeError:
500s without credentials)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playcast.api.auth import CookieSigner
from playcast.api.chat import Invites, _parse_page_token
from playcast.events.auth import EventsAuth
from playcast.events.namespaces import API_KEY as API_KEY_MODE
from playcast.events.namespaces import USER_TOKEN
from playcast.events.protocol import UNAUTHORIZED, ProtocolError
from playcast.store.queries import BadPageToken, _decode_token
from tests.fuzz.support import bounded, json_values, mutated, texts

SECRET = b"s" * 32
SIGNER = CookieSigner(SECRET)
INVITES = Invites(SECRET)
API_KEY = "da2-abcdefghijklmnopqrstuvwxyz"
AUTH = EventsAuth(API_KEY, SECRET)

latin1 = st.text(st.characters(max_codepoint=0xFF), max_size=40)  # what a header decodes to
user_ids = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
rooms = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


def dotted(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Three dot-separated fields, the shape cookies and invitations have."""
    return st.tuples(parts, parts, parts).map(".".join)


cookies = (st.builds(SIGNER.sign, user_ids).flatmap(lambda v: st.just(v) | mutated(st.just(v)))
           | dotted(latin1) | dotted(texts(20)) | latin1 | texts(40) | st.none())


@bounded(400)
@given(cookies)
def test_any_cookie_is_a_user_or_none(value: str | None) -> None:
    got = SIGNER.verify(value)
    assert got is None or (isinstance(got, str) and value is not None and value.startswith(got + "."))


@bounded(100)
@given(user_ids, st.integers(0, 10**6))
def test_signed_cookie_verifies_and_one_altered_character_does_not(user_id: str, at: int) -> None:
    cookie = SIGNER.sign(user_id)
    assert SIGNER.verify(cookie) == user_id
    i = at % len(cookie)
    for other in ("é", "0" if cookie[i] != "0" else "1"):
        assert SIGNER.verify(cookie[:i] + other + cookie[i + 1:]) is None


invites = (st.builds(lambda room: INVITES.mint(room)[0], rooms).flatmap(lambda v: st.just(v) | mutated(st.just(v)))
           | dotted(texts(20)) | dotted(latin1) | texts(40) | json_values(4))


@bounded(400)
@given(invites)
def test_any_invitation_is_a_room_or_none(value: object) -> None:
    got = INVITES.verify(value)  # type: ignore[arg-type]
    assert got is None or (isinstance(value, str) and value.startswith(got + "."))


@bounded(50)
@given(rooms)
def test_minted_invitation_verifies(room: str) -> None:
    assert INVITES.verify(INVITES.mint(room)[0]) == room


token_texts = (st.builds(lambda u: AUTH.issue_user_token(u), user_ids).flatmap(lambda t: st.just(t) | mutated(st.just(t)))
               | st.builds(lambda p: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + p + ".sig", texts(30))
               | dotted(texts(16)) | texts(40) | latin1)
header_names = st.sampled_from(["x-api-key", "X-Api-Key", "authorization", "Authorization", "host"]) | texts(8)
headers = st.dictionaries(header_names, st.just(API_KEY) | mutated(st.just(API_KEY)) | token_texts, max_size=3)


@bounded(500)
@given(headers)
def test_any_events_headers_are_an_identity_or_unauthorized(given_headers: dict[str, str]) -> None:
    try:
        identity = AUTH.authenticate(given_headers)
    except ProtocolError as exc:
        assert exc.error_type == UNAUTHORIZED and exc.message, given_headers
        return
    if identity.auth_mode == API_KEY_MODE:
        assert API_KEY in given_headers.values(), given_headers
    else:
        assert identity.auth_mode == USER_TOKEN and identity.user_id, given_headers


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


page_tokens = (st.builds(lambda v: b64(json.dumps(v).encode()), json_values(6))
               | st.builds(lambda a, b: b64(json.dumps([a, b]).encode()), st.floats() | st.integers(), texts(20))
               | st.builds(lambda a, b: b64(json.dumps([a, b]).encode()), json_values(2), json_values(2))
               | st.builds(lambda b: b64(b), st.binary(max_size=40)) | texts(30))


@pytest.mark.parametrize("decode, error", [(_decode_token, BadPageToken), (_parse_page_token, ValueError)],
                         ids=["list-operations", "chat-history"])
@bounded(300)
@given(token=page_tokens)
def test_any_page_token_is_a_position_or_refused(decode, error, token: str) -> None:  # type: ignore[no-untyped-def]
    try:
        created, row_id = decode(token)
    except error:
        return
    assert isinstance(created, float), token
    row_id.encode("utf-8")  # bound into SQL: a lone surrogate here was an uncaught UnicodeEncodeError (500)
