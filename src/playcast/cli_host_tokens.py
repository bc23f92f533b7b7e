"""`playcast host-token create|list|revoke`: host tokens minted and revoked through a running server's admin API
(`/v1/hosts/tokens`), so that it works against any replica from anywhere.

A thin HTTP client of that API only: it never opens the database (the server owns the tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import typer

from playcast.config import Settings
from playcast.json_input import parse_json

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Mint, list and revoke the tokens `playcast host --token` presents.")

SERVER_HELP = "The server's URL (env PLAYCAST_SERVER_URL; default the data dir's endpoint, else http://127.0.0.1:8000)."
TOKEN_HELP = "The admin bearer token (env PLAYCAST_ADMIN_TOKEN; default admin_token of the data dir's credentials.json)."
DATA_HELP = "A server's data dir to read credentials.json from (env PLAYCAST_DATA_DIR, default ./.playcast)."


def _target(server: str | None, admin_token: str | None, data_dir: Path | None) -> tuple[str, str]:
    """(base URL, admin token) from the flags, the environment, or the data dir's credentials.json."""
    settings = Settings()
    stored: dict[str, Any] = {}
    path = (data_dir or settings.data_dir) / "credentials.json"
    try:
        stored = parse_json(path.read_text())
    except (OSError, ValueError):
        pass
    url = server or settings.server_url or stored.get("endpoint_url") or "http://127.0.0.1:8000"
    token = admin_token or settings.admin_token or stored.get("admin_token")
    if not token:
        raise typer.BadParameter(f"no admin token: pass --admin-token, set PLAYCAST_ADMIN_TOKEN, or --data-dir "
                                 f"of the server (no readable {path})", param_hint="--admin-token")
    return url.rstrip("/"), str(token)


def _call(method: str, url: str, token: str, json_body: dict[str, Any] | None = None) -> httpx.Response:
    try:
        r = httpx.request(method, url, json=json_body, timeout=30, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if r.status_code >= 400:
        try:
            message = parse_json(r.content)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:500]
        typer.echo(f"error: {r.status_code} {message}", err=True)
        raise typer.Exit(1)
    return r


@app.command()
def create(
    description: str = typer.Option("", help="What the token is for (shown by `list`)."),
    server: str = typer.Option(None, help=SERVER_HELP),
    admin_token: str = typer.Option(None, help=TOKEN_HELP),
    data_dir: Path = typer.Option(None, help=DATA_HELP),
) -> None:
    """Mint a host token; prints {"tokenId", "token"} (the secret is shown this once)."""
    url, token = _target(server, admin_token, data_dir)
    doc = parse_json(_call("POST", f"{url}/v1/hosts/tokens", token, {"description": description}).content)
    typer.echo(json.dumps({"tokenId": doc["tokenId"], "token": doc["token"]}))


@app.command("list")
def list_tokens(
    server: str = typer.Option(None, help=SERVER_HELP),
    admin_token: str = typer.Option(None, help=TOKEN_HELP),
    data_dir: Path = typer.Option(None, help=DATA_HELP),
) -> None:
    """One line per token: id, status, description (never the secret)."""
    url, token = _target(server, admin_token, data_dir)
    for item in parse_json(_call("GET", f"{url}/v1/hosts/tokens", token).content)["items"]:
        typer.echo(f"{item['tokenId']}\t{item.get('status', '')}\t{item.get('description', '')}")


@app.command()
def revoke(
    token_id: str = typer.Argument(..., help="The tokenId (ht-…) to revoke; hosts that joined with it leave."),
    server: str = typer.Option(None, help=SERVER_HELP),
    admin_token: str = typer.Option(None, help=TOKEN_HELP),
    data_dir: Path = typer.Option(None, help=DATA_HELP),
) -> None:
    """Revoke a host token."""
    url, token = _target(server, admin_token, data_dir)
    _call("DELETE", f"{url}/v1/hosts/tokens/{quote(token_id, safe='')}", token)
    typer.echo(f"revoked {token_id}")
