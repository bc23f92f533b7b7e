"""Routes that serve the static web files: /sdk/*, /static/*, the player page /play, the viewer page /watch/<id>,
and hls.js from node_modules (/static/vendor/hls.js).

Files only: no session logic here (the page talks to /v1/play/* like any other client)."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent


class _NoCacheStatic(StaticFiles):
    """Static files revalidated on every load, so a new SDK is picked up after an upgrade."""

    async def get_response(self, path: str, scope) -> Response:  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


async def _player(request: Request) -> Response:
    return FileResponse(WEB_DIR / "player.html", headers={"Cache-Control": "no-cache"})


async def _viewer(request: Request) -> Response:
    return FileResponse(WEB_DIR / "viewer.html", headers={"Cache-Control": "no-cache"})


async def _openapi(request: Request) -> Response:
    return FileResponse(WEB_DIR / "openapi.yaml", media_type="application/yaml", headers={"Cache-Control": "no-cache"})


async def _root(request: Request) -> Response:
    return RedirectResponse("/play", status_code=307)


def web_routes() -> list[BaseRoute]:
    return [
        Route("/", _root, methods=["GET"]),
        Route("/play", _player, methods=["GET"]),
        Route("/openapi.yaml", _openapi, methods=["GET"]),
        Route("/watch/{stream_session_id}", _viewer, methods=["GET"]),
        Mount("/sdk", app=_NoCacheStatic(directory=WEB_DIR / "sdk"), name="sdk"),
        Mount("/static", app=_NoCacheStatic(directory=WEB_DIR / "static"), name="static"),
    ]


def hlsjs_path() -> Path | None:
    """dist/hls.min.js from node_modules (./dev install runs npm ci); $PLAYCAST_NODE_MODULES overrides."""
    candidates = []
    env = os.environ.get("PLAYCAST_NODE_MODULES")
    if env:
        candidates.append(Path(env))
    here = Path(__file__).resolve()
    candidates.extend(parent / "node_modules" for parent in here.parents)
    candidates.append(Path.cwd() / "node_modules")
    for base in candidates:
        path = base / "hls.js" / "dist" / "hls.min.js"
        if path.is_file():
            return path
    return None


async def _hlsjs(request: Request) -> Response:
    path = hlsjs_path()
    if path is None:
        return PlainTextResponse("hls.js is not installed (run ./dev install, which runs npm ci)", 404)
    return FileResponse(path, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"})


def vendor_routes() -> list[BaseRoute]:
    """`/static/vendor/hls.js` served from node_modules: put it before any `/static` mount."""
    return [Route("/static/vendor/hls.js", _hlsjs, methods=["GET", "HEAD"])]
