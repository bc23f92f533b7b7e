"""The web player's first-party endpoints: one-time login link -> signed HttpOnly cookie, /v1/play/* with
ownership isolation between browser users, and the admin Bearer token."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.api.support import ADMIN_TOKEN, create_app, create_group
from tests.harness import wait_until

OFFER = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"})
OFFER2 = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\n"})
DEEP_SIGNAL = "[" * 100_000  # parsing it overflows the stack unless the parser limits depth


def browser(server: Any) -> httpx.Client:
    """A logged-in browser: consumes a fresh login token, keeps the cookie."""
    c = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    r = c.get("/login", params={"token": server.login_tokens.issue()})
    assert r.status_code == 303 and r.headers["location"] == "/play"
    return c


def test_login_is_one_time_and_sets_httponly_cookie(procserver: Any) -> None:
    token = procserver.login_tokens.issue()
    c = httpx.Client(base_url=procserver.url, follow_redirects=False)
    assert c.get("/v1/play/apps").status_code == 401
    assert c.get("/v1/play/apps").json()["error"]["type"] == "Unauthorized"
    r = c.get("/login", params={"token": "not-a-token"})
    assert r.status_code == 403 and "invalid" in r.text
    r = c.get("/login", params={"token": token})
    assert r.status_code == 303 and r.headers["location"] == "/play"
    cookie = r.headers["set-cookie"]
    assert "playcast_user=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert c.get("/v1/play/apps").status_code == 200
    other = httpx.Client(base_url=procserver.url, follow_redirects=False)
    assert other.get("/login", params={"token": token}).status_code == 403  # used up
    assert other.get("/v1/play/apps").status_code == 401
    # a browser that already has a cookie is simply sent on to /play
    assert c.get("/login", params={"token": token}).status_code == 303
    # a forged or altered cookie is refused
    value = c.cookies["playcast_user"]
    forged = httpx.Client(base_url=procserver.url, cookies={"playcast_user": value[:-1] + ("0" if value[-1] != "0" else "1")})
    assert forged.get("/v1/play/apps").status_code == 401
    forged = httpx.Client(base_url=procserver.url, cookies={"playcast_user": "u-admin.1.abc"})
    assert forged.get("/v1/play/apps").status_code == 401
    # a MAC with a non-ASCII byte (was a TypeError in compare_digest: 500)
    odd = value.rsplit(".", 1)[0].encode() + b".\xe9"
    assert httpx.get(procserver.url + "/v1/play/apps", headers={"Cookie": b"playcast_user=" + odd}).status_code == 401


def test_apps_lists_ready_apps_in_active_groups(procserver: Any, gls: Any, app_dir: Path) -> None:
    c = browser(procserver)
    assert c.get("/v1/play/apps").json() == {"applications": []}
    lonely = create_app(gls, app_dir, Description="not-in-a-group")
    app = create_app(gls, app_dir, Description="Space-Game")
    group = create_group(gls, app["Id"])
    apps = c.get("/v1/play/apps").json()["applications"]
    assert apps == [{"id": app["Id"], "arn": app["Arn"], "description": "Space-Game", "streamGroupId": group["Id"]}]
    assert lonely["Id"] not in {a["id"] for a in apps}


def test_play_session_flow_and_isolation(procserver: Any, gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir)
    group = create_group(gls, app["Id"])
    alice, bob = browser(procserver), browser(procserver)
    r = alice.post("/v1/play/sessions", json={"applicationId": app["Id"], "signalRequest": OFFER})
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["status"] == "ACTIVE" and started["streamGroupId"] == group["Id"]
    assert json.loads(started["signalResponse"])["type"] == "answer"
    sid = started["sessionId"]
    assert started["sessionArn"].endswith(f"/{group['Id']}/{sid}")
    # the session belongs to alice's random user id, visible to the API caller as UserId
    user_id = gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=sid)["UserId"]
    assert user_id.startswith("u-") and user_id in alice.cookies["playcast_user"]

    # bob cannot see, reconnect to or end alice's session
    assert bob.get(f"/v1/play/sessions/{sid}").status_code == 404
    assert bob.post(f"/v1/play/sessions/{sid}/connection", json={"signalRequest": OFFER2}).status_code == 404
    assert bob.delete(f"/v1/play/sessions/{sid}").status_code == 404
    assert bob.get("/v1/play/sessions", params={"active": "1"}).json() == {"sessions": []}

    assert alice.get(f"/v1/play/sessions/{sid}").json() == {"sessionId": sid, "status": "ACTIVE",
                                                           "statusReason": None}
    active = alice.get("/v1/play/sessions", params={"active": "1"}).json()["sessions"]
    assert [s["sessionId"] for s in active] == [sid] and active[0]["applicationId"] == app["Id"]
    r = alice.post(f"/v1/play/sessions/{sid}/connection", json={"signalRequest": OFFER2})
    assert r.status_code == 200 and json.loads(r.json()["signalResponse"])["type"] == "answer"
    r = alice.post(f"/v1/play/sessions/{sid}/connection", json={"signalRequest": OFFER2})
    assert r.status_code == 400 and r.json()["error"]["type"] == "ValidationException"  # same offer again

    # the admin token sees every session
    admin = httpx.Client(base_url=procserver.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.get(f"/v1/play/sessions/{sid}").json()["status"] == "ACTIVE"
    bad_admin = httpx.Client(base_url=procserver.url, headers={"Authorization": "Bearer wrong"})
    assert bad_admin.get(f"/v1/play/sessions/{sid}").status_code == 401

    assert alice.delete(f"/v1/play/sessions/{sid}").status_code == 204
    for _ in range(100):
        st = alice.get(f"/v1/play/sessions/{sid}").json()
        if st["status"] == "TERMINATED":
            break
        time.sleep(0.05)
    assert st == {"sessionId": sid, "status": "TERMINATED", "statusReason": "apiTerminated"}
    assert alice.get("/v1/play/sessions", params={"active": "1"}).json() == {"sessions": []}
    assert len(alice.get("/v1/play/sessions").json()["sessions"]) == 1


def test_play_errors(procserver: Any, gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir)
    group = create_group(gls, app["Id"])
    c = browser(procserver)
    r = c.post("/v1/play/sessions", json={"applicationId": app["Id"], "signalRequest": "{broken"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalidSignalRequest" and "sessionId" in err and err["message"]
    r = c.post("/v1/play/sessions", json={"applicationId": "a-000000000", "signalRequest": OFFER})
    assert r.status_code == 404 and r.json()["error"]["type"] == "ResourceNotFoundException"
    r = c.post("/v1/play/sessions", json={"applicationId": app["Id"], "signalRequest": OFFER,
                                          "streamGroupId": "sg-000000000"})
    assert r.status_code == 404
    r = c.post("/v1/play/sessions", json={"applicationId": app["Id"]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "ValidationException"
    r = c.post("/v1/play/sessions", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = c.post("/v1/play/sessions", json={"applicationId": app["Id"], "signalRequest": "",
                                          "streamGroupId": group["Id"]})
    assert r.status_code == 400
    assert c.get("/v1/play/sessions/NoSuchSession").status_code == 404
    assert httpx.post(procserver.url + "/v1/play/sessions", json={}).status_code == 401


def test_play_start_whose_placement_crashes_answers_at_once(procserver: Any, gls: Any, app_dir: Path) -> None:
    """A placement that fails (here on an offer nested 100,000 deep) answers the held POST at once with the
    session's reason, not after the placement timeout; the session is over and DELETE is a no-op."""
    app = create_app(gls, app_dir)
    create_group(gls, app["Id"])
    c = browser(procserver)
    t0 = time.monotonic()
    r = c.post("/v1/play/sessions", json={"applicationId": app["Id"], "signalRequest": DEEP_SIGNAL})
    assert time.monotonic() - t0 < procserver.settings.placement_timeout_s / 2
    err = r.json()["error"]
    # internalError while the failure is unforeseen (500), invalidSignalRequest once the parser refuses it (400)
    assert (r.status_code, err["type"]) in ((500, "internalError"), (400, "invalidSignalRequest")), r.text
    assert err["message"] and err["sessionId"]
    sid = err["sessionId"]
    assert c.get(f"/v1/play/sessions/{sid}").json()["status"] == "ERROR"
    assert c.delete(f"/v1/play/sessions/{sid}").status_code == 204
    assert sid not in procserver.pool.running


def test_play_delete_ends_a_session_still_placing(procserver: Any, gls: Any, app_dir: Path) -> None:
    """DELETE on a session that waits for a slot (ACTIVATING) cancels its placement: 204, TERMINATED apiTerminated,
    and the browser's held POST answers at once. (TerminateStreamSession keeps AWS's Conflict for ACTIVATING.)"""
    app = create_app(gls, app_dir)
    group = create_group(gls, app["Id"])
    first = [gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                      SignalRequest="NO_CLIENT_CONNECTION")["Arn"] for _ in range(2)]

    def all_active() -> bool:
        return all(gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=a)["Status"] == "ACTIVE"
                   for a in first)
    wait_until(all_active, 10, "both slots busy")
    alice = browser(procserver)
    tab = httpx.Client(base_url=procserver.url, cookies=alice.cookies, timeout=30)  # her second tab
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(alice.post, "/v1/play/sessions", json={"applicationId": app["Id"], "signalRequest": OFFER})

        def placing() -> str | None:
            rows = tab.get("/v1/play/sessions").json()["sessions"]
            return next((s["sessionId"] for s in rows if s["status"] == "ACTIVATING"), None)
        sid = wait_until(placing, 10, "alice's session to be placing")
        r = tab.delete(f"/v1/play/sessions/{sid}")
        assert r.status_code == 204, r.text
        answer = held.result(timeout=5)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["type"] == "apiTerminated" and answer.json()["error"]["sessionId"] == sid
    wait_until(lambda: tab.get(f"/v1/play/sessions/{sid}").json()["status"] == "TERMINATED", 5, "TERMINATED")
    assert tab.get(f"/v1/play/sessions/{sid}").json()["statusReason"] == "apiTerminated"
    # the freed slot goes to the next session, never to the cancelled one
    gls.terminate_stream_session(Identifier=group["Id"], StreamSessionIdentifier=first[0])
    nxt = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                   SignalRequest="NO_CLIENT_CONNECTION")["Arn"]
    wait_until(lambda: gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=nxt)["Status"]
               == "ACTIVE", 10, "the next session ACTIVE")
    assert sid not in procserver.pool.running
