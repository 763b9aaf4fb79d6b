"""The metadata.json models (``Metadata``, ``Artifact``, ``Item``), read and written in DJL's form.

Field names on the wire are DJL's (``metadataVersion``, ``groupId``, ``sha1Hash``); unknown keys
are kept and written back, so a file survives a round trip unchanged. Defaults that DJL derives
from an item's uri (its ``name`` and ``type``) are exposed as :attr:`Item.effective_name` and
:attr:`Item.effective_type`, never written. Parsing and validation only; no file system access
except in :func:`load_metadata`.
"""

from __future__ import annotations

import json
import posixpath
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
)

from repository.errors import InvalidVersionError, MetadataError
from repository.filetypes import ArchiveFormat, file_type, name_part
from repository.version import Version

if TYPE_CHECKING:
    from repository.mrl import MRL

__all__ = [
    "Artifact",
    "Item",
    "License",
    "Metadata",
    "dump_metadata",
    "load_metadata",
    "metadata_json_schema",
    "parse_metadata",
]

ItemType = Literal["dir", "file"]

#: The largest item size accepted (1 PiB): beyond it a declared size is nonsense or hostile.
MAX_ITEM_SIZE = 1 << 50

_HEX = {"sha1": re.compile(r"[0-9a-fA-F]{40}"), "sha256": re.compile(r"[0-9a-fA-F]{64}")}


def check_relative_name(name: str) -> str:
    """Return ``name`` if it is a safe relative POSIX path in a directory, else raise ValueError.

    ``""`` (the directory itself) is allowed. Used for item names and asset sub-paths, which come
    from remote metadata and must never escape the directory they are joined to.
    """
    if name == "":
        return name
    if "\\" in name or "\0" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"must be a relative path, got {name!r}")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"must not contain empty, '.' or '..' segments, got {name!r}")
    return name


class _Model(BaseModel):
    # extra="allow" keeps unknown keys so that files written back lose nothing.
    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)


class License(_Model):
    """A license entry of ``licenses``."""

    name: str | None = None
    url: str | None = None


class Item(_Model):
    """One file of an artifact (a value of ``Artifact.files``).

    >>> item = Item(uri="0.0.1/resnet101_v1.tar.gz")
    >>> item.effective_name, item.effective_type, item.archive_format.value
    ('resnet101_v1', 'dir', 'tgz')
    """

    uri: str | None = None
    sha1_hash: str | None = Field(default=None, alias="sha1Hash")
    sha256_hash: str | None = Field(default=None, alias="sha256Hash")
    name: str | None = None
    type: ItemType | None = None
    size: int | None = Field(default=None, ge=-1, le=MAX_ITEM_SIZE)

    _key: str = PrivateAttr(default="")
    _artifact: Artifact | None = PrivateAttr(default=None)

    @field_validator("sha1_hash")
    @classmethod
    def _check_sha1(cls, value: str | None) -> str | None:
        return _check_hex(value, "sha1")

    @field_validator("sha256_hash")
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        return _check_hex(value, "sha256")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else check_relative_name(value)

    @property
    def key(self) -> str:
        """The item's key in its artifact's ``files``."""
        return self._key

    @property
    def artifact(self) -> Artifact:
        """The artifact this item belongs to."""
        if self._artifact is None:
            raise LookupError(f"item {self._key!r} is not attached to an artifact")
        return self._artifact

    @property
    def archive_format(self) -> ArchiveFormat:
        """How the item's bytes are packed, judged from its uri (DJL's transient ``extension``)."""
        return file_type(self.uri or "")

    @property
    def effective_name(self) -> str:
        """``name``, or by default the uri's last segment without its packing suffix."""
        if self.name is not None:
            return self.name
        return name_part(self.uri or self._key)

    @property
    def effective_type(self) -> ItemType:
        """``type``, or by default ``dir`` for zip and tar archives and ``file`` otherwise."""
        if self.type is not None:
            return self.type
        return "dir" if self.archive_format.is_archive else "file"

    @property
    def hashes(self) -> dict[str, str]:
        """The declared digests by hashlib algorithm name, lower-cased."""
        declared = {"sha1": self.sha1_hash, "sha256": self.sha256_hash}
        return {algorithm: value.lower() for algorithm, value in declared.items() if value}


def _check_hex(value: str | None, algorithm: str) -> str | None:
    if value is not None and not _HEX[algorithm].fullmatch(value):
        raise ValueError(f"not a {algorithm} hex digest: {value!r}")
    return value


class Artifact(_Model):
    """One version (and variant) of a resource, with its files.

    ``properties`` are what a filter matches; ``arguments`` and ``options`` are passed to loaders.
    """

    version: str | None = None
    snapshot: bool = False
    name: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    arguments: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, str] = Field(default_factory=dict)
    files: dict[str, Item] = Field(default_factory=dict)

    _metadata: Metadata | None = PrivateAttr(default=None)
    _parsed_version: Version | None = PrivateAttr(default=None)
    _memo: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Version(value)
            except InvalidVersionError as exc:
                raise ValueError(str(exc)) from None
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Attach items to this artifact and parse the version once."""
        self._parsed_version = None if self.version is None else Version(self.version)
        for key, item in self.files.items():
            item._key = key
            item._artifact = self

    @property
    def parsed_version(self) -> Version | None:
        """The version as a :class:`Version`, or None when the artifact has none."""
        return self._parsed_version

    @property
    def memo(self) -> dict[str, Any]:
        """Values derived from this artifact that repositories remember (not serialised)."""
        return self._memo

    @property
    def metadata(self) -> Metadata:
        """The metadata this artifact was read from."""
        if self._metadata is None:
            raise LookupError("artifact is not attached to a metadata")
        return self._metadata

    def has_properties(self, filter: dict[str, str] | None) -> bool:
        """True when every pair of ``filter`` is in ``properties`` exactly (empty filters match)."""
        if not filter:
            return True
        return all(self.properties.get(key) == value for key, value in filter.items())

    def __repr__(self) -> str:
        return f"<Artifact {self.name or ''}@{self.version} {self.properties}>"


class Metadata(_Model):
    """The content of one ``metadata.json``: a resource and its artifacts."""

    metadata_version: str | None = Field(default=None, alias="metadataVersion")
    resource_type: str | None = Field(default=None, alias="resourceType")
    application: str | None = None
    group_id: str | None = Field(default=None, alias="groupId")
    artifact_id: str | None = Field(default=None, alias="artifactId")
    name: str | None = None
    description: str | None = None
    website: str | None = None
    licenses: dict[str, License] | None = None
    artifacts: list[Artifact]
    last_updated: datetime | None = Field(default=None, alias="lastUpdated")

    _mrl: MRL | None = PrivateAttr(default=None)
    _source: str = PrivateAttr(default="<memory>")

    def model_post_init(self, context: Any, /) -> None:
        """Attach artifacts to this metadata."""
        for artifact in self.artifacts:
            artifact._metadata = self

    @field_validator("last_updated")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_serializer("last_updated")
    def _djl_time(self, value: datetime | None) -> str | None:
        # DJL's format (yyyy-MM-dd'T'HH:mm:ss.SSS'Z'), but really in UTC.
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

    @property
    def mrl(self) -> MRL:
        """The MRL this metadata was located by."""
        if self._mrl is None:
            raise LookupError("metadata was not located through a repository")
        return self._mrl

    @property
    def source(self) -> str:
        """Where this metadata was read from (a path or a URL)."""
        return self._source

    def bind(self, mrl: MRL, source: str) -> Metadata:
        """Record the MRL and the source this metadata was located by; returns ``self``."""
        self._mrl = mrl
        self._source = source
        return self


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location)


def parse_metadata(data: bytes | str, *, source: str) -> Metadata:
    """Parse the text of a metadata.json.

    :param data: the JSON text.
    :param source: the file or URL it came from, named in errors.
    :raises MetadataError: when the text is not JSON or does not fit the models; the error names
        the source and the first offending field.
    """
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{source}: not valid JSON: {exc}", source=source) from None
    if not isinstance(raw, dict):
        raise MetadataError(
            f"{source}: expected a JSON object, got {type(raw).__name__}", source=source
        )
    try:
        metadata = Metadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(first["loc"])
        more = f" (and {exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
        raise MetadataError(
            f"{source}: field {field!r}: {first['msg']}{more}", source=source, field=field
        ) from None
    metadata._source = source
    return metadata


def load_metadata(path: Path) -> Metadata:
    """Read and parse a metadata.json file.

    :raises MetadataError: when the file cannot be read or parsed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read: {exc.strerror}", source=str(path)) from None
    return parse_metadata(data, source=str(path))


def dump_metadata(metadata: Metadata, *, indent: int | None = 2) -> str:
    """Serialise metadata as DJL reads it: DJL's field names, only the fields that were set.

    :param indent: None for one line (json then encodes in C, ten times faster: for copies that
        only programs read).
    """
    data = metadata.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def metadata_json_schema() -> dict[str, Any]:
    """The JSON Schema of metadata.json, as ``schemas/metadata.schema.json`` holds it."""
    schema = Metadata.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/repository/repository/schemas/metadata.schema.json"
    return schema


def relative_uri_path(uri: str) -> str:
    """Normalise a relative item uri to a POSIX path, refusing ones that climb out with ``..``.

    :raises ValueError: for absolute or climbing uris.
    """
    normal = posixpath.normpath(uri.split("?", maxsplit=1)[0].split("#", maxsplit=1)[0])
    if normal.startswith(("/", "../")) or normal in ("..", "."):
        raise ValueError(f"relative uri escapes its repository: {uri!r}")
    return normal
