"""Many small GETs over few connections: HTTP/1.1 pipelining.

For an artifact of hundreds of small files, what a request costs in Python (building it, parsing
the answer's headers through ``http.client``, handing objects through httpx) is many times what
its bytes cost, and one request at a time waits a round trip for each. Here requests are written
back to back, a window of them ahead of the answers, on a few keep-alive connections, and the
answers are read in order with a minimal parser: a status line, headers, a body of
``Content-Length`` bytes. No well-kept Python HTTP client pipelines, hence this one.

It handles only what it must to be safe: an answer that is not ``200`` with a bounded
``Content-Length`` body (a redirect, an error, a chunked or unbounded body), a connection that
fails, stalls or closes, or anything it cannot parse leaves that request unanswered, and the
caller fetches it the usual way, with redirects, retries and error reports. Requests still in
flight on a connection that closed are sent again on a new one, a bounded number of times.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

__all__ = ["PipelinedGet", "ResponseHead", "fetch_pipelined", "parse_head"]

logger = logging.getLogger(__name__)

MAX_HEAD = 64 << 10
RECV_SIZE = 256 << 10
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) (\d{3})(?: .*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A whole head in one match: the status line, then header lines of a token, a colon and a value
# free of CR and LF. (Checked line by line, it cost 20 us an answer, a fifth of a small item.)
_HEAD = re.compile(
    r"HTTP/1\.([01]) (\d{3})(?: [^\r\n]*)?((?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*)"
)
_FRAMING_FIELD = re.compile(
    r"\r\n(connection|content-length|transfer-encoding):[ \t]*([^\r\n]*?)[ \t]*(?=\r\n|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PipelinedGet:
    """One GET: its URL and the headers to send with it (credentials included)."""

    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class ResponseHead:
    """What the parser needs of an answer's head."""

    status: int
    content_length: int | None  # None: the body's end is not given by a length
    keep_alive: bool


def parse_head(head: bytes) -> ResponseHead:
    """Parse a response's status line and headers (without the blank line that ends them).

    >>> parse_head(b"HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nETag: x")
    ResponseHead(status=200, content_length=3, keep_alive=True)
    >>> parse_head(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked").content_length is None
    True
    >>> parse_head(b"HTTP/1.0 404 Not Found\\r\\nContent-Length: 0").keep_alive
    False

    :raises ValueError: when it is not an HTTP/1.x response head.
    """
    text = head.decode("latin-1")
    match = _HEAD.fullmatch(text)
    if match is None:
        raise _head_error(text)
    minor, status = int(match.group(1)), int(match.group(2))
    # Only the fields that frame the body matter here; the others were checked by _HEAD.
    fields: dict[str, list[str]] = {}
    for name, value in _FRAMING_FIELD.findall(match.group(3)):
        fields.setdefault(name.lower(), []).append(value)
    connection = {
        token.strip().lower()
        for value in fields.get("connection", [])
        for token in value.split(",")
    }
    keep_alive = "keep-alive" in connection if minor == 0 else "close" not in connection
    lengths = set(fields.get("content-length", []))
    content_length: int | None = None
    if "transfer-encoding" not in fields and len(lengths) == 1:
        value = lengths.pop()
        if not value.isdigit():
            raise ValueError(f"bad Content-Length {value[:40]!r}")
        content_length = int(value)
    elif len(lengths) > 1:
        raise ValueError("conflicting Content-Length headers")
    return ResponseHead(status, content_length, keep_alive)


def _head_error(text: str) -> ValueError:
    """Why a response head does not parse, naming the first line at fault."""
    lines = text.split("\r\n")
    if _STATUS_LINE.fullmatch(lines[0]) is None:
        return ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    for line in lines[1:]:
        name, colon, _ = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or "\r" in line or "\n" in line:
            return ValueError(f"not a header line: {line[:80]!r}")
    return ValueError(f"not an HTTP/1.x response head: {text[:80]!r}")


def fetch_pipelined(
    gets: Sequence[PipelinedGet],
    *,
    ssl_context: Callable[[], ssl.SSLContext],
    timeout: httpx.Timeout,
    max_body: int,
    window: int = 32,
) -> Generator[tuple[int, bytes], None, None]:
    """Yield ``(index, body)`` for each GET of ``gets`` answered 200 with its whole body.

    One connection per origin at a time, with up to ``window`` requests in flight, read in the
    caller's thread: while the caller handles a body, the next answers arrive in the socket's
    buffer. (A thread per connection was slower: handing the GIL back and forth between it and
    a caller writing files cost more than the parsing it overlapped.) Unanswered GETs are
    simply not yielded. Closing the generator closes the connection.

    :param ssl_context: gives the TLS settings, asked only when an https URL is met.
    :param max_body: a larger (or unbounded) body is not read: its connection is given up.
    """
    by_origin: dict[tuple[str, str, int], list[tuple[int, _Target]]] = {}
    for index, get in enumerate(gets):
        target = _Target.of(get)
        if target is not None:
            by_origin.setdefault(target.origin, []).append((index, target))
    for share in by_origin.values():
        yield from _Pipeline(share, ssl_context, timeout, max_body=max_body, window=window).run()


@dataclass(frozen=True)
class _Target:
    origin: tuple[str, str, int]
    request: bytes

    @classmethod
    def of(cls, get: PipelinedGet) -> _Target | None:
        """The request's origin and bytes; None when it cannot be sent this way."""
        parts = simple_url_parts(get.url) or url_parts(get.url)
        if parts is None:
            return None
        scheme, host, port, authority, target = parts
        lines = [f"GET {target} HTTP/1.1", f"Host: {authority}"]
        for name, value in get.headers.items():
            if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
                return None
            if name.lower() != "host":
                lines.append(f"{name}: {value}")
        try:
            request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            return None
        return cls((scheme, host, port), request)


UrlParts = tuple[str, str, int, str, str]  # scheme, host, port, Host header, request target


def url_parts(url: str) -> UrlParts | None:
    """What a request for ``url`` is sent with, as httpx encodes it; None for other schemes."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    if parsed.scheme not in ("http", "https") or parsed.userinfo:
        return None
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    authority = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        authority += f":{parsed.port}"
    return parsed.scheme, host, port, authority, parsed.raw_path.decode("ascii")


_SIMPLE_URL = re.compile(
    r"(https?)://([a-z0-9.-]+)(?::([0-9]{1,5}))?"
    r"(/(?:[A-Za-z0-9._~/-]|%[0-9A-F]{2})*)(\?(?:[A-Za-z0-9._~=&-]|%[0-9A-F]{2})+)?"
)


def simple_url_parts(url: str) -> UrlParts | None:
    """:func:`url_parts` for URLs that need no encoding or normalising (most item URLs), without
    httpx's parser, which costs more than the request itself; None for any other URL.

    >>> simple_url_parts("http://127.0.0.1:8080/a/b.bin?x=1")
    ('http', '127.0.0.1', 8080, '127.0.0.1:8080', '/a/b.bin?x=1')
    >>> simple_url_parts("https://h.example/a/../b") is None
    True
    """
    match = _SIMPLE_URL.fullmatch(url)
    if match is None or "/." in match.group(4):
        return None
    scheme, host, port_text, path, query = match.groups()
    default = 443 if scheme == "https" else 80
    port = int(port_text) if port_text else default
    if not 0 < port < 65536 or host.startswith(".") or ".." in host:
        return None
    authority = host if port == default else f"{host}:{port}"
    return scheme, host, port, authority, path + (query or "")


class _GiveUpError(Exception):
    """This connection cannot go on."""


class _ClosedBetweenAnswersError(Exception):
    """The server closed the connection cleanly, between two answers."""


class _Pipeline:
    """The GETs of one origin, pipelined over one connection at a time.

    A connection the server closes cleanly (``Connection: close``, or at the end of an answer)
    is replaced, and what was in flight on it sent again. Any other trouble ends the pipeline:
    the rest is left to the caller, whose requests have their own timeouts and retries.
    """

    def __init__(
        self,
        share: list[tuple[int, _Target]],
        ssl_context: Callable[[], ssl.SSLContext],
        timeout: httpx.Timeout,
        *,
        max_body: int,
        window: int,
    ) -> None:
        self._todo = deque(share)
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._max_body = max_body
        self._window = window

    def run(self) -> Iterator[tuple[int, bytes]]:
        while self._todo:
            before = len(self._todo)
            clean = yield from self._one_connection()
            if not clean or len(self._todo) == before:
                return

    def _one_connection(self) -> Generator[tuple[int, bytes], None, bool]:
        """Pipeline on one new connection; True when the server closed it cleanly (go on)."""
        scheme, host, port = self._todo[0][1].origin
        in_flight: deque[tuple[int, _Target]] = deque()
        try:
            sock = socket.create_connection((host, port), timeout=self._timeout.connect)
        except OSError as exc:
            logger.debug("Pipelining to %s:%d: %s", host, port, exc)
            return False
        try:
            if scheme == "https":
                sock = self._ssl_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(self._timeout.read)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            while self._todo or in_flight:
                if self._todo and len(in_flight) <= self._window // 2:
                    batch = [
                        self._todo.popleft()
                        for _ in range(min(len(self._todo), self._window - len(in_flight)))
                    ]
                    in_flight.extend(batch)
                    sock.sendall(b"".join(target.request for _, target in batch))
                head, body = self._read_answer(sock, buffer)
                index, _ = in_flight.popleft()
                if head.status == 200:
                    yield index, body
                if not head.keep_alive:
                    return True
            return True
        except _ClosedBetweenAnswersError:
            return True
        except (OSError, ValueError, _GiveUpError) as exc:
            logger.debug("Pipelining to %s:%d stopped: %s", host, port, exc)
            return False
        finally:
            sock.close()
            self._todo.extendleft(reversed(in_flight))  # sent but not answered

    def _read_answer(self, sock: socket.socket, buffer: bytearray) -> tuple[ResponseHead, bytes]:
        """The next answer's head and body."""
        if not buffer and not self._receive(sock, buffer):
            raise _ClosedBetweenAnswersError()
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise _GiveUpError("response head too long")
            if not self._receive(sock, buffer):
                raise _GiveUpError("the server closed the connection within an answer")
        head = parse_head(bytes(buffer[:end]))
        del buffer[: end + 4]
        if head.status < 200 or head.content_length is None:
            raise _GiveUpError(f"cannot find the end of a {head.status} answer")
        if head.content_length > self._max_body:
            raise _GiveUpError(f"a body of {head.content_length} bytes is not a small item")
        while len(buffer) < head.content_length:
            if not self._receive(sock, buffer):
                raise _GiveUpError("the server closed the connection within an answer")
        body = bytes(buffer[: head.content_length])
        del buffer[: head.content_length]
        return head, body

    @staticmethod
    def _receive(sock: socket.socket, buffer: bytearray) -> bool:
        """Append what arrives to ``buffer``; False at the end of the connection."""
        data = sock.recv(RECV_SIZE)
        buffer += data
        return bool(data)
