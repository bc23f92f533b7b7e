"""Content reaches remote hosts: a `playcast host` that cannot see the server's disk fetches the application's
archive over HTTP with its token (once for concurrent launches), checks it and launches from its own cache; a
truncated or corrupt archive fails the launch with a clear reason and leaves nothing in the cache."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.support import HostProcess, Machines, machines, playcast_host
from tests.harness import Playcast, playcast_up, wait_until

pytestmark = pytest.mark.netns

REMOTE = "remote-1"


def _admin(pc: Playcast) -> httpx.Client:
    return httpx.Client(base_url=pc.base_url, timeout=30,
                        headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})


def _join(pc: Playcast, m: Machines, *, slots: int) -> Any:
    """A remote host that sees none of the server's data dir, and its token."""
    admin = _admin(pc)
    token = admin.post("/v1/hosts/tokens", json={"description": "content"}).json()["token"]
    return token, playcast_host(m, f"http://{m.server_ip}:{pc.port}", token, location=REMOTE, slots=slots,
                                hide=(pc.data_dir,))


def _group(pc: Playcast) -> tuple[str, str]:
    gls = pc.boto3()
    app_id = next(a["Id"] for a in gls.list_applications()["Items"] if a["Description"] == "playcast-demo")
    group = gls.create_stream_group(Description="content", StreamClass="gen4n_high",
                                    DefaultApplicationIdentifier=app_id,
                                    LocationConfigurations=[{"LocationName": "local"}, {"LocationName": REMOTE}])
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    return group["Id"], app_id


def _start(gls: Any, group: str, app_id: str) -> str:
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", Locations=[REMOTE])
    return s["Arn"].rsplit("/", 1)[-1]


def _settled(gls: Any, group: str, sid: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        got = gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid)
        return got if got["Status"] not in ("ACTIVATING",) else None
    return wait_until(done, 90, f"session {sid} placed or failed")


def _archive(pc: Playcast) -> Path:
    archives = list((pc.data_dir / "archives").glob("*.tar.gz"))
    assert len(archives) == 1, archives  # the demo's content, packed once at ingest
    return archives[0]


def _host_sees(host: HostProcess, path: Path) -> list[str]:
    """What the host process itself sees at `path` (in its own mount namespace)."""
    out = subprocess.run(["nsenter", "--mount", f"--target={host.process.pid}", "ls", "-A", str(path)],
                         capture_output=True, text=True, check=False)
    return out.stdout.split()


def test_a_remote_host_fetches_content_over_http_once_and_launches_from_its_cache() -> None:
    with machines() as m, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc:
        archive = _archive(pc)
        digest = archive.name.removesuffix(".tar.gz")
        token, host_cm = _join(pc, m, slots=2)
        with host_cm as host:
            wait_until(lambda: any(h["location"] == REMOTE for h in _admin(pc).get("/v1/hosts").json()["items"]),
                       30, "the remote host joined")
            assert _host_sees(host, pc.data_dir) == []  # the server's disk (apps, archives) is not there for it
            group, app_id = _group(pc)
            gls = pc.boto3()
            sids = [_start(gls, group, app_id) for _ in range(2)]  # two launches of one archive at once
            for sid in sids:
                got = _settled(gls, group, sid)
                assert got["Status"] == "ACTIVE" and got["Location"] == REMOTE, got
            tree = host.data_dir / "content" / digest
            assert any(tree.iterdir())  # the unpacked tree it launched from
            assert sorted(p.name for p in (host.data_dir / "content").iterdir()) == [digest]  # no partial left
            assert host.log_text().count(f"content {digest} fetched from the control plane") == 1

            # only a host token reads archives: no token, the admin's, or a wrong one is refused
            url = f"{pc.base_url}/v1/hosts/content/{digest}"
            assert httpx.get(url).status_code == 401
            assert httpx.get(url, headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"}
                             ).status_code == 401
            assert httpx.get(url, headers={"Authorization": "Bearer ht-0000.nope"}).status_code == 401
            r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.content == archive.read_bytes()
            r = httpx.get(f"{pc.base_url}/v1/hosts/content/{'0' * 64}", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 404 and r.json()["error"]["type"] == "ResourceNotFoundException"
            for sid in sids:
                gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)


def test_a_truncated_or_corrupt_archive_fails_the_launch_and_leaves_no_cache() -> None:
    with machines() as m, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc:
        archive = _archive(pc)
        digest = archive.name.removesuffix(".tar.gz")
        good = archive.read_bytes()
        _token, host_cm = _join(pc, m, slots=1)
        with host_cm as host:
            wait_until(lambda: any(h["location"] == REMOTE for h in _admin(pc).get("/v1/hosts").json()["items"]),
                       30, "the remote host joined")
            group, app_id = _group(pc)
            gls = pc.boto3()
            cache = host.data_dir / "content"
            for damaged, words in ((good[: len(good) // 2], f"content {digest} is truncated"),
                                   (good[:100] + bytes(b ^ 0xFF for b in good[100:200]) + good[200:],
                                    f"content {digest} is corrupt")):
                archive.write_bytes(damaged)
                got = _settled(gls, group, _start(gls, group, app_id))
                assert got["Status"] == "TERMINATED" and got["StatusReason"] == "applicationExit", got
                wait_until(lambda words=words: words in host.log_text() or words in pc.log_text(), 10,
                           f"the log saying {words!r}")  # the host's output reaches us through a pipe
                assert not cache.exists() or list(cache.iterdir()) == []  # nothing partial, nothing unverified

            archive.write_bytes(good)  # repaired: the next launch fetches and runs it
            sid = _start(gls, group, app_id)
            assert _settled(gls, group, sid)["Status"] == "ACTIVE"
            assert sorted(p.name for p in cache.iterdir()) == [digest]
            gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
