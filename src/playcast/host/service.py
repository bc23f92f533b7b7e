"""`playcast host`: one machine's host — its slot pool, the agent that serves it, kept joined to a remote control
plane — from Settings, until stopped; the host id is kept in the data directory.

Assembly and lifetime only: slots are pool.py's, the protocol agent.py's, reconnecting remote.py's."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from playcast import __version__
from playcast.archives.extract import Limits
from playcast.config import Settings
from playcast.host.agent import HostAgent, HostIdentity
from playcast.host.content import ContentCache
from playcast.host.hls_endpoint import HlsEndpoint, serve_hls_endpoint
from playcast.host.pool import LocalHostPool
from playcast.host.remote import keep_joined
from playcast.host.runtime import RuntimeOptions
from playcast.hostproto.messages import Welcome
from playcast.media.encoding import choose_encoder, codec_usable
from playcast.media.ice import IceSettings, parse_ice_servers, resolve_public_address
from playcast.storage import Storage, open_storage
from playcast.storage.upload import ControlPlaneUploads

log = logging.getLogger(__name__)

HOST_ID_FILE = "host-id"
HOST_KEY_FILE = "host-key"


def _kept(path: Path, make: Callable[[], str], mode: int) -> str:
    """The value kept in `path`, or a new one from `make()` written there (atomically, with `mode`)."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = make()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        tmp.replace(path)
    return value


def host_id_of(data_dir: Path) -> str:
    """This host's id: kept in `<data dir>/host-id`, made on first start (`h-` and 16 hex digits)."""
    return _kept(data_dir / HOST_ID_FILE, lambda: "h-" + secrets.token_hex(8), 0o644)


def host_key_of(data_dir: Path) -> str:
    """This host's key: a secret kept in `<data dir>/host-key` (owner-only), made on first start. The control
    plane binds the host id to it; a copy of the data dir is the same host (keep it private)."""
    return _kept(data_dir / HOST_KEY_FILE, lambda: secrets.token_urlsafe(32), 0o600)


def make_pool(settings: Settings, host_id: str, *, remote: bool = False,
              content: ContentCache | None = None) -> LocalHostPool:
    """The slots of this machine. `remote` (`playcast host`): no recording storage until the control plane's
    welcome says where recordings go (see recordings_for); `content`: a remote host's cache of applications'
    archives (the embedded host launches the server's tree)."""
    recordings = None if remote else open_storage(settings.recording_storage or str(settings.data_dir / "recordings"))
    return LocalHostPool(settings.effective_location, settings.slots, RuntimeOptions(
        width=settings.width, height=settings.height, fps=settings.fps, bitrate_kbps=settings.bitrate_kbps,
        encoder=settings.encoder, ice=ice_settings(settings)), host_id=host_id, recordings=recordings, state_dir=settings.data_dir,
        content=content)


def ice_settings(settings: Settings) -> IceSettings:
    """The host's ICE: PLAYCAST_ICE_SERVERS and --public-address (resolved once, now). Raises ValueError."""
    servers = parse_ice_servers(settings.ice_servers) if settings.ice_servers else ()
    public_ip = resolve_public_address(settings.public_address) if settings.public_address else None
    return IceSettings(servers, public_ip)


def recordings_for(welcome: Welcome, server_url: str, token: str, host_id: str, host_key: str) -> Storage:
    """Where a remote host writes recordings: the control plane's s3:// storage itself, else uploads to the
    control plane (which writes them to its own storage): always where its /recordings serves them from."""
    if welcome.recordings is not None:
        return open_storage(welcome.recordings)
    return ControlPlaneUploads(server_url, token, host_id, host_key)


def address_towards(server_url: str) -> str:
    """This machine's address on the route to the control plane (what the server reaches it at; no packet sent)."""
    parts = urlsplit(server_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family[0], socket.SOCK_DGRAM) as probe:
        probe.connect(family[4])
        return str(probe.getsockname()[0])


async def run_host(settings: Settings, stop: asyncio.Event) -> None:
    """Serve this machine's slots to the control plane at settings.server_url until `stop` is set; then stop
    every session of it. Raises HostRefused when the control plane refuses the host's token."""
    if not settings.server_url or not settings.host_token:
        raise ValueError("a host needs --server URL and --token (or PLAYCAST_SERVER_URL / PLAYCAST_HOST_TOKEN)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    host_id = host_id_of(settings.data_dir)
    server_url, token = settings.server_url, settings.host_token
    content = ContentCache(settings.content_cache_dir, settings.server_url, settings.host_token,
                           Limits(settings.app_max_files, settings.app_max_bytes),
                           max_bytes=settings.content_cache_bytes)
    pool = make_pool(settings, host_id, remote=True, content=content)
    await pool.start()
    endpoint: HlsEndpoint | None = None
    try:
        address = await asyncio.to_thread(address_towards, server_url)
        endpoint = await serve_hls_endpoint(pool.hls_registry, bind=settings.media_bind, port=settings.media_port,
                                            address=address)
        encoder = await asyncio.to_thread(choose_encoder, settings.encoder, codec_usable)
        host_key = host_key_of(settings.data_dir)
        agent = HostAgent(pool, HostIdentity(host_id, token, settings.effective_location, __version__, encoder,
                                             public_address=settings.public_address, media_url=endpoint.url,
                                             media_key=endpoint.key, host_key=host_key))

        told: list[str | None] = []  # the welcome's recordings last applied (a reconnect usually says the same)

        def use_welcome(welcome: Welcome) -> None:
            if told != [welcome.recordings]:
                told[:] = [welcome.recordings]
                pool.recordings = recordings_for(welcome, server_url, token, host_id, host_key)

        agent.on_welcome = use_welcome
        joined = asyncio.ensure_future(keep_joined(agent, server_url, token))
        stopping = asyncio.ensure_future(stop.wait())
        log.info("host %s (%s, %d slots) joining %s", host_id, settings.effective_location, settings.slots,
                 settings.server_url)
        await asyncio.wait({joined, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (joined, stopping):
            task.cancel()
        if joined.done() and not joined.cancelled() and joined.exception() is not None:
            raise joined.exception()  # type: ignore[misc]
    finally:
        await pool.close()
        if endpoint is not None:
            await endpoint.close()
