"""AWS-shaped error responses: JSON {"message": ...} plus the x-amzn-ErrorType header.

Formatting only; which error to raise is decided elsewhere."""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

from .model import service_model

# errors that are not in the service model, as AWS front ends send them
EXTRA_STATUS = {
    "MissingAuthenticationTokenException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 400,
    "SerializationException": 400,
    "UnknownOperationException": 404,
}


def status_for(code: str) -> int:
    if code in EXTRA_STATUS:
        return EXTRA_STATUS[code]
    try:
        shape = service_model().shape_for(code)
    except Exception:  # noqa: BLE001 - unknown shape name
        return 500
    return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))


def error_response(code: str, message: str, status: int | None = None, request_id: str | None = None) -> JSONResponse:
    rid = request_id or str(uuid.uuid4())
    return JSONResponse({"message": message}, status_code=status or status_for(code),
                        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": rid})
