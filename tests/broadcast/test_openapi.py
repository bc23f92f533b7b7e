"""The OpenAPI spec of the first-party API parses, and every path it documents is served by the app."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from starlette.routing import Mount, Route

from playcast.api.broadcasts import BroadcastApi
from playcast.api.chat import ChatApi
from playcast.api.player import PlayerApi
from playcast.api.whep import whep_routes
from playcast.api.whip import whip_routes
from playcast.control.login_tokens import LoginTokens

SPEC = Path(__file__).resolve().parents[2] / "src" / "playcast" / "web" / "openapi.yaml"


def test_spec_paths_exist_in_the_app() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.")
    routes = [*PlayerApi("x", LoginTokens()).routes(), *BroadcastApi("x").routes(), *whep_routes(),
              *whip_routes(), *ChatApi("x").routes()]
    served: dict[str, set[str]] = {}
    for r in routes:
        if isinstance(r, Route):
            served.setdefault(re.sub(r"\{(\w+)\}", "{}", r.path), set()).update(m.lower() for m in r.methods or ())
        assert not isinstance(r, Mount)
    for path, ops in spec["paths"].items():
        if path in ("/healthz", "/login"):
            continue
        key = re.sub(r"\{(\w+)\}", "{}", path)
        assert key in served, f"{path} is documented but not served"
        for method in ops:
            if method != "parameters":
                assert method in served[key], f"{method.upper()} {path} is documented but not served"
