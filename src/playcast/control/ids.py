"""Ids and ARNs of applications, stream groups and stream sessions, and parsing of Identifier fields.

Pure functions: no database access; existence checks happen in the callers."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from .errors import NotFoundError, ValidationError

_ALNUM = string.ascii_letters + string.digits
_SERVICE = "gameliftstreams"
_ARN_RE = re.compile(r"^arn:aws:gameliftstreams:([^: ]*):([0-9]{12}):([^: ]+)$")

APPLICATION = "application"
STREAM_GROUP = "streamgroup"
STREAM_SESSION = "streamsession"


def _alnum(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_application_id() -> str:
    return "a-" + _alnum(9)


def new_stream_group_id() -> str:
    return "sg-" + _alnum(9)


def new_stream_session_id() -> str:
    return _alnum(13)


@dataclass(frozen=True)
class ArnFactory:
    """Builds and parses ARNs for one region and account."""

    region: str
    account_id: str

    def _prefix(self) -> str:
        return f"arn:aws:{_SERVICE}:{self.region}:{self.account_id}:"

    def application(self, app_id: str) -> str:
        return f"{self._prefix()}{APPLICATION}/{app_id}"

    def stream_group(self, group_id: str) -> str:
        return f"{self._prefix()}{STREAM_GROUP}/{group_id}"

    def stream_session(self, group_id: str, session_id: str) -> str:
        return f"{self._prefix()}{STREAM_SESSION}/{group_id}/{session_id}"

    def parse(self, arn: str) -> tuple[str, list[str]]:
        """Split one of our ARNs into (resource type, path parts). Foreign region/account -> NotFoundError."""
        m = _ARN_RE.match(arn)
        if not m:
            raise ValidationError(f"Invalid ARN: {arn!r}")
        region, account, resource = m.groups()
        if region != self.region or account != self.account_id:
            raise NotFoundError(f"Resource {arn} not found in region {self.region} account {self.account_id}")
        kind, _, rest = resource.partition("/")
        parts = rest.split("/") if rest else []
        if kind not in (APPLICATION, STREAM_GROUP, STREAM_SESSION) or not parts or not all(parts):
            raise ValidationError(f"Unsupported resource ARN: {arn!r}")
        if kind == STREAM_SESSION and len(parts) != 2 or kind != STREAM_SESSION and len(parts) != 1:
            raise ValidationError(f"Malformed resource ARN: {arn!r}")
        return kind, parts

    def resolve(self, identifier: str, kind: str) -> str:
        """Identifier (ARN or short id) -> short id of a resource of `kind`."""
        if identifier.startswith("arn:"):
            got, parts = self.parse(identifier)
            if got != kind:
                raise ValidationError(f"ARN {identifier} is not a {kind} ARN")
            return parts[-1]
        return identifier
