"""The JSON object body of a first-party /v1 request, read within a byte limit and parsed by json_input.

Reading and parsing only: the route has authorized the caller before, and words the error in its API's shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..json_input import parse_json
from ..request_body import BodyTooLarge, read_body

TOO_LARGE = "PayloadTooLargeException"  # the error type /v1 APIs answer with 413


class BodyRefused(Exception):
    """Why the body was refused: HTTP `status` (413 too large, 400 not a JSON object), error `type`, message."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


async def json_object(request: Request, limit: int, *, bad_type: str = "ValidationException",
                      empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object (an empty body is {} when `empty_ok`). Raises BodyRefused, with error type
    `bad_type` when the body is not a JSON object."""
    try:
        raw = await read_body(request, limit)
    except BodyTooLarge as exc:
        raise BodyRefused(413, TOO_LARGE, exc.message) from None
    if empty_ok and not raw.strip():
        return {}
    try:
        doc = parse_json(raw, max_bytes=limit)
    except ValueError as exc:
        raise BodyRefused(400, bad_type, f"body must be JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BodyRefused(400, bad_type, "body must be a JSON object")
    return doc
