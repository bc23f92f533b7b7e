"""The messages of the host protocol, version 1: what a host says (hello, heartbeat, session events, replies) and
what the control plane asks (welcome or refusal, requests, cancellations).

Plain frozen dataclasses; codec.py turns them into JSON text and back (checking every field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playcast.hostproto.types import EgressStatus, SessionEvent, StageState, VideoStats

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
# A broadcast's stage (WHIP ingest of a viewer's webcam, shown to WHEP viewers) runs on the session's host:
#   stage_publish        {session_id, broadcast_id, offer_sdp}                    -> [publisher_id, etag, answer_sdp]
#   stage_unpublish      {session_id, broadcast_id, publisher_id}                 -> bool
#   stage_trickle        {session_id, broadcast_id, publisher_id, fragment}       -> candidates added (int)
#   stage_add_viewer     {session_id, broadcast_id, offer_sdp}                    -> [viewer_id, answer_sdp]
#   stage_remove_viewer  {session_id, broadcast_id, viewer_id}                    -> bool
#   stage_end            {session_id, broadcast_id}                               -> None
# A session's files (ApplicationLogPaths, exports), collected on its host:
#   collect_files    {session_id, log_paths: [str], export: bool}                 -> [FileBundle]
#                    (the game keeps running; zips its ApplicationLogPaths and, with export, the game's output;
#                    a bundle lives until the session ends)
#   read_file        {session_id, name, offset}                                   -> bytes (at most FILE_CHUNK_BYTES)
STAGE_OPERATIONS = ("stage_publish", "stage_unpublish", "stage_trickle", "stage_add_viewer", "stage_remove_viewer",
                    "stage_end")
OPERATIONS = ("place", "connect", "terminate", "set_warm_target", "send_app_message", "add_viewer",
              "remove_viewer", "start_hls", "stop_hls", "start_egress", "stop_egress", "collect_files",
              "read_file", *STAGE_OPERATIONS)

# The errors a host answers with (HostError.kind), raised again on the control plane's side as the same exception.
PLACEMENT, SIGNAL, LOOKUP, BAD_REQUEST, INTERNAL = "placement", "signal", "lookup", "bad_request", "internal"
STAGE = "stage"  # types.StageRefused; its reason is the status ("400" | "409" | "422")
ERROR_KINDS = (PLACEMENT, SIGNAL, LOOKUP, BAD_REQUEST, INTERNAL, STAGE)


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
    # a secret kept in the host's data dir: the control plane binds the host id to the first key it joins with,
    # so that another machine (even one with a valid token) cannot take the id, and its sessions, over
    host_key: str | None = None
    # its LL-HLS endpoint (hostproto/media_endpoint.py) and the key the control plane presents there; None for a
    # host in the control plane's own process (the origin reads its packagers directly)
    media_url: str | None = None
    media_key: str | None = None


@dataclass(frozen=True)
class SessionState:
    """One running session as its host sees it: what the control plane reads without asking the host."""

    session_id: str
    viewers: int = 0
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)  # broadcast id -> {status, message, segments}
    egress: tuple[EgressStatus, ...] = ()
    video: VideoStats | None = None
    stages: tuple[StageState, ...] = ()  # the stages of its broadcasts


@dataclass(frozen=True)
class Heartbeat:
    """Sent every few seconds and after every change: the host's slots and sessions."""

    seq: int
    slots: int
    busy: int  # slots running a session
    warm: int  # slots with an application launched and no session
    warm_launches: tuple[str, ...] = ()  # launch keys (types.launch_key) of the idle warm slots
    sessions: tuple[SessionState, ...] = ()
    paused: int = 0  # of the warm slots, those whose game is paused (SIGSTOP) until a session claims it
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
    # where this host writes recordings itself (an s3:// storage URL, credentials from the host's own AWS
    # environment); None: it uploads them to the control plane (PUT /v1/hosts/recordings/... with its token)
    recordings: str | None = None


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
