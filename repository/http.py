"""Reading item bytes over HTTP(S) for repositories whose items point at URLs."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import BinaryIO

import httpx

from repository.errors import DownloadError

__all__ = ["open_url"]

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class _ResponseReader(io.RawIOBase):
    """A file-like view of a streaming httpx response body."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        super().__init__()
        self._chunks = response.iter_raw(1 << 20)
        self._pending = b""
        self._url = url

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if not self._pending:
            try:
                self._pending = next(self._chunks, b"")
            except httpx.HTTPError as exc:
                raise DownloadError(
                    f"Download of {self._url} failed: {exc}", url=self._url
                ) from exc
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


@contextlib.contextmanager
def open_url(url: str) -> Iterator[BinaryIO]:
    """Stream the body of ``url``.

    :raises DownloadError: carrying the URL and status, on a network error or a non-2xx answer.
    """
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise DownloadError(
                    f"GET {url} answered {response.status_code}",
                    url=url,
                    status=response.status_code,
                )
            yield io.BufferedReader(_ResponseReader(response, url), 1 << 20)
    except httpx.HTTPError as exc:
        raise DownloadError(f"Download of {url} failed: {exc}", url=url) from exc
