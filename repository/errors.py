"""Errors raised by this package.

Every exception raised from this package's code is a :class:`RepositoryError`::

    RepositoryError
    ├── InvalidVersionError      (also ValueError)  a version or range that does not parse
    ├── InvalidMRLError          (also ValueError)  an MRL whose parts cannot name a path
    ├── MetadataError            (also ValueError)  a metadata.json that is not what it should be
    ├── UnsupportedSchemeError                      no repository factory for a URL scheme
    ├── ArtifactNotFoundError                       nothing matched an MRL, version and filter
    ├── ArtifactExistsError                         a version published again with other content
    ├── DownloadError                               an item or metadata could not be fetched
    │   └── OfflineError                            ... because offline mode forbids the network
    ├── ChecksumMismatchError                       fetched bytes do not match the declared hash
    ├── InstallError                                the cache could not be written (disk, rights)
    └── ExtractionError                             an archive could not be extracted
        └── UnsafeArchiveError                      ... because it tries to escape or is a bomb

Errors carry their context as keyword-only attributes so that programs need not parse messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "ChecksumMismatchError",
    "DownloadError",
    "ExtractionError",
    "InstallError",
    "InvalidMRLError",
    "InvalidVersionError",
    "MetadataError",
    "OfflineError",
    "RepositoryError",
    "UnsafeArchiveError",
    "UnsupportedSchemeError",
]


class RepositoryError(Exception):
    """All exceptions raised from this package's code."""


class InvalidVersionError(RepositoryError, ValueError):
    """A version or version range that does not parse.

    :param version: the input that was rejected.
    """

    def __init__(self, message: str, *, version: str) -> None:
        super().__init__(message)
        self.version = version


class InvalidMRLError(RepositoryError, ValueError):
    """An MRL whose type, application, group or artifact cannot name a path."""

    def __init__(self, message: str, *, value: str) -> None:
        super().__init__(message)
        self.value = value


class MetadataError(RepositoryError, ValueError):
    """A metadata.json that is not JSON, has wrong types or misses a required field.

    :param source: the file or URL the metadata came from.
    :param field: the dotted path of the offending field (``artifacts.0.files.m.size``), or None.
    """

    def __init__(self, message: str, *, source: str, field: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.field = field


class UnsupportedSchemeError(RepositoryError):
    """No repository factory is registered for a URL's scheme."""

    def __init__(self, message: str, *, scheme: str, known: Iterable[str]) -> None:
        super().__init__(message)
        self.scheme = scheme
        self.known = sorted(known)


class ArtifactNotFoundError(RepositoryError):
    """No artifact matched an MRL, a version range and a property filter."""

    def __init__(
        self,
        message: str,
        *,
        mrl: str,
        version: str | None = None,
        filter: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.mrl = mrl
        self.version = version
        self.filter = dict(filter or {})


class ArtifactExistsError(RepositoryError):
    """A version that is published already (with other content) was published again.

    :param name: what was published (an MRL or an asset name).
    :param version: the version that exists, or None.
    """

    def __init__(self, message: str, *, name: str, version: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.version = version


class DownloadError(RepositoryError):
    """An item or a metadata file could not be fetched.

    :param url: where it was fetched from (credentials removed).
    :param status: the HTTP status, when a server answered.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class OfflineError(DownloadError):
    """Offline mode is on and what was asked for is not in the cache."""


class ChecksumMismatchError(RepositoryError):
    """The bytes of an item do not match the hash its metadata declares.

    :param item: the key of the item in the artifact's ``files``.
    :param source: where the bytes came from.
    :param algorithm: ``sha1`` or ``sha256``.
    :param expected: the declared hex digest.
    :param actual: the hex digest of what was read.
    """

    def __init__(
        self,
        message: str,
        *,
        item: str,
        source: str,
        algorithm: str,
        expected: str,
        actual: str,
    ) -> None:
        super().__init__(message)
        self.item = item
        self.source = source
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class InstallError(RepositoryError):
    """The cache could not be written: a full disk, a permission error, a name clash.

    :param path: the path that could not be written.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path

    @classmethod
    def from_os_error(cls, exc: OSError, *, path: str) -> InstallError:
        """The InstallError for an OSError raised while writing ``path`` (chain it ``from exc``)."""
        return cls(f"Cannot write {path}: {exc.strerror or exc}", path=path)


class ExtractionError(RepositoryError):
    """An archive could not be extracted (corrupt, truncated, or of an unsupported format).

    :param archive: the archive's source (path or URL).
    :param member: the member being extracted, when known.
    """

    def __init__(self, message: str, *, archive: str, member: str | None = None) -> None:
        super().__init__(message)
        self.archive = archive
        self.member = member


class UnsafeArchiveError(ExtractionError):
    """An archive that would write outside its target, holds links or devices, or is a bomb."""
