"""The messages of the host protocol, version 1: what a host says (hello, heartbeat, session events, replies) and
what the control plane asks (welcome or refusal, requests, cancellations).

Plain frozen dataclasses; codec.py turns them into JSON text and back (checking every field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playcast.hostproto.types import EgressStatus, SessionEvent, VideoStats

PROTOCOL_VERSION = 1

# The operations a control plane may request, with what each takes (args) and answers (result):
#   place            {placement: Placement, timeout_s: float}                     -> PlacementResult
#   connect          {session_id, signal_request}                                 -> answer JSON (str)
#   terminate        {session_id, reason}                                         -> None
#   set_warm_target  {stream_group_id, location, launches: [LaunchSpec], count,
#                     pause_idle: bool}                                          -> None
#   send_app_message {session_id, payload: bytes}                                 -> bool
#   add_viewer       {session_id, offer_sdp}                                      -> [viewer_id, answer_sdp]
#   remove_viewer    {session_id, viewer_id}                                      -> bool
#   start_hls        {session_id, broadcast_id, record: bool}                     -> None
#   stop_hls         {session_id, broadcast_id}                                   -> None
#   start_egress     {session_id, url, token: str | None}                         -> egress id (str)
#   stop_egress      {session_id, egress_id}                                      -> bool
OPERATIONS = ("place", "connect", "terminate", "set_warm_target", "send_app_message", "add_viewer",
              "remove_viewer", "start_hls", "stop_hls", "start_egress", "stop_egress")

# The errors a host answers with (HostError.kind), raised again on the control plane's side as the same exception.
PLACEMENT, SIGNAL, LOOKUP, BAD_REQUEST, INTERNAL = "placement", "signal", "lookup", "bad_request", "internal"
ERROR_KINDS = (PLACEMENT, SIGNAL, LOOKUP, BAD_REQUEST, INTERNAL)


# ------------------------------------------------------------------------------------------------ host -> server
@dataclass(frozen=True)
class Hello:
    """The first message of a host on a new channel: who it is and what it already runs."""

    host_id: str
    token: str
    location: str
    slots: int
    version: str  # playcast's version on the host
    encoder: str  # what the host's encoder choice gives (libx264 | h264_nvenc)
    gpu: str | None = None
    public_address: str | None = None
    sessions: tuple[str, ...] = ()  # sessions running on it now (after a reconnect or a server restart)
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class SessionState:
    """One running session as its host sees it: what the control plane reads without asking the host."""

    session_id: str
    viewers: int = 0
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)  # broadcast id -> {status, message, segments}
    egress: tuple[EgressStatus, ...] = ()
    video: VideoStats | None = None


@dataclass(frozen=True)
class Heartbeat:
    """Sent every few seconds and after every change: the host's slots and sessions."""

    seq: int
    slots: int
    busy: int  # slots running a session
    warm: int  # slots with an application launched and no session
    warm_launches: tuple[str, ...] = ()  # launch keys (types.launch_key) of the idle warm slots
    sessions: tuple[SessionState, ...] = ()
    warm_groups: tuple[str, ...] = ()  # the stream group id of each idle warm slot (one entry per slot)


@dataclass(frozen=True)
class Event:
    """Something happened in a session (client connected, input, the app exited, a message to the platform...)."""

    event: SessionEvent


@dataclass(frozen=True)
class HostError:
    kind: str  # one of ERROR_KINDS
    message: str
    reason: str | None = None  # for PLACEMENT: the StreamSessionStatusReason


@dataclass(frozen=True)
class Reply:
    """The answer to one Request: `result`, or `error`; `session` is the state of the session it concerned right
    after (so what the control plane reads next is already up to date), `gone` when that session no longer runs."""

    id: int
    result: Any = None
    error: HostError | None = None
    session: SessionState | None = None
    gone: bool = False


# ------------------------------------------------------------------------------------------------ server -> host
@dataclass(frozen=True)
class Welcome:
    host_id: str
    heartbeat_s: float


@dataclass(frozen=True)
class Refused:
    """The host may not join (wrong or revoked token, unsupported protocol...): the channel closes after it."""

    reason: str


@dataclass(frozen=True)
class Request:
    id: int
    op: str  # one of OPERATIONS
    args: dict[str, Any]


@dataclass(frozen=True)
class Cancel:
    """The control plane gave up on Request `id` (a placement cancelled, a caller gone): stop and undo it."""

    id: int


HostMessage = Hello | Heartbeat | Event | Reply
ServerMessage = Welcome | Refused | Request | Cancel
