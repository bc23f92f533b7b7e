"""The host protocol's wire format: every message and every operation's arguments and results survive the trip
as text; whatever else arrives is a ProtocolError that names the field, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playcast.hostproto import codec
from playcast.hostproto.messages import (
    OPERATIONS,
    PROTOCOL_VERSION,
    Cancel,
    Event,
    Heartbeat,
    Hello,
    HostError,
    Refused,
    Reply,
    Request,
    SessionState,
    Welcome,
)
from playcast.hostproto.types import (
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
    for_remote_host,
    launch_key,
)

DIGEST = "ab" * 32
CONTENT = ContentRef(DIGEST, 1234, f"/v1/hosts/content/{DIGEST}")
SPEC = LaunchSpec.make("a-1", "/srv/apps/a-1", "bin/game", ["--fast", "é"], {"B": "2", "A": "1"}, CONTENT)
S3_SPEC = LaunchSpec.make("a-2", "/srv/apps/a-2", "run", content=ContentRef(DIGEST, 5, "s3://my-bucket/c/x.tar.gz"))
BARE_SPEC = LaunchSpec.make("a-3", "/opt/game", "run")  # content already on the host's disk
PLACEMENT = Placement("s-1", "sg-1", ("here", "there"), SPEC, '{"type": "offer", "sdp": "v=0\\r\\n"}', "h-2")
STATE = SessionState("s-1", 3, {"b-1": {"status": "RECORDING", "message": None, "segments": 4}},
                     (EgressStatus("e-1", "https://x/whip", "api", "retrying", 2, "unreachable", None, 12.5),),
                     VideoStats("libx264", 10, 1, 2, 3, 0),
                     (StageState("b-1", StagePublisher("p1-ab", '"e1"', True, 12.0, (640, 480)), ("c2", "c3"),
                                 (640, 480)), StageState("b-2")))

ARGS: dict[str, dict[str, Any]] = {
    "place": {"placement": PLACEMENT, "timeout_s": 75.0},
    "connect": {"session_id": "s-1", "signal_request": "{}"},
    "terminate": {"session_id": "s-1", "reason": "idle"},
    "set_warm_target": {"stream_group_id": "sg-1", "location": "here", "launches": [SPEC, S3_SPEC, BARE_SPEC],
                        "count": 2, "pause_idle": False},
    "send_app_message": {"session_id": "s-1", "payload": b"\x00\xffchat"},
    "add_viewer": {"session_id": "s-1", "offer_sdp": "v=0\r\n"},
    "remove_viewer": {"session_id": "s-1", "viewer_id": "v-1"},
    "start_hls": {"session_id": "s-1", "broadcast_id": "b-1", "record": True},
    "stop_hls": {"session_id": "s-1", "broadcast_id": "b-1"},
    "start_egress": {"session_id": "s-1", "url": "https://x/whip", "token": None},
    "stop_egress": {"session_id": "s-1", "egress_id": "e-1"},
    "stage_publish": {"session_id": "s-1", "broadcast_id": "b-1", "offer_sdp": "v=0\r\n"},
    "stage_unpublish": {"session_id": "s-1", "broadcast_id": "b-1", "publisher_id": "p1-ab"},
    "stage_trickle": {"session_id": "s-1", "broadcast_id": "b-1", "publisher_id": "p1-ab",
                      "fragment": "a=candidate:1 1 udp 1 10.0.0.2 5000 typ host\r\n"},
    "stage_add_viewer": {"session_id": "s-1", "broadcast_id": "b-1", "offer_sdp": "v=0\r\n"},
    "stage_remove_viewer": {"session_id": "s-1", "broadcast_id": "b-1", "viewer_id": "c2"},
    "stage_end": {"session_id": "s-1", "broadcast_id": "b-1"},
    "collect_files": {"session_id": "s-1", "log_paths": ["logs/", "$HOME/game.log"], "export": True},
    "read_file": {"session_id": "s-1", "name": "logs.zip", "offset": 524288},
}
RESULTS: dict[str, Any] = {
    "place": PlacementResult("h-1", "slot-0", "here", '{"type": "answer"}', True), "connect": '{"type": "answer"}',
    "terminate": None, "set_warm_target": None, "send_app_message": True, "add_viewer": ("v-1", "v=0\r\n"),
    "remove_viewer": False, "start_hls": None, "stop_hls": None, "start_egress": "e-1", "stop_egress": True,
    "stage_publish": ("p1-ab", '"e1"', "v=0\r\n"), "stage_unpublish": True, "stage_trickle": 2,
    "stage_add_viewer": ("c2", "v=0\r\n"), "stage_remove_viewer": False, "stage_end": None,
    "collect_files": [FileBundle("logs.zip", 10, "cd" * 32), FileBundle("export.zip", 0, "ef" * 32)],
    "read_file": b"PK\x03\x04\x00\xff",
}


def test_every_operation_is_covered() -> None:
    assert set(ARGS) == set(OPERATIONS) == set(RESULTS)


@pytest.mark.parametrize("op", OPERATIONS)
def test_request_args_and_results_round_trip(op: str) -> None:
    text = codec.encode(Request(7, op, codec.args_to_wire(op, ARGS[op])))
    request = codec.decode_server(text)
    assert isinstance(request, Request) and request.id == 7 and request.op == op
    assert codec.args_from_wire(op, codec.Fields(request.args, "args")) == ARGS[op]
    reply = codec.decode_host(codec.encode(Reply(7, codec.result_to_wire(op, RESULTS[op]), session=STATE)))
    assert isinstance(reply, Reply) and reply.session == STATE
    assert codec.result_of(op, reply.result) == RESULTS[op]


@pytest.mark.parametrize("msg", [
    Hello("h-1", "tok", "here", 4, "0.1.0", "libx264", None, "10.0.0.2", ("s-1", "s-2")),
    Hello("h-1", "tok", "here", 4, "0.1.0", "libx264", media_url="http://10.0.0.2:41234", media_key="k" * 43),
    Hello("h-1", "tok", "here", 4, "0.1.0", "libx264", media_url="http://[fd00::2]:8081", media_key="k"),
    Heartbeat(3, 4, 1, 2, ("k1", "k2"), (STATE, SessionState("s-2")), 1, ("sg-1", "sg-1")),
    Event(SessionEvent("s-1", SessionEventKind.APP_MESSAGE, 1.5, {"payload": b"\x01\x02"})),
    Event(SessionEvent("s-1", SessionEventKind.CLIENT_DISCONNECTED, 1.5, {"clientId": 1, "state": "failed"})),
    Reply(9, None, HostError("placement", "no slot", "placementTimeout"), None, gone=True),
])
def test_host_messages_round_trip(msg: Any) -> None:
    assert codec.decode_host(codec.encode(msg)) == msg


@pytest.mark.parametrize("msg", [Welcome("h-1", 2.0), Welcome("h-1", 2.0, "s3://rec/prefix?endpoint=http://s3:9000"),
                                 Refused("wrong host token"), Cancel(4)])
def test_server_messages_round_trip(msg: Any) -> None:
    assert codec.decode_server(codec.encode(msg)) == msg


def _frame(**doc: Any) -> str:
    return json.dumps({"v": PROTOCOL_VERSION, **doc})


@pytest.mark.parametrize("text, words", [
    ("not json", "not valid JSON"),
    ("[" * 100 + "]" * 100, "nested deeper"),
    (json.dumps({"v": 2, "type": "hello"}), "protocol version 2"),
    (_frame(type="welcome", host_id="h", heartbeat_s=1), "does not send 'welcome'"),
    (_frame(type="hello", host_id="h"), "message.token is required"),
    (_frame(type="heartbeat", seq=1, slots="4", busy=0, warm=0), "message.slots has the wrong type"),
    (_frame(type="heartbeat", seq=-1, slots=4, busy=0, warm=0), "message.seq is out of range"),
    (_frame(type="heartbeat", seq=1, slots=4, busy=0, warm=0, sessions=[{"viewers": 1}]),
     "message.sessions[0].session_id is required"),
    (_frame(type="heartbeat", seq=1, slots=4, busy=0, warm=1, warm_groups=[7]), "message.warm_groups must list"),
    (_frame(type="event", event={"session_id": "s", "kind": "exploded", "at": 1}), "not a session event kind"),
    (_frame(type="event", event={"session_id": "s", "kind": "app_message", "at": 1, "detail": {"payload": "!"}}),
     "not base64"),
    (_frame(type="reply", id=1, error={"kind": "oops", "message": "x"}), "not an error kind"),
    (_frame(type="heartbeat", seq=1, slots=4, busy=0, warm=0, sessions=[{"session_id": "s", "viewers": 0, "stages": [
        {"broadcast_id": "b", "rendition_size": [640, -1]}]}]), "message.sessions[0].stages[0].rendition_size"),
    (_frame(type="heartbeat", seq=1, slots=4, busy=0, warm=0, sessions=[{"session_id": "s", "viewers": 0, "stages": [
        {"broadcast_id": "b", "publisher": {"publisher_id": "p", "etag": "e", "connected": "yes", "since": 1}}]}]),
     "message.sessions[0].stages[0].publisher.connected has the wrong type"),
    (_frame(type="reply", id=1, result=None) + " " * codec.MAX_FRAME_BYTES, "larger than"),
    *((_frame(type="hello", host_id="h", token="t", location="l", slots=1, version="v", encoder="e", protocol=1,
              media_url=url), "message.media_url must be http://host:port")
      for url in ("https://10.0.0.2:1", "http://10.0.0.2", "http://10.0.0.2:99999", "http://10.0.0.2:1/x",
                  "http://u:p@10.0.0.2:1", "http://10.0.0.2:1?q", "file:///etc/passwd", "")),
])
def test_bad_host_frames_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(codec.ProtocolError, match=words.replace("[", r"\[").replace("(", r"\(")):
        codec.decode_host(text)


def test_equal_launches_have_equal_keys_and_content_counts() -> None:
    same = LaunchSpec.make("a-1", "/srv/apps/a-1", "bin/game", ["--fast", "é"], {"A": "1", "B": "2"},
                           ContentRef(DIGEST, 1234, f"/v1/hosts/content/{DIGEST}"))
    assert same == SPEC and launch_key(same) == launch_key(SPEC)
    other = LaunchSpec.make("a-1", "/srv/apps/a-1", "bin/game", ["--fast", "é"], {"A": "1", "B": "2"},
                            ContentRef("cd" * 32, 1234, f"/v1/hosts/content/{'cd' * 32}"))
    assert launch_key(other) != launch_key(SPEC)  # new content: no warm slot of the old one matches
    wired = codec.launch_from_wire(codec.Fields(json.loads(json.dumps(codec.launch_to_wire(SPEC))), "launch"))
    assert wired == SPEC and launch_key(wired) == launch_key(SPEC)


def test_a_remote_host_gets_no_server_path_and_the_same_key() -> None:
    remote = for_remote_host(SPEC)
    assert remote.source_dir == "" and remote.content == SPEC.content
    assert launch_key(remote) == launch_key(SPEC)  # its warm slots match the control plane's placements
    assert for_remote_host(BARE_SPEC) == BARE_SPEC  # no content: its path is the host's own
    wired = codec.launch_from_wire(codec.Fields(json.loads(json.dumps(codec.launch_to_wire(remote))), "launch"))
    assert wired == remote


def _launch(content: Any) -> dict[str, Any]:
    return {"application_id": "a", "source_dir": "/x", "executable": "y", "content": content}


@pytest.mark.parametrize("content, words", [
    ({"sha256": "AB" * 32, "size": 1, "url": "/v1/hosts/content/" + "AB" * 32}, "sha256 must be 64 lowercase hex"),
    ({"sha256": "ab" * 31, "size": 1, "url": "/v1/hosts/content/" + "ab" * 31}, "sha256 must be 64 lowercase hex"),
    ({"sha256": DIGEST, "size": -1, "url": f"/v1/hosts/content/{DIGEST}"}, "content.size is out of range"),
    ({"sha256": DIGEST, "size": 1, "url": "/v1/hosts/content/" + "cd" * 32}, "url must be"),
    ({"sha256": DIGEST, "size": 1, "url": "http://elsewhere/evil"}, "url must be"),
    ({"sha256": DIGEST, "size": 1, "url": "file:///etc/passwd"}, "url must be"),
    ({"sha256": DIGEST, "size": 1}, "content.url is required"),
    ("not an object", "content has the wrong type"),
])
def test_bad_content_references_are_refused(content: Any, words: str) -> None:
    with pytest.raises(codec.ProtocolError, match=words):
        codec.launch_from_wire(codec.Fields(_launch(content), "launch"))


def test_bad_file_requests_and_results_are_refused() -> None:
    with pytest.raises(codec.ProtocolError, match="args.name must be one of"):
        codec.args_from_wire("read_file", codec.Fields({"session_id": "s", "name": "../../etc/passwd",
                                                        "offset": 0}, "args"))
    with pytest.raises(codec.ProtocolError, match="at most 10 paths"):
        codec.args_from_wire("collect_files", codec.Fields({"session_id": "s", "log_paths": ["l"] * 11,
                                                            "export": False}, "args"))
    with pytest.raises(codec.ProtocolError, match=r"result\[0\].name must be one of"):
        codec.result_of("collect_files", [{"name": "x.zip", "size": 1, "sha256": DIGEST}])
    with pytest.raises(codec.ProtocolError, match="larger than"):
        codec.result_of("read_file", codec.result_to_wire("read_file", b"x" * (512 * 1024 + 1)))
    with pytest.raises(codec.ProtocolError, match="not base64"):
        codec.result_of("read_file", "!!")


def test_bad_request_args_say_what_is_wrong() -> None:
    with pytest.raises(codec.ProtocolError, match=r"args.placement.launch.env must list"):
        codec.args_from_wire("place", codec.Fields({"timeout_s": 1, "placement": {
            "session_id": "s", "stream_group_id": "g", "locations": [],
            "launch": {"application_id": "a", "source_dir": "/x", "executable": "y", "env": [["A"]]}}}, "args"))
    with pytest.raises(codec.ProtocolError, match="unknown operation"):
        codec.decode_server(_frame(type="request", id=1, op="format_disk", args={}))
    with pytest.raises(codec.ProtocolError, match="add_viewer must be"):
        codec.result_of("add_viewer", ["v-1"])


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=6), max_leaves=30)
TYPES = st.sampled_from(["hello", "heartbeat", "event", "reply", "welcome", "refused", "request", "cancel", "x"])


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(kind=TYPES, body=st.dictionaries(st.sampled_from(
    ["host_id", "token", "location", "slots", "version", "encoder", "sessions", "seq", "busy", "warm",
     "warm_launches", "warm_groups", "event", "id", "result", "error", "session", "gone", "op", "args", "reason", "heartbeat_s",
     "protocol"]), JSON, max_size=12))
def test_any_frame_decodes_or_is_a_protocol_error(kind: str, body: dict[str, Any]) -> None:
    text = json.dumps({"v": PROTOCOL_VERSION, **body, "type": kind})
    for decode in (codec.decode_host, codec.decode_server):
        try:
            decode(text)
        except codec.ProtocolError:
            pass
    if kind == "request" and isinstance(body.get("args"), dict):
        for op in OPERATIONS:
            try:
                codec.args_from_wire(op, codec.Fields(body["args"], "args"))
            except codec.ProtocolError:
                pass


@pytest.mark.parametrize("recordings", ["/var/lib/playcast/recordings", "file:///tmp/x", "http://server/rec", 7])
def test_a_welcome_names_only_an_s3_recording_storage(recordings: Any) -> None:
    with pytest.raises(codec.ProtocolError, match="message.recordings"):
        codec.decode_server(_frame(type="welcome", host_id="h", heartbeat_s=1, recordings=recordings))
