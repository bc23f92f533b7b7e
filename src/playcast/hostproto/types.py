"""The domain types the control plane and the hosts share: what to launch, placements and their results, session
events, egress and capacity figures, and the errors a host reports.

Types only: no I/O, no wire format (messages.py and codec.py carry these over a channel)."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

CONTENT_PATH = "/v1/hosts/content/"  # GET <server>/v1/hosts/content/<sha256>: an application's archive, for a host's token


@dataclass(frozen=True)
class ContentRef:
    """Where a host gets an application's content: one archive (.tar.gz), named and checked by its SHA-256."""

    sha256: str  # 64 lowercase hex digits: the archive's digest
    size: int  # the archive's size in bytes
    url: str  # "/v1/hosts/content/<sha256>" on the control plane the host joined, or "s3://bucket/key"


@dataclass(frozen=True)
class LaunchSpec:
    """What to start in a slot. Two sessions can share a warm slot only if their LaunchSpecs are equal."""

    application_id: str
    source_dir: str  # the control plane's unpacked copy, sent only to a host on the same disk ("" to others when
    #                  there is `content`); for a spec without `content`, the content's path on the host
    executable: str  # ExecutablePath, relative to the content's root
    args: tuple[str, ...] = ()  # AdditionalLaunchArgs
    env: tuple[tuple[str, str], ...] = ()  # AdditionalEnvironmentVariables, sorted by key
    content: ContentRef | None = None  # the archive a host fetches (verified, cached) before launching

    @staticmethod
    def make(application_id: str, source_dir: str, executable: str,
             args: list[str] | None = None, env: dict[str, str] | None = None,
             content: ContentRef | None = None) -> LaunchSpec:
        return LaunchSpec(application_id, source_dir, executable, tuple(args or ()),
                          tuple(sorted((env or {}).items())), content)


@dataclass(frozen=True)
class Placement:
    """A request to run one stream session on some host slot."""

    session_id: str
    stream_group_id: str
    locations: tuple[str, ...]  # ordered preference; empty = any
    launch: LaunchSpec
    signal_request: str | None  # JSON RTCSessionDescription offer, or None for NO_CLIENT_CONNECTION
    host_id: str | None = None  # the host the control plane reserved a slot on (None: the pool picks)


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


@dataclass(frozen=True)
class VideoStats:
    """What one runtime's shared encode has done so far (plain numbers, read at scrape time by metrics)."""

    encoder: str  # libx264 | h264_nvenc
    packets: int  # encoded packets read from the encoder
    keyframes: int
    keyframe_requests: int  # sent to the encoder (coalesced)
    sinks: int  # consumers of the encode now: the player, WHEP viewers, LL-HLS, WHIP egress
    dropped: int  # packets dropped by consumers that fell behind


@dataclass(frozen=True)
class FileBundle:
    """A zip a host made of one session's files (its application logs, or an export), read back in chunks."""

    name: str  # "logs.zip" | "export.zip"
    size: int
    sha256: str


LOGS_BUNDLE, EXPORT_BUNDLE = "logs.zip", "export.zip"
BUNDLE_NAMES = (LOGS_BUNDLE, EXPORT_BUNDLE)
FILE_CHUNK_BYTES = 512 * 1024  # one read_file answer (base64 in a frame of at most 1 MiB)


def for_remote_host(spec: LaunchSpec) -> LaunchSpec:
    """The spec as a host on another machine gets it: with content, no path on the control plane's disk."""
    return replace(spec, source_dir="") if spec.content is not None else spec


def launch_key(spec: LaunchSpec) -> str:
    """A short stable name of a LaunchSpec: hosts report their idle warm slots by it, the control plane matches
    placements against it (equal specs, equal keys; a spec and its for_remote_host() have one key)."""
    source_dir = "" if spec.content is not None else spec.source_dir
    parts: list[object] = [spec.application_id, source_dir, spec.executable, list(spec.args),
                           [list(kv) for kv in spec.env]]
    if spec.content is not None:
        parts.append([spec.content.sha256, spec.content.size, spec.content.url])
    canon = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class StagePublisher:
    """The WHIP publisher (a viewer's webcam, OBS, FFmpeg) on a broadcast's stage."""

    publisher_id: str
    etag: str  # of its WHIP session (PATCH If-Match)
    connected: bool
    since: float  # unix time
    video_size: tuple[int, int] | None = None  # of what it sends


@dataclass(frozen=True)
class StageState:
    """One broadcast's stage as the host that runs it sees it (it runs on the host of the broadcast's session)."""

    broadcast_id: str
    publisher: StagePublisher | None = None
    viewer_ids: tuple[str, ...] = ()  # its WHEP viewers (/whep/{id}/cam)
    rendition_size: tuple[int, int] | None = None  # what the stage encodes for its viewers


class StageRefused(Exception):
    """A stage could not do what was asked: `status` says why as the WHIP/WHEP answer's (400 malformed, 409 nothing
    published, 422 an offer it cannot use)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
