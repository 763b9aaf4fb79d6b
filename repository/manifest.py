"""The manifest of a prepared artifact: what it was made from and what it holds.

It is written as the completion marker inside the resource directory before that directory is
renamed into place, so a resource directory either has a manifest and is complete, or is not
trusted. Pure data and decisions; reading and writing the file is done by the installer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["FileRecord", "Manifest"]

FORMAT = 1


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One installed file: its size and sha256."""

    size: int
    sha256: str


@dataclass(slots=True)
class Manifest:
    """What a prepared artifact was made from (``sources``) and holds (``files``).

    ``sources`` maps each item key to its fingerprint: uri, declared and computed digests and
    size. A prepared directory is reused only when the fingerprints of the artifact being
    prepared equal the recorded ones, which costs reading this small file and no artifact file.
    """

    repository: str
    mrl: str
    version: str | None
    name: str | None
    sources: dict[str, dict[str, Any]]
    files: dict[str, FileRecord] = field(default_factory=dict)
    source_digests: dict[str, dict[str, str]] = field(default_factory=dict)
    installed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> str:
        """Serialise to the marker file's text."""
        data = asdict(self)
        data["format"] = FORMAT
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse a marker file's text.

        :raises ValueError: when it is not a manifest of a known format.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ValueError("not a manifest of a known format")
        files = {path: FileRecord(**record) for path, record in data.pop("files").items()}
        return cls(files=files, **data)

    @property
    def total_size(self) -> int:
        """The size of all installed files, in bytes."""
        return sum(record.size for record in self.files.values())
