"""HTTP plumbing shared by the WHIP and WHEP endpoints: CORS headers, plain-text replies, reading an SDP body within
its content-type and size limits, and 401/403 for a refused viewer token.

It must not look anything up: which broadcast, stage or peer a request means is up to api/whip.py and api/whep.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from playcast.control.broadcasts import AccessDenied
from playcast.request_body import BodyTooLarge, read_body

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
MAX_SDP_BYTES = 64 * 1024
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="playcast"'}


def content_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class SdpReplies:
    """The responses of one family of WHIP/WHEP endpoints; each carries the family's CORS headers."""

    def __init__(self, methods: str) -> None:
        self.cors = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
            "Access-Control-Expose-Headers": "Location, ETag, Link, Retry-After, Accept-Post, Accept-Patch",
        }

    def empty(self, status: int, media_type: str | None = None, **headers: str) -> Response:
        return Response(status_code=status, media_type=media_type, headers={**self.cors, **headers})

    def text(self, status: int, message: str, **headers: str) -> Response:
        return Response(message + "\n", status_code=status, media_type="text/plain", headers={**self.cors, **headers})

    def options(self, status: int) -> Response:
        """The answer to OPTIONS: what POST and PATCH take."""
        return self.empty(status, **{"Accept-Post": SDP, "Accept-Patch": TRICKLE})

    def created(self, answer: str, location: str, etag: str) -> Response:
        """201 with the SDP answer and where the new session lives."""
        return Response(answer, status_code=201, media_type=SDP,
                        headers={**self.cors, "Location": location, "ETag": etag})

    def denied(self, exc: AccessDenied, challenge: bool = True) -> Response:
        """401 (with a Bearer challenge unless `challenge` is off) for a missing token, 403 for a wrong one."""
        if not exc.missing:
            return self.text(403, str(exc))
        return self.text(401, str(exc), **CHALLENGE if challenge else {})

    def wrong_type(self, request: Request, expected: str) -> Response | None:
        """415 unless the body is `expected` (an SDP offer's 415 names what POST takes)."""
        if content_type(request) == expected:
            return None
        return self.text(415, f"Content-Type must be {expected}", **{"Accept-Post": SDP} if expected == SDP else {})

    async def read_sdp(self, request: Request, expected: str = SDP, what: str = "body") -> str | Response:
        """The body as text when it is `expected`, at most MAX_SDP_BYTES and UTF-8; else the 415/413/400 to send
        (`what` names the body in those messages). Call it once the caller may send one."""
        wrong = self.wrong_type(request, expected)
        if wrong is not None:
            return wrong
        try:
            body = await read_body(request, MAX_SDP_BYTES)
        except BodyTooLarge:
            return self.text(413, f"{what} is larger than {MAX_SDP_BYTES} bytes")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return self.text(400, f"{what} is not UTF-8")

    def malformed(self, sdp: str) -> Response | None:
        """400 unless `sdp` at least starts like a session description."""
        if sdp.lstrip().startswith("v=0"):
            return None
        return self.text(400, "malformed SDP: it must start with v=0")
