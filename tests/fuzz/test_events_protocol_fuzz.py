"""Fuzz of the AppSync Events protocol parsers (events/protocol.py): any WebSocket text frame is a typed client
message or ProtocolError; any published event is (json, value, None) or (None, None, why); any `header-`
subprotocol is a header dict or None (deep nesting: tests/test_json_input.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from playcast.events import protocol as p
from tests.fuzz.support import bounded, json_scalars, json_texts, json_values, mutated

ERROR_TYPES = {p.BAD_REQUEST, p.UNAUTHORIZED, p.UNSUPPORTED, p.TOO_MANY_REQUESTS, p.LIMIT_EXCEEDED, p.NOT_FOUND,
               p.UNAVAILABLE, p.INTERNAL}

ids = st.none() | st.text(max_size=4) | st.text(min_size=120, max_size=140) | json_scalars
headers = st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=3)
client_messages = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["connection_init", "subscribe", "publish", "unsubscribe", "ka", ""]) | json_scalars,
    "id": ids,
    "channel": st.sampled_from(["/default/a", "/default/*", "", "/x/" + "y" * 300]) | json_scalars,
    "authorization": headers | json_values(4),
    "since": st.fixed_dictionaries({}, optional={"epoch": json_scalars | st.text(max_size=70),
                                                 "offset": st.integers(-2, 2**63) | json_scalars}) | json_scalars,
    "events": st.lists(json_values(4).map(json.dumps) | json_values(4), max_size=7) | json_scalars,
})
frames = client_messages.map(json.dumps) | mutated(client_messages.map(json.dumps)) | json_texts()


@bounded(600)
@given(frames)
def test_any_text_frame_is_a_typed_message_or_a_protocol_error(text: str) -> None:
    try:
        msg = p.parse_client_message(text)
    except p.ProtocolError as exc:
        assert exc.error_type in ERROR_TYPES, text
        assert isinstance(exc.message, str) and exc.message, text
        assert exc.id is None or isinstance(exc.id, str), text
        assert isinstance(exc.reply, str) and exc.reply.endswith("error"), text
        return
    assert isinstance(msg, p.Subscribe | p.Publish | p.Unsubscribe | p.ConnectionInit), text
    if isinstance(msg, p.Subscribe | p.Publish | p.Unsubscribe):
        assert isinstance(msg.id, str) and 0 < len(msg.id) <= p.MAX_ID_CHARS
    if isinstance(msg, p.Subscribe | p.Publish):
        assert isinstance(msg.channel, str) and msg.channel
        assert msg.authorization is None or all(isinstance(v, str) for v in msg.authorization.values())
    if isinstance(msg, p.Publish):
        assert 0 < len(msg.events) <= p.MAX_EVENTS_PER_PUBLISH
    if isinstance(msg, p.Subscribe) and msg.since is not None:
        assert 0 <= msg.since.offset <= p.MAX_SINCE_OFFSET and msg.since.epoch


@bounded(400)
@given(json_texts() | json_values(8))
def test_any_published_event_is_checked_without_raising(raw: Any) -> None:
    text, value, why = p.check_event(raw)
    if why is None:
        assert text == raw and isinstance(text, str)
        assert json.dumps(value) == json.dumps(json.loads(raw))
    else:
        assert text is None and value is None and isinstance(why, str)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


subprotocols = st.lists(
    st.just(p.SUBPROTOCOL)
    | st.builds(lambda v: p.HEADER_PREFIX + b64(json.dumps(v).encode()), json_values(8))
    | st.builds(lambda t: p.HEADER_PREFIX + b64(t.encode("utf-8", "surrogatepass")), json_texts())
    | st.builds(lambda b: p.HEADER_PREFIX + b64(b), st.binary(max_size=40))
    | st.builds(lambda t: p.HEADER_PREFIX + t, st.text(max_size=40))
    | st.text(max_size=20), max_size=4)


@bounded(500)
@given(subprotocols)
def test_any_subprotocol_list_gives_headers_or_none(protocols: list[str]) -> None:
    got = p.decode_auth_subprotocols(protocols)
    assert got is None or all(isinstance(k, str) and isinstance(v, str) for k, v in got.items()), protocols


@bounded(200)
@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5))
def test_auth_subprotocol_round_trips(headers: dict[str, str]) -> None:
    assert p.decode_auth_subprotocols([p.SUBPROTOCOL, p.encode_auth_subprotocol(headers)]) == headers
