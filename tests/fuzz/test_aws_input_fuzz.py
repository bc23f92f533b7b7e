"""Fuzz of the GameLift Streams API's input: parse_input + validate against botocore's model for every operation
(any JSON document, query or path value -> params, BadRequest or InputInvalid; what validate accepts botocore's own
client-side validator accepts too), and a bounded sample of validly SigV4-signed requests with generated bodies
through the real server -> never a 5xx, always an AWS-shaped error (deep nesting: tests/e2e/test_untrusted_input.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from playcast.api.aws.app import BadRequest, parse_input
from playcast.api.aws.model import service_model
from playcast.api.aws.validate import InputInvalid, validate
from tests.api.support import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    ServerHandle,
    create_app,
    create_group,
    make_settings,
    procpool_server,
)
from tests.control.support import make_app_dir
from tests.fuzz.support import bounded, json_texts, json_values, texts

OPERATIONS = sorted(service_model().operation_names)
OFFER = json.dumps({"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"})


class ShapeValues:
    """Hypothesis strategies for values of botocore shapes: mostly well-typed values near the model's limits
    (enums, patterns, min/max), some of the wrong type. `overrides` replace a structure member's strategy by name."""

    def __init__(self, overrides: dict[str, st.SearchStrategy[Any]] | None = None) -> None:
        self.overrides = overrides or {}
        self._cache: dict[str, st.SearchStrategy[Any]] = {}

    def of(self, shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
        if depth > 6:
            return json_values(4)
        key = f"{shape.name}/{depth}"
        if key not in self._cache:
            self._cache[key] = st.deferred(lambda: self._build(shape, depth))
        return self._cache[key]

    def _build(self, shape: Shape, depth: int) -> st.SearchStrategy[Any]:
        meta, t = shape.metadata, shape.type_name
        lo, hi = meta.get("min"), meta.get("max")
        if t == "structure":
            members = {name: self.overrides.get(name, self.of(m, depth + 1)) for name, m in shape.members.items()}
            required = {n: s for n, s in members.items() if n in shape.required_members}
            optional = {n: s for n, s in members.items() if n not in required}
            right: st.SearchStrategy[Any] = st.fixed_dictionaries(required, optional=optional)
            return right | right | st.fixed_dictionaries({}, optional=members) | json_values(4)
        if t == "list":
            size = st.integers(0, 4) if hi is None else st.integers(max(0, (lo or 0) - 1), min(hi + 1, 6))
            return size.flatmap(lambda n: st.lists(self.of(shape.member, depth + 1), min_size=n, max_size=n)) \
                | json_values(4)
        if t == "map":  # JSON object keys are strings
            return st.dictionaries(_strings(shape.key), self.of(shape.value, depth + 1), max_size=4) \
                | json_values(4)
        if t == "string":
            return _strings(shape) | json_values(2)
        if t in ("integer", "long"):
            near = [st.integers((lo if lo is not None else 0) - 2, (lo if lo is not None else 0) + 2)]
            if hi is not None:
                near.append(st.integers(hi - 2, hi + 2))
            return st.one_of(*near, st.integers(), st.floats(), json_values(2))
        if t in ("float", "double"):
            return st.floats() | st.integers() | json_values(2)
        if t == "boolean":
            return st.booleans() | json_values(2)
        return json_values(3)  # timestamp, blob: anything


def _strings(shape: Shape) -> st.SearchStrategy[str]:
    """Strings for a string shape: its enum values, matches of its pattern, lengths around min/max, any text."""
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    options: list[st.SearchStrategy[str]] = [texts(8), texts(max((hi or 8) + 2, 8))]
    if shape.enum:
        options[:0] = [st.sampled_from(shape.enum)] * 3
    if shape.metadata.get("pattern"):
        options[:0] = [_regex_texts(shape.metadata["pattern"])] * 2
    if lo is not None or hi is not None:
        options.append(st.integers(max(0, (lo or 0) - 1), (hi or 64) + 1).map(lambda n: "a" * n))
    return st.one_of(*options)


def _regex_texts(pattern: str) -> st.SearchStrategy[str]:
    try:
        return st.from_regex(re.compile(pattern), fullmatch=True)
    except Exception:  # noqa: BLE001 - a pattern hypothesis cannot generate from: plain text instead
        return texts(16)


@dataclass
class Wire:
    """One operation's input split the way the REST-JSON protocol carries it."""

    labels: dict[str, str]
    query: list[tuple[str, str]]
    body: bytes


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def to_wire(op: OperationModel, params: Any, body_override: bytes | None) -> Wire:
    labels: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    body: dict[str, Any] = {}
    shape = op.input_shape
    members = shape.members if shape is not None else {}
    given_params = params if isinstance(params, dict) else {}
    for name, member in members.items():
        if name not in given_params:
            continue
        value = given_params[name]
        where, wire = member.serialization.get("location"), member.serialization.get("name", name)
        if where == "uri":
            labels[wire] = _text(value)
        elif where == "querystring":
            values = value if isinstance(value, list) else [value]
            query += [(wire, _text(v)) for v in values]
        elif where != "header":
            body[wire] = value
    data = body_override if body_override is not None else (json.dumps(body).encode() if body else b"")
    return Wire(labels, query, data)


def _request(method: str, query: list[tuple[str, str]]) -> Request:
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in query)
    return Request({"type": "http", "method": method, "path": "/", "query_string": qs.encode(), "headers": []})


def _routed(labels: dict[str, str]) -> dict[str, str]:
    """Path labels as model.match hands them over: sent percent-encoded, decoded as UTF-8 with replacement."""
    return {k: unquote(quote(v, safe="", errors="surrogatepass")) for k, v in labels.items()}


pure = ShapeValues()
body_overrides = st.none() | st.none() | json_values(12).map(lambda v: json.dumps(v).encode()) \
    | json_texts().map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=64)


@st.composite
def operation_inputs(draw: st.DrawFn, values: ShapeValues) -> tuple[OperationModel, Wire]:
    op = service_model().operation_model(draw(st.sampled_from(OPERATIONS)))
    params = draw(values.of(op.input_shape)) if op.input_shape is not None else {}
    return op, to_wire(op, params, draw(body_overrides))


@bounded(300)
@given(operation_inputs(pure))
def test_any_input_parses_to_params_or_an_aws_error(case: tuple[OperationModel, Wire]) -> None:
    op, wire = case
    try:
        params = parse_input(op, _routed(wire.labels), _request(op.http["method"], wire.query), wire.body)
    except BadRequest as exc:
        assert exc.code in ("SerializationException", "ValidationException") and exc.message
        return
    assert isinstance(params, dict)
    json.dumps(params, ensure_ascii=False).encode("utf-8")  # storable and echoable: no lone surrogates
    try:
        validate(op.input_shape, params)
    except InputInvalid as exc:
        assert exc.errors and exc.message.startswith(f"{len(exc.errors)} validation error")
        return
    # what we accept, botocore's client-side validation (types, required, minimums) accepts too
    report = ParamValidator().validate(params, op.input_shape)
    assert not report.has_errors(), f"{op.name} {params!r}: {report.generate_report()}"


# ------------------------------------------------------------------------- through the real server, signed

@dataclass
class Seeded:
    server: ServerHandle
    app_id: str
    app_arn: str
    group_id: str
    session_id: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """The real server over a ProcessHostPool with one READY application, one ACTIVE stream group and one
    session, so that generated identifiers can name things that exist."""
    tmp = tmp_path_factory.mktemp("aws-fuzz")
    with procpool_server(make_settings(tmp, placement_timeout_s=2), slots=2) as server:
        gls = server.client()
        app = create_app(gls, make_app_dir(tmp / "game"))
        group = create_group(gls, app["Id"])
        session = gls.start_stream_session(Identifier=group["Id"], ApplicationIdentifier=app["Arn"],
                                           Protocol="WebRTC", SignalRequest=OFFER)
        yield Seeded(server, app["Id"], app["Arn"], group["Id"], session["Arn"].rsplit("/", 1)[1])


def server_values(tmp: Path, s: Seeded) -> ShapeValues:
    """Shape values where identifiers often name the seeded resources, and the members that reach the file system
    or a process stay harmless: sources are a small game dir, a missing path or S3; executables are in the app."""
    game = make_app_dir(tmp / "source")
    apps = st.sampled_from([s.app_id, s.app_arn])
    return ShapeValues({
        "Identifier": st.sampled_from([s.group_id, s.app_id, s.app_arn]) | st.from_regex(r"[a-zA-Z0-9-]{1,20}", fullmatch=True) | texts(12),
        "ApplicationIdentifier": apps | texts(12),
        "DefaultApplicationIdentifier": apps | texts(12),
        "ApplicationIdentifiers": st.lists(apps | texts(12), max_size=3),
        "StreamSessionIdentifier": st.just(s.session_id) | texts(12),
        "SignalRequest": st.sampled_from([OFFER, "NO_CLIENT_CONNECTION"]) | json_texts(),
        "ApplicationSourceUri": st.sampled_from([str(game), str(tmp / "missing"), "s3://bucket/game.zip", "", "x"]),
        "ExecutablePath": st.sampled_from(["game.sh", "missing.sh", "../game.sh", "/game.sh", ""]),
    })


def signed_request(url: str, method: str, wire: Wire, path_template: str) -> httpx.Request:
    path = path_template.split("?", 1)[0]
    for name, value in wire.labels.items():
        encoded = quote(value, safe="", errors="surrogatepass").replace(".", "%2E")
        path = path.replace("{" + name + "}", encoded).replace("{" + name + "+}", encoded)
    path = re.sub(r"\{[A-Za-z0-9_]+\+?\}", "", path)
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in wire.query)
    full = url + path + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=full, data=wire.body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "gameliftstreams", REGION).add_auth(req)
    return httpx.Request(method, full, headers=dict(req.headers.items()), content=wire.body)


@pytest.fixture(scope="module")
def http(seeded: Seeded) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def values(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> ShapeValues:
    return server_values(tmp_path_factory.mktemp("aws-fuzz-sources"), seeded)


@bounded(150)
@given(data=st.data())
def test_signed_requests_with_generated_input_never_get_a_5xx(seeded: Seeded, http: httpx.Client,
                                                              values: ShapeValues, data: st.DataObject) -> None:
    op, wire = data.draw(operation_inputs(values))
    request = signed_request(seeded.server.url, op.http["method"], wire, op.http["requestUri"])
    resp = http.send(request)
    what = f"{op.name} {request.url} {wire.body[:300]!r} -> {resp.status_code} {resp.text[:300]}"
    assert resp.status_code < 500, what
    assert resp.headers.get("x-amzn-requestid"), what
    if resp.status_code >= 400:
        error_type = resp.headers.get("x-amzn-errortype")
        assert error_type and isinstance(resp.json().get("message"), str), what
        assert error_type not in ("InvalidSignatureException", "IncompleteSignatureException"), what


def test_seeded_session_still_answers(seeded: Seeded) -> None:
    """After the fuzzing the server still serves the seeded resources' reads (or says they were deleted)."""
    gls = seeded.server.client()
    assert gls.list_applications()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert gls.list_stream_sessions_by_account()["ResponseMetadata"]["HTTPStatusCode"] == 200
