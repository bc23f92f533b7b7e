"""One function per GameLift Streams operation: takes validated input, calls the control plane.

No parsing, auth or serialization here; operations playcast does not implement are listed in UNSUPPORTED."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ...control.plane import ControlPlane

Handler = Callable[[ControlPlane, dict[str, Any]], Awaitable[dict[str, Any] | None]]

UNSUPPORTED = {
    "CreateStreamUrl": "stream URLs",
    "GetStreamUrl": "stream URLs",
    "ListStreamUrls": "stream URLs",
    "RevokeStreamUrl": "stream URLs",
    "ExportStreamSessionFiles": "exporting session files",
    "CreateStreamSessionAdminShell": "admin shells",
    "ListApplicationShaderCaches": "shader caches",
}


async def create_application(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.applications.create(a)


async def get_application(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.applications.get(a["Identifier"])


async def list_applications(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.applications.list(a.get("MaxResults"), a.get("NextToken"))


async def update_application(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.applications.update(a["Identifier"], a)


async def delete_application(p: ControlPlane, a: dict[str, Any]) -> None:
    await p.applications.delete(a["Identifier"])


async def create_stream_group(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.create(a)


async def get_stream_group(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.get(a["Identifier"])


async def list_stream_groups(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.list(a.get("MaxResults"), a.get("NextToken"))


async def update_stream_group(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.update(a["Identifier"], a)


async def delete_stream_group(p: ControlPlane, a: dict[str, Any]) -> None:
    await p.stream_groups.delete(a["Identifier"])


async def add_stream_group_locations(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.add_locations(a["Identifier"], a["LocationConfigurations"])


async def remove_stream_group_locations(p: ControlPlane, a: dict[str, Any]) -> None:
    await p.stream_groups.remove_locations(a["Identifier"], a["Locations"])


async def associate_applications(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.associate(a["Identifier"], a["ApplicationIdentifiers"])


async def disassociate_applications(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.stream_groups.disassociate(a["Identifier"], a["ApplicationIdentifiers"])


async def start_stream_session(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.sessions.start(a["Identifier"], a)


async def get_stream_session(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.sessions.get(a["Identifier"], a["StreamSessionIdentifier"])


async def list_stream_sessions(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.sessions.list(a["Identifier"], a.get("Status"), a.get("ExportFilesStatus"),
                                 a.get("MaxResults"), a.get("NextToken"))


async def list_stream_sessions_by_account(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.sessions.list(None, a.get("Status"), a.get("ExportFilesStatus"),
                                 a.get("MaxResults"), a.get("NextToken"))


async def create_stream_session_connection(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.sessions.connect(a["Identifier"], a["StreamSessionIdentifier"], a["SignalRequest"],
                                    a.get("ClientToken"))


async def terminate_stream_session(p: ControlPlane, a: dict[str, Any]) -> None:
    await p.sessions.terminate(a["Identifier"], a["StreamSessionIdentifier"])


async def tag_resource(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    await p.tags.tag(a["ResourceArn"], a["Tags"])
    return {}


async def untag_resource(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    await p.tags.untag(a["ResourceArn"], a["TagKeys"])
    return {}


async def list_tags_for_resource(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    return await p.tags.list(a["ResourceArn"])


HANDLERS: dict[str, Handler] = {
    "CreateApplication": create_application,
    "GetApplication": get_application,
    "ListApplications": list_applications,
    "UpdateApplication": update_application,
    "DeleteApplication": delete_application,
    "CreateStreamGroup": create_stream_group,
    "GetStreamGroup": get_stream_group,
    "ListStreamGroups": list_stream_groups,
    "UpdateStreamGroup": update_stream_group,
    "DeleteStreamGroup": delete_stream_group,
    "AddStreamGroupLocations": add_stream_group_locations,
    "RemoveStreamGroupLocations": remove_stream_group_locations,
    "AssociateApplications": associate_applications,
    "DisassociateApplications": disassociate_applications,
    "StartStreamSession": start_stream_session,
    "GetStreamSession": get_stream_session,
    "ListStreamSessions": list_stream_sessions,
    "ListStreamSessionsByAccount": list_stream_sessions_by_account,
    "CreateStreamSessionConnection": create_stream_session_connection,
    "TerminateStreamSession": terminate_stream_session,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
