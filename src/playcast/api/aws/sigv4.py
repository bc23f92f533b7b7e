"""AWS Signature Version 4 verification of an incoming request (Authorization header form).

Recomputes the canonical request and signature and compares; it does not look up operations or bodies' meaning."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=15)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$")


class AuthError(Exception):
    """`code` is the AWS error type (MissingAuthenticationTokenException, UnrecognizedClientException,
    InvalidSignatureException, IncompleteSignatureException); always HTTP 403 except Incomplete (400)."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    region: str
    service: str


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    result = "/" + "/".join(out)
    if path.endswith("/") and result != "/":
        result += "/"
    return result


def canonical_uri(raw_path: str) -> str:
    """URI-encode the (already encoded) path once more, as SigV4 does for every service but S3."""
    return quote(_remove_dot_segments(raw_path or "/"), safe="/~")


def canonical_query(query_string: str) -> str:
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        # as bytes: escapes of bytes that are not UTF-8 are signed as they were sent, not as U+FFFD
        pairs.append((quote(unquote_to_bytes(key), safe="-_.~"), quote(unquote_to_bytes(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


@dataclass(frozen=True)
class SignedHeaders:
    """What the Authorization header and X-Amz-Date claim, already checked against the credentials and clock;
    only the signature itself (which covers the body) is left to check."""

    key_id: str
    date: str
    amz_date: str
    signed: list[str]
    signature: str
    header_map: dict[str, list[str]]


def check_headers(headers: Iterable[tuple[str, str]], creds: Credentials,
                  now: dt.datetime | None = None) -> SignedHeaders:
    """Everything SigV4 checks before the body: the header's form, access key, date, expiry and scope, and that
    the signed headers are present. Raises AuthError."""
    header_map: dict[str, list[str]] = {}
    for name, value in headers:
        header_map.setdefault(name.lower(), []).append(value)
    auth = (header_map.get("authorization") or [None])[0]
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = _AUTH_RE.match(auth.strip())
    if not m:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                        f"parameters with algorithm {ALGORITHM}", 400)
    credential, signed_headers_raw, signature = m.groups()
    cparts = credential.split("/")
    if len(cparts) != 5 or cparts[4] != "aws4_request":
        raise AuthError("IncompleteSignatureException", f"Credential {credential!r} is malformed: expected "
                        "<key>/<date>/<region>/<service>/aws4_request", 400)
    key_id, date, region, service, _ = cparts
    if not hmac.compare_digest(key_id.encode(), creds.access_key_id.encode()):
        raise AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = (header_map.get("x-amz-date") or [None])[0]
    if not amz_date:
        raise AuthError("IncompleteSignatureException", "Missing X-Amz-Date header", 400)
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthError("IncompleteSignatureException", f"X-Amz-Date {amz_date!r} is malformed", 400) from None
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW:
        raise AuthError("InvalidSignatureException",
                        f"Signature expired: {amz_date} is now earlier or later than "
                        f"{(now - MAX_SKEW):%Y%m%dT%H%M%SZ} - {(now + MAX_SKEW):%Y%m%dT%H%M%SZ}")
    if date != amz_date[:8]:
        raise AuthError("InvalidSignatureException", "Credential date does not match X-Amz-Date")
    if region != creds.region:
        raise AuthError("InvalidSignatureException",
                        f"Credential should be scoped to a valid region, not '{region}' (expected '{creds.region}')")
    if service != creds.service:
        raise AuthError("InvalidSignatureException",
                        f"Credential should be scoped to correct service: '{creds.service}'")
    signed = signed_headers_raw.lower().split(";")
    if "host" not in signed:
        raise AuthError("InvalidSignatureException", "The host header must be signed")
    missing = [h for h in signed if h not in header_map]
    if missing:
        raise AuthError("InvalidSignatureException", f"Signed header(s) not present: {', '.join(missing)}")
    return SignedHeaders(key_id, date, amz_date, signed, signature, header_map)


def check_signature(claimed: SignedHeaders, method: str, raw_path: str, query_string: str, body: bytes,
                    creds: Credentials) -> str:
    """Recompute the signature over the request and its body and compare; returns the access key id.
    Raises AuthError."""
    header_map, signed = claimed.header_map, claimed.signed
    canonical_headers = "".join(
        f"{h}:{','.join(' '.join(v.split()) for v in header_map[h])}\n" for h in signed)
    content_sha = (header_map.get("x-amz-content-sha256") or [None])[0]
    payload_hash = hashlib.sha256(body).hexdigest()  # always signed: UNSIGNED-PAYLOAD is not accepted
    if content_sha and content_sha != payload_hash:
        raise AuthError("InvalidSignatureException",
                        "x-amz-content-sha256 does not match the body (unsigned payloads are not accepted)")
    canonical = "\n".join([method.upper(), canonical_uri(raw_path), canonical_query(query_string),
                           canonical_headers, ";".join(signed), payload_hash])
    scope = f"{claimed.date}/{creds.region}/{creds.service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, claimed.amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(_signing_key(creds.secret_access_key, claimed.date, creds.region, creds.service),
                        to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, claimed.signature.lower()):
        raise AuthError("InvalidSignatureException",
                        "The request signature we calculated does not match the signature you provided. "
                        "Check your AWS Secret Access Key and signing method.")
    return claimed.key_id


def verify(method: str, raw_path: str, query_string: str, headers: Iterable[tuple[str, str]], body: bytes,
           creds: Credentials, now: dt.datetime | None = None) -> str:
    """Check the request's SigV4 signature (check_headers, then check_signature); returns the access key id.
    Raises AuthError."""
    return check_signature(check_headers(headers, creds, now), method, raw_path, query_string, body, creds)
