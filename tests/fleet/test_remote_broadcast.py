"""Broadcasts of a session on a remote host (`playcast host` in a namespace of its own) through the URLs that
/v1/broadcasts returns: a WHEP viewer decodes frames sent by the host itself, LL-HLS (playlists, parts, a blocking
reload) comes through the server's origin from the host's packager with the viewer token checked there, the
recording lands in the server's storage (served by /recordings), WHIP egress runs on the host, the stage (viewers'
webcams) runs on the host too, and viewer counts, egress, recording and stage states come from heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import boto3
import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.control.test_postgres import postgres_url  # noqa: F401 - the fixture
from tests.fleet.support import HostProcess, Machines, machines, playcast_host
from tests.fleet.test_remote_host import REMOTE, _admin, _group_with_remote, _hosts, _server_url
from tests.harness import Playcast, playcast_up, wait_until
from tests.s3_support import MotoServer
from tests.whip.support import ColorTrack, WhepViewer, dominant

pytestmark = pytest.mark.netns


def _listed(playlist: str, base: str) -> list[str]:
    uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    return [urljoin(base, u) for u in uris + re.findall(r'URI="([^"]*)"', playlist)]


def _ok(http: httpx.Client, url: str, **kw: object) -> httpx.Response | None:
    r = http.get(url, **kw)  # type: ignore[arg-type]
    return r if r.status_code == 200 else None


@dataclass
class RemoteSession:
    """A `playcast up` (`pc`) with a `playcast host` in a namespace of its own on `m`, and a session `sid` of
    stream group `group` running on that host."""

    m: Machines
    pc: Playcast
    admin: httpx.Client
    host: HostProcess
    gls: Any
    group: str
    sid: str


def _start_on_remote(gls: Any, group: str, app_id: str) -> str:
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", Locations=[REMOTE])
    sid: str = s["Arn"].rsplit("/", 1)[-1]
    gls.get_waiter("stream_session_active").wait(Identifier=group, StreamSessionIdentifier=sid,
                                                 WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    assert gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)["Location"] == REMOTE
    return sid


@contextmanager
def _remote_session(m: Machines | None = None, env: dict[str, str] | None = None,
                    host_env: dict[str, str] | None = None) -> Iterator[RemoteSession]:
    """On `m` (default: new machines); `env` for the server, `host_env` for the host."""
    with contextlib.ExitStack() as stack:
        m = m or stack.enter_context(machines())
        pc = stack.enter_context(playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1", env=env))
        admin = _admin(pc)
        token = admin.post("/v1/hosts/tokens", json={"description": "broadcast host"}).json()["token"]
        with playcast_host(m, _server_url(pc, m), token, location=REMOTE, env=host_env) as host:
            wait_until(lambda: any(h["location"] == REMOTE for h in _hosts(admin).values()), 30, "the host joined")
            group, app_id = _group_with_remote(pc)
            gls = pc.boto3()
            sid = _start_on_remote(gls, group, app_id)
            yield RemoteSession(m, pc, admin, host, gls, group, sid)
            gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)


def test_whep_llhls_and_recording_of_a_session_on_a_remote_host() -> None:
    with _remote_session() as r:
        m, pc, admin, host, sid = r.m, r.pc, r.admin, r.host, r.sid
        created = admin.post("/v1/broadcasts", json={"streamSessionId": sid, "private": True, "record": True})
        assert created.status_code == 201, created.text
        b = created.json()
        bid, viewer_token = b["broadcastId"], b["viewerToken"]
        # the same URLs as for a session in the server's own process (its base: the bind address here)
        assert b["hlsUrl"].endswith(f":{pc.port}/hls/{bid}/master.m3u8?token={viewer_token}")
        assert b["whepUrl"].endswith(f":{pc.port}/whep/{bid}")

        http = httpx.Client(timeout=30)
        _llhls_through_the_origin(http, b["hlsUrl"], viewer_token)
        asyncio.run(_whep_viewer(pc.base_url, b, admin.headers["Authorization"]))

        # WHIP egress from the host (to the server's own stage: an endpoint the host reaches over the bridge);
        # its state comes from the host's heartbeats
        endpoint = f"http://{m.server_ip}:{pc.port}/whip/{bid}"
        again = admin.post("/v1/broadcasts", json={"streamSessionId": sid, "whipEgress": {
            "url": endpoint, "token": b["publishToken"]}})
        assert again.status_code == 201 and again.json()["broadcastId"] == bid, again.text

        def egress_connected() -> dict[str, object] | None:
            doc = admin.get(f"/v1/broadcasts/{bid}").json()
            egress = doc["whipEgress"]
            publisher = doc["stage"].get("publisher") or {}
            return doc if egress and egress[0]["state"] == "connected" and publisher.get("connected") else None

        doc = wait_until(egress_connected, 60, "the host's WHIP egress connected to the stage")
        assert doc["whipEgress"][0]["url"] == endpoint and doc["whipEgress"][0]["origin"] == "api"

        # the recording: written on the host, stored by the server, served by its /recordings
        stored = pc.data_dir / "recordings" / "recordings" / bid
        wait_until(lambda: len(list(stored.glob("media/hls/*/seg*.m4s"))) >= 2, 30, "recorded segments uploaded")
        status = admin.get(f"/v1/broadcasts/{bid}").json()
        assert status["recording"]["status"] == "RECORDING", status  # from the host's heartbeat
        assert admin.delete(f"/v1/broadcasts/{bid}").status_code == 204
        doc = wait_until(lambda: (d := admin.get(f"/v1/broadcasts/{bid}").json())["recording"]["status"]
                         == "ENDED" and d, 30, "the recording to end")
        vod = doc["recording"]["vodUrl"]
        assert http.get(vod.split("?", 1)[0]).status_code == 401
        variants = wait_until(lambda: (v := _ok(http, vod)) and _listed(v.text, vod), 30, "the VOD master")
        media = http.get(variants[0])
        assert media.status_code == 200 and "#EXT-X-ENDLIST" in media.text, media.text
        segment = next(u for u in _listed(media.text, variants[0]) if "/seg" in u)
        got = http.get(segment)
        assert got.status_code == 200 and got.content[4:8] in (b"moof", b"styp"), got.status_code
        assert not (host.data_dir / "recordings").exists()  # nothing kept on the host's disk



def _llhls_through_the_origin(http: httpx.Client, master_url: str, viewer_token: str) -> None:
    master = wait_until(lambda: _ok(http, master_url), 30, "the master playlist through the origin")
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    media_url = _listed(master.text, master_url)[0]
    assert media_url.endswith(f"?token={viewer_token}")  # the origin rewrote the host's playlist
    bare = media_url.split("?", 1)[0]
    assert http.get(bare).status_code == 401 and http.get(bare + "?token=wrong").status_code == 403
    media = http.get(media_url)
    assert media.status_code == 200 and media.headers["cache-control"] == "no-cache"
    listed = _listed(media.text, media_url)
    init = http.get(next(u for u in listed if "/init" in u))
    assert init.status_code == 200 and init.content[4:8] == b"ftyp"
    part = http.get(next(u for u in listed if "/part" in u))
    assert part.status_code == 200 and part.content[4:8] == b"moof"
    assert part.headers["cache-control"] == "public, max-age=31536000, immutable"
    by_header = http.get(bare, headers={"Authorization": f"Bearer {viewer_token}"})
    assert by_header.status_code == 200 and by_header.headers["cache-control"] == "private, no-cache"

    # a blocking reload: ask for the segment after the live one; the host holds the request until it exists
    msn = max(int(n) for n in re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", media.text)) + len(
        re.findall(r"#EXTINF", media.text))
    assert f"seg{msn}.m4s" not in media.text  # live, not complete yet
    blocked = http.get(f"{bare}?_HLS_msn={msn + 1}&token={viewer_token}")
    assert blocked.status_code == 200, blocked.text
    assert blocked.headers["cache-control"] == "public, max-age=2"
    assert f"seg{msn}.m4s" in blocked.text, blocked.text  # the answer came once that segment was complete
    too_far = http.get(f"{bare}?_HLS_msn={msn + 100}&token={viewer_token}")
    assert too_far.status_code == 400 and "too far" in too_far.text  # the host's answer, relayed


async def _whep_viewer(base_url: str, b: dict[str, str], admin_auth: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        viewer = WhepViewer(b["whepUrl"], b["viewerToken"])
        try:
            r = await viewer.start(http)
            assert r.status_code == 201, r.text
            assert re.search(r"a=candidate:\S+ \d+ udp \d+ 10\.", r.text)  # the host's address: media goes there
            deadline = time.monotonic() + 30
            while len(viewer.frames) < 10:
                assert time.monotonic() < deadline, "the WHEP viewer decoded no frames from the remote host"
                await asyncio.sleep(0.2)
            status = f"{base_url}/v1/broadcasts/{b['broadcastId']}"
            deadline = time.monotonic() + 10
            while (await http.get(status, headers={"Authorization": admin_auth})).json()["viewerCount"] != 1:
                assert time.monotonic() < deadline, "the viewer count (from the host's heartbeat) never said 1"
                await asyncio.sleep(0.2)
            assert viewer.location is not None
            gone = await http.delete(urljoin(b["whepUrl"], viewer.location),
                                     headers={"Authorization": f"Bearer {b['viewerToken']}"})
            assert gone.status_code in (200, 204), gone.text
        finally:
            await viewer.close()


def test_recording_uploads_need_a_host_token_and_a_recorded_broadcast() -> None:
    with playcast_up("--warm", "0", "--slots", "1") as pc:
        admin = _admin(pc)
        minted = admin.post("/v1/hosts/tokens", json={"description": "uploader"}).json()
        gls = pc.boto3()
        group = gls.list_stream_groups()["Items"][0]["Id"]
        app_id = gls.get_stream_group(Identifier=group)["DefaultApplication"]["Id"]
        s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                     SignalRequest="NO_CLIENT_CONNECTION")
        sid = s["Arn"].rsplit("/", 1)[-1]
        gls.get_waiter("stream_session_active").wait(Identifier=group, StreamSessionIdentifier=sid,
                                                     WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
        recorded = admin.post("/v1/broadcasts", json={"streamSessionId": sid, "record": True,
                                                      "private": True}).json()
        bid = recorded["broadcastId"]
        url = f"{pc.base_url}/v1/hosts/recordings/recordings/{bid}/media/extra/note.json"
        # the session's host (the embedded one) names itself and proves it with its key
        host_id = next(h["hostId"] for h in _hosts(admin).values() if h["location"] == "local")
        key = (pc.data_dir / "host-key").read_text().strip()
        token_only = {"Authorization": f"Bearer {minted['token']}", "Content-Type": "application/json"}
        host = {**token_only, "X-Playcast-Host-Id": host_id, "X-Playcast-Host-Key": key}
        with httpx.Client(timeout=30) as http:
            def error(r: httpx.Response, status: int, kind: str) -> None:
                assert r.status_code == status, (r.status_code, r.text)
                assert r.json()["error"]["type"] == kind, r.text

            error(http.put(url, content=b"{}"), 401, "UnauthorizedException")
            error(http.put(url, content=b"{}", headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"}),
                  401, "UnauthorizedException")  # the admin's token is no host token
            error(http.put(f"{pc.base_url}/v1/hosts/recordings/elsewhere/{bid}/x.json", content=b"{}", headers=host),
                  400, "ValidationException")
            error(http.put(f"{pc.base_url}/v1/hosts/recordings/recordings/b-unknown/x.json", content=b"{}",
                           headers=host), 404, "ResourceNotFoundException")
            error(http.put(url, content=b"x" * (3 << 20), headers=host), 413, "ValidationException")
            error(http.put(url, content=b"{}", headers=token_only), 401, "UnauthorizedException")  # who is it?
            error(http.put(url, content=b"{}", headers={**host, "X-Playcast-Host-Key": "not-its-key"}),
                  403, "AccessDeniedException")  # a host token and another host's id are no key to its recording
            error(http.put(url, content=b"{}", headers={**host, "X-Playcast-Host-Id": "h-0000000000000000"}),
                  403, "AccessDeniedException")
            assert http.put(url, content=b'{"from": "a host"}', headers=host).status_code == 204
            served = http.get(f"{pc.base_url}/recordings/{bid}/media/extra/note.json",
                              headers={"Authorization": f"Bearer {recorded['viewerToken']}"})
            assert served.status_code == 200 and served.json() == {"from": "a host"}
            assert admin.delete(f"/v1/hosts/tokens/{minted['tokenId']}").status_code in (200, 204)
            error(http.put(url, content=b"{}", headers=host), 401, "UnauthorizedException")
            assert "revoked" in http.put(url, content=b"{}", headers=host).json()["error"]["message"]


def test_the_stage_of_a_remote_sessions_broadcast_runs_on_its_host() -> None:
    """A webcam (an aiortc publisher) publishes into the stage of a broadcast whose session runs on a remote host:
    the WHIP answer lists the host's addresses (the stage runs there, not in the server), a stage viewer decodes
    the webcam's picture, and the stage's state in /v1/broadcasts comes from the host."""
    with _remote_session() as r:
        b = r.admin.post("/v1/broadcasts", json={"streamSessionId": r.sid, "private": True, "hls": False}).json()
        asyncio.run(_publish_and_watch(r.pc.base_url, b, r.admin.headers["Authorization"], r.host.address,
                                       r.m.server_ip))
        assert r.admin.delete(f"/v1/broadcasts/{b['broadcastId']}").status_code == 204
        assert r.admin.get(f"/v1/broadcasts/{b['broadcastId']}").json()["stage"]["live"] is False


async def _publish_and_watch(base_url: str, b: dict[str, str], admin_auth: str, host_ip: str,
                             server_ip: str) -> None:
    bid = b["broadcastId"]
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTrack(ColorTrack((220, 30, 30)))
    viewer = WhepViewer(f"{base_url}/whep/{bid}/cam", b["viewerToken"])
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            early = await viewer.start(http)
            assert early.status_code == 409 and early.headers["retry-after"], early.text  # nothing published yet
            await viewer.close()
            viewer = WhepViewer(f"{base_url}/whep/{bid}/cam", b["viewerToken"])

            await publisher.setLocalDescription(await publisher.createOffer())
            r = await http.post(f"{base_url}/whip/{bid}", content=publisher.localDescription.sdp.encode(),
                                headers={"Content-Type": "application/sdp",
                                         "Authorization": f"Bearer {b['publishToken']}"})
            assert r.status_code == 201, r.text
            candidates = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) ", r.text)
            assert host_ip in candidates and server_ip not in candidates, candidates  # the stage runs on the host
            await publisher.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
            session_url = urljoin(f"{base_url}/whip/{bid}", r.headers["location"])

            status_url = f"{base_url}/v1/broadcasts/{bid}"
            deadline = time.monotonic() + 30
            while True:
                stage = (await http.get(status_url, headers={"Authorization": admin_auth})).json()["stage"]
                if stage["live"] and (stage["publisher"] or {}).get("videoSize") == [320, 240]:
                    break
                assert time.monotonic() < deadline, f"the publisher never showed connected on the host: {stage}"
                await asyncio.sleep(0.2)
            assert stage["publisher"]["connected"] is True

            seen = await viewer.start(http)
            assert seen.status_code == 201, seen.text
            deadline = time.monotonic() + 30
            while len(viewer.frames) < 20:
                assert time.monotonic() < deadline, "the stage viewer decoded no frames from the remote host"
                await asyncio.sleep(0.2)
            assert dominant(viewer.frames[-1][3]) == "r"

            gone = await http.delete(session_url, headers={"Authorization": f"Bearer {b['publishToken']}"})
            assert gone.status_code == 200
            deadline = time.monotonic() + 10
            while (await http.get(status_url, headers={"Authorization": admin_auth})).json()["stage"]["live"]:
                assert time.monotonic() < deadline, "the stage still live after the publisher's DELETE"
                await asyncio.sleep(0.2)
        finally:
            await viewer.close()
            await publisher.close()


def test_llhls_of_a_remote_session_through_another_replica(postgres_url: str) -> None:  # noqa: F811
    """Two replicas on one PostgreSQL; the host is joined to replica A, which starts the broadcast. A viewer whose
    requests reach replica B gets the same LL-HLS, a blocking reload included: B finds the host's endpoint in the
    database and relays to it (the host holds the request), B's viewer check applies."""
    shared = {"PLAYCAST_DATABASE_URL": postgres_url,
              "PLAYCAST_ACCESS_KEY_ID": "AKIAREPLICAS00000000", "PLAYCAST_SECRET_ACCESS_KEY": "s" * 40}
    with machines() as m, \
            playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "0", env=shared) as a, \
            playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "0", env=shared) as b:
        admin = _admin(a)
        token = admin.post("/v1/hosts/tokens", json={"description": "replica host"}).json()["token"]
        with playcast_host(m, _server_url(a, m), token, location=REMOTE):
            wait_until(lambda: any(h["location"] == REMOTE and h["status"] == "ONLINE"
                                   for h in _hosts(admin).values()), 30, "the host joined replica A")
            gls = a.boto3()
            app_id = next(x["Id"] for x in gls.list_applications()["Items"] if x["Description"] == "playcast-demo")
            group = gls.create_stream_group(Description="replicas", StreamClass="gen4n_high",
                                            DefaultApplicationIdentifier=app_id,
                                            LocationConfigurations=[{"LocationName": REMOTE}])["Id"]
            gls.get_waiter("stream_group_active").wait(Identifier=group, WaiterConfig={"Delay": 0.5,
                                                                                       "MaxAttempts": 60})
            sid = _start_on_remote(gls, group, app_id)
            bc = admin.post("/v1/broadcasts", json={"streamSessionId": sid, "private": True})
            assert bc.status_code == 201, bc.text
            bid, viewer_token = bc.json()["broadcastId"], bc.json()["viewerToken"]
            via_b = f"http://127.0.0.1:{b.port}/hls/{bid}/master.m3u8?token={viewer_token}"
            http = httpx.Client(timeout=30)
            _llhls_through_the_origin(http, via_b, viewer_token)
            gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)


def test_a_remote_host_writes_recordings_to_the_servers_s3_storage() -> None:
    """The server's recording storage is s3:// (moto's S3 on the test's side of the bridge): the welcome tells the
    host, which writes the recording there itself (nothing through the server, nothing on its disk), and the
    server's /recordings redirects to it."""
    with machines() as m:
        moto = MotoServer(host=m.server_ip).start()
        try:
            aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
            boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="test",
                         aws_secret_access_key="test").create_bucket(Bucket="recs")
            env = {**aws, "PLAYCAST_RECORDING_STORAGE": f"s3://recs/vod?endpoint={moto.url}&region=us-east-1"}
            with _remote_session(m, env, host_env=aws) as r:  # the host is not told the storage: the welcome is
                s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="test",
                                  aws_secret_access_key="test")
                b = r.admin.post("/v1/broadcasts", json={"streamSessionId": r.sid, "record": True}).json()
                bid = b["broadcastId"]

                def segments() -> list[str]:
                    listed = s3.list_objects_v2(Bucket="recs", Prefix=f"vod/recordings/{bid}/media/hls/")
                    return [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".m4s")]

                wait_until(lambda: len(segments()) >= 2, 30, "recorded segments in the bucket")
                assert not (r.pc.data_dir / "recordings" / "recordings" / bid).exists()  # not through the server
                assert not (r.host.data_dir / "recordings").exists()
                assert r.admin.delete(f"/v1/broadcasts/{bid}").status_code == 204
                wait_until(lambda: r.admin.get(f"/v1/broadcasts/{bid}").json()["recording"]["status"] == "ENDED",
                           30, "the recording to end")
                vod = r.admin.get(f"/v1/broadcasts/{bid}").json()["recording"]["vodUrl"]
                with httpx.Client(timeout=30) as http:
                    redirect = http.get(vod)
                    assert redirect.status_code == 307 and redirect.headers["location"].startswith(moto.url)
                    master = http.get(redirect.headers["location"])
                    assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text, master.text
        finally:
            moto.stop()
