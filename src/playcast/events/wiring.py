"""Plugs the events service into a playcast server: its settings (given), the `default` namespace,
the token secret from the database, and start/stop inside the app's lifespan.

Assembly only; no protocol logic. Used by `playcast up` / `playcast server` (cli.py) and by tests."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from playcast.bus import make_bus

from .connection import EventsLimits
from .namespaces import API_KEY, NamespaceConfig
from .service import EventsService

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"
SECRET_NAME = "events-token-signing"
WS_MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # uvicorn refuses larger frames (close 1009); a full publish fits


@dataclass(frozen=True)
class EventsSettings:
    """`redis_url`: share events between replicas through Redis (None: in-process bus). `secret_hex`: the
    user-token signing secret (hex, >= 32 bytes; None: kept in the database, which replicas sharing PostgreSQL
    share). `keepalive_s`: the `ka` interval. Read from the environment by config.Settings, not here."""

    redis_url: str | None = None
    secret_hex: str | None = None
    keepalive_s: float = 60.0


def realtime_url(base_url: str) -> str:
    """http://host:port -> ws://host:port/event/realtime (https -> wss)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://"):].rstrip("/") + "/event/realtime"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://"):].rstrip("/") + "/event/realtime"
    return base_url.rstrip("/") + "/event/realtime"


def http_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/event"


def create_events_service(api_key: str, settings: EventsSettings | None = None) -> EventsService:
    """The service `playcast up` runs: namespace `default` open to the API key for publish and subscribe."""
    settings = settings or EventsSettings()
    secret = bytes.fromhex(settings.secret_hex) if settings.secret_hex else None
    service = EventsService(api_key, bus=make_bus(settings.redis_url), secret=secret,
                            limits=EventsLimits(keepalive_s=settings.keepalive_s))
    service.define_namespace(NamespaceConfig(DEFAULT_NAMESPACE, publish_auth_modes=frozenset({API_KEY}),
                                             subscribe_auth_modes=frozenset({API_KEY})))
    return service


def attach(app: Starlette, service: EventsService) -> None:
    """Run the service inside the app's lifespan (after the database opened: the token secret lives there)
    and expose it as app.state.events. The service's routes must already be among the app's routes."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            if not service.auth.has_secret:
                db = getattr(app.state, "db", None)
                if db is not None:
                    from playcast.store.queries import get_or_create_secret

                    service.auth.set_secret(bytes.fromhex(await get_or_create_secret(db.sessionmaker, SECRET_NAME)))
            await service.start()
            try:
                yield state
            finally:
                await service.close()

    app.router.lifespan_context = lifespan
    app.state.events = service
