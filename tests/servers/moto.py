"""moto's standalone S3 server on 127.0.0.1, and a fresh bucket per test.

``moto_server`` (session) runs ``python -m moto.server -H 127.0.0.1 -p <free port>`` as a
subprocess and waits until it answers; ``s3_bucket`` points the AWS variables at it
(``AWS_ENDPOINT_URL`` and dummy credentials, through monkeypatch) and creates an empty bucket,
so that the code under test talks to it exactly as it would to AWS. Without moto the tests skip,
except under CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.fixtures import running_under_ci

__all__ = ["MotoServer", "S3Bucket", "moto_available", "moto_server", "s3_bucket"]

STARTUP_TIMEOUT = 30.0


def moto_available() -> bool:
    """True when moto's server, s3fs and boto3 can be imported."""
    return all(importlib.util.find_spec(name) for name in ("moto", "s3fs", "boto3", "flask"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MotoServer:
    """A running ``moto.server`` subprocess; its output goes to ``log``."""

    log: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers HTTP."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto.server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.endpoint_url + "/moto-api/", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto.server did not answer within {STARTUP_TIMEOUT} s")

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Shared:
    """One server per test process, however many modules import the fixture."""

    lock = threading.Lock()
    server: MotoServer | None = None
    users = 0


def _require_moto() -> None:
    if moto_available():
        return
    message = 'moto\'s S3 server is not installed: pip install "moto[server]" s3fs'
    if running_under_ci():
        pytest.fail(f"{message}; under CI the S3 tests must run, not be skipped")
    pytest.skip(message)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A started moto S3 server on 127.0.0.1, stopped at the end of the session."""
    _require_moto()
    with _Shared.lock:
        if _Shared.server is None:
            server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
            server.start()
            _Shared.server = server
        _Shared.users += 1
        server = _Shared.server
    try:
        yield server
    finally:
        with _Shared.lock:
            _Shared.users -= 1
            if _Shared.users == 0:
                server.stop()
                _Shared.server = None


@dataclass
class S3Bucket:
    """An empty bucket on the moto server, with a boto3 client to look at or tamper with it."""

    name: str
    endpoint_url: str
    client: Any

    def url(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        """The content of an object."""
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body

    def put(self, key: str, data: bytes) -> None:
        """Create or replace an object."""
        self.client.put_object(Bucket=self.name, Key=key, Body=data)


@pytest.fixture
def s3_bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket, with ``AWS_ENDPOINT_URL`` and dummy credentials set for this test."""
    import boto3

    settings = {
        "AWS_ENDPOINT_URL": moto_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    name = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return S3Bucket(name, moto_server.endpoint_url, client)
