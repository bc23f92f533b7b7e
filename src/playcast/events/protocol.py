"""The AppSync Events WebSocket/HTTP message shapes: parsing client messages, building server messages, limits.

Pure functions and constants: no sockets, no auth decisions, no routing."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from playcast.bus.history import Position
from playcast.json_input import parse_json

SUBPROTOCOL = "aws-appsync-event-ws"
HEADER_PREFIX = "header-"

MAX_EVENTS_PER_PUBLISH = 5
MAX_EVENT_BYTES = 240 * 1024
MAX_ID_CHARS = 128
MAX_MESSAGE_BYTES = MAX_EVENTS_PER_PUBLISH * MAX_EVENT_BYTES + 64 * 1024  # a full publish plus its envelope
MAX_SINCE_OFFSET = 2**62
MAX_AUTH_HEADER_BYTES = 16 * 1024  # the decoded `header-` subprotocol

# errorType values (AppSync's where AppSync has one)
BAD_REQUEST = "BadRequestException"
UNAUTHORIZED = "UnauthorizedException"
UNSUPPORTED = "UnsupportedOperation"
TOO_MANY_REQUESTS = "TooManyRequestsException"
LIMIT_EXCEEDED = "LimitExceededException"
NOT_FOUND = "NamespaceNotFoundException"
UNAVAILABLE = "ServiceUnavailableException"
INTERNAL = "InternalFailureException"

# close codes (4000-4999 are the application's)
CLOSE_UNAUTHORIZED = 4401
CLOSE_FLOOD = 4429
CLOSE_SLOW_CONSUMER = 4408
CLOSE_KICKED = 4403
CLOSE_GOING_AWAY = 1001


class ProtocolError(Exception):
    """A refused message: becomes `errors: [{errorType, message}]` in the reply (or an HTTP error body)."""

    def __init__(self, error_type: str, message: str, *, id: str | None = None, reply: str = "error") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.id = id
        self.reply = reply  # the message type of the WebSocket reply: error | subscribe_error | publish_error ...


@dataclass(frozen=True)
class Subscribe:
    id: str
    channel: str
    authorization: dict[str, str] | None
    since: Position | None  # our recovery extension


@dataclass(frozen=True)
class Publish:
    id: str
    channel: str
    events: list[Any]  # as sent; each should be a string holding JSON
    authorization: dict[str, str] | None


@dataclass(frozen=True)
class Unsubscribe:
    id: str


@dataclass(frozen=True)
class ConnectionInit:
    pass


ClientMessage = Subscribe | Publish | Unsubscribe | ConnectionInit


def _str_id(msg: dict[str, Any], what: str) -> str:
    value = msg.get("id")
    if not isinstance(value, str) or not value:
        raise ProtocolError(BAD_REQUEST, f"{what} needs a non-empty string 'id'")
    if len(value) > MAX_ID_CHARS:
        raise ProtocolError(BAD_REQUEST, f"'id' is longer than {MAX_ID_CHARS} characters")
    return value


def _authorization(msg: dict[str, Any], msg_id: str) -> dict[str, str] | None:
    value = msg.get("authorization")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ProtocolError(BAD_REQUEST, "'authorization' must be an object of string headers", id=msg_id)
    return value


def _since(msg: dict[str, Any], msg_id: str) -> Position | None:
    value = msg.get("since")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError(BAD_REQUEST, "'since' must be {epoch, offset}", id=msg_id)
    epoch, offset = value.get("epoch"), value.get("offset")
    if not isinstance(epoch, str) or not epoch or len(epoch) > 64:
        raise ProtocolError(BAD_REQUEST, "'since.epoch' must be a non-empty string", id=msg_id)
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_SINCE_OFFSET:
        raise ProtocolError(BAD_REQUEST, "'since.offset' must be a non-negative integer", id=msg_id)
    return Position(epoch, offset)


def _channel(msg: dict[str, Any], msg_id: str) -> str:
    value = msg.get("channel")
    if not isinstance(value, str) or not value:
        raise ProtocolError(BAD_REQUEST, "a non-empty string 'channel' is required", id=msg_id)
    return value


def parse_client_message(text: str) -> ClientMessage:
    """One WebSocket text frame -> a typed message. Raises ProtocolError (with `id` when the frame had one)."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(BAD_REQUEST, f"message is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = parse_json(text, max_bytes=MAX_MESSAGE_BYTES)
    except ValueError as exc:
        raise ProtocolError(BAD_REQUEST, f"message is not valid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(BAD_REQUEST, "message must be a JSON object")
    kind = msg.get("type")
    raw_id = msg.get("id") if isinstance(msg.get("id"), str) else None
    if kind == "connection_init":
        return ConnectionInit()
    try:
        if kind == "subscribe":
            msg_id = _str_id(msg, "subscribe")
            return Subscribe(msg_id, _channel(msg, msg_id), _authorization(msg, msg_id), _since(msg, msg_id))
        if kind == "publish":
            msg_id = _str_id(msg, "publish")
            channel = _channel(msg, msg_id)
            events = msg.get("events")
            if not isinstance(events, list) or not events:
                raise ProtocolError(BAD_REQUEST, "'events' must be a non-empty list of JSON strings", id=msg_id)
            if len(events) > MAX_EVENTS_PER_PUBLISH:
                raise ProtocolError(BAD_REQUEST, f"at most {MAX_EVENTS_PER_PUBLISH} events per publish "
                                    f"({len(events)} given)", id=msg_id)
            return Publish(msg_id, channel, events, _authorization(msg, msg_id))
        if kind == "unsubscribe":
            return Unsubscribe(_str_id(msg, "unsubscribe"))
    except ProtocolError as exc:
        exc.reply = f"{kind}_error"
        exc.id = exc.id or raw_id
        raise
    if not isinstance(kind, str):
        raise ProtocolError(BAD_REQUEST, "message needs a string 'type'", id=raw_id)
    raise ProtocolError(UNSUPPORTED, f"message type {kind[:64]!r} is not supported", id=raw_id)


def check_event(raw: Any) -> tuple[str | None, Any, str | None]:
    """A published event -> (json text, parsed value, None) or (None, None, why it fails)."""
    if not isinstance(raw, str):
        return None, None, "event must be a string holding JSON (JSON.stringify it)"
    size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))  # parse_json refuses those
    if size > MAX_EVENT_BYTES:
        return None, None, f"event is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes (240 KB)"
    try:
        return raw, parse_json(raw, max_bytes=MAX_EVENT_BYTES), None
    except ValueError as exc:
        return None, None, f"event is not valid JSON: {exc}"


def decode_auth_subprotocols(subprotocols: list[str]) -> dict[str, str] | None:
    """The `header-<base64url JSON>` subprotocol -> header dict; None if absent or undecodable."""
    for proto in subprotocols:
        if not proto.startswith(HEADER_PREFIX):
            continue
        data = proto[len(HEADER_PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            value = parse_json(raw, max_bytes=MAX_AUTH_HEADER_BYTES)
        except (ValueError, binascii.Error):
            return None
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items() if isinstance(v, (str, int, float))}
        return None
    return None


def encode_auth_subprotocol(headers: dict[str, str]) -> str:
    """What a client puts beside `aws-appsync-event-ws` (base64url without padding)."""
    raw = base64.urlsafe_b64encode(json.dumps(headers).encode()).decode().rstrip("=")
    return HEADER_PREFIX + raw


# ----------------------------------------------------------------------------------------- server messages

def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def connection_ack(timeout_ms: int) -> str:
    return _dumps({"type": "connection_ack", "connectionTimeoutMs": timeout_ms})


KA = '{"type":"ka"}'


def errors_body(error_type: str, message: str) -> list[dict[str, str]]:
    return [{"errorType": error_type, "message": message}]


def error(kind: str, error_type: str, message: str, id: str | None = None) -> str:
    """`error`, `connection_error`, `subscribe_error`, `publish_error` or `unsubscribe_error`."""
    body: dict[str, Any] = {"type": kind}
    if id is not None:
        body["id"] = id
    body["errors"] = errors_body(error_type, message)
    return _dumps(body)


def subscribe_success(id: str, position: Position | None, recovered: bool | None) -> str:
    body: dict[str, Any] = {"type": "subscribe_success", "id": id}
    if position is not None:
        body["epoch"], body["offset"] = position.epoch, position.offset
    if recovered is not None:
        body["recovered"] = recovered
    return _dumps(body)


def unsubscribe_success(id: str) -> str:
    return _dumps({"type": "unsubscribe_success", "id": id})


def publish_success(id: str | None, successful: list[dict[str, Any]], failed: list[dict[str, Any]]) -> str:
    body: dict[str, Any] = {"type": "publish_success"}
    if id is not None:
        body["id"] = id
    body["successful"], body["failed"] = successful, failed
    return _dumps(body)


def gap(id: str, channel: str, position: Position | None) -> str:
    """Our extension: events on `channel` may have been lost for subscription `id`; the stream goes on at
    `position` (unknown for wildcard subscriptions after a bus outage)."""
    body: dict[str, Any] = {"type": "gap", "id": id, "channel": channel}
    if position is not None:
        body["epoch"], body["offset"] = position.epoch, position.offset
    return _dumps(body)


def data_head(subscription_id: str) -> bytes:
    """The per-subscription start of a `data` message; the shared rest comes from data_tail."""
    return b'{"type":"data","id":' + json.dumps(subscription_id).encode() + b","


def data_tail(event_json: str, channel: str, position: Position) -> bytes:
    """The part of a `data` message all subscribers share: built once per fan-out."""
    return (b'"event":' + json.dumps(event_json).encode() + b',"channel":' + json.dumps(channel).encode()
            + b',"epoch":' + json.dumps(position.epoch).encode() + b',"offset":' + str(position.offset).encode()
            + b"}")
