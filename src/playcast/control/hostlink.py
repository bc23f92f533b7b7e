"""The contract between the control plane and the hosts that run stream sessions.

control/ calls a HostPool; it never knows whether hosts are in-process or across a WebSocket.
Types only: no I/O here."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class LaunchSpec:
    """What to start in a slot. Two sessions can share a warm slot only if their LaunchSpecs are equal."""

    application_id: str
    source_dir: str  # absolute path to the application's content on the host
    executable: str  # ExecutablePath, relative to source_dir
    args: tuple[str, ...] = ()  # AdditionalLaunchArgs
    env: tuple[tuple[str, str], ...] = ()  # AdditionalEnvironmentVariables, sorted by key

    @staticmethod
    def make(application_id: str, source_dir: str, executable: str,
             args: list[str] | None = None, env: dict[str, str] | None = None) -> LaunchSpec:
        return LaunchSpec(application_id, source_dir, executable, tuple(args or ()),
                          tuple(sorted((env or {}).items())))


@dataclass(frozen=True)
class Placement:
    """A request to run one stream session on some host slot."""

    session_id: str
    stream_group_id: str
    locations: tuple[str, ...]  # ordered preference; empty = any
    launch: LaunchSpec
    signal_request: str | None  # JSON RTCSessionDescription offer, or None for NO_CLIENT_CONNECTION


@dataclass(frozen=True)
class PlacementResult:
    host_id: str
    slot_id: str
    location: str
    signal_response: str | None  # JSON answer, None when no offer was given
    warm: bool  # True when an already-launched slot was used


class PlacementError(Exception):
    """Placement failed; `reason` is a StreamSessionStatusReason (invalidSignalRequest, placementTimeout,
    internalError, applicationExit)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignalError(Exception):
    """An offer could not be applied (malformed SDP/JSON, no H.264 in it, ...)."""


PLATFORM_CLIENT_ID = 0
"""Application-message client id of playcast itself (browser clients are 1..255)."""


class SessionEventKind(enum.StrEnum):
    CLIENT_CONNECTED = "client_connected"  # ICE+DTLS up
    CLIENT_DISCONNECTED = "client_disconnected"  # peer lost or closed
    INPUT = "input"  # user input seen (sent at most once per second)
    APP_EXITED = "app_exited"  # the game process ended by itself (exit or crash)
    APP_MESSAGE = "app_message"  # the game sent an application message to client id 0 (the platform): {"payload": bytes}
    ENDED = "ended"  # all processes of the session are gone after terminate


@dataclass(frozen=True)
class SessionEvent:
    session_id: str
    kind: SessionEventKind
    at: float  # unix time
    detail: dict[str, object] = field(default_factory=dict)


SessionEventHandler = Callable[[SessionEvent], Awaitable[None]]


@dataclass(frozen=True)
class EgressStatus:
    """One WHIP egress of a session: the host pushing the session's encoded stream to an external WHIP endpoint."""

    egress_id: str
    url: str  # the endpoint, without query string or credentials
    origin: str  # "env" (IVS_WHIP_ENDPOINT in AdditionalEnvironmentVariables) | "api"
    state: str  # connecting | connected | retrying | failed | stopped
    attempts: int
    last_error: str | None = None
    connected_at: float | None = None  # unix time
    next_retry_at: float | None = None  # unix time, while retrying


@dataclass(frozen=True)
class LocationCapacity:
    location: str
    total_slots: int  # all slots on all hosts in that location
    allocated: int  # streaming + idle warm
    idle: int  # warm, not streaming


class HostPool(Protocol):
    """What the control plane needs from the hosts."""

    async def place(self, placement: Placement, timeout_s: float) -> PlacementResult:
        """Start the session on a slot (warm if one matches) and apply the offer. Raises PlacementError."""

    async def connect(self, session_id: str, signal_request: str) -> str:
        """Attach a new client peer to a running session; returns the answer JSON. Raises SignalError."""

    async def terminate(self, session_id: str, reason: str = "terminated") -> None:
        """Stop the session's peer, app, display and audio. Emits ENDED when done. Idempotent.

        `reason` is what the client's serverDisconnect callback receives ("terminated" | "idle")."""

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

    async def start_egress(self, session_id: str, url: str, token: str | None) -> str:
        """Push the session's stream (its one encode, H.264 + Opus) to a WHIP endpoint until stopped; retries with
        backoff while the endpoint is down. Returns the egress id. Raises LookupError when the session does not
        run here. Sessions whose AdditionalEnvironmentVariables hold IVS_WHIP_ENDPOINT (+ IVS_STAGE_TOKEN) get one
        started by the host itself."""

    async def stop_egress(self, session_id: str, egress_id: str) -> bool: ...

    def egress_status(self, session_id: str) -> list[EgressStatus]: ...

    def capacity(self, location: str) -> LocationCapacity: ...

    def locations(self) -> list[str]: ...

    def running_sessions(self) -> set[str]:
        """Ids of sessions some connected host reports as running (used to reconcile after a restart)."""

    def on_event(self, handler: SessionEventHandler) -> None:
        """Register the control plane's handler for session events."""
