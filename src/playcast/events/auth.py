"""Who is calling the events API: API keys (`x-api-key`) and playcast-signed JWT user tokens (`Authorization`).

Verifies credentials and rights and issues user tokens; it never touches sockets or the store (the signing
secret is handed in by whoever loaded it)."""

from __future__ import annotations

import hmac
import logging
import secrets
import string
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jwt

from .hooks import Identity
from .namespaces import API_KEY, SERVER, USER_TOKEN, NamespaceConfig
from .protocol import UNAUTHORIZED, ProtocolError

log = logging.getLogger(__name__)

ISSUER = "playcast"
ALGORITHM = "HS256"
_KEY_ALPHABET = string.ascii_lowercase + string.digits
PUB, SUB = "pub", "sub"


def new_api_key() -> str:
    """An AppSync-looking API key: 'da2-' + 26 lowercase letters/digits."""
    return "da2-" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(26))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class EventsAuth:
    """API keys and HS256 user tokens for one events API."""

    def __init__(self, api_key: str, secret: bytes | None = None, *, clock: Callable[[], float] = time.time) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self._api_keys = [api_key]
        self._secret = secret
        self._clock = clock

    # ------------------------------------------------------------------ configuration
    @property
    def api_key(self) -> str:
        return self._api_keys[0]

    def add_api_key(self, key: str) -> None:
        if key and key not in self._api_keys:
            self._api_keys.append(key)

    def set_secret(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the token signing secret must be at least 32 bytes")
        self._secret = secret

    @property
    def has_secret(self) -> bool:
        return self._secret is not None

    # ------------------------------------------------------------------ tokens
    def issue_user_token(self, user_id: str, display_name: str | None = None, roles: Iterable[str] = (),
                         rights: Mapping[str, Mapping[str, bool]] | None = None, ttl_s: float = 3600) -> str:
        """A signed token for one user. rights: {"<namespace>" or "*": {"pub": bool, "sub": bool}}."""
        if self._secret is None:
            raise RuntimeError("EventsAuth has no signing secret yet (EventsService.start() loads it)")
        if not user_id:
            raise ValueError("user_id is required")
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": user_id, "iat": now, "exp": now + max(1, int(ttl_s)),
            "name": display_name or user_id, "roles": sorted(set(roles)),
            "ns": {ns: {PUB: bool(r.get(PUB)), SUB: bool(r.get(SUB))} for ns, r in (rights or {}).items()},
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def _verify(self, token: str) -> dict[str, Any]:
        if self._secret is None:
            raise ProtocolError(UNAUTHORIZED, "user tokens are not accepted yet")
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]},
                                leeway=0)
        except jwt.ExpiredSignatureError:
            raise ProtocolError(UNAUTHORIZED, "Token expired") from None
        except jwt.InvalidTokenError as exc:
            raise ProtocolError(UNAUTHORIZED, f"invalid token: {exc}") from None
        except UnicodeEncodeError:  # PyJWT encodes the token first; a lone surrogate has no UTF-8
            raise ProtocolError(UNAUTHORIZED, "invalid token: not valid Unicode text") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise ProtocolError(UNAUTHORIZED, "invalid token: no subject")
        return claims

    # ------------------------------------------------------------------ checks
    def authenticate(self, headers: Mapping[str, str] | None, *, connection_id: str | None = None) -> Identity:
        """Headers (`x-api-key` or `Authorization`) -> Identity. Raises ProtocolError(UnauthorizedException)."""
        if not headers:
            raise ProtocolError(UNAUTHORIZED, "no credentials: send an x-api-key or an Authorization token")
        key = _header(headers, "x-api-key")
        if key is not None:
            if any(hmac.compare_digest(key.encode("utf-8", "surrogatepass"), k.encode()) for k in self._api_keys):
                return Identity(API_KEY, connection_id=connection_id)
            raise ProtocolError(UNAUTHORIZED, "invalid API key")
        token = _header(headers, "authorization")
        if token:
            claims = self._verify(token)
            roles = claims.get("roles")
            return Identity(USER_TOKEN, user_id=claims["sub"], display_name=str(claims.get("name") or claims["sub"]),
                            roles=frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list)
                            else frozenset(),
                            connection_id=connection_id, claims=claims)
        raise ProtocolError(UNAUTHORIZED, "no credentials: send an x-api-key or an Authorization token")

    def check_expiry(self, identity: Identity) -> None:
        """A connection authenticated by token stays valid only until the token expires."""
        exp = identity.claims.get("exp") if identity.claims else None
        if isinstance(exp, (int, float)) and self._clock() >= exp:
            raise ProtocolError(UNAUTHORIZED, "Token expired")

    def authorize(self, identity: Identity, config: NamespaceConfig, right: str) -> None:
        """May `identity` publish (right='pub') or subscribe (right='sub') in this namespace?"""
        if identity.auth_mode == SERVER:
            return
        modes = config.publish_auth_modes if right == PUB else config.subscribe_auth_modes
        verb = "publish" if right == PUB else "subscribe"
        if identity.auth_mode not in modes:
            raise ProtocolError(UNAUTHORIZED, f"{identity.auth_mode} may not {verb} in namespace {config.name!r}")
        if identity.auth_mode == USER_TOKEN:
            self.check_expiry(identity)
            rights = identity.claims.get("ns") if identity.claims else None
            allowed = False
            if isinstance(rights, dict):
                for key in (config.name, "*"):
                    entry = rights.get(key)
                    if isinstance(entry, dict) and entry.get(right) is True:
                        allowed = True
                        break
            if not allowed:
                raise ProtocolError(UNAUTHORIZED, f"this token has no right to {verb} in namespace {config.name!r}")
