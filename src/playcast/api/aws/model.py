"""Loads botocore's `gameliftstreams` service model and routes (method, raw path) to an operation.

Model lookups only: no request handling here."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel

SERVICE_NAME = "gameliftstreams"
_LABEL = re.compile(r"^\{([A-Za-z0-9_]+)(\+?)\}$")


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    segments: tuple[str, ...]  # literal segments, or "{Label}"
    literal_count: int


class NoRoute(Exception):
    """No operation has this path (`known_path` False) or none has this method on it (`known_path` True)."""

    def __init__(self, known_path: bool) -> None:
        super().__init__("no route")
        self.known_path = known_path


@functools.cache
def routes() -> tuple[Route, ...]:
    model = service_model()
    out = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?", 1)[0]
        segments = tuple(p for p in path.split("/") if p)
        literal = sum(1 for s in segments if not _LABEL.match(s))
        out.append(Route(name, http["method"].upper(), segments, literal))
    # more literal segments first, so /streamgroups/{Id}/locations beats a label in that place
    return tuple(sorted(out, key=lambda r: (-r.literal_count, r.operation)))


def _match_segments(route: Route, parts: list[str]) -> dict[str, str] | None:
    if len(parts) != len(route.segments):
        return None
    labels: dict[str, str] = {}
    for want, got in zip(route.segments, parts, strict=True):
        m = _LABEL.match(want)
        if m:
            if not got:
                return None
            labels[m.group(1)] = unquote(got)
        elif want != got:
            return None
    return labels


def match(method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]]:
    """Find the operation for a request; labels are percent-decoded. Raises NoRoute."""
    parts = [p for p in raw_path.split("/") if p != ""]
    path_known = False
    for route in routes():
        labels = _match_segments(route, parts)
        if labels is None:
            continue
        path_known = True
        if route.method == method.upper():
            return service_model().operation_model(route.operation), labels
    raise NoRoute(path_known)


def root_segments() -> set[str]:
    """First path segments the API owns (/applications, /streamgroups, ...)."""
    return {r.segments[0] for r in routes() if r.segments}
