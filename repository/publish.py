"""Publish an artifact into a repository: a local folder, or an object store (``s3://``...).

What is written is DJL's layout, read by :class:`~repository.local.LocalRepository`,
:class:`~repository.objectstore.ObjectStoreRepository` and DJL's own repositories::

    <repository>/<mrl path>metadata.json          the resource, extended with the new artifact
    <repository>/<mrl path><version>/<file>       one item per file; a folder becomes one .tar.gz

Each item gets ``uri`` (``<version>/<file>``, relative to its metadata.json), ``sha1Hash``,
``sha256Hash`` and ``size``; the artifact ``version``, ``name`` (the artifact id by default),
``snapshot`` and ``properties``. An existing metadata.json keeps its artifacts and every key it
holds, including keys this package does not know.

Readers never see an artifact whose files are missing: item objects are written first (each
one atomically: a temporary file renamed into place in a folder, a single upload in an object
store), and metadata.json last, replaced whole. Publishing a version and name that exist with
the same content does nothing; with other content it is refused
(:class:`~repository.errors.ArtifactExistsError`). Two publishers of one resource at once
are detected by reading metadata.json again just before replacing it, and the merge is redone;
object stores without conditional writes leave a window of milliseconds in which one of two
simultaneous publishes could still be lost.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repository.assets.errors import InvalidAssetError, ObjectNotFoundError
from repository.assets.store import LocalFolderStore, ObjectStore, open_store
from repository.cache import path_segment
from repository.errors import ArtifactExistsError, InvalidMRLError, MetadataError
from repository.hashing import CHUNK_SIZE
from repository.local import METADATA_FILE
from repository.metadata import Artifact, Metadata, dump_metadata, parse_metadata
from repository.mrl import MRL
from repository.version import Version

__all__ = [
    "PublishResult",
    "StagedFile",
    "archive_directory",
    "item_keys",
    "merge_artifact",
    "publish_artifact",
]

logger = logging.getLogger(__name__)

METADATA_VERSION = "0.2"
#: What a published file may be called: DJL resolves item uris as URIs, and the name is one
#: path segment of the uri.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]*")
_MERGE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class StagedFile:
    """One item ready to be published: the local file to upload, its name and digests."""

    key: str
    file_name: str
    path: Path
    size: int
    sha1: str
    sha256: str

    def item(self, version: str) -> dict[str, Any]:
        """The item's entry in metadata.json, with DJL's field names."""
        return {
            "uri": f"{version}/{self.file_name}",
            "sha1Hash": self.sha1,
            "sha256Hash": self.sha256,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What :func:`publish_artifact` did.

    :param metadata_url: where the resource's metadata.json is (a path for a local folder).
    :param artifact: the published artifact as metadata.json holds it (DJL's field names).
    :param changed: False when the same content was published already (nothing was written).
    :param written: the keys of the objects written, metadata.json last.
    """

    metadata_url: str
    mrl: MRL
    artifact: dict[str, Any]
    changed: bool
    written: list[str]


# -- pure decisions -----------------------------------------------------------------------------


def item_keys(file_names: Sequence[str]) -> dict[str, str]:
    """The key in ``files`` of each published file: its name up to the first dot (``model``
    for ``model.pt``), or the whole name where that would be empty or shared.

    >>> item_keys(["model.pt", "synset.txt", "a.txt", "a.csv"])
    {'model.pt': 'model', 'synset.txt': 'synset', 'a.txt': 'a.txt', 'a.csv': 'a.csv'}
    """
    stems = {name: name.split(".", 1)[0] or name for name in file_names}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {name: stem if counts[stem] == 1 else name for name, stem in stems.items()}


def _published_part(artifact: Artifact) -> dict[str, Any]:
    """What publishing decides about an artifact: version, name, properties, items' content."""
    return {
        "version": artifact.version,
        "name": artifact.name,
        "properties": artifact.properties,
        "files": {
            key: (item.uri, item.hashes, item.size, item.name, item.type)
            for key, item in artifact.files.items()
        },
    }


def _check_header(metadata: Metadata, mrl: MRL) -> None:
    expected = {
        "application": mrl.application,
        "groupId": mrl.group_id,
        "artifactId": mrl.artifact_id,
    }
    actual = {
        "application": metadata.application,
        "groupId": metadata.group_id,
        "artifactId": metadata.artifact_id,
    }
    for field, value in actual.items():
        if value is not None and value != expected[field]:
            raise MetadataError(
                f"{metadata.source}: {field} is {value!r}, but the file is where {mrl} belongs",
                source=metadata.source,
                field=field,
            )


def merge_artifact(existing: Metadata | None, mrl: MRL, artifact: Artifact) -> Metadata | None:
    """The metadata with ``artifact`` added, or None when it holds the same artifact already.

    The header fields DJL needs (``metadataVersion``, ``resourceType``, ``application``,
    ``groupId``, ``artifactId``, ``name``) are filled in where missing; everything else in
    ``existing`` is kept as it is.

    :raises ArtifactExistsError: when an artifact of the same version and name has other content,
        or another artifact uses one of the item uris for other content.
    :raises MetadataError: when ``existing`` names another resource than ``mrl``.
    """
    header = {
        "metadata_version": METADATA_VERSION,
        "resource_type": mrl.type,
        "application": mrl.application,
        "group_id": mrl.group_id,
        "artifact_id": mrl.artifact_id,
        "name": mrl.artifact_id,
    }
    if existing is None:
        return Metadata.model_validate({**header, "artifacts": [artifact]})
    _check_header(existing, mrl)
    mine = _published_part(artifact)
    uris = {item.uri: item.hashes for item in artifact.files.values()}
    for other in existing.artifacts:
        if other.version == artifact.version and other.name == artifact.name:
            if _published_part(other) == mine:
                return None
            raise ArtifactExistsError(
                f"{mrl} {artifact.version} ({artifact.name}) is published already with other "
                "content; publish a new version instead",
                name=str(mrl),
                version=artifact.version,
            )
        for item in other.files.values():
            if item.uri in uris and item.hashes != uris[item.uri]:
                raise ArtifactExistsError(
                    f"{mrl}: {item.uri} belongs to {other.version} ({other.name}) with other "
                    "content",
                    name=str(mrl),
                    version=artifact.version,
                )
    merged = existing.model_copy(deep=True)
    for field, value in header.items():
        if getattr(merged, field) is None:
            setattr(merged, field, value)
    merged.artifacts = [*merged.artifacts, artifact]
    return merged


# -- staging ------------------------------------------------------------------------------------


def _tar_members(directory: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """Every entry below ``directory`` as (archive name, path), folders before their content,
    in name order."""
    for child in sorted(directory.iterdir(), key=lambda path: path.name):
        name = f"{prefix}{child.name}"
        yield name, child
        if child.is_dir() and not child.is_symlink():
            yield from _tar_members(child, f"{name}/")


def archive_directory(directory: Path, out: Path) -> None:
    """Write ``directory``'s content as a deterministic ``.tar.gz``: sorted members, names
    relative to the folder, mtime 0, owner 0, modes 0644 (0755 for folders and executables).

    :raises InvalidAssetError: for a link, a device or another special file inside.
    """
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, path in _tar_members(directory):
            mode = path.lstat().st_mode
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            elif stat.S_ISREG(mode):
                info.size = path.stat().st_size
                info.mode = 0o755 if mode & 0o111 else 0o644
                with path.open("rb") as data:
                    archive.addfile(info, data)
            else:
                raise InvalidAssetError(
                    f"{path}: links and special files cannot be published",
                    path=str(path),
                    reason="not a regular file or folder",
                )


def _digests(path: Path) -> tuple[int, str, str]:
    sha1, sha256, size = hashlib.sha1(), hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            sha1.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return size, sha1.hexdigest(), sha256.hexdigest()


def _invalid(path: str | os.PathLike[str], reason: str) -> InvalidAssetError:
    return InvalidAssetError(f"{os.fspath(path)}: {reason}", path=os.fspath(path), reason=reason)


def stage_files(paths: Sequence[str | os.PathLike[str]], staging: Path) -> list[StagedFile]:
    """Check the files to publish, archive folders into ``staging``, and hash everything.

    :raises InvalidAssetError: for a missing path, a link or special file, a name that cannot be
        part of a uri, ``metadata.json``, or two files of the same name.
    """
    if not paths:
        raise _invalid("FILES", "nothing to publish")
    sources: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(os.path.abspath(raw))
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise _invalid(raw, "not a regular file or folder")
        file_name = f"{path.name}.tar.gz" if path.is_dir() else path.name
        if not _SAFE_NAME.fullmatch(path.name):
            raise _invalid(raw, "the name may hold only letters, digits and . _ + -")
        if file_name == METADATA_FILE:
            raise _invalid(raw, f"a file named {METADATA_FILE} would be taken for a resource")
        if any(file_name == other for other, _ in sources):
            raise _invalid(raw, f"two files would both be published as {file_name}")
        sources.append((file_name, path))
    keys = item_keys([file_name for file_name, _ in sources])
    staged = []
    for file_name, path in sources:
        upload = path
        if path.is_dir():
            upload = staging / file_name
            archive_directory(path, upload)
        size, sha1, sha256 = _digests(upload)
        staged.append(StagedFile(keys[file_name], file_name, upload, size, sha1, sha256))
    return staged


def new_artifact(
    staged: Sequence[StagedFile], version: str, name: str, properties: Mapping[str, str]
) -> Artifact:
    """The artifact entry for the staged files."""
    return Artifact.model_validate(
        {
            "version": version,
            "snapshot": Version(version).is_snapshot,
            "name": name,
            "properties": dict(properties),
            "files": {file.key: file.item(version) for file in staged},
        }
    )


# -- publishing ---------------------------------------------------------------------------------


def _read_metadata(store: ObjectStore, key: str) -> tuple[bytes | None, Metadata | None]:
    try:
        data = store.read(key)
    except ObjectNotFoundError:
        return None, None
    return data, parse_metadata(data, source=store.url_of(key))


def _check_names(mrl: MRL, version: str, name: str) -> None:
    if mrl.type not in ("model", "dataset"):
        raise InvalidMRLError(f"{mrl}: only models and data sets can be published", value=str(mrl))
    Version(version)
    for what, value in (("version", version), ("name", name)):
        try:
            path_segment(value)
        except ValueError as exc:
            raise _invalid(value, f"the artifact {what} {exc}") from None
        if not _SAFE_NAME.fullmatch(value):
            raise _invalid(value, f"the artifact {what} may hold only letters, digits and . _ + -")


def publish_artifact(
    target: str | os.PathLike[str] | ObjectStore,
    mrl: MRL,
    version: str,
    files: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    properties: Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> PublishResult:
    """Publish ``files`` as version ``version`` of ``mrl`` into a repository.

    :param target: a local folder (created if needed), an object-store URL such as
        ``s3://bucket/prefix``, or an :class:`~repository.assets.store.ObjectStore`.
    :param files: files (one item each) and folders (one ``.tar.gz`` item each).
    :param name: the artifact's name (default: the artifact id).
    :param properties: the artifact's properties, which filters match.
    :param storage_options: fsspec options for an object store.
    :raises InvalidAssetError: for files that cannot be published, or a bad version or name.
    :raises InvalidVersionError: when ``version`` is not a version.
    :raises ArtifactExistsError: when the version and name exist with other content.
    :raises MetadataError: when the existing metadata.json is broken or names another resource.
    :raises UploadError: when an object cannot be written.
    """
    name = name or mrl.artifact_id
    _check_names(mrl, version, name)
    store = (
        target
        if isinstance(target, ObjectStore)
        else open_store(target, storage_options=storage_options)
    )
    metadata_key = mrl.path + METADATA_FILE
    with tempfile.TemporaryDirectory(prefix="repository-publish-") as staging:
        staged = stage_files(files, Path(staging))
        artifact = new_artifact(staged, version, name, properties or {})
        original, existing = _read_metadata(store, metadata_key)
        merged = merge_artifact(existing, mrl, artifact)
        written: list[str] = []
        for file in staged:
            key = f"{mrl.path}{version}/{file.file_name}"
            if merged is None and store.exists(key):
                continue  # published already; only a lost object is written again
            with file.path.open("rb") as data:
                store.write(key, data)
            written.append(key)
        if merged is not None:
            _write_metadata(store, metadata_key, mrl, artifact, original=original, merged=merged)
            written.append(metadata_key)
    url = (
        str(store.root.joinpath(*metadata_key.split("/")))
        if isinstance(store, LocalFolderStore)
        else store.url_of(metadata_key)
    )
    if merged is None:
        logger.info("%s %s (%s) is published already in %s", mrl, version, name, url)
    else:
        logger.info("Published %s %s (%s) in %s", mrl, version, name, url)
    entry = artifact.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return PublishResult(url, mrl, entry, merged is not None, written)


def _write_metadata(
    store: ObjectStore,
    key: str,
    mrl: MRL,
    artifact: Artifact,
    *,
    original: bytes | None,
    merged: Metadata,
) -> None:
    """Replace metadata.json with ``merged``, merging again while another publisher changed it
    since it was read."""
    for _ in range(_MERGE_ATTEMPTS):
        current, existing = _read_metadata(store, key)
        if current != original:
            original = current
            again = merge_artifact(existing, mrl, artifact)
            if again is None:
                return  # a concurrent publish wrote the same artifact
            merged = again
            continue
        store.write(key, dump_metadata(merged).encode("utf-8"))
        return
    raise ArtifactExistsError(
        f"{store.url_of(key)} kept changing while publishing {mrl} {artifact.version}; try again",
        name=str(mrl),
        version=artifact.version,
    )
