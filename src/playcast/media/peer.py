"""One browser's WebRTC peer: pre-encoded H.264 out (no re-encode), audio out, input/message data channels in.

Parses and validates the offer, forces H.264, hooks PLI to the shared encoder. Knows nothing of HTTP or X11."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from fractions import Fraction

import av
from aioice import ice as aioice_ice
from aiortc import (
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcpeerconnection import filter_preferred_codecs

from playcast.json_input import parse_json
from playcast.media import playout_delay
from playcast.media.encoder import EncodedPacket
from playcast.media.fanout import PacketSink
from playcast.media.h264_rtp import share_packetization
from playcast.media.ice import IceSettings

log = logging.getLogger(__name__)
playout_delay.install()

# Consent freshness (RFC 7675): aioice checks every 5 s and gives up after 6 misses (~30 s). A player whose network
# vanished should reach PENDING_CLIENT_RECONNECTION in seconds, so check every 2 s and give up after 4 misses.
aioice_ice.CONSENT_INTERVAL = 2
aioice_ice.CONSENT_FAILURES = 4

VIDEO_CLOCK = 90000
MAX_OFFER_BYTES = 64 * 1024
INPUT_LABEL = "input"
MESSAGES_LABEL = "messages"


class OfferError(ValueError):
    """The SignalRequest is not a usable WebRTC offer."""


def parse_offer(signal: str) -> RTCSessionDescription:
    """Validate the JSON {"type":"offer","sdp":...} shape and that the SDP carries H.264 video."""
    if len(signal) > MAX_OFFER_BYTES:
        raise OfferError(f"offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        obj = parse_json(signal, max_bytes=MAX_OFFER_BYTES)
    except ValueError as exc:
        raise OfferError(f"SignalRequest is not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("type") != "offer" or not isinstance(obj.get("sdp"), str):
        raise OfferError('SignalRequest must be {"type":"offer","sdp":"..."}')
    sdp: str = obj["sdp"]
    if not sdp.startswith("v=0"):
        raise OfferError("SDP must start with v=0")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not any(line.startswith("m=video") for line in lines):
        raise OfferError("offer has no video m-line")
    if not any(line.startswith("a=rtpmap:") and "H264/90000" in line for line in lines):
        raise OfferError("offer does not accept H.264 video")
    return RTCSessionDescription(sdp=sdp, type="offer")


async def close_peer_connection(pc: RTCPeerConnection, what: str) -> None:
    """Close `pc` within 5 s; never raises. aiortc's close() raises on a connection a malformed offer left half
    built (a transceiver without a transport): the transports it did not reach are stopped here, so no socket is
    left open and the error that ended the peer stays the one its caller reports."""
    try:
        await asyncio.wait_for(pc.close(), 5)
    except TimeoutError:
        log.warning("%s close timed out", what)
    except Exception as exc:  # noqa: BLE001 - aiortc's own inconsistency, logged
        log.warning("%s close failed (%r); stopping its transports", what, exc)
        dtls_transports = [t.receiver.transport for t in pc.getTransceivers()]
        if pc.sctp is not None:
            dtls_transports.append(pc.sctp.transport)
        for dtls in dtls_transports:
            if dtls is None:
                continue
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dtls.stop(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dtls.transport.stop(), 5)


class EncodedVideoTrack(MediaStreamTrack):
    """A video track whose frames are already-encoded H.264 packets from the shared encoder."""

    kind = "video"

    def __init__(self, open_sink: Callable[[], PacketSink]) -> None:
        super().__init__()
        self._open_sink = open_sink
        self._sink: PacketSink | None = None
        self._t0: float | None = None
        self.last_index = -1
        self.current: EncodedPacket | None = None  # the frame behind the last av.Packet returned (see h264_rtp)

    def request_keyframe(self, why: str) -> None:
        if self._sink is not None:
            self._sink.request_keyframe(why)

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self._sink is None:
            # Opened on the first pull, i.e. once DTLS is up: no stale backlog builds up during ICE.
            self._sink = self._open_sink()
        packet = await self._sink.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = packet.captured_at
        out = av.Packet(packet.data)
        out.pts = int((packet.captured_at - self._t0) * VIDEO_CLOCK)
        out.time_base = Fraction(1, VIDEO_CLOCK)
        self.last_index = packet.index
        self.current = packet
        return out

    def stop(self) -> None:
        super().stop()
        if self._sink is not None:
            self._sink.close()


class ClientPeer:
    """The server end of one client's RTCPeerConnection."""

    def __init__(self, open_sink: Callable[[], PacketSink], audio: MediaStreamTrack | None, *,
                 on_input: Callable[[bytes], None], on_message: Callable[[bytes], None],
                 on_state: Callable[[str], None], ice: IceSettings | None = None) -> None:
        self.ice = ice or IceSettings()  # default: no STUN/TURN, host candidates only
        self.pc = RTCPeerConnection(self.ice.configuration())
        self._video = EncodedVideoTrack(open_sink)
        self._audio = audio
        self._on_input = on_input
        self._on_message = on_message
        self._on_state = on_state
        self.input_channel: RTCDataChannel | None = None
        self.message_channel: RTCDataChannel | None = None
        self._pending_control: list[bytes] = []
        self.state = "new"
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("datachannel", self._datachannel)

    async def answer(self, offer_json: str) -> str:
        """Apply the offer and return the answer as JSON. Raises OfferError on any unusable offer."""
        offer = parse_offer(offer_json)
        try:
            await self.pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError/others on bad SDP
            raise OfferError(f"offer rejected: {exc}") from None
        video_sender: RTCRtpSender | None = None
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video" and video_sender is None:
                # The answerer's codecs are fixed during setRemoteDescription; keep only H.264 (and its RTX),
                # since our packets are H.264 and aiortc would otherwise pick the offer's first codec (VP8).
                h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
                        if c.mimeType in ("video/H264", "video/rtx")]
                transceiver._codecs = filter_preferred_codecs(transceiver._codecs, h264)
                if not any(c.mimeType == "video/H264" for c in transceiver._codecs):
                    raise OfferError("offer has no H.264 profile this host can send (constrained baseline, "
                                     "packetization-mode=1)")
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(self._video)
                video_sender = transceiver.sender
            elif transceiver.kind == "audio" and self._audio is not None:
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(self._audio)
        if video_sender is None:
            raise OfferError("offer has no video transceiver")
        # aiortc only flags its own encoder on PLI/FIR; route it to the shared encoder instead.
        video_sender._send_keyframe = lambda: self._video.request_keyframe("PLI/FIR")  # type: ignore[method-assign]
        share_packetization(video_sender, lambda: self._video.current)
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise OfferError(f"cannot answer offer: {exc}") from None
        local = self.pc.localDescription
        return json.dumps({"type": local.type, "sdp": self.ice.announce(local.sdp)})

    def _datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label == INPUT_LABEL:
            self.input_channel = channel
            channel.on("message", self._input_message)
            channel.on("open", self._flush_control)
            if channel.readyState == "open":
                self._flush_control()
        elif channel.label == MESSAGES_LABEL:
            self.message_channel = channel
            channel.on("message", self._app_message)
        else:
            log.info("ignoring unknown data channel %r", channel.label)

    def _input_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._on_input(data)

    def _app_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._on_message(data)

    def _flush_control(self) -> None:
        pending, self._pending_control = self._pending_control, []
        for data in pending:
            self.send_control(data)

    def send_control(self, data: bytes) -> None:
        """Host -> client control message on the input channel (queued until it opens)."""
        ch = self.input_channel
        if ch is not None and ch.readyState == "open":
            ch.send(data)
        else:
            self._pending_control.append(data)

    def send_message(self, data: bytes) -> bool:
        ch = self.message_channel
        if ch is None or ch.readyState != "open":
            return False
        ch.send(data)
        return True

    async def _state_changed(self) -> None:
        self.state = self.pc.connectionState
        log.info("peer state %s", self.state)
        self._on_state(self.state)

    async def close(self) -> None:
        self._video.stop()
        await close_peer_connection(self.pc, "peer")
