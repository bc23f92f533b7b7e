"""`POST /event`: AppSync Events HTTP publish ({channel, events} with x-api-key or Authorization headers).

Request parsing and HTTP status mapping only; the publish itself is EventsService's."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from playcast.json_input import parse_json
from playcast.request_body import BodyTooLarge, read_body

from . import protocol
from .auth import PUB
from .channels import parse_channel
from .protocol import BAD_REQUEST, UNAUTHORIZED, UNAVAILABLE, ProtocolError

if TYPE_CHECKING:
    from .service import EventsService

log = logging.getLogger(__name__)

# Auth travels in headers, never cookies: any origin may call (Amplify in a browser app hosted elsewhere).
CORS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {**CORS, "Access-Control-Allow-Methods": "POST, OPTIONS", "Access-Control-Max-Age": "600",
             "Access-Control-Allow-Headers": "authorization, content-type, x-api-key, x-amz-date, x-amz-user-agent, "
                                             "x-amz-security-token, x-amz-content-sha256"}

_STATUS = {BAD_REQUEST: 400, UNAUTHORIZED: 401, UNAVAILABLE: 503, protocol.INTERNAL: 500,
           protocol.TOO_MANY_REQUESTS: 429}


def _error(exc: ProtocolError) -> Response:
    """AppSync's `errors` list, plus what AWS SDKs read (x-amzn-ErrorType, a top-level message)."""
    return JSONResponse({"errors": protocol.errors_body(exc.error_type, exc.message), "message": exc.message},
                        status_code=_STATUS.get(exc.error_type, 400),
                        headers={"x-amzn-ErrorType": exc.error_type, **CORS})


async def _read_body(request: Request) -> bytes:
    try:
        return await read_body(request, protocol.MAX_MESSAGE_BYTES)
    except BodyTooLarge as exc:
        raise ProtocolError(BAD_REQUEST, exc.message) from None


def publish_endpoint(service: EventsService) -> Callable[[Request], Awaitable[Response]]:
    async def publish(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT)
        try:
            identity = service.auth.authenticate(dict(request.headers))  # before reading the body
            body = await _read_body(request)
            try:
                msg: Any = parse_json(body, max_bytes=protocol.MAX_MESSAGE_BYTES)
            except ValueError as exc:
                raise ProtocolError(BAD_REQUEST, f"body is not valid JSON: {exc}") from None
            if not isinstance(msg, dict):
                raise ProtocolError(BAD_REQUEST, "body must be a JSON object {channel, events}")
            channel_path = msg.get("channel")
            events = msg.get("events")
            if not isinstance(channel_path, str) or not channel_path:
                raise ProtocolError(BAD_REQUEST, "a non-empty string 'channel' is required")
            if not isinstance(events, list) or not events:
                raise ProtocolError(BAD_REQUEST, "'events' must be a non-empty list of JSON strings")
            if len(events) > protocol.MAX_EVENTS_PER_PUBLISH:
                raise ProtocolError(BAD_REQUEST, f"at most {protocol.MAX_EVENTS_PER_PUBLISH} events per publish "
                                    f"({len(events)} given)")
            channel = parse_channel(channel_path, allow_wildcard=False)
            config = service.namespace_config(channel.namespace)
            service.auth.authorize(identity, config, PUB)
            successful, failed = await service.publish_raw(channel, config, identity, events)
        except ProtocolError as exc:
            return _error(exc)
        return JSONResponse({"failed": failed, "successful": successful}, headers=CORS)

    return publish
