"""Chat event payloads: parsing what clients publish and shaping what subscribers, the replay API and the game get.

Pure functions over JSON values and store rows; no I/O, no state."""

from __future__ import annotations

import json
import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from ...json_input import parse_json
from ...store.chat import (
    BAN_USER,
    DELETE_MESSAGE,
    DISCONNECT_USER,
    EVENT,
    MESSAGE,
    REACTION,
    UNBAN_USER,
    ChatEntryRow,
    Entry,
)
from ..hooks import ChannelPath, Identity

_ALNUM = string.ascii_letters + string.digits
ROOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")
EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")

# Sub-channels of a room: /chat/<room>[/<sub>]
ROOM = ""
REACTIONS = "reactions"
META = "meta"
PRESENCE = "presence"
GAME = "game"
SUB_CHANNELS = (ROOM, REACTIONS, META, PRESENCE, GAME)

# Client actions on the room channel (IVS chat's action names)
SEND_MESSAGE = "SEND_MESSAGE"
MODERATION_ACTIONS = (DELETE_MESSAGE, DISCONNECT_USER, BAN_USER, UNBAN_USER)

# Sender roles, strongest first
ADMIN, MODERATOR, PLAYER, VIEWER, SYSTEM = "admin", "moderator", "player", "viewer", "system"


class ChatError(Exception):
    """One refused chat action. `code` is an AppSync-style error type, `message` says what to change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def bad(message: str) -> ChatError:
    return ChatError("BadRequestException", message)


def denied(message: str) -> ChatError:
    return ChatError("UnauthorizedException", message)


def new_id() -> str:
    """12 alphanumeric characters, as IVS chat message ids."""
    return "".join(secrets.choice(_ALNUM) for _ in range(12))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def room_channel(room_id: str, sub: str = ROOM) -> str:
    return f"/chat/{room_id}" + (f"/{sub}" if sub else "")


def parse_channel(channel: ChannelPath) -> tuple[str | None, str]:
    """(room id, sub-channel) of a /chat channel; room None for '/chat/*'; sub '*' for '/chat/<room>/*'."""
    segs = channel.segments[1:]
    if not segs:
        raise bad("a chat channel is /chat/<streamSessionId>[/reactions|meta|presence|game]")
    if segs == ("*",):
        return None, "*"
    room = segs[0]
    if not ROOM_ID_RE.match(room):
        raise bad(f"invalid chat room id {room!r}")
    if len(segs) == 1:
        return room, ROOM
    if len(segs) == 2 and (segs[1] in SUB_CHANNELS[1:] or segs[1] == "*"):
        return room, segs[1]
    raise bad(f"unknown chat channel {channel.path!r}: use /chat/{room}[/reactions|meta|presence|game]")


def guest_room(user_id: str | None) -> str | None:
    """Guests invited to one room have user ids 'g-<room>-<random>'; their room, else None."""
    if not user_id or not user_id.startswith("g-"):
        return None
    room, sep, _rand = user_id[2:].rpartition("-")
    return room if sep and room else None


def sender(identity: Identity, role: str) -> dict[str, Any]:
    if identity.user_id is None:
        return {"userId": None, "displayName": identity.display_name or "server", "role": role}
    return {"userId": identity.user_id, "displayName": identity.display_name or identity.user_id, "role": role}


def entry_for(kind: str, room_id: str, who: dict[str, Any], ts: float, **fields: Any) -> Entry:
    """A new entry; its time is kept to the microsecond, so the `ts` clients see is exactly what is stored."""
    return Entry(id=new_id(), room_id=room_id, kind=kind, sender_id=who["userId"], sender_name=who["displayName"],
                 sender_role=who["role"], created_at=round(ts, 6), **fields)


# -- parsing what clients publish --------------------------------------------------------------------------

def _text(value: object, name: str, max_len: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise bad(f"{name} must be a string")
    if required and not value.strip():
        raise bad(f"{name} must not be empty")
    if len(value) > max_len:
        raise bad(f"{name} is {len(value)} characters; the limit is {max_len}")
    return value


def attributes(value: object, max_bytes: int) -> dict[str, str]:
    """Attributes are a flat object of strings, at most `max_bytes` as JSON (IVS: 1 KB)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise bad("attributes must be an object whose values are strings")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        raise bad(f"attributes are {size} bytes; the limit is {max_bytes}")
    return dict(value)


def parse_room_action(payload: object, max_length: int, max_attr_bytes: int) -> dict[str, Any]:
    """A publish on /chat/<room>: a string (message text) or {"action"?, ...}. Returns normalized fields."""
    if isinstance(payload, str):
        return {"action": SEND_MESSAGE, "content": _text(payload, "content", max_length), "attributes": {},
                "requestId": None}
    if not isinstance(payload, dict):
        raise bad('a chat event is a string or an object like {"content": "hi"}')
    action = payload.get("action", SEND_MESSAGE)
    if not isinstance(action, str) or action.upper() not in (SEND_MESSAGE, *MODERATION_ACTIONS):
        raise bad(f"unknown action {action!r}; use SEND_MESSAGE, DELETE_MESSAGE, DISCONNECT_USER, BAN_USER "
                  "or UNBAN_USER")
    action = action.upper()
    request_id = _text(payload.get("requestId"), "requestId", 128, required=False)
    reason = _text(payload.get("reason"), "reason", 256, required=False)
    if action == SEND_MESSAGE:
        return {"action": action, "requestId": request_id,
                "content": _text(payload.get("content"), "content", max_length),
                "attributes": attributes(payload.get("attributes"), max_attr_bytes)}
    if action == DELETE_MESSAGE:
        mid = payload.get("messageId", payload.get("id"))
        if not isinstance(mid, str) or not mid:
            raise bad("DELETE_MESSAGE needs messageId")
        return {"action": action, "requestId": request_id, "messageId": mid, "reason": reason}
    user = payload.get("userId")
    if not isinstance(user, str) or not USER_ID_RE.match(user):
        raise bad(f"{action} needs userId")
    return {"action": action, "requestId": request_id, "userId": user, "reason": reason}


def parse_reaction(payload: object, kinds: dict[str, str]) -> str:
    kind = payload if isinstance(payload, str) else payload.get("kind") if isinstance(payload, dict) else None
    if not isinstance(kind, str) or kind not in kinds:
        raise bad(f"a reaction is {{\"kind\": one of {', '.join(sorted(kinds))}}}")
    return kind


def parse_meta(payload: object, max_attr_bytes: int) -> tuple[str, dict[str, str]]:
    if not isinstance(payload, dict):
        raise bad('a metadata event is an object like {"name": "donation", "attributes": {"amount": "5"}}')
    name = payload.get("name")
    if not isinstance(name, str) or not EVENT_NAME_RE.match(name):
        raise bad("name must be 1-100 characters of letters, digits, _ . : -")
    return name, attributes(payload.get("attributes"), max_attr_bytes)


# -- what subscribers and the replay API get ---------------------------------------------------------------

def _base(row: ChatEntryRow | Entry) -> dict[str, Any]:
    return {"type": row.kind, "id": row.id, "roomId": row.room_id,
            "sender": {"userId": row.sender_id, "displayName": row.sender_name, "role": row.sender_role},
            "sendTime": iso(row.created_at), "ts": round(row.created_at, 6)}


def event_of(row: ChatEntryRow | Entry, reactions: dict[str, str] | None = None,
             request_id: str | None = None) -> dict[str, Any]:
    """The payload subscribers get for an entry (the replay API returns the same shapes)."""
    out = _base(row)
    if row.kind == MESSAGE:
        out.update(content=row.content, attributes=dict(row.attributes or {}))
        if request_id:
            out["requestId"] = request_id
    elif row.kind == REACTION:
        out.update(kind=row.content, emoji=(reactions or {}).get(row.content or "", ""))
    elif row.kind == EVENT:
        out.update(name=row.content, attributes=dict(row.attributes or {}))
    elif row.kind == DELETE_MESSAGE:
        out.update(messageId=row.target_id, reason=row.reason)
    elif row.kind in (DISCONNECT_USER, BAN_USER, UNBAN_USER):
        out.update(userId=row.target_id, reason=row.reason)
    return out


def game_payload(event: dict[str, Any]) -> bytes | None:
    """The JSON application message a chat message or reaction becomes for the game (None for others)."""
    who = event.get("sender") or {}
    common = {"id": event.get("id"), "user": who.get("displayName"), "userId": who.get("userId"),
              "role": who.get("role"), "ts": event.get("ts")}
    if event.get("type") == MESSAGE:
        doc = {"type": "chat", "text": event.get("content"), **common}
    elif event.get("type") == REACTION:
        doc = {"type": "reaction", "kind": event.get("kind"), "emoji": event.get("emoji"), **common}
    else:
        return None
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def from_game(payload: bytes, ts: float) -> dict[str, Any]:
    """What the game sent to client id 0, as an event on /chat/<room>/game: its JSON if it is JSON, else text,
    else the byte count (binary is not forwarded)."""
    out: dict[str, Any] = {"type": "GAME", "id": new_id(), "sendTime": iso(ts), "ts": round(ts, 6)}
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        out["binaryBytes"] = len(payload)
        return out
    try:
        out["data"] = parse_json(text)
    except ValueError:
        out["text"] = text
    return out
