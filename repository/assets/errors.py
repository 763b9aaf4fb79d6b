"""Errors raised by the assets manager and its storage.

Every one is a :class:`~repository.errors.RepositoryError`, and carries its context as
keyword-only attributes::

    RepositoryError
    ├── AssetError                                    an asset could not be named, found or pushed
    │   ├── InvalidAssetSpecError   (also ValueError) a spec that does not parse or names a path
    │   │   └── InvalidAssetVersionError              ... because of its version
    │   ├── UnknownVersioningSystemError (also ValueError) no versioning system by that name
    │   ├── AssetNotFoundError                        no such asset, version or sub-part
    │   ├── AssetExistsError                          a push of a version (or ``new``) that exists
    │   ├── InvalidAssetError       (also ValueError) a local file or folder that cannot be pushed
    │   └── UnsupportedStorageOperationError          a write to read-only storage, a listing...
    ├── DownloadError                                 (repository.errors)
    │   └── ObjectNotFoundError                       a storage object that does not exist
    └── UploadError                                   a storage object could not be written

Storage errors coming from httpx, fsspec, botocore or the file system are translated into
:class:`~repository.errors.DownloadError`, :class:`ObjectNotFoundError` or :class:`UploadError`
where they are raised, chained with ``from``.
"""

from __future__ import annotations

from collections.abc import Iterable

from repository.errors import ArtifactExistsError, DownloadError, RepositoryError

__all__ = [
    "AssetError",
    "AssetExistsError",
    "AssetNotFoundError",
    "InvalidAssetError",
    "InvalidAssetSpecError",
    "InvalidAssetVersionError",
    "ObjectNotFoundError",
    "UnknownVersioningSystemError",
    "UnsupportedStorageOperationError",
    "UploadError",
]


class AssetError(RepositoryError):
    """An asset could not be named, found or pushed."""


class InvalidAssetSpecError(AssetError, ValueError):
    """An asset spec that does not parse, or whose name or sub-part is a path.

    :param spec: the input that was rejected.
    :param reason: what is wrong with it.
    """

    def __init__(self, message: str, *, spec: str, reason: str) -> None:
        super().__init__(message)
        self.spec = spec
        self.reason = reason


class InvalidAssetVersionError(InvalidAssetSpecError):
    """A version that the versioning system rejects (``1.2.3`` under ``major_minor``).

    :param version: the rejected version.
    :param versioning: the name of the versioning system that rejected it.
    """

    def __init__(
        self, message: str, *, spec: str, reason: str, version: str, versioning: str
    ) -> None:
        super().__init__(message, spec=spec, reason=reason)
        self.version = version
        self.versioning = versioning


class UnknownVersioningSystemError(AssetError, ValueError):
    """No versioning system is registered under a name.

    :param name: the name asked for.
    :param known: the registered names.
    """

    def __init__(self, message: str, *, name: str, known: Iterable[str]) -> None:
        super().__init__(message)
        self.name = name
        self.known = sorted(known)


class AssetNotFoundError(AssetError):
    """No version of an asset matches, or the matching version lacks the asked sub-part.

    :param name: the asset's name.
    :param version: the version (or partial version) asked for, if any.
    :param sub_part: the sub-part asked for, if the asset exists but not this part of it.
    :param available: the versions that were considered (local and remote), newest first.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        version: str | None = None,
        sub_part: str | None = None,
        available: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.name = name
        self.version = version
        self.sub_part = sub_part
        self.available = list(available)


class AssetExistsError(AssetError, ArtifactExistsError):
    """A push of a version that the storage already lists, or ``new`` for an existing asset.

    :param name: the asset's name.
    :param version: the version that exists, or None when ``new`` found the asset.
    """


class InvalidAssetError(AssetError, ValueError):
    """A local file or folder that cannot be pushed as an asset (missing, unreadable, or a
    folder holding a top-level ``.SUCCESS``, the name of the local success marker).

    :param path: the file or folder.
    :param reason: what is wrong with it.
    """

    def __init__(self, message: str, *, path: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


class UnsupportedStorageOperationError(AssetError):
    """The storage cannot do this: write to a read-only (HTTP) storage, list an HTTP server.

    :param url: the storage's location.
    :param operation: what was asked (``write``, ``list``, ``delete``).
    """

    def __init__(self, message: str, *, url: str, operation: str) -> None:
        super().__init__(message)
        self.url = url
        self.operation = operation


class ObjectNotFoundError(DownloadError):
    """A storage object (data, ``.meta`` or ``.versions``) does not exist; ``status`` is 404."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, url=url, status=404)


class UploadError(RepositoryError):
    """A storage object could not be written.

    :param url: the object's location (credentials removed).
    :param status: the HTTP status, when a server answered.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
