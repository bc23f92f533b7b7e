"""`playcast host`: one machine's host — its slot pool, the agent that serves it, kept joined to a remote control
plane — from Settings, until stopped; the host id is kept in the data directory.

Assembly and lifetime only: slots are pool.py's, the protocol agent.py's, reconnecting remote.py's."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from playcast import __version__
from playcast.archives.extract import Limits
from playcast.config import Settings
from playcast.host.agent import HostAgent, HostIdentity
from playcast.host.content import ContentCache
from playcast.host.pool import LocalHostPool
from playcast.host.remote import keep_joined
from playcast.host.runtime import RuntimeOptions
from playcast.media.encoding import choose_encoder, codec_usable
from playcast.storage import open_storage

log = logging.getLogger(__name__)

HOST_ID_FILE = "host-id"
HOST_KEY_FILE = "host-key"


def host_id_of(data_dir: Path) -> str:
    """This host's id: kept in `<data dir>/host-id`, made on first start (`h-` and 16 hex digits)."""
    path = data_dir / HOST_ID_FILE
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        data_dir.mkdir(parents=True, exist_ok=True)
        value = "h-" + secrets.token_hex(8)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        tmp.replace(path)
    return value


def host_key_of(data_dir: Path) -> str:
    """This host's key: a secret kept in `<data dir>/host-key` (owner-only), made on first start. The control
    plane binds the host id to it; a copy of the data dir is the same host (keep it private)."""
    path = data_dir / HOST_KEY_FILE
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        tmp.replace(path)
    return value


def make_pool(settings: Settings, host_id: str, content: ContentCache | None = None) -> LocalHostPool:
    """`content`: a remote host's cache of applications' archives (the embedded host launches the server's tree)."""
    recordings = open_storage(settings.recording_storage or str(settings.data_dir / "recordings"))
    return LocalHostPool(settings.effective_location, settings.slots, RuntimeOptions(
        width=settings.width, height=settings.height, fps=settings.fps, bitrate_kbps=settings.bitrate_kbps,
        encoder=settings.encoder), host_id=host_id, recordings=recordings, state_dir=settings.data_dir,
        content=content)


async def run_host(settings: Settings, stop: asyncio.Event) -> None:
    """Serve this machine's slots to the control plane at settings.server_url until `stop` is set; then stop
    every session of it. Raises HostRefused when the control plane refuses the host's token."""
    if not settings.server_url or not settings.host_token:
        raise ValueError("a host needs --server URL and --token (or PLAYCAST_SERVER_URL / PLAYCAST_HOST_TOKEN)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    host_id = host_id_of(settings.data_dir)
    content = ContentCache(settings.content_cache_dir, settings.server_url, settings.host_token,
                           Limits(settings.app_max_files, settings.app_max_bytes))
    pool = make_pool(settings, host_id, content)
    await pool.start()
    try:
        encoder = await asyncio.to_thread(choose_encoder, settings.encoder, codec_usable)
        agent = HostAgent(pool, HostIdentity(host_id, settings.host_token, settings.effective_location,
                                             __version__, encoder, public_address=settings.public_address,
                                             host_key=host_key_of(settings.data_dir)))
        joined = asyncio.ensure_future(keep_joined(agent, settings.server_url, settings.host_token))
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
