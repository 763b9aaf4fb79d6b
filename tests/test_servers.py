"""Self-tests of the test servers (tests/servers): nginx and the scripted fault server.

The fixtures (nginx_factory, fault_server, other_host_server) come from tests/conftest.py.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import fixtures as fixtures_module
from tests.servers import nginx as nginx_module
from tests.servers.faultserver import (
    ChangeContent,
    FaultServer,
    LieContentLength,
    RecordedRequest,
    Redirect,
    Reset,
    Response,
    Serve,
    ShortBody,
    Stall,
    Status,
)
from tests.servers.fixtures import NginxFactory
from tests.servers.nginx import NginxServer

pytestmark = pytest.mark.network

DATA = bytes(range(256)) * 1200  # 300 KiB: several 64 KiB chunks
SMALL = b"0123456789" * 10


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "models").mkdir(parents=True)
    (root / "models" / "model.bin").write_bytes(DATA)
    (root / "private").mkdir()
    (root / "private" / "secret.txt").write_text("secret")
    return root


def _threads_of(server: FaultServer) -> list[threading.Thread]:
    prefix = f"FaultServer-{server.port}"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


# ========================================================================================= nginx
def test_nginx_serves_file_and_logs_it(
    nginx_factory: NginxFactory, site: Path, client: httpx.Client
) -> None:
    server = nginx_factory(site)
    assert server.base_url == f"http://127.0.0.1:{server.port}/"

    response = client.get(server.url("models/model.bin"))
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["etag"].startswith('"')
    assert "last-modified" in response.headers
    assert response.headers["accept-ranges"] == "bytes"

    assert client.get(server.url("models/missing.bin")).status_code == 404
    assert client.get(server.url("models/")).status_code == 403  # autoindex off

    logged = server.requests(min_count=3)
    assert [(r.method, r.uri, r.status) for r in logged] == [
        ("GET", "/models/model.bin", 200),
        ("GET", "/models/missing.bin", 404),
        ("GET", "/models/", 403),
    ]
    assert logged[0].range is None
    assert logged[0].bytes_sent == len(DATA)
    assert logged[0].authorization is None
    # One httpx.Client: all three requests over one keep-alive connection.
    assert len({r.connection for r in logged}) == 1


def test_nginx_range_requests_are_logged(
    nginx_factory: NginxFactory, site: Path, client: httpx.Client
) -> None:
    server = nginx_factory(site)
    url = server.url("models/model.bin")

    closed = client.get(url, headers={"Range": "bytes=100-199"})
    assert closed.status_code == 206
    assert closed.content == DATA[100:200]
    assert closed.headers["content-range"] == f"bytes 100-199/{len(DATA)}"

    etag = closed.headers["etag"]
    open_ended = client.get(
        url, headers={"Range": "bytes=300000-", "If-Range": etag, "Authorization": "Bearer t0k"}
    )
    assert open_ended.status_code == 206
    assert open_ended.content == DATA[300000:]

    stale = client.get(url, headers={"Range": "bytes=10-", "If-Range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == DATA

    logged = server.requests(min_count=3)
    assert [(r.status, r.range, r.bytes_sent) for r in logged] == [
        (206, "bytes=100-199", 100),
        (206, "bytes=300000-", len(DATA) - 300000),
        (200, "bytes=10-", len(DATA)),
    ]
    assert logged[1].authorization == "Bearer t0k"

    server.clear_log()
    assert server.requests() == []
    client.head(url)
    assert [(r.method, r.status, r.bytes_sent) for r in server.requests(min_count=1)] == [
        ("HEAD", 200, 0)
    ]


def test_nginx_extra_locations(
    nginx_factory: NginxFactory, site: Path, client: httpx.Client
) -> None:
    server = nginx_factory(
        site,
        extra_locations="""
        location /private/ {
            if ($http_authorization != "Bearer ok") { return 401; }
        }
        """,
    )
    assert client.get(server.url("private/secret.txt")).status_code == 401
    ok = client.get(server.url("private/secret.txt"), headers={"Authorization": "Bearer ok"})
    assert ok.status_code == 200
    assert ok.text == "secret"
    assert [r.status for r in server.requests(min_count=2)] == [401, 200]


def test_nginx_retries_when_the_port_is_taken(
    monkeypatch: pytest.MonkeyPatch, site: Path, tmp_path: Path
) -> None:
    if not nginx_module.nginx_available():
        pytest.skip("nginx not installed")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = iter([busy.getsockname()[1]])
        real_free_port = nginx_module._free_port
        monkeypatch.setattr(
            nginx_module, "_free_port", lambda host: next(ports, None) or real_free_port(host)
        )
        with NginxServer(site, workdir=tmp_path / "nginx") as server:
            assert server.port != busy.getsockname()[1]
            assert httpx.get(server.url("private/secret.txt")).text == "secret"
        assert not server.running


def test_missing_nginx_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures_module, "nginx_available", lambda: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        fixtures_module._require_nginx()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI"):
        fixtures_module._require_nginx()


# ================================================================ fault server: normal service
def test_normal_service(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/a/model.bin", DATA)
    url = fault_server.url("/a/model.bin")

    response = client.get(url, headers={"X-Probe": "1"})
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    last_modified = response.headers["last-modified"]
    assert email.utils.parsedate_to_datetime(last_modified).timestamp() < time.time()
    assert response.headers["accept-ranges"] == "bytes"

    head = client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(DATA))
    assert head.headers["etag"] == etag

    assert client.get(fault_server.url("/nope")).status_code == 404
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304

    fault_server.wait_idle()
    requests = fault_server.requests
    assert [(r.method, r.path, r.status) for r in requests] == [
        ("GET", "/a/model.bin", 200),
        ("HEAD", "/a/model.bin", 200),
        ("GET", "/nope", 404),
        ("GET", "/a/model.bin", 304),
        ("GET", "/a/model.bin", 304),
    ]
    first = requests[0]
    assert first.headers["x-probe"] == first.headers["X-PROBE"] == "1"
    assert first.bytes_sent == len(DATA)
    assert first.fault is None
    assert first.range is None
    assert len(fault_server.requests_for("/a/model.bin")) == 4
    # Keep-alive: one httpx.Client, one TCP connection.
    assert fault_server.connections == 1
    assert {r.connection_id for r in requests} == {1}


def test_ranges(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", DATA)
    url = fault_server.url("/m")
    size = len(DATA)

    def get(range_: str, **headers: str) -> httpx.Response:
        return client.get(url, headers={"Range": range_, **headers})

    r = get("bytes=1000-")
    assert (r.status_code, r.content) == (206, DATA[1000:])
    assert r.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    r = get("bytes=10-19")
    assert (r.status_code, r.content) == (206, DATA[10:20])
    assert r.headers["content-range"] == f"bytes 10-19/{size}"
    r = get("bytes=-5")
    assert (r.status_code, r.content) == (206, DATA[-5:])
    r = get(f"bytes={size}-")
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"

    etag = r.headers["etag"]
    last_modified = r.headers["last-modified"]
    assert get("bytes=10-", **{"If-Range": etag}).status_code == 206
    assert get("bytes=10-", **{"If-Range": last_modified}).status_code == 206
    stale = get("bytes=10-", **{"If-Range": '"stale"'})
    assert (stale.status_code, stale.content) == (200, DATA)
    assert get("bytes=10-", **{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200

    fault_server.wait_idle()
    assert [r.range for r in fault_server.requests][:2] == ["bytes=1000-", "bytes=10-19"]
    assert fault_server.requests[1].bytes_sent == 10
    assert fault_server.requests[-2].if_range == '"stale"'


def test_no_range_support(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", SMALL, range_support=False, etag=None, last_modified=False)
    r = client.get(fault_server.url("/m"), headers={"Range": "bytes=5-"})
    assert (r.status_code, r.content) == (200, SMALL)
    assert "accept-ranges" not in r.headers
    assert "etag" not in r.headers
    assert "last-modified" not in r.headers
    assert fault_server.requests[0].range == "bytes=5-"


# ======================================================================= fault server: faults
def test_faults_apply_in_order_with_times(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file(
        "/m", SMALL, faults=[Status(500, times=2), Serve(), Status(503, retry_after="7")]
    )
    statuses = [client.get(fault_server.url("/m")).status_code for _ in range(5)]
    assert statuses == [500, 500, 200, 503, 200]
    faults = [r.fault for r in fault_server.requests_for("/m")]
    assert faults == [Status(500, times=2)] * 2 + [Serve(), Status(503, retry_after="7"), None]
    assert fault_server.pending_faults("/m") == []
    assert fault_server.connections == 1  # status answers keep the connection usable


def test_status_retry_after_and_forever(fault_server: FaultServer, client: httpx.Client) -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    fault_server.add_file(
        "/m",
        SMALL,
        faults=[
            Status(503, retry_after="2", body=b"busy"),
            Status(429, retry_after=date),
            Status(401, headers={"WWW-Authenticate": 'Bearer realm="models"'}),
            Status(404, times=None),
        ],
    )
    url = fault_server.url("/m")
    r = client.get(url)
    assert (r.status_code, r.headers["retry-after"], r.content) == (503, "2", b"busy")
    r = client.get(url)
    assert (r.status_code, r.headers["retry-after"]) == (429, date)
    r = client.get(url)
    assert (r.status_code, r.headers["www-authenticate"]) == (401, 'Bearer realm="models"')
    assert [client.get(url).status_code for _ in range(3)] == [404, 404, 404]
    assert fault_server.pending_faults("/m") == [Status(404, times=None)]


def test_reset_after_bytes(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", DATA, faults=[Reset(100_000)])
    received = bytearray()
    with (
        pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
        client.stream("GET", fault_server.url("/m")) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    assert bytes(received) == DATA[:100_000]

    fault_server.wait_idle()
    (record,) = fault_server.requests
    assert record.fault == Reset(100_000)
    assert (record.status, record.bytes_sent) == (200, 100_000)

    # The next request (new connection) is served normally, resuming with a Range.
    rest = client.get(fault_server.url("/m"), headers={"Range": "bytes=100000-"})
    assert (rest.status_code, rest.content) == (206, DATA[100_000:])
    assert fault_server.connections == 2


def test_reset_before_response(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", SMALL, faults=[Reset(None)])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(fault_server.url("/m"))
    fault_server.wait_idle()
    assert fault_server.requests[0].status is None
    assert client.get(fault_server.url("/m")).content == SMALL


def test_short_body(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", DATA, faults=[ShortBody(70_000)])
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        client.get(fault_server.url("/m"))
    fault_server.wait_idle()
    assert fault_server.requests[0].bytes_sent == 70_000
    assert fault_server.requests[0].fault == ShortBody(70_000)


def test_stall_times_out_the_client_and_close_is_prompt() -> None:
    with FaultServer() as server:
        server.add_file("/m", DATA, faults=[Stall(1000, seconds=30)])
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=0.3)) as client,
            pytest.raises(httpx.ReadTimeout),
            client.stream("GET", server.url("/m")) as response,
        ):
            for _ in response.iter_raw():
                pass
        assert server.requests[0].fault == Stall(1000, seconds=30)
        assert server.requests[0].bytes_sent == 1000
        assert not server.requests[0].finished  # still stalling
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert _threads_of(server) == []


def test_change_content(fault_server: FaultServer, client: httpx.Client) -> None:
    new = b"new content" * 100
    fault_server.add_file("/m", DATA, faults=[Serve(), ChangeContent(new)])
    url = fault_server.url("/m")
    first = client.get(url)
    second = client.get(url)
    assert first.content == DATA
    assert second.content == new
    assert first.headers["etag"] != second.headers["etag"]
    assert first.headers["last-modified"] != second.headers["last-modified"]

    # A resume with the old validator gets the whole new content.
    resumed = client.get(url, headers={"Range": "bytes=10-", "If-Range": first.headers["etag"]})
    assert (resumed.status_code, resumed.content) == (200, new)
    assert [type(r.fault) for r in fault_server.requests] == [Serve, ChangeContent, type(None)]

    fault_server.add_faults("/m", ChangeContent(b"v3", new_etag="v3"))
    assert client.get(url).headers["etag"] == '"v3"'


def test_lie_content_length(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", SMALL, faults=[LieContentLength(1000), LieContentLength(10)])
    url = fault_server.url("/m")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)
    short = client.get(url)
    assert (short.status_code, short.content) == (200, SMALL[:10])
    assert client.get(url).content == SMALL  # same connection, still in sync
    assert fault_server.connections == 2


def test_redirect_to_another_host_drops_credentials(
    fault_server: FaultServer, other_host_server: FaultServer
) -> None:
    assert other_host_server.base_url.startswith("http://127.0.0.2:")
    other_host_server.add_file("/mirror/m", SMALL)
    fault_server.add_file("/m", SMALL, faults=[Redirect(other_host_server.url("/mirror/m"))])
    with httpx.Client(follow_redirects=True) as client:
        r = client.get(fault_server.url("/m"), headers={"Authorization": "Bearer secret"})
    assert r.content == SMALL
    assert [x.status_code for x in r.history] == [302]
    assert fault_server.requests[0].authorization == "Bearer secret"
    (forwarded,) = other_host_server.requests
    assert forwarded.path == "/mirror/m"
    assert forwarded.authorization is None


def test_throttle_and_client_abort(fault_server: FaultServer) -> None:
    fault_server.add_file("/slow", DATA, throttle=200_000)
    fault_server.add_file("/paced", SMALL * 10, throttle=4000)
    with httpx.Client() as client:
        started = time.monotonic()
        assert client.get(fault_server.url("/paced")).content == SMALL * 10
        assert time.monotonic() - started > 0.15  # 1000 bytes at 4000 B/s
        with client.stream("GET", fault_server.url("/slow")) as response:
            got = next(response.iter_raw())
            assert 0 < len(got) < len(DATA)
        # Leaving the block closes the half-read response: the client hangs up mid-body.
    fault_server.wait_idle()
    slow = fault_server.requests_for("/slow")[0]
    assert 0 < slow.bytes_sent < len(DATA)


def test_route_handler(fault_server: FaultServer, client: httpx.Client) -> None:
    seen: list[RecordedRequest] = []

    def handler(request: RecordedRequest) -> Response:
        seen.append(request)
        return Response(201, {"X-Echo": request.headers.get("x-in", "")}, request.body[::-1])

    fault_server.add_route("/api", handler)
    r = client.post(fault_server.url("/api?q=1"), content=b"abc", headers={"X-In": "hi"})
    assert (r.status_code, r.content, r.headers["x-echo"]) == (201, b"cba", "hi")
    assert seen[0].method == "POST"
    assert seen[0].target == "/api?q=1"
    assert fault_server.requests_for("/api") == seen


def test_close_is_prompt_with_idle_keepalive_connections() -> None:
    before = time.monotonic()
    server = FaultServer().start()
    server.add_file("/m", SMALL)
    client = httpx.Client()
    try:
        assert client.get(server.url("/m")).status_code == 200  # connection stays open, idle
        assert len(_threads_of(server)) == 2  # acceptor + one connection
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 1.0
        assert _threads_of(server) == []
    finally:
        client.close()
    assert time.monotonic() - before < 2.0


def test_other_host_binds_127_0_0_2(other_host_server: FaultServer) -> None:
    other_host_server.add_file("/x", SMALL)
    assert httpx.get(other_host_server.url("/x")).content == SMALL
