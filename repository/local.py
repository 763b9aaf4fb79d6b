"""``LocalRepository``: a folder of ``metadata.json`` files, laid out by MRL path, as DJL's.

Also the ``file`` factory, which picks ``LocalRepository`` or ``SimpleRepository`` for a path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, unquote, urlsplit
from urllib.request import url2pathname

from repository.base import Repository
from repository.errors import DownloadError, MetadataError
from repository.extract import ExtractionLimits
from repository.metadata import Item, Metadata, load_metadata, relative_uri_path
from repository.mrl import MRL
from repository.registry import url_scheme

__all__ = ["FileRepositoryFactory", "LocalRepository", "parse_file_location"]

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"


def parse_file_location(location: str) -> tuple[Path, dict[str, str]]:
    """Split a plain path or ``file:`` URL into an absolute path and its query parameters.

    >>> parse_file_location("file:///m/x.zip?artifact_id=a&model_name=b")
    (PosixPath('/m/x.zip'), {'artifact_id': 'a', 'model_name': 'b'})
    >>> parse_file_location("/m/archive?artifact_id=resnet")
    (PosixPath('/m/archive'), {'artifact_id': 'resnet'})
    """
    if url_scheme(location) == "file" and location.lower().startswith("file:"):
        parts = urlsplit(location)
        path = Path(url2pathname(unquote(parts.path)))
        query = parts.query
    else:
        raw, _, query = location.partition("?")
        path = Path(raw).expanduser()
    return path.absolute(), dict(parse_qsl(query))


def _metadata_files(root: Path) -> Iterator[Path]:
    """Every ``metadata.json`` below ``root`` (not the one directly in it), in a stable order."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        if METADATA_FILE in files and Path(directory) != root:
            yield Path(directory) / METADATA_FILE


def is_local_repository(path: Path) -> bool:
    """True when ``path`` is a folder holding a nested, readable ``metadata.json`` (DJL's test)."""
    if not path.is_dir():
        return False
    for file in _metadata_files(path):
        try:
            load_metadata(file)
        except MetadataError:
            continue
        return True
    return False


class LocalRepository(Repository):
    """A folder of ``<mrl path>/metadata.json`` files; items are copied or extracted into the cache.

    Relative item uris are resolved against the folder of their ``metadata.json`` and may not
    climb out of the repository; ``http(s)`` uris are downloaded.
    """

    is_remote = False

    def __init__(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        arguments: dict[str, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        extraction_limits: ExtractionLimits | None = None,
    ) -> None:
        self.root = Path(path).absolute()
        super().__init__(
            name,
            self.root.as_uri() + "/",
            cache_dir=cache_dir,
            extraction_limits=extraction_limits,
        )
        self.arguments = dict(arguments or {})

    def locate(self, mrl: MRL) -> Metadata | None:
        """Read ``<root>/<mrl path>/metadata.json``; None when it does not exist."""
        metadata = self._read_metadata_file(self.root / mrl.path / METADATA_FILE, mrl)
        if metadata is not None:
            for artifact in metadata.artifacts:
                artifact.arguments.update(self.arguments)
        return metadata

    def get_resources(self) -> list[MRL]:
        """The MRL of every readable ``model/…`` and ``dataset/…`` metadata.json."""
        resources: list[MRL] = []
        for file in _metadata_files(self.root):
            kind = file.relative_to(self.root).parts[0]
            if kind not in ("model", "dataset"):
                continue
            try:
                metadata = load_metadata(file)
                if not (metadata.application and metadata.group_id and metadata.artifact_id):
                    raise MetadataError(
                        f"{file}: needs application, groupId and artifactId", source=str(file)
                    )
                factory = MRL.model if kind == "model" else MRL.dataset
                mrl = factory(metadata.application, metadata.group_id, metadata.artifact_id)
            except (MetadataError, ValueError) as exc:
                logger.warning("Skipping %s: %s", file, exc)
                continue
            resources.append(mrl)
        return resources

    def _local_item_file(self, item: Item) -> Path | None:
        uri = item.uri or item.key
        scheme = url_scheme(uri)
        if scheme == "file" and uri.lower().startswith("file:"):
            return parse_file_location(uri)[0]
        if scheme != "file":
            return None
        metadata_dir = Path(item.artifact.metadata.source).parent
        try:
            relative = relative_uri_path(uri)
        except ValueError as exc:
            raise MetadataError(
                f"{item.artifact.metadata.source}: item {item.key!r}: {exc}",
                source=item.artifact.metadata.source,
                field=f"files.{item.key}.uri",
            ) from None
        resolved = metadata_dir / relative
        if not resolved.is_relative_to(self.root):
            raise MetadataError(
                f"{item.artifact.metadata.source}: item {item.key!r} points outside the repository",
                source=item.artifact.metadata.source,
                field=f"files.{item.key}.uri",
            )
        return resolved

    def _open_item(self, item: Item) -> contextlib.AbstractContextManager[BinaryIO]:
        file = self._local_item_file(item)
        if file is None:
            return super()._open_item(item)
        return open_local_file(file)


@contextlib.contextmanager
def open_local_file(file: Path) -> Iterator[BinaryIO]:
    """Open a local item file, translating a missing or unreadable file into DownloadError."""
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise DownloadError(f"Cannot read {file}: {exc.strerror}", url=file.as_uri()) from exc
    with handle:
        yield handle


class FileRepositoryFactory:
    """The ``file`` scheme: a folder with nested metadata.json files is a ``LocalRepository``,
    anything else (another folder, an archive, a file) a ``SimpleRepository``."""

    def supported_schemes(self) -> set[str]:
        """``{"file"}``; plain paths count as ``file``."""
        return {"file"}

    def new_instance(self, name: str, uri: str) -> Repository:
        """Create the repository for a path or ``file:`` URL."""
        from repository.simple import SimpleRepository

        path, query = parse_file_location(uri)
        if is_local_repository(path):
            return LocalRepository(name, path, arguments=query)
        return SimpleRepository(name, path, arguments=query)
