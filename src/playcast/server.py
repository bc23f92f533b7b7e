"""Assembles the HTTP server: the GameLift Streams API, /v1/play, /login, /healthz and extra routes.

Wiring and lifespan only (database, control plane, timers); each part's logic lives in its own package."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from playcast.control.host_pool import HostPool

from .api.auth import CookieSigner, bearer_token
from .api.aws.app import AwsApi
from .api.aws.model import root_segments
from .api.broadcasts import BroadcastApi
from .api.chat import ChatApi
from .api.hosts import HostsApi
from .api.player import PlayerApi
from .api.whep import whep_routes
from .api.whip import whip_routes
from .config import Settings, is_loopback
from .control.chat_bridge import start_chat
from .control.login_tokens import LoginTokens
from .control.plane import ControlPlane
from .metrics import CONTENT_TYPE, Metrics
from .request_body import BodyLimitMiddleware
from .store.db import open_database
from .store.queries import get_or_create_secret

log = logging.getLogger(__name__)


HEALTH_PING_S = 2.0


async def _healthy(app: Starlette, host_pool: HostPool) -> tuple[bool, str]:
    """Ready to serve when the database answers and, with several replicas, Redis is reachable; hosts come and go
    and are reported (here and in /v1/hosts), they do not make a replica unhealthy (a load balancer must not drop a
    replica that has no host of its own)."""
    db = getattr(app.state, "db", None)
    if db is None or not db.is_open:
        return False, "database not open"
    try:
        await asyncio.wait_for(db.ping(), HEALTH_PING_S)
    except Exception as exc:  # noqa: BLE001 - unreachable, timed out, refused: all unhealthy
        return False, f"database unreachable: {type(exc).__name__}: {str(exc)[:200]}"
    plane = getattr(app.state, "plane", None)
    peers = getattr(plane, "fleet_peers", None)
    if peers is not None and not peers.calls.reachable:
        return False, "redis unreachable (requests for other replicas' hosts cannot be routed)"
    try:
        slots = sum(host_pool.capacity(loc).total_slots for loc in host_pool.locations())
    except Exception as exc:  # noqa: BLE001
        return True, f"ok (host pool error: {exc})"
    return True, f"ok ({slots} host slots)"


def _metrics_endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """`GET /metrics`: only with `Authorization: Bearer <settings.metrics_token>` when that is set, which it must be
    unless the server listens on loopback only (it lists every live broadcast and session id)."""
    token = settings.metrics_token
    if token is None and not is_loopback(settings.bind_host):
        raise ValueError(f"GET /metrics would be open on {settings.bind_host}: set settings.metrics_token "
                         "(playcast up and playcast server take it from PLAYCAST_METRICS_TOKEN or credentials.json)")

    async def metrics(request: Request) -> Response:
        if token is not None:
            given = bearer_token(request)
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                return PlainTextResponse("metrics need Authorization: Bearer <PLAYCAST_METRICS_TOKEN>\n", 401,
                                         headers={"WWW-Authenticate": 'Bearer realm="playcast metrics"'})
        body = await request.app.state.metrics.render()
        return Response(body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    return metrics


def begin_shutdown(app: Starlette) -> None:
    """Call when the server stops taking requests, before it waits for those in flight: ends at once the work they
    may be waiting on (placements), so they answer now. The lifespan's shutdown then stops the rest in order."""
    plane = getattr(app.state, "plane", None)
    if plane is not None:
        plane.begin_stop()


def build_app(settings: Settings, host_pool: HostPool, *, admin_token: str, login_tokens: LoginTokens,
              extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The whole server as one Starlette app. The lifespan opens the database and runs the control plane; no
    request body larger than request_body.MAX_REQUEST_BODY_BYTES reaches a route."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = await open_database(settings.database)
        plane = ControlPlane(settings, host_pool, db)
        secret = await get_or_create_secret(db.sessionmaker, "cookie")
        app.state.cookie_signer = CookieSigner(bytes.fromhex(secret))
        login_tokens.attach(db, bytes.fromhex(await get_or_create_secret(db.sessionmaker, "login-token")))
        app.state.plane = plane
        app.state.db = db
        await plane.start()
        log.info("control plane started (region %s, location %s)", settings.region, settings.effective_location)
        chat = await start_chat(getattr(app.state, "events", None), db, host_pool)  # chat rooms + game bridge
        app.state.chat = chat.service if chat is not None else None
        try:
            yield
        finally:
            if chat is not None:
                await chat.close()
            await plane.stop()
            await db.close()
            log.info("control plane stopped")

    aws = AwsApi(settings, lambda: app.state.plane)
    player = PlayerApi(admin_token, login_tokens)

    async def healthz(request: Request) -> Response:
        ok, why = await _healthy(request.app, host_pool)
        return JSONResponse({"status": "ok" if ok else "unavailable", "detail": why}, status_code=200 if ok else 503)

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]),
                               Route("/metrics", _metrics_endpoint(settings), methods=["GET"])]
    for root in sorted(root_segments()):
        routes.append(Route(f"/{root}", aws, methods=None))
        routes.append(Route(f"/{root}/{{rest:path}}", aws, methods=None))
    routes.extend(player.routes())
    routes.extend(BroadcastApi(admin_token).routes())
    routes.extend(whip_routes())  # before whep_routes: /whep/{id}/cam is the stage's, not a viewer id
    routes.extend(whep_routes())
    routes.extend(ChatApi(admin_token).routes())
    routes.extend(HostsApi(admin_token).routes())  # hosts dial the control plane here; the admin sees them
    routes.extend(extra_routes)
    # every route, extra_routes (events, HLS, pages) included: no request body past the server-wide ceiling
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BodyLimitMiddleware)])
    app.state.settings = settings
    app.state.admin_token = admin_token
    app.state.login_tokens = login_tokens
    app.state.host_pool = host_pool
    app.state.metrics = Metrics(host_pool, lambda: getattr(app.state, "plane", None))
    return app
