"""Object stores: objects by key under one location, the layer below asset storage.

:class:`ObjectStore` is the interface; :class:`LocalFolderStore` serves a local (or mounted)
folder, :class:`~repository.assets.http_store.HttpStore` an HTTP(S) prefix (read-only) and
:class:`~repository.assets.fsspec_store.FsspecStore` ``s3://`` and the other fsspec schemes.
:func:`open_store` picks one by the location's scheme.

Every store translates its foreign errors where they happen: a missing object raises
:class:`~repository.assets.errors.ObjectNotFoundError`, another read failure
:class:`~repository.errors.DownloadError` (also from inside ``read()`` of an opened object), a
write failure :class:`~repository.assets.errors.UploadError`. Stores that use the network refuse
every call in offline mode with :class:`~repository.errors.OfflineError`.
"""

from __future__ import annotations

import abc
import contextlib
import io
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from repository.assets.atomic import write_atomically
from repository.assets.errors import ObjectNotFoundError, UploadError
from repository.assets.settings import offline_mode
from repository.errors import DownloadError, OfflineError, RepositoryError
from repository.hashing import CHUNK_SIZE, Readable
from repository.install import WORK_SUFFIX
from repository.registry import url_scheme

__all__ = ["LocalFolderStore", "ObjectStore", "TranslatingReader", "check_key", "open_store"]


def check_key(key: str) -> str:
    """Return ``key`` if it is a relative object name that cannot climb, else raise ValueError.

    >>> check_key("a/b/1.0.meta")
    'a/b/1.0.meta'
    """
    if not key or key.startswith("/") or "\0" in key or ".." in key.split("/"):
        raise ValueError(f"not a relative object name: {key!r}")
    return key


class TranslatingReader(io.RawIOBase):
    """A raw stream over ``read(size)`` calls, turning foreign errors into ours.

    Wrapped in :class:`io.BufferedReader` it is the ``BinaryIO`` a store hands out, so that a
    network failure in the middle of a body is a :class:`DownloadError`, not an
    ``OSError`` that an extractor would take for corrupt data.
    """

    def __init__(
        self, read: Callable[[int], bytes], translate: Callable[[Exception], RepositoryError]
    ) -> None:
        super().__init__()
        self._read = read
        self._translate = translate

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``; foreign errors are translated."""
        view = memoryview(buffer).cast("B")
        try:
            data = self._read(len(view))
        except RepositoryError:
            raise
        except Exception as exc:  # a store's backend may raise anything; translate it
            raise self._translate(exc) from exc
        view[: len(data)] = data
        return len(data)

    @classmethod
    def buffered(
        cls, read: Callable[[int], bytes], translate: Callable[[Exception], RepositoryError]
    ) -> BinaryIO:
        """The reader wrapped in a 1 MiB :class:`io.BufferedReader`."""
        return io.BufferedReader(cls(read, translate), CHUNK_SIZE)


class ObjectStore(abc.ABC):
    """Objects by key (``a/b/1.0.meta``) under one location.

    Public methods check the key and offline mode, then call the ``_``-prefixed methods that
    subclasses provide.

    :param url: the location, as given (for messages).
    :param offline: forbid network calls (None: ``$REPOSITORY_OFFLINE`` decides at each call).
    """

    #: True when the store talks to the network (and so obeys offline mode).
    uses_network: bool = True
    #: True when the store cannot be written.
    read_only: bool = False

    def __init__(self, url: str, *, offline: bool | None = None) -> None:
        self.url = url.rstrip("/")
        self.offline = offline

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def url_of(self, key: str) -> str:
        """The location of one object, for messages and errors."""
        return f"{self.url}/{key}"

    def _checked(self, key: str) -> str:
        """``key``, once checked; refuses network stores in offline mode ("" is the root)."""
        if key:
            check_key(key)
        if self.uses_network and offline_mode(self.offline):
            url = self.url_of(key) if key else self.url
            raise OfflineError(f"Offline mode: not fetching {url}", url=url)
        return key

    def open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open an object for one sequential read.

        :raises ObjectNotFoundError: when it does not exist.
        :raises DownloadError: when it cannot be read (also from ``read()``).
        :raises OfflineError: in offline mode, for a network store.
        """
        return self._open(self._checked(key))

    def read(self, key: str) -> bytes:
        """The whole content of a (small) object; raises as :meth:`open` does."""
        with self.open(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        """True when the object exists.

        :raises DownloadError: when the store cannot tell.
        """
        return self._exists(self._checked(key))

    def write(self, key: str, content: Readable | bytes) -> None:
        """Create or replace an object with ``content`` (bytes, or a stream read to its end).

        A reader of the object sees the old content or the new, never a part.

        :raises UnsupportedStorageOperationError: for a read-only store.
        :raises UploadError: when it cannot be written.
        """
        stream = io.BytesIO(content) if isinstance(content, bytes) else content
        self._write(self._checked(key), stream)

    def list_keys(self, prefix: str = "") -> list[str]:
        """The sorted keys of every object whose key starts with ``prefix`` + ``/`` (all when
        ``prefix`` is empty).

        :raises UnsupportedStorageOperationError: for a store that cannot list (HTTP).
        :raises DownloadError: when it cannot be listed.
        """
        return sorted(self._list(self._checked(prefix.rstrip("/"))))

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is no error.

        :raises UploadError: when it cannot be removed.
        """
        self._delete(self._checked(key))

    @abc.abstractmethod
    def _open(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    @abc.abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def _write(self, key: str, stream: Readable) -> None: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> list[str]: ...

    @abc.abstractmethod
    def _delete(self, key: str) -> None: ...


class LocalFolderStore(ObjectStore):
    """Objects as files under a local or mounted folder (modelkit's ``local`` driver).

    Objects are written into a temporary file beside them and renamed, so that machines
    sharing the folder never read half an object.
    """

    uses_network = False

    def __init__(self, root: str | os.PathLike[str], *, offline: bool | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        super().__init__(self.root.as_uri(), offline=offline)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        url = self.url_of(key)
        try:
            handle = self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(f"No object {url}", url=url) from exc
        except OSError as exc:
            raise DownloadError(f"Cannot read {url}: {exc.strerror}", url=url) from exc
        with handle:
            yield TranslatingReader.buffered(handle.read, lambda exc: _read_error(url, exc))

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _write(self, key: str, stream: Readable) -> None:
        try:
            write_atomically(self._path(key), stream)
        except OSError as exc:
            url = self.url_of(key)
            raise UploadError(f"Cannot write {url}: {exc.strerror or exc}", url=url) from exc

    def _list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        keys = []
        for directory, _subdirectories, files in os.walk(base):
            for name in files:
                if not name.endswith(WORK_SUFFIX):
                    keys.append(Path(directory, name).relative_to(self.root).as_posix())
        return keys

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            url = self.url_of(key)
            raise UploadError(f"Cannot delete {url}: {exc.strerror}", url=url) from exc


def _read_error(url: str, exc: Exception) -> DownloadError:
    return DownloadError(f"Reading {url} failed: {exc}", url=url)


def open_store(
    location: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    offline: bool | None = None,
) -> ObjectStore:
    """The object store for a folder, an ``http(s)://`` prefix or an fsspec URL (``s3://b/p``).

    :param storage_options: passed to fsspec (credentials, endpoint...); fsspec schemes only.
    :raises UnsupportedSchemeError: when no store serves the scheme (a missing fsspec package).
    """
    text = os.fspath(location)
    scheme = url_scheme(text)
    if scheme == "file":
        from repository.local import parse_file_location

        return LocalFolderStore(parse_file_location(text)[0], offline=offline)
    if scheme in ("http", "https"):
        from repository.assets.http_store import HttpStore

        return HttpStore(text, offline=offline)
    from repository.assets.fsspec_store import FsspecStore

    return FsspecStore(text, storage_options=storage_options, offline=offline)
