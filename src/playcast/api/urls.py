"""The base of the URLs the API hands out (broadcasts' WHEP/HLS/WHIP links, chat endpoints): PLAYCAST_PUBLIC_URL
when set, else the scheme, host and port the request itself came to, so a server bound to 0.0.0.0 never hands
out 0.0.0.0. A pure function of the request and the settings; no routes here."""

from __future__ import annotations

from starlette.requests import Request


def public_base(request: Request) -> str:
    public = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")
