"""The links /v1/broadcasts hands out name the address the client used when PLAYCAST_PUBLIC_URL is unset (a server
bound to 0.0.0.0 never hands out 0.0.0.0), and PLAYCAST_PUBLIC_URL when it is set."""

from __future__ import annotations

import httpx
import pytest

from tests.broadcast.test_whep import _start_session
from tests.harness import playcast_up

pytestmark = pytest.mark.netns


def _links(base: str, admin_token: str, sid: str) -> dict[str, str]:
    r = httpx.post(f"{base}/v1/broadcasts", json={"streamSessionId": sid}, timeout=30,
                   headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code in (200, 201), r.text
    return {k: v for k, v in r.json().items() if k.endswith("Url")}


def test_links_name_the_address_the_client_used_or_the_public_url() -> None:
    with playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1") as pc:
        _group, sid = _start_session(pc)
        via = f"http://127.0.0.2:{pc.port}"  # another address of this machine than the one it printed
        links = _links(via, pc.credentials["admin_token"], sid)
        assert set(links) >= {"whepUrl", "hlsUrl", "whipIngestUrl", "viewerPageUrl"}, links
        assert all(url.startswith(via + "/") for url in links.values()), links
    with playcast_up("--bind", "0.0.0.0", "--warm", "0", "--slots", "1",
                     env={"PLAYCAST_PUBLIC_URL": "https://play.example.com"}) as pc:
        pc.credentials["endpoint_url"] = pc.base_url  # the API itself, not the proxy the public URL names
        _group, sid = _start_session(pc)
        links = _links(f"http://127.0.0.1:{pc.port}", pc.credentials["admin_token"], sid)
        assert all(url.startswith("https://play.example.com/") for url in links.values()), links
