"""Checks a WHIP publisher's SDP offer before any WebRTC work (RFC 9725 §4.2, §4.5): 400 for malformed SDP,
422 for offers we cannot take (several audio or video tracks, nothing sent, no codec we decode).

Pure text checks: no peer connection, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import sdp as aiortc_sdp

MAX_OFFER_BYTES = 64 * 1024
RECEIVABLE = {"video": ("video/H264", "video/VP8"), "audio": ("audio/opus", "audio/PCMU", "audio/PCMA")}


class OfferRejected(Exception):
    """An offer the ingest refuses; `status` is the HTTP status for it (400 or 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class PublishOffer:
    kinds: list[str]  # "audio" / "video", in m-line order
    codecs: dict[str, list[str]] = field(default_factory=dict)  # kind -> offered mime types


def check_publish_offer(text: str) -> PublishOffer:
    """Validate a publisher's offer; raises OfferRejected."""
    if len(text.encode()) > MAX_OFFER_BYTES:
        raise OfferRejected(400, f"offer is larger than {MAX_OFFER_BYTES} bytes")
    if not text.lstrip().startswith("v=0"):
        raise OfferRejected(400, "malformed SDP: it must start with v=0")
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    if not any(line.startswith("m=") for line in lines):
        raise OfferRejected(400, "malformed SDP: no media (m=) lines")
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises assorted errors on broken lines
        raise OfferRejected(400, f"malformed SDP: {exc}") from None
    media = [m for m in description.media if m.kind in ("audio", "video")]
    if not media:
        raise OfferRejected(422, "the offer has no audio or video media")
    kinds = [m.kind for m in media]
    for kind in ("audio", "video"):
        if kinds.count(kind) > 1:
            raise OfferRejected(422, f"the offer has {kinds.count(kind)} {kind} tracks; WHIP allows at most one")
    sending = [m for m in media if (m.direction or "sendrecv") in ("sendonly", "sendrecv") and m.port != 0]
    if not sending:
        raise OfferRejected(422, "no media is sent: a WHIP publisher offers sendonly (or sendrecv) tracks")
    offer = PublishOffer(kinds)
    for m in media:
        offered = [c.mimeType for c in m.rtp.codecs]
        offer.codecs[m.kind] = offered
        usable = [c for c in offered if c.lower() in (r.lower() for r in RECEIVABLE[m.kind])]
        if not usable:
            raise OfferRejected(422, f"no {m.kind} codec this server can receive: offered "
                                     f"{', '.join(offered) or 'none'}; accepted {', '.join(RECEIVABLE[m.kind])}")
    if not _session_has(lines, "a=ice-ufrag:") or not _session_has(lines, "a=ice-pwd:"):
        raise OfferRejected(400, "malformed SDP: no ICE credentials (a=ice-ufrag / a=ice-pwd)")
    if not _session_has(lines, "a=fingerprint:"):
        raise OfferRejected(400, "malformed SDP: no DTLS fingerprint")
    return offer


def _session_has(lines: list[str], prefix: str) -> bool:
    return any(line.startswith(prefix) for line in lines)
