"""Install items into a private work directory, then publish it atomically as a resource directory.

One concern: turning raw item bytes into files on disk. Every item's bytes pass once through a
:class:`~repository.hashing.HashingReader` on their way to a file or an extractor, so checksums
are verified without reading anything a second time. The work directory sits beside its target
(same file system), and is renamed into place only once every item verified and the manifest is
written inside it; a crash leaves at most a work directory that nobody trusts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from repository.cache import MANIFEST_NAME
from repository.errors import ExtractionError, InstallError
from repository.extract import (
    ExtractionLimits,
    InstalledFile,
    decompress,
    extract_first_zip_entry,
    extract_tar,
    extract_zip,
)
from repository.filetypes import ArchiveFormat
from repository.hashing import CHUNK_SIZE, HashingReader, verify_digests
from repository.manifest import FileRecord, Manifest
from repository.metadata import Item

__all__ = ["InstalledItem", "install_item", "publish", "read_manifest", "work_directory"]

logger = logging.getLogger(__name__)

WORK_SUFFIX = ".part"
_TAR_FORMATS = {ArchiveFormat.TAR, ArchiveFormat.TGZ, ArchiveFormat.TZST}


@dataclass(frozen=True, slots=True)
class InstalledItem:
    """What installing one item produced: the digests of its raw bytes and the files written."""

    key: str
    digests: dict[str, str]
    files: list[InstalledFile]


def install_item(
    stream: BinaryIO,
    item: Item,
    root: Path,
    *,
    source: str,
    limits: ExtractionLimits,
    local_file: Path | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> InstalledItem:
    """Write one item into ``root`` following DJL's rules for ``name`` and ``type``.

    A ``dir`` item is extracted into ``root/name`` (``root`` itself when the name is empty);
    a ``file`` item is written to ``root/name``, decompressed when it is ``.gz`` or ``.zst``,
    and reduced to its first entry when it is a ``.zip`` (as DJL does).

    :param stream: the raw bytes of the item, read once from start to end.
    :param source: where the bytes come from, for messages.
    :param local_file: the same bytes as a local file, when they are one (spares a zip spool).
    :raises ChecksumMismatchError: when a declared digest does not match.
    :raises ExtractionError: for corrupt archives, unsupported types and unsafe archives.
    """
    algorithms = sorted(item.hashes) or ["sha256"]
    reader = HashingReader(stream, algorithms, on_bytes=on_bytes)
    fmt = item.archive_format
    name = item.effective_name
    prefix = f"{name}/" if name else ""
    if item.effective_type == "dir":
        destination = root / name if name else root
        if fmt in _TAR_FORMATS:
            files = extract_tar(reader, fmt, destination, limits=limits, archive=source)
            reader.drain()
        elif fmt is ArchiveFormat.ZIP:
            with _seekable(reader, local_file, root) as zip_file:
                verify_digests(item.hashes, reader.hexdigests(), item=item.key, source=source)
                files = extract_zip(zip_file, destination, limits=limits, archive=source)
        else:
            raise ExtractionError(
                f"Item {item.key!r} has type 'dir' but {source} is not a zip or tar archive",
                archive=source,
            )
        files = [_prefixed(record, prefix) for record in files]
    else:
        if not name:
            raise ExtractionError(
                f"Item {item.key!r} has type 'file' and an empty name", archive=source
            )
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt is ArchiveFormat.ZIP:
            with _seekable(reader, local_file, root) as zip_file:
                verify_digests(item.hashes, reader.hexdigests(), item=item.key, source=source)
                record = extract_first_zip_entry(zip_file, target, limits=limits, archive=source)
        else:
            packing = (
                fmt if fmt in (ArchiveFormat.GZIP, ArchiveFormat.ZSTD) else ArchiveFormat.PLAIN
            )
            record = decompress(reader, packing, target, limits=limits, archive=source)
            reader.drain()
        files = [InstalledFile(path=name, size=record.size, sha256=record.sha256)]
    digests = reader.hexdigests()
    verify_digests(item.hashes, digests, item=item.key, source=source)
    return InstalledItem(key=item.key, digests=digests, files=files)


def _prefixed(record: InstalledFile, prefix: str) -> InstalledFile:
    if not prefix:
        return record
    return InstalledFile(path=prefix + record.path, size=record.size, sha256=record.sha256)


@contextlib.contextmanager
def _seekable(
    reader: HashingReader, local_file: Path | None, spool_dir: Path
) -> Iterator[BinaryIO]:
    """A seekable copy of the reader's bytes for zipfile, hashing them on the way.

    A local file is hashed by reading it through once and then opened as it is; anything else is
    spooled into an anonymous temporary file on the cache's file system.
    """
    if local_file is not None:
        reader.drain()
        with local_file.open("rb") as handle:
            yield handle
        return
    with tempfile.TemporaryFile(dir=spool_dir.parent) as spool:
        shutil.copyfileobj(reader, spool, CHUNK_SIZE)
        spool.seek(0)
        yield spool


def work_directory(target: Path) -> Path:
    """Create a private, uniquely named work directory beside ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=WORK_SUFFIX, dir=target.parent))


def write_manifest(directory: Path, manifest: Manifest, items: list[InstalledItem]) -> None:
    """Record the installed files and source digests in ``directory``'s completion marker."""
    for installed in items:
        manifest.source_digests[installed.key] = installed.digests
        for record in installed.files:
            manifest.files[record.path] = FileRecord(size=record.size, sha256=record.sha256)
    marker = directory / MANIFEST_NAME
    if marker.exists():
        raise ExtractionError(
            f"An item wrote a file named {MANIFEST_NAME}, which is reserved", archive=str(marker)
        )
    marker.write_text(manifest.to_json(), encoding="utf-8")


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest of a resource directory, or None when it has none or it is unreadable."""
    try:
        return Manifest.from_json((directory / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError, TypeError, KeyError):
        return None


def publish(work: Path, target: Path, *, accept_existing: Callable[[], bool]) -> bool:
    """Rename ``work`` to ``target``. Returns False when an existing complete target was kept.

    When ``target`` already exists it is kept if ``accept_existing()`` says it is complete (a
    concurrent prepare won the race); otherwise it is moved aside and replaced. A crash between
    the two renames leaves no target at all, which the next prepare redoes.
    """
    try:
        os.rename(work, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
    if accept_existing():
        return False
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".trash", dir=target.parent))
    os.rename(target, trash / "old")
    os.rename(work, target)
    remove_tree(trash)
    logger.info("Replaced incomplete or outdated %s", target)
    return True


def remove_tree(path: Path) -> None:
    """Remove a work or trash directory, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def install_error(exc: OSError, fallback: Path) -> InstallError:
    """Translate an OSError raised while writing the cache into an InstallError naming the path."""
    path = exc.filename or str(fallback)
    return InstallError(f"Cannot write {path}: {exc.strerror or exc}", path=str(path))
