"""Settings for the server and host, from flags and environment, with embedded defaults.

Plain dataclass; no I/O besides reading the environment."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

DEMO_APP_DIR = Path(__file__).parent / "demo" / "app"  # the bundled demo game, always an allowed source root


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_paths(name: str) -> list[Path]:
    """An os.pathsep-separated list of absolute directories (empty entries skipped)."""
    paths = [Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p]
    relative = [str(p) for p in paths if not p.is_absolute()]
    if relative:
        raise ValueError(f"{name} must list absolute directories, got {', '.join(relative)}")
    return paths


def _env_names(name: str) -> list[str]:
    """A comma-separated list of names (blanks skipped)."""
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]


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
    # Redis shared by replicas: events between them, and requests for a host routed to the replica holding it
    redis_url: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_REDIS_URL") or None)
    # events: the user-token signing secret (hex, >= 32 bytes; unset: kept in the database) and the `ka` interval
    events_secret: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_EVENTS_SECRET") or None)
    events_keepalive_s: float = field(
        default_factory=lambda: float(os.environ.get("PLAYCAST_EVENTS_KEEPALIVE_S") or 60))
    # host side
    slots: int = field(default_factory=lambda: _env_int("PLAYCAST_SLOTS", 2))
    location: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_LOCATION") or None)
    width: int = field(default_factory=lambda: _env_int("PLAYCAST_WIDTH", 1280))
    height: int = field(default_factory=lambda: _env_int("PLAYCAST_HEIGHT", 720))
    fps: int = field(default_factory=lambda: _env_int("PLAYCAST_FPS", 60))
    bitrate_kbps: int = field(default_factory=lambda: _env_int("PLAYCAST_BITRATE_KBPS", 6000))
    encoder: str = field(default_factory=lambda: os.environ.get("PLAYCAST_ENCODER", "auto"))
    server_url: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_SERVER_URL") or None)  # `host`
    host_token: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_HOST_TOKEN") or None)
    public_address: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_PUBLIC_ADDRESS") or None)
    # the host's STUN/TURN servers, as RTCConfiguration.iceServers JSON (unset: host candidates only)
    ice_servers: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_ICE_SERVERS") or None)
    # `host`: its LL-HLS endpoint, which the control plane's origin relays (0: any free port)
    media_bind: str = field(default_factory=lambda: os.environ.get("PLAYCAST_MEDIA_BIND", "0.0.0.0"))
    media_port: int = field(default_factory=lambda: _env_int("PLAYCAST_MEDIA_PORT", 0))
    recording_storage: str | None = field(
        default_factory=lambda: os.environ.get("PLAYCAST_RECORDING_STORAGE") or None)  # path, file:// or s3://
    # GET /metrics needs `Authorization: Bearer <token>` when set; unset, it is open on loopback, and beyond loopback
    # `playcast up`/`server` set it from credentials.json (generated there once)
    metrics_token: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_METRICS_TOKEN") or None)
    # the admin bearer token; unset: generated once and kept in the database (every replica reads the same one)
    admin_token: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_ADMIN_TOKEN") or None)
    # where ApplicationSourceUri may point, besides uploads_dir and the demo (CLI: --app-source-root)
    app_source_roots: list[Path] = field(default_factory=lambda: _env_paths("PLAYCAST_APP_SOURCE_ROOTS"))
    # what one application may unpack to (zip-bomb bounds)
    app_max_files: int = field(default_factory=lambda: _env_int("PLAYCAST_APP_MAX_FILES", 200_000))
    app_max_bytes: int = field(default_factory=lambda: _env_int("PLAYCAST_APP_MAX_BYTES", 50 << 30))
    # a host's content cache keeps unpacked applications up to this many bytes (least recently used go first)
    content_cache_bytes: int = field(default_factory=lambda: _env_int("PLAYCAST_CONTENT_CACHE_BYTES", 20 << 30))
    # application content: where the server keeps each application's archive (path, file:// or s3://bucket/prefix;
    # default <data dir>/archives); hosts fetch them from the server into <data dir>/content/<sha256>/
    content_storage: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_CONTENT_STORAGE") or None)
    # S3 (ApplicationSourceUri, ApplicationLogOutputUri, ExportStreamSessionFiles, s3:// storage): the endpoint of
    # an S3-compatible service (unset: AWS) and its region; credentials come from the standard AWS environment
    s3_endpoint_url: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_S3_ENDPOINT_URL") or None)
    s3_region: str | None = field(default_factory=lambda: os.environ.get("PLAYCAST_S3_REGION") or None)
    # buckets ApplicationSourceUri may read (s3://bucket/...) and buckets logs and exports may be written to; "*"
    # allows any bucket the credentials reach
    app_source_buckets: list[str] = field(default_factory=lambda: _env_names("PLAYCAST_APP_SOURCE_BUCKETS"))
    output_buckets: list[str] = field(default_factory=lambda: _env_names("PLAYCAST_OUTPUT_BUCKETS"))
    # control plane timeouts
    idle_timeout_s: int = field(default_factory=lambda: _env_int("PLAYCAST_IDLE_TIMEOUT_S", 3600))
    placement_timeout_s: int = field(default_factory=lambda: _env_int("PLAYCAST_PLACEMENT_TIMEOUT_S", 75))
    # the fleet: a host heard from for this long by neither a frame nor a reconnect is lost (its sessions end);
    # after a restart, sessions wait this long for their hosts to dial back
    host_lost_after_s: float = field(default_factory=lambda: float(os.environ.get("PLAYCAST_HOST_LOST_AFTER_S") or 8))
    host_rejoin_s: float = field(default_factory=lambda: float(os.environ.get("PLAYCAST_HOST_REJOIN_S") or 30))
    # the capacity signal (playcast_location_slots_wanted) counts sessions refused for want of a slot this long
    capacity_window_s: float = field(
        default_factory=lambda: min(3600.0, float(os.environ.get("PLAYCAST_CAPACITY_WINDOW_S") or 300)))

    @property
    def effective_location(self) -> str:
        return self.location or self.region

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded application content lands; always an allowed source root."""
        return self.data_dir / "uploads"

    @property
    def source_roots(self) -> list[Path]:
        """Every directory ApplicationSourceUri may point into: the configured roots, uploads and the demo."""
        return [*self.app_source_roots, self.uploads_dir, DEMO_APP_DIR]

    @property
    def content_storage_url(self) -> str:
        return self.content_storage or str(self.data_dir / "archives")

    @property
    def content_cache_dir(self) -> Path:
        """A host's content cache: one unpacked tree per archive digest."""
        return self.data_dir / "content"

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'playcast.db').resolve()}"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.bind_host}:{self.port}"
