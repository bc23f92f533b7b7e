"""Checks the shape of a SignalRequest: a JSON WebRTC offer or the literal NO_CLIENT_CONNECTION.

Shape only; whether the SDP is usable is the host's call (it raises PlacementError/SignalError)."""

from __future__ import annotations

from ..json_input import parse_json

NO_CLIENT_CONNECTION = "NO_CLIENT_CONNECTION"


class BadSignal(ValueError):
    """The SignalRequest is not an offer we can hand to a host."""


def parse_offer(signal_request: str, *, allow_no_client: bool) -> str | None:
    """Return the offer JSON to hand to the host, or None for NO_CLIENT_CONNECTION. Raises BadSignal."""
    if signal_request == NO_CLIENT_CONNECTION:
        if allow_no_client:
            return None
        raise BadSignal("NO_CLIENT_CONNECTION is only valid for StartStreamSession")
    try:
        offer = parse_json(signal_request)
    except ValueError as exc:
        raise BadSignal(f"SignalRequest is not JSON: {exc}") from exc
    if not isinstance(offer, dict) or offer.get("type") != "offer":
        raise BadSignal('SignalRequest must be a JSON object {"type": "offer", "sdp": ...}')
    sdp = offer.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadSignal("SignalRequest has no SDP (\"sdp\" must be a string starting with v=0)")
    return signal_request
