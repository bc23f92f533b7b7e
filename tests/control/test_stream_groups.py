"""Stream groups: location/capacity validation, warm targets pushed to the HostPool, associations, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from playcast.config import Settings
from playcast.control.errors import ConflictError, NotFoundError, ValidationError
from playcast.control.plane import ControlPlane
from playcast.store.db import open_database
from tests.control.procpool import ProcessHostPool
from tests.control.support import wait_until
from tests.harness import await_until


async def ready_app(plane: ControlPlane, app_dir: Path, name: str = "game") -> str:
    app = await plane.applications.create({"Description": name, "ExecutablePath": "game.sh",
                                           "RuntimeEnvironment": {"Type": "UBUNTU", "Version": "22_04_LTS"},
                                           "ApplicationSourceUri": str(app_dir)})

    async def ready():  # type: ignore[no-untyped-def]
        return (await plane.applications.get(app["Id"]))["Status"] == "READY"
    await wait_until(ready)
    return app["Id"]


async def active(plane: ControlPlane, group_id: str) -> dict:  # type: ignore[type-arg]
    async def check():  # type: ignore[no-untyped-def]
        g = await plane.stream_groups.get(group_id)
        return g if g["Status"] == "ACTIVE" else None
    return await wait_until(check)


async def test_create_with_locations_sets_warm_targets(plane: ControlPlane, pool: ProcessHostPool,
                                                       app_dir: Path) -> None:
    app = await ready_app(plane, app_dir)
    g = await plane.stream_groups.create({
        "Description": "g", "StreamClass": "gen4n_high", "DefaultApplicationIdentifier": app,
        "LocationConfigurations": [{"LocationName": "local", "AlwaysOnCapacity": 1, "TargetIdleCapacity": 5,
                                    "MaximumCapacity": 6}]})
    assert g["Status"] == "ACTIVATING"
    got = await active(plane, g["Id"])
    state = got["LocationStates"][0]
    assert state["LocationName"] == "local" and state["Status"] == "ACTIVE"
    assert state["AlwaysOnCapacity"] == 1 and state["MaximumCapacity"] == 6
    assert state["RequestedCapacity"] == 5  # max(AlwaysOn 1, 0 sessions + TargetIdle 5), within Maximum 6
    launches, count = pool.warm_targets[(g["Id"], "local")]
    assert count == 2 and [lspec.application_id for lspec in launches] == [app]
    assert launches[0].args == () and launches[0].env == ()
    assert got["DefaultApplication"]["Id"] == app and len(got["AssociatedApplications"]) == 1
    assert got["ExpiresAt"] > got["CreatedAt"] + 364 * 86400


async def test_primary_location_always_present(plane: ControlPlane) -> None:
    g = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen6n_small"})
    got = await active(plane, g["Id"])
    assert [s["LocationName"] for s in got["LocationStates"]] == ["local"]
    assert got.get("DefaultApplication") is None


async def test_location_validation(plane: ControlPlane) -> None:
    base = {"Description": "g", "StreamClass": "gen4n_high"}
    with pytest.raises(ValidationError, match="not available"):
        await plane.stream_groups.create({**base, "LocationConfigurations": [{"LocationName": "us-west-2"}]})
    with pytest.raises(ValidationError, match="Duplicate"):
        await plane.stream_groups.create({**base, "LocationConfigurations": [{"LocationName": "local"}] * 2})
    with pytest.raises(ValidationError, match="OnDemandCapacity"):
        await plane.stream_groups.create({**base, "LocationConfigurations": [
            {"LocationName": "local", "OnDemandCapacity": 1, "MaximumCapacity": 2}]})
    with pytest.raises(ValidationError, match="at least"):
        await plane.stream_groups.create({**base, "LocationConfigurations": [
            {"LocationName": "local", "AlwaysOnCapacity": 3, "MaximumCapacity": 2}]})
    with pytest.raises(ValidationError, match="VpcTransit"):
        await plane.stream_groups.create({**base, "LocationConfigurations": [
            {"LocationName": "local", "VpcTransitConfiguration": {"VpcId": "v", "Ipv4CidrBlocks": ["10.0.0.0/16"]}}]})
    with pytest.raises(NotFoundError):
        await plane.stream_groups.create({**base, "DefaultApplicationIdentifier": "a-000000000"})
    assert (await plane.stream_groups.list(None, None))["Items"] == []


async def test_add_update_remove_locations(tmp_path: Path) -> None:
    pool = ProcessHostPool("local", slots=2, extra_locations=("edge-1",))
    settings = Settings(data_dir=tmp_path / "data", region="local", account_id="123456789012")
    db = await open_database(settings.database)
    plane = ControlPlane(settings, pool, db)
    await plane.start()
    try:
        g = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high"})
        await active(plane, g["Id"])
        out = await plane.stream_groups.add_locations(g["Id"], [{"LocationName": "edge-1", "AlwaysOnCapacity": 1}])
        assert out["Identifier"] == g["Arn"] and out["Locations"][0]["LocationName"] == "edge-1"
        with pytest.raises(ValidationError, match="already has"):
            await plane.stream_groups.add_locations(g["Id"], [{"LocationName": "edge-1"}])
        got = await active(plane, g["Id"])
        assert [s["LocationName"] for s in got["LocationStates"]] == ["local", "edge-1"]
        assert all(s["Status"] == "ACTIVE" for s in got["LocationStates"])
        upd = await plane.stream_groups.update(g["Id"], {"Description": "new", "LocationConfigurations": [
            {"LocationName": "edge-1", "AlwaysOnCapacity": 0, "MaximumCapacity": 4}]})
        assert upd["Description"] == "new"
        assert [s.get("MaximumCapacity") for s in upd["LocationStates"]] == [None, 4]
        with pytest.raises(ValidationError, match="primary"):
            await plane.stream_groups.remove_locations(g["Id"], ["local"])
        with pytest.raises(ValidationError, match="has no location"):
            await plane.stream_groups.remove_locations(g["Id"], ["elsewhere"])
        await plane.stream_groups.remove_locations(g["Id"], ["edge-1"])
        got = await plane.stream_groups.get(g["Id"], settle=False)
        assert [s["Status"] for s in got["LocationStates"]][1:] in (["REMOVING"], [])  # REMOVING, then gone

        async def removed():  # type: ignore[no-untyped-def]
            got = await plane.stream_groups.get(g["Id"], settle=False)
            gone = [s["LocationName"] for s in got["LocationStates"]] == ["local"]
            return got if gone and got["Status"] == "ACTIVE" else None  # the group's status follows its locations
        got = await wait_until(removed)
        assert pool.warm_targets[(g["Id"], "edge-1")] == ([], 0)
        with pytest.raises(ValidationError, match="AddStreamGroupLocations"):
            await plane.stream_groups.update(g["Id"], {"LocationConfigurations": [{"LocationName": "edge-1"}]})
    finally:
        await plane.stop()
        await db.close()


async def test_associations_drive_warm_launches(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    a1 = await ready_app(plane, app_dir, "one")
    a2 = await ready_app(plane, app_dir, "two")
    g = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high",
                                          "LocationConfigurations": [{"LocationName": "local", "AlwaysOnCapacity": 2}]})
    await active(plane, g["Id"])
    assert pool.warm_targets[(g["Id"], "local")][1] == 0  # nothing to launch yet
    out = await plane.stream_groups.associate(g["Id"], [a1, plane.arns.application(a2)])
    assert out["Arn"] == g["Arn"] and len(out["ApplicationArns"]) == 2

    async def two_launches():  # type: ignore[no-untyped-def]
        launches, count = pool.warm_targets[(g["Id"], "local")]
        return count == 2 and {lspec.application_id for lspec in launches} == {a1, a2}
    await wait_until(two_launches)
    assert (await plane.applications.get(a1))["AssociatedStreamGroups"] == [g["Arn"]]
    await plane.stream_groups.disassociate(g["Id"], [a1])

    async def one_launch():  # type: ignore[no-untyped-def]
        launches, _ = pool.warm_targets[(g["Id"], "local")]
        return [lspec.application_id for lspec in launches] == [a2]
    await wait_until(one_launch)
    await plane.applications.delete(a1)  # no longer associated: allowed
    await plane.stream_groups.update(g["Id"], {"DefaultApplicationIdentifier": a2})
    with pytest.raises(ValidationError, match="default application"):
        await plane.stream_groups.disassociate(g["Id"], [a2])
    with pytest.raises(NotFoundError):
        await plane.stream_groups.associate(g["Id"], ["a-000000000"])


async def test_delete_group_terminates_sessions_and_warm_slots(plane: ControlPlane, pool: ProcessHostPool,
                                                               app_dir: Path) -> None:
    app = await ready_app(plane, app_dir)
    g = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high",
                                          "DefaultApplicationIdentifier": app,
                                          "LocationConfigurations": [{"LocationName": "local", "AlwaysOnCapacity": 1}]})
    await active(plane, g["Id"])
    s = await plane.sessions.start(g["Id"], {"ApplicationIdentifier": app, "Protocol": "WebRTC",
                                             "SignalRequest": "NO_CLIENT_CONNECTION"})
    sid = s["Arn"].rsplit("/", 1)[1]
    await plane.sessions.wait_for(sid, lambda r: r.status == "ACTIVE", 5)
    await plane.tags.tag(s["Arn"], {"k": "v"})
    await plane.stream_groups.delete(g["Arn"])
    with pytest.raises(ConflictError):
        await plane.stream_groups.update(g["Id"], {"Description": "x"})

    async def gone():  # type: ignore[no-untyped-def]
        try:
            await plane.stream_groups.get(g["Id"])
        except NotFoundError:
            return True
        return False
    await wait_until(gone)
    assert sid not in pool.running and pool.warm_targets[(g["Id"], "local")] == ([], 0)
    with pytest.raises(NotFoundError):
        await plane.tags.list(s["Arn"])
    await plane.applications.delete(app)  # association went with the group


async def test_tags(plane: ControlPlane, app_dir: Path) -> None:
    app = await ready_app(plane, app_dir)
    arn = plane.arns.application(app)
    await plane.tags.tag(arn, {"team": "qa", "env": "dev"})
    await plane.tags.tag(arn, {"env": "prod"})
    assert (await plane.tags.list(arn))["Tags"] == {"team": "qa", "env": "prod"}
    await plane.tags.untag(arn, ["team", "absent"])
    assert (await plane.tags.list(arn))["Tags"] == {"env": "prod"}
    with pytest.raises(ValidationError, match="reserved"):
        await plane.tags.tag(arn, {"aws:x": "1"})
    with pytest.raises(ValidationError, match="at most 50"):
        await plane.tags.tag(arn, {f"k{i}": "v" for i in range(50)})
    with pytest.raises(NotFoundError):
        await plane.tags.tag(plane.arns.application("a-000000000"), {"a": "b"})
    with pytest.raises(NotFoundError):
        await plane.tags.list(plane.arns.stream_session("sg-000000000", "ABCDEFGHIJKLM"))


async def test_pause_warm_tag_reaches_the_host(plane: ControlPlane, pool: ProcessHostPool, app_dir: Path) -> None:
    app = await ready_app(plane, app_dir)
    loc = [{"LocationName": "local", "AlwaysOnCapacity": 1}]
    with pytest.raises(ValidationError, match="playcast:pause-warm"):
        await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high", "LocationConfigurations": loc,
                                          "Tags": {"playcast:pause-warm": "no"}})
    g = await plane.stream_groups.create({"Description": "g", "StreamClass": "gen4n_high",
                                          "DefaultApplicationIdentifier": app, "LocationConfigurations": loc,
                                          "Tags": {"playcast:pause-warm": "false", "team": "qa"}})
    await active(plane, g["Id"])
    key = (g["Id"], "local")
    assert pool.warm_targets[key][1] == 1 and pool.warm_pause[key] is False

    await plane.tags.untag(g["Arn"], ["playcast:pause-warm"])
    await await_until(lambda: pool.warm_pause[key] is True, 10, "the pause setting back on")
    await plane.tags.tag(g["Arn"], {"playcast:pause-warm": " FALSE "})
    await await_until(lambda: pool.warm_pause[key] is False, 10, "the pause setting off again")
    with pytest.raises(ValidationError, match="'true' or 'false'"):
        await plane.tags.tag(g["Arn"], {"playcast:pause-warm": "sometimes"})
    assert (await plane.tags.list(g["Arn"]))["Tags"] == {"playcast:pause-warm": " FALSE ", "team": "qa"}
    await plane.tags.tag(plane.arns.application(app), {"playcast:pause-warm": "whatever"})  # no meaning there
    assert pool.warm_pause[key] is False and pool.warm_targets[key][1] == 1


async def test_groups_share_the_slots_and_always_on_is_held(plane: ControlPlane, pool: ProcessHostPool,
                                                            app_dir: Path) -> None:
    """Two groups on one host of 2 slots: their warm targets never add up past the slots, and `held`'s always-on
    slot is kept for it: the other group can use the free slot but not that one, `held` itself can."""
    plane.settings.placement_timeout_s = 1
    app = await ready_app(plane, app_dir)
    held = await plane.stream_groups.create({
        "Description": "held", "StreamClass": "gen4n_high", "DefaultApplicationIdentifier": app,
        "LocationConfigurations": [{"LocationName": "local", "AlwaysOnCapacity": 1, "TargetIdleCapacity": 2,
                                    "MaximumCapacity": 4}]})
    other = await plane.stream_groups.create({
        "Description": "other", "StreamClass": "gen4n_high", "DefaultApplicationIdentifier": app,
        "LocationConfigurations": [{"LocationName": "local", "TargetIdleCapacity": 2}]})
    await active(plane, held["Id"])
    await active(plane, other["Id"])

    def warm(group: dict) -> int:  # type: ignore[type-arg]
        return pool.warm_targets.get((group["Id"], "local"), ([], 0))[1]

    await await_until(lambda: warm(held) + warm(other) == 2 and warm(held) >= 1, 5, "2 warm slots shared")

    async def start(group: dict) -> str:  # type: ignore[type-arg]
        s = await plane.sessions.start(group["Id"], {"ApplicationIdentifier": app, "Protocol": "WebRTC",
                                                     "SignalRequest": "NO_CLIENT_CONNECTION"})
        sid = s["Arn"].rsplit("/", 1)[1]
        await plane.sessions.wait_for(sid, lambda r: r.status != "ACTIVATING", 10)
        row = await plane.sessions.row(sid)
        assert row is not None
        return row.status

    assert await start(other) == "ACTIVE"  # the slot nobody holds
    await await_until(lambda: (warm(held), warm(other)) == (1, 0), 5, "one slot runs, one is held's floor")
    assert await start(other) == "ERROR"  # the last slot is held's always-on capacity
    assert await start(held) == "ACTIVE"
    await await_until(lambda: (warm(held), warm(other)) == (0, 0), 5, "no slot left to keep warm")
