"""One-time login links across replicas (control/login_tokens.py): a token one replica issued logs in once on
any replica of the same database, never twice; a tampered, foreign or expired one never (clock injected)."""

from __future__ import annotations

from pathlib import Path

from playcast.control.login_tokens import LoginTokens
from playcast.store.db import open_database
from playcast.store.queries import get_or_create_secret


async def test_a_token_works_once_on_any_replica(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        secret = bytes.fromhex(await get_or_create_secret(db.sessionmaker, "login-token"))
        now = [1_000_000.0]
        a, b = LoginTokens(clock=lambda: now[0]), LoginTokens(clock=lambda: now[0])
        a.attach(db, secret)
        b.attach(db, secret)
        token = a.issue()
        assert await b.consume(token) is True  # issued by replica a, used on replica b
        assert await a.consume(token) is False and await b.consume(token) is False  # once only, everywhere
        nonce, expires, mac = a.issue().split(".")
        assert await b.consume(f"{nonce}.{int(expires) + 3600}.{mac}") is False  # its expiry changed
        assert await b.consume(f"{nonce}.{expires}.{'0' * 32}") is False
        other = LoginTokens(clock=lambda: now[0])
        other.attach(db, b"another deployment's secret")
        assert await b.consume(other.issue()) is False
        for junk in (None, "", "a.b", "x.y.z", "é.1.2", "a" * 500):
            assert await b.consume(junk) is False
        late = a.issue(ttl_s=60)
        now[0] += 61
        assert await b.consume(late) is False  # expired
        fresh = a.issue(ttl_s=60)
        assert await b.consume(fresh) is True  # and the expired row of the used one was forgotten meanwhile
    finally:
        await db.close()
