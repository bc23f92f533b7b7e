"""Chat settings: limits, reaction kinds, review hook; embedded defaults (as IVS chat) and PLAYCAST_CHAT_* env.

A plain dataclass; it reads the environment only in `from_env` and does nothing else."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .limits import Rate
from .review import ALLOW, ReviewHook, load_hook

NAMESPACE = "chat"

# The fixed set of reactions: kind -> emoji.
REACTIONS: dict[str, str] = {
    "heart": "\u2764\ufe0f",
    "laugh": "\U0001f602",
    "wow": "\U0001f62e",
    "clap": "\U0001f44f",
    "fire": "\U0001f525",
    "gg": "\U0001f3c6",
}


@dataclass
class ChatConfig:
    max_message_length: int = 500  # code points, as IVS chat's maximumMessageLength
    max_attributes_bytes: int = 1024  # IVS: attributes up to 1 KB
    room_rate: Rate = field(default_factory=lambda: Rate(10, 1.0))  # IVS maximumMessageRatePerSecond default
    user_rate: Rate = field(default_factory=lambda: Rate(3, 1.0))
    reaction_room_rate: Rate = field(default_factory=lambda: Rate(100, 1.0))
    reaction_user_rate: Rate = field(default_factory=lambda: Rate(10, 1.0))
    reactions: dict[str, str] = field(default_factory=lambda: dict(REACTIONS))
    review_hook: ReviewHook | None = None
    review_budget_s: float = 0.2  # IVS: 200 ms
    review_fallback: str = ALLOW  # IVS fallbackResult default
    presence_interval_s: float = 0.25  # join/leave bursts are coalesced into one presence event per interval
    bridge_to_game: bool = True  # chat messages and reactions go to the session's game as application messages
    token_ttl_s: int = 3600

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ChatConfig:
        """Defaults, overridden by PLAYCAST_CHAT_MAX_LENGTH, PLAYCAST_CHAT_ROOM_RATE, PLAYCAST_CHAT_USER_RATE
        ('N' messages per second or 'N/S' per S seconds), PLAYCAST_CHAT_REVIEW_HOOK ('module:function'), PLAYCAST_CHAT_REVIEW_BUDGET_MS,
        PLAYCAST_CHAT_REVIEW_FALLBACK (ALLOW|DENY)."""
        e = os.environ if env is None else env
        cfg = cls()
        if e.get("PLAYCAST_CHAT_MAX_LENGTH"):
            cfg.max_message_length = _int(e, "PLAYCAST_CHAT_MAX_LENGTH", 1, 10_000)
        if e.get("PLAYCAST_CHAT_ROOM_RATE"):
            cfg.room_rate = _rate(e, "PLAYCAST_CHAT_ROOM_RATE")
        if e.get("PLAYCAST_CHAT_USER_RATE"):
            cfg.user_rate = _rate(e, "PLAYCAST_CHAT_USER_RATE")
        if e.get("PLAYCAST_CHAT_REVIEW_HOOK"):
            cfg.review_hook = load_hook(e["PLAYCAST_CHAT_REVIEW_HOOK"])
        if e.get("PLAYCAST_CHAT_REVIEW_BUDGET_MS"):
            cfg.review_budget_s = _int(e, "PLAYCAST_CHAT_REVIEW_BUDGET_MS", 1, 60_000) / 1000
        if e.get("PLAYCAST_CHAT_REVIEW_FALLBACK"):
            cfg.review_fallback = e["PLAYCAST_CHAT_REVIEW_FALLBACK"].strip().upper()
            if cfg.review_fallback not in ("ALLOW", "DENY"):
                raise ValueError("PLAYCAST_CHAT_REVIEW_FALLBACK must be ALLOW or DENY")
        return cfg


def _rate(env: dict[str, str] | os._Environ[str], name: str) -> Rate:
    count, _, per = env[name].strip().partition("/")
    try:
        rate = Rate(int(count), float(per) if per else 1.0)
    except ValueError:
        raise ValueError(f"{name} must be 'N' (per second) or 'N/S' (per S seconds), got {env[name]!r}") from None
    if rate.count > 100_000 or rate.per_s > 3600:
        raise ValueError(f"{name} is out of range: at most 100000 per at most 3600 s")
    return rate


def _int(env: dict[str, str] | os._Environ[str], name: str, lo: int, hi: int) -> int:
    raw = env[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value
