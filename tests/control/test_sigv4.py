"""SigV4 verification against requests signed by botocore's own signer."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from playcast.api.aws import sigv4

CREDS = sigv4.Credentials("AKIDTEST", "s3cret", "local", "gameliftstreams")


def signed(method: str, url: str, body: bytes = b"", *, key: str = "AKIDTEST", secret: str = "s3cret",
           region: str = "local", service: str = "gameliftstreams") -> AWSRequest:
    req = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(req)
    return req


def check(req: AWSRequest, *, body: bytes | None = None, path: str | None = None, query: str | None = None,
          now: dt.datetime | None = None, creds: sigv4.Credentials = CREDS) -> str:
    parts = urlsplit(req.url)
    headers = [(k, v) for k, v in req.headers.items()]
    headers.append(("host", parts.netloc))
    return sigv4.verify(req.method, parts.path if path is None else path, parts.query if query is None else query,
                        headers, (req.body or b"") if body is None else body, creds, now=now)


def test_accepts_botocore_signatures() -> None:
    assert check(signed("GET", "http://127.0.0.1:9000/applications?MaxResults=5&NextToken=abc%3D%3D")) == "AKIDTEST"
    assert check(signed("POST", "http://127.0.0.1:9000/applications", b'{"Description":"x y"}')) == "AKIDTEST"
    arn = "arn%3Aaws%3Agameliftstreams%3Alocal%3A123456789012%3Astreamsession%2Fsg-1%2FABC"
    assert check(signed("GET", f"http://127.0.0.1:9000/tags/{arn}"))
    assert check(signed("DELETE", "http://127.0.0.1:9000/streamgroups/sg-1/locations?locations=b&locations=a"))


def test_accepts_query_escapes_of_bytes_that_are_not_utf8() -> None:
    assert check(signed("GET", "http://127.0.0.1:9000/applications?NextToken=%ED%A0%80x%FF&MaxResults=5"))
    req = signed("GET", "http://127.0.0.1:9000/applications?NextToken=%ED%A0%80")
    with pytest.raises(sigv4.AuthError):
        check(req, query="NextToken=%ED%A0%81")


def test_rejects_tampering() -> None:
    req = signed("POST", "http://127.0.0.1:9000/applications", b'{"Description":"x"}')
    with pytest.raises(sigv4.AuthError) as e:
        check(req, body=b'{"Description":"y"}')
    assert e.value.code == "InvalidSignatureException" and e.value.status == 403
    with pytest.raises(sigv4.AuthError):
        check(req, path="/streamgroups")
    req = signed("GET", "http://127.0.0.1:9000/applications?MaxResults=5")
    with pytest.raises(sigv4.AuthError):
        check(req, query="MaxResults=6")


def test_rejects_wrong_secret_key_region_service() -> None:
    with pytest.raises(sigv4.AuthError) as e:
        check(signed("GET", "http://h/applications", secret="nope"))
    assert e.value.code == "InvalidSignatureException"
    with pytest.raises(sigv4.AuthError) as e:
        check(signed("GET", "http://h/applications", key="OTHERKEY"))
    assert e.value.code == "UnrecognizedClientException"
    with pytest.raises(sigv4.AuthError) as e:
        check(signed("GET", "http://h/applications", region="us-east-1"))
    assert "region" in e.value.message
    with pytest.raises(sigv4.AuthError) as e:
        check(signed("GET", "http://h/applications", service="gamelift"))
    assert "service" in e.value.message


def test_rejects_missing_or_stale() -> None:
    with pytest.raises(sigv4.AuthError) as e:
        sigv4.verify("GET", "/applications", "", [("host", "h")], b"", CREDS)
    assert e.value.code == "MissingAuthenticationTokenException" and e.value.status == 403
    with pytest.raises(sigv4.AuthError) as e:
        sigv4.verify("GET", "/applications", "", [("host", "h"), ("authorization", "Bearer x")], b"", CREDS)
    assert e.value.code == "IncompleteSignatureException"
    req = signed("GET", "http://h/applications")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    with pytest.raises(sigv4.AuthError) as e:
        check(req, now=later)
    assert "expired" in e.value.message
    assert check(req, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14))


def test_canonical_helpers() -> None:
    assert sigv4.canonical_uri("/a/./b/../c") == "/a/c"
    assert sigv4.canonical_uri("/tags/arn%3Aaws") == "/tags/arn%253Aaws"
    assert sigv4.canonical_query("b=2&a=1&a=0") == "a=0&a=1&b=2"
    assert sigv4.canonical_query("k=a%20b") == "k=a%20b"


def test_header_checks_need_no_body() -> None:
    """check_headers (run before the body is read) refuses what it can; check_signature then needs the body."""
    req = signed("POST", "http://127.0.0.1:9000/applications", b'{"Description":"x"}')
    headers = [*req.headers.items(), ("host", "127.0.0.1:9000")]
    claimed = sigv4.check_headers(headers, CREDS)
    assert sigv4.check_signature(claimed, "POST", "/applications", "", b'{"Description":"x"}', CREDS) == "AKIDTEST"
    with pytest.raises(sigv4.AuthError) as e:
        sigv4.check_signature(claimed, "POST", "/applications", "", b'{"Description":"y"}', CREDS)
    assert e.value.code == "InvalidSignatureException"
    for creds, code in [(sigv4.Credentials("AKIDOTHER", "s3cret", "local", "gameliftstreams"),
                         "UnrecognizedClientException"),
                        (sigv4.Credentials("AKIDTEST", "s3cret", "eu-west-1", "gameliftstreams"),
                         "InvalidSignatureException")]:
        with pytest.raises(sigv4.AuthError) as e:
            sigv4.check_headers(headers, creds)
        assert e.value.code == code
