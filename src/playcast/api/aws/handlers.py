"""One entry per GameLift Streams operation: takes validated input, calls the control plane.

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
    "CreateStreamSessionAdminShell": "admin shells",
    "ListApplicationShaderCaches": "shader caches",
}


async def _tag(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    await p.tags.tag(a["ResourceArn"], a["Tags"])
    return {}


async def _untag(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    await p.tags.untag(a["ResourceArn"], a["TagKeys"])
    return {}


async def _export(p: ControlPlane, a: dict[str, Any]) -> dict[str, Any]:
    await p.session_files.request_export(a["Identifier"], a["StreamSessionIdentifier"], a["OutputUri"])
    return {}


# operation -> the control-plane call that does it (its result is the response body; None: an empty one)
HANDLERS: dict[str, Handler] = {
    "CreateApplication": lambda p, a: p.applications.create(a),
    "GetApplication": lambda p, a: p.applications.get(a["Identifier"]),
    "ListApplications": lambda p, a: p.applications.list(a.get("MaxResults"), a.get("NextToken")),
    "UpdateApplication": lambda p, a: p.applications.update(a["Identifier"], a),
    "DeleteApplication": lambda p, a: p.applications.delete(a["Identifier"]),
    "CreateStreamGroup": lambda p, a: p.stream_groups.create(a),
    "GetStreamGroup": lambda p, a: p.stream_groups.get(a["Identifier"]),
    "ListStreamGroups": lambda p, a: p.stream_groups.list(a.get("MaxResults"), a.get("NextToken")),
    "UpdateStreamGroup": lambda p, a: p.stream_groups.update(a["Identifier"], a),
    "DeleteStreamGroup": lambda p, a: p.stream_groups.delete(a["Identifier"]),
    "AddStreamGroupLocations": lambda p, a: p.stream_groups.add_locations(a["Identifier"],
                                                                          a["LocationConfigurations"]),
    "RemoveStreamGroupLocations": lambda p, a: p.stream_groups.remove_locations(a["Identifier"], a["Locations"]),
    "AssociateApplications": lambda p, a: p.stream_groups.associate(a["Identifier"], a["ApplicationIdentifiers"]),
    "DisassociateApplications": lambda p, a: p.stream_groups.disassociate(a["Identifier"],
                                                                          a["ApplicationIdentifiers"]),
    "StartStreamSession": lambda p, a: p.sessions.start(a["Identifier"], a),
    "GetStreamSession": lambda p, a: p.sessions.get(a["Identifier"], a["StreamSessionIdentifier"]),
    "ListStreamSessions": lambda p, a: p.sessions.list(a["Identifier"], a.get("Status"), a.get("ExportFilesStatus"),
                                                       a.get("MaxResults"), a.get("NextToken")),
    "ListStreamSessionsByAccount": lambda p, a: p.sessions.list(None, a.get("Status"), a.get("ExportFilesStatus"),
                                                                a.get("MaxResults"), a.get("NextToken")),
    "CreateStreamSessionConnection": lambda p, a: p.sessions.connect(a["Identifier"], a["StreamSessionIdentifier"],
                                                                     a["SignalRequest"], a.get("ClientToken")),
    "TerminateStreamSession": lambda p, a: p.sessions.terminate(a["Identifier"], a["StreamSessionIdentifier"]),
    "ExportStreamSessionFiles": _export,
    "TagResource": _tag,
    "UntagResource": _untag,
    "ListTagsForResource": lambda p, a: p.tags.list(a["ResourceArn"]),
}
