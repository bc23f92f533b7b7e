"""Settings for the server and host, from flags and environment, with embedded defaults.

Plain dataclass; no I/O besides reading the environment."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """Everything `playcast up` / `playcast server` / `playcast host` can be told."""

    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("PLAYCAST_DATA_DIR", "./.playcast")))
    bind_host: str = field(default_factory=lambda: os.environ.get("PLAYCAST_BIND", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("PLAYCAST_PORT", 8000))
    public_url: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_PUBLIC_URL") or None)
    region: str = field(default_factory=lambda: os.environ.get("PLAYCAST_REGION", "local"))
    account_id: str = field(default_factory=lambda: os.environ.get("PLAYCAST_ACCOUNT_ID", "000000000000"))
    access_key_id: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_ACCESS_KEY_ID") or None)
    secret_access_key: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_SECRET_ACCESS_KEY") or None)
    database_url: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_DATABASE_URL") or None)
    # host side
    slots: int = field(default_factory=lambda: _env_int("PLAYCAST_SLOTS", 2))
    location: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_LOCATION") or None)
    width: int = field(default_factory=lambda: _env_int("PLAYCAST_WIDTH", 1280))
    height: int = field(default_factory=lambda: _env_int("PLAYCAST_HEIGHT", 720))
    fps: int = field(default_factory=lambda: _env_int("PLAYCAST_FPS", 60))
    bitrate_kbps: int = field(default_factory=lambda: _env_int("PLAYCAST_BITRATE_KBPS", 6000))
    encoder: str = field(default_factory=lambda: os.environ.get("PLAYCAST_ENCODER", "auto"))
    recording_storage: str | None = field(
        default_factory=lambda: os.environ.get("PLAYCAST_RECORDING_STORAGE") or None)  # path, file:// or s3://
    # GET /metrics needs `Authorization: Bearer <token>` when set; unset, it is open on loopback, and beyond loopback
    # `playcast up`/`server` set it from credentials.json (generated there once)
    metrics_token: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_METRICS_TOKEN") or None)
    # control plane timeouts
    idle_timeout_s: int = field(default_factory=lambda: _env_int("PLAYCAST_IDLE_TIMEOUT_S", 3600))
    placement_timeout_s: int = field(default_factory=lambda: _env_int("PLAYCAST_PLACEMENT_TIMEOUT_S", 75))

    @property
    def effective_location(self) -> str:
        return self.location or self.region

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'playcast.db').resolve()}"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.bind_host}:{self.port}"
