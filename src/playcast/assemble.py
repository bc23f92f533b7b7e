"""Builds the whole playcast server the way `playcast up` and `playcast server` run it: credentials, recording
storage, the local host pool, the events service and every route, in one Starlette app.

Wiring only: it parses no flags and serves nothing (cli.py runs uvicorn; tests run the same app in a thread)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette

from playcast.api.hls import HlsOriginCounts, hls_routes
from playcast.api.player import LoginTokens
from playcast.api.recordings import recording_routes
from playcast.config import Settings, is_loopback
from playcast.credentials import Credentials, load_or_create
from playcast.events.service import EventsService
from playcast.events.wiring import attach, create_events_service
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.server import build_app
from playcast.storage import open_storage
from playcast.web.routes import vendor_routes, web_routes


@dataclass
class Assembly:
    """The app and what it was built from; close() stops the host pool (the app's lifespan stops the rest)."""

    app: Starlette
    pool: LocalHostPool
    events: EventsService
    credentials: Credentials
    credentials_path: Path
    login_tokens: LoginTokens

    async def close(self) -> None:
        await self.pool.close()


async def assemble(settings: Settings) -> Assembly:
    """Load or make the data dir's credentials (and write credentials.json), start the local host pool with
    `settings.slots` slots, and build the app with every route. `settings.port` must be final: URLs use it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    creds = load_or_create(settings)
    settings.access_key_id = creds.aws_access_key_id
    settings.secret_access_key = creds.aws_secret_access_key
    creds_path = creds.write(settings.data_dir)
    if settings.metrics_token is None and not is_loopback(settings.bind_host):
        settings.metrics_token = creds.metrics_token  # /metrics lists every live broadcast and session

    recordings = open_storage(settings.recording_storage or str(settings.data_dir / "recordings"))
    pool = LocalHostPool(settings.effective_location, settings.slots, RuntimeOptions(
        width=settings.width, height=settings.height, fps=settings.fps,
        bitrate_kbps=settings.bitrate_kbps, encoder=settings.encoder), recordings=recordings,
        state_dir=settings.data_dir)
    await pool.start()
    try:
        events = create_events_service(creds.events_api_key)
        login_tokens = LoginTokens()
        hls_counts = HlsOriginCounts()
        app = build_app(settings, pool, admin_token=creds.admin_token, login_tokens=login_tokens,
                        extra_routes=[*events.routes(), *vendor_routes(), *web_routes(),
                                      *hls_routes(pool.hls_registry, hls_counts),
                                      *recording_routes(recordings)])
        attach(app, events)
        app.state.metrics.watch(events=events, hls=hls_counts)
    except BaseException:
        await pool.close()
        raise
    return Assembly(app, pool, events, creds, creds_path, login_tokens)
