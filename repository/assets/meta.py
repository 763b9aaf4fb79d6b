"""The small JSON documents of assets: ``.meta``, ``.versions`` and the local success marker.

``<name>/<version>.meta`` is modelkit's (``push_date``, ``is_directory``, ``contents``) plus
each file's sha256 and size, which modelkit ignores::

    {"push_date": "2024-06-06T10:00:00+00:00", "is_directory": false,
     "sha256": "<hex>", "size": 12}
    {"push_date": "...", "is_directory": true, "contents": ["a.json", "sub/b.json"],
     "files": {"a.json": {"sha256": "<hex>", "size": 10}, "sub/b.json": {...}}}

``<name>.versions`` is ``{"versions": [newest first]}``. The local success marker (modelkit's
empty ``.SUCCESS``) holds the sha256 verified at download, so that a cache hit can report them;
an empty marker written by modelkit is just as valid. Pure parsing and writing of text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from repository.errors import MetadataError
from repository.metadata import check_relative_name

__all__ = [
    "FILE_ASSET_PATH",
    "AssetFile",
    "AssetMeta",
    "dump_marker",
    "dump_versions",
    "parse_marker",
    "parse_versions",
]

FILE_ASSET_PATH = "."
"""The path of a file asset's only file, relative to the asset itself."""

DIRECTORY_MARKER = ".SUCCESS"

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class AssetFile:
    """One file of an asset: its path in the asset (``.`` for a file asset), sha256 and size."""

    path: str
    sha256: str | None = None
    size: int | None = None


def _load_object(data: bytes | str, source: str) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{source}: not valid JSON: {exc}", source=source) from None
    if not isinstance(raw, dict):
        raise MetadataError(f"{source}: expected a JSON object", source=source)
    return raw


def _digest(value: Any, source: str, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise MetadataError(
            f"{source}: {field} is not a sha256 hex digest", source=source, field=field
        )
    return value.lower()


def _size(value: Any, source: str, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MetadataError(f"{source}: {field} is not a size", source=source, field=field)
    return value


@dataclass(frozen=True)
class AssetMeta:
    """What ``<name>/<version>.meta`` says about one pushed version.

    >>> meta = AssetMeta.from_json('{"is_directory": false, "push_date": '
    ...     '"2020-05-20T13:52:54.754318+00:00"}', source="m")
    >>> meta.is_directory, meta.files, meta.push_date.year
    (False, (AssetFile(path='.', sha256=None, size=None),), 2020)
    >>> AssetMeta.from_json(meta.to_json(), source="again") == meta
    True
    """

    is_directory: bool
    files: tuple[AssetFile, ...]
    push_date: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hashes(self) -> dict[str, str]:
        """The declared sha256 by path (files without one are left out)."""
        return {file.path: file.sha256 for file in self.files if file.sha256 is not None}

    @classmethod
    def for_files(cls, files: Iterable[AssetFile], *, is_directory: bool) -> AssetMeta:
        """The meta of a version being pushed now, made of ``files``."""
        ordered = tuple(sorted(files, key=lambda file: file.path))
        return cls(is_directory=is_directory, files=ordered, push_date=datetime.now(UTC))

    def to_json(self) -> str:
        """The ``.meta`` text; modelkit reads it, ignoring the hashes."""
        data: dict[str, Any] = dict(self.extra)
        data["push_date"] = self.push_date.isoformat() if self.push_date else None
        data["is_directory"] = self.is_directory
        if self.is_directory:
            data["contents"] = [file.path for file in self.files]
            data["files"] = {
                file.path: {"sha256": file.sha256, "size": file.size} for file in self.files
            }
        else:
            (file,) = self.files
            data["sha256"], data["size"] = file.sha256, file.size
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str) -> AssetMeta:
        """Parse a ``.meta`` written by modelkit or by this package.

        :raises MetadataError: naming the source and field, when it is not JSON, has wrong
            types, or lists a file whose path could leave the asset's directory.
        """
        raw = _load_object(data, source)
        is_directory = raw.pop("is_directory", None)
        if not isinstance(is_directory, bool):
            raise MetadataError(
                f"{source}: is_directory must be true or false", source=source, field="is_directory"
            )
        push_date = _push_date(raw.pop("push_date", None), source)
        if is_directory:
            files = _directory_files(
                raw.pop("contents", None), raw.pop("files", None) or {}, source
            )
        else:
            sha256 = _digest(raw.pop("sha256", None), source, "sha256")
            files = (
                AssetFile(FILE_ASSET_PATH, sha256, _size(raw.pop("size", None), source, "size")),
            )
        return cls(is_directory=is_directory, files=files, push_date=push_date, extra=raw)


def _push_date(value: Any, source: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MetadataError(
            f"{source}: push_date is not an ISO 8601 time", source=source, field="push_date"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _directory_files(contents: Any, details: Any, source: str) -> tuple[AssetFile, ...]:
    if not isinstance(contents, list) or not all(isinstance(path, str) for path in contents):
        raise MetadataError(
            f"{source}: contents must be a list of paths", source=source, field="contents"
        )
    if not isinstance(details, dict) or not set(details) <= set(contents):
        raise MetadataError(
            f"{source}: files must map paths listed in contents", source=source, field="files"
        )
    files = []
    for index, path in enumerate(contents):
        try:
            check_relative_name(path)
        except ValueError as exc:
            raise MetadataError(
                f"{source}: contents: {exc}", source=source, field=f"contents.{index}"
            ) from None
        if not path or path == DIRECTORY_MARKER:
            raise MetadataError(
                f"{source}: contents may not hold {path!r}",
                source=source,
                field=f"contents.{index}",
            )
        entry = details.get(path) or {}
        if not isinstance(entry, dict):
            raise MetadataError(
                f"{source}: files.{path} must be an object", source=source, field=f"files.{path}"
            )
        files.append(
            AssetFile(
                path,
                _digest(entry.get("sha256"), source, f"files.{path}.sha256"),
                _size(entry.get("size"), source, f"files.{path}.size"),
            )
        )
    if len({file.path for file in files}) != len(files):
        raise MetadataError(
            f"{source}: contents lists a path twice", source=source, field="contents"
        )
    return tuple(files)


def parse_versions(data: bytes | str, *, source: str) -> list[str]:
    """The versions listed by a ``.versions`` object, in its order.

    >>> parse_versions('{"versions": ["1.0", "0.1"]}', source="x.versions")
    ['1.0', '0.1']

    :raises MetadataError: when it is not ``{"versions": [strings]}``.
    """
    versions = _load_object(data, source).get("versions")
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise MetadataError(
            f"{source}: versions must be a list of strings", source=source, field="versions"
        )
    return versions


def dump_versions(versions: Iterable[str]) -> str:
    """The ``.versions`` text for versions already ordered newest first.

    >>> dump_versions(["0.1", "0.0"])
    '{"versions": ["0.1", "0.0"]}'
    """
    return json.dumps({"versions": list(versions)})


def dump_marker(version: str, hashes: dict[str, str]) -> str:
    """The success marker's text: the version and the sha256 verified when it was downloaded."""
    return json.dumps({"version": version, "verified_sha256": hashes}, indent=1, sort_keys=True)


def parse_marker(data: bytes) -> dict[str, str]:
    """The verified sha256 a marker records; ``{}`` for modelkit's empty marker or any other.

    >>> parse_marker(b""), parse_marker(dump_marker("1.0", {".": "ab"}).encode())
    ({}, {'.': 'ab'})
    """
    try:
        hashes = json.loads(data).get("verified_sha256")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return {}
    if not isinstance(hashes, dict):
        return {}
    return {str(path): str(digest) for path, digest in hashes.items()}
