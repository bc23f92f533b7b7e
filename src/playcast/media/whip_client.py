"""WHIP client (RFC 9725): publish one video (H.264 constrained baseline) and one audio (Opus) track to any WHIP
endpoint (Amazon IVS real-time stages, Cloudflare, LiveKit, MediaMTX, playcast's own ingest), and keep it there.

Handles redirects, Bearer auth, ICE-server Link headers, retries with capped exponential backoff and DELETE on stop.
It never encodes (tracks bring their own frames or packets) and never touches the tracks' other consumers."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

import httpx
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from playcast.media.h264_rtp import share_packetization
from playcast.media.ice import IceServer
from playcast.media.peer import EncodedVideoTrack, close_peer_connection

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
SDP = "application/sdp"

TrackSource = MediaStreamTrack | Callable[[], MediaStreamTrack]
"""A track used for every attempt, or a factory called once per attempt (its track is stopped after it)."""


class WhipState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"  # POSTing the offer / waiting for ICE+DTLS
    CONNECTED = "connected"  # media flowing to the endpoint
    RETRYING = "retrying"  # waiting out a backoff delay after a failure
    FAILED = "failed"  # gave up (too many client errors or attempts)
    STOPPED = "stopped"  # stop() was called


@dataclass(frozen=True)
class WhipStatus:
    state: WhipState = WhipState.IDLE
    attempts: int = 0  # POSTs tried so far
    last_error: str | None = None
    last_http_status: int | None = None
    connected_at: float | None = None  # unix time of the current connection
    next_retry_at: float | None = None  # unix time of the next attempt while RETRYING
    resource_url: str | None = None  # the WHIP session URL (Location) of the current connection


class WhipError(Exception):
    """One attempt failed. `permanent` errors (4xx other than 408/429) count toward `max_client_errors`."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits a random time in [d/2, d], d = min(cap, base*2^(n-1))."""

    base_s: float = 1.0
    cap_s: float = 30.0

    def ceiling(self, failures: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** max(0, failures - 1))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        d = self.ceiling(failures)
        return d / 2 + (rng or random).uniform(0, d / 2)


def parse_ice_server_links(values: list[str]) -> list[IceServer]:
    """ICE servers from `Link: <turn:...>; rel="ice-server"; username="u"; credential="p"` header values
    (RFC 9725 §4.6; several links per header, comma-separated, or several headers)."""
    servers: list[IceServer] = []
    for value in values:
        for link in _split_links(value):
            target, params = link
            if "ice-server" not in params.get("rel", "").split():
                continue
            if target.split(":", 1)[0].lower() not in ("stun", "stuns", "turn", "turns"):
                continue
            servers.append(IceServer(target, params.get("username"), params.get("credential")))
    return servers


def _split_links(value: str) -> list[tuple[str, dict[str, str]]]:
    """Parse an RFC 8288 Link header value into (target, {param: value}); tolerant of odd spacing."""
    links: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        start = value.find("<", i)
        if start < 0:
            break
        end = value.find(">", start)
        if end < 0:
            break
        target = value[start + 1:end].strip()
        params: dict[str, str] = {}
        i = end + 1
        while i < n:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                i += 1
                break
            if value[i] != ";":
                i += 1
                continue
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            eq = i
            while eq < n and value[eq] not in "=;,":
                eq += 1
            name = value[i:eq].strip().lower()
            i = eq
            param = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    i += 1
                    param = "".join(chars)
                else:
                    stop = i
                    while stop < n and value[stop] not in ";,":
                        stop += 1
                    param = value[i:stop].strip()
                    i = stop
            if name:
                params.setdefault(name, param)
        links.append((target, params))
    return links


def redact(url: str) -> str:
    """The URL without query or userinfo (tokens may be embedded there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


@dataclass
class _Attempt:
    pc: RTCPeerConnection
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    owned: list[MediaStreamTrack] = field(default_factory=list)  # made by a factory: stopped with the attempt
    resource_url: str | None = None
    etag: str | None = None
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class WhipClient:
    """Publishes `video` (+ `audio`) to `url`; reconnects until stop(). Start with `start()`, observe `status`."""

    def __init__(self, url: str, token: str | None, video: TrackSource, audio: TrackSource | None = None, *,
                 ice_servers: list[IceServer] | None = None, backoff: Backoff | None = None,
                 max_attempts: int | None = None, max_client_errors: int = 5, request_timeout_s: float = 10.0,
                 connect_timeout_s: float = 15.0, on_status: Callable[[WhipStatus], None] | None = None) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("a WHIP endpoint URL must be http:// or https://")
        self.url = url
        self.token = token
        self._video = video
        self._audio = audio
        self._ice_servers = list(ice_servers or [])
        self.learned_ice_servers: list[IceServer] = []  # from the endpoint's Link headers, used from the next attempt
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.max_client_errors = max_client_errors
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._on_status = on_status
        self._status = WhipStatus()
        self._task: asyncio.Task[None] | None = None
        self._attempt: _Attempt | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ public
    @property
    def status(self) -> WhipStatus:
        return self._status

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop publishing: DELETE the WHIP session (RFC 9725 §4.4), close the peer connection."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._end_attempt(delete=True)
        self._set(state=WhipState.STOPPED, next_retry_at=None, connected_at=None, resource_url=None)

    async def wait_for(self, *states: WhipState, timeout: float) -> WhipStatus:
        """Wait until the state is one of `states` (for callers and tests); raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while self._status.state not in states:
                self._changed.clear()
                await self._changed.wait()
        return self._status

    # ------------------------------------------------------------------ loop
    def _set(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]
        self._changed.set()
        if self._on_status is not None:
            try:
                self._on_status(self._status)
            except Exception:
                log.exception("WHIP status callback failed")

    async def _run(self) -> None:
        failures = 0
        client_errors = 0
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.request_timeout_s) as http:
            self._http = http
            while not self._stopping:
                self._set(state=WhipState.CONNECTING, attempts=self._status.attempts + 1, next_retry_at=None)
                retry_after: float | None = None
                try:
                    attempt = await self._connect(http)
                    failures = client_errors = 0
                    self._set(state=WhipState.CONNECTED, connected_at=time.time(), last_error=None,
                              resource_url=attempt.resource_url)
                    log.info("WHIP egress connected", extra={"endpoint": redact(self.url)})
                    await attempt.lost.wait()
                    error = f"connection lost ({attempt.pc.connectionState})"
                except WhipError as exc:
                    error, retry_after = str(exc), exc.retry_after
                    if exc.status is not None:
                        self._set(last_http_status=exc.status)
                    if exc.permanent:
                        client_errors += 1
                except httpx.TimeoutException:
                    error = f"endpoint did not answer within {self.request_timeout_s:g} s"
                except httpx.HTTPError as exc:
                    error = f"endpoint unreachable: {exc.__class__.__name__}: {exc}"
                except Exception as exc:  # a WebRTC-side surprise must not end the egress silently
                    log.exception("WHIP egress attempt failed unexpectedly")
                    error = f"{exc.__class__.__name__}: {exc}"
                await self._end_attempt(delete=True)
                failures += 1
                log.warning("WHIP egress attempt failed: %s", error, extra={"endpoint": redact(self.url)})
                out_of_attempts = self.max_attempts is not None and self._status.attempts >= self.max_attempts
                if client_errors >= self.max_client_errors or out_of_attempts:
                    self._set(state=WhipState.FAILED, last_error=error, connected_at=None, resource_url=None)
                    return
                delay = retry_after if retry_after is not None else self.backoff.delay(failures)
                delay = min(delay, self.backoff.cap_s)
                self._set(state=WhipState.RETRYING, last_error=error, connected_at=None, resource_url=None,
                          next_retry_at=time.time() + delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ one attempt
    def _track(self, source: TrackSource, attempt: _Attempt) -> MediaStreamTrack:
        if isinstance(source, MediaStreamTrack):
            return source
        track = source()
        attempt.owned.append(track)
        return track

    async def _connect(self, http: httpx.AsyncClient) -> _Attempt:
        servers = [s.to_aiortc() for s in (*self._ice_servers, *self.learned_ice_servers)]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        attempt = _Attempt(pc)
        self._attempt = attempt

        @pc.on("connectionstatechange")
        def _changed() -> None:
            if pc.connectionState in ("failed", "closed") and attempt is self._attempt:
                attempt.lost.set()

        video = self._track(self._video, attempt)
        video_tx = pc.addTransceiver(video, direction="sendonly")
        video_tx.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                      if c.mimeType in ("video/H264", "video/rtx")])
        if hasattr(video, "request_keyframe"):
            # A receiver's PLI/FIR reaches the track's own encoder (aiortc only knows its built-in ones).
            video_tx.sender._send_keyframe = lambda: video.request_keyframe("WHIP PLI/FIR")  # type: ignore[method-assign,attr-defined]
        if isinstance(video, EncodedVideoTrack):  # RTP payloads shared with the session's other senders
            share_packetization(video_tx.sender, lambda: video.current)
        if self._audio is not None:
            audio = self._track(self._audio, attempt)
            audio_tx = pc.addTransceiver(audio, direction="sendonly")
            audio_tx.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs
                                          if c.mimeType == "audio/opus"])
        # aiortc gathers every candidate here: the offer is complete, nothing to trickle.
        await pc.setLocalDescription(await pc.createOffer())
        response = await self._post(http, pc.localDescription.sdp)
        location = response.headers.get("location")
        if not location:
            raise WhipError(f"{response.status_code} without a Location header", status=response.status_code)
        attempt.resource_url = urljoin(str(response.url), location)
        attempt.etag = response.headers.get("etag")
        learned = parse_ice_server_links(response.headers.get_list("link"))
        if learned:
            self.learned_ice_servers = learned
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SDP or not response.text.lstrip().startswith("v=0"):
            raise WhipError(f"answer is not {SDP} (got {content_type or 'no content type'})")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        except Exception as exc:
            raise WhipError(f"answer rejected: {exc}") from None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                while pc.connectionState != "connected":
                    if attempt.lost.is_set():
                        raise WhipError(f"ICE/DTLS {pc.connectionState}")
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise WhipError(f"ICE/DTLS did not connect within {self.connect_timeout_s:g} s") from None
        return attempt

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _request(self, http: httpx.AsyncClient, method: str, url: str, *, content: bytes | None = None,
                       headers: dict[str, str] | None = None) -> httpx.Response:
        """One request, following 307/308 by hand with the same method, body and headers (httpx would drop
        Authorization on a cross-origin redirect; IVS's global endpoint redirects to a regional host)."""
        for _ in range(MAX_REDIRECTS + 1):
            response = await http.request(method, url, content=content, headers=self._headers(headers))
            if response.status_code not in (307, 308):
                return response
            location = response.headers.get("location")
            if not location:
                raise WhipError(f"{response.status_code} redirect without Location", status=response.status_code)
            url = urljoin(url, location)
            log.info("WHIP %s redirected", method, extra={"to": redact(url)})
        raise WhipError(f"more than {MAX_REDIRECTS} redirects")

    async def _post(self, http: httpx.AsyncClient, offer: str) -> httpx.Response:
        response = await self._request(http, "POST", self.url, content=offer.encode(), headers={"Content-Type": SDP})
        if response.status_code in (200, 201):
            return response
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise WhipError(f"endpoint answered {response.status_code}" + (f": {detail}" if detail else ""),
                        status=response.status_code, retry_after=_retry_after(response))

    async def _end_attempt(self, *, delete: bool) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is None:
            return
        if delete and attempt.resource_url is not None:
            await self._delete(attempt.resource_url)
        await close_peer_connection(attempt.pc, "WHIP peer")
        for track in attempt.owned:
            track.stop()

    async def _delete(self, resource_url: str) -> None:
        http = self._http
        try:
            if http is not None and not http.is_closed:
                await asyncio.wait_for(self._request(http, "DELETE", resource_url), 3)
            else:
                async with httpx.AsyncClient(follow_redirects=False, timeout=3) as fresh:
                    await asyncio.wait_for(self._request(fresh, "DELETE", resource_url), 3)
        except (httpx.HTTPError, TimeoutError, WhipError) as exc:
            log.info("WHIP DELETE failed (the endpoint times the session out by itself): %s", exc)
