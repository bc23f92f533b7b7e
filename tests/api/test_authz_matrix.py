"""Who may do what: every route of the app `playcast up` serves × {nobody, wrong token, guest, viewer, player,
other player, admin}, against real resources (a running session, its private recorded broadcast, its chat room).

The routes come from the app itself (playcast.assemble): a route with no rule below fails the test, and so does a
rule for a route that no longer exists. Refused callers get 401/403/404 and never a 2xx; allowed ones are never
refused; nobody ever gets a 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect

from playcast.events.protocol import SUBPROTOCOL, encode_auth_subprotocol
from playcast.hostproto import codec
from playcast.hostproto.messages import Hello
from tests.api.support import (
    REGION,
    AssembledServer,
    create_app,
    create_group,
    make_settings,
    start_assembled,
)
from tests.control.support import make_app_dir
from tests.harness import wait_until

pytestmark = pytest.mark.netns

NOBODY, WRONG, GUEST, VIEWER, PLAYER, OTHER, ADMIN = "nobody", "wrong", "guest", "viewer", "player", "other", "admin"
EVERYONE = frozenset({NOBODY, WRONG, GUEST, VIEWER, PLAYER, OTHER, ADMIN})
LOGGED_IN = frozenset({PLAYER, OTHER, ADMIN})  # the login cookie or the admin bearer
OWNER = frozenset({PLAYER, ADMIN})  # the session's own player, or the admin
ROOM_MEMBERS = frozenset({GUEST, PLAYER, OTHER, ADMIN})  # chat: signed in, or invited to this room
MODERATORS = frozenset({PLAYER, ADMIN})  # the room's player and admins
VIEW = frozenset({VIEWER})  # a private broadcast's viewer token (the admin reads it from /v1/broadcasts)
NO_ONE = frozenset()  # none of the seven: another credential (SigV4, the publish token, the metrics token)
AWS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
AWS_ROOTS = ("applications", "streamgroups", "streamsessions", "streamurls", "tags")  # the GameLift Streams API


@dataclass(frozen=True)
class Probe:
    """One request: `path` with {placeholders} filled from the world, a body and extra headers."""

    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    found: bool = False  # an allowed caller must find the resource (a 404 is then a failure too)
    answers: frozenset[int] = frozenset()  # if set: what every allowed caller gets (the credential is in the request)
    last: bool = False  # changes the world: allowed callers run it after every other probe


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    probes: tuple[Probe, ...]
    why: str


def _sdp(path: str, **kw: Any) -> Probe:
    return Probe(path, b"v=0\r\n", {"Content-Type": "application/sdp"}, **kw)


def _trickle(path: str) -> Probe:
    return Probe(path, b"a=candidate:1 1 udp 1 127.0.0.2 9 typ host\r\n",
                 {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": '"x"'})


def _json(path: str, doc: Any, **kw: Any) -> Probe:
    return Probe(path, json.dumps(doc).encode(), {"Content-Type": "application/json"}, **kw)


PUBLIC = "open to everyone by design"
SDP_CORS = "CORS preflight"
# (method, route path) -> rule. HEAD follows GET where the route answers both.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule(EVERYONE, (Probe("/healthz"),), PUBLIC),
    ("GET", "/metrics"): Rule(NO_ONE, (Probe("/metrics"),), "bound beyond loopback: the metrics token only"),
    ("GET", "/login"): Rule(EVERYONE, (Probe("/login?token=not-a-login-token", answers=frozenset({303, 403})),),
                            "the one-time link is the credential (a signed-in browser is sent on to /play)"),
    ("GET", "/v1/play/apps"): Rule(LOGGED_IN, (Probe("/v1/play/apps", found=True),), "signed-in users"),
    ("POST", "/v1/play/sessions"): Rule(LOGGED_IN, (_json("/v1/play/sessions", {}),), "signed-in users"),
    ("GET", "/v1/play/sessions"): Rule(LOGGED_IN, (Probe("/v1/play/sessions", found=True),), "their own list"),
    ("GET", "/v1/play/sessions/{session_id}"): Rule(
        OWNER, (Probe("/v1/play/sessions/{session}", found=True),), "the session's player"),
    ("DELETE", "/v1/play/sessions/{session_id}"): Rule(
        OWNER, (Probe("/v1/play/sessions/{session}", last=True),), "the session's player"),
    ("POST", "/v1/play/sessions/{session_id}/connection"): Rule(
        OWNER, (_json("/v1/play/sessions/{session}/connection", {}, found=True),), "the session's player"),
    ("POST", "/v1/broadcasts"): Rule(
        OWNER, (_json("/v1/broadcasts", {"streamSessionId": "{session}", "private": True, "record": True},
                      found=True),), "the session's player"),
    ("GET", "/v1/broadcasts/{broadcast_id}"): Rule(
        OWNER, (Probe("/v1/broadcasts/{broadcast}", found=True),), "its owner (the tokens are in it)"),
    ("DELETE", "/v1/broadcasts/{broadcast_id}"): Rule(
        OWNER, (Probe("/v1/broadcasts/{broadcast}", last=True),), "its owner"),
    ("GET", "/v1/broadcasts/{broadcast_id}/status"): Rule(
        VIEW, (Probe("/v1/broadcasts/{broadcast}/status", found=True),
               Probe("/v1/broadcasts/{broadcast}/status?token={bad}")), "a private broadcast's viewers"),
    # WHIP into the broadcast's stage: the publish token (or the admin's)
    ("POST", "/whip/{broadcast_id}"): Rule(frozenset({ADMIN}), (_sdp("/whip/{broadcast}"),), "publishers"),
    ("OPTIONS", "/whip/{broadcast_id}"): Rule(EVERYONE, (Probe("/whip/{broadcast}"),), SDP_CORS),
    ("GET", "/whip/{broadcast_id}"): Rule(EVERYONE, (Probe("/whip/{broadcast}"),), "RFC 9725 endpoint probe"),
    ("DELETE", "/whip/{broadcast_id}/{publisher_id}"): Rule(
        frozenset({ADMIN}), (Probe("/whip/{broadcast}/p-none"),), "publishers"),
    ("PATCH", "/whip/{broadcast_id}/{publisher_id}"): Rule(
        frozenset({ADMIN}), (_trickle("/whip/{broadcast}/p-none"),), "publishers"),
    ("OPTIONS", "/whip/{broadcast_id}/{publisher_id}"): Rule(EVERYONE, (Probe("/whip/{broadcast}/p-none"),), SDP_CORS),
    ("GET", "/whip/{broadcast_id}/{publisher_id}"): Rule(
        frozenset({ADMIN}), (Probe("/whip/{broadcast}/p-none"),), "publishers"),
    # WHEP of the stage (viewers' webcams) and of the game
    ("POST", "/whep/{broadcast_id}/cam"): Rule(VIEW, (_sdp("/whep/{broadcast}/cam"),), "viewers"),
    ("OPTIONS", "/whep/{broadcast_id}/cam"): Rule(EVERYONE, (Probe("/whep/{broadcast}/cam"),), SDP_CORS),
    ("GET", "/whep/{broadcast_id}/cam"): Rule(VIEW, (Probe("/whep/{broadcast}/cam"),), "viewers (stage state)"),
    ("DELETE", "/whep/{broadcast_id}/cam/{viewer_id}"): Rule(VIEW, (Probe("/whep/{broadcast}/cam/v-none"),),
                                                            "viewers"),
    ("PATCH", "/whep/{broadcast_id}/cam/{viewer_id}"): Rule(VIEW, (_trickle("/whep/{broadcast}/cam/v-none"),),
                                                           "viewers"),
    ("OPTIONS", "/whep/{broadcast_id}/cam/{viewer_id}"): Rule(EVERYONE, (Probe("/whep/{broadcast}/cam/v-none"),),
                                                             SDP_CORS),
    ("POST", "/whep/{broadcast_id}"): Rule(VIEW, (_sdp("/whep/{broadcast}"),), "viewers"),
    ("OPTIONS", "/whep/{broadcast_id}"): Rule(EVERYONE, (Probe("/whep/{broadcast}"),), SDP_CORS),
    ("GET", "/whep/{broadcast_id}"): Rule(EVERYONE, (Probe("/whep/{broadcast}"),), "endpoint probe (exists)"),
    ("DELETE", "/whep/{broadcast_id}/{viewer_id}"): Rule(VIEW, (Probe("/whep/{broadcast}/v-none"),), "viewers"),
    ("PATCH", "/whep/{broadcast_id}/{viewer_id}"): Rule(VIEW, (_trickle("/whep/{broadcast}/v-none"),), "viewers"),
    ("OPTIONS", "/whep/{broadcast_id}/{viewer_id}"): Rule(EVERYONE, (Probe("/whep/{broadcast}/v-none"),), SDP_CORS),
    # chat
    ("GET", "/v1/events/token"): Rule(ROOM_MEMBERS, (Probe("/v1/events/token?room={session}", found=True),),
                                      "signed-in users and invited guests"),
    ("POST", "/v1/chat/invites/redeem"): Rule(
        EVERYONE, (_json("/v1/chat/invites/redeem", {"invite": "x.1.y"}, answers=frozenset({403})),),
        "the invitation is the credential"),
    ("GET", "/v1/chat/{room}"): Rule(ROOM_MEMBERS, (Probe("/v1/chat/{session}", found=True),), "room members"),
    ("GET", "/v1/chat/{room}/messages"): Rule(ROOM_MEMBERS, (Probe("/v1/chat/{session}/messages", found=True),),
                                              "room members"),
    ("DELETE", "/v1/chat/{room}/messages/{message_id}"): Rule(
        MODERATORS, (Probe("/v1/chat/{session}/messages/m-none"),), "moderators"),
    ("POST", "/v1/chat/{room}/bans"): Rule(
        MODERATORS, (_json("/v1/chat/{session}/bans", {"userId": "u-nobody00000000"}, found=True),), "moderators"),
    ("DELETE", "/v1/chat/{room}/bans/{user_id}"): Rule(
        MODERATORS, (Probe("/v1/chat/{session}/bans/u-nobody00000000"),), "moderators"),
    ("POST", "/v1/chat/{room}/disconnections"): Rule(
        MODERATORS, (_json("/v1/chat/{session}/disconnections", {"userId": "u-nobody00000000"}, found=True),),
        "moderators"),
    ("POST", "/v1/chat/{room}/invites"): Rule(MODERATORS, (_json("/v1/chat/{session}/invites", {}, found=True),),
                                              "moderators"),
    # events: an events credential (user token from /v1/events/token, or the API key); rules per channel
    ("WS", "/event/realtime"): Rule(ROOM_MEMBERS, (Probe("/chat/{session}"),), "events tokens"),
    ("POST", "/event"): Rule(ROOM_MEMBERS, (Probe("/chat/{session}"),), "events tokens"),
    ("OPTIONS", "/event"): Rule(EVERYONE, (Probe("/event"),), "CORS preflight"),
    # the fleet: hosts join with host tokens; the admin lists, drains and removes them and mints tokens
    ("WS", "/v1/hosts/connect"): Rule(NO_ONE, (Probe("/v1/hosts/connect"),), "host tokens only"),
    ("GET", "/v1/hosts/content/{sha256}"): Rule(NO_ONE, (Probe("/v1/hosts/content/" + "0" * 64),),
                                                 "host tokens only"),
    ("GET", "/v1/hosts"): Rule(frozenset({ADMIN}), (Probe("/v1/hosts", found=True),), "the admin"),
    ("POST", "/v1/hosts/tokens"): Rule(frozenset({ADMIN}), (_json("/v1/hosts/tokens", {"description": "m"},
                                                                  found=True),), "the admin"),
    ("GET", "/v1/hosts/tokens"): Rule(frozenset({ADMIN}), (Probe("/v1/hosts/tokens", found=True),), "the admin"),
    ("DELETE", "/v1/hosts/tokens/{token_id}"): Rule(frozenset({ADMIN}), (Probe("/v1/hosts/tokens/ht-none"),),
                                                    "the admin"),
    ("POST", "/v1/hosts/{host_id}/drain"): Rule(frozenset({ADMIN}), (Probe("/v1/hosts/h-none/drain"),), "the admin"),
    ("DELETE", "/v1/hosts/{host_id}"): Rule(frozenset({ADMIN}), (Probe("/v1/hosts/h-none"),), "the admin"),
    ("PUT", "/v1/hosts/recordings/{key:path}"): Rule(NO_ONE, (_json(
        "/v1/hosts/recordings/recordings/{broadcast}/media/x.json", {}),), "host tokens only (a remote host's upload)"),
    # LL-HLS and recordings of the private broadcast: the viewer token
    ("GET", "/hls"): Rule(VIEW, (Probe("/hls/{broadcast}/master.m3u8", found=True),
                                 Probe("/hls/{broadcast}/{rendition}/index.m3u8", found=True),
                                 Probe("/hls/{broadcast}/{rendition}/index.m3u8?_HLS_msn=0", found=True),
                                 Probe("/hls/{broadcast}/{rendition}/init0.mp4", found=True),
                                 Probe("/hls/{broadcast}/{rendition}/seg{msn}.m4s", found=True),
                                 Probe("/hls/{broadcast}/{rendition}/part{part}.m4s", found=True),
                                 Probe("/hls/{broadcast}/master.m3u8?token={bad}")), "viewers"),
    ("OPTIONS", "/hls"): Rule(EVERYONE, (Probe("/hls/{broadcast}/master.m3u8"),), "CORS preflight"),
    ("GET", "/recordings/{broadcast_id}/{rest:path}"): Rule(
        VIEW, (Probe("/recordings/{broadcast}/media/hls/master.m3u8", found=True),
               Probe("/recordings/{broadcast}/media/hls/master.m3u8?token={bad}")), "viewers"),
    # pages and browser code
    ("GET", "/static/vendor/hls.js"): Rule(EVERYONE, (Probe("/static/vendor/hls.js"),), PUBLIC),
    ("GET", "/"): Rule(EVERYONE, (Probe("/"),), PUBLIC),
    ("GET", "/play"): Rule(EVERYONE, (Probe("/play"),), "the page; its data needs the cookie"),
    ("GET", "/openapi.yaml"): Rule(EVERYONE, (Probe("/openapi.yaml"),), PUBLIC),
    ("GET", "/watch/{stream_session_id}"): Rule(EVERYONE, (Probe("/watch/{session}?broadcast={broadcast}"),),
                                                "the page; its data needs the token"),
    ("GET", "/sdk"): Rule(EVERYONE, (Probe("/sdk/playcast-streams.js"),), PUBLIC),
    ("GET", "/static"): Rule(EVERYONE, (Probe("/static/player.js"),), PUBLIC),
}
for _root in AWS_ROOTS:
    for _method in AWS_METHODS:
        RULES[(_method, f"/{_root}")] = Rule(NO_ONE, (Probe(f"/{_root}"),), "SigV4 only")
        RULES[(_method, f"/{_root}/{{rest:path}}")] = Rule(NO_ONE, (Probe(f"/{_root}/x"),), "SigV4 only")


def route_table(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves; a Mount counts as GET and OPTIONS under its prefix; HEAD is
    folded into GET."""
    out: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            out.add(("WS", route.path))
        elif isinstance(route, Mount):
            out |= {("GET", route.path)} | ({("OPTIONS", route.path)} if route.path == "/hls" else set())
        elif isinstance(route, Route):
            methods = route.methods or set(AWS_METHODS)
            out |= {(m, route.path) for m in methods if m != "HEAD"}
    return out


@dataclass
class World:
    """The resources the probes name and a client per identity."""

    server: AssembledServer
    session: str
    broadcast: str
    viewer_token: str
    publish_token: str
    rendition: str = ""
    msn: int = 0
    part: int = 0
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    events_tokens: dict[str, str] = field(default_factory=dict)  # identity -> what it sends as events credential

    def fill(self, text: str) -> str:
        if "{msn}" in text or "{part}" in text:
            self.find_media()  # the live window moves on: name a segment and a part that still exist
        values = {"session": self.session, "broadcast": self.broadcast, "rendition": self.rendition,
                  "msn": str(self.msn), "part": str(self.part), "bad": "not-the-viewer-token"}
        for name, value in values.items():  # not str.format: JSON bodies have braces of their own
            text = text.replace("{" + name + "}", value)
        return text

    def find_media(self) -> bool:
        """Read the private broadcast's live playlists as its viewer: the rendition, the newest finished segment
        and part. False until there are both."""
        viewer = self.clients[VIEWER]
        master = viewer.get(f"/hls/{self.broadcast}/master.m3u8")
        if master.status_code != 200:
            return False
        self.rendition = next(line for line in master.text.splitlines()
                              if line and not line.startswith("#")).split("/")[0]
        media = viewer.get(f"/hls/{self.broadcast}/{self.rendition}/index.m3u8").text
        segs = [int(line[3:-4]) for line in media.splitlines() if line.startswith("seg")]
        parts = [int(line.split('URI="part')[1].split(".m4s")[0]) for line in media.splitlines()
                 if line.startswith("#EXT-X-PART:")]
        if not segs or not parts:
            return False
        self.msn, self.part = segs[-1], parts[-1]
        return True


def _client(srv: AssembledServer, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False, **kw)


def _login(srv: AssembledServer) -> tuple[httpx.Client, str]:
    c = _client(srv)
    assert c.get(f"/login?token={srv.built.login_tokens.issue()}").status_code == 303
    return c, c.get("/v1/events/token").json()["userId"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("authz")
    settings = make_settings(tmp, slots=1, width=320, height=240, fps=15, bitrate_kbps=300, encoder="x264",
                             bind_host="0.0.0.0", placement_timeout_s=30)
    srv = start_assembled(settings)
    try:
        yield _build_world(srv, tmp)
    finally:
        srv.stop()


def _build_world(srv: AssembledServer, tmp: Path) -> World:
    gls = srv.client()
    app = create_app(gls, make_app_dir(tmp / "game"))
    group = create_group(gls, app["Id"], LocationConfigurations=[{"LocationName": REGION}])
    player, player_id = _login(srv)
    other, _ = _login(srv)
    s = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", UserId=player_id)
    session = s["Arn"].rsplit("/", 1)[-1]
    gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=session,
                                                 WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
    r = player.post("/v1/broadcasts", json={"streamSessionId": session, "private": True, "record": True})
    assert r.status_code == 201, r.text
    b = r.json()
    invite = player.post(f"/v1/chat/{session}/invites").json()["invite"]
    guest = _client(srv)
    assert guest.post("/v1/chat/invites/redeem", json={"invite": invite}).status_code == 200
    world = World(srv, session, b["broadcastId"], b["viewerToken"], b["publishToken"])
    world.clients = {
        NOBODY: _client(srv),
        WRONG: _client(srv, headers={"Authorization": "Bearer not-a-token"},
                       cookies={"playcast_user": "u-aaaaaaaaaaaa.1.bad", "playcast_guest": "g-x.1.bad"}),
        GUEST: guest, VIEWER: _client(srv, headers={"Authorization": f"Bearer {b['viewerToken']}"}),
        PLAYER: player, OTHER: other, ADMIN: _client(srv, headers={"Authorization": f"Bearer {srv.admin_token}"}),
    }
    for who in ROOM_MEMBERS:
        world.events_tokens[who] = world.clients[who].get(f"/v1/events/token?room={session}").json()["token"]
    world.events_tokens[WRONG] = "eyJhbGciOiJIUzI1NiJ9.e30.bad"
    world.events_tokens[VIEWER] = b["viewerToken"]
    _wait_for_media(world)
    return world


def _wait_for_media(world: World) -> None:
    """The live HLS has a finished segment and the recording its master playlist (so viewers' probes find them)."""
    viewer = world.clients[VIEWER]
    wait_until(world.find_media, 60, "the private broadcast's LL-HLS")
    wait_until(lambda: viewer.get(f"/recordings/{world.broadcast}/media/hls/master.m3u8").status_code == 200, 60,
               "the recording's master playlist")


def _http(world: World, who: str, method: str, probe: Probe) -> int:
    body = world.fill(probe.body.decode()).encode() if probe.body and b"{session}" in probe.body else probe.body
    r = world.clients[who].request(method, world.fill(probe.path), content=body, headers=probe.headers)
    return r.status_code


async def _event_ws(world: World, credential: str | None) -> str:
    """Connect to the events WebSocket with `credential` and subscribe to the room: the outcome's message type."""
    host = world.server.url.removeprefix("http://")
    headers = {"host": host, **({"Authorization": credential} if credential else {})}
    url = world.server.url.replace("http://", "ws://") + "/event/realtime"
    async with connect(url, subprotocols=[SUBPROTOCOL, encode_auth_subprotocol(headers)], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg["type"] == "connection_ack":
                break
            if msg["type"] != "ka":
                return msg["type"]
        await ws.send(json.dumps({"type": "subscribe", "id": "s1", "channel": f"/chat/{world.session}",
                                  "authorization": headers}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg.get("id") == "s1":
                return msg["type"]


async def _host_ws(world: World, who: str) -> str:
    """Join the fleet as a host would, with whatever this identity holds as its token: the answer's type."""
    auth = world.clients[who].headers.get("authorization", "")
    url = world.server.url.replace("http://", "ws://") + "/v1/hosts/connect"
    hello = codec.encode(Hello("h-matrix", auth.removeprefix("Bearer "), REGION, 1, "test", "libx264"))
    async with connect(url, additional_headers={"Authorization": auth} if auth else {}, open_timeout=10) as ws:
        await ws.send(hello)
        return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]


def _host_ws_outcome(world: World, who: str) -> str:
    try:
        return asyncio.run(_host_ws(world, who))
    except Exception as exc:  # noqa: BLE001 - a refused handshake or a close is an outcome too
        return f"closed: {type(exc).__name__}"


def _event_ws_outcome(world: World, who: str) -> str:
    try:
        return asyncio.run(_event_ws(world, world.events_tokens.get(who)))
    except Exception as exc:  # noqa: BLE001 - a refused handshake or a close is an outcome too
        return f"closed: {type(exc).__name__}"


def _event_publish(world: World, who: str) -> int:
    token = world.events_tokens.get(who)
    headers = {"Content-Type": "application/json", **({"Authorization": token} if token else {})}
    body = {"channel": f"/chat/{world.session}", "events": [json.dumps({"content": f"hello from {who}"})]}
    return httpx.post(world.server.url + "/event", json=body, headers=headers, timeout=30).status_code


def test_every_route_has_a_rule(world: World) -> None:
    served = route_table(world.server.app)
    missing = sorted(served - set(RULES))
    stale = sorted(set(RULES) - served)
    assert not missing, f"routes without an authorization rule in {__name__}.RULES: {missing}"
    assert not stale, f"rules for routes the app no longer serves: {stale}"


def test_the_other_credentials_open_what_the_seven_cannot(world: World) -> None:
    """The routes no identity of the matrix may use take their own credential: SigV4, the publish token, the
    metrics token; and the viewer token also works as ?token=."""
    srv = world.server
    assert srv.client().list_applications()["Items"]  # SigV4 (stock boto3)
    publish = _client(srv, headers={"Authorization": f"Bearer {world.publish_token}"})
    assert publish.post(f"/whip/{world.broadcast}", content=b"v=0\r\n",
                        headers={"Content-Type": "application/sdp"}).status_code not in (401, 403)
    token = srv.settings.metrics_token
    assert token and _client(srv, headers={"Authorization": f"Bearer {token}"}).get("/metrics").status_code == 200
    nobody = world.clients[NOBODY]
    for path in (f"/hls/{world.broadcast}/master.m3u8", f"/recordings/{world.broadcast}/media/hls/master.m3u8",
                 f"/v1/broadcasts/{world.broadcast}/status"):
        assert nobody.get(f"{path}?token={world.viewer_token}").status_code == 200, path


def test_authorization_matrix(world: World) -> None:
    """Last in this module: allowed callers end the broadcast and the session at the very end."""
    problems: list[str] = []
    later: list[tuple[str, str, Probe, str]] = []
    for (method, route), rule in sorted(RULES.items()):
        for probe in rule.probes:
            for who in sorted(EVERYONE):
                allowed = who in rule.allowed
                if probe.last and allowed:
                    later.append((method, route, probe, who))
                    continue
                problems += _check(world, method, route, probe, who, allowed)
    for method, route, probe, who in later:  # what changes the world, once every other probe has run
        problems += _check(world, method, route, probe, who, True)
    assert not problems, "\n".join(problems)


def _check(world: World, method: str, route: str, probe: Probe, who: str, allowed: bool) -> list[str]:
    if (method, route) == ("WS", "/event/realtime"):
        outcome = _event_ws_outcome(world, who)
        ok = outcome == "subscribe_success" if allowed else outcome != "subscribe_success"
        return [] if ok else [f"WS /event/realtime as {who}: {outcome} (allowed={allowed})"]
    if (method, route) == ("WS", "/v1/hosts/connect"):
        outcome = _host_ws_outcome(world, who)
        ok = outcome == "welcome" if allowed else outcome != "welcome"
        return [] if ok else [f"WS /v1/hosts/connect as {who}: {outcome} (allowed={allowed})"]
    if (method, route) == ("POST", "/event"):
        status = _event_publish(world, who)
    else:
        status = _http(world, who, method, probe)
    where = f"{method} {world.fill(probe.path)} as {who}: {status}"
    if status >= 500:
        return [f"{where} (a server error)"]
    if allowed and probe.answers:
        return [] if status in probe.answers else [f"{where} (expected one of {sorted(probe.answers)})"]
    if allowed and (status in (401, 403) or (probe.found and status == 404)):
        return [f"{where} (should be allowed)"]
    refusals = (400, 401, 403) if route.lstrip("/").split("/")[0] in AWS_ROOTS else (401, 403, 404)
    if not allowed and status not in refusals:
        return [f"{where} (should be refused)"]
    return []
