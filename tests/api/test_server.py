"""Server assembly: /healthz, extra routes, and state that survives a restart (SQLite in the data dir)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.api.support import FAST, REGION, create_app, create_group, make_settings, session_id, start_server
from tests.control.procpool import ProcessHostPool
from tests.control.support import child_pids


def _start(tmp_path: Path, slots: int = 2, extra_routes: list[Any] | None = None) -> Any:
    async def make() -> ProcessHostPool:
        return ProcessHostPool(REGION, slots=slots)

    async def close(pool: ProcessHostPool) -> None:
        await pool.close()

    return start_server(make_settings(tmp_path), make, close, extra_routes)


def test_healthz_and_extra_routes(tmp_path: Path) -> None:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    server = _start(tmp_path, extra_routes=[Route("/hello", hello)])
    try:
        r = httpx.get(server.url + "/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok" and "2 host slots" in r.json()["detail"]
        assert httpx.get(server.url + "/hello").text == "hi"
        assert httpx.get(server.url + "/nope").status_code == 404
    finally:
        server.stop()
    no_slots = _start(tmp_path / "b", slots=0)
    try:
        r = httpx.get(no_slots.url + "/healthz")
        assert r.status_code == 200 and r.json()["detail"] == "ok (0 host slots)"  # hosts are not health
    finally:
        no_slots.stop()


def test_state_survives_restart(tmp_path: Path, app_dir: Path) -> None:
    before = child_pids()
    first = _start(tmp_path)
    try:
        gls = first.client()
        app = create_app(gls, app_dir)
        group = create_group(gls, app["Id"])
        s = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                     SignalRequest="NO_CLIENT_CONNECTION")
        gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=s["Arn"],
                                                     WaiterConfig=FAST)
        gls.tag_resource(ResourceArn=app["Arn"], Tags={"keep": "me"})
        browser = httpx.Client(base_url=first.url, follow_redirects=False)
        assert browser.get("/login", params={"token": first.login_tokens.issue()}).status_code == 303
        cookie = browser.cookies["playcast_user"]
    finally:
        first.stop()  # the host pool goes with it: the session's process is gone
    assert not (child_pids() - before)

    second = _start(tmp_path)
    try:
        gls = second.client()
        got = gls.get_stream_session(Identifier=group["Id"], StreamSessionIdentifier=session_id(s["Arn"]))
        assert (got["Status"], got["StatusReason"]) == ("TERMINATED", "internalError")
        assert gls.get_application(Identifier=app["Id"])["Status"] == "READY"
        assert gls.get_stream_group(Identifier=group["Id"])["Status"] == "ACTIVE"
        assert gls.list_tags_for_resource(ResourceArn=app["Arn"])["Tags"] == {"keep": "me"}
        # the cookie secret lives in the database, so browsers stay logged in
        browser = httpx.Client(base_url=second.url, cookies={"playcast_user": cookie})
        assert browser.get("/v1/play/apps").status_code == 200
        # and the restarted server can run sessions again
        s2 = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Id"], Protocol="WebRTC",
                                      SignalRequest="NO_CLIENT_CONNECTION")
        gls.get_waiter("stream_session_active").wait(Identifier=group["Id"], StreamSessionIdentifier=s2["Arn"],
                                                     WaiterConfig=FAST)
    finally:
        second.stop()
    deadline = time.monotonic() + 5
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (child_pids() - before)
