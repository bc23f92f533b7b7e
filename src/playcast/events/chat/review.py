"""The message review hook: an async Python callable that may allow, deny or rewrite a chat message, run with a
time budget (default 200 ms, as IVS chat) and a fallback verdict (ALLOW or DENY) when it is late or fails.

Runs the hook and interprets its answer; it never touches channels, storage or sockets."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ALLOW = "ALLOW"
DENY = "DENY"
VERDICTS = (ALLOW, DENY)


@dataclass(frozen=True)
class ReviewRequest:
    """What the hook sees (IVS: Content, MessageId, RoomArn, Attributes, Sender)."""

    room_id: str
    message_id: str
    content: str
    attributes: dict[str, str]
    sender_id: str | None
    sender_name: str | None
    sender_role: str


@dataclass(frozen=True)
class ReviewResult:
    """ALLOW (optionally with replaced content/attributes) or DENY (optionally with a reason for the sender)."""

    verdict: str = ALLOW
    content: str | None = None
    attributes: dict[str, str] | None = None
    reason: str | None = None


ReviewHook = Callable[[ReviewRequest], Awaitable["ReviewResult | str | bool | None"]]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    content: str
    attributes: dict[str, str]
    reason: str | None = None
    fallback: bool = False  # True when the fallback verdict decided (hook late, failed or answered nonsense)
    detail: dict[str, Any] = field(default_factory=dict)


def _coerce(answer: object) -> ReviewResult | None:
    if isinstance(answer, ReviewResult):
        return answer if answer.verdict in VERDICTS else None
    if isinstance(answer, bool):
        return ReviewResult(ALLOW if answer else DENY)
    if answer is None:
        return ReviewResult(ALLOW)
    if isinstance(answer, str) and answer.upper() in VERDICTS:
        return ReviewResult(answer.upper())
    return None


class Reviewer:
    """Applies a hook with a budget. Without a hook every message is allowed unchanged."""

    def __init__(self, hook: ReviewHook | None, budget_s: float = 0.2, fallback: str = ALLOW,
                 max_length: int = 500) -> None:
        if fallback not in VERDICTS:
            raise ValueError(f"fallback verdict must be ALLOW or DENY, got {fallback!r}")
        self.hook = hook
        self.budget_s = budget_s
        self.fallback = fallback
        self.max_length = max_length

    def _fallback(self, request: ReviewRequest, why: str) -> Decision:
        allowed = self.fallback == ALLOW
        return Decision(allowed, request.content, dict(request.attributes),
                        None if allowed else "the message could not be reviewed", True, {"why": why})

    async def review(self, request: ReviewRequest) -> Decision:
        if self.hook is None:
            return Decision(True, request.content, dict(request.attributes))
        try:
            answer = await asyncio.wait_for(self.hook(request), self.budget_s)
        except TimeoutError:
            log.info("review hook took longer than %.0f ms for message %s: fallback %s",
                     self.budget_s * 1000, request.message_id, self.fallback)
            return self._fallback(request, "timeout")
        except Exception as exc:  # noqa: BLE001 - a broken hook must not break chat
            log.warning("review hook failed for message %s (%s): fallback %s", request.message_id, exc,
                        self.fallback)
            return self._fallback(request, "error")
        result = _coerce(answer)
        if result is None:
            log.warning("review hook answered %r for message %s: fallback %s", answer, request.message_id,
                        self.fallback)
            return self._fallback(request, "invalid answer")
        if result.verdict == DENY:
            return Decision(False, request.content, dict(request.attributes), result.reason or "denied by review")
        content = request.content if result.content is None else result.content
        attributes = dict(request.attributes) if result.attributes is None else dict(result.attributes)
        if not isinstance(content, str) or not content or len(content) > self.max_length:
            log.warning("review hook rewrote message %s to invalid content: fallback %s", request.message_id,
                        self.fallback)
            return self._fallback(request, "invalid rewrite")
        return Decision(True, content, attributes)


def load_hook(spec: str) -> ReviewHook:
    """'package.module:function' -> the callable (for PLAYCAST_CHAT_REVIEW_HOOK)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"review hook must look like 'package.module:function', got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"review hook {spec!r} is not callable")
    return target
