"""The ASGI app for the GameLift Streams API: check SigV4's headers, read the body, check the signature, route,
parse, validate, call, shape.

Protocol glue only; business rules live in playcast.control and the operation table in handlers.py."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.model import OperationModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ...config import Settings
from ...control.errors import ControlError
from ...control.plane import ControlPlane
from ...json_input import parse_json
from ...request_body import BodyTooLarge, read_body
from . import sigv4
from .errors import error_response
from .handlers import HANDLERS, UNSUPPORTED
from .model import SERVICE_NAME, NoRoute, match
from .serialize import shape_output
from .validate import InputInvalid, validate

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


class BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _convert_query(shape: Any, raw: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            raise BadRequest("ValidationException", f"{raw!r} is not an integer") from None
    if shape.type_name == "boolean":
        return raw.lower() == "true"
    return raw


def parse_input(op: OperationModel, labels: dict[str, str], request: Request, body: bytes) -> dict[str, Any]:
    """Collect the operation's input members from the path, query string, headers and JSON body."""
    shape = op.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body_members = {}
    for name, member in shape.members.items():
        where = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if where == "uri":
            if wire in labels:
                params[name] = labels[wire]
        elif where == "querystring":
            if member.type_name == "list":
                values = request.query_params.getlist(wire)
                if values:
                    params[name] = [_convert_query(member.member, v) for v in values]
            elif wire in request.query_params:
                params[name] = _convert_query(member, request.query_params[wire])
        elif where == "header":
            if wire in request.headers:
                params[name] = _convert_query(member, request.headers[wire])
        else:
            body_members[wire] = name
    if body_members and body.strip():
        try:
            doc = parse_json(body, max_bytes=MAX_BODY)
        except ValueError as exc:
            raise BadRequest("SerializationException", f"Request body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadRequest("SerializationException", "Request body must be a JSON object")
        for wire, name in body_members.items():
            if wire in doc:
                params[name] = doc[wire]
    return params


class AwsApi:
    """ASGI app answering every GameLift Streams route. `plane()` returns the running ControlPlane."""

    def __init__(self, settings: Settings, plane: Callable[[], ControlPlane]) -> None:
        self.settings = settings
        self.plane = plane

    def _credentials(self) -> sigv4.Credentials | None:
        if not self.settings.access_key_id or not self.settings.secret_access_key:
            return None
        return sigv4.Credentials(self.settings.access_key_id, self.settings.secret_access_key,
                                 self.settings.region, SERVICE_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        op_name = "?"
        try:
            response = await self._handle(request, request_id)
        except Exception:  # noqa: BLE001 - never answer with a bare 500 page
            log.exception("unhandled error in %s %s", request.method, scope.get("path"))
            response = error_response("InternalServerException", "Internal server error", request_id=request_id)
        op_name = scope.get("playcast.operation", op_name)
        log.debug("%s %s -> %s %s (%.1f ms)", request.method, scope.get("path"), op_name, response.status_code,
                  (time.monotonic() - started) * 1000)
        await response(scope, receive, send)

    async def _handle(self, request: Request, request_id: str) -> Response:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        raw_path_s = raw_path.decode("latin-1")
        try:
            creds = self._credentials()
            if creds is None:
                return error_response("UnrecognizedClientException",
                                      "This playcast server has no API credentials configured", 403,
                                      request_id)
            claimed = sigv4.check_headers(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]], creds)
            try:
                body = await read_body(request, MAX_BODY)  # only once the headers name our key, in time and scope
            except BodyTooLarge as exc:
                return error_response("ValidationException", exc.message, 413, request_id)
            sigv4.check_signature(claimed, request.method, raw_path_s,
                                  request.scope.get("query_string", b"").decode("latin-1"), body, creds)
            try:
                op, labels = match(request.method, raw_path_s)
            except NoRoute as exc:
                what = "method" if exc.known_path else "path"
                return error_response("UnknownOperationException",
                                      f"No GameLift Streams operation for {request.method} {request.url.path} "
                                      f"(unknown {what})", request_id=request_id)
            request.scope["playcast.operation"] = op.name
            if op.name in UNSUPPORTED:
                return error_response("ValidationException", f"{op.name} ({UNSUPPORTED[op.name]}) is not "
                                      "supported by playcast", request_id=request_id)
            params = parse_input(op, labels, request, body)
            validate(op.input_shape, params)
            result = await HANDLERS[op.name](self.plane(), params)
        except sigv4.AuthError as exc:
            return error_response(exc.code, exc.message, exc.status, request_id)
        except BadRequest as exc:
            return error_response(exc.code, exc.message, request_id=request_id)
        except InputInvalid as exc:
            return error_response("ValidationException", exc.message, request_id=request_id)
        except ControlError as exc:
            return error_response(exc.code, exc.message, request_id=request_id)
        status = int(op.http.get("responseCode", 200))
        headers = {"x-amzn-RequestId": request_id}
        if op.output_shape is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(shape_output(op.output_shape, result or {}), status_code=status, headers=headers)
