"""Install items into a private work directory, then publish it atomically as a resource directory.

One concern: turning raw item bytes into files on disk. Every item's bytes pass once through a
:class:`~repository.hashing.HashingReader` on their way to a file or an extractor, so checksums
are verified without reading anything a second time. The work directory sits beside its target
(same file system), and is renamed into place only once every item verified and the manifest is
written inside it; a crash leaves at most a work directory that nobody trusts.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from repository.cache import MANIFEST_NAME
from repository.errors import ExtractionError, InstallError, RepositoryError
from repository.extract import (
    ExtractionLimits,
    InstalledFile,
    decompress,
    extract_first_zip_entry,
    extract_tar,
    extract_zip,
    write_bytes,
)
from repository.filetypes import ArchiveFormat
from repository.hashing import (
    BACKGROUND_HASHING_FROM,
    CHUNK_SIZE,
    FILE_DIGEST,
    HashingReader,
    Readable,
    new_hash,
    verify_digests,
)
from repository.locks import is_abandoned, owner_tag
from repository.manifest import HEAD_BYTES, FileRecord, Manifest, sources_digest_of_marker
from repository.metadata import Item

__all__ = [
    "InstalledItem",
    "SourceChangedError",
    "install_body",
    "install_file",
    "install_item",
    "publish",
    "read_manifest",
    "work_directory",
]

logger = logging.getLogger(__name__)

WORK_SUFFIX = ".part"
TRASH_SUFFIX = ".trash"
SPOOL_PREFIX = ".repository-spool-"
_TAR_FORMATS = {ArchiveFormat.TAR, ArchiveFormat.TGZ, ArchiveFormat.TZST}


@dataclass(frozen=True, slots=True)
class InstalledItem:
    """What installing one item produced: the digests of its raw bytes (:func:`source_algorithms`)
    and the files written."""

    key: str
    digests: dict[str, str]
    files: list[InstalledFile]


class SourceChangedError(RepositoryError):
    """An item's source changed while it was read: its install must start over (internal)."""


def source_algorithms(item: Item) -> list[str]:
    """The digests to compute over an item's raw bytes and record in the manifest: the declared
    ones, or sha256 when none is declared, so that the manifest says what was fetched.

    >>> source_algorithms(Item(uri="a.bin", sha1Hash="0" * 40))
    ['sha1']
    >>> source_algorithms(Item(uri="a.bin"))
    ['sha256']
    """
    return sorted(item.hashes) or ["sha256"]


def packing(item: Item) -> ArchiveFormat:
    """What has to be undone to install an item: its format, or PLAIN for a raw copy.

    A ``file`` item of a tar format is copied as it is (DJL's rule); a ``dir`` item keeps its
    format, which must then be a zip or tar archive.
    """
    fmt = item.archive_format
    if item.effective_type == "file" and fmt in _TAR_FORMATS:
        return ArchiveFormat.PLAIN
    return fmt


def source_reader(
    stream: Readable, item: Item, on_bytes: Callable[[int], None] | None
) -> HashingReader:
    """A reader hashing an item's raw bytes; large items are hashed in background threads."""
    size = item.size
    background = size is None or size < 0 or size >= BACKGROUND_HASHING_FROM
    return HashingReader(stream, source_algorithms(item), on_bytes=on_bytes, background=background)


def file_record_algorithm(digests: Mapping[str, str]) -> str:
    """Which source digest records a downloaded file moved into place: the strongest computed
    (:func:`source_algorithms` computes sha1, sha256 or both).

    >>> file_record_algorithm({"sha1": "a", "sha256": "b"})
    'sha256'
    """
    return "sha256" if "sha256" in digests else "sha1"


def wants_whole_file(item: Item) -> bool:
    """True when an item is best installed from a complete local file (zip, or a raw copy)."""
    return packing(item) in (ArchiveFormat.ZIP, ArchiveFormat.PLAIN)


def install_item(
    stream: Readable,
    item: Item,
    root: Path,
    *,
    source: str,
    limits: ExtractionLimits,
    local_file: Path | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> InstalledItem:
    """Write one item into ``root`` from a stream of its raw bytes, read once, start to end.

    Follows DJL's rules for ``name`` and ``type``: a ``dir`` item is extracted into
    ``root/name`` (``root`` itself when the name is empty); a ``file`` item is written to
    ``root/name``, decompressed when it is ``.gz`` or ``.zst``, and reduced to its first entry
    when it is a ``.zip``. Tar archives are extracted from the stream as it arrives; a zip needs
    a seekable file, so it is hashed on its way into a spool file (or, when ``local_file`` holds
    the same bytes, hashed from there) and extracted after it verified.

    :raises ChecksumMismatchError: when a declared digest does not match.
    :raises ExtractionError: for corrupt archives, unsupported types and unsafe archives.
    """
    with source_reader(stream, item, on_bytes) as reader:
        fmt = packing(item)
        if fmt is ArchiveFormat.ZIP:
            if local_file is not None:
                reader.drain()
                return install_file(
                    local_file, reader.hexdigests(), item, root, source=source, limits=limits
                )
            # The spool lives in the work directory, so that a crash leaves it with the rest.
            with tempfile.NamedTemporaryFile(dir=root, prefix=SPOOL_PREFIX) as spool:
                shutil.copyfileobj(reader, spool, CHUNK_SIZE)
                spool.flush()
                return install_file(
                    Path(spool.name), reader.hexdigests(), item, root, source=source, limits=limits
                )
        files = _unpack(reader, fmt, item, root, source=source, limits=limits)
        reader.drain()
        digests = reader.hexdigests()
    verify_digests(item.hashes, digests, item=item.key, source=source)
    return InstalledItem(key=item.key, digests=digests, files=files)


def install_body(
    body: bytes,
    item: Item,
    root: Path,
    *,
    source: str,
    limits: ExtractionLimits,
    on_bytes: Callable[[int], None] | None = None,
) -> InstalledItem:
    """Install an item whose raw bytes are all in memory (a small item, fetched whole).

    A plain copy is hashed and verified before it is written, in one call; anything else is
    installed from the bytes as from a stream.

    :raises ChecksumMismatchError: when a declared digest does not match.
    """
    if packing(item) is not ArchiveFormat.PLAIN:
        return install_item(
            io.BytesIO(body), item, root, source=source, limits=limits, on_bytes=on_bytes
        )
    digests = {
        algorithm: new_hash(algorithm, body).hexdigest() for algorithm in source_algorithms(item)
    }
    if on_bytes is not None:
        on_bytes(len(body))
    verify_digests(item.hashes, digests, item=item.key, source=source)
    record = write_bytes(
        body,
        _file_target(item, root, source),
        limits=limits,
        archive=source,
        digest=new_hash(FILE_DIGEST, body).hexdigest(),
    )
    return InstalledItem(
        key=item.key,
        digests=digests,
        files=[InstalledFile(path=item.effective_name, size=record.size, digest=record.digest)],
    )


def install_file(
    file: Path,
    digests: dict[str, str],
    item: Item,
    root: Path,
    *,
    source: str,
    limits: ExtractionLimits,
    move: bool = False,
) -> InstalledItem:
    """Install an item from a complete local file whose digests were computed as it was written.

    The digests are verified first, so nothing unverified is extracted; the file is not read
    again to verify. A plain file is moved into place when ``move`` is true (a finished
    download), else copied. A moved file is recorded in the manifest with the strongest of
    ``digests`` (:func:`file_record_algorithm`) rather than hashed once more with
    :data:`~repository.hashing.FILE_DIGEST`: on the critical path of a download that costs
    0.17 CPU-s per GiB here, for a digest already in hand.

    :raises ChecksumMismatchError: when a declared digest does not match.
    """
    verify_digests(item.hashes, digests, item=item.key, source=source)
    fmt = packing(item)
    name = item.effective_name
    if fmt is ArchiveFormat.PLAIN and move:
        target = _file_target(item, root, source)
        os.replace(file, target)
        algorithm = file_record_algorithm(digests)
        files = [InstalledFile(name, target.stat().st_size, digests[algorithm], algorithm)]
    else:
        with file.open("rb") as handle:
            files = _unpack(handle, fmt, item, root, source=source, limits=limits)
    return InstalledItem(key=item.key, digests=digests, files=files)


def _file_target(item: Item, root: Path, source: str) -> Path:
    name = item.effective_name
    if not name:
        raise ExtractionError(
            f"Item {item.key!r} has type 'file' and an empty name", archive=source
        )
    target = root / name
    if "/" in name:  # root itself exists
        target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _unpack(
    stream: BinaryIO | Readable,
    fmt: ArchiveFormat,
    item: Item,
    root: Path,
    *,
    source: str,
    limits: ExtractionLimits,
) -> list[InstalledFile]:
    """Extract, decompress or copy ``stream`` as ``fmt`` into the item's place under ``root``."""
    name = item.effective_name
    if item.effective_type == "dir":
        destination = root / name if name else root
        if fmt in _TAR_FORMATS:
            files = extract_tar(stream, fmt, destination, limits=limits, archive=source)
        elif fmt is ArchiveFormat.ZIP:
            files = extract_zip(stream, destination, limits=limits, archive=source)  # type: ignore[arg-type]
        else:
            raise ExtractionError(
                f"Item {item.key!r} has type 'dir' but {source} is not a zip or tar archive",
                archive=source,
            )
        prefix = f"{name}/" if name else ""
        return [_prefixed(record, prefix) for record in files]
    target = _file_target(item, root, source)
    if fmt is ArchiveFormat.ZIP:
        record = extract_first_zip_entry(stream, target, limits=limits, archive=source)  # type: ignore[arg-type]
    else:
        record = decompress(stream, fmt, target, limits=limits, archive=source)
    return [InstalledFile(path=name, size=record.size, digest=record.digest)]


def _prefixed(record: InstalledFile, prefix: str) -> InstalledFile:
    if not prefix:
        return record
    return InstalledFile(path=prefix + record.path, size=record.size, digest=record.digest)


def work_directory(target: Path) -> Path:
    """Create a private work directory beside ``target``, named after it and its owner."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.{owner_tag()}.", suffix=WORK_SUFFIX, dir=target.parent
        )
    )


def _trash_directory(target: Path) -> Path:
    return Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.{owner_tag()}.", suffix=TRASH_SUFFIX, dir=target.parent
        )
    )


def remove_abandoned(target: Path) -> list[Path]:
    """Remove the work and trash directories that dead processes left beside ``target``."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return removed
    prefix = f".{target.name}."
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.name.endswith(
            (WORK_SUFFIX, TRASH_SUFFIX)
        ):
            continue
        tag = entry.name[len(prefix) :].split(".", 1)[0]
        if is_abandoned(tag, Path(entry.path)):
            logger.info("Removing %s, left by a dead process", entry.path)
            remove_tree(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def remove_directory(target: Path) -> bool:
    """Remove a resource directory atomically: renamed aside first, so that nobody ever sees
    half of it, then deleted. Returns False when it did not exist."""
    trash = _trash_directory(target)
    try:
        os.rename(target, trash / "old")
    except FileNotFoundError:
        remove_tree(trash)
        return False
    remove_tree(trash)
    return True


def write_manifest(directory: Path, manifest: Manifest, items: list[InstalledItem]) -> None:
    """Record the installed files and source digests in ``directory``'s completion marker."""
    for installed in items:
        manifest.source_digests[installed.key] = installed.digests
        for record in installed.files:
            manifest.files[record.path] = FileRecord(record.size, record.algorithm, record.digest)
    marker = directory / MANIFEST_NAME
    if marker.exists():
        raise ExtractionError(
            f"An item wrote a file named {MANIFEST_NAME}, which is reserved", archive=str(marker)
        )
    marker.write_text(manifest.to_json(), encoding="utf-8")


def read_sources_digest(directory: Path) -> str | None:
    """The sources digest a resource directory's marker starts with (reads ~100 bytes)."""
    try:
        with (directory / MANIFEST_NAME).open("rb") as marker:
            return sources_digest_of_marker(marker.read(HEAD_BYTES))
    except OSError:
        return None


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
    for _ in range(5):
        try:
            os.rename(work, target)
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
        if accept_existing():
            return False
        if remove_directory(target):
            logger.info("Replaced incomplete or outdated %s", target)
    raise InstallError(f"Cannot publish {target}: it keeps being replaced", path=str(target))


def remove_tree(path: Path) -> None:
    """Remove a work or trash directory, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def install_error(exc: OSError, fallback: Path) -> InstallError:
    """Translate an OSError raised while writing the cache into an InstallError naming the path."""
    return InstallError.from_os_error(exc, path=str(exc.filename or fallback))
