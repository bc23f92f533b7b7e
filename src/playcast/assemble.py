"""Builds the whole playcast server the way `playcast up` and `playcast server` run it: credentials, recording
storage, the local host pool, the events service and every route, in one Starlette app.

Wiring only: it parses no flags and serves nothing (cli.py runs uvicorn; tests run the same app in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from playcast import __version__
from playcast.api.hls import HlsOriginCounts, hls_routes
from playcast.api.player import LoginTokens
from playcast.api.recordings import recording_routes
from playcast.config import Settings, is_loopback
from playcast.control.fleet import Fleet
from playcast.credentials import Credentials, load_or_create
from playcast.events.service import EventsService
from playcast.events.wiring import attach, create_events_service
from playcast.host.agent import HostAgent, HostIdentity
from playcast.host.pool import LocalHostPool
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto.channel import MemoryChannel
from playcast.hostproto.messages import Hello
from playcast.media.encoding import choose_encoder, codec_usable
from playcast.server import build_app
from playcast.storage import open_storage
from playcast.web.routes import vendor_routes, web_routes


@dataclass
class Assembly:
    """The app and what it was built from; close() stops the embedded host (the app's lifespan stops the rest)."""

    app: Starlette
    fleet: Fleet  # the control plane's HostPool
    pool: LocalHostPool  # the embedded host's slots, served to the fleet by an agent over an in-memory channel
    events: EventsService
    credentials: Credentials
    credentials_path: Path
    login_tokens: LoginTokens
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        await self.fleet.close()
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
        await self.pool.close()


async def embedded_host(pool: LocalHostPool, *, encoder_preference: str) -> tuple[Fleet, list[asyncio.Task[None]]]:
    """A Fleet with `pool` joined to it by a HostAgent over an in-memory channel: every message between the
    control plane and the host goes through the host protocol's wire format, as with a host on another machine."""
    token = secrets.token_urlsafe(24)

    async def authorize(hello: Hello) -> str | None:
        return None if hmac.compare_digest(hello.token.encode(), token.encode()) else "wrong host token"

    fleet = Fleet(authorize)
    encoder = await asyncio.to_thread(choose_encoder, encoder_preference, codec_usable)
    agent = HostAgent(pool, HostIdentity(pool.host_id, token, pool.location, __version__, encoder))
    host_end, server_end = MemoryChannel.pair()
    tasks = [asyncio.ensure_future(fleet.serve(server_end)), asyncio.ensure_future(agent.serve(host_end))]
    await fleet.wait_for_host(pool.host_id, 10)
    return fleet, tasks


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
        bitrate_kbps=settings.bitrate_kbps, encoder=settings.encoder), recordings=recordings)
    await pool.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        fleet, tasks = await embedded_host(pool, encoder_preference=settings.encoder)
        events = create_events_service(creds.events_api_key)
        login_tokens = LoginTokens()
        hls_counts = HlsOriginCounts()
        app = build_app(settings, fleet, admin_token=creds.admin_token, login_tokens=login_tokens,
                        extra_routes=[*events.routes(), *vendor_routes(), *web_routes(),
                                      *hls_routes(pool.hls_registry, hls_counts),
                                      *recording_routes(recordings)])
        attach(app, events)
        app.state.metrics.watch(events=events, hls=hls_counts)
    except BaseException:
        for task in tasks:
            task.cancel()
        await pool.close()
        raise
    return Assembly(app, fleet, pool, events, creds, creds_path, login_tokens, tasks)
