"""The host protocol's wire format: each message is one JSON object `{"v": 1, "type": ..., ...}` in one text frame;
request arguments and results per operation; every field of what arrives is checked.

Encoding and decoding only: a frame that is too large, not JSON, of an unknown type or with a wrong field raises
ProtocolError naming it; nothing here sends, receives or acts on a message."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar
from urllib.parse import urlsplit

from playcast.hostproto.messages import (
    ERROR_KINDS,
    OPERATIONS,
    PROTOCOL_VERSION,
    STAGE_OPERATIONS,
    Cancel,
    Event,
    Heartbeat,
    Hello,
    HostError,
    HostMessage,
    Refused,
    Reply,
    Request,
    ServerMessage,
    SessionState,
    Welcome,
)
from playcast.hostproto.types import (
    BUNDLE_NAMES,
    CONTENT_PATH,
    FILE_CHUNK_BYTES,
    ContentRef,
    EgressStatus,
    FileBundle,
    LaunchSpec,
    Placement,
    PlacementResult,
    SessionEvent,
    SessionEventKind,
    StagePublisher,
    StageState,
    VideoStats,
)
from playcast.json_input import parse_json

MAX_FRAME_BYTES = 1 << 20  # SDP offers and answers, 64 KB application messages, heartbeats of many sessions
MAX_ITEMS = 4096  # any list or map in a message (sessions, launches, env...)
MAX_LOG_PATHS = 10  # ApplicationLogPaths, as GameLift Streams allows
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
T = TypeVar("T")


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol version; the message says what is wrong."""


class Fields:
    """Typed reads from one decoded JSON object, with the path in every error."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise ProtocolError(f"{where} must be an object")
        self.doc = doc
        self.where = where

    def _get(self, key: str, kinds: tuple[type, ...], optional: bool) -> Any:
        value = self.doc.get(key)
        if value is None:
            if optional:
                return None
            raise ProtocolError(f"{self.where}.{key} is required")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ProtocolError(f"{self.where}.{key} has the wrong type")
        return value

    def str(self, key: str, *, optional: bool = False, max_len: int = 65536) -> Any:
        value = self._get(key, (str,), optional)
        if value is not None and len(value) > max_len:
            raise ProtocolError(f"{self.where}.{key} is longer than {max_len} characters")
        return value

    def int(self, key: str, *, optional: bool = False, lo: int = 0, hi: int = 1 << 53) -> Any:
        value = self._get(key, (int,), optional)
        if value is not None and not lo <= value <= hi:
            raise ProtocolError(f"{self.where}.{key} is out of range")
        return value

    def float(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, (int, float), optional)
        return float(value) if value is not None else None

    def bool(self, key: str, *, optional: bool = False) -> Any:
        return self._get(key, (bool,), optional)

    def list(self, key: str, *, optional: bool = False) -> list[Any]:
        value = self._get(key, (list,), optional)
        if value is not None and len(value) > MAX_ITEMS:
            raise ProtocolError(f"{self.where}.{key} has more than {MAX_ITEMS} items")
        return value if value is not None else []

    def obj(self, key: str, *, optional: bool = False) -> Fields | None:
        value = self._get(key, (dict,), optional)
        if value is not None and len(value) > MAX_ITEMS:
            raise ProtocolError(f"{self.where}.{key} has more than {MAX_ITEMS} members")
        return Fields(value, f"{self.where}.{key}") if value is not None else None

    def strs(self, key: str) -> tuple[str, ...]:
        items = self.list(key, optional=True)
        if not all(isinstance(i, str) for i in items):
            raise ProtocolError(f"{self.where}.{key} must list strings")
        return tuple(items)

    def each(self, key: str, read: Callable[[Fields], T]) -> tuple[T, ...]:
        return tuple(read(Fields(item, f"{self.where}.{key}[{i}]"))
                     for i, item in enumerate(self.list(key, optional=True)))


# ------------------------------------------------------------------------------------------------ domain types
def content_to_wire(ref: ContentRef | None) -> dict[str, Any] | None:
    return asdict(ref) if ref is not None else None


def content_from_wire(f: Fields) -> ContentRef:
    sha256 = f.str("sha256", max_len=64)
    if not SHA256_HEX.fullmatch(sha256):
        raise ProtocolError(f"{f.where}.sha256 must be 64 lowercase hex digits")
    url = f.str("url", max_len=2048)
    if url != CONTENT_PATH + sha256 and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+", url):
        raise ProtocolError(f"{f.where}.url must be {CONTENT_PATH}<sha256> or s3://bucket/key")
    return ContentRef(sha256, f.int("size"), url)


def launch_to_wire(spec: LaunchSpec) -> dict[str, Any]:
    return {"application_id": spec.application_id, "source_dir": spec.source_dir, "executable": spec.executable,
            "args": list(spec.args), "env": [list(kv) for kv in spec.env], "content": content_to_wire(spec.content)}


def launch_from_wire(f: Fields) -> LaunchSpec:
    env = f.list("env", optional=True)
    if not all(isinstance(kv, list) and len(kv) == 2 and all(isinstance(x, str) for x in kv) for kv in env):
        raise ProtocolError(f"{f.where}.env must list [name, value] pairs of strings")
    content = f.obj("content", optional=True)
    return LaunchSpec(f.str("application_id"), f.str("source_dir"), f.str("executable"), f.strs("args"),
                      tuple(sorted((k, v) for k, v in env)),
                      content_from_wire(content) if content is not None else None)


def bundle_from_wire(f: Fields) -> FileBundle:
    name = f.str("name", max_len=64)
    if name not in BUNDLE_NAMES:
        raise ProtocolError(f"{f.where}.name must be one of {', '.join(BUNDLE_NAMES)}")
    sha256 = f.str("sha256", max_len=64)
    if not SHA256_HEX.fullmatch(sha256):
        raise ProtocolError(f"{f.where}.sha256 must be 64 lowercase hex digits")
    return FileBundle(name, f.int("size"), sha256)


def placement_to_wire(p: Placement) -> dict[str, Any]:
    return {"session_id": p.session_id, "stream_group_id": p.stream_group_id, "locations": list(p.locations),
            "launch": launch_to_wire(p.launch), "signal_request": p.signal_request, "host_id": p.host_id}


def placement_from_wire(f: Fields) -> Placement:
    launch = f.obj("launch")
    assert launch is not None
    return Placement(f.str("session_id", max_len=128), f.str("stream_group_id", max_len=128), f.strs("locations"),
                     launch_from_wire(launch), f.str("signal_request", optional=True, max_len=MAX_FRAME_BYTES),
                     f.str("host_id", optional=True, max_len=128))


def result_from_wire(f: Fields) -> PlacementResult:
    return PlacementResult(f.str("host_id", max_len=128), f.str("slot_id", max_len=128), f.str("location"),
                           f.str("signal_response", optional=True, max_len=MAX_FRAME_BYTES), f.bool("warm"))


def egress_from_wire(f: Fields) -> EgressStatus:
    return EgressStatus(f.str("egress_id"), f.str("url", max_len=4096), f.str("origin"), f.str("state"),
                        f.int("attempts"), f.str("last_error", optional=True), f.float("connected_at", optional=True),
                        f.float("next_retry_at", optional=True))


def video_from_wire(f: Fields) -> VideoStats:
    return VideoStats(f.str("encoder"), f.int("packets"), f.int("keyframes"), f.int("keyframe_requests"),
                      f.int("sinks"), f.int("dropped"))


def state_to_wire(s: SessionState) -> dict[str, Any]:
    return {"session_id": s.session_id, "viewers": s.viewers, "recordings": s.recordings,
            "egress": [asdict(e) for e in s.egress], "video": asdict(s.video) if s.video is not None else None,
            "stages": [asdict(st) for st in s.stages]}


def _size(f: Fields, key: str) -> tuple[int, int] | None:
    value = f.list(key, optional=True) if f.doc.get(key) is not None else None
    if value is None:
        return None
    if not (len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 16384
                                    for v in value)):
        raise ProtocolError(f"{f.where}.{key} must be [width, height]")
    return value[0], value[1]


def stage_from_wire(f: Fields) -> StageState:
    p = f.obj("publisher", optional=True)
    publisher = None if p is None else StagePublisher(
        p.str("publisher_id", max_len=128), p.str("etag", max_len=128), p.bool("connected"), p.float("since"),
        _size(p, "video_size"))
    return StageState(f.str("broadcast_id", max_len=128), publisher, f.strs("viewer_ids"), _size(f, "rendition_size"))


def state_from_wire(f: Fields) -> SessionState:
    recordings = f.obj("recordings", optional=True)
    recs: dict[str, dict[str, Any]] = {}
    for broadcast_id, value in (recordings.doc.items() if recordings is not None else ()):
        r = Fields(value, f"{f.where}.recordings.{broadcast_id}")
        recs[broadcast_id] = {"status": r.str("status"), "message": r.str("message", optional=True),
                              "segments": r.int("segments")}
    video = f.obj("video", optional=True)
    return SessionState(f.str("session_id", max_len=128), f.int("viewers"), recs, f.each("egress", egress_from_wire),
                        video_from_wire(video) if video is not None else None, f.each("stages", stage_from_wire))


def _event_to_wire(e: SessionEvent) -> dict[str, Any]:
    detail = dict(e.detail)
    if isinstance(detail.get("payload"), (bytes, bytearray)):
        detail["payload"] = base64.b64encode(bytes(detail["payload"])).decode()
    return {"session_id": e.session_id, "kind": str(e.kind), "at": e.at, "detail": detail}


def _event_from_wire(f: Fields) -> SessionEvent:
    try:
        kind = SessionEventKind(f.str("kind", max_len=64))
    except ValueError:
        raise ProtocolError(f"{f.where}.kind is not a session event kind") from None
    detail_f = f.obj("detail", optional=True)
    detail: dict[str, object] = dict(detail_f.doc) if detail_f is not None else {}
    if kind == SessionEventKind.APP_MESSAGE:
        detail["payload"] = _b64(Fields(detail, f"{f.where}.detail").str("payload", max_len=MAX_FRAME_BYTES))
    return SessionEvent(f.str("session_id", max_len=128), kind, f.float("at"), detail)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("payload is not base64") from None


# ------------------------------------------------------------------------------------------------ request args
def args_to_wire(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """A request's arguments as JSON values (dataclasses and bytes converted)."""
    out = dict(args)
    if op == "place":
        out["placement"] = placement_to_wire(args["placement"])
    elif op == "set_warm_target":
        out["launches"] = [launch_to_wire(s) for s in args["launches"]]
    elif op == "send_app_message":
        out["payload"] = base64.b64encode(args["payload"]).decode()
    return out


def args_from_wire(op: str, f: Fields) -> dict[str, Any]:
    """A request's arguments, checked, as the host's operations take them."""
    sid = {"session_id": f.str("session_id", max_len=128)} if op not in ("place", "set_warm_target") else {}
    if op == "place":
        placement = f.obj("placement")
        assert placement is not None
        return {"placement": placement_from_wire(placement), "timeout_s": f.float("timeout_s")}
    if op == "connect":
        return {**sid, "signal_request": f.str("signal_request", max_len=MAX_FRAME_BYTES)}
    if op == "terminate":
        return {**sid, "reason": f.str("reason", max_len=64)}
    if op == "set_warm_target":
        return {"stream_group_id": f.str("stream_group_id", max_len=128), "location": f.str("location"),
                "launches": list(f.each("launches", launch_from_wire)), "count": f.int("count", hi=100000),
                "pause_idle": f.bool("pause_idle")}
    if op == "send_app_message":
        return {**sid, "payload": _b64(f.str("payload", max_len=MAX_FRAME_BYTES))}
    if op == "add_viewer":
        return {**sid, "offer_sdp": f.str("offer_sdp", max_len=MAX_FRAME_BYTES)}
    if op == "remove_viewer":
        return {**sid, "viewer_id": f.str("viewer_id", max_len=128)}
    if op == "start_hls":
        return {**sid, "broadcast_id": f.str("broadcast_id", max_len=128), "record": f.bool("record")}
    if op == "stop_hls":
        return {**sid, "broadcast_id": f.str("broadcast_id", max_len=128)}
    if op == "start_egress":
        return {**sid, "url": f.str("url", max_len=4096), "token": f.str("token", optional=True, max_len=8192)}
    if op == "stop_egress":
        return {**sid, "egress_id": f.str("egress_id", max_len=128)}
    if op == "collect_files":
        paths = f.strs("log_paths")
        if len(paths) > MAX_LOG_PATHS or any(len(p) > 1024 for p in paths):
            raise ProtocolError(f"args.log_paths: at most {MAX_LOG_PATHS} paths of at most 1024 characters")
        return {**sid, "log_paths": list(paths), "export": f.bool("export")}
    if op == "read_file":
        name = f.str("name", max_len=64)
        if name not in BUNDLE_NAMES:
            raise ProtocolError(f"args.name must be one of {', '.join(BUNDLE_NAMES)}")
        return {**sid, "name": name, "offset": f.int("offset")}
    if op in STAGE_OPERATIONS:
        stage = {**sid, "broadcast_id": f.str("broadcast_id", max_len=128)}
        if op in ("stage_publish", "stage_add_viewer"):
            return {**stage, "offer_sdp": f.str("offer_sdp", max_len=MAX_FRAME_BYTES)}
        if op == "stage_unpublish":
            return {**stage, "publisher_id": f.str("publisher_id", max_len=128)}
        if op == "stage_trickle":
            return {**stage, "publisher_id": f.str("publisher_id", max_len=128),
                    "fragment": f.str("fragment", max_len=MAX_FRAME_BYTES)}
        if op == "stage_remove_viewer":
            return {**stage, "viewer_id": f.str("viewer_id", max_len=128)}
        return stage
    raise ProtocolError(f"unknown operation {op[:64]!r}")


def result_to_wire(op: str, value: Any) -> Any:
    if op == "place":
        return asdict(value)
    if op in ("add_viewer", "stage_publish", "stage_add_viewer"):
        return list(value)
    if op == "collect_files":
        return [asdict(b) for b in value]
    if op == "read_file":
        return base64.b64encode(value).decode()
    return value


def result_of(op: str, raw: Any) -> Any:
    """A reply's result, checked, as the control plane's HostPool returns it."""
    if op == "place":
        return result_from_wire(Fields(raw, "result"))
    if op in ("connect", "start_egress"):
        if not isinstance(raw, str):
            raise ProtocolError(f"the result of {op} must be a string")
        return raw
    if op == "stage_trickle":
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            raise ProtocolError("the result of stage_trickle must be a count")
        return raw
    if op in ("stage_publish", "stage_add_viewer"):
        parts = 3 if op == "stage_publish" else 2
        if not (isinstance(raw, list) and len(raw) == parts and all(isinstance(x, str) for x in raw)):
            raise ProtocolError(f"the result of {op} must be a list of {parts} strings")
        return tuple(raw)
    if op in ("send_app_message", "remove_viewer", "stop_egress", "stage_unpublish", "stage_remove_viewer"):
        if not isinstance(raw, bool):
            raise ProtocolError(f"the result of {op} must be a boolean")
        return raw
    if op == "add_viewer":
        if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw)):
            raise ProtocolError("the result of add_viewer must be [viewer id, answer SDP]")
        return raw[0], raw[1]
    if op == "collect_files":
        if not isinstance(raw, list) or len(raw) > len(BUNDLE_NAMES):
            raise ProtocolError("the result of collect_files must list at most two file bundles")
        return [bundle_from_wire(Fields(item, f"result[{i}]")) for i, item in enumerate(raw)]
    if op == "read_file":
        if not isinstance(raw, str):
            raise ProtocolError("the result of read_file must be base64 text")
        data = _b64(raw)
        if len(data) > FILE_CHUNK_BYTES:
            raise ProtocolError(f"the result of read_file is larger than {FILE_CHUNK_BYTES} bytes")
        return data
    return None


# ------------------------------------------------------------------------------------------------ messages
def encode(msg: HostMessage | ServerMessage) -> str:
    """One message as the text of one frame."""
    if isinstance(msg, Hello):
        body: dict[str, Any] = {"type": "hello", **asdict(msg), "sessions": list(msg.sessions)}
    elif isinstance(msg, Heartbeat):
        body = {"type": "heartbeat", "seq": msg.seq, "slots": msg.slots, "busy": msg.busy, "warm": msg.warm,
                "warm_launches": list(msg.warm_launches), "sessions": [state_to_wire(s) for s in msg.sessions],
                "paused": msg.paused, "warm_groups": list(msg.warm_groups)}
    elif isinstance(msg, Event):
        body = {"type": "event", "event": _event_to_wire(msg.event)}
    elif isinstance(msg, Reply):
        body = {"type": "reply", "id": msg.id, "result": msg.result,
                "error": asdict(msg.error) if msg.error is not None else None,
                "session": state_to_wire(msg.session) if msg.session is not None else None, "gone": msg.gone}
    elif isinstance(msg, Welcome):
        body = {"type": "welcome", "host_id": msg.host_id, "heartbeat_s": msg.heartbeat_s,
                "recordings": msg.recordings}
    elif isinstance(msg, Refused):
        body = {"type": "refused", "reason": msg.reason}
    elif isinstance(msg, Request):
        body = {"type": "request", "id": msg.id, "op": msg.op, "args": msg.args}
    elif isinstance(msg, Cancel):
        body = {"type": "cancel", "id": msg.id}
    else:
        raise TypeError(f"not a host protocol message: {type(msg).__name__}")
    text = json.dumps({"v": PROTOCOL_VERSION, **body}, separators=(",", ":"))
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError(f"a {body['type']} message is larger than {MAX_FRAME_BYTES} bytes")
    return text


def _frame(text: str | bytes) -> Fields:
    try:
        doc = parse_json(text, max_bytes=MAX_FRAME_BYTES)
    except ValueError as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from None
    f = Fields(doc, "message")
    version = f.int("v", hi=1 << 16)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version} is not spoken here (this side speaks {PROTOCOL_VERSION})")
    return f


def _http_url(f: Fields, key: str) -> str | None:
    url = f.str(key, optional=True, max_len=512)
    if url is not None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            port = None
        if (port is None or parts.scheme != "http" or not parts.hostname or parts.path or parts.query
                or parts.fragment or parts.username is not None):
            raise ProtocolError(f"{f.where}.{key} must be http://host:port")
    return url


def decode_host(text: str | bytes) -> HostMessage:
    """What a host sent. Raises ProtocolError."""
    f = _frame(text)
    kind = f.str("type", max_len=32)
    if kind == "hello":
        return Hello(f.str("host_id", max_len=128), f.str("token", max_len=512), f.str("location", max_len=128),
                     f.int("slots", hi=4096), f.str("version", max_len=64), f.str("encoder", max_len=64),
                     f.str("gpu", optional=True, max_len=256), f.str("public_address", optional=True, max_len=256),
                     f.strs("sessions"), f.int("protocol", hi=1 << 16),
                     host_key=f.str("host_key", optional=True, max_len=256), media_url=_http_url(f, "media_url"),
                     media_key=f.str("media_key", optional=True, max_len=256))
    if kind == "heartbeat":
        return Heartbeat(f.int("seq"), f.int("slots", hi=4096), f.int("busy", hi=4096), f.int("warm", hi=4096),
                         f.strs("warm_launches"), f.each("sessions", state_from_wire),
                         f.int("paused", optional=True, hi=4096) or 0,  # optional: hosts of before it was sent
                         f.strs("warm_groups"))
    if kind == "event":
        event = f.obj("event")
        assert event is not None
        return Event(_event_from_wire(event))
    if kind == "reply":
        error = f.obj("error", optional=True)
        session = f.obj("session", optional=True)
        host_error = None
        if error is not None:
            err_kind = error.str("kind", max_len=32)
            if err_kind not in ERROR_KINDS:
                raise ProtocolError(f"message.error.kind {err_kind[:32]!r} is not an error kind")
            host_error = HostError(err_kind, error.str("message"), error.str("reason", optional=True, max_len=64))
        return Reply(f.int("id"), f.doc.get("result"), host_error,
                     state_from_wire(session) if session is not None else None, bool(f.bool("gone", optional=True)))
    raise ProtocolError(f"a host does not send {kind[:32]!r} messages")


def decode_server(text: str | bytes) -> ServerMessage:
    """What the control plane sent. Raises ProtocolError."""
    f = _frame(text)
    kind = f.str("type", max_len=32)
    if kind == "welcome":
        recordings = f.str("recordings", optional=True, max_len=2048)
        if recordings is not None and not recordings.startswith("s3://"):
            raise ProtocolError("message.recordings must be an s3:// storage URL")
        return Welcome(f.str("host_id", max_len=128), f.float("heartbeat_s"), recordings)
    if kind == "refused":
        return Refused(f.str("reason"))
    if kind == "request":
        op = f.str("op", max_len=64)
        if op not in OPERATIONS:
            raise ProtocolError(f"unknown operation {op!r}")
        args = f.obj("args")
        assert args is not None
        return Request(f.int("id"), op, args.doc)
    if kind == "cancel":
        return Cancel(f.int("id"))
    raise ProtocolError(f"a control plane does not send {kind[:32]!r} messages")
