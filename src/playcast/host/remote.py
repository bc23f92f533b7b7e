"""Keeps a host agent joined to a remote control plane: dial, serve until the connection drops, dial again with a
capped, jittered backoff; stop for good when the control plane refuses the host (it says why).

Reconnecting only: the agent answers the requests, hostproto.websocket carries the frames."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from playcast.host.agent import HostAgent, HostRefused
from playcast.hostproto.channel import Channel, ChannelClosed
from playcast.hostproto.codec import ProtocolError
from playcast.hostproto.websocket import dial

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Waits between attempts: `first_s` doubling up to `max_s`, each spread by ±`jitter` (so a fleet of hosts
    that lost the same server does not come back in step); back to `first_s` after a connection that held."""

    first_s: float = 0.5
    max_s: float = 5.0  # a host is back at most ~6.5 s after its control plane is: replicas restart in seconds
    jitter: float = 0.3
    rand: Callable[[], float] = random.random
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def next_wait(self) -> float:
        self._next = self.first_s if self._next <= 0 else min(self.max_s, self._next * 2)
        return self._next * (1 - self.jitter + 2 * self.jitter * self.rand())


Dialer = Callable[[str, str], Awaitable[Channel]]


async def keep_joined(agent: HostAgent, server_url: str, token: str, *, backoff: Backoff | None = None,
                      dialer: Dialer = dial, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Serve `agent` to the control plane at `server_url` until cancelled. Raises HostRefused when the control
    plane refuses this host (a wrong or revoked token: retrying would not help)."""
    backoff = backoff or Backoff()
    while True:
        try:
            channel = await dialer(server_url, token)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused upgrade, DNS: all worth another try
            wait = backoff.next_wait()
            log.warning("cannot reach the control plane at %s (%s); again in %.1f s", server_url, exc, wait)
            await sleep(wait)
            continue
        joined_at = asyncio.get_running_loop().time()
        try:
            await agent.serve(channel)
        except HostRefused:
            await channel.close()
            raise
        except (ChannelClosed, ProtocolError, TimeoutError) as exc:
            log.warning("connection to the control plane lost: %s", exc)
        finally:
            await channel.close()
        if asyncio.get_running_loop().time() - joined_at > 30:
            backoff.reset()
        wait = backoff.next_wait()
        log.info("reconnecting to the control plane in %.1f s", wait)
        await sleep(wait)
