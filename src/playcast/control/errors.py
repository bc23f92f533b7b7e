"""Errors the control plane raises; each names the AWS error shape the API layer answers with.

Pure exception types: no HTTP status codes or response formatting here."""

from __future__ import annotations


class ControlError(Exception):
    """Base class. `code` is the GameLift Streams error shape name."""

    code = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(ControlError):
    code = "ValidationException"


class NotFoundError(ControlError):
    code = "ResourceNotFoundException"


class ConflictError(ControlError):
    code = "ConflictException"


class QuotaExceededError(ControlError):
    code = "ServiceQuotaExceededException"


class InternalError(ControlError):
    code = "InternalServerException"
