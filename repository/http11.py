"""An httpx transport on the standard library's ``http.client``: HTTP/1.1 with pooled keep-alive
connections, bodies handed on as they arrive.

httpx's default transport (httpcore and h11) parses every 64 KiB of a body in Python and copies
it three times; on a local link that costs as much CPU as curl spends on the whole transfer, and
its per-request overhead is twice that of ``http.client``. This transport keeps httpx's API
(client, requests, responses, per-request timeouts, exceptions) and hands a body on as each recv
returns it (about 128 KiB at a time on a fast link), with no copy. It connects directly: httpx
ignores the proxy variables for a client given a transport, so
:class:`~repository.transfer.HttpTransport` sends URLs that need a proxy through a client with
httpx's own transport.

The pool keeps idle connections per origin, drops those the server closed or that stayed idle
longer than ``keepalive_expiry``, and caps the connections open at once at ``max_connections``;
a request finding none free waits for one to come back, up to its pool timeout.
A GET that fails on a reused connection before any byte of the answer arrived (the server closed
it just as it was reused) is sent once more on a new connection, as browsers do.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

__all__ = ["Http11Transport"]

# The most one recv hands on. Each recv allocates a bytes object of this size, shrunk to what
# arrived: at 1 MiB glibc maps and unmaps it every time, and faulting its pages in cost twice
# the CPU of receiving (0.5 against 0.25 s per GiB here); from 256 KiB down it is reused.
READ_BLOCK = 256 << 10
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

Origin = tuple[str, str, int]


@dataclass
class _Idle:
    connection: http.client.HTTPConnection
    since: float


class Http11Transport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client`` with a bounded keep-alive pool (see the module's doc).

    :param ssl_context: for https URLs (default: httpx's, which honours ``SSL_CERT_FILE``).
    :param max_connections: connections open at once, idle ones included.
    :param keepalive_expiry: seconds an idle connection is kept.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 8,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_connections = max_connections
        self._open = 0  # connections open, idle or in use
        self._idle: dict[Origin, list[_Idle]] = {}
        # Guards the counts and the idle lists; requests waiting for a connection wait on it.
        self._changed = threading.Condition()
        self._closed = False

    # -- the pool ---------------------------------------------------------------------------

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of https connections."""
        with self._changed:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            return self._ssl_context

    def _acquire(
        self, origin: Origin, timeouts: dict[str, float | None]
    ) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to ``origin``, and whether it was reused: an idle one that is still
        open, else a new one once there is room (an idle connection of another origin is
        closed to make room). Waits up to the pool timeout for a connection to come back.
        """
        pool_timeout = timeouts.get("pool")
        deadline = None if pool_timeout is None else time.monotonic() + pool_timeout
        stale: list[http.client.HTTPConnection] = []
        try:
            with self._changed:
                while True:
                    reusable = self._pop_idle(origin, stale)
                    if reusable is not None:
                        return reusable, True
                    if self._open < self._max_connections:
                        self._open += 1
                        break
                    other = next((idle for idle in self._idle.values() if idle), None)
                    if other is not None:
                        stale.append(other.pop(0).connection)
                        self._open -= 1
                        continue
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise httpx.PoolTimeout("no connection became free in time")
                    self._changed.wait(remaining)
        finally:
            for connection in stale:
                connection.close()
        try:
            return self._connect(origin, timeouts), False
        except BaseException:
            self._forget()
            raise

    def _pop_idle(
        self, origin: Origin, stale: list[http.client.HTTPConnection]
    ) -> http.client.HTTPConnection | None:
        """An idle connection to ``origin`` still usable; the others go to ``stale`` (locked)."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            entry = idle.pop()
            if now - entry.since <= self._keepalive_expiry and _still_open(entry.connection):
                return entry.connection
            stale.append(entry.connection)
            self._open -= 1
        return None

    def _connect(
        self, origin: Origin, timeouts: dict[str, float | None]
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeouts.get("connect"), context=self.ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeouts.get("connect"))
        try:
            with _translated(httpx.ConnectTimeout, httpx.ConnectError):
                connection.connect()
            assert connection.sock is not None
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            connection.close()
            raise
        return connection

    def _forget(self) -> None:
        """One connection fewer is open: make room for a waiting request."""
        with self._changed:
            self._open -= 1
            self._changed.notify()

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._forget()

    def _give_back(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        with self._changed:
            if not self._closed:
                self._idle.setdefault(origin, []).append(_Idle(connection, time.monotonic()))
                self._changed.notify_all()  # a waiter for this origin can take it
                return
        self._discard(connection)

    def close(self) -> None:
        """Close every idle connection; connections in use close when their response does."""
        with self._changed:
            self._closed = True
            idle = [entry.connection for entries in self._idle.values() for entry in entries]
            self._idle.clear()
            self._open -= len(idle)
            self._changed.notify_all()
        for connection in idle:
            connection.close()

    # -- requests ---------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response, whose body streams from the connection."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} URLs are not served by HTTP/1.1")
        port = url.port or (443 if url.scheme == "https" else 80)
        # The host as httpx encoded it (IDNA 2008), so that the connection, the Host header and
        # the certificate check agree.
        origin: Origin = (url.scheme, url.raw_host.decode("ascii"), port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = request.read()
        target = url.raw_path.decode("ascii")
        while True:
            connection, reused = self._acquire(origin, timeouts)
            try:
                response = self._exchange(connection, target, request, body, timeouts)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                self._discard(connection)
                if reused and request.method in IDEMPOTENT_METHODS:
                    continue  # the server closed it as it was reused: try a new connection
                raise
            except BaseException:
                self._discard(connection)
                raise
            return httpx.Response(
                response.status,
                headers=[
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.getheaders()
                ],
                stream=_Body(self, origin, connection, response),
                extensions={
                    "http_version": b"HTTP/1.0" if response.version == 10 else b"HTTP/1.1",
                    "reason_phrase": response.reason.encode("latin-1", "replace"),
                },
            )

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection,
        target: str,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> http.client.HTTPResponse:
        sock = connection.sock
        assert sock is not None
        # Each request's own timeouts, also on a connection an earlier request opened.
        sock.settimeout(timeouts.get("write"))
        with _translated(httpx.WriteTimeout, httpx.WriteError):
            connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.raw:
                connection.putheader(name, value)
            connection.endheaders(body or None)
        sock.settimeout(timeouts.get("read"))
        with _translated(httpx.ReadTimeout, httpx.ReadError):
            return connection.getresponse()


class _Body(httpx.SyncByteStream):
    """A response body read from its connection, which goes back to the pool once complete."""

    def __init__(
        self,
        transport: Http11Transport,
        origin: Origin,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = connection
        self._response = response
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        while True:
            # One recv per chunk: nothing that arrived is lost when a later recv fails, and the
            # bytes are handed on while they are in the CPU's cache. (Gathering 1 MiB first
            # made the reader sleep and wake for every block: twice the system time.)
            with _translated(httpx.ReadTimeout, httpx.ReadError):
                chunk = response.read1(READ_BLOCK)
            if not chunk:
                break
            yield chunk
        if response.length:  # http.client returns b"" when the peer closes early
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body "
                f"({response.length} bytes missing)"
            )
        self._complete = True

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._complete and not self._response.will_close:
            self._response.close()
            self._transport._give_back(self._origin, connection)
        else:
            self._response.close()
            self._transport._discard(connection)


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """False when the server closed an idle connection (it reads as ready, with EOF or junk)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # select() cannot watch descriptors above 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


@contextlib.contextmanager
def _translated(
    timeout_error: type[httpx.TimeoutException], other_error: type[httpx.TransportError]
) -> Iterator[None]:
    """Raise http.client's and the socket's errors as the httpx exceptions callers expect."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(str(exc) or "timed out") from exc
    except (http.client.RemoteDisconnected, http.client.IncompleteRead) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
    except http.client.HTTPException as exc:  # bad status line, too many or too long headers
        raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise other_error(str(exc) or type(exc).__name__) from exc
