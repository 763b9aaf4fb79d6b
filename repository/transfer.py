"""HTTP(S) transfers for repositories.

- One pool of connections per repository (:class:`~repository.http11.Http11Transport`, under
  httpx's request and response types), with connect and read timeouts, so that a stalled
  server cannot hang a prepare.
- Credentials (a bearer token, extra headers, user:password in the URL) go only to the
  repository's own origin; redirects are followed by hand so that nothing is forwarded to another
  host. ``.netrc`` entries apply to their own host. URLs are logged and reported without
  credentials or query strings.
- Transient failures (connection errors, timeouts, 408, 429, 5xx) are retried with exponential
  backoff and jitter, honouring ``Retry-After``, a bounded number of times; other 4xx fail at once.
- Offline mode refuses every request before anything is sent.
- Downloads go through a partial file in the cache's bookkeeping folder that records what it
  belongs to (URL, ETag or Last-Modified, size); an interrupted transfer continues from it with a
  Range request, within the same run or in a later process.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import io
import json
import logging
import netrc
import os
import random
import re
import secrets
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from repository import __version__
from repository.errors import DownloadError, OfflineError
from repository.http11 import Http11Transport
from repository.install import SourceChangedError, install_error
from repository.locks import is_abandoned, owner_tag
from repository.pagecache import UncachedAppender
from repository.pipelining import PipelinedGet, fetch_pipelined

__all__ = [
    "OFFLINE_ENV",
    "HttpTransport",
    "MemoryPartial",
    "PartialDownloads",
    "ResumingStream",
    "RetryPolicy",
    "offline_from_env",
    "redact_url",
    "wait_for_discards",
]

logger = logging.getLogger(__name__)

OFFLINE_ENV = "REPOSITORY_OFFLINE"
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Failures mid-body count against the retry budget until this much arrives again, so that a
# server that trickles a few bytes before each stall cannot keep a download going for ever.
PROGRESS_RESETS_RETRIES = 1 << 20
# Bytes of an earlier partial file handed on at a time.
REPLAY_BLOCK = 1 << 20
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": f"python-repository/{__version__} httpx/{httpx.__version__}",
}


def offline_from_env() -> bool:
    """True when ``$REPOSITORY_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def redact_url(url: str) -> str:
    """A URL fit for logs and errors: no user or password, and no query values.

    >>> redact_url("https://user:secret@h.example:8443/a/b.zip?token=abc&x=1")
    'https://h.example:8443/a/b.zip?...'
    >>> redact_url("http://[::1]:8080/a?x")
    'http://[::1]:8080/a?...'
    >>> redact_url("http://h.example/a/b.bin")
    'http://h.example/a/b.bin'
    """
    netloc = url.partition("://")[2].partition("/")[0]
    if "@" not in url and "?" not in url and "#" not in url and netloc == netloc.lower():
        return url  # nothing to hide (asked once per item: skip the parse)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "..." if parts.query else "", ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, parsed once per scheme and authority."""
    start = url.find("://") + 3
    ends = [i for i in (url.find(mark, start) for mark in "/?#") if i >= 0]
    return _origin_of(url[: min(ends)] if start >= 3 and ends else url)


@functools.lru_cache(maxsize=64)
def _origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    :param attempts: tries in all for one request (counted afresh once bytes arrive again).
    :param backoff: the first delay in seconds; it doubles each time, up to ``max_delay``.
    :param max_delay: the longest delay computed by backoff.
    :param max_retry_after: the longest ``Retry-After`` honoured; a longer one is cut to this.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), with equal jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.backoff * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date).

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - (time.time() if now is None else now))


class HttpTransport:
    """GET requests for one repository: pooled, authenticated for its origin only, retried.

    :param base_url: the repository's URL; credentials go only to its scheme, host and port.
        A ``user:password@`` part becomes basic authentication and is removed from the URL.
    :param token: a bearer token for the repository's origin.
    :param headers: extra headers for the repository's origin.
    :param netrc_file: the netrc file to read (default ``$NETRC`` or ``~/.netrc``); its entries
        apply to their own hosts.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        netrc_file: str | os.PathLike[str] | None = None,
        timeout: httpx.Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        offline: bool | None = None,
        max_connections: int = 8,
        client: httpx.Client | None = None,
    ) -> None:
        self._basic: tuple[str, str] | None = None
        self.base_url: str | None = None
        self._origin: tuple[str, str, int | None] | None = None
        if base_url is not None:
            parts = urlsplit(base_url)
            if parts.username is not None:
                self._basic = (parts.username, parts.password or "")
            netloc = parts.netloc.rpartition("@")[2]
            self.base_url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
            self._origin = _origin(self.base_url)
        self._token = token
        self._headers = dict(headers or {})
        self._netrc_file = netrc_file
        self._netrc: netrc.netrc | bool | None = False  # False: not read yet
        self.retry = retry or RetryPolicy()
        self.offline = offline_from_env() if offline is None else offline
        self._timeout = httpx.Timeout(timeout if timeout is not None else DEFAULT_TIMEOUT)
        self._max_connections = max_connections
        # Requests are handed to a transport, not sent through an httpx.Client: the client logs
        # every URL at INFO, query string included (a presigned item URL carries its signature
        # there), and adds nothing this class does not do itself. A caller's own client is
        # used as the caller set it up.
        self._client = client
        self._timeouts = self._timeout.as_dict()
        self._direct = Http11Transport(max_connections=max_connections)
        # URLs that go through a proxy of the environment take a transport of httpx's own,
        # made when first needed.
        self._proxies = urllib.request.getproxies_environment()
        self._proxied: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<HttpTransport {redact_url(self.base_url or '')}>"

    def close(self) -> None:
        """Close the pooled connections."""
        if self._client is not None:
            self._client.close()
        self._direct.close()
        if self._proxied is not None:
            self._proxied.close()

    def _transport_for(self, url: str) -> httpx.BaseTransport:
        """The direct transport, or httpx's when the environment names a proxy for ``url``."""
        if not self._proxies:
            return self._direct
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if not proxy or urllib.request.proxy_bypass(parts.netloc):
            return self._direct
        with self._lock:
            if self._proxied is None:
                self._proxied = httpx.HTTPTransport(
                    proxy=proxy, limits=httpx.Limits(max_connections=self._max_connections)
                )
            return self._proxied

    def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """GET ``url`` once, streaming, with no redirect followed."""
        if self._client is not None:
            request = self._client.build_request("GET", url, headers=headers)
            return self._client.send(request, stream=True, follow_redirects=False)
        request = httpx.Request(
            "GET",
            url,
            headers={**DEFAULT_HEADERS, **headers},
            extensions={"timeout": self._timeouts},
        )
        response = self._transport_for(url).handle_request(request)
        response.request = request
        return response

    # -- credentials ----------------------------------------------------------------------

    def _netrc_entry(self, host: str) -> tuple[str, str] | None:
        with self._lock:
            if self._netrc is False:
                path = self._netrc_file or os.environ.get("NETRC") or Path.home() / ".netrc"
                try:
                    self._netrc = netrc.netrc(os.fspath(path))
                except FileNotFoundError:
                    self._netrc = None
                except (netrc.NetrcParseError, OSError) as exc:
                    # The message could quote the file; say only where it is.
                    logger.warning(
                        "Ignoring unreadable netrc file %s (%s)", path, type(exc).__name__
                    )
                    self._netrc = None
        if not isinstance(self._netrc, netrc.netrc):
            return None
        entry = self._netrc.authenticators(host)
        return (entry[0], entry[2] or "") if entry else None

    def _credentials(self, url: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._origin is not None and _origin(url) == self._origin:
            headers.update(self._headers)
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            elif self._basic:
                headers["Authorization"] = httpx.BasicAuth(*self._basic)._auth_header
        if not any(key.lower() == "authorization" for key in headers):
            entry = self._netrc_entry(urlsplit(url).hostname or "")
            if entry:
                headers["Authorization"] = httpx.BasicAuth(*entry)._auth_header
        return headers

    # -- requests -------------------------------------------------------------------------

    def open(self, url: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET ``url``; return the streaming response once it has a 2xx or 304 status.

        The caller closes the response. Transient failures are retried per :attr:`retry`.

        :raises OfflineError: in offline mode, before anything is sent.
        :raises DownloadError: with the URL and status, when the server refuses or keeps failing.
        """
        shown = redact_url(url)
        if self.offline:
            raise OfflineError(f"Offline mode: not fetching {shown}", url=shown)
        attempt = 0
        while True:
            failure: str
            retry_after: float | None = None
            status: int | None = None
            try:
                response = self._send_following_redirects(url, dict(headers or {}))
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                response.close()
                failure = f"HTTP {status} {response.reason_phrase}".strip()
                if status not in TRANSIENT_STATUSES:
                    raise DownloadError(f"GET {shown} answered {failure}", url=shown, status=status)
            attempt += 1
            if attempt >= self.retry.attempts:
                raise DownloadError(
                    f"GET {shown} failed after {attempt} attempts: {failure}",
                    url=shown,
                    status=status,
                )
            delay = self.retry.delay(attempt - 1, retry_after)
            logger.info("GET %s: %s; retrying in %.2f s", shown, failure, delay)
            time.sleep(delay)

    def _send_following_redirects(self, url: str, headers: dict[str, str]) -> httpx.Response:
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, {**headers, **self._credentials(url)})
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug('HTTP GET %s "%d"', redact_url(url), response.status_code)
            if response.status_code not in REDIRECT_STATUSES or "location" not in response.headers:
                return response
            location = response.headers["location"]
            response.close()
            url = urljoin(url, location)
        raise httpx.TooManyRedirects(
            f"more than {MAX_REDIRECTS} redirects", request=response.request
        )

    def fetch_pipelined(
        self, urls: Sequence[str], *, max_body: int
    ) -> Generator[tuple[int, bytes], None, None]:
        """GET many small files over pipelined connections, one per origin (see
        :mod:`repository.pipelining`), with the headers :meth:`open` would send.

        Yields ``(index, body)`` for each URL answered 200 with its whole body; the others (and
        all of them in offline mode, through a proxy or a client of the caller's) are left for
        :meth:`open`, which reports, redirects and retries. Close the generator to stop early.
        """
        if self.offline or self._client is not None:
            return
        indices: list[int] = []
        gets: list[PipelinedGet] = []
        common = {"User-Agent": DEFAULT_HEADERS["User-Agent"], "Accept-Encoding": "identity"}
        by_origin: dict[tuple[str, str, int | None], dict[str, str]] = {}
        for index, url in enumerate(urls):
            if self._transport_for(url) is self._direct:
                origin = _origin(url)
                headers = by_origin.get(origin)
                if headers is None:  # credentials depend on the origin only
                    headers = by_origin[origin] = {**common, **self._credentials(url)}
                indices.append(index)
                gets.append(PipelinedGet(url, headers))
        answers = fetch_pipelined(
            gets,
            ssl_context=lambda: self._direct.ssl_context,
            timeout=self._timeout,
            max_body=max_body,
        )
        try:
            for position, body in answers:
                yield indices[position], body
        finally:
            answers.close()

    def get_bytes(
        self, url: str, headers: Mapping[str, str] | None = None, *, max_bytes: int
    ) -> tuple[httpx.Response, bytes]:
        """GET ``url`` and read its whole (decoded) body, for small files such as metadata.

        :raises DownloadError: when the body is larger than ``max_bytes``.
        """
        shown = redact_url(url)
        response = self.open(url, headers)
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise DownloadError(
                        f"GET {shown}: the answer is larger than {max_bytes} bytes", url=shown
                    )
        except httpx.HTTPError as exc:
            raise DownloadError(f"GET {shown} failed: {exc}", url=shown) from exc
        finally:
            response.close()
        return response, bytes(body)


# -- partial downloads ----------------------------------------------------------------------


class Sink(Protocol):
    """Where a partial download's bytes are appended: a file, or memory."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Partial:
    """One partial download: a folder holding ``data`` and ``info.json`` (what it belongs to)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        try:
            self.info: dict[str, Any] = json.loads((folder / "info.json").read_text())
        except (OSError, ValueError):
            self.info = {}

    @property
    def size(self) -> int:
        """Bytes downloaded so far."""
        try:
            return self.data.stat().st_size
        except FileNotFoundError:
            return 0

    def save_info(self, **info: Any) -> None:
        """Record what the data belongs to (URL, validators, total size)."""
        self.info = info
        scratch = self.folder / "info.json.new"
        scratch.write_text(json.dumps(info))
        os.replace(scratch, self.folder / "info.json")

    def reset(self) -> None:
        """Forget the bytes downloaded so far."""
        self.data.unlink(missing_ok=True)
        self.info = {}
        (self.folder / "info.json").unlink(missing_ok=True)

    def open_replay(self) -> io.BufferedIOBase:
        """Read the bytes downloaded so far."""
        return self.data.open("rb")

    def open_sink(self, *, cached: bool = True) -> Sink:
        """Append to the bytes downloaded so far; out of the page cache unless ``cached``."""
        return self.data.open("ab") if cached else UncachedAppender(self.data)


class MemoryPartial:
    """A partial download kept in memory, for items small enough to fetch whole again.

    It resumes within the process like a :class:`Partial`, but costs no file, folder or rename:
    for a thousand small items that bookkeeping would cost more than the transfers.
    """

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self._data = io.BytesIO()

    @property
    def size(self) -> int:
        """Bytes downloaded so far."""
        return self._data.getbuffer().nbytes

    def save_info(self, **info: Any) -> None:
        """Record what the data belongs to (URL, validators, total size)."""
        self.info = info

    def reset(self) -> None:
        """Forget the bytes downloaded so far."""
        self.info = {}
        self._data = io.BytesIO()

    def open_replay(self) -> io.BufferedIOBase:
        """Read the bytes downloaded so far."""
        return io.BytesIO(self._data.getvalue())

    def open_sink(self, *, cached: bool = True) -> Sink:
        """Append to the bytes downloaded so far (in memory, whatever ``cached`` says)."""
        return self._data


class PartialDownloads:
    """Partial downloads in the cache's bookkeeping folder, each claimed by one owner at a time.

    ``<root>/<key>/<owner>.<random>/`` holds one partial download of the resource ``key``
    names. A process claims a partial by renaming its folder to a name carrying its owner tag,
    so that two processes never write to one file, whatever locks do. Partials that were
    released (``free.<random>``), or whose owner died, are taken over by the next claim.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def claim(self, key: str) -> Partial:
        """The partial download for ``key``: an abandoned one if any, else a new empty one."""
        folder = self.root / key
        mine = folder / f"{owner_tag()}.{secrets.token_hex(4)}"
        try:
            candidates = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except FileNotFoundError:
            candidates = []
        for candidate in candidates:
            if not self._abandoned(Path(candidate.path)):
                continue
            try:
                os.rename(candidate.path, mine)
            except OSError:
                continue  # another process took it first
            logger.debug("Resuming partial download %s", candidate.path)
            return Partial(mine)
        mine.mkdir(parents=True)
        return Partial(mine)

    @staticmethod
    def _abandoned(path: Path) -> bool:
        owner = path.name.split(".")[0]
        return owner == "free" or is_abandoned(owner, path)

    def release(self, partial: Partial | MemoryPartial) -> None:
        """Leave a partial for a later attempt (of this or another process) to resume; one in
        memory is simply dropped."""
        if isinstance(partial, Partial):
            with contextlib.suppress(OSError):
                os.rename(partial.folder, partial.folder.parent / f"free.{secrets.token_hex(4)}")

    @staticmethod
    def discard(partial: Partial | MemoryPartial) -> None:
        """Delete a partial download (and its key's folder once empty)."""
        if isinstance(partial, Partial):
            shutil.rmtree(partial.folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                partial.folder.parent.rmdir()

    @classmethod
    def discard_in_background(cls, partials: Sequence[Partial]) -> None:
        """Delete finished partial downloads in a thread, so that the caller does not wait while
        the file system frees their blocks (with online discard, 0.15 s per GiB here).

        The thread is not a daemon: the interpreter waits for it before exiting. Until it is
        done the folders keep their owner's tag, so no other process takes them; should the
        process die first, a later claim of the same download finds every byte in place.
        :func:`wait_for_discards` waits for it sooner.
        """

        def discard_all() -> None:
            for partial in partials:
                cls.discard(partial)

        thread = threading.Thread(target=discard_all, name="repository-discard")
        with _discarding_lock:
            _discarding[:] = [other for other in _discarding if other.is_alive()]
            _discarding.append(thread)
            thread.start()


_discarding: list[threading.Thread] = []
_discarding_lock = threading.Lock()


def wait_for_discards() -> None:
    """Return once the partial downloads handed to
    :meth:`PartialDownloads.discard_in_background` so far are deleted."""
    with _discarding_lock:
        threads = list(_discarding)
    for thread in threads:
        thread.join()


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class ResumingStream(io.RawIOBase):
    """The bytes of a URL, read once from start to end, surviving interruptions.

    Bytes already in the partial file are replayed first; the rest comes from the network and is
    appended to the partial file on its way to the reader. A transient failure mid-body resumes
    with ``Range`` and ``If-Range``. A server that answers 200 instead serves the whole body
    again: when its validator is unchanged the bytes already had are skipped, and when the
    content changed the download starts over (or, once bytes were handed to the reader,
    :class:`~repository.install.SourceChangedError` is raised so the caller installs again).

    :param on_size: told the total size once the server states it.
    :param cache_partial: False when the partial file is read again only to resume after a
        crash (an archive extracted as it arrives): it is then kept out of the page cache.
    """

    def __init__(
        self,
        transport: HttpTransport,
        url: str,
        partial: Partial | MemoryPartial,
        *,
        on_size: Callable[[int], None] | None = None,
        cache_partial: bool = True,
    ) -> None:
        super().__init__()
        self._transport = transport
        self.url = url
        self._shown = redact_url(url)
        self._partial = partial
        self._on_size = on_size
        self._cache_partial = cache_partial
        self._started = False
        self._replay: io.BufferedIOBase | None = None
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._sink: Sink | None = None
        self._pending = memoryview(b"")
        self._skip = 0
        self._delivered = 0
        self._failures = 0
        self._since_failure = 0
        self._finished = False
        #: True when some bytes came from an earlier, interrupted transfer.
        self.resumed = False

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read the next bytes into ``buffer``; 0 at the end."""
        if not self._started:
            self._start()
        view = memoryview(buffer).cast("B")
        if self._replay is not None:
            count = self._replay.readinto(view)
            if count:
                self._delivered += count
                return count
            self._replay.close()
            self._replay = None
        if not self._pending:
            chunk = self._receive()
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._delivered += count
        return count

    def chunks(self) -> Iterator[bytes]:
        """Every byte from start to end, in the chunks they arrive in, without copying them.

        An alternative to ``read`` for callers that only pass the bytes on (to hashes).
        """
        if not self._started:
            self._start()
        if self._replay is not None:
            while block := self._replay.read(REPLAY_BLOCK):
                self._delivered += len(block)
                yield block
            self._replay.close()
            self._replay = None
        if self._pending:
            block, self._pending = self._pending.tobytes(), memoryview(b"")
            self._delivered += len(block)
            yield block
        while (chunk := self._receive()) is not None:
            self._delivered += len(chunk)
            yield chunk

    def _receive(self) -> bytes | None:
        """The next bytes from the network, already in the partial file; None at the end."""
        while not self._finished:
            chunk = self._next_chunk()
            if chunk:
                return chunk
        return None

    def _next_chunk(self) -> bytes | None:
        """The next chunk of the response (b"" after an interruption); None at its end."""
        assert self._chunks is not None and self._sink is not None
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finished = True
            self._close_response()
            return None
        except httpx.TransportError as exc:
            self._interrupted(exc)
            return b""
        self._since_failure += len(chunk)
        if self._since_failure >= PROGRESS_RESETS_RETRIES:
            self._failures = 0
        if self._skip:
            dropped = min(self._skip, len(chunk))
            self._skip -= dropped
            chunk = chunk[dropped:]
        if chunk:
            try:
                self._sink.write(chunk)
            except OSError as exc:  # a full disk must not look like a corrupt archive
                assert isinstance(self._partial, Partial)  # memory fails with MemoryError
                raise install_error(exc, self._partial.data) from exc
        return chunk

    def _interrupted(self, exc: httpx.TransportError) -> None:
        self._failures += 1
        self._since_failure = 0
        policy = self._transport.retry
        if self._failures >= policy.attempts:
            raise DownloadError(
                f"Download of {self._shown} failed after {self._failures} attempts: "
                f"{type(exc).__name__}: {exc}",
                url=self._shown,
            ) from exc
        delay = policy.delay(self._failures - 1)
        logger.info(
            "Download of %s interrupted at %d bytes (%s); resuming in %.2f s",
            self._shown,
            self._partial.size,
            type(exc).__name__,
            delay,
        )
        self._close_response()
        time.sleep(delay)
        self._connect()

    def _start(self) -> None:
        self._started = True
        if self._partial.info.get("url") != self.url:
            self._partial.reset()
        had = self._partial.size
        self._connect()
        if had and not self._partial_was_reset:
            self.resumed = True
            self._replay = self._partial.open_replay()

    _partial_was_reset = False

    def _connect(self) -> None:
        """Open the response for the bytes after those in the partial file."""
        assert not self._pending
        self._sink_flush()
        offset = self._partial.size
        info = self._partial.info
        if offset and offset == info.get("size"):
            self._finished = True  # an earlier transfer got every byte; the hash will decide
            return
        validator = info.get("etag") or info.get("last_modified")
        headers = {"Accept-Encoding": "identity"}
        if offset and validator:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = validator
        elif offset:
            self._restart_from_zero()
            offset = 0
        try:
            response = self._transport.open(self.url, headers)
        except DownloadError as exc:
            if exc.status != 416 or not offset:
                raise
            self._restart_from_zero()  # the partial file is longer than the resource now
            response = self._transport.open(self.url, {"Accept-Encoding": "identity"})
            offset = 0
        etag = response.headers.get("etag")
        if etag and etag.startswith("W/"):
            etag = None  # a weak validator cannot guard a byte range
        last_modified = response.headers.get("last-modified")
        if offset and response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
            if match is None or int(match.group(1)) != offset:
                response.close()
                raise DownloadError(
                    f"{self._shown} answered a Range request with a wrong Content-Range",
                    url=self._shown,
                    status=206,
                )
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            if offset:
                unchanged = (etag or last_modified) == validator
                if unchanged:
                    self._skip = offset  # same content without Range support: skip what we have
                else:
                    self._restart_from_zero()
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and self._on_size is not None and not info.get("size"):
            self._on_size(total)
        self._partial.save_info(url=self.url, etag=etag, last_modified=last_modified, size=total)
        self._response = response
        self._chunks = response.iter_raw()
        if self._sink is None:
            self._sink = self._partial.open_sink(cached=self._cache_partial)

    def _restart_from_zero(self) -> None:
        if self._delivered:
            raise SourceChangedError(f"{self._shown} changed while it was being downloaded")
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self._replay is not None:
            self._replay.close()
            self._replay = None
        self._partial.reset()
        self._partial_was_reset = True
        self._skip = 0

    def _sink_flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
            self._chunks = None

    def close(self) -> None:
        """Close the response and the partial file (which stays for a later resume)."""
        self._close_response()
        for handle in (self._sink, self._replay):
            if handle is not None:
                handle.close()
        self._sink = self._replay = None
        super().close()
