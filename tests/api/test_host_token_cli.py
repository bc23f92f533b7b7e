"""`playcast host-token create|list|revoke` against a real `playcast up`, and a fixed PLAYCAST_ADMIN_TOKEN that the
server uses instead of generating one (what several replicas need to share)."""

from __future__ import annotations

import json
import subprocess

import httpx

from tests.harness import REPO, playcast_up

FIXED = "fixed-admin-token-for-every-replica-0123456789"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([str(REPO / ".venv" / "bin" / "playcast"), "host-token", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, **(env or {})})


def test_host_tokens_from_the_cli_with_a_fixed_admin_token() -> None:
    with playcast_up("--warm", "0", "--slots", "0", "--no-demo", env={"PLAYCAST_ADMIN_TOKEN": FIXED}) as pc:
        assert pc.credentials["admin_token"] == FIXED
        r = httpx.get(f"{pc.base_url}/v1/hosts/tokens", headers={"Authorization": f"Bearer {FIXED}"}, timeout=30)
        assert r.status_code == 200 and r.json()["items"] == []

        made = _cli("create", "--description", "rack 4", "--server", pc.base_url, "--admin-token", FIXED)
        assert made.returncode == 0, made.stderr
        doc = json.loads(made.stdout)
        assert doc["tokenId"].startswith("ht-") and doc["token"].startswith(doc["tokenId"] + ".")

        # The data dir's credentials.json is enough to find the server and the admin token.
        listed = _cli("list", "--data-dir", str(pc.data_dir))
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split("\n")[0].split("\t") == [doc["tokenId"], "ACTIVE", "rack 4"]
        assert doc["token"] not in listed.stdout

        revoked = _cli("revoke", doc["tokenId"], "--server", pc.base_url, env={"PLAYCAST_ADMIN_TOKEN": FIXED})
        assert revoked.returncode == 0 and f"revoked {doc['tokenId']}" in revoked.stdout, revoked.stderr
        assert _cli("list", "--data-dir", str(pc.data_dir)).stdout.split("\t")[1] == "REVOKED"

        # Refusals are told plainly, with the server's message.
        wrong = _cli("list", "--server", pc.base_url, "--admin-token", "not-it")
        assert wrong.returncode == 1 and "401" in wrong.stderr and "admin_token" in wrong.stderr
        unknown = _cli("revoke", "ht-000000000000", "--data-dir", str(pc.data_dir))
        assert unknown.returncode == 1 and "404" in unknown.stderr
        nowhere = _cli("list", "--server", "http://127.0.0.1:9", "--admin-token", FIXED)
        assert nowhere.returncode == 1 and "cannot reach" in nowhere.stderr
