"""A host on another machine: `playcast host` in a network namespace of its own joins a real `playcast up` over the
host protocol's WebSocket with a minted token, takes a session placed by location, streams it to a WebRTC client
directly (not through the server), and leaves when drained; wrong and revoked tokens are refused and told why."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.fleet.support import Machines, machines, playcast_host
from tests.harness import Playcast, playcast_up, wait_until
from tests.peers import PlayerPeer

pytestmark = pytest.mark.netns

REMOTE = "remote-1"


def _admin(pc: Playcast) -> httpx.Client:
    return httpx.Client(base_url=pc.base_url, timeout=30,
                        headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})


def _hosts(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    r = admin.get("/v1/hosts")
    assert r.status_code == 200, r.text
    return {h["hostId"]: h for h in r.json()["items"]}


def _server_url(pc: Playcast, m: Machines) -> str:
    return f"http://{m.server_ip}:{pc.port}"


def _group_with_remote(pc: Playcast) -> tuple[str, str]:
    gls = pc.boto3()
    app_id = next(a["Id"] for a in gls.list_applications()["Items"] if a["Description"] == "playcast-demo")
    group = gls.create_stream_group(Description="fleet", StreamClass="gen4n_high", DefaultApplicationIdentifier=app_id,
                                    LocationConfigurations=[{"LocationName": "local"},
                                                            {"LocationName": REMOTE}])
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    return group["Id"], app_id


def test_a_remote_host_joins_streams_and_drains() -> None:
    with machines() as m, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc:
        admin = _admin(pc)
        minted = admin.post("/v1/hosts/tokens", json={"description": "test host"})
        assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
        assert admin.get("/v1/hosts/tokens").json()["items"][0]["tokenId"] == minted.json()["tokenId"]
        assert "token" not in admin.get("/v1/hosts/tokens").json()["items"][0]  # shown once only
        with playcast_host(m, _server_url(pc, m), token, location=REMOTE) as host:
            remote = wait_until(lambda: next((h for h in _hosts(admin).values() if h["location"] == REMOTE), None),
                                30, "the remote host in /v1/hosts")
            assert remote["status"] == "ONLINE" and remote["slots"] == 1 and remote["encoder"] == "libx264"
            host_id = remote["hostId"]
            assert (host.data_dir / "host-id").read_text().strip() == host_id  # kept for the next start

            group, app_id = _group_with_remote(pc)
            gls = pc.boto3()
            frames, sid = asyncio.run(_play_on(gls, group, app_id, REMOTE))
            assert frames >= 10
            got = gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
            assert got["Location"] == REMOTE and got["Status"] in ("ACTIVE", "CONNECTED", "PENDING_CLIENT_RECONNECTION")  # the player has hung up
            assert wait_until(lambda: _hosts(admin)[host_id]["busy"] == 1, 10, "the host busy")

            # drain: no new sessions there; it leaves once its last one has ended
            assert admin.post(f"/v1/hosts/{host_id}/drain").json()["status"] == "DRAINING"
            s2 = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                          SignalRequest="NO_CLIENT_CONNECTION", Locations=[REMOTE, "local"])
            sid2 = s2["Arn"].rsplit("/", 1)[-1]
            gls.get_waiter("stream_session_active").wait(Identifier=group, StreamSessionIdentifier=sid2,
                                                         WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
            assert gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid2)["Location"] == "local"
            gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
            assert host.wait(30) == 3, host.log_text()[-2000:]  # told to leave: it stops for good
            assert "drained" in host.log_text()
            assert wait_until(lambda: _hosts(admin)[host_id]["status"] == "OFFLINE", 10, "the host OFFLINE")
            assert admin.delete(f"/v1/hosts/{host_id}").status_code == 204
            assert host_id not in _hosts(admin)


async def _play_on(gls: Any, group: str, app_id: str, location: str) -> tuple[int, str]:
    """A client plays a session placed in `location`; frames decoded in 5 s and the session id."""
    peer = PlayerPeer()
    try:
        s = await asyncio.to_thread(gls.start_stream_session, Identifier=group, ApplicationIdentifier=app_id,
                                    Protocol="WebRTC", SignalRequest=await peer.offer(), Locations=[location])
        sid = s["Arn"].rsplit("/", 1)[-1]
        deadline = time.monotonic() + 60
        while True:
            got = await asyncio.to_thread(gls.get_stream_session, Identifier=group, StreamSessionIdentifier=sid)
            if got["Status"] == "ACTIVE" and got.get("SignalResponse"):
                break
            assert got["Status"] == "ACTIVATING" and time.monotonic() < deadline, got
            await asyncio.sleep(0.2)
        await peer.accept(got["SignalResponse"])
        answer = json.loads(got["SignalResponse"])["sdp"]
        assert "10." in answer  # the host's own address: media goes to it, not through the server
        await asyncio.wait_for(peer.first_frame, 30)
        await asyncio.sleep(5)
        return len(peer.frames), sid
    finally:
        await peer.close()


def test_wrong_and_revoked_tokens_are_refused_and_told_why() -> None:
    with machines() as m, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc:
        admin = _admin(pc)
        with playcast_host(m, _server_url(pc, m), "ht-000000000000.not-a-secret", location=REMOTE) as bad:
            assert bad.wait(30) == 3
            assert "unknown or wrong host token" in bad.log_text()
        minted = admin.post("/v1/hosts/tokens", json={}).json()
        with playcast_host(m, _server_url(pc, m), minted["token"], location=REMOTE) as host:
            wait_until(lambda: any(h["location"] == REMOTE for h in _hosts(admin).values()), 30, "the host joined")
            assert admin.delete(f"/v1/hosts/tokens/{minted['tokenId']}").status_code == 204
            assert host.wait(30) == 3
            assert f"host token {minted['tokenId']} was revoked" in host.log_text()
            assert admin.get("/v1/hosts/tokens").json()["items"][0]["status"] == "REVOKED"
