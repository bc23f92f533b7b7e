"""How a host dials back: host/remote.py's Backoff (doubling from 0.5 s, capped at 5 s so a host is back within
seconds of a restarted control plane, jittered so a fleet does not come back in step) and keep_joined's loop
over a dialer that fails, with an injected sleep (nothing waits for real)."""

from __future__ import annotations

import pytest

from playcast.host.remote import Backoff, keep_joined


def test_waits_double_up_to_the_cap_and_start_over_after_a_reset() -> None:
    b = Backoff(rand=lambda: 0.5)  # the middle of the jitter: the nominal waits
    assert [b.next_wait() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    b.reset()
    assert b.next_wait() == 0.5


def test_jitter_spreads_each_wait_by_thirty_percent() -> None:
    low, high = Backoff(rand=lambda: 0.0), Backoff(rand=lambda: 1.0)
    for _ in range(6):
        lo, hi = low.next_wait(), high.next_wait()
    assert lo == pytest.approx(5.0 * 0.7) and hi == pytest.approx(5.0 * 1.3)


async def test_an_unreachable_control_plane_is_dialled_again_and_again_within_the_cap() -> None:
    waits: list[float] = []

    async def dial(url: str, token: str):  # type: ignore[no-untyped-def]
        raise OSError("connection refused")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= 10:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        await keep_joined(None, "http://10.0.0.1:8000", "t", backoff=Backoff(rand=lambda: 0.5),  # type: ignore[arg-type]
                          dialer=dial, sleep=sleep)
    assert waits[:5] == [0.5, 1.0, 2.0, 4.0, 5.0] and max(waits) == 5.0
