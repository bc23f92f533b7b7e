"""GET /metrics of a `playcast up` bound beyond loopback: it needs a bearer token, generated once, kept in
credentials.json across restarts and printed in the banner; on loopback it stays open."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.harness import playcast_up

pytestmark = pytest.mark.netns  # 0.0.0.0 inside the test's private network namespace


def _metrics(pc, token: str | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{pc.base_url}/metrics", headers=headers, timeout=30)


def test_metrics_beyond_loopback_need_the_token_from_credentials_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with playcast_up("--bind", "0.0.0.0", "--no-demo", "--slots", "1", data_dir=data) as pc:
        token = json.loads((data / "credentials.json").read_text())["metrics_token"]
        assert len(token) >= 32
        assert f"Bearer {token}" in pc.log_text()  # the banner says how to scrape
        r = _metrics(pc)
        assert r.status_code == 401 and "playcast_" not in r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert _metrics(pc, "wrong").status_code == 401
        ok = _metrics(pc, token)
        assert ok.status_code == 200 and "playcast_host_slots" in ok.text
        assert httpx.get(f"{pc.base_url}/healthz", timeout=30).status_code == 200  # only /metrics needs it

    # A restart keeps the same token.
    with playcast_up("--bind", "0.0.0.0", "--no-demo", "--slots", "1", data_dir=data) as pc:
        assert json.loads((data / "credentials.json").read_text())["metrics_token"] == token
        assert _metrics(pc).status_code == 401
        assert _metrics(pc, token).status_code == 200

    # On loopback /metrics is open, as it always was.
    with playcast_up("--no-demo", "--slots", "1", data_dir=data) as pc:
        assert _metrics(pc).status_code == 200
        assert "metrics:" not in pc.log_text()
