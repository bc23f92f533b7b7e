"""Who is calling a first-party /v1 endpoint: the admin (Bearer token) or a browser user (signed cookie).

HMAC signing and checks only; routes decide what each identity may do."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

COOKIE_NAME = "playcast_user"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
_USER_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def bearer_token(conn: HTTPConnection) -> str | None:
    return parse_bearer(conn.headers.get("authorization", ""))


def parse_bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin(conn: HTTPConnection, admin_token: str) -> bool:
    """True when the request carries `Authorization: Bearer <admin_token>` (constant-time compare)."""
    token = bearer_token(conn)
    return bool(token and admin_token and hmac.compare_digest(token.encode(), admin_token.encode()))


@dataclass(frozen=True)
class Identity:
    user_id: str
    admin: bool = False


class CookieSigner:
    """Signs and checks the browser-user cookie: `<user_id>.<issued_at>.<hmac-sha256>`."""

    def __init__(self, secret: bytes, max_age_s: int = COOKIE_MAX_AGE_S) -> None:
        self._secret = secret
        self.max_age_s = max_age_s

    @staticmethod
    def new_user_id() -> str:
        return "u-" + secrets.token_hex(12)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def sign(self, user_id: str, now: float | None = None) -> str:
        payload = f"{user_id}.{int(now if now is not None else time.time())}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str | None, now: float | None = None) -> str | None:
        """Return the user id in a valid, unexpired cookie value, else None."""
        if not value or value.count(".") != 2:
            return None
        user_id, issued, mac = value.split(".")
        if not _USER_RE.match(user_id) or not issued.isdigit():
            return None
        if not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"), self._mac(f"{user_id}.{issued}").encode()):
            return None
        if (now if now is not None else time.time()) - int(issued) > self.max_age_s:
            return None
        return user_id


def identify(conn: HTTPConnection, signer: CookieSigner, admin_token: str) -> Identity | None:
    """The admin (Bearer) or the cookie's browser user, or None."""
    if is_admin(conn, admin_token):
        return Identity("admin", admin=True)
    user = signer.verify(conn.cookies.get(COOKIE_NAME))
    return Identity(user) if user else None
