"""``SimpleRepository``: a bare folder, archive or file served as one artifact, metadata made up.

As in DJL, the artifact's MRL is ``undefined/ai.djl.localmodelzoo/<artifact id>``, where the
artifact id is the ``artifact_id`` query parameter or the file name without its archive suffix,
and the artifact's name is ``model_name`` or the artifact id. A folder is used where it stands;
an archive or a single file is copied or extracted into the cache like any item.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, BinaryIO

from repository.base import Repository
from repository.extract import ExtractionLimits
from repository.filetypes import ArchiveFormat, file_type, name_part
from repository.local import open_local_file
from repository.metadata import Artifact, Item, Metadata
from repository.mrl import MRL, UNDEFINED_APPLICATION

__all__ = ["SimpleRepository"]

LOCAL_GROUP = "ai.djl.localmodelzoo"


class SimpleRepository(Repository):
    """One artifact made of a folder's entries, or of one archive or file.

    :param arguments: the location's query parameters; ``artifact_id`` and ``model_name`` name
        the artifact, and all of them become the artifact's ``arguments``.
    """

    def __init__(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        arguments: dict[str, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        extraction_limits: ExtractionLimits | None = None,
    ) -> None:
        self.path = Path(path).absolute()
        super().__init__(
            name, self.path.as_uri(), cache_dir=cache_dir, extraction_limits=extraction_limits
        )
        self.arguments = dict(arguments or {})
        is_folder = self.path.is_dir()
        if is_folder:
            self.base_uri += "/"
        # A folder is served in place; an archive or a file is installed into the cache.
        self.is_remote = not is_folder
        default_id = self.path.name if is_folder else name_part(self.path.name)
        self.artifact_id = self.arguments.get("artifact_id") or default_id
        self.model_name = self.arguments.get("model_name") or self.artifact_id
        self._metadata: Metadata | None = None

    @property
    def mrl(self) -> MRL:
        """The one MRL this repository serves."""
        return MRL.undefined(LOCAL_GROUP, self.artifact_id)

    def get_resources(self) -> list[MRL]:
        """``[self.mrl]``, or ``[]`` when the path does not exist."""
        return [self.mrl] if self.path.exists() else []

    def locate(self, mrl: MRL) -> Metadata | None:
        """The made-up metadata, for this repository's own group and artifact id only."""
        if not self.path.exists() or (mrl.group_id, mrl.artifact_id) != (
            LOCAL_GROUP,
            self.artifact_id,
        ):
            return None
        if self._metadata is None:
            artifact = Artifact(
                name=self.model_name, arguments=dict(self.arguments), files=self._items()
            )
            self._metadata = Metadata(
                metadataVersion="0.2",
                application=UNDEFINED_APPLICATION,
                groupId=LOCAL_GROUP,
                artifactId=self.artifact_id,
                artifacts=[artifact],
            ).bind(self.mrl, self.base_uri)
        return self._metadata

    def _items(self) -> dict[str, Item]:
        if self.path.is_dir():
            return {
                entry.name: Item(
                    uri=entry.name,
                    name=entry.name,
                    type="dir" if entry.is_dir() else "file",
                    size=entry.stat().st_size if entry.is_file() else None,
                )
                for entry in sorted(os.scandir(self.path), key=lambda entry: entry.name)
            }
        fmt = file_type(self.path.name)
        # An archive extracts into the resource directory itself, as DJL's name "" does.
        name = "" if fmt.is_archive else None
        item = Item(uri=self.path.as_uri(), name=name, size=self.path.stat().st_size)
        if fmt is ArchiveFormat.PLAIN:
            item.name = self.path.name
        return {self.artifact_id: item}

    def get_resource_directory(self, artifact: Artifact) -> Path:
        """The folder itself, or the artifact's place in the cache for an archive or file."""
        if not self.is_remote:
            return self.path
        return super().get_resource_directory(artifact)

    def is_prepared(self, artifact: Artifact) -> bool:
        """A folder is always ready; an archive or file once it is installed and unchanged."""
        return not self.is_remote or super().is_prepared(artifact)

    # The archive's time and size are part of each fingerprint: recompute them every time.
    _stable_fingerprints = False

    def _item_fingerprint(self, item: Item) -> dict[str, Any]:
        # No digest is declared, so a replaced archive is recognised by its size and time.
        stat = self.path.stat()
        return {
            **super()._item_fingerprint(item),
            "mtime_ns": stat.st_mtime_ns,
            "size": stat.st_size,
        }

    def _local_item_file(self, item: Item) -> Path | None:
        return self.path

    def _open_item(self, item: Item) -> contextlib.AbstractContextManager[BinaryIO]:
        return open_local_file(self.path)
