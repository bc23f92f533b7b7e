"""WHIP egress of one session: push the session's already-encoded video and its shared Opus audio to external WHIP
endpoints (the seed's "broadcast sidecar", built in), started by env (IVS_WHIP_ENDPOINT/IVS_STAGE_TOKEN) or the API.

Each egress has its own bounded fan-out sink, opened only while connected, so a down or slow endpoint never
touches the player's stream. No second encode, no HTTP routes here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from playcast.hostproto.types import EgressStatus
from playcast.media.fanout import PacketFanout, PacketSink
from playcast.media.ice import IceServer
from playcast.media.opus_fanout import OpusFanout
from playcast.media.peer import EncodedVideoTrack
from playcast.media.whip_client import WhipClient, WhipState, WhipStatus, redact

log = logging.getLogger(__name__)

ENV_ENDPOINT = "IVS_WHIP_ENDPOINT"
ENV_TOKEN = "IVS_STAGE_TOKEN"
SINK_PACKETS = 60  # ~1 s at 60 fps; a slower endpoint drops to the next keyframe


class WhipEgresses:
    """The WHIP clients of one session runtime, by egress id."""

    def __init__(self, fanout: PacketFanout, opus: OpusFanout | None, ice_servers: tuple[IceServer, ...] = ()) -> None:
        self._fanout = fanout
        self._ice_servers = ice_servers  # the host's own STUN/TURN, before any the endpoint's Link headers name
        self._opus = opus
        self._clients: dict[str, tuple[WhipClient, str]] = {}  # id -> (client, origin)
        self._seq = 0

    def start(self, url: str, token: str | None, origin: str = "api") -> str:
        """Start pushing to `url`; raises ValueError for a URL that is not http(s)."""
        self._seq += 1
        egress_id = f"e{self._seq}"
        fanout = self._fanout

        def video() -> EncodedVideoTrack:
            def open_sink() -> PacketSink:
                return fanout.add_sink(f"whip-{egress_id}", max_packets=SINK_PACKETS)

            return EncodedVideoTrack(open_sink)

        opus = self._opus
        client = WhipClient(url, token, video, opus.subscribe if opus is not None else None,
                            ice_servers=list(self._ice_servers),
                            on_status=lambda status: _log_status(egress_id, url, status))
        self._clients[egress_id] = (client, origin)
        client.start()
        log.info("WHIP egress started", extra={"egress": egress_id, "endpoint": redact(url), "origin": origin})
        return egress_id

    def start_from_env(self, env: Mapping[str, str]) -> str | None:
        """The seed's sidecar contract: IVS_WHIP_ENDPOINT (+ IVS_STAGE_TOKEN) in the session's environment."""
        url = env.get(ENV_ENDPOINT, "").strip()
        if not url:
            return None
        try:
            return self.start(url, env.get(ENV_TOKEN) or None, origin="env")
        except ValueError as exc:
            log.warning("%s ignored: %s", ENV_ENDPOINT, exc)
            return None

    async def stop(self, egress_id: str) -> bool:
        entry = self._clients.pop(egress_id, None)
        if entry is None:
            return False
        await entry[0].stop()
        log.info("WHIP egress stopped", extra={"egress": egress_id})
        return True

    def status(self) -> list[EgressStatus]:
        out = []
        for egress_id, (client, origin) in self._clients.items():
            s = client.status
            out.append(EgressStatus(egress_id, redact(client.url), origin, str(s.state), s.attempts, s.last_error,
                                    s.connected_at, s.next_retry_at))
        return out

    async def close(self) -> None:
        ids = list(self._clients)
        await asyncio.gather(*(self.stop(i) for i in ids), return_exceptions=True)


def _log_status(egress_id: str, url: str, status: WhipStatus) -> None:
    if status.state in (WhipState.FAILED,):
        log.warning("WHIP egress gave up: %s", status.last_error, extra={"egress": egress_id,
                                                                         "endpoint": redact(url)})
