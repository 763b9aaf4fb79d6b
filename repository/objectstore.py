"""``ObjectStoreRepository``: a repository in ``s3://bucket/prefix`` or another fsspec store.

Two layouts, told apart by a listing of the prefix:

- **metadata.json files** below the prefix (DJL's layout, as a ``LocalRepository`` folder):
  it behaves as :class:`~repository.local.LocalRepository` does; item uris are relative to
  their metadata.json (and may not climb out of it), or ``http(s)://`` URLs.
- **no metadata.json**: as DJL's S3 repository (``ai.djl.aws.s3.S3Repository``), the objects
  one level under the prefix (or the object the prefix names, for an archive) are the items of
  one artifact, ``undefined/ai.djl.localmodelzoo/<artifact id>``. The artifact id is the
  ``artifact_id`` query parameter, else the prefix's last segment (without its archive suffix),
  else the bucket's name; the artifact's name is ``model_name``, else the artifact id. An
  archive item is extracted into the resource directory itself.

Metadata (read, or made up from the listing) is kept in the repository's cache folder
(``metadata/<mrl path>metadata.json``), where the inherited ``LocalRepository`` logic reads it:
it is refreshed from the store at each ``locate`` and used as it is in offline mode, so that
prepared artifacts resolve and open with no network at all. Credentials and endpoints come
from the fsspec back-end's configuration (for S3 the ``AWS_*`` variables, ``AWS_ENDPOINT_URL``
included); see :mod:`repository.assets.fsspec_store`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

from repository.assets.atomic import write_atomically
from repository.assets.errors import ObjectNotFoundError
from repository.assets.fsspec_store import FsspecStore, fsspec_schemes
from repository.assets.settings import offline_mode
from repository.assets.store import check_key
from repository.errors import MetadataError
from repository.extract import ExtractionLimits
from repository.filetypes import file_type, name_part
from repository.install import install_error
from repository.local import METADATA_FILE, LocalRepository
from repository.metadata import Artifact, Item, Metadata, dump_metadata, relative_uri_path
from repository.mrl import MRL, UNDEFINED_APPLICATION
from repository.registry import url_scheme
from repository.simple import LOCAL_GROUP

__all__ = ["ObjectStoreRepository", "ObjectStoreRepositoryFactory"]

logger = logging.getLogger(__name__)

_METADATA_SUFFIX = "/" + METADATA_FILE


class ObjectStoreRepository(LocalRepository):
    """Artifacts in an object store, through fsspec (``s3://bucket/prefix?artifact_id=x``).

    :param url: ``<scheme>://<bucket>[/<prefix>][?artifact_id=...&model_name=...]``.
    :param storage_options: fsspec options (credentials, ``endpoint_url``...).
    :param offline: never use the network (default: ``$REPOSITORY_OFFLINE``, at each call).
    """

    is_remote = True

    def __init__(
        self,
        name: str,
        url: str,
        *,
        arguments: dict[str, str] | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        extraction_limits: ExtractionLimits | None = None,
        offline: bool | None = None,
    ) -> None:
        location, _, query = url.partition("?")
        parts = urlsplit(location)
        self.scheme = parts.scheme.lower()
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.is_archive = bool(self.prefix) and file_type(self.prefix).is_archive
        self.offline = offline
        self._store_url = f"{self.scheme}://{self.bucket}/"
        self.store = FsspecStore(self._store_url, storage_options=storage_options, offline=offline)
        super().__init__(
            name,
            Path(),  # replaced below by the metadata folder in the cache
            arguments={**dict(parse_qsl(query)), **(arguments or {})},
            cache_dir=cache_dir,
            extraction_limits=extraction_limits,
        )
        trailing = "/" if self.prefix and not self.is_archive else ""
        self.base_uri = f"{self.scheme}://{self.bucket}/{self.prefix}{trailing}"
        # LocalRepository's logic reads the copies of the metadata kept in the cache.
        self.root = self.cache_directory / "metadata"
        default_id = name_part(self.prefix) if self.prefix else self.bucket
        self.artifact_id = self.arguments.get("artifact_id") or default_id
        self.model_name = self.arguments.get("model_name") or self.artifact_id
        self._has_metadata_files: bool | None = None

    def _get_cache_root(self) -> Path:
        return self._cache_root

    def _move_cache(self, path: Path) -> None:
        self._cache_root = path
        self.root = self.cache_directory / "metadata"

    #: The root of the cache; setting it moves the metadata copies that LocalRepository reads.
    cache_root = property(_get_cache_root, _move_cache)

    @property
    def mrl(self) -> MRL:
        """The MRL served when the prefix holds no metadata.json (DJL's S3 layout)."""
        return MRL.undefined(LOCAL_GROUP, self.artifact_id)

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _online(self) -> bool:
        return not offline_mode(self.offline)

    def _uses_metadata_files(self) -> bool:
        """True when the prefix holds a metadata.json below its top level (listed once)."""
        if self._has_metadata_files is None:
            self._has_metadata_files = bool(self._metadata_keys())
        return self._has_metadata_files

    def _metadata_keys(self) -> list[str]:
        if self.is_archive:
            return []
        top = self._key(METADATA_FILE)
        return [
            key
            for key in self.store.list_keys(self.prefix)
            if key.endswith(_METADATA_SUFFIX) and key != top
        ]

    def _copy_of(self, key: str) -> Path:
        """Where the cache keeps the copy of the metadata object ``key``."""
        relative = key[len(self.prefix) + 1 :] if self.prefix else key
        return self.root.joinpath(*relative.split("/"))

    def _keep_copy(self, copy: Path, data: bytes | None) -> None:
        """Write (or, for None, remove) a cached metadata copy.

        :raises InstallError: when the cache cannot be written.
        """
        try:
            if data is None:
                copy.unlink(missing_ok=True)
            else:
                write_atomically(copy, data)
        except OSError as exc:
            raise install_error(exc, copy) from exc

    def _fetch_copy(self, key: str) -> None:
        """Copy one metadata.json from the store into the cache (or forget it, when gone)."""
        try:
            data: bytes | None = self.store.read(key)
        except ObjectNotFoundError:
            data = None
        self._keep_copy(self._copy_of(key), data)

    def locate(self, mrl: MRL) -> Metadata | None:
        """The metadata of ``mrl``, refreshed from the store unless offline.

        :raises OfflineError: never; offline, the cached copy serves (None when there is none).
        :raises DownloadError: when the store cannot be read.
        :raises MetadataError: when the metadata is broken.
        """
        if self._online():
            if self._uses_metadata_files():
                self._fetch_copy(self._key(mrl.path + METADATA_FILE))
            elif mrl == self.mrl:
                self._write_listing_metadata()
            else:
                return None
        metadata = super().locate(mrl)
        if metadata is not None and mrl != self.mrl:
            metadata.bind(mrl, self.base_uri + mrl.path + METADATA_FILE)
        elif metadata is not None:
            metadata.bind(mrl, self.base_uri)
        return metadata

    def _write_listing_metadata(self) -> None:
        """Make up the metadata of DJL's S3 layout from a one-level listing, and cache it."""
        copy = self._copy_of(self._key(self.mrl.path + METADATA_FILE))
        items = {}
        for info in self.store.list_level(self.prefix):
            fields = {"uri": self._store_url + info.key, "size": info.size}
            if info.etag:
                fields["etag"] = info.etag  # kept as an extra field, part of the fingerprint
            item = Item.model_validate(fields)
            if item.effective_type == "dir":
                item.name = ""
            items[info.key] = item
        if not items:
            self._keep_copy(copy, None)
            return
        artifact = Artifact(name=self.model_name, arguments=dict(self.arguments), files=items)
        metadata = Metadata(
            metadataVersion="0.2",
            application=UNDEFINED_APPLICATION,
            groupId=LOCAL_GROUP,
            artifactId=self.artifact_id,
            artifacts=[artifact],
        )
        self._keep_copy(copy, dump_metadata(metadata).encode())

    def get_resources(self) -> list[MRL]:
        """Every MRL the store serves (the cached ones, offline)."""
        if self._online():
            if self._uses_metadata_files():
                self._sync_metadata_copies()
            else:
                self._write_listing_metadata()
        resources = super().get_resources()
        if (self.root / self.mrl.path / METADATA_FILE).is_file():
            resources.append(self.mrl)
        return resources

    def _sync_metadata_copies(self) -> None:
        keys = self._metadata_keys()
        for key in keys:
            self._fetch_copy(key)
        wanted = {self._copy_of(key) for key in keys}
        for stale in set(self.root.rglob(METADATA_FILE)) - wanted:
            self._keep_copy(stale, None)

    def _item_fingerprint(self, item: Item) -> dict[str, Any]:
        extra = item.model_extra or {}
        return {**super()._item_fingerprint(item), "etag": extra.get("etag")}

    def _local_item_file(self, item: Item) -> Path | None:
        return None

    def _open_item(self, item: Item) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open an item's object: a ``<scheme>://<bucket>/`` uri of this store, or a uri
        relative to its metadata.json; anything else is not this repository's to read."""
        uri = item.uri or item.key
        metadata = item.artifact.metadata
        if uri.startswith(self._store_url):
            key = uri[len(self._store_url) :]
        elif url_scheme(uri) == "file" and not uri.lower().startswith("file:"):
            try:
                key = self._key(metadata.mrl.path + relative_uri_path(uri))
            except ValueError as exc:
                raise _item_error(item, str(exc)) from None
        else:
            return super()._open_item(item)
        try:
            check_key(key)
        except ValueError as exc:
            raise _item_error(item, str(exc)) from None
        return self.store.open(key)


def _item_error(item: Item, reason: str) -> MetadataError:
    source = item.artifact.metadata.source
    return MetadataError(
        f"{source}: item {item.key!r}: {reason}", source=source, field=f"files.{item.key}.uri"
    )


class ObjectStoreRepositoryFactory:
    """The object-store schemes whose fsspec back-end is installed (``s3`` with s3fs...)."""

    def supported_schemes(self) -> set[str]:
        """``{"s3", "s3a"}`` with s3fs installed, ``{"gs", "gcs"}`` with gcsfs, and so on."""
        return fsspec_schemes()

    def new_instance(self, name: str, uri: str) -> ObjectStoreRepository:
        """An :class:`ObjectStoreRepository` for ``uri``."""
        return ObjectStoreRepository(name, uri)
