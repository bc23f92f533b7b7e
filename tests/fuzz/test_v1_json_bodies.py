"""/v1 JSON bodies holding a lone surrogate (JSON's "\\ud800" escape), found while fuzzing the AWS and events APIs:
the string reached the database or an echoing message and its UTF-8 encoding raised, a 500. json_input.parse_json,
which every untrusted JSON document goes through, refuses them now; these check two /v1 routes end to end."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.harness import Playcast

LONE = "\ud800"


@pytest.mark.parametrize("caller, path, body", [
    ("user", "/v1/play/sessions", {"applicationId": LONE, "signalRequest": "x"}),
    ("admin", "/v1/broadcasts", {"streamSessionId": LONE}),
], ids=["play-sessions", "broadcasts"])
def test_body_holding_a_lone_surrogate_is_a_400(up: Playcast, user_cookie: str, caller: str, path: str,
                                                body: dict[str, str]) -> None:
    headers = {"Content-Type": "application/json"}
    cookies = {}
    if caller == "admin":
        headers["Authorization"] = f"Bearer {up.credentials['admin_token']}"
    else:
        cookies["playcast_user"] = user_cookie
    with httpx.Client(base_url=up.base_url, cookies=cookies, timeout=30) as client:
        resp = client.post(path, content=json.dumps(body), headers=headers)
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.json()["error"]["type"], resp.text
