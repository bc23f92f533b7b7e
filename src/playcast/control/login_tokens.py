"""One-time login links (`/login?token=...`) that any replica accepts, once: a token is signed with a secret every
replica shares (kept in the database) and carries its expiry; its use is recorded in the database, so a second
use fails on every replica.

Issues and checks tokens only; the cookie a login sets is api/auth.py's."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from playcast.store.db import Database
from playcast.store.models import UsedLoginTokenRow

DEFAULT_TTL_S = 24 * 3600


class LoginTokens:
    """`issue()` once `attach()` has given it the database and the shared secret; `consume()` is True once per
    valid, unexpired token, whichever replica issued it."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._db: Database | None = None
        self._secret: bytes | None = None

    def attach(self, db: Database, secret: bytes) -> None:
        self._db, self._secret = db, secret

    def _mac(self, payload: str) -> str:
        assert self._secret is not None
        return hmac.new(self._secret, b"login-token:" + payload.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, ttl_s: float | None = None) -> str:
        """A new token: `<nonce>.<expires>.<mac>`. Raises RuntimeError before the server has started."""
        if self._secret is None:
            raise RuntimeError("login tokens are issued once the server has started (its database is open)")
        payload = f"{secrets.token_urlsafe(16)}.{int(self.clock() + (self.ttl_s if ttl_s is None else ttl_s))}"
        return f"{payload}.{self._mac(payload)}"

    async def consume(self, token: str | None) -> bool:
        """True once per valid, unexpired token (on any replica of the same database)."""
        if not token or self._db is None or len(token) > 200 or token.count(".") != 2:
            return False
        nonce, expires, mac = token.split(".")
        if not expires.isdigit() or not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"),
                                                             self._mac(f"{nonce}.{expires}").encode()):
            return False
        now = self.clock()
        if int(expires) < now:
            return False
        async with self._db.session() as s:
            await s.execute(delete(UsedLoginTokenRow).where(UsedLoginTokenRow.expires_at < now))  # forget the old
            s.add(UsedLoginTokenRow(nonce=nonce, expires_at=float(expires)))
            try:
                await s.commit()
            except IntegrityError:
                return False  # used already, here or on another replica
        return True
