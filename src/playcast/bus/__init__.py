"""Pub/sub bus: in-process and Redis implementations."""

from .base import Bus, BusListener, BusUnavailable
from .memory import MemoryBus

__all__ = ["Bus", "BusListener", "BusUnavailable", "MemoryBus", "make_bus"]


def make_bus(redis_url: str | None) -> Bus:
    """The Redis bus when a URL is configured (PLAYCAST_REDIS_URL), else the in-process one."""
    if redis_url:
        from .redis import RedisBus

        return RedisBus(redis_url)
    return MemoryBus()
