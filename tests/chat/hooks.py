"""Review hooks used by the chat tests (loaded by dotted path, as PLAYCAST_CHAT_REVIEW_HOOK does)."""

from __future__ import annotations

import asyncio

from playcast.events.chat.review import ALLOW, DENY, ReviewRequest, ReviewResult


async def deny_swearing(req: ReviewRequest) -> ReviewResult:
    """Denies 'forbidden', masks 'darn', sleeps past any budget on 'slow', raises on 'crash'."""
    if "slow" in req.content:
        await asyncio.sleep(5)
    if "crash" in req.content:
        raise RuntimeError("the review service is down")
    if "forbidden" in req.content:
        return ReviewResult(DENY, reason="that word is not allowed here")
    if "darn" in req.content:
        return ReviewResult(ALLOW, content=req.content.replace("darn", "d**n"), attributes={"masked": "1"})
    return ReviewResult(ALLOW)
