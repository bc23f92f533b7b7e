"""Hosts browsers cannot reach directly. Behind a 1:1 NAT (`--public-address`): browsers reach only the public
address nftables maps to the host, and still play (Chromium, the web SDK) and watch (a WHEP viewer), because every
answer the host makes announces the public address beside its own candidates. Behind a NAT that maps nothing
(`PLAYCAST_ICE_SERVERS`): the host relays through a real TURN server (coturn). Bad ICE settings stop the host."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.support import (
    ChromiumPlayer,
    default_route,
    machines,
    one_to_one_nat,
    playcast_host,
    turn_server,
    udp_only_through,
    until,
)
from tests.fleet.test_remote_host import REMOTE, _admin, _hosts, _server_url
from tests.harness import REPO, Playcast, playcast_up, wait_until
from tests.whip.support import WhepViewer

pytestmark = pytest.mark.netns


async def _start_on_remote(pc: Playcast, player: ChromiumPlayer) -> tuple[Any, str, str, dict[str, Any]]:
    """Once the host is online: a stream group in its location only, and a session started there from the
    player's offer; (boto3 client, group, session id, the session once ACTIVE with its answer)."""
    admin = _admin(pc)
    wait_until(lambda: any(h["location"] == REMOTE and h["status"] == "ONLINE" for h in _hosts(admin).values()),
               30, "the host online")
    gls = pc.boto3()
    app_id = next(a["Id"] for a in gls.list_applications()["Items"] if a["Description"] == "playcast-demo")
    group = gls.create_stream_group(Description="unreachable host", StreamClass="gen4n_high",
                                    DefaultApplicationIdentifier=app_id,
                                    LocationConfigurations=[{"LocationName": REMOTE}])["Id"]
    gls.get_waiter("stream_group_active").wait(Identifier=group, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    offer = await asyncio.to_thread(player.offer, pc.base_url)
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest=offer, Locations=[REMOTE])
    sid = s["Arn"].rsplit("/", 1)[-1]
    got = await until(lambda: gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid),
                      lambda g: g["Status"] == "ACTIVE" and g.get("SignalResponse"), 60)
    return gls, group, sid, got


async def test_a_host_behind_nat_is_played_and_watched_on_its_public_address() -> None:
    player = ChromiumPlayer()
    with machines() as m, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc:
        admin = _admin(pc)
        token = admin.post("/v1/hosts/tokens", json={}).json()["token"]
        public = f"10.{m.subnet}.1.7"  # off the bridge's subnet: reached only through the NAT
        with playcast_host(m, _server_url(pc, m), token, location=REMOTE,
                           env={"PLAYCAST_PUBLIC_ADDRESS": public}) as host, \
                one_to_one_nat(m, host.address, public) as nat:
            try:
                gls, group, sid, got = await _start_on_remote(pc, player)
                assert f" {public} " in got["SignalResponse"] and f" {host.address} " in got["SignalResponse"]
                await asyncio.to_thread(player.accept, got["SignalResponse"])
                await until(player.frame_times, lambda t: len(t) > 10, 30)
                assert await asyncio.to_thread(player.remote_address) == public  # media went to the public address
                assert nat.dropped() > 0  # the browser tried the host's own address too: the NAT dropped it
                await asyncio.to_thread(player.screenshot,
                                        Path(tempfile.gettempdir()) / "playcast-public-address.png")

                # a WHEP viewer of its broadcast gets the public address in its answer, and frames through it
                made = admin.post("/v1/broadcasts", json={"streamSessionId": sid, "private": True})
                assert made.status_code == 201, made.text
                b = made.json()
                async with httpx.AsyncClient(timeout=30) as http:
                    viewer = WhepViewer(b["whepUrl"], b["viewerToken"])
                    try:
                        r = await viewer.start(http)
                        assert r.status_code == 201, r.text
                        assert f" {public} " in r.text, r.text
                        await until(lambda: len(viewer.frames), lambda n: n >= 5, 30)
                    finally:
                        await viewer.close()
                gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
            except BaseException:
                print(host.log_text()[-4000:])
                raise
            finally:
                await asyncio.to_thread(player.close)


async def test_a_host_that_no_browser_can_reach_relays_through_its_turn_server() -> None:
    player = ChromiumPlayer()
    with machines() as m, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc, \
            turn_server(m) as turn, default_route(m):  # the browser's own candidates: TURN permits only those
        admin = _admin(pc)
        token = admin.post("/v1/hosts/tokens", json={}).json()["token"]
        with playcast_host(m, _server_url(pc, m), token, location=REMOTE,
                           env={"PLAYCAST_ICE_SERVERS": turn.ice_servers()}) as host, \
                udp_only_through(host.address, turn.address, turn.port) as blocked:
            try:
                gls, group, sid, got = await _start_on_remote(pc, player)  # the browser has no TURN server
                assert " typ relay " in got["SignalResponse"], got["SignalResponse"]  # allocated on coturn
                await asyncio.to_thread(player.accept, got["SignalResponse"])
                await until(player.frame_times, lambda t: len(t) > 10, 30)
                assert await asyncio.to_thread(player.remote_address) == turn.address  # coturn's relay address
                assert blocked.dropped() > 0  # direct paths were tried, and dropped
                gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
            except BaseException:
                print(host.log_text()[-4000:])
                print("".join(turn.output)[-4000:])
                raise
            finally:
                await asyncio.to_thread(player.close)


@pytest.mark.parametrize(("env", "says"), [
    ({"PLAYCAST_PUBLIC_ADDRESS": "no-such-host.invalid"}, "does not resolve"),
    ({"PLAYCAST_ICE_SERVERS": '[{"urls": "turn:turn.example.net:3478"}]'}, "needs a username and a credential"),
    ({"PLAYCAST_ICE_SERVERS": "turn:x"}, "not JSON"),
])
def test_bad_ice_configuration_stops_the_host_in_words(env: dict[str, str], says: str) -> None:
    with tempfile.TemporaryDirectory(prefix="playcast-test-host-") as data:
        done = subprocess.run([str(REPO / ".venv" / "bin" / "playcast"), "host", "--server", "http://127.0.0.1:9",
                               "--token", "t", "--location", "x", "--data-dir", data],
                              capture_output=True, text=True, timeout=60,
                              env={**__import__("os").environ, "COLUMNS": "300", **env})
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stdout + done.stderr
