"""A real S3 HTTP server on 127.0.0.1 for tests: moto's server mode in a subprocess.

This is how s3fs tests itself: ``moto_server -H 127.0.0.1 -p PORT`` speaks the
S3 REST API over HTTP, any credentials are accepted, and the bucket is created
with boto3 against ``endpoint_url``. One server per test module (it starts in
under a second); every test gets its own bucket.

    with MotoS3Server() as server:
        bucket = server.create_bucket()          # a fresh, uniquely named bucket
        server.endpoint_url                      # "http://127.0.0.1:PORT"
        server.keys(bucket)                      # every object key in the bucket

The module is importable as ``s3_server`` (pytest puts ``tests/`` on ``sys.path``);
``moto_s3`` is a module-scoped fixture test files import.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# distinctive fake credentials: tests grep lineage, logs and records for them
TEST_KEY = "codeio-test-access-key-7F3A9C"
TEST_SECRET = "codeio-test-secret-91C2D4E8B6"
TEST_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def moto_server_binary() -> str:
    """The console script next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).with_name("moto_server")
    found = str(local) if local.exists() else shutil.which("moto_server")
    if not found:
        raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
    return found


@dataclass(frozen=True)
class S3Credentials:
    key: str = TEST_KEY
    secret: str = TEST_SECRET
    region: str = TEST_REGION


class MotoS3Server:
    """A moto S3 server subprocess on a free loopback port; stopped on exit."""

    def __init__(self, credentials: S3Credentials = S3Credentials()) -> None:
        self.credentials = credentials
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None  # the server's own log (requests, tracebacks), kept for post-mortems

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> "MotoS3Server":
        self.port = free_port()
        # its own session: a Ctrl-C in the test run does not leave it orphaned mid-request
        self.log = tempfile.NamedTemporaryFile(prefix="moto-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [moto_server_binary(), "-H", HOST, "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode} before answering; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint_url}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if self.log is not None:
            self.log.close()
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> "MotoS3Server":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- client side ---------------------------------------------------------
    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.credentials.region,
            aws_access_key_id=self.credentials.key, aws_secret_access_key=self.credentials.secret,
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"codeio-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                      for item in page.get("Contents", ()))

    def get(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def storage_options(self) -> dict[str, Any]:
        """s3fs options for this server (what storage.store.s3_storage_options builds)."""
        return {"key": self.credentials.key, "secret": self.credentials.secret,
                "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.credentials.region}}

    def env(self) -> dict[str, str]:
        """The CODEIO_* settings that point the pipeline at this server."""
        return {"CODEIO_S3_ENDPOINT_URL": self.endpoint_url, "CODEIO_S3_REGION": self.credentials.region,
                "CODEIO_S3_KEY": self.credentials.key, "CODEIO_S3_SECRET": self.credentials.secret}


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3Server]:
    try:
        moto_server_binary()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    with MotoS3Server() as server:
        yield server
