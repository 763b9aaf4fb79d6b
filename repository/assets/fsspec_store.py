"""``FsspecStore``: objects in ``s3://bucket/prefix`` and the other fsspec file systems.

fsspec and its back-ends (``s3fs`` for ``s3://``, ``gcsfs``, ``adlfs``...) are optional extras
(``pip install "repository[s3]"``); they are imported on first use, and a missing one is an
:class:`~repository.errors.UnsupportedSchemeError` naming the extra. Credentials and endpoints
come from the back-end's usual configuration (for S3: ``AWS_*`` variables, including
``AWS_ENDPOINT_URL``, or ``~/.aws``) or from ``storage_options``.

Listings are never cached (``use_listings_cache=False`` unless the options say otherwise):
the store is shared by many machines, and a stale listing would hide a new version.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from repository.assets.atomic import copy_stream
from repository.assets.errors import ObjectNotFoundError, UploadError
from repository.assets.store import ObjectStore, TranslatingReader
from repository.errors import DownloadError, RepositoryError, UnsupportedSchemeError
from repository.hashing import Readable
from repository.registry import url_scheme

__all__ = ["FsspecStore", "ObjectInfo", "fsspec_schemes"]

logger = logging.getLogger(__name__)

#: Object-store schemes and the optional extra that brings their fsspec back-end.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object of a listing: its key under the store's root, size and ETag (if known)."""

    key: str
    size: int | None
    etag: str | None


def _fsspec() -> Any:
    return importlib.import_module("fsspec")


def fsspec_schemes(candidates: set[str] | None = None) -> set[str]:
    """The schemes among ``candidates`` (default: :data:`EXTRAS`) whose fsspec back-end is
    installed. Nothing is imported but fsspec's registry."""
    try:
        registry = importlib.import_module("fsspec.registry")
    except ImportError:
        return set()
    found = set()
    for scheme in candidates if candidates is not None else set(EXTRAS):
        if scheme in registry.registry:  # imported already, or registered by a program
            found.add(scheme)
            continue
        spec = registry.known_implementations.get(scheme)
        module = spec["class"].split(".", 1)[0] if spec else None
        if module and importlib.util.find_spec(module) is not None:
            found.add(scheme)
    return found


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return 403 if isinstance(exc, PermissionError) else None


def _translate(exc: Exception, url: str, *, writing: bool) -> RepositoryError:
    if writing:
        return UploadError(f"Writing {url} failed: {exc}", url=url, status=_status(exc))
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFoundError(f"No object {url}", url=url)
    return DownloadError(f"Reading {url} failed: {exc}", url=url, status=_status(exc))


@contextlib.contextmanager
def _translating(url: str, *, writing: bool = False) -> Iterator[None]:
    try:
        yield
    except RepositoryError:
        raise
    except Exception as exc:  # back-ends raise anything (botocore, aiohttp, gcsfs...)
        raise _translate(exc, url, writing=writing) from exc


class FsspecStore(ObjectStore):
    """Objects under an fsspec URL such as ``s3://bucket/prefix``.

    :param storage_options: keyword arguments for the fsspec file system (``key``,
        ``secret``, ``endpoint_url``, ``client_kwargs``...).
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        offline: bool | None = None,
    ) -> None:
        super().__init__(url, offline=offline)
        self.scheme = url_scheme(url)
        self.storage_options = {"use_listings_cache": False, **(storage_options or {})}
        self._fs: Any = None
        self._root = ""

    @property
    def fs(self) -> Any:
        """The fsspec file system, made on first use.

        :raises UnsupportedSchemeError: when fsspec or the scheme's back-end is missing.
        """
        return self._filesystem()[0]

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            extra = EXTRAS.get(self.scheme, self.scheme)
            try:
                fs, root = _fsspec().core.url_to_fs(self.url, **self.storage_options)
            except ImportError as exc:
                raise UnsupportedSchemeError(
                    f"{self.url}: the {self.scheme!r} scheme needs fsspec and its back-end: "
                    f'pip install "repository[{extra}]" ({exc})',
                    scheme=self.scheme,
                    known=fsspec_schemes(),
                ) from exc
            except ValueError as exc:  # fsspec: "Protocol not known"
                raise UnsupportedSchemeError(
                    f"{self.url}: fsspec knows no {self.scheme!r} file system ({exc})",
                    scheme=self.scheme,
                    known=fsspec_schemes(),
                ) from exc
            self._fs, self._root = fs, root.rstrip("/")
        return self._fs, self._root

    def _path(self, key: str) -> str:
        root = self._filesystem()[1]
        return f"{root}/{key}" if key else root

    def _key(self, path: str) -> str:
        return path[len(self._root) :].lstrip("/")

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        url = self.url_of(key)
        with _translating(url):
            handle = self.fs.open(self._path(key), "rb")
        try:
            yield TranslatingReader.buffered(
                handle.read, lambda exc: _translate(exc, url, writing=False)
            )
        finally:
            with contextlib.suppress(Exception):
                handle.close()

    def _exists(self, key: str) -> bool:
        with _translating(self.url_of(key)):
            return bool(self.fs.isfile(self._path(key)))

    def _write(self, key: str, stream: Readable) -> None:
        # An object appears whole when the upload completes (a PUT, or a multipart upload's
        # completion); an upload that fails part-way may leave a shorter object, which no
        # reader trusts: .meta and the versions index are written after the data.
        with (
            _translating(self.url_of(key), writing=True),
            self.fs.open(self._path(key), "wb") as out,
        ):
            copy_stream(stream, out)

    def _list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        with _translating(self.url_of(prefix) if prefix else self.url):
            paths = self.fs.find(base)
        keys = [self._key(path) for path in paths]
        return [key for key in keys if key and (not prefix or key.startswith(prefix + "/"))]

    def _delete(self, key: str) -> None:
        with _translating(self.url_of(key), writing=True), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def list_level(self, prefix: str = "") -> list[ObjectInfo]:
        """The objects directly under ``prefix`` (one level, as a ``/`` delimiter lists them),
        or the object ``prefix`` itself when it is one; folders are left out.

        :raises DownloadError: when the store cannot be listed.
        """
        key = self._checked(prefix.rstrip("/"))
        with _translating(self.url_of(key) if key else self.url):
            base = self._path(key)
            try:
                entries = self.fs.ls(base, detail=True)
            except FileNotFoundError:
                return []
        infos = []
        for entry in entries:
            if entry.get("type") != "file":
                continue
            etag = entry.get("ETag") or entry.get("etag")
            infos.append(ObjectInfo(self._key(entry["name"]), entry.get("size"), etag))
        return sorted(infos, key=lambda info: info.key)
