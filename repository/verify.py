"""Check a prepared artifact on disk against the manifest in its completion marker.

``verify_directory`` re-hashes every file the manifest lists and reports what is missing,
changed (size or digest) or extra. It reads everything, so it is the deep check that a cache
hit deliberately does not do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from repository.cache import MANIFEST_NAME
from repository.hashing import CHUNK_SIZE, new_hash
from repository.install import read_manifest
from repository.manifest import FileRecord

__all__ = ["VerifyReport", "verify_directory"]


@dataclass
class VerifyReport:
    """What :func:`verify_directory` found; paths are POSIX and relative to the directory."""

    directory: Path
    has_manifest: bool = True
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        """True when the directory holds exactly what its manifest says."""
        return self.has_manifest and not (self.missing or self.changed or self.extra)

    def __str__(self) -> str:
        if not self.has_manifest:
            return f"{self.directory}: no manifest (not a complete prepared artifact)"
        if self.ok:
            return f"{self.directory}: {self.checked} files verified"
        parts = [
            f"{len(paths)} {what} ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})"
            for what, paths in (
                ("missing", self.missing),
                ("changed", self.changed),
                ("extra", self.extra),
            )
            if paths
        ]
        return f"{self.directory}: " + "; ".join(parts)


def _matches(path: Path, record: FileRecord) -> bool:
    if path.stat().st_size != record.size:
        return False
    digest = new_hash(record.algorithm)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest() == record.digest


def verify_directory(directory: Path) -> VerifyReport:
    """Re-hash ``directory`` against its manifest."""
    report = VerifyReport(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        report.has_manifest = False
        return report
    present: set[str] = set()
    for folder, _, files in os.walk(directory):
        for name in files:
            path = Path(folder) / name
            relative = path.relative_to(directory).as_posix()
            # Links inside archives were checked when extracted; the manifest lists contents.
            if relative != MANIFEST_NAME and not path.is_symlink():
                present.add(relative)
    for relative, record in sorted(manifest.files.items()):
        path = directory / relative
        if relative not in present:
            report.missing.append(relative)
            continue
        try:
            if not _matches(path, record):
                report.changed.append(relative)
        except FileNotFoundError:  # removed while being checked
            report.missing.append(relative)
            continue
        report.checked += 1
    report.extra = sorted(present - set(manifest.files))
    return report
