"""API credentials for one data directory: load, generate, and write `credentials.json`.

Fixed keys come from PLAYCAST_ACCESS_KEY_ID / PLAYCAST_SECRET_ACCESS_KEY (and PLAYCAST_EVENTS_API_KEY for the
events API, PLAYCAST_METRICS_TOKEN for /metrics); otherwise the keys already in the data directory are kept, so
restarts do not break clients; otherwise new ones are made. No HTTP here."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path

from playcast.config import Settings, is_loopback
from playcast.json_input import parse_json

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_EVENTS_KEY_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class Credentials:
    endpoint_url: str
    aws_access_key_id: str
    aws_secret_access_key: str
    region_name: str
    admin_token: str
    events_api_key: str = ""  # x-api-key of the AppSync Events-compatible API
    events_http_url: str = ""  # POST <base>/event
    events_realtime_url: str = ""  # ws://<host:port>/event/realtime
    # Bearer token of GET /metrics, made the first time the server listens beyond loopback; "" until then
    metrics_token: str = ""

    def write(self, data_dir: Path) -> Path:
        """Write credentials.json readable by the owner only."""
        path = data_dir / "credentials.json"
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
        return path


def load_or_create(settings: Settings) -> Credentials:
    previous: dict[str, str] = {}
    path = settings.data_dir / "credentials.json"
    if path.exists():
        try:
            previous = parse_json(path.read_text())
        except (OSError, ValueError):
            previous = {}
    key_id = settings.access_key_id or previous.get("aws_access_key_id") or (
        "PCAK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)))
    secret = settings.secret_access_key or (
        previous.get("aws_secret_access_key") if previous.get("aws_access_key_id") == key_id else None
    ) or secrets.token_urlsafe(30)[:40]
    admin = settings.admin_token or previous.get("admin_token") or secrets.token_urlsafe(32)
    events_key = os.environ.get("PLAYCAST_EVENTS_API_KEY") or previous.get("events_api_key") or (
        "da2-" + "".join(secrets.choice(_EVENTS_KEY_ALPHABET) for _ in range(26)))
    metrics = settings.metrics_token or previous.get("metrics_token") or (
        "" if is_loopback(settings.bind_host) else secrets.token_urlsafe(32))
    base = settings.base_url.rstrip("/")
    scheme, sep, rest = base.partition("://")
    realtime = (("wss" if scheme == "https" else "ws") + "://" + rest if sep else base) + "/event/realtime"
    return Credentials(
        endpoint_url=settings.base_url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=settings.region,
        admin_token=admin,
        events_api_key=events_key,
        events_http_url=base + "/event",
        events_realtime_url=realtime,
        metrics_token=metrics,
    )
