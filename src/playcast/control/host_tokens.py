"""Host tokens: what a `playcast host` presents to join the fleet. Minted (shown once), listed, revoked; a token is
`<id>.<secret>` and only the secret's SHA-256 is stored.

Domain logic over the store; no HTTP (api/hosts.py), no protocol (the Fleet asks `check`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from playcast.store.db import Database
from playcast.store.hosts import HostTokenRow

from .errors import NotFoundError, ValidationError

MAX_DESCRIPTION = 256


@dataclass(frozen=True)
class HostToken:
    token_id: str
    description: str
    created_at: float
    revoked_at: float | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class HostTokens:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, description: str = "") -> tuple[HostToken, str]:
        """A new token: its record and the token itself (the only time it is shown)."""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise ValidationError(f"description must be a string of at most {MAX_DESCRIPTION} characters")
        token_id, secret = "ht-" + secrets.token_hex(6), secrets.token_urlsafe(32)
        row = HostTokenRow(id=token_id, secret_sha256=_digest(secret), description=description,
                           created_at=time.time(), revoked_at=None)
        async with self.db.session() as s:
            s.add(row)
            await s.commit()
        return _token(row), f"{token_id}.{secret}"

    async def list(self) -> list[HostToken]:
        async with self.db.session() as s:
            rows = (await s.execute(select(HostTokenRow).order_by(HostTokenRow.created_at))).scalars().all()
        return [_token(r) for r in rows]

    async def revoke(self, token_id: str) -> HostToken:
        async with self.db.session() as s:
            row = await s.get(HostTokenRow, token_id)
            if row is None:
                raise NotFoundError(f"host token {token_id} not found")
            if row.revoked_at is None:
                row.revoked_at = time.time()
                await s.commit()
            return _token(row)

    async def check(self, token: str) -> str | None:
        """None when `token` may join the fleet, else why not (the same words for unknown and wrong ones)."""
        token_id, _, secret = token.partition(".")
        async with self.db.session() as s:
            row = await s.get(HostTokenRow, token_id) if token_id.startswith("ht-") and len(token_id) < 32 else None
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return "unknown or wrong host token"
        if row.revoked_at is not None:
            return f"host token {token_id} was revoked"
        return None


def _token(row: HostTokenRow) -> HostToken:
    return HostToken(row.id, row.description, row.created_at, row.revoked_at)
