"""``HttpStore``: a read-only object store over HTTP(S), e.g. a bucket served by a web server.

Requests go through the shared :class:`~repository.transfer.HttpTransport` (pooled
connections, timeouts, retries with backoff, credentials for the store's own origin only,
offline mode); this module only maps objects to URLs and 404 to "no such object".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, NoReturn

from repository.assets.errors import ObjectNotFoundError, UnsupportedStorageOperationError
from repository.assets.store import ObjectStore, TranslatingReader
from repository.errors import DownloadError
from repository.hashing import CHUNK_SIZE, Readable
from repository.transfer import HttpTransport, redact_url

__all__ = ["HttpStore"]

# Objects are wanted as stored: no transfer compression that would change their bytes.
_HEADERS = {"Accept-Encoding": "identity"}


def _chunk_reader(chunks: Iterator[bytes]) -> Callable[[int], bytes]:
    """``read(size)`` over an iterator of byte chunks."""
    pending = b""

    def read(size: int) -> bytes:
        nonlocal pending
        if not pending:
            pending = next(chunks, b"")
        data, pending = pending[:size], pending[size:]
        return data

    return read


class HttpStore(ObjectStore):
    """Objects under an ``http(s)://`` prefix, read-only; listing is not possible either.

    :param transport: the HTTP client to use (default: one of its own, for this origin).
    """

    read_only = True

    def __init__(
        self, url: str, *, offline: bool | None = None, transport: HttpTransport | None = None
    ) -> None:
        super().__init__(url, offline=offline)
        self._transport = transport

    @property
    def transport(self) -> HttpTransport:
        """The HTTP client, made on first use."""
        if self._transport is None:
            self._transport = HttpTransport(self.url + "/", offline=self.offline)
        return self._transport

    def url_of(self, key: str) -> str:
        """The object's URL, without credentials or query."""
        return redact_url(super().url_of(key))

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        url = super().url_of(key)
        shown = self.url_of(key)
        try:
            response = self.transport.open(url, _HEADERS)
        except DownloadError as exc:
            if exc.status in (404, 410):
                raise ObjectNotFoundError(
                    f"No object {shown} (HTTP {exc.status})", url=shown
                ) from exc
            raise
        with contextlib.closing(response):
            yield TranslatingReader.buffered(
                _chunk_reader(response.iter_raw(CHUNK_SIZE)),
                lambda exc: DownloadError(f"Download of {shown} failed: {exc}", url=shown),
            )

    def _exists(self, key: str) -> bool:
        try:
            with self._open(key):
                return True
        except ObjectNotFoundError:
            return False

    def _refuse(self, operation: str) -> NoReturn:
        raise UnsupportedStorageOperationError(
            f"{self.url} is read-only HTTP storage: cannot {operation}",
            url=self.url,
            operation=operation,
        )

    def _write(self, key: str, stream: Readable) -> None:
        self._refuse("write")

    def _list(self, prefix: str) -> list[str]:
        self._refuse("list")

    def _delete(self, key: str) -> None:
        self._refuse("delete")
