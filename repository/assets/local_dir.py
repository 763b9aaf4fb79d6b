"""The local assets directory: which versions it holds, and installing a downloaded version.

A version counts only with its success marker (:func:`~repository.assets.layout.marker_path`).
A download works in a private ``.<version>.<random>.part`` folder beside its target, verifies
every file's sha256 against the ``.meta`` while reading it, and publishes with one atomic rename
(:func:`repository.install.publish`): a directory asset with its marker already inside, a file
asset followed by its marker. So two processes fetching the same version at once both succeed
and leave one correct copy, and a failed download leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from repository.assets.atomic import write_atomically
from repository.assets.layout import asset_path, marker_path
from repository.assets.meta import AssetFile, AssetMeta, dump_marker, parse_marker
from repository.assets.spec import name_parts
from repository.assets.storage import AssetStorage
from repository.assets.versioning import VersioningSystem
from repository.cache import cache_root
from repository.extract import ExtractionLimits, decompress
from repository.filetypes import ArchiveFormat
from repository.hashing import HashingReader, verify_digests
from repository.install import (
    install_error,
    publish,
    remove_abandoned,
    remove_tree,
    work_directory,
)
from repository.locks import work_lock

__all__ = ["install_version", "local_versions", "recorded_hashes"]

logger = logging.getLogger(__name__)


def local_versions(assets_dir: Path, name: str, versioning: VersioningSystem) -> list[str]:
    """The complete versions of ``name`` present with their success marker, newest first."""
    folder = assets_dir.joinpath(*name_parts(name))
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        version = entry.name
        if not (versioning.is_valid(version) and versioning.is_complete(version)):
            continue
        marker = marker_path(folder / version, is_directory=entry.is_dir())
        if marker.is_file():
            found.append(version)
    return versioning.sort(found)


def recorded_hashes(path: Path) -> dict[str, str]:
    """The sha256 verified when the asset at ``path`` was downloaded, from its marker."""
    try:
        return parse_marker(marker_path(path, is_directory=path.is_dir()).read_bytes())
    except OSError:
        return {}


def _download_file(
    storage: AssetStorage,
    file: AssetFile,
    destination: Path,
    *,
    name: str,
    version: str,
    limits: ExtractionLimits,
) -> str:
    """Write one object to ``destination``, hashing it on the way; returns its sha256.

    :raises ChecksumMismatchError: when the ``.meta`` declares another sha256.
    """
    source = storage.file_url(name, version, file.path)
    with storage.open_file(name, version, file.path) as stream:
        reader = HashingReader(stream, ["sha256"])
        decompress(reader, ArchiveFormat.PLAIN, destination, limits=limits, archive=source)
        reader.drain()
    digests = reader.hexdigests()
    expected = {"sha256": file.sha256} if file.sha256 else {}
    verify_digests(expected, digests, item=f"{name}:{version}/{file.path}", source=source)
    return digests["sha256"]


def install_version(
    storage: AssetStorage,
    name: str,
    version: str,
    meta: AssetMeta,
    assets_dir: Path,
    *,
    limits: ExtractionLimits | None = None,
    lock_timeout: float = 1800.0,
) -> tuple[Path, dict[str, str]]:
    """Download one version into the assets directory, verified and atomically.

    Processes fetching the same version wait for the first one (a lock in the cache's
    bookkeeping folder, so that the assets directory keeps modelkit's layout exactly; given up
    after ``lock_timeout``) and then use its copy.

    :returns: the asset's path and the sha256 verified against the ``.meta``, by path.
    :raises ChecksumMismatchError: when a file does not match its ``.meta``; nothing is kept.
    :raises DownloadError: when an object cannot be read.
    :raises InstallError: when the assets directory cannot be written.
    """
    limits = limits or ExtractionLimits(max_ratio=None)
    target = asset_path(assets_dir, name, version)
    marker = marker_path(target, is_directory=meta.is_directory)
    try:
        # The lock only saves a second download; the rename below keeps things correct.
        with work_lock(cache_root(), str(target), timeout=lock_timeout):
            if marker.is_file():
                return target, recorded_hashes(target)  # fetched by another process meanwhile
            remove_abandoned(target)
            return _install_unlocked(
                storage, name, version, meta, target=target, marker=marker, limits=limits
            )
    except OSError as exc:
        raise install_error(exc, target) from exc


def _install_unlocked(
    storage: AssetStorage,
    name: str,
    version: str,
    meta: AssetMeta,
    *,
    target: Path,
    marker: Path,
    limits: ExtractionLimits,
) -> tuple[Path, dict[str, str]]:
    declared = meta.hashes
    work: Path | None = None
    try:
        work = work_directory(target)
        data = work if meta.is_directory else work / version
        # A file asset's only path is ".", so data / file.path is data itself.
        hashes = {
            file.path: _download_file(
                storage, file, data / file.path, name=name, version=version, limits=limits
            )
            for file in meta.files
        }
        verified = {path: digest for path, digest in hashes.items() if path in declared}
        if meta.is_directory:
            # The marker goes in before the rename: the folder appears complete or not at all.
            write_atomically(
                marker_path(data, is_directory=True), dump_marker(version, verified).encode()
            )
        publish(data, target, accept_existing=marker.is_file)
        if not meta.is_directory:
            write_atomically(marker, dump_marker(version, verified).encode())
    except OSError as exc:
        raise install_error(exc, work or target) from exc
    finally:
        if work is not None:
            remove_tree(work)
    logger.info("Fetched %s:%s from %s into %s", name, version, storage.url, target)
    return target, verified
