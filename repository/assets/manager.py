"""``AssetsManager``: fetch assets by spec into a local assets directory, as modelkit does.

Usage (needs a storage, so not run as a doctest)::

    manager = AssetsManager("/data/assets", storage="s3://bucket/modelkit-assets")
    manager.fetch_asset("some/directory/asset:0.1[content0]")
PosixPath('/data/assets/some/directory/asset/0.1/content0')

How a spec resolves (details in :mod:`repository.assets.resolve`): a complete version present
locally is used with no network call at all; otherwise the storage's versions index is read (not
in offline mode, nor without storage), the latest matching version is chosen among the local and
listed ones, and it is used from the local copy or downloaded, verified and installed atomically
(:mod:`repository.assets.local_dir`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from repository.assets.errors import AssetNotFoundError
from repository.assets.layout import asset_path
from repository.assets.local_dir import install_version, local_versions, recorded_hashes
from repository.assets.resolve import needs_storage, resolve_version
from repository.assets.settings import default_assets_dir, offline_mode
from repository.assets.spec import AssetSpec
from repository.assets.storage import AssetStorage
from repository.assets.store import ObjectStore
from repository.assets.versioning import VersioningSystem, get_versioning_system
from repository.errors import OfflineError

__all__ = ["AssetInfo", "AssetsManager"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """What :meth:`AssetsManager.fetch_asset` found, with ``return_info=True``.

    :param path: the asset's path, or its sub-part's.
    :param version: the version used.
    :param from_cache: True when the local copy served, False when it was downloaded now.
    :param hashes: the sha256 verified against the storage's ``.meta`` when the version was
        downloaded, by path in the asset (``.`` for a file asset); empty when the ``.meta``
        declared none (an asset pushed by modelkit).
    """

    path: Path
    name: str
    version: str
    from_cache: bool
    hashes: dict[str, str]


class AssetsManager:
    """Assets by spec, in modelkit's local layout, from an optional storage.

    :param assets_dir: the local assets directory; default ``$REPOSITORY_ASSETS_DIR``, else
        ``<cache root>/assets``. Created when something is first downloaded.
    :param storage: an :class:`AssetStorage`, an object store, or its location: a folder,
        ``http(s)://...`` (read-only) or an fsspec URL such as ``s3://bucket/prefix``. None:
        only local versions are used.
    :param versioning: the versioning system (name or instance); default the storage's, else
        ``major_minor``.
    :param storage_options: fsspec options when ``storage`` is an fsspec URL.
    :param offline: never use the network (default: ``$REPOSITORY_OFFLINE``, read at each
        fetch); only local versions are used then.
    """

    def __init__(
        self,
        assets_dir: str | os.PathLike[str] | None = None,
        storage: AssetStorage | ObjectStore | str | os.PathLike[str] | None = None,
        *,
        versioning: str | VersioningSystem | None = None,
        storage_options: dict[str, Any] | None = None,
        offline: bool | None = None,
    ) -> None:
        self.assets_dir = default_assets_dir(assets_dir)
        if isinstance(storage, AssetStorage):
            self.versioning = get_versioning_system(versioning or storage.versioning)
            self.storage: AssetStorage | None = storage
        else:
            self.versioning = get_versioning_system(versioning)
            self.storage = None
            if storage is not None:
                self.storage = AssetStorage(
                    storage,
                    versioning=self.versioning,
                    storage_options=storage_options,
                    offline=offline,
                )
        self.offline = offline

    def __repr__(self) -> str:
        return f"<AssetsManager {self.assets_dir} {self.storage!r}>"

    def local_versions(self, name: str) -> list[str]:
        """The versions of ``name`` present locally with their success marker, newest first."""
        return local_versions(self.assets_dir, name, self.versioning)

    @overload
    def fetch_asset(self, spec: str | AssetSpec, return_info: Literal[False] = False) -> Path: ...

    @overload
    def fetch_asset(self, spec: str | AssetSpec, return_info: Literal[True]) -> AssetInfo: ...

    def fetch_asset(self, spec: str | AssetSpec, return_info: bool = False) -> Path | AssetInfo:
        """The local path of an asset (of its sub-part), downloading it when needed.

        :param spec: ``name[:version][[sub/part]]``; a partial version (``1``) means its
            latest, no version the latest of all.
        :param return_info: return an :class:`AssetInfo` instead of the path.
        :raises InvalidAssetSpecError: when the spec does not parse or names a path.
        :raises AssetNotFoundError: when no version matches, or the sub-part does not exist.
        :raises OfflineError: in offline mode, when the storage would be needed.
        :raises ChecksumMismatchError: when downloaded data does not match its ``.meta``.
        :raises DownloadError: when the storage cannot be read.
        :raises InstallError: when the assets directory cannot be written.
        """
        if isinstance(spec, str):
            spec = AssetSpec.parse(spec, self.versioning)
        elif spec.version is not None:
            self.versioning.check(spec.version, spec=str(spec))
        local = self.local_versions(spec.name)
        offline = offline_mode(self.offline)
        remote: list[str] | None = None
        use_storage = self.storage is not None and not offline
        if use_storage and needs_storage(spec.version, self.versioning, local):
            assert self.storage is not None
            remote = self.storage.versions(spec.name) or []
        resolution = resolve_version(spec.version, self.versioning, local, remote)
        if resolution is None:
            raise self._not_found(spec, local, remote, offline)
        version = resolution.version
        if resolution.local:
            path = asset_path(self.assets_dir, spec.name, version)
            hashes = recorded_hashes(path)
        else:
            assert self.storage is not None  # only the storage lists versions not held locally
            meta = self.storage.meta(spec.name, version)
            path, hashes = install_version(self.storage, spec.name, version, meta, self.assets_dir)
        if spec.sub_part is not None:
            path = path.joinpath(*spec.sub_part_parts)
            if not path.exists():
                raise AssetNotFoundError(
                    f"{spec.name}:{version} has no {spec.sub_part!r}",
                    name=spec.name,
                    version=version,
                    sub_part=spec.sub_part,
                )
        if not return_info:
            return path
        return AssetInfo(path, spec.name, version, from_cache=resolution.local, hashes=hashes)

    def _not_found(
        self, spec: AssetSpec, local: list[str], remote: list[str] | None, offline: bool
    ) -> Exception:
        wanted = f"{spec.name}:{spec.version}" if spec.version else spec.name
        available = self.versioning.sort({*local, *(remote or [])})
        if offline and self.storage is not None:
            return OfflineError(
                f"Offline mode and no local version of {wanted} in {self.assets_dir} "
                f"(local: {local or 'none'}); it needs {self.storage.url}",
                url=self.storage.url,
            )
        where = f"{self.assets_dir}" + (f" or {self.storage.url}" if self.storage else "")
        return AssetNotFoundError(
            f"No version of {wanted} in {where} (available: {available or 'none'})",
            name=spec.name,
            version=spec.version,
            available=available,
        )
