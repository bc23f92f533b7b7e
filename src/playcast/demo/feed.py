"""Turns application messages into short on-screen lines for the demo game (chat, reactions, raw text).

Text only: no pygame, no sockets. Unknown or binary payloads become a readable line, never an exception."""

from __future__ import annotations

import time
import unicodedata
from collections import deque
from dataclasses import dataclass

from playcast.json_input import parse_json

MAX_LINE = 90


@dataclass(frozen=True)
class FeedItem:
    text: str
    at: float
    kind: str  # "chat" | "reaction" | "message" | "system"


def _readable(text: str) -> str:
    """Replace symbols the bundled font cannot draw (emoji) by :name: and drop control characters."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif cat.startswith("C"):
            continue
        elif ord(ch) > 0x2000 and cat in ("So", "Sk", "Mn"):
            if cat == "Mn" or ch == "\ufe0f":
                continue  # variation selectors / combining marks of emoji
            out.append(":" + unicodedata.name(ch, "symbol").lower().replace(" ", "-") + ":")
        else:
            out.append(ch)
    line = "".join(out).strip()
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…"


def _first(obj: dict[str, object], *keys: str, default: str = "") -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str | int | float) and str(value):
            return str(value)
    return default


def describe(client_id: int, payload: bytes) -> FeedItem:
    """One feed line for a message: JSON chat/reaction nicely, other text as-is, binary as a byte count."""
    now = time.monotonic()
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return FeedItem(f"client {client_id}: {len(payload)} bytes of binary data", now, "message")
    obj: object = None
    if text.lstrip().startswith("{"):
        try:
            obj = parse_json(text)
        except ValueError:
            obj = None
    if isinstance(obj, dict) and obj.get("type") in ("chat", "reaction"):
        who = _readable(_first(obj, "user", "from", "sender", "name", "userId", default=f"client {client_id}"))
        if obj["type"] == "chat":
            body = _readable(_first(obj, "text", "message", "body", "content"))
            return FeedItem(f"{who}: {body}", now, "chat")
        emoji = _readable(_first(obj, "emoji", "reaction", "value", "kind", default="something"))
        return FeedItem(f"{who} reacted {emoji}", now, "reaction")
    return FeedItem(f"client {client_id}: {_readable(text)}", now, "message")


class Feed:
    """The last few lines, newest last."""

    def __init__(self, size: int = 5) -> None:
        self.items: deque[FeedItem] = deque(maxlen=size)
        self.version = 0  # bumps on every change, so the renderer can cache

    def add(self, item: FeedItem) -> None:
        self.items.append(item)
        self.version += 1

    def system(self, text: str) -> None:
        self.add(FeedItem(text, time.monotonic(), "system"))
