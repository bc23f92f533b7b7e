"""Builds the whole playcast server the way `playcast up` and `playcast server` run it: credentials, recording
storage, the local host pool, the events service and every route, in one Starlette app.

Wiring only: it parses no flags and serves nothing (cli.py runs uvicorn; tests run the same app in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from playcast import __version__
from playcast.api.hls import HlsOrigin, HlsOriginCounts, hls_routes
from playcast.api.recordings import recording_routes, recording_upload_routes
from playcast.config import Settings, is_loopback
from playcast.control.fleet import Fleet
from playcast.control.login_tokens import LoginTokens
from playcast.credentials import Credentials, load_or_create
from playcast.events.service import EventsService
from playcast.events.wiring import EventsSettings, attach, create_events_service
from playcast.host.agent import HostAgent, HostIdentity
from playcast.host.pool import LocalHostPool
from playcast.host.service import host_key_of, make_pool
from playcast.hostproto.channel import MemoryChannel
from playcast.hostproto.messages import Hello
from playcast.media.encoding import choose_encoder, codec_usable
from playcast.server import build_app
from playcast.store.db import open_database
from playcast.store.queries import get_or_create_secret
from playcast.web.routes import vendor_routes, web_routes

EMBEDDED_HOST_ID = "host-local"


@dataclass
class Assembly:
    """The app and what it was built from; close() stops the embedded host (the app's lifespan stops the rest)."""

    app: Starlette
    fleet: Fleet  # the control plane's HostPool
    pool: LocalHostPool  # the embedded host's slots (none with --slots 0), served to the fleet by an agent
    events: EventsService
    credentials: Credentials
    credentials_path: Path
    login_tokens: LoginTokens
    origin: HlsOrigin  # the LL-HLS origin (its relay to remote hosts' endpoints holds connections)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        await self.fleet.close()
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
        await self.pool.close()
        await self.origin.close()


HostTokenCheck = Callable[[str], Awaitable[str | None]]  # None: the token may join; else why not


def make_fleet(embedded_token: str, host_tokens: HostTokenCheck, *, lost_after_s: float,
               recordings_url: str | None = None) -> Fleet:
    """The control plane's Fleet: the embedded host joins with `embedded_token` (made at each start, never
    stored), every other host with a token minted through /v1/hosts/tokens. `recordings_url`: an s3:// recording
    storage that remote hosts write to themselves (else they upload to this server)."""

    async def authorize(hello: Hello) -> str | None:
        if hmac.compare_digest(hello.token.encode(), embedded_token.encode()):
            return None
        return await host_tokens(hello.token)

    return Fleet(authorize, lost_after_s=lost_after_s, recordings_url=recordings_url)


async def join_embedded(fleet: Fleet, pool: LocalHostPool, token: str, *, encoder_preference: str,
                        host_key: str | None = None) -> list[asyncio.Task[None]]:
    """Join `pool` to `fleet` through a HostAgent over an in-memory channel: every message between the control
    plane and this host goes through the host protocol's wire format, as with a host on another machine."""
    encoder = await asyncio.to_thread(choose_encoder, encoder_preference, codec_usable)
    agent = HostAgent(pool, HostIdentity(pool.host_id, token, pool.location, __version__, encoder,
                                         host_key=host_key))
    host_end, server_end = MemoryChannel.pair()
    tasks = [asyncio.ensure_future(fleet.serve(server_end, shares_disk=True)),
             asyncio.ensure_future(agent.serve(host_end))]
    await fleet.wait_for_host(pool.host_id, 10)
    return tasks


async def _kept_admin_token(settings: Settings, first: str) -> str:
    """The admin token the database keeps (this data dir's `first` when the database has none yet)."""
    db = await open_database(settings.database)
    try:
        return await get_or_create_secret(db.sessionmaker, "admin-token", first)
    finally:
        await db.close()


async def assemble(settings: Settings) -> Assembly:
    """Load or make the data dir's credentials (and write credentials.json), start the embedded host with
    `settings.slots` slots (none when 0) joined to the Fleet, and build the app with every route, the endpoint
    remote hosts dial included. `settings.port` must be final: URLs use it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    creds = load_or_create(settings)
    if settings.admin_token is None:  # one admin token for every replica of this database
        creds.admin_token = await _kept_admin_token(settings, creds.admin_token)
    settings.access_key_id = creds.aws_access_key_id
    settings.secret_access_key = creds.aws_secret_access_key
    creds_path = creds.write(settings.data_dir)
    if settings.metrics_token is None and not is_loopback(settings.bind_host):
        settings.metrics_token = creds.metrics_token  # /metrics lists every live broadcast and session

    pool = make_pool(settings, EMBEDDED_HOST_ID)
    recordings = pool.recordings
    assert recordings is not None
    built: list[Starlette] = []

    async def host_tokens(token: str) -> str | None:
        plane = getattr(built[0].state, "plane", None) if built else None
        return "the control plane is still starting" if plane is None else await plane.host_tokens.check(token)

    embedded_token = secrets.token_urlsafe(24)
    storage_url = settings.recording_storage or ""
    fleet = make_fleet(embedded_token, host_tokens, lost_after_s=settings.host_lost_after_s,
                       recordings_url=storage_url if storage_url.startswith("s3://") else None)
    tasks: list[asyncio.Task[None]] = []
    try:
        if settings.slots > 0:  # `playcast server` may run no host of its own
            await pool.start()
            tasks = await join_embedded(fleet, pool, embedded_token, encoder_preference=settings.encoder,
                                        host_key=host_key_of(settings.data_dir))
        events = create_events_service(creds.events_api_key, EventsSettings(
            settings.redis_url, settings.events_secret, settings.events_keepalive_s))
        login_tokens = LoginTokens()
        hls_counts = HlsOriginCounts()
        origin = HlsOrigin(pool.hls_registry, counts=hls_counts)
        app = build_app(settings, fleet, admin_token=creds.admin_token, login_tokens=login_tokens,
                        extra_routes=[*events.routes(), *vendor_routes(), *web_routes(),
                                      *hls_routes(pool.hls_registry, origin=origin),
                                      *recording_routes(recordings), *recording_upload_routes(recordings)])
        built.append(app)
        attach(app, events)
        app.state.metrics.watch(events=events, hls=hls_counts)
    except BaseException:
        for task in tasks:
            task.cancel()
        await pool.close()
        raise
    return Assembly(app, fleet, pool, events, creds, creds_path, login_tokens, origin, tasks)
