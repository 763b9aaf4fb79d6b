"""Http11Transport (repository/http11.py) against real servers on 127.0.0.1.

The fault server and nginx come from tests/conftest.py; behaviours they cannot produce (a
server that drops a keep-alive connection, chunked or gzip bodies, a proxy, a garbage status
line) come from :class:`RawServer` below, a threaded socket server that plays a scripted
conversation per connection and records what it received.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import resource
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from repository.http11 import READ_BLOCK, Http11Transport
from repository.pipelining import PipelinedGet, fetch_pipelined
from repository.transfer import HttpTransport, RetryPolicy
from tests.servers.faultserver import (
    FaultServer,
    RecordedRequest,
    Reset,
    Response,
    ShortBody,
    Stall,
)
from tests.servers.fixtures import NginxFactory
from tests.servers.nginx import NGINX_BINARY, NginxServer
from tests.servers.rawserver import (
    RawConnection,
    RawHandler,
    RawServer,
    http_response,
    serve_forever,
)

pytestmark = pytest.mark.network

DATA = hashlib.shake_256(b"http11").digest(300_000)
TIMEOUT = httpx.Timeout(5.0)


# ============================================================================== fixtures
@pytest.fixture
def transport() -> Iterator[Http11Transport]:
    t = Http11Transport()
    yield t
    t.close()


@pytest.fixture
def client(transport: Http11Transport) -> Iterator[httpx.Client]:
    with httpx.Client(transport=transport, timeout=TIMEOUT) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def stream_raw(
    client: httpx.Client, url: str, timeout: httpx.Timeout = TIMEOUT
) -> tuple[list[bytes], Exception]:
    """The raw blocks of a streamed GET and the exception that ended it (AssertionError if
    none did)."""
    blocks: list[bytes] = []
    try:
        with client.stream("GET", url, timeout=timeout) as response:
            assert response.status_code == 200
            for block in response.iter_raw():
                blocks.append(block)
    except httpx.TransportError as exc:
        return blocks, exc
    raise AssertionError(f"no error after {sum(map(len, blocks))} bytes")


# ====================================================================== keep-alive and reuse
def test_sequential_gets_reuse_one_connection(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    fault_server.add_file("/a", DATA)
    fault_server.add_file("/b", DATA[::-1])
    bodies = [client.get(fault_server.url(p)).content for p in ("/a", "/b", "/a", "/b")]
    assert bodies == [DATA, DATA[::-1], DATA, DATA[::-1]]
    assert [r.connection_id for r in fault_server.requests] == [1, 1, 1, 1]
    assert fault_server.connections == 1


def test_idle_connection_closed_by_server_is_not_reused(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    closed = threading.Event()

    def handler(connection: RawConnection) -> None:
        while (request := connection.read_request()) is not None:
            connection.send(http_response(request.target.encode()))  # keep-alive
            if connection.connection_id == 1:
                # Close our side (FIN) as a keep-alive timeout would, but go on reading, so
                # that a request sent on the closed connection would still be recorded.
                connection.sock.shutdown(socket.SHUT_WR)
                closed.set()

    server = raw_server(handler)
    assert client.get(server.url("/first")).content == b"/first"
    assert closed.wait(2.0)
    time.sleep(0.05)  # the FIN has reached the client's idle connection
    assert client.get(server.url("/second")).content == b"/second"
    # The pool saw that the idle connection was closed and did not send on it.
    assert [(r.connection_id, r.target) for r in server.requests] == [(1, "/first"), (2, "/second")]
    assert server.closed_by_client[1].wait(2.0)  # and it closed it


def test_get_retried_once_when_reused_connection_drops_request(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    def handler(connection: RawConnection) -> None:
        while (request := connection.read_request()) is not None:
            if connection.connection_id == 1 and request.target == "/b":
                return  # the request arrived, but the server closes without an answer
            connection.send(http_response(request.target.encode()))

    server = raw_server(handler)
    assert client.get(server.url("/a")).content == b"/a"
    assert client.get(server.url("/b")).content == b"/b"
    assert [(r.connection_id, r.target) for r in server.requests] == [
        (1, "/a"),
        (1, "/b"),
        (2, "/b"),
    ]


def test_post_not_retried_when_reused_connection_drops_request(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    def handler(connection: RawConnection) -> None:
        while (request := connection.read_request()) is not None:
            if request.request_line.startswith("POST"):
                return
            connection.send(http_response(b"ok"))

    server = raw_server(handler)
    assert client.get(server.url("/a")).content == b"ok"
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(server.url("/upload"), content=b"payload")
    assert [(r.connection_id, r.request_line.split()[0], r.body) for r in server.requests] == [
        (1, "GET", b""),
        (1, "POST", b"payload"),
    ]
    assert server.connections == 1


def test_get_not_retried_on_a_new_connection(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    def handler(connection: RawConnection) -> None:
        connection.read_request()  # then close without an answer, whatever the connection

    server = raw_server(handler)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url("/a"))
    assert server.connections == 1
    assert len(server.requests) == 1


def test_connections_are_reused_when_descriptors_are_above_select_limit(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if max(soft, hard) < 1100:
        pytest.skip(f"cannot open more than {hard} files")
    if soft < 1100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2048), hard))
    fault_server.add_file("/a", b"a")
    # Fill the descriptors below 1024, so that the client's socket gets a higher one.
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1050)]
    try:
        for _ in range(3):
            assert client.get(fault_server.url("/a")).content == b"a"
    finally:
        for descriptor in fillers:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert fault_server.connections == 1


def test_idle_connection_dropped_after_keepalive_expiry(fault_server: FaultServer) -> None:
    fault_server.add_file("/a", DATA)
    with httpx.Client(transport=Http11Transport(keepalive_expiry=0.1), timeout=TIMEOUT) as client:
        assert client.get(fault_server.url("/a")).content == DATA
        assert client.get(fault_server.url("/a")).content == DATA  # still fresh
        time.sleep(0.25)
        assert client.get(fault_server.url("/a")).content == DATA
    assert [r.connection_id for r in fault_server.requests] == [1, 1, 2]


# ======================================================================= bodies and failures
def test_short_body_yields_what_was_sent_then_remote_protocol_error(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    fault_server.add_file("/m", DATA, faults=[ShortBody(100_000)])
    blocks, error = stream_raw(client, fault_server.url("/m"))
    assert isinstance(error, httpx.RemoteProtocolError)
    assert "200000 bytes missing" in str(error)
    assert b"".join(blocks) == DATA[:100_000]


def test_reset_mid_body_loses_nothing_received(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    data = hashlib.shake_256(b"reset").digest(2 * READ_BLOCK)
    cut = READ_BLOCK + READ_BLOCK // 2
    fault_server.add_file("/m", data, faults=[Reset(cut)])
    blocks, error = stream_raw(client, fault_server.url("/m"))
    assert isinstance(error, httpx.ReadError)  # ECONNRESET, translated
    assert b"".join(blocks) == data[:cut]
    assert max(map(len, blocks)) <= READ_BLOCK
    # The connection was dropped, not pooled: the next request is served on a new one.
    assert client.get(fault_server.url("/m")).content == data
    assert [r.connection_id for r in fault_server.requests] == [1, 2]


def test_chunked_body_cut_short(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    def handler(connection: RawConnection) -> None:
        if connection.read_request() is not None:
            head = http_response(b"", headers=(("Transfer-Encoding", "chunked"),))
            connection.send(head + b"5\r\nhello\r\n10\r\n12345678")  # 8 of 16 bytes, then FIN

    server = raw_server(handler)
    blocks, error = stream_raw(client, server.url("/c"))
    assert isinstance(error, httpx.RemoteProtocolError)
    assert b"".join(blocks) == b"hello12345678"


def test_garbage_status_line_is_remote_protocol_error(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    def handler(connection: RawConnection) -> None:
        if connection.read_request() is not None:
            connection.send(b"NOT HTTP AT ALL\r\n\r\n")

    server = raw_server(handler)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(server.url("/x"))


def test_stalled_body_raises_read_timeout(fault_server: FaultServer, client: httpx.Client) -> None:
    fault_server.add_file("/m", DATA, faults=[Stall(1000, 5.0)])
    started = time.monotonic()
    blocks, error = stream_raw(client, fault_server.url("/m"), timeout=httpx.Timeout(5, read=0.3))
    elapsed = time.monotonic() - started
    assert isinstance(error, httpx.ReadTimeout)
    assert b"".join(blocks) == DATA[:1000]
    assert 0.25 < elapsed < 2.0


def test_connect_to_closed_port_raises_connect_error(client: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{closed_port()}/x")


def test_unsupported_scheme(client: httpx.Client) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        client.get("ftp://127.0.0.1/x")


def test_read_timeout_of_each_request_applies_on_a_reused_connection(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    def slow(_: RecordedRequest) -> Response:
        time.sleep(0.6)
        return Response(body=b"slow")

    fault_server.add_file("/fast", b"fast")
    fault_server.add_route("/slow", slow)
    short = httpx.Timeout(5, read=0.2)
    assert client.get(fault_server.url("/fast"), timeout=short).content == b"fast"
    # Now a request allowed 5 s to read, on the connection opened with a 0.2 s read timeout.
    assert client.get(fault_server.url("/slow"), timeout=TIMEOUT).content == b"slow"
    assert fault_server.connections == 1


# ================================================================================== the pool
def test_pool_timeout_while_the_only_connection_is_in_use(fault_server: FaultServer) -> None:
    fault_server.add_file("/a", DATA)
    url = fault_server.url("/a")
    with httpx.Client(transport=Http11Transport(max_connections=1), timeout=TIMEOUT) as client:
        first = client.send(client.build_request("GET", url), stream=True)
        started = time.monotonic()
        with pytest.raises(httpx.PoolTimeout):
            client.get(url, timeout=httpx.Timeout(5, pool=0.2))
        assert 0.15 < time.monotonic() - started < 2.0
        assert first.read() == DATA
        first.close()
        assert client.get(url, timeout=httpx.Timeout(5, pool=0.2)).content == DATA
    assert [r.connection_id for r in fault_server.requests] == [1, 1]


def test_waiting_request_gets_the_connection_given_back(fault_server: FaultServer) -> None:
    fault_server.add_file("/a", DATA)
    url = fault_server.url("/a")
    outcome: list[str] = []
    with httpx.Client(transport=Http11Transport(max_connections=1), timeout=TIMEOUT) as client:
        first = client.send(client.build_request("GET", url), stream=True)

        def second() -> None:
            try:
                response = client.get(url, timeout=httpx.Timeout(5, pool=1.0))
                outcome.append(f"{response.status_code} {len(response.content)} bytes")
            except httpx.HTTPError as exc:
                outcome.append(repr(exc))

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.2)  # the second request now waits for the only slot
        assert first.read() == DATA
        first.close()  # complete: the connection goes back to the pool
        waiter.join(5.0)
    assert outcome == [f"200 {len(DATA)} bytes"]


def test_full_pool_closes_an_idle_connection_of_another_origin(
    raw_server: Callable[[RawHandler], RawServer], other_host_server: FaultServer
) -> None:
    local = raw_server(serve_forever(lambda r: http_response(b"local")))
    other_host_server.add_file("/o", b"other")
    quick = httpx.Timeout(5, pool=0.5)
    with httpx.Client(transport=Http11Transport(max_connections=1), timeout=quick) as client:
        assert client.get(local.url("/l")).content == b"local"
        assert client.get(other_host_server.url("/o")).content == b"other"
        # The idle connection to 127.0.0.1 was closed to make room.
        assert local.closed_by_client[1].wait(2.0)
        assert client.get(local.url("/l")).content == b"local"
    assert local.connections == 2
    assert other_host_server.connections == 1


def test_close_closes_idle_connections(
    raw_server: Callable[[RawHandler], RawServer], transport: Http11Transport
) -> None:
    server = raw_server(serve_forever(lambda r: http_response(b"ok")))
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        assert client.get(server.url("/a")).content == b"ok"
        assert not server.closed_by_client[1].wait(0.1)  # idle in the pool, open
        transport.close()
        assert server.closed_by_client[1].wait(2.0)
        # Still usable, but nothing is pooled any more: each request has its own connection.
        assert client.get(server.url("/b")).content == b"ok"
        assert server.closed_by_client[2].wait(2.0)
    assert server.connections == 2


# ================================================================================= encodings
def test_chunked_body_decoded_and_connection_reused(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    def handler(connection: RawConnection) -> None:
        while connection.read_request() is not None:
            connection.send(http_response(b"", headers=(("Transfer-Encoding", "chunked"),)))
            for piece in (b"5;name=x\r\nhello\r\n", b"7\r\n, world\r\n", b"1", b"\r\n!\r\n"):
                connection.send(piece)
                time.sleep(0.01)
            connection.send(b"0\r\nX-Trailer: yes\r\n\r\n")

    server = raw_server(handler)
    with client.stream("GET", server.url("/c")) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join(response.iter_raw()) == b"hello, world!"
    assert client.get(server.url("/c")).content == b"hello, world!"
    assert [r.connection_id for r in server.requests] == [1, 1]


def test_gzip_content_encoding_decoded(
    raw_server: Callable[[RawHandler], RawServer], client: httpx.Client
) -> None:
    packed = gzip.compress(DATA, mtime=0)
    server = raw_server(
        serve_forever(lambda r: http_response(packed, headers=(("Content-Encoding", "gzip"),)))
    )
    response = client.get(server.url("/g"))
    assert response.content == DATA
    assert "gzip" in server.requests[0].headers["accept-encoding"]
    with client.stream("GET", server.url("/g")) as streamed:
        assert b"".join(streamed.iter_bytes()) == DATA
    with client.stream("GET", server.url("/g")) as streamed:
        assert b"".join(streamed.iter_raw()) == packed


def test_large_body_arrives_in_chunks_never_above_read_block(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    data = hashlib.shake_256(b"big").digest(4 * READ_BLOCK)
    fault_server.add_file("/big", data)
    with client.stream("GET", fault_server.url("/big")) as response:
        blocks = list(response.iter_raw())
    assert max(map(len, blocks)) <= READ_BLOCK
    assert b"".join(blocks) == data


# ==================================================================================== proxies
@pytest.fixture
def proxy_env(
    monkeypatch: pytest.MonkeyPatch, raw_server: Callable[[RawHandler], RawServer]
) -> RawServer:
    """A raw server acting as the HTTP proxy of the environment; it answers "via proxy"."""
    proxy = raw_server(serve_forever(lambda r: http_response(b"via proxy")))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    return proxy


def fetch_with_http_transport(url: str) -> bytes:
    """GET ``url`` with a new :class:`HttpTransport` (which reads the proxy variables)."""
    transport = HttpTransport(retry=RetryPolicy(attempts=1), timeout=TIMEOUT)
    try:
        response = transport.open(url)
        try:
            return response.read()
        finally:
            response.close()
    finally:
        transport.close()


def test_plain_httpx_client_uses_the_environment_proxy(
    proxy_env: RawServer, other_host_server: FaultServer
) -> None:
    """Control for the next test: httpx 0.28 proxies 127.0.0.2 when NO_PROXY is unset."""
    other_host_server.add_file("/m", b"direct")
    with httpx.Client(timeout=TIMEOUT) as client:
        assert client.get(other_host_server.url("/m")).content == b"via proxy"
    assert [r.request_line for r in proxy_env.requests] == [
        f"GET {other_host_server.url('/m')} HTTP/1.1"
    ]
    assert other_host_server.requests == []


def test_http_transport_uses_the_environment_proxy(
    proxy_env: RawServer, other_host_server: FaultServer
) -> None:
    other_host_server.add_file("/m", b"direct")
    body = fetch_with_http_transport(other_host_server.url("/m"))
    assert [r.request_line for r in proxy_env.requests] == [
        f"GET {other_host_server.url('/m')} HTTP/1.1"
    ]
    assert body == b"via proxy"


def test_http_transport_goes_direct_for_hosts_in_no_proxy(
    proxy_env: RawServer, other_host_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")
    monkeypatch.setenv("no_proxy", "127.0.0.2")
    other_host_server.add_file("/m", b"direct")
    body = fetch_with_http_transport(other_host_server.url("/m"))
    assert body == b"direct"
    assert proxy_env.requests == []


# ====================================================================================== HTTPS
def _ssl_tools_missing() -> str | None:
    if shutil.which("openssl") is None:
        return "openssl is not on PATH"
    if not NGINX_BINARY.is_file():
        return f"{NGINX_BINARY} is not installed"
    version = subprocess.run(
        [str(NGINX_BINARY), "-V"], capture_output=True, text=True, check=False
    ).stderr
    if "--with-http_ssl_module" not in version:
        return "nginx is built without --with-http_ssl_module"
    return None


@dataclass(frozen=True)
class HttpsSite:
    server: NginxServer
    base_url: str  # https://127.0.0.1:PORT/
    certificate: Path


@pytest.fixture
def https_nginx(tmp_path: Path, nginx_factory: NginxFactory) -> HttpsSite:
    """nginx serving ``/m`` (DATA) over TLS too, with a self-signed certificate for 127.0.0.1."""
    missing = _ssl_tools_missing()
    if missing:
        pytest.skip(missing)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    root = tmp_path / "site"
    root.mkdir()
    (root / "m").write_bytes(DATA)
    port = closed_port()
    # NginxServer has no TLS option; its extra_locations text goes inside the server block,
    # where a second listen directive, with TLS, is allowed.
    server = nginx_factory(
        root,
        extra_locations=f"        listen 127.0.0.1:{port} ssl;\n"
        f'        ssl_certificate "{cert}";\n'
        f'        ssl_certificate_key "{key}";\n',
    )
    return HttpsSite(server, f"https://127.0.0.1:{port}/", cert)


def test_https_with_a_trusted_certificate_reuses_the_connection(https_nginx: HttpsSite) -> None:
    context = ssl.create_default_context(cafile=str(https_nginx.certificate))
    url = https_nginx.base_url + "m"
    with httpx.Client(transport=Http11Transport(ssl_context=context), timeout=TIMEOUT) as client:
        responses = [client.get(url) for _ in range(3)]
    assert [(r.status_code, r.content) for r in responses] == [(200, DATA)] * 3
    logged = https_nginx.server.requests(min_count=3)
    assert [(r.uri, r.status) for r in logged] == [("/m", 200)] * 3
    assert len({r.connection for r in logged}) == 1  # one TLS connection, kept alive


def test_https_untrusted_certificate_raises_connect_error(
    https_nginx: HttpsSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with (
        httpx.Client(transport=Http11Transport(), timeout=TIMEOUT) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(https_nginx.base_url + "m")


def test_pipelined_gets_over_tls(https_nginx: HttpsSite) -> None:
    context = ssl.create_default_context(cafile=str(https_nginx.certificate))
    gets = [PipelinedGet(https_nginx.base_url + "m", {}) for _ in range(10)]
    answers = list(
        fetch_pipelined(gets, ssl_context=lambda: context, timeout=TIMEOUT, max_body=len(DATA))
    )
    assert answers == [(n, DATA) for n in range(10)]
    logged = https_nginx.server.requests(min_count=10)
    assert len(logged) == 10 and len({r.connection for r in logged}) == 1


def test_pipelining_to_an_untrusted_certificate_yields_nothing(https_nginx: HttpsSite) -> None:
    context = ssl.create_default_context()  # does not trust the self-signed certificate
    gets = [PipelinedGet(https_nginx.base_url + "m", {}) for _ in range(3)]
    assert (
        list(fetch_pipelined(gets, ssl_context=lambda: context, timeout=TIMEOUT, max_body=1 << 20))
        == []
    )
