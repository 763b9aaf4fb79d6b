"""Pytest fixtures for the test servers; re-exported by ``tests/conftest.py``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.faultserver import FaultServer
from tests.servers.nginx import NGINX_BINARY, NginxServer, nginx_available
from tests.servers.rawserver import RawHandler, RawServer

__all__ = ["NginxFactory", "fault_server", "nginx_factory", "other_host_server", "running_under_ci"]

NginxFactory = Callable[..., NginxServer]  # (root: Path, *, extra_locations: str = "")


def running_under_ci() -> bool:
    """True when the ``CI`` environment variable is set (to anything but "", "0", "false")."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_nginx() -> None:
    if nginx_available():
        return
    message = f"{NGINX_BINARY} not found: install Debian's nginx (apt-get install nginx-light)"
    if running_under_ci():
        pytest.fail(f"{message}; under CI the nginx tests must run, not be skipped")
    pytest.skip(message)


@pytest.fixture
def nginx_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxFactory]:
    """``nginx_factory(root, *, extra_locations="") -> NginxServer``: a started nginx serving
    ``root`` on 127.0.0.1, stopped after the test. Its config and logs are kept in a
    ``nginx*`` folder of pytest's temporary directory for post-mortems."""
    _require_nginx()
    started: list[NginxServer] = []

    def factory(root: Path, *, extra_locations: str = "") -> NginxServer:
        server = NginxServer(
            root,
            extra_locations=extra_locations,
            workdir=tmp_path_factory.mktemp("nginx"),
        )
        server.start()
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, closed after the test."""
    with FaultServer("127.0.0.1") as server:
        yield server


@pytest.fixture
def other_host_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.2: "another host" for redirect tests."""
    with FaultServer("127.0.0.2") as server:
        yield server


@pytest.fixture
def raw_server() -> Iterator[Callable[[RawHandler], RawServer]]:
    """``raw_server(handler) -> RawServer``, started; closed after the test."""
    started: list[RawServer] = []

    def start(handler: RawHandler) -> RawServer:
        server = RawServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
