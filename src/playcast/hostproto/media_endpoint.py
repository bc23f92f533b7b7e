"""The wire of a host's own LL-HLS endpoint, which the control plane's origin relays to viewers: its paths, how the
control plane authenticates to it, and what its answers carry.

Names and the mapping of reasons to statuses only; the host's server is host/hls_endpoint.py, the relay api/hls.py."""

from __future__ import annotations

from dataclasses import dataclass

HLS_PATH = "/hls"  # GET {media_url}/hls/{broadcast id}/{the origin's path below the broadcast id}?{_HLS_* query}
KEY_HEADER = "authorization"  # "Bearer <media_key>": the key the host announced in its hello
FRESHNESS_HEADER = "x-playcast-freshness"  # media.hls.reader's freshness of a 200 answer
RETRY_HEADER = "retry-after"  # seconds, on a 503 (not started yet, or a blocking wait that gave up)

# media.hls.reader's reasons (HlsUnavailable.kind) as statuses; the origin answers viewers the same
STATUS_OF = {"not-found": 404, "bad-request": 400, "not-ready": 503}
FORWARDED_QUERY = ("_HLS_msn", "_HLS_part", "_HLS_skip")  # what the origin passes on (never a viewer's token)


@dataclass(frozen=True)
class HostMediaEndpoint:
    """Where one host's LL-HLS endpoint is (`http://address:port`) and the key to present there."""

    url: str
    key: str

    def __repr__(self) -> str:
        return f"HostMediaEndpoint({self.url!r})"
