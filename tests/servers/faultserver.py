"""A scripted HTTP/1.1 server for fault injection, running in threads of the test process.

Files are served like a static server would (ETag, Last-Modified, Range, If-Range, keep-alive),
and a queue of faults per file decides what happens to the next requests::

    with FaultServer() as server:
        server.add_file("/a/model.bin", data, faults=[Status(503, retry_after="1"), Reset(1000)])
        ...  # 1st request: 503; 2nd: 1000 body bytes then TCP RST; 3rd and later: normal
        assert [r.fault for r in server.requests_for("/a/model.bin")] == [...]

Every request is recorded (:class:`RecordedRequest`) before anything is answered, so tests can
check what the server saw: how many requests, which Range / If-Range / Authorization headers,
over how many TCP connections (:attr:`FaultServer.connections`).
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import hashlib
import http.server
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeAlias

__all__ = [
    "ChangeContent",
    "Fault",
    "FaultServer",
    "Headers",
    "LieContentLength",
    "RecordedRequest",
    "Redirect",
    "Reset",
    "Response",
    "RouteHandler",
    "Serve",
    "ServedFile",
    "ShortBody",
    "Stall",
    "Status",
]

CHUNK_SIZE = 64 * 1024
_SIOCOUTQ = 0x5411  # Linux: bytes in the send queue not yet acknowledged by the peer


# ===================================================================================== faults
# Every fault has a keyword-only ``times``: how many consecutive requests to the file it
# affects (None: every request from then on). "after_bytes" counts body bytes of the response
# being sent (so for a 206 answer, bytes of the requested range).


@dataclass(frozen=True)
class Serve:
    """No fault: serve normally. A placeholder to script e.g. "first request fine, then a
    reset": ``faults=[Serve(), Reset(1000)]``."""

    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class Reset:
    """Send the headers and the first ``after_bytes`` body bytes, then abort with a TCP RST.

    ``after_bytes=None`` resets before sending anything at all. The server waits (up to 1 s)
    until the client has acknowledged the bytes, so exactly that many bytes reach it.
    """

    after_bytes: int | None = 0
    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class ShortBody:
    """Declare the full Content-Length, send ``after_bytes`` body bytes, close cleanly (FIN)."""

    after_bytes: int
    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class Status:
    """Answer with ``code`` (e.g. 503) instead of the file; the connection stays usable."""

    code: int
    retry_after: str | None = None  # seconds ("2") or an HTTP date
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class Stall:
    """Send the headers and ``after_bytes`` body bytes, go silent for ``seconds``, then close.

    The sleep ends early when the server shuts down."""

    after_bytes: int
    seconds: float
    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class ChangeContent:
    """From this request on, the file has new content, a new ETag and a newer Last-Modified.

    The request that triggers the change is served normally with the new content.
    ``new_etag="auto"`` derives the ETag from the content; None serves no ETag."""

    new_data: bytes
    new_etag: str | None = "auto"
    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class LieContentLength:
    """Declare Content-Length ``declared`` whatever the real body length.

    Larger than the body: send the body, then close (FIN). Smaller: send only ``declared``
    bytes (the message is then well-formed but truncated; the connection stays usable)."""

    declared: int
    _: KW_ONLY
    times: int | None = 1


@dataclass(frozen=True)
class Redirect:
    """Answer ``status`` with ``Location: location`` (absolute URL or a path)."""

    location: str
    status: int = 302
    _: KW_ONLY
    times: int | None = 1


Fault: TypeAlias = (
    Serve | Reset | ShortBody | Status | Stall | ChangeContent | LieContentLength | Redirect
)


# ============================================================================ requests, routes
class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup; repeated headers are joined with ", "."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self.raw: list[tuple[str, str]] = list(items)
        self._map: dict[str, str] = {}
        for name, value in self.raw:
            key = name.lower()
            self._map[key] = f"{self._map[key]}, {value}" if key in self._map else value

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __repr__(self) -> str:
        return f"Headers({self._map!r})"


@dataclass(eq=False)
class RecordedRequest:
    """A request as the server received it, recorded before it was answered."""

    method: str
    path: str  # percent-decoded path, without the query string (like nginx's $uri)
    target: str  # the raw request target, query string included
    headers: Headers
    body: bytes
    time: float  # time.monotonic() when the request line and headers had been read
    connection_id: int  # 1 for the first TCP connection accepted by this server, 2, ...
    fault: Fault | None = None  # the fault applied to this request, if any
    status: int | None = None  # status code sent (None: nothing was sent, e.g. Reset(None))
    bytes_sent: int = 0  # body bytes written so far; final once the request is finished
    finished: bool = False

    @property
    def range(self) -> str | None:
        return self.headers.get("range")

    @property
    def if_range(self) -> str | None:
        return self.headers.get("if-range")

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass(frozen=True)
class Response:
    """What a route handler answers. Content-Length is added unless given in ``headers``."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    close: bool = False  # close the connection (FIN) after the response


RouteHandler: TypeAlias = Callable[[RecordedRequest], Response]


def _auto_etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def _normalise_etag(etag: str | None, data: bytes) -> str | None:
    if etag is None:
        return None
    if etag == "auto":
        return _auto_etag(data)
    if etag.startswith(('"', 'W/"')):
        return etag
    return f'"{etag}"'


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int | None  # None: forever


class ServedFile:
    """State of one file of a :class:`FaultServer`; change it only through the server."""

    def __init__(
        self,
        path: str,
        data: bytes,
        *,
        etag: str | None,
        last_modified: bool,
        range_support: bool,
        faults: Iterable[Fault],
        throttle: int | None,
        content_type: str,
    ) -> None:
        self.path = path
        self.data = data
        self.etag = _normalise_etag(etag, data)
        self.mtime: float | None = float(int(time.time()) - 3600) if last_modified else None
        self.range_support = range_support
        self.throttle = throttle
        self.content_type = content_type
        self.faults: list[_QueuedFault] = []
        self.add_faults(faults)

    def add_faults(self, faults: Iterable[Fault]) -> None:
        for fault in faults:
            if fault.times is not None and fault.times < 1:
                raise ValueError(f"times must be >= 1 or None: {fault!r}")
            self.faults.append(_QueuedFault(fault, fault.times))

    def next_fault(self) -> Fault | None:
        """The fault for the next request (None: serve normally); uses one of its times."""
        if not self.faults:
            return None
        entry = self.faults[0]
        if entry.remaining is not None:
            entry.remaining -= 1
            if entry.remaining == 0:
                self.faults.pop(0)
        return entry.fault

    def change(self, data: bytes, etag: str | None) -> None:
        self.data = data
        self.etag = _normalise_etag(etag, data)
        if self.mtime is not None:
            self.mtime = max(self.mtime + 60.0, float(int(time.time())))

    @property
    def last_modified(self) -> str | None:
        if self.mtime is None:
            return None
        return email.utils.formatdate(self.mtime, usegmt=True)


# ===================================================================================== server
class _ConnectionGoneError(Exception):
    """The connection is gone or the server is stopping: stop handling this connection."""


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # FaultServer joins the threads itself, with a timeout
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FaultServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        with owner._lock:
            owner._connection_count += 1
            connection_id = owner._connection_count
            owner._open_sockets[request] = connection_id
            thread = threading.Thread(
                target=self._serve_connection,
                args=(request, client_address),
                name=f"FaultServer-{self.server_address[1]}-conn{connection_id}",
                daemon=True,
            )
            owner._threads.append(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self.owner._lock:
                self.owner._open_sockets.pop(request, None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError | _ConnectionGoneError):
            self.owner.errors.append(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FaultServer/1"
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection; FaultServer.close() wakes it anyway
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.connection_id = self.owner._open_sockets.get(self.connection, 0)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: everything is in FaultServer.requests

    # Every method goes through _dispatch; files answer GET and HEAD only.
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # --------------------------------------------------------------------- plumbing
    @property
    def owner(self) -> FaultServer:
        return self.server.owner

    def _dispatch(self) -> None:
        try:
            self._handle()
        except (_ConnectionGoneError, OSError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # not supported: do not try to find the next request
            return b""
        if not length:
            return b""
        try:
            return self.rfile.read(int(length))
        except ValueError:
            self.close_connection = True
            return b""

    def _handle(self) -> None:
        raw_path = urllib.parse.urlsplit(self.path).path or "/"
        record = RecordedRequest(
            method=self.command,
            path=urllib.parse.unquote(raw_path),
            target=self.path,
            headers=Headers(self.headers.items()),
            body=b"",
            time=time.monotonic(),
            connection_id=self.connection_id,
        )
        record.body = self._read_body()
        owner = self.owner
        with owner._lock:
            owner._requests.append(record)
            route = owner._routes.get(record.path)
            served = owner._files.get(record.path)
            fault = served.next_fault() if served is not None and route is None else None
            record.fault = fault
            if isinstance(fault, ChangeContent) and served is not None:
                served.change(fault.new_data, fault.new_etag)
        try:
            if route is not None:
                self._serve_route(record, route)
            elif served is not None:
                self._serve_file(record, served, fault)
            else:
                self._send_simple(record, 404, b"not found\n")
        finally:
            record.finished = True
            with owner._lock:
                owner._idle.notify_all()

    def _status_line_and_headers(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, data: bytes | memoryview) -> None:
        if self.owner._stopping.is_set():
            raise _ConnectionGoneError
        self.wfile.write(data)

    def _start_response(
        self, record: RecordedRequest, status: int, headers: list[tuple[str, str]]
    ) -> None:
        record.status = status
        self._write(self._status_line_and_headers(status, headers))

    def _send_body(
        self, record: RecordedRequest, body: bytes, limit: int | None, throttle: int | None
    ) -> None:
        """Send ``body[:limit]`` in chunks, at most ``throttle`` bytes per second."""
        view = memoryview(body)[: len(body) if limit is None else max(0, limit)]
        chunk = CHUNK_SIZE if throttle is None else max(1, min(CHUNK_SIZE, throttle // 20))
        started = time.monotonic()
        sent = 0
        while sent < len(view):
            piece = view[sent : sent + chunk]
            self._write(piece)
            sent += len(piece)
            record.bytes_sent = sent
            if throttle is not None and sent < len(view):
                delay = started + sent / throttle - time.monotonic()
                if delay > 0 and self.owner._stopping.wait(delay):
                    raise _ConnectionGoneError

    def _send_simple(
        self,
        record: RecordedRequest,
        status: int,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        all_headers = [*headers]
        if not any(name.lower() == "content-type" for name, _ in all_headers) and body:
            all_headers.append(("Content-Type", "text/plain; charset=utf-8"))
        all_headers.append(("Content-Length", str(len(body))))
        self._start_response(record, status, all_headers)
        if record.method != "HEAD":
            self._send_body(record, body, None, None)

    # --------------------------------------------------------------------- closing
    def _close_after_response(self) -> None:
        """Close cleanly (FIN) once the handler returns."""
        self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, after the peer acknowledged what was sent."""
        self.close_connection = True
        sock: socket.socket = self.connection
        deadline = time.monotonic() + 1.0
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline and not self.owner._stopping.is_set():
                pending = struct.unpack("i", fcntl.ioctl(sock, _SIOCOUTQ, b"\0" * 4))[0]
                if pending == 0:
                    break
                time.sleep(0.002)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self.owner._lock:
            self.owner._open_sockets.pop(sock, None)
        # socket.close() would wait for the makefile() objects; close the descriptor now.
        with contextlib.suppress(OSError):
            fd = sock.detach()
            if fd >= 0:
                socket.close(fd)
        raise _ConnectionGoneError

    # --------------------------------------------------------------------- routes
    def _serve_route(self, record: RecordedRequest, route: RouteHandler) -> None:
        try:
            response = route(record)
        except Exception as error:
            self.owner.errors.append(error)
            self.close_connection = True
            self._send_simple(record, 500, b"route handler failed\n")
            return
        if response.close:
            self.close_connection = True
        headers = list(response.headers.items())
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(len(response.body))))
        self._start_response(record, response.status, headers)
        if record.method != "HEAD":
            self._send_body(record, response.body, None, None)

    # --------------------------------------------------------------------- files
    def _serve_file(self, record: RecordedRequest, served: ServedFile, fault: Fault | None) -> None:
        if isinstance(fault, Reset) and fault.after_bytes is None:
            self._reset()
        if isinstance(fault, Status):
            headers = list(fault.headers.items())
            if fault.retry_after is not None:
                headers.append(("Retry-After", fault.retry_after))
            self._send_simple(record, fault.code, fault.body, headers)
            return
        if isinstance(fault, Redirect):
            self._send_simple(record, fault.status, b"", [("Location", fault.location)])
            return
        if record.method not in ("GET", "HEAD"):
            self._send_simple(record, 405, b"method not allowed\n", [("Allow", "GET, HEAD")])
            return

        with self.owner._lock:  # a consistent snapshot (ChangeContent may run concurrently)
            data, etag, last_modified = served.data, served.etag, served.last_modified
            range_support, throttle = served.range_support, served.throttle
        status, body, headers = _plan_response(
            record.headers, data, etag, last_modified, range_support
        )
        headers = [("Content-Type", served.content_type), *headers] if status != 304 else headers
        if status in (304, 416):
            self._send_simple(record, status, b"", headers)
            return

        declared = len(body)
        limit: int | None = None
        if isinstance(fault, LieContentLength):
            declared = fault.declared
            if declared > len(body):
                self._close_after_response()
            else:
                limit = declared
        elif isinstance(fault, Reset | ShortBody | Stall):
            limit = fault.after_bytes
        headers.append(("Content-Length", str(declared)))

        self._start_response(record, status, headers)
        if record.method != "HEAD":
            self._send_body(record, body, limit, throttle)

        if isinstance(fault, Reset):
            self._reset()
        elif isinstance(fault, ShortBody):
            self._close_after_response()
        elif isinstance(fault, Stall):
            self.owner._stopping.wait(fault.seconds)
            self._close_after_response()


def _parse_http_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` for a single satisfiable byte range; None to ignore the header
    (syntax not understood, several ranges); "unsatisfiable" for a 416."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first_text:  # suffix: the last N bytes
            suffix = int(last_text)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size - 1) if size else "unsatisfiable"
        first = int(first_text)
        last = int(last_text) if last_text else None
    except ValueError:
        return None
    if first < 0 or (last is not None and last < first):
        return None
    if first >= size:
        return "unsatisfiable"
    return first, size - 1 if last is None else min(last, size - 1)


def _plan_response(
    request: Headers,
    data: bytes,
    etag: str | None,
    last_modified: str | None,
    range_support: bool,
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, body and headers (without Content-Length / Content-Type) of a normal answer."""
    headers: list[tuple[str, str]] = []
    if etag is not None:
        headers.append(("ETag", etag))
    if last_modified is not None:
        headers.append(("Last-Modified", last_modified))

    # Conditional GET (revalidation of a cached copy).
    if_none_match = request.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        if etag is not None and ("*" in tags or etag.removeprefix("W/") in tags):
            return 304, b"", headers
    elif last_modified is not None and (since := request.get("if-modified-since")):
        since_ts, modified_ts = _parse_http_date(since), _parse_http_date(last_modified)
        if since_ts is not None and modified_ts is not None and modified_ts <= since_ts:
            return 304, b"", headers

    if not range_support:
        return 200, data, headers
    headers.append(("Accept-Ranges", "bytes"))
    range_header = request.get("range")
    if range_header is None:
        return 200, data, headers
    if_range = request.get("if-range")
    if if_range is not None:
        if if_range.startswith(('"', "W/")):
            # Strong comparison: a weak validator never matches.
            matches = etag is not None and not etag.startswith("W/") and if_range == etag
        else:
            matches = last_modified is not None and (
                _parse_http_date(if_range) == _parse_http_date(last_modified)
            )
        if not matches:
            return 200, data, headers
    parsed = _parse_range(range_header, len(data))
    if parsed is None:
        return 200, data, headers
    if parsed == "unsatisfiable":
        return 416, b"", [*headers, ("Content-Range", f"bytes */{len(data)}")]
    assert isinstance(parsed, tuple)
    first, last = parsed
    headers.append(("Content-Range", f"bytes {first}-{last}/{len(data)}"))
    return 206, data[first : last + 1], headers


class FaultServer:
    """Scripted HTTP/1.1 server on ``host`` (127.0.0.1 by default; e.g. 127.0.0.2 to play
    "another host"). Use as a context manager, or call :meth:`start` and :meth:`close`."""

    JOIN_TIMEOUT = 5.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._files: dict[str, ServedFile] = {}
        self._routes: dict[str, RouteHandler] = {}
        self._requests: list[RecordedRequest] = []
        self._threads: list[threading.Thread] = []
        self._open_sockets: dict[socket.socket, int] = {}  # open connection -> its id
        self._connection_count = 0
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.errors: list[BaseException] = []  # unexpected exceptions in the server threads

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FaultServer:
        if self._httpd is not None:
            return self
        if self._stopping.is_set():
            raise RuntimeError("a FaultServer cannot be restarted")
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FaultServer-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def close(self) -> None:
        """Stop promptly: stop accepting, wake stalls and throttles, shut every connection
        down, join all threads. Raises RuntimeError if a thread does not stop, or if a server
        thread raised something other than a connection error."""
        httpd = self._httpd
        if httpd is None or self._stopping.is_set():
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            sockets = list(self._open_sockets)
            threads = [*self._threads]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + self.JOIN_TIMEOUT
        assert self._serve_thread is not None
        for thread in [self._serve_thread, *threads]:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in [self._serve_thread, *threads] if t.is_alive()]
        if alive:
            raise RuntimeError(f"FaultServer threads did not stop: {alive}")
        if self.errors:
            raise RuntimeError(f"FaultServer handler failed: {self.errors!r}") from self.errors[0]

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except RuntimeError:
            if exc is None:
                raise

    # ----------------------------------------------------------------- addresses
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FaultServer is not started")
        port: int = self._httpd.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    def url(self, path: str) -> str:
        """Absolute URL of a path of this server."""
        return self.base_url + path.lstrip("/")

    # ----------------------------------------------------------------- content
    def add_file(
        self,
        path: str,
        data: bytes,
        *,
        etag: str | None = "auto",
        last_modified: bool = True,
        range_support: bool = True,
        faults: Iterable[Fault] = (),
        throttle: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> ServedFile:
        """Serve ``data`` at ``path`` (replacing a previous file there).

        ``etag``: "auto" (quoted hash of the content), None (no ETag) or a given value (quoted
        if it is not). ``throttle``: at most this many body bytes per second."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        served = ServedFile(
            path,
            data,
            etag=etag,
            last_modified=last_modified,
            range_support=range_support,
            faults=faults,
            throttle=throttle,
            content_type=content_type,
        )
        with self._lock:
            self._files[path] = served
        return served

    def add_faults(self, path: str, *faults: Fault) -> None:
        """Append faults to the queue of a file already added."""
        with self._lock:
            self._files[path].add_faults(faults)

    def pending_faults(self, path: str) -> list[Fault]:
        """Faults of ``path`` not used up yet."""
        with self._lock:
            return [entry.fault for entry in self._files[path].faults]

    def add_route(self, path: str, handler: RouteHandler) -> None:
        """Answer every request to ``path`` (any method) with ``handler(request)``.

        The handler runs in a server thread; an exception answers 500 and is re-raised by
        :meth:`close`."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        with self._lock:
            self._routes[path] = handler

    # ----------------------------------------------------------------- what the server saw
    @property
    def requests(self) -> list[RecordedRequest]:
        """All requests so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Requests whose (decoded, query-less) path is ``path``."""
        return [r for r in self.requests if r.path == path]

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted so far."""
        with self._lock:
            return self._connection_count

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until every request received so far has been answered (or aborted), so that
        ``status`` and ``bytes_sent`` are final."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not all(r.finished for r in self._requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("FaultServer still busy with a request")
                self._idle.wait(remaining)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
