"""Rate windows (room and user), the review hook's verdicts, budget and fallback, and chat config from the env."""

from __future__ import annotations

import asyncio

import pytest

from playcast.events.chat.config import ChatConfig
from playcast.events.chat.limits import Limiter, Rate, RateLimited
from playcast.events.chat.review import ALLOW, DENY, Reviewer, ReviewRequest, ReviewResult


def test_room_limit_counts_all_users_and_slides() -> None:
    lim = Limiter(Rate(10, 1.0), Rate(100, 1.0))
    for i in range(10):
        lim.check("r", f"u{i}", now=100.0 + i * 0.01)
    with pytest.raises(RateLimited) as info:
        lim.check("r", "u99", now=100.5)
    assert info.value.scope == "room"
    assert 0.5 <= info.value.retry_after_s <= 0.51
    lim.check("other-room", "u99", now=100.5)  # rooms are independent
    lim.check("r", "u99", now=101.001)  # the first one left the window


def test_user_limit_first_and_refusals_not_counted() -> None:
    lim = Limiter(Rate(10, 1.0), Rate(3, 1.0))
    for _ in range(3):
        lim.check("r", "flood", now=5.0)
    for _ in range(20):
        with pytest.raises(RateLimited) as info:
            lim.check("r", "flood", now=5.1)
        assert info.value.scope == "user"
    # The flooder's refused attempts did not use up the room.
    for i in range(7):
        lim.check("r", f"u{i}", now=5.2)
    with pytest.raises(RateLimited):
        lim.check("r", "late", now=5.3)


def test_sweep_forgets_idle_windows() -> None:
    lim = Limiter(Rate(1, 1.0), Rate(1, 1.0), max_keys=4)
    for i in range(10):
        lim.check(f"r{i}", "u", now=float(i * 2))
    assert len(lim._rooms) + len(lim._users) <= 6


def test_bad_rate() -> None:
    with pytest.raises(ValueError):
        Rate(0)


def _req(content: str = "hello") -> ReviewRequest:
    return ReviewRequest("room", "AbCdEf123456", content, {"k": "v"}, "u1", "Ann", "viewer")


async def test_review_allow_deny_rewrite() -> None:
    async def hook(req: ReviewRequest) -> ReviewResult:
        if "bad" in req.content:
            return ReviewResult(DENY, reason="no bad words")
        if "darn" in req.content:
            return ReviewResult(ALLOW, content=req.content.replace("darn", "****"))
        return ReviewResult(ALLOW)

    r = Reviewer(hook)
    assert (await r.review(_req("fine"))).allowed
    d = await r.review(_req("bad thing"))
    assert not d.allowed and d.reason == "no bad words" and not d.fallback
    w = await r.review(_req("oh darn"))
    assert w.allowed and w.content == "oh ****" and w.attributes == {"k": "v"}


@pytest.mark.parametrize("fallback", [ALLOW, DENY])
async def test_review_timeout_and_errors_use_fallback(fallback: str) -> None:
    async def slow(req: ReviewRequest) -> str:
        await asyncio.sleep(5)
        return ALLOW

    async def broken(req: ReviewRequest) -> str:
        raise RuntimeError("boom")

    async def nonsense(req: ReviewRequest) -> object:
        return {"verdict": "maybe"}

    for hook, why in ((slow, "timeout"), (broken, "error"), (nonsense, "invalid answer")):
        d = await Reviewer(hook, budget_s=0.05, fallback=fallback).review(_req())
        assert d.fallback and d.detail["why"] == why
        assert d.allowed is (fallback == ALLOW)


async def test_review_plain_answers_and_bad_rewrite() -> None:
    for answer, allowed in ((True, True), (False, False), ("deny", False), (None, True), ("ALLOW", True)):
        async def hook(req: ReviewRequest, a: object = answer) -> object:
            return a

        assert (await Reviewer(hook).review(_req())).allowed is allowed

    async def too_long(req: ReviewRequest) -> ReviewResult:
        return ReviewResult(ALLOW, content="x" * 501)

    d = await Reviewer(too_long, fallback=DENY).review(_req())
    assert not d.allowed and d.fallback


def test_config_from_env() -> None:
    cfg = ChatConfig.from_env({"PLAYCAST_CHAT_ROOM_RATE": "20", "PLAYCAST_CHAT_USER_RATE": "2",
                               "PLAYCAST_CHAT_MAX_LENGTH": "200", "PLAYCAST_CHAT_REVIEW_BUDGET_MS": "50",
                               "PLAYCAST_CHAT_REVIEW_FALLBACK": "deny",
                               "PLAYCAST_CHAT_REVIEW_HOOK": "tests.chat.hooks:deny_swearing"})
    assert cfg.room_rate == Rate(20) and cfg.user_rate == Rate(2) and cfg.max_message_length == 200
    assert cfg.review_budget_s == 0.05 and cfg.review_fallback == DENY and callable(cfg.review_hook)
    assert ChatConfig.from_env({}).room_rate == Rate(10)
    assert ChatConfig.from_env({"PLAYCAST_CHAT_USER_RATE": "5/30"}).user_rate == Rate(5, 30.0)
    for bad in ({"PLAYCAST_CHAT_ROOM_RATE": "ten"}, {"PLAYCAST_CHAT_ROOM_RATE": "0"}, {"PLAYCAST_CHAT_ROOM_RATE": "5/x"}, {"PLAYCAST_CHAT_REVIEW_FALLBACK": "MAYBE"},
                {"PLAYCAST_CHAT_REVIEW_HOOK": "no_colon"}, {"PLAYCAST_CHAT_MAX_LENGTH": "0"}):
        with pytest.raises(ValueError):
            ChatConfig.from_env(bad)
