"""The manifest of a prepared artifact: what it was made from and what it holds.

It is written as the completion marker inside the resource directory before that directory is
renamed into place, so a resource directory either has a manifest and is complete, or is not
trusted. Pure data and decisions; reading and writing the file is done by the installer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from repository.hashing import FILE_DIGEST

__all__ = ["FileRecord", "Manifest", "sources_digest", "sources_digest_of_marker"]

FORMAT = 3
# Format 2 recorded every file's sha256; its records read as those of format 3.
READABLE_FORMATS = frozenset({2, FORMAT})
# XXH3 for the files written while extracting or copying; a downloaded file moved into place
# keeps the source digest that verified it (see repository.install.install_file).
KNOWN_FILE_DIGESTS = frozenset({FILE_DIGEST, "sha1", "sha256"})
_HEAD = re.compile(rb'\A\{\s*"sources_digest": "([0-9a-f]{64})"')
HEAD_BYTES = 128


def sources_digest(sources: dict[str, dict[str, Any]]) -> str:
    """The digest of an artifact's item fingerprints, as its manifest records it."""
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()


def sources_digest_of_marker(head: bytes) -> str | None:
    """The sources digest from the first :data:`HEAD_BYTES` of a marker file, or None.

    >>> sources_digest_of_marker(b'{"sources_digest": "' + b"a" * 64 + b'", "format": 2')[:8]
    'aaaaaaaa'
    >>> sources_digest_of_marker(b"{}") is None
    True
    """
    match = _HEAD.match(head)
    return match.group(1).decode() if match else None


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One installed file: its size and a digest of its content, by algorithm name.

    In the marker file: ``{"size": 12, "xxh3_128": "<hex>"}``.
    """

    size: int
    algorithm: str
    digest: str

    def to_dict(self) -> dict[str, int | str]:
        """The record as the marker file holds it."""
        return {"size": self.size, self.algorithm: self.digest}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FileRecord:
        """Parse a record of the marker file.

        >>> FileRecord.from_dict({"size": 3, "sha256": "ab"})
        FileRecord(size=3, algorithm='sha256', digest='ab')

        :raises ValueError: unless it holds a size and exactly one digest of a known algorithm.
        """
        if isinstance(record, dict):
            digests = [(name, value) for name, value in record.items() if name != "size"]
            size = record.get("size")
            if (
                isinstance(size, int)
                and len(digests) == 1
                and digests[0][0] in KNOWN_FILE_DIGESTS
                and isinstance(digests[0][1], str)
            ):
                return cls(size, *digests[0])
        raise ValueError(f"not a file record: {record!r}")


@dataclass(slots=True)
class Manifest:
    """What a prepared artifact was made from (``sources``) and holds (``files``).

    ``sources`` maps each item key to its fingerprint: uri, declared and computed digests and
    size, and ``sources_digest`` is a digest of all of them. The marker file starts with that
    digest, so that a cache hit reads its first bytes only, whatever the artifact's size, and
    no artifact file at all.
    """

    sources_digest: str
    repository: str
    mrl: str
    version: str | None
    name: str | None
    sources: dict[str, dict[str, Any]]
    files: dict[str, FileRecord] = field(default_factory=dict)
    source_digests: dict[str, dict[str, str]] = field(default_factory=dict)
    installed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> str:
        """Serialise to the marker file's text, ``sources_digest`` first."""
        # A shallow copy: dataclasses.asdict deep-copies, which costs more than the dump.
        data = {
            "sources_digest": self.sources_digest,
            "format": FORMAT,
            **{item.name: getattr(self, item.name) for item in fields(self)},
            "files": {path: record.to_dict() for path, record in self.files.items()},
        }
        return json.dumps(data)  # one line: with indent, json encodes in Python, 10x slower

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse a marker file's text.

        :raises ValueError: when it is not a manifest of a known format.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("format", None) not in READABLE_FORMATS:
            raise ValueError("not a manifest of a known format")
        files = {path: FileRecord.from_dict(record) for path, record in data.pop("files").items()}
        return cls(files=files, **data)

    @property
    def total_size(self) -> int:
        """The size of all installed files, in bytes."""
        return sum(record.size for record in self.files.values())
