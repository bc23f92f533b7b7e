"""Stream groups through boto3: CRUD with LocationConfigurations, locations, associations, waiters, errors, tags."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.api.support import FAST, aws_error, create_app, create_group
from tests.harness import wait_until


def test_create_get_list_update_delete(procserver: Any, gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir)
    group = gls.create_stream_group(
        Description="my group", StreamClass="gen6n_medium", DefaultApplicationIdentifier=app["Arn"],
        LocationConfigurations=[{"LocationName": "local", "AlwaysOnCapacity": 1, "MaximumCapacity": 2}],
        Tags={"env": "test"})
    assert group["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert group["Id"].startswith("sg-") and group["Status"] == "ACTIVATING"
    gls.get_waiter("stream_group_active").wait(Identifier=group["Arn"], WaiterConfig=FAST)
    got = gls.get_stream_group(Identifier=group["Id"])
    assert got["Status"] == "ACTIVE" and got["StreamClass"] == "gen6n_medium"
    assert got["DefaultApplication"] == {"Id": app["Id"], "Arn": app["Arn"]}
    assert got["AssociatedApplications"] == [app["Arn"]]
    (loc,) = got["LocationStates"]
    assert loc["LocationName"] == "local" and loc["Status"] == "ACTIVE"
    assert (loc["AlwaysOnCapacity"], loc["MaximumCapacity"], loc["RequestedCapacity"]) == (1, 2, 1)
    assert loc["AllocatedCapacity"] == 0 and loc["IdleCapacity"] == 0
    assert procserver.pool.warm_targets[(group["Id"], "local")][1] == 1
    assert gls.get_application(Identifier=app["Id"])["AssociatedStreamGroups"] == [group["Arn"]]
    assert gls.list_tags_for_resource(ResourceArn=group["Arn"])["Tags"] == {"env": "test"}
    items = gls.list_stream_groups()["Items"]
    assert [i["Id"] for i in items] == [group["Id"]] and items[0]["Status"] == "ACTIVE"
    upd = gls.update_stream_group(Identifier=group["Id"], Description="renamed",
                                  LocationConfigurations=[{"LocationName": "local", "TargetIdleCapacity": 2}])
    assert upd["Description"] == "renamed" and upd["LocationStates"][0]["TargetIdleCapacity"] == 2
    gls.delete_stream_group(Identifier=group["Arn"])
    gls.get_waiter("stream_group_deleted").wait(Identifier=group["Id"], WaiterConfig=FAST)
    with aws_error("ResourceNotFoundException", 404):
        gls.get_stream_group(Identifier=group["Id"])
    assert procserver.pool.warm_targets[(group["Id"], "local")] == ([], 0)


def test_default_waiter_config_returns_quickly(gls: Any) -> None:
    # StreamGroupActive polls every 30 s in the model; activation is fast enough that the first poll sees ACTIVE
    t0 = time.monotonic()
    group = gls.create_stream_group(Description="quick", StreamClass="gen4n_high")
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"])
    assert time.monotonic() - t0 < 5
    gls.add_stream_group_locations(Identifier=group["Id"], LocationConfigurations=[{"LocationName": "local-2"}])
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"])
    assert time.monotonic() - t0 < 10


def test_locations_add_remove(gls: Any) -> None:
    group = create_group(gls)
    out = gls.add_stream_group_locations(Identifier=group["Id"], LocationConfigurations=[
        {"LocationName": "local-2", "AlwaysOnCapacity": 1}])
    assert out["Identifier"] == group["Arn"] and out["Locations"][0]["LocationName"] == "local-2"
    gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig=FAST)
    names = [s["LocationName"] for s in gls.get_stream_group(Identifier=group["Id"])["LocationStates"]]
    assert names == ["local", "local-2"]
    with aws_error("ValidationException", 400, "primary"):
        gls.remove_stream_group_locations(Identifier=group["Id"], Locations=["local"])
    with aws_error("ValidationException", 400, "not available"):
        gls.add_stream_group_locations(Identifier=group["Id"], LocationConfigurations=[{"LocationName": "mars-1"}])
    resp = gls.remove_stream_group_locations(Identifier=group["Id"], Locations=["local-2"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    # REMOVING (its sessions end, its capacity is released), then gone
    wait_until(lambda: [s["LocationName"] for s in gls.get_stream_group(Identifier=group["Id"])["LocationStates"]]
               == ["local"], 10, "local-2 removed")
    with aws_error("ResourceNotFoundException", 404):
        gls.add_stream_group_locations(Identifier="sg-000000000", LocationConfigurations=[{"LocationName": "local"}])
    with aws_error("ResourceNotFoundException", 404):
        gls.remove_stream_group_locations(Identifier="sg-000000000", Locations=["local-2"])


def test_associate_disassociate(gls: Any, app_dir: Path) -> None:
    a1 = create_app(gls, app_dir, Description="one")
    a2 = create_app(gls, app_dir, Description="two")
    group = create_group(gls)
    out = gls.associate_applications(Identifier=group["Id"], ApplicationIdentifiers=[a1["Id"], a2["Arn"]])
    assert out["Arn"] == group["Arn"] and out["ApplicationArns"] == [a1["Arn"], a2["Arn"]]
    assert sorted(gls.get_stream_group(Identifier=group["Id"])["AssociatedApplications"]) == sorted(
        [a1["Arn"], a2["Arn"]])
    out = gls.disassociate_applications(Identifier=group["Arn"], ApplicationIdentifiers=[a1["Arn"]])
    assert out["ApplicationArns"] == [a1["Arn"]]
    assert gls.get_stream_group(Identifier=group["Id"])["AssociatedApplications"] == [a2["Arn"]]
    with aws_error("ResourceNotFoundException", 404):
        gls.associate_applications(Identifier=group["Id"], ApplicationIdentifiers=["a-000000000"])
    with aws_error("ResourceNotFoundException", 404):
        gls.disassociate_applications(Identifier="sg-000000000", ApplicationIdentifiers=[a1["Id"]])
    with aws_error("ValidationException", 400):
        gls.associate_applications(Identifier=group["Id"], ApplicationIdentifiers=["x"] * 51)


def test_errors(gls: Any) -> None:
    with aws_error("ResourceNotFoundException", 404):
        gls.get_stream_group(Identifier="sg-000000000")
    with aws_error("ResourceNotFoundException", 404):
        gls.update_stream_group(Identifier="sg-000000000", Description="x")
    with aws_error("ResourceNotFoundException", 404):
        gls.delete_stream_group(Identifier="sg-000000000")
    with aws_error("ResourceNotFoundException", 404):
        gls.create_stream_group(Description="g", StreamClass="gen4n_high", DefaultApplicationIdentifier="a-000000000")
    with aws_error("ValidationException", 400, "enum"):
        gls.create_stream_group(Description="g", StreamClass="gen99_mega")
    with aws_error("ValidationException", 400, "not available"):
        gls.create_stream_group(Description="g", StreamClass="gen4n_high",
                                LocationConfigurations=[{"LocationName": "us-east-1"}])
    with aws_error("ValidationException", 400, "OnDemandCapacity"):
        gls.create_stream_group(Description="g", StreamClass="gen4n_high", LocationConfigurations=[
            {"LocationName": "local", "OnDemandCapacity": 1, "TargetIdleCapacity": 1}])
    with aws_error("ValidationException", 400):
        gls.create_stream_group(Description="g", StreamClass="gen4n_high",
                                LocationConfigurations=[{"LocationName": "bad name!"}])
    assert gls.list_stream_groups()["Items"] == []


def test_pagination_and_tags(gls: Any) -> None:
    ids = [gls.create_stream_group(Description=f"g{i}", StreamClass="gen4n_high")["Id"] for i in range(5)]
    pages = list(gls.get_paginator("list_stream_groups").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Items"]) for p in pages] == [2, 2, 1]
    assert [i["Id"] for p in pages for i in p["Items"]] == ids
    arn = gls.get_stream_group(Identifier=ids[0])["Arn"]
    gls.tag_resource(ResourceArn=arn, Tags={"x": "1", "y": "2"})
    gls.untag_resource(ResourceArn=arn, TagKeys=["x"])
    assert gls.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"y": "2"}
    with aws_error("ResourceNotFoundException"):
        gls.untag_resource(ResourceArn=arn.replace(ids[0], "sg-000000000"), TagKeys=["y"])
    with aws_error("ValidationException", 400):
        gls.list_stream_groups(MaxResults=101)
    with aws_error("ValidationException", 400, "NextToken"):
        gls.list_stream_groups(NextToken="bogus")


def test_waiter_fails_when_deleting(gls: Any) -> None:
    from botocore.exceptions import WaiterError
    group = create_group(gls)
    gls.delete_stream_group(Identifier=group["Id"])
    try:
        gls.get_waiter("stream_group_active").wait(Identifier=group["Id"], WaiterConfig=FAST)
    except WaiterError:
        pass  # DELETING is a failure state, or the group is already gone
    else:
        raise AssertionError("the waiter must not succeed on a deleted group")


def test_pause_warm_tag(procserver: Any, gls: Any, app_dir: Path) -> None:
    app = create_app(gls, app_dir)
    loc = [{"LocationName": "local", "AlwaysOnCapacity": 1}]
    with aws_error("ValidationException", 400, "playcast:pause-warm"):
        gls.create_stream_group(Description="g", StreamClass="gen4n_high", LocationConfigurations=loc,
                                Tags={"playcast:pause-warm": "off"})
    group = create_group(gls, app["Id"], LocationConfigurations=loc)
    key = (group["Id"], "local")
    assert procserver.pool.warm_pause[key] is True  # untagged: idle warm slots are paused
    gls.tag_resource(ResourceArn=group["Arn"], Tags={"playcast:pause-warm": "false"})
    wait_until(lambda: procserver.pool.warm_pause[key] is False, 10, "the host to get pause_idle=False")
    with aws_error("ValidationException", 400, "'true' or 'false'"):
        gls.tag_resource(ResourceArn=group["Arn"], Tags={"playcast:pause-warm": "1"})
    assert gls.list_tags_for_resource(ResourceArn=group["Arn"])["Tags"] == {"playcast:pause-warm": "false"}
