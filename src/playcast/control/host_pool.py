"""The control plane's view of the hosts: the HostPool it calls, whether hosts run in this process or on other
machines across the host protocol.

A Protocol only: no I/O here (control/hosts.py implements it over hostproto channels)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from playcast.hostproto.media_endpoint import HostMediaEndpoint
from playcast.hostproto.types import (
    EgressStatus,
    FileBundle,
    LaunchSpec,
    LocationCapacity,
    Placement,
    PlacementResult,
    SessionEventHandler,
    StageState,
)

HostJoinedHandler = Callable[[str, set[str]], Awaitable[None]]


class HostPool(Protocol):
    """What the control plane needs from the hosts."""

    async def place(self, placement: Placement, timeout_s: float) -> PlacementResult:
        """Start the session on a slot (warm if one matches) and apply the offer. Raises PlacementError."""

    async def connect(self, session_id: str, signal_request: str) -> str:
        """Attach a new client peer to a running session; returns the answer JSON. Raises SignalError."""

    async def terminate(self, session_id: str, reason: str = "terminated") -> None:
        """Stop the session's peer, app, display and audio. Emits ENDED when done. Idempotent.

        `reason` is what the client's serverDisconnect callback receives ("terminated" | "idle")."""

    async def terminate_on(self, host_id: str, session_id: str) -> None:
        """Have that host alone stop `session_id` (the control plane does not run it there: it ended, or the
        host claims a session that runs elsewhere); the session, wherever it really runs, is not touched."""

    async def set_warm_target(self, stream_group_id: str, location: str, launches: list[LaunchSpec],
                              count: int, pause_idle: bool = True) -> None:
        """Keep `count` idle slots in `location` pre-launched for this group (spread over its launch specs).

        With `pause_idle`, an idle slot's game is paused (SIGSTOP) once it has drawn its first frame and resumed
        when a session claims the slot; False keeps idle games running (stream-group tag playcast:pause-warm)."""

    async def send_app_message(self, session_id: str, payload: bytes) -> bool:
        """Deliver `payload` to the session's game as an application message from client id 0 (the platform,
        e.g. chat and reactions). False if the session is not running here or the message was dropped."""

    async def add_viewer(self, session_id: str, offer_sdp: str) -> tuple[str, str]:
        """A receive-only broadcast viewer (WHEP) of a running session: returns (viewer id, answer SDP).
        Raises LookupError when the session does not run here, SignalError for an unusable offer."""

    async def remove_viewer(self, session_id: str, viewer_id: str) -> bool: ...

    def viewer_count(self, session_id: str) -> int: ...

    async def start_hls(self, session_id: str, broadcast_id: str, record: bool = False) -> None:
        """Package the session's stream as LL-HLS under `broadcast_id` (served by the HLS origin); with `record`,
        also record it to the host's recording storage. Raises LookupError when the session does not run here."""

    def recording_status(self, session_id: str, broadcast_id: str) -> dict[str, object] | None:
        """{"status": STARTING|RECORDING|ENDED|FAILED, "message", "segments"} while live, None if not recording."""

    async def stop_hls(self, session_id: str, broadcast_id: str) -> None: ...

    def hls_endpoint(self, session_id: str) -> HostMediaEndpoint | None:
        """The LL-HLS endpoint of the session's host, which the origin relays to; None when the host runs in this
        process (its packagers are in the origin's registry) or the session runs nowhere."""

    async def start_egress(self, session_id: str, url: str, token: str | None) -> str:
        """Push the session's stream (its one encode, H.264 + Opus) to a WHIP endpoint until stopped; retries with
        backoff while the endpoint is down. Returns the egress id. Raises LookupError when the session does not
        run here. Sessions whose AdditionalEnvironmentVariables hold IVS_WHIP_ENDPOINT (+ IVS_STAGE_TOKEN) get one
        started by the host itself."""

    async def stop_egress(self, session_id: str, egress_id: str) -> bool: ...

    def egress_status(self, session_id: str) -> list[EgressStatus]: ...

    async def stage_publish(self, session_id: str, broadcast_id: str, offer_sdp: str) -> tuple[str, str, str]:
        """A WHIP publisher onto the broadcast's stage, which runs on the session's host (made on first use):
        (publisher id, ETag, answer SDP). Raises StageRefused, LookupError when the session runs nowhere."""

    async def stage_unpublish(self, session_id: str, broadcast_id: str, publisher_id: str) -> bool: ...

    async def stage_trickle(self, session_id: str, broadcast_id: str, publisher_id: str, fragment: str) -> int:
        """Trickle ICE candidates to a publisher; how many. Raises StageRefused, LookupError (no such publisher)."""

    async def stage_add_viewer(self, session_id: str, broadcast_id: str, offer_sdp: str) -> tuple[str, str]:
        """A WHEP viewer of the stage: (viewer id, answer SDP). Raises StageRefused (409: nothing published)."""

    async def stage_remove_viewer(self, session_id: str, broadcast_id: str, viewer_id: str) -> bool: ...

    async def stage_end(self, session_id: str, broadcast_id: str) -> None:
        """The broadcast ended: its publisher and viewers are disconnected."""

    def stage_state(self, session_id: str, broadcast_id: str) -> StageState | None:
        """The stage as of the host's last heartbeat or reply; None when it has none."""

    async def collect_files(self, session_id: str, log_paths: list[str], export: bool) -> list[FileBundle]:
        """Zip a running session's ApplicationLogPaths (with `export`, its game's output too) on its host; read
        each bundle back with read_file. LookupError if the session is not running."""

    async def read_file(self, session_id: str, name: str, offset: int) -> bytes:
        """Up to FILE_CHUNK_BYTES of a bundle collect_files made, from `offset` (empty at its end)."""

    def capacity(self, location: str) -> LocationCapacity: ...

    def locations(self) -> list[str]: ...

    def hosts_online(self) -> set[str]:
        """Ids of the hosts joined now."""

    def on_host_joined(self, handler: HostJoinedHandler) -> None:
        """`handler(host_id, sessions)` each time a host joins or comes back, with the sessions it says it runs
        (the control plane keeps those it still has and has the host stop the others)."""

    def running_sessions(self) -> set[str]:
        """Ids of sessions some connected host reports as running (used to reconcile after a restart)."""

    def on_event(self, handler: SessionEventHandler) -> None:
        """Register the control plane's handler for session events."""


@runtime_checkable
class WarmFigures(Protocol):
    """A HostPool that can say, without asking a host, which stream group each idle warm slot is kept for (hosts
    report it in their heartbeats). The Fleet's own figures are in the database (control/capacity_ledger.py); a
    pool used directly (tests, a LocalHostPool) answers from its slots."""

    def idle_warm_groups(self, location: str) -> list[str]:
        """The stream group of each idle warm slot in `location`, one entry per slot."""
