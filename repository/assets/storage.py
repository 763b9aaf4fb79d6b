"""``AssetStorage``: assets in an object store, with modelkit's remote layout.

Reads the versions index and ``.meta`` of an asset and opens its data objects; pushes new
versions. A push writes the data objects first, then the ``.meta`` (with each file's sha256,
hashed while the file is read for upload), and the versions index last, so that a reader,
who trusts only versions the index lists, never sees one whose data is not all there. A
version that the index lists is never pushed again. Layout: :mod:`repository.assets.layout`.

Two writers pushing the same asset at once are not coordinated (no object store offers a
lock): the index is re-read just before it is written, which narrows, but does not close,
the window in which one of the two versions could drop out of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from repository.assets.errors import (
    AssetExistsError,
    AssetNotFoundError,
    InvalidAssetError,
    InvalidAssetVersionError,
    ObjectNotFoundError,
)
from repository.assets.layout import file_key, meta_key, versions_key
from repository.assets.meta import (
    DIRECTORY_MARKER,
    FILE_ASSET_PATH,
    AssetFile,
    AssetMeta,
    dump_versions,
    parse_versions,
)
from repository.assets.spec import AssetSpec
from repository.assets.store import ObjectStore, open_store
from repository.assets.versioning import VersioningSystem, get_versioning_system
from repository.hashing import HashingReader

__all__ = ["AssetStorage"]

logger = logging.getLogger(__name__)

VERSIONS_SUFFIX = ".versions"


class AssetStorage:
    """Assets under one object-store location: a folder, ``http(s)://`` (read-only), or an
    fsspec URL such as ``s3://bucket/prefix``.

    An existing modelkit bucket works as it is: give its bucket and prefix
    (``s3://bucket/modelkit-assets``).

    :param location: an :class:`~repository.assets.store.ObjectStore`, or where it is.
    :param versioning: the versioning system of the versions pushed and listed.
    :param storage_options: fsspec options (credentials, endpoint), for fsspec URLs.
    :param offline: forbid network calls (None: ``$REPOSITORY_OFFLINE`` decides).
    """

    def __init__(
        self,
        location: ObjectStore | str | os.PathLike[str],
        *,
        versioning: str | VersioningSystem | None = None,
        storage_options: dict[str, Any] | None = None,
        offline: bool | None = None,
    ) -> None:
        if isinstance(location, ObjectStore):
            self.store = location
        else:
            self.store = open_store(location, storage_options=storage_options, offline=offline)
        self.versioning = get_versioning_system(versioning)

    def __repr__(self) -> str:
        return f"<AssetStorage {self.store.url} {self.versioning.name}>"

    @property
    def url(self) -> str:
        """The storage's location."""
        return self.store.url

    # -- reading ------------------------------------------------------------------------------

    def versions(self, name: str) -> list[str] | None:
        """The versions the index of ``name`` lists, newest first; None when it has none.

        :raises MetadataError: when the index is not ``{"versions": [...]}``.
        :raises DownloadError: when the index cannot be read.
        """
        key = versions_key(name)
        try:
            data = self.store.read(key)
        except ObjectNotFoundError:
            return None
        return self.versioning.sort(parse_versions(data, source=self.store.url_of(key)))

    def meta(self, name: str, version: str) -> AssetMeta:
        """The ``.meta`` of one version.

        :raises AssetNotFoundError: when the version has no ``.meta``.
        :raises MetadataError: when it is not a valid ``.meta``.
        """
        key = meta_key(name, version)
        try:
            data = self.store.read(key)
        except ObjectNotFoundError as exc:
            raise AssetNotFoundError(
                f"{self.store.url_of(key)} does not exist", name=name, version=version
            ) from exc
        return AssetMeta.from_json(data, source=self.store.url_of(key))

    def open_file(
        self, name: str, version: str, path: str
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open one data object of a version (``path`` is ``.`` for a file asset)."""
        return self.store.open(file_key(name, version, path))

    def file_url(self, name: str, version: str, path: str) -> str:
        """Where one data object of a version is, for messages."""
        return self.store.url_of(file_key(name, version, path))

    def iterate_assets(self) -> Iterator[tuple[str, list[str]]]:
        """``(name, versions newest first)`` of every asset with an index, sorted by name.

        :raises UnsupportedStorageOperationError: for storage that cannot be listed (HTTP).
        """
        for key in self.store.list_keys():
            if key.endswith(VERSIONS_SUFFIX):
                name = key.removesuffix(VERSIONS_SUFFIX)
                yield name, self.versions(name) or []

    # -- pushing ------------------------------------------------------------------------------

    def new(self, path: str | os.PathLike[str], name: str, *, version: str | None = None) -> str:
        """Push the first version of a new asset (the system's initial version by default).

        :returns: the version pushed.
        :raises AssetExistsError: when the asset already has an index.
        """
        if self.versions(name) is not None:
            raise AssetExistsError(f"Asset {name!r} already exists in {self.url}", name=name)
        version = version or self.versioning.initial_version()
        self.push(path, name, version)
        return version

    def update(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        bump_major: bool = False,
        major: str | None = None,
        version: str | None = None,
    ) -> str:
        """Push the next version of an existing asset: the next minor (of ``major``, default
        the latest's), or the next major with ``bump_major``, or ``version`` if given.

        :returns: the version pushed.
        :raises AssetNotFoundError: when the asset has no index yet (use :meth:`new`).
        :raises AssetExistsError: when that version exists.
        """
        versions = self.versions(name)
        if versions is None:
            raise AssetNotFoundError(
                f"Asset {name!r} does not exist in {self.url}; push it with new()", name=name
            )
        if version is None:
            version = self.versioning.next_version(versions, bump_major=bump_major, major=major)
        self.push(path, name, version)
        return version

    def push(self, path: str | os.PathLike[str], name: str, version: str) -> AssetMeta:
        """Upload a file or a folder (dotfiles included) as ``name:version`` and list it.

        :raises InvalidAssetSpecError: when the name is not a valid asset name.
        :raises InvalidAssetVersionError: when the version is not a complete version.
        :raises AssetExistsError: when the index already lists the version.
        :raises InvalidAssetError: when the file or folder cannot be read.
        :raises UploadError: when an object cannot be written.
        """
        spec = str(AssetSpec(name, version))
        self.versioning.check(version, spec=spec)
        if not self.versioning.is_complete(version):
            raise InvalidAssetVersionError(
                f"Cannot push {spec}: {version!r} is a partial version",
                spec=spec,
                reason="a partial version",
                version=version,
                versioning=self.versioning.name,
            )
        if version in (self.versions(name) or []):
            raise AssetExistsError(
                f"{name}:{version} already exists in {self.url}", name=name, version=version
            )
        source = Path(path)
        meta = self._upload(source, name, version)
        self.store.write(meta_key(name, version), meta.to_json().encode())
        current = self.versions(name) or []
        if version in current:
            raise AssetExistsError(
                f"{name}:{version} was pushed by someone else meanwhile", name=name, version=version
            )
        self.store.write(
            versions_key(name), dump_versions(self.versioning.sort([version, *current])).encode()
        )
        logger.info("Pushed %s:%s (%d files) to %s", name, version, len(meta.files), self.url)
        return meta

    def _upload(self, source: Path, name: str, version: str) -> AssetMeta:
        if source.is_dir():
            paths = _folder_files(source)
            files = [self._upload_file(source / path, name, version, path) for path in paths]
            return AssetMeta.for_files(files, is_directory=True)
        if not source.is_file():
            raise InvalidAssetError(
                f"Cannot push {source}: no such file or folder", path=str(source), reason="missing"
            )
        file = self._upload_file(source, name, version, FILE_ASSET_PATH)
        return AssetMeta.for_files([file], is_directory=False)

    def _upload_file(self, local: Path, name: str, version: str, path: str) -> AssetFile:
        try:
            handle = local.open("rb")
        except OSError as exc:
            raise InvalidAssetError(
                f"Cannot read {local}: {exc.strerror}", path=str(local), reason="unreadable"
            ) from exc
        with handle:
            reader = HashingReader(handle, ["sha256"])
            self.store.write(file_key(name, version, path), reader)
            reader.drain()
        return AssetFile(path, reader.hexdigests()["sha256"], reader.bytes_read)


def _folder_files(folder: Path) -> list[str]:
    """The files below ``folder``, dotfiles included, as sorted POSIX relative paths."""
    paths = []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        for file in files:
            paths.append(Path(directory, file).relative_to(folder).as_posix())
    if DIRECTORY_MARKER in paths:
        raise InvalidAssetError(
            f"Cannot push {folder}: a top-level {DIRECTORY_MARKER} is the local success marker",
            path=str(folder / DIRECTORY_MARKER),
            reason=f"holds a top-level {DIRECTORY_MARKER}",
        )
    return sorted(paths)
