"""GET /metrics of a real `playcast up` while a `playcast host` in a namespace of its own joins and is killed:
per-host figures, placements and placement failures by reason, the placement histogram, and the capacity signal
(playcast_location_slots_wanted) going up when sessions are refused for want of a slot and down when a host
with room joins, then back to 0 once the refusals are older than the capacity window."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

from tests.fleet.support import Machines, machines, playcast_host
from tests.harness import Playcast, playcast_up, wait_until
from tests.observability.scrape import Scrape, parse

pytestmark = pytest.mark.netns

REMOTE = "remote-1"
PLACEMENT_TIMEOUT_S = 4
WINDOW_S = 25
TIMEOUT = 60.0


def _scrape(pc: Playcast) -> Scrape:
    r = httpx.get(f"{pc.base_url}/metrics", timeout=30,
                  headers={"Authorization": f"Bearer {pc.credentials['metrics_token']}"})
    assert r.status_code == 200, r.text
    return parse(r.text)


def _until(pc: Playcast, what: str, cond: Any) -> Scrape:
    def check() -> Scrape | None:
        m = _scrape(pc)
        return m if cond(m) else None

    return wait_until(check, TIMEOUT, what, interval=0.25)


def _hosts(pc: Playcast) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{pc.base_url}/v1/hosts", timeout=30,
                  headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})
    assert r.status_code == 200, r.text
    return {h["hostId"]: h for h in r.json()["items"]}


def _token(pc: Playcast) -> str:
    r = httpx.post(f"{pc.base_url}/v1/hosts/tokens", json={"description": "metrics"}, timeout=30,
                   headers={"Authorization": f"Bearer {pc.credentials['admin_token']}"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _start(gls: Any, group: str, app_id: str) -> str:
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", Locations=[REMOTE])
    return str(s["Arn"].rsplit("/", 1)[-1])


def _status(gls: Any, group: str, sid: str) -> dict[str, Any]:
    return dict(gls.get_stream_session(Identifier=group, StreamSessionIdentifier=sid))


def _wanted(m: Scrape) -> float:
    return m.value("playcast_location_slots_wanted", location=REMOTE)


def _server_url(pc: Playcast, m: Machines) -> str:
    return f"http://{m.server_ip}:{pc.port}"


def test_fleet_metrics_follow_hosts_placements_and_refusals() -> None:
    env = {"PLAYCAST_PLACEMENT_TIMEOUT_S": str(PLACEMENT_TIMEOUT_S), "PLAYCAST_CAPACITY_WINDOW_S": str(WINDOW_S)}
    with machines() as net, playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1", env=env) as pc:
        gls = pc.boto3()
        local = next(iter(_hosts(pc)))
        with playcast_host(net, _server_url(pc, net), _token(pc), location=REMOTE) as first_host:
            remote = wait_until(lambda: next((h["hostId"] for h in _hosts(pc).values() if h["location"] == REMOTE),
                                             None), TIMEOUT, "the remote host joined")
            app_id = next(a["Id"] for a in gls.list_applications()["Items"] if a["Description"] == "playcast-demo")
            group = gls.create_stream_group(Description="metrics", StreamClass="gen4n_high",
                                            DefaultApplicationIdentifier=app_id,
                                            LocationConfigurations=[{"LocationName": "local"},
                                                                    {"LocationName": REMOTE}])["Id"]
            gls.get_waiter("stream_group_active").wait(Identifier=group,
                                                       WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})

            # Every host as every replica reads it from the database; nothing wanted anywhere.
            m = _until(pc, "both hosts' figures", lambda m: m.get(
                "playcast_fleet_host_status", host=remote, location=REMOTE, status="ONLINE") == 1)
            assert m.value("playcast_fleet_host_status", host=local, location="local", status="ONLINE") == 1
            assert m.value("playcast_fleet_host_status", host=remote, location=REMOTE, status="OFFLINE") == 0
            assert m.value("playcast_fleet_host_slots", host=local, location="local") == 1
            assert m.value("playcast_fleet_host_slots", host=remote, location=REMOTE) == 1
            assert m.value("playcast_fleet_host_slots_busy", host=remote, location=REMOTE) == 0
            assert m.value("playcast_fleet_host_slots_warm", host=remote, location=REMOTE) == 0
            assert m.value("playcast_fleet_host_slots_warm_paused", host=remote, location=REMOTE) == 0
            assert 0 <= m.value("playcast_fleet_host_heartbeat_age_seconds", host=remote, location=REMOTE) < 10
            assert m.value("playcast_location_slots_online", location=REMOTE) == 1
            assert _wanted(m) == 0 and m.value("playcast_location_slots_wanted", location="local") == 0
            assert m.types["playcast_placement_duration_seconds"] == "histogram"
            assert m.types["playcast_placement_failures"] == "counter"

            # A session takes the remote slot (cold): counted, timed, the host busy, still nothing wanted.
            taken = _start(gls, group, app_id)
            wait_until(lambda: _status(gls, group, taken)["Status"] == "ACTIVE", TIMEOUT, "the session ACTIVE")
            m = _until(pc, "the host busy", lambda m: m.get(
                "playcast_fleet_host_slots_busy", host=remote, location=REMOTE) == 1)
            assert m.value("playcast_placements_total", location=REMOTE, warm="false") == 1
            assert m.value("playcast_placement_duration_seconds_count", location=REMOTE, result="cold") == 1
            assert m.value("playcast_placement_duration_seconds_bucket", location=REMOTE, result="cold",
                           le="+Inf") == 1
            assert m.value("playcast_location_slots_in_use", location=REMOTE) == 1
            assert _wanted(m) == 0

            # Another one while the only slot is busy: it waits on the full host (1 wanted), then no_capacity,
            # and the refusal keeps 1 wanted for the capacity window.
            full = _start(gls, group, app_id)
            m = _until(pc, "a slot wanted", lambda m: _wanted(m) == 1)
            wait_until(lambda: _status(gls, group, full)["Status"] == "ERROR", TIMEOUT, "the session refused")
            assert _status(gls, group, full)["StatusReason"] == "placementTimeout"
            m = _until(pc, "no_capacity counted", lambda m: m.get(
                "playcast_placement_failures_total", location=REMOTE, reason="no_capacity") == 1)
            assert m.value("playcast_location_sessions_refused_recent", location=REMOTE) == 1
            assert m.value("playcast_placement_failures_total", location=REMOTE, reason="no_host") == 0
            assert m.value("playcast_placement_duration_seconds_count", location=REMOTE, result="failed") == 1
            assert _wanted(m) == 1  # in use 1 + refused 1 - 1 slot
            assert m.value("playcast_location_slots_needed", location=REMOTE) == 2

            # The host is killed outright: OFFLINE, its slot no longer counts, its session is over.
            first_host.kill(signal.SIGKILL)
            first_host.wait(30)
            m = _until(pc, "the host OFFLINE", lambda m: m.get(
                "playcast_fleet_host_status", host=remote, location=REMOTE, status="OFFLINE") == 1
                and m.get("playcast_location_slots_online", location=REMOTE) == 0)
            wait_until(lambda: _status(gls, group, taken)["Status"] in ("TERMINATED", "ERROR"), TIMEOUT,
                       "its session ended")
            m = _until(pc, "the heartbeat ageing", lambda m: m.value(
                "playcast_fleet_host_heartbeat_age_seconds", host=remote, location=REMOTE) > 1)
            assert _wanted(m) == 1  # the refusal, nothing online, nothing in use

        # No host in remote-1 now: a session waits for one (2 wanted), then is refused (no_host).
        waiting = _start(gls, group, app_id)
        m = _until(pc, "a session waiting for a host", lambda m: m.get(
            "playcast_location_sessions_waiting", location=REMOTE) == 1)
        assert _wanted(m) == 2
        wait_until(lambda: _status(gls, group, waiting)["Status"] == "ERROR", TIMEOUT, "the session refused")
        m = _until(pc, "no_host counted", lambda m: m.get(
            "playcast_placement_failures_total", location=REMOTE, reason="no_host") == 1)
        assert m.value("playcast_location_sessions_refused_recent", location=REMOTE) == 2
        assert m.value("playcast_location_sessions_waiting", location=REMOTE) == 0
        assert _wanted(m) == 2

        # A host with room for both joins: nothing is wanted any more.
        with playcast_host(net, _server_url(pc, net), _token(pc), location=REMOTE, slots=2):
            m = _until(pc, "the new host online", lambda m: m.get(
                "playcast_location_slots_online", location=REMOTE) == 2)
            assert _wanted(m) == 0 and m.value("playcast_location_slots_needed", location=REMOTE) == 2
            # And once the refusals are older than the window, they count no more.
            m = _until(pc, "the refusals out of the window", lambda m: m.get(
                "playcast_location_sessions_refused_recent", location=REMOTE) == 0)
            assert _wanted(m) == 0 and m.value("playcast_location_slots_needed", location=REMOTE) == 0


def test_a_paused_warm_slot_is_counted_and_its_demand_met() -> None:
    """`playcast up --warm 1`: the default group's always-on slot is launched, paused once drawn, and reported by
    the heartbeat; the location wants nothing (the slot is there), and needs the one slot the group keeps."""
    with playcast_up("--bind", "0.0.0.0", "--warm", "1", "--slots", "2") as pc:
        local = next(iter(_hosts(pc)))
        m = _until(pc, "the warm slot paused", lambda m: m.get(
            "playcast_fleet_host_slots_warm_paused", host=local, location="local") == 1)
        assert m.value("playcast_fleet_host_slots_warm", host=local, location="local") == 1
        assert m.value("playcast_fleet_host_slots_busy", host=local, location="local") == 0
        assert m.value("playcast_location_slots_warm_wanted", location="local") == 1
        assert m.value("playcast_location_slots_needed", location="local") == 1
        assert m.value("playcast_location_slots_wanted", location="local") == 0


def test_two_replicas_report_the_same_fleet_and_signal() -> None:
    """Two `playcast server` replicas on PostgreSQL + Redis, hosts a1 (loc-a, 1 slot, on replica 0), a2 (loc-a, 1
    slot, on replica 1), b1 (loc-b, 2 slots, on replica 1): both replicas show every host and the same capacity
    signal; placement counters are each replica's own (they add up over replicas)."""
    from tests import postgres
    from tests.fleet.test_replicas import _group, cluster

    if not postgres.available():
        pytest.skip("PostgreSQL server binaries are not installed")
    with cluster() as c:
        group, app_id = _group(c)
        ids = c.host_ids

        def agree(what: str, cond: Any) -> list[Scrape]:
            return [_until(pc, f"replica {i}: {what}", cond) for i, pc in enumerate(c.replicas)]

        for m in agree("every host online", lambda m: all(m.get(
                "playcast_fleet_host_status", host=ids[n], location=loc, status="ONLINE") == 1
                for n, loc in (("a1", "loc-a"), ("a2", "loc-a"), ("b1", "loc-b")))):
            assert m.value("playcast_fleet_host_slots", host=ids["b1"], location="loc-b") == 2
            assert m.value("playcast_location_slots_online", location="loc-a") == 2
            assert m.value("playcast_location_slots_wanted", location="loc-a") == 0

        # Three sessions in loc-a, started through replica 0, with two slots there (one on each replica's host):
        # two are placed, the third waits for room, and both replicas want one more slot.
        gls = c.gls(0)
        sids = [_start_in(gls, group, app_id, "loc-a") for _ in range(3)]
        for m in agree("one slot wanted in loc-a", lambda m: m.get(
                "playcast_location_slots_wanted", location="loc-a") == 1):
            # the third is not reserved on a full host (the capacity rules refuse it before any host is picked):
            # it waits for room, and counts as wanted
            assert m.value("playcast_location_slots_in_use", location="loc-a") == 2
            assert m.value("playcast_location_slots_needed", location="loc-a") == 3
            assert m.value("playcast_location_slots_wanted", location="loc-b") == 0
        _until(c.replicas[0], "two placements", lambda m: m.get(
            "playcast_placements_total", location="loc-a", warm="false") == 2)
        placed = [_scrape(pc).get("playcast_placements_total", location="loc-a", warm="false") or 0
                  for pc in c.replicas]
        assert placed[0] == 2 and placed[1] == 0  # counted where the placement ran, whichever replica the host is on

        def ended() -> bool:  # the waiting one gets a slot once another ends: end each as it becomes ACTIVE
            statuses = [_status(gls, group, sid)["Status"] for sid in sids]
            for sid, status in zip(sids, statuses, strict=True):
                if status == "ACTIVE":
                    gls.terminate_stream_session(Identifier=group, StreamSessionIdentifier=sid)
            return all(status in ("TERMINATED", "ERROR") for status in statuses)

        wait_until(ended, TIMEOUT, "every session ended", interval=0.5)
        agree("nothing wanted", lambda m: m.get("playcast_location_slots_wanted", location="loc-a") == 0
              and m.get("playcast_location_slots_in_use", location="loc-a") == 0)


def _start_in(gls: Any, group: str, app_id: str, location: str) -> str:
    s = gls.start_stream_session(Identifier=group, ApplicationIdentifier=app_id, Protocol="WebRTC",
                                 SignalRequest="NO_CLIENT_CONNECTION", Locations=[location])
    return str(s["Arn"].rsplit("/", 1)[-1])
