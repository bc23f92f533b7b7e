"""A real S3-compatible server for tests (moto's `moto_server` on a free loopback port) and clients of it: the
`moto` fixture (tests/conftest.py) starts one per module.

Test support only; nothing here talks to AWS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.harness import free_port

ACCESS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class MotoServer:
    """A real S3-compatible server (moto's) on a free loopback port, for storage tests."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # another address of the test's namespace: reachable from hosts' namespaces too
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        import socket

        exe = Path(sys.executable).parent / "moto_server"
        cmd = [str(exe)] if exe.exists() else [shutil.which("moto_server") or "moto_server"]
        self.proc = subprocess.Popen([*cmd, "-H", self.host, "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise RuntimeError(f"moto_server exited: {self.proc.stderr.read().decode()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not listen in 30 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", **ACCESS)

    def env(self) -> dict[str, str]:
        """What a playcast process needs to reach this server as its S3 (PLAYCAST_S3_ENDPOINT_URL + credentials)."""
        return {"PLAYCAST_S3_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1"}
