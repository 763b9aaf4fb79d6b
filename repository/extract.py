"""Safe extraction of one archive, or decompression of one file, into a private directory.

This module works at the level of one item: the installer hands it a readable binary stream
(or, for zip, a seekable file) and a destination inside a private temporary directory. It
never touches the network and never hashes the source; the caller hashes the raw bytes by
wrapping the stream, which is why the tar and single-file functions read their source
strictly sequentially and never seek it. The stream is not closed, and the tar functions
stop reading soon after the end-of-archive marker, so the caller must drain the rest itself.

Archives are treated as hostile:

* Member names must be relative and may not contain ``..``, NUL bytes, drive letters or
  UNC prefixes; backslashes are read as separators (as Windows zip writers produce them).
  A leading ``./`` is accepted, and a directory member naming the root itself (``.``, as
  in ``tar -C dir .``) is skipped.
* Symbolic links must be relative, may not leave the destination, and may not walk through
  another symbolic link; they are created only after every file and directory. Hard links
  must name a regular file extracted earlier from the same archive. Nothing is written
  under a symbolic-link member, nor through a symbolic link that already exists on disk.
* Devices, FIFOs and other special members are refused.
* :class:`ExtractionLimits` bounds entries, bytes written and the expansion ratio, counted
  on the bytes actually produced, so bombs stop early.
* Zip archives are cross-checked: local header names against the central directory,
  duplicate names, overlapping entries.
* The destination, and every directory below it, must be a real directory; anything found
  there from another item may be replaced by the same kind of file, never by another kind.
  The path leading to the destination is the caller's: it is not checked for links.

Files are created with the default mode (umask applies), keeping only the executable bit
of a member; owners, times and setuid/setgid/sticky bits of the archive are ignored.

Corrupt input raises :class:`~repository.errors.ExtractionError`, hostile input
:class:`~repository.errors.UnsafeArchiveError`, and a failure to write (full disk,
permissions) :class:`~repository.errors.InstallError`. On any error, files already written
stay where they are: the caller removes its whole temporary directory.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import enum
import itertools
import logging
import os
import re
import stat
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, Self, cast

import zstandard

from .errors import ExtractionError, InstallError, RepositoryError, UnsafeArchiveError
from .filetypes import ArchiveFormat
from .hashing import FILE_DIGEST, Readable, new_hash
from .overlap import ChunkPipe
from .zstdframes import ZstdStructureError, ZstdWalker

__all__ = [
    "ExtractionLimits",
    "InstalledFile",
    "decompress",
    "extract_first_zip_entry",
    "extract_tar",
    "extract_zip",
    "write_bytes",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
"""Size of the reads and writes of member content."""
_IN_CHUNK = 64 << 10
"""Size of the reads of compressed input."""
READ_AHEAD_FROM = 8 << 20
"""Decompressed bytes after which a decoder moves to a thread of its own (:class:`_ReadAhead`)."""
_ZSTD_IN_CHUNK = 1 << 20
"""Size of the reads of zstd input: pieces of whole blocks are cut from them without copying."""
_ZSTD_BLOCKS_PER_CALL = 8
"""Blocks given to the decompressor at a time: at most (8 + 1) x 128 KiB come out of a call,
whatever the data (a 4-byte RLE block stands for 128 KiB), in a few thousand calls per GiB."""
_MAX_META_HEADER = 1 << 20
"""Largest pax or GNU long-name header accepted (tarfile reads them into memory)."""
_MAX_TAIL = 1 << 20
"""Decompressed bytes after a tar's end marker that are read to check the compression."""
_MAX_LINK_TARGET = 4096
"""Longest symbolic link target accepted (PATH_MAX on Linux)."""

_DRIVE = re.compile(r"[A-Za-z]:")
_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_TAR_META_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)
_TAR_TYPE_NAMES = {
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}
# Header errors after which tarfile stops silently although the archive is corrupt (the
# clean endings are a zero block, EOFHeaderError, and the end of the data, EmptyHeaderError).
_TAR_BAD_HEADERS: tuple[type[Exception], ...] = tuple(
    getattr(tarfile, name)
    for name in ("InvalidHeaderError", "TruncatedHeaderError")
    if hasattr(tarfile, name)
)
_ZIP_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"
_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_ZIP_FLAG_ENCRYPTED = 0x1
_ZIP_FLAG_UTF8 = 0x800


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds that stop archive bombs. Defaults are sane for ML artifacts.

    All sizes count bytes actually produced, never the sizes an archive declares; declared
    sizes are only used to refuse early. A hard link counts as many bytes as its target.

    The ratio check compares the bytes written so far with the compressed bytes consumed
    so far, and only applies once more than ``ratio_floor`` bytes were written, so that
    small, highly compressible files (zero-filled buffers, vocabularies) never trip it. With
    the defaults a bomb stops after about 64 MiB: zstd, bzip2 and xz bombs expand
    thousands of times, and deflate tops out at 1032:1. Real model weights compress
    less than 2:1 and text data sets 3 to 20:1. Set ``max_ratio`` to None to disable
    the check.

    :param max_total_size: most bytes written for one archive or one decompressed file.
    :param max_entries: most members of one archive, directories and links included.
    :param max_ratio: most bytes written per compressed byte read, or None for no limit.
    :param ratio_floor: bytes that may be written before ``max_ratio`` applies.
    """

    max_total_size: int = 64 * 2**30
    max_entries: int = 200_000
    max_ratio: int | None = 1000
    ratio_floor: int = 64 * 2**20

    def __post_init__(self) -> None:
        """Refuse limits that cannot be met.

        :raises ValueError: if a limit is zero or negative (``ratio_floor`` may be zero).
        """
        if self.max_total_size <= 0:
            raise ValueError("ExtractionLimits.max_total_size must be positive")
        if self.max_entries <= 0:
            raise ValueError("ExtractionLimits.max_entries must be positive")
        if self.max_ratio is not None and self.max_ratio <= 0:
            raise ValueError("ExtractionLimits.max_ratio must be positive or None")
        if self.ratio_floor < 0:
            raise ValueError("ExtractionLimits.ratio_floor must not be negative")


@dataclass(frozen=True)
class InstalledFile:
    """A regular file written by an extraction.

    :param path: POSIX path relative to the destination given to the call; for the
        single-file functions, the file name of the target.
    :param size: bytes written.
    :param digest: hex digest of the bytes written, computed while writing them (or, for a
        downloaded file moved into place, while downloading it).
    :param algorithm: the digest's algorithm: :data:`~repository.hashing.FILE_DIGEST`, or the
        source digest that verified a file moved into place as it was downloaded.
    """

    path: str
    size: int
    digest: str
    algorithm: str = FILE_DIGEST


class _Kind(enum.Enum):
    DIR = "directory"
    FILE = "file"
    SYMLINK = "symbolic link"
    OTHER = "special file"


class _Source(Protocol):
    """A decompressed view of the caller's stream."""

    def read(self, size: int, /) -> bytes: ...

    def read1(self, size: int, /) -> bytes:
        """At most ``size`` bytes, whatever comes cheapest (b"" only at the end)."""
        ...

    def consumed(self) -> int:
        """Compressed bytes consumed so far."""
        ...


class _Job:
    """The context of one call: names for errors, limits and counters."""

    def __init__(self, archive: str, limits: ExtractionLimits) -> None:
        self.archive = archive
        self.limits = limits
        self.member: str | None = None
        self.entries = 0
        self.written = 0
        self.consumed: Callable[[], int] = lambda: 0

    def unsafe(self, reason: str) -> UnsafeArchiveError:
        where = "" if self.member is None else f", member {self.member!r}"
        return UnsafeArchiveError(
            f"unsafe archive {self.archive}{where}: {reason}",
            archive=self.archive,
            member=self.member,
        )

    def corrupt(self, reason: str) -> ExtractionError:
        where = "" if self.member is None else f", member {self.member!r}"
        return ExtractionError(
            f"cannot extract {self.archive}{where}: {reason}",
            archive=self.archive,
            member=self.member,
        )

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise self.unsafe(
                f"more than {self.limits.max_entries} entries (ExtractionLimits.max_entries)"
            )

    def check_declared(self, size: int) -> None:
        """Refuse a member whose declared size already exceeds what is left."""
        left = self.limits.max_total_size - self.written
        if size > left:
            raise self.unsafe(
                f"declares {size} bytes but only {left} of the "
                f"{self.limits.max_total_size} allowed (ExtractionLimits.max_total_size) are left"
            )

    def check_totals(self, expanded: int, compressed: int) -> None:
        if expanded > self.limits.max_total_size:
            raise self.unsafe(
                f"expands to more than {self.limits.max_total_size} bytes "
                "(ExtractionLimits.max_total_size)"
            )
        ratio = self.limits.max_ratio
        if (
            ratio is not None
            and expanded > self.limits.ratio_floor
            and expanded > ratio * max(compressed, 1)
        ):
            raise self.unsafe(
                f"expands {compressed} compressed bytes to more than {expanded} bytes, "
                f"a ratio above {ratio} (ExtractionLimits.max_ratio)"
            )

    def charge(self, size: int) -> None:
        """Account for ``size`` more bytes about to be written, or refuse them."""
        total = self.written + size
        self.check_totals(total, self.consumed())
        self.written = total


@contextlib.contextmanager
def _translating(job: _Job) -> Iterator[None]:
    """Turn every foreign exception into an :class:`ExtractionError`.

    Write failures are turned into :class:`InstallError` where they happen, so an
    ``OSError`` arriving here comes from reading the source.
    """
    try:
        yield
    except RepositoryError:
        raise
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zlib.error,
        zstandard.ZstdError,
        ZstdStructureError,
        EOFError,
    ) as exc:
        raise job.corrupt(f"corrupt or truncated data: {exc}") from exc
    except OSError as exc:
        raise job.corrupt(f"cannot read the source: {exc}") from exc
    except Exception as exc:
        raise job.corrupt(f"{type(exc).__name__}: {exc}") from exc


# -- reading -------------------------------------------------------------------------------


class _Counted:
    """The caller's stream, read sequentially, counting bytes."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int, /) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data

    read1 = read

    def consumed(self) -> int:
        return self.count


class _Decoder(abc.ABC):
    """Base of the decompressing readers: ``read(n)`` returns n bytes unless at the end."""

    def read(self, size: int, /) -> bytes:
        return _read_fully(self._read1, size)

    def read1(self, size: int, /) -> bytes:
        return self._read1(size if size >= 0 else _CHUNK)

    @abc.abstractmethod
    def consumed(self) -> int:
        """Compressed bytes consumed so far."""

    @abc.abstractmethod
    def _read1(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes, at least one unless at the end."""


class _GzipReader(_Decoder):
    """Gunzip a stream: several members, zero padding after a member, CRC and size checked."""

    def __init__(self, raw: _Counted) -> None:
        self._raw = raw
        self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""
        self._in_member = False
        self._members = 0
        self._done = False

    def consumed(self) -> int:
        return self._raw.count - len(self._input)

    def _read1(self, size: int) -> bytes:
        while not self._done:
            if not self._in_member:
                if not self._input:
                    self._input = self._raw.read(_IN_CHUNK)
                    if not self._input:
                        if not self._members:
                            raise EOFError("empty gzip stream")
                        self._done = True
                        break
                if self._members:
                    self._input = self._input.lstrip(b"\0")
                    if not self._input:
                        continue
                self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._in_member = True
                self._members += 1
            data = self._input or self._raw.read(_IN_CHUNK)
            out = self._decompressor.decompress(data, size)
            if self._decompressor.eof:
                self._input = self._decompressor.unused_data
                self._in_member = False
            else:
                self._input = self._decompressor.unconsumed_tail
                if not out and not data:
                    raise EOFError("gzip stream ends in the middle of a member")
            if out:
                return out
        return b""


class _ZstdReader(_Decoder):
    """Decompress zstd frames one after the other, a few blocks at a time, detecting a
    truncated last frame (see :mod:`repository.zstdframes`)."""

    def __init__(self, raw: _Counted) -> None:
        self._raw = raw
        self._context = zstandard.ZstdDecompressor()
        self._walker = ZstdWalker()
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._input = memoryview(b"")
        self._consumed = 0
        self._out = b""
        self._out_pos = 0
        self._done = False

    def consumed(self) -> int:
        return self._consumed

    def _read1(self, size: int) -> bytes:
        while True:
            if self._out_pos < len(self._out):
                piece = self._out[self._out_pos : self._out_pos + size]
                self._out_pos += len(piece)
                return piece
            if self._done:
                return b""
            step = self._walker.advance(self._input, _ZSTD_BLOCKS_PER_CALL)
            if not step.size:
                self._refill()
                continue
            piece_in = self._input[: step.size]
            self._input = self._input[step.size :]
            self._consumed += step.size
            if step.skip:
                continue
            if step.starts_frame:
                self._frame = self._context.decompressobj()
            assert self._frame is not None  # the walker starts every frame it steps into
            self._out = self._frame.decompress(piece_in)
            self._out_pos = 0
            if step.ends_frame:
                if not self._frame.eof:
                    raise ZstdStructureError("a frame ends where its decompressor goes on")
                self._frame = None

    def _refill(self) -> None:
        data = self._raw.read(_ZSTD_IN_CHUNK)
        if not data:
            if self._walker.in_frame or self._input:
                raise EOFError("zstd stream ends in the middle of a frame")
            if not self._walker.frames:
                raise EOFError("empty zstd stream")
            self._done = True
        elif self._input:  # a header cut in two: rare, so the copy does not matter
            self._input = memoryview(self._input.tobytes() + data)
        else:
            self._input = memoryview(data)


class _ReadAhead:
    """A decoder run in a thread of its own, up to a few chunks ahead of its reader.

    Inflating or decoding zstd releases the GIL, so on two cores it runs beside the parsing
    and writing of the files, as ``zstd -d | tar -x`` do in two processes. The thread starts
    once :data:`READ_AHEAD_FROM` bytes came out, so that small archives pay nothing for it.
    A decoder's error reaches the reader where the good data before it ends, and
    :meth:`consumed` counts the compressed bytes behind what the reader got, not behind what
    the thread decoded ahead, so that the ratio limit trips where it would without it.
    """

    def __init__(self, decoder: _Decoder) -> None:
        self._decoder = decoder
        self._delivered = 0
        self._pipe: ChunkPipe | None = None
        self._thread: threading.Thread | None = None
        # (decoded bytes up to the end of a chunk, compressed bytes consumed for them),
        # appended by the thread before the chunk is queued, dropped as the reader passes.
        self._marks: collections.deque[tuple[int, int]] = collections.deque()
        self._consumed = 0

    def consumed(self) -> int:
        return self._decoder.consumed() if self._pipe is None else self._consumed

    def read(self, size: int, /) -> bytes:
        return _read_fully(self.read1, size)

    def read1(self, size: int, /) -> bytes:
        if self._pipe is None:
            data = self._decoder.read1(size)
            self._delivered += len(data)
            if self._delivered >= READ_AHEAD_FROM:
                self._start()
            return data
        data = self._pipe.read(size if size >= 0 else _CHUNK)
        if data:
            self._delivered += len(data)
            marks = self._marks
            while marks[0][0] < self._delivered:
                marks.popleft()
            self._consumed = marks[0][1]
        return data

    def _start(self) -> None:
        self._pipe = ChunkPipe()
        self._thread = threading.Thread(
            target=self._run, args=(self._pipe,), name="repository-decompress", daemon=True
        )
        self._thread.start()

    def _run(self, pipe: ChunkPipe) -> None:
        decoded = self._delivered
        try:
            while chunk := self._decoder.read1(_CHUNK):
                decoded += len(chunk)
                self._marks.append((decoded, self._decoder.consumed()))
                if not pipe.put(chunk):
                    return  # the reader is done
        except BaseException as exc:  # handed to the reader
            pipe.end(complete=False, error=exc)
        else:
            pipe.end(complete=True)

    def close(self) -> None:
        """Stop the thread, if any; the decoder is read no further."""
        if self._pipe is not None and self._thread is not None:
            self._pipe.close()
            self._thread.join()


def _read_fully(read1: Callable[[int], bytes], size: int) -> bytes:
    """``size`` bytes (or up to the end) from pieces of at most what ``read1`` returns."""
    if size < 0:
        size = _CHUNK
    pieces: list[bytes] = []
    total = 0
    while total < size:
        piece = read1(size - total)
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


@contextlib.contextmanager
def _opened_source(stream: Readable, fmt: ArchiveFormat, job: _Job) -> Iterator[_Source]:
    """The decompressed view of ``stream``; a large compressed one is decoded ahead."""
    raw = _Counted(stream)
    decoder: _Decoder
    if fmt in (ArchiveFormat.TGZ, ArchiveFormat.GZIP):
        decoder = _GzipReader(raw)
    elif fmt in (ArchiveFormat.TZST, ArchiveFormat.ZSTD):
        decoder = _ZstdReader(raw)
    else:
        job.consumed = raw.consumed
        yield raw
        return
    source = _ReadAhead(decoder)
    job.consumed = source.consumed
    try:
        yield source
    finally:
        source.close()


# -- writing -------------------------------------------------------------------------------


def _lstat_kind(path: str) -> _Kind | None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InstallError.from_os_error(exc, path=path) from exc
    if stat.S_ISDIR(mode):
        return _Kind.DIR
    if stat.S_ISREG(mode):
        return _Kind.FILE
    if stat.S_ISLNK(mode):
        return _Kind.SYMLINK
    return _Kind.OTHER


def _clear_for(job: _Job, path: str, rel: str, kind: _Kind, *, replace: bool = True) -> None:
    """Make room at ``path`` for a new ``kind``: only a same-kind leftover may be replaced.

    With ``replace`` False, what is there can only be another member of the same archive
    whose name differs in case (on a case-insensitive file system): refuse it.
    """
    existing = _lstat_kind(path)
    if existing is None:
        return
    if existing is not kind:
        raise job.unsafe(f"{rel!r} already exists as a {existing.value}; refusing to replace it")
    if not replace:
        raise job.unsafe(
            f"{rel!r} collides with another member of the archive on this case-insensitive "
            "file system"
        )
    try:
        os.unlink(path)
    except OSError as exc:
        raise InstallError.from_os_error(exc, path=path) from exc


def _open_new(job: _Job, path: str, rel: str, executable: bool, replace: bool) -> int:
    """Create ``path`` for writing without following links; replace an earlier regular file."""
    mode = 0o777 if executable else 0o666
    try:
        return os.open(path, _OPEN_FLAGS, mode)
    except FileExistsError:
        pass
    except OSError as exc:
        raise InstallError.from_os_error(exc, path=path) from exc
    _clear_for(job, path, rel, _Kind.FILE, replace=replace)
    try:
        return os.open(path, _OPEN_FLAGS, mode)
    except OSError as exc:
        raise InstallError.from_os_error(exc, path=path) from exc


def _write_file(
    job: _Job,
    path: str,
    rel: str,
    read: Callable[[int], bytes],
    *,
    executable: bool,
    charge: bool = True,
    replace: bool = True,
    digest: str | None = None,
) -> InstalledFile:
    """Copy ``read`` into a new file at ``path``, hashing (unless ``digest`` is the content's
    :data:`~repository.hashing.FILE_DIGEST` already) and accounting every chunk."""
    fd = _open_new(job, path, rel, executable, replace)
    hasher = new_hash(FILE_DIGEST) if digest is None else None
    size = 0
    complete = False
    try:
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            if charge:
                job.charge(len(chunk))
            if hasher is not None:
                hasher.update(chunk)
            view = memoryview(chunk)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                raise InstallError.from_os_error(exc, path=path) from exc
            size += len(chunk)
        complete = True
    finally:
        try:
            os.close(fd)
        except OSError as exc:
            if complete:
                raise InstallError.from_os_error(exc, path=path) from exc
    if hasher is not None:
        digest = hasher.hexdigest()
    assert digest is not None  # given, or computed just above
    return InstalledFile(path=rel, size=size, digest=digest)


def _prepare_directory(job: _Job, destination: Path) -> str:
    """Create the destination if missing; refuse one that is a link or not a directory."""
    root = os.fspath(destination)
    existing = _lstat_kind(root)
    if existing is None:
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise InstallError.from_os_error(exc, path=root) from exc
    elif existing is not _Kind.DIR:
        raise job.unsafe(f"the destination {root} exists as a {existing.value}")
    return root


def _prepare_target(job: _Job, target: Path) -> str:
    """Make sure the directory of a single-file target exists and is a real directory."""
    path = os.fspath(target)
    _prepare_directory(job, Path(os.path.dirname(path) or os.curdir))
    return path


def _split_name(job: _Job, name: str, what: str = "name") -> list[str]:
    """Validate a member name (or hard link target) lexically; return its components."""
    if "\x00" in name:
        raise job.unsafe(f"{what} {name!r} contains a NUL byte")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise job.unsafe(f"{what} {name!r} is absolute")
    parts: list[str] = []
    for part in normalized.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise job.unsafe(f"{what} {name!r} contains a '..' component")
        parts.append(part)
    return parts


class _Tree:
    """The files, directories and links one archive writes under one destination.

    Paths are tracked as POSIX keys relative to the root (``""`` is the root). Directories
    in ``dirs`` are known to be real directories (created or checked with ``lstat``), so
    that writing below them never follows a link.
    """

    def __init__(self, job: _Job, root: str) -> None:
        self.job = job
        self.root = root
        self.dirs: set[str] = {""}
        self.kinds: dict[str, _Kind] = {"": _Kind.DIR}
        self.files: dict[str, InstalledFile] = {}
        self.links: dict[str, tuple[str, str | None]] = {}
        self.installed: list[InstalledFile] = []
        self.folded: set[str] = set()
        self.case_clashes: set[str] = set()

    def path(self, key: str) -> str:
        return os.path.join(self.root, key) if key else self.root

    def claim(self, parts: list[str], kind: _Kind) -> str:
        """Record that this archive puts a ``kind`` at ``parts``; refuse repeats and clashes."""
        key = "/".join(parts)
        existing = self.kinds.get(key)
        if existing is not None and not (existing is _Kind.DIR and kind is _Kind.DIR):
            if existing is kind:
                raise self.job.unsafe(f"{key!r} appears more than once in the archive")
            raise self.job.unsafe(
                f"{key!r} is both a {existing.value} and a {kind.value} in the archive"
            )
        self.ensure_dir(key.rpartition("/")[0])
        self.kinds[key] = kind
        if kind is not _Kind.DIR:
            folded = key.casefold()
            if folded in self.folded:
                self.case_clashes.add(key)
            self.folded.add(folded)
        return key

    def ensure_dir(self, key: str) -> None:
        """Create the directory ``key`` and its missing parents, refusing links and files."""
        if key in self.dirs:
            return
        missing: list[str] = []
        while key not in self.dirs:
            missing.append(key)
            key = key.rpartition("/")[0]
        for key in reversed(missing):
            known = self.kinds.get(key)
            if known is not None and known is not _Kind.DIR:
                raise self.job.unsafe(f"{key!r} is a {known.value} in the archive, not a directory")
            path = self.path(key)
            try:
                os.mkdir(path)
            except FileExistsError:
                found = _lstat_kind(path)
                if found is not _Kind.DIR:
                    kind = "missing" if found is None else f"a {found.value}"
                    raise self.job.unsafe(
                        f"{key!r} must be a directory but already exists as {kind}"
                    ) from None
            except OSError as exc:
                raise InstallError.from_os_error(exc, path=path) from exc
            self.dirs.add(key)
            self.kinds[key] = _Kind.DIR

    def add_dir(self, parts: list[str]) -> None:
        key = self.claim(parts, _Kind.DIR)
        self.ensure_dir(key)

    def add_file(self, parts: list[str], read: Callable[[int], bytes], executable: bool) -> None:
        key = self.claim(parts, _Kind.FILE)
        installed = _write_file(
            self.job,
            self.path(key),
            key,
            read,
            executable=executable,
            replace=key not in self.case_clashes,
        )
        self.files[key] = installed
        self.installed.append(installed)

    def add_hardlink(self, parts: list[str], target: str) -> None:
        target_key = "/".join(_split_name(self.job, target, "hard link target"))
        source = self.files.get(target_key)
        if source is None:
            raise self.job.unsafe(
                f"hard link target {target!r} is not a regular file extracted earlier "
                "from this archive"
            )
        self.job.check_declared(source.size)
        key = self.claim(parts, _Kind.FILE)
        self.job.charge(source.size)
        path = self.path(key)
        _clear_for(self.job, path, key, _Kind.FILE, replace=key not in self.case_clashes)
        try:
            os.link(self.path(target_key), path, follow_symlinks=False)
        except OSError:
            try:
                with open(self.path(target_key), "rb") as original:
                    _write_file(self.job, path, key, original.read, executable=False, charge=False)
            except OSError as exc:
                raise InstallError.from_os_error(exc, path=path) from exc
        installed = InstalledFile(path=key, size=source.size, digest=source.digest)
        self.files[key] = installed
        self.installed.append(installed)

    def add_symlink(self, parts: list[str], target: str) -> None:
        """Check a link's target and defer its creation to :meth:`finish`."""
        if not target:
            raise self.job.unsafe("symbolic link with an empty target")
        if "\x00" in target:
            raise self.job.unsafe(f"symbolic link target {target!r} contains a NUL byte")
        normalized = target.replace("\\", "/")
        if normalized.startswith("/") or _DRIVE.match(normalized):
            raise self.job.unsafe(f"symbolic link target {target!r} is absolute")
        key = self.claim(parts, _Kind.SYMLINK)
        self._walk(key, normalized, target, check_links=False)
        self.links[key] = (normalized, self.job.member)

    def _walk(self, key: str, normalized: str, target: str, *, check_links: bool) -> None:
        """Resolve a link target lexically from the link's directory; refuse escapes.

        With ``check_links``, also refuse a walk that goes through a link of this archive
        (or a link already on disk); only the last component may be a link of the archive,
        which is itself checked.
        """
        stack = key.split("/")[:-1]
        tokens = normalized.split("/")
        last = len(tokens) - 1
        for index, token in enumerate(tokens):
            if token in ("", "."):
                continue
            if token == "..":
                if not stack:
                    raise self.job.unsafe(
                        f"symbolic link target {target!r} points outside the destination"
                    )
                stack.pop()
                continue
            stack.append(token)
            if not check_links:
                continue
            current = "/".join(stack)
            if current in self.links:
                if index != last:
                    raise self.job.unsafe(
                        f"symbolic link target {target!r} goes through the symbolic link "
                        f"{current!r}"
                    )
            elif current not in self.dirs and os.path.islink(self.path(current)):
                raise self.job.unsafe(
                    f"symbolic link target {target!r} goes through the existing symbolic "
                    f"link {current!r}"
                )

    def finish(self) -> list[InstalledFile]:
        """Check every deferred link against all the others, then create them."""
        for key, (normalized, member) in self.links.items():
            self.job.member = member
            self._walk(key, normalized, normalized, check_links=True)
        for key, (normalized, member) in self.links.items():
            self.job.member = member
            path = self.path(key)
            _clear_for(self.job, path, key, _Kind.SYMLINK, replace=key not in self.case_clashes)
            try:
                os.symlink(normalized, path)
            except OSError as exc:
                raise InstallError.from_os_error(exc, path=path) from exc
        self.job.member = None
        return self.installed


# -- tar -----------------------------------------------------------------------------------


class _ForwardFile:
    """The decompressed stream as tarfile's file: ``tell``, ``read``, and seeks forward only.

    With it, tarfile reads headers in its seekable mode, which keeps no read-ahead buffer,
    while member content is read from here directly (:meth:`member_reader`): no bytes are
    copied between tarfile's buffers on the way.
    """

    def __init__(self, source: _Source) -> None:
        self._source = source
        self._position = 0

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = os.SEEK_SET, /) -> int:
        if whence != os.SEEK_SET or position < self._position:
            raise OSError("a streamed archive is read forward only")
        while self._position < position:
            if not self.read1(min(position - self._position, _CHUNK)):
                break  # tarfile's next read finds the end
        return self._position

    def read1(self, size: int, /) -> bytes:
        data = self._source.read1(size)
        self._position += len(data)
        return data

    def member_reader(self, info: tarfile.TarInfo) -> Callable[[int], bytes]:
        """A reader of a regular, non-sparse member's content, failing when it is cut short."""
        self.seek(info.offset_data)
        left = info.size

        def read(size: int) -> bytes:
            nonlocal left
            if not left:
                return b""
            data = self.read1(min(size, left))
            if not data:
                raise EOFError("unexpected end of data")
            left -= len(data)
            return data

        return read


def _tarinfo_class(job: _Job, ending: list[BaseException | None]) -> type[tarfile.TarInfo]:
    """A TarInfo that bounds in-memory headers and records why tarfile stopped reading.

    ``tarfile`` ends iteration silently on a corrupt or truncated header after the first
    member; ``ending[0]`` keeps the header error so that the caller can tell a clean
    end-of-archive from corruption.
    """

    class _TarInfo(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
            try:
                info = super().frombuf(buf, encoding, errors)
            except tarfile.HeaderError as exc:
                ending[0] = exc
                raise
            ending[0] = None
            if info.type in _TAR_META_TYPES and info.size > _MAX_META_HEADER:
                raise job.unsafe(
                    f"extended header of {info.size} bytes (at most {_MAX_META_HEADER})"
                )
            return info

    return _TarInfo


def _extract_tar_members(tar: tarfile.TarFile, file: _ForwardFile, tree: _Tree, job: _Job) -> None:
    for info in tar:
        job.member = info.name
        job.count_entry()
        parts = _split_name(job, info.name)
        if not parts:
            if not info.isdir():
                raise job.unsafe("the name is empty once normalized")
        elif info.isdir():
            tree.add_dir(parts)
        elif info.isreg():
            job.check_declared(info.size)
            read: Callable[[int], bytes]
            if info.sparse is None:
                read = file.member_reader(info)
            else:  # GNU sparse: tarfile maps the holes
                content = tar.extractfile(info)
                if content is None:  # pragma: no cover - isreg() members always have content
                    raise job.corrupt("no content for a regular file")
                read = content.read
            tree.add_file(parts, read, executable=bool(info.mode & 0o111))
        elif info.issym():
            tree.add_symlink(parts, info.linkname)
        elif info.islnk():
            tree.add_hardlink(parts, info.linkname)
        else:
            kind = _TAR_TYPE_NAMES.get(info.type, f"member of type {info.type!r}")
            raise job.unsafe(f"{kind} members are not allowed")
        job.member = None  # errors while reading the next header belong to no member yet


def _check_tail(source: _Source) -> None:
    """Decompress what follows the end-of-archive marker, up to a bound.

    That is normally a few KiB of record padding; reading it to the end of the compressed
    stream verifies the gzip CRC or the zstd frame, and detects truncation and trailing
    garbage. Beyond the bound the rest is left to the caller, unchecked.
    """
    left = _MAX_TAIL
    while left > 0:
        chunk = source.read(min(left, _CHUNK))
        if not chunk:
            return
        left -= len(chunk)


def extract_tar(
    stream: Readable,
    fmt: ArchiveFormat,
    destination: Path,
    *,
    limits: ExtractionLimits,
    archive: str,
) -> list[InstalledFile]:
    """Extract a tar archive, read sequentially from ``stream``, into ``destination``.

    The stream is decompressed here (gzip with several members allowed, or zstd across
    frames) and read in one pass: it is never seeked and never closed. Reading stops at the
    end-of-archive marker, or for a compressed tar at the end of the compressed stream when
    that comes within 1 MiB (checking its CRC or frame); past 8 MiB of output, a compressed
    stream is decoded in a thread up to about 9 MiB ahead, so reading may have gone that much
    further. The caller drains whatever follows.

    :param stream: the raw archive bytes, readable.
    :param fmt: :attr:`ArchiveFormat.TAR`, :attr:`~ArchiveFormat.TGZ` or
        :attr:`~ArchiveFormat.TZST`.
    :param destination: the directory to extract into; created if missing. It may already
        hold files from other items, which the archive may replace but not turn into
        another kind of file, nor write through if they are links.
    :param limits: bounds on entries, bytes and expansion ratio.
    :param archive: the archive's source (path or URL), for error messages.
    :return: the regular files written (hard links included), in archive order.
    :raises UnsafeArchiveError: a member escapes, is a device or FIFO, repeats a path, or a
        limit is passed.
    :raises ExtractionError: the data is corrupt or truncated, or ``fmt`` is not a tar format.
    :raises InstallError: a file or directory could not be written.
    """
    job = _Job(archive, limits)
    if fmt not in (ArchiveFormat.TAR, ArchiveFormat.TGZ, ArchiveFormat.TZST):
        raise job.corrupt(f"{fmt!r} is not a tar format")
    with _translating(job), _opened_source(stream, fmt, job) as source:
        root = _prepare_directory(job, destination)
        tree = _Tree(job, root)
        ending: list[BaseException | None] = [None]
        file = _ForwardFile(source)
        with tarfile.open(
            fileobj=cast("tarfile._Fileobj", file),
            mode="r:",
            tarinfo=_tarinfo_class(job, ending),
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            _extract_tar_members(tar, file, tree, job)
        job.member = None
        if isinstance(ending[0], _TAR_BAD_HEADERS):
            raise job.corrupt(f"corrupt or truncated tar header: {ending[0]}")
        if fmt is not ArchiveFormat.TAR:
            _check_tail(source)
        installed = tree.finish()
    logger.debug("extracted %d entries (%d bytes) from %s", job.entries, job.written, archive)
    return installed


# -- zip -----------------------------------------------------------------------------------


def _scan_zip(job: _Job, zf: zipfile.ZipFile, file: BinaryIO) -> list[zipfile.ZipInfo]:
    """Check the structure of a zip before anything is written.

    Refuses too many entries, duplicate names in the central directory, local headers whose
    name differs from the central directory's, and entries whose data overlap.
    """
    infos = zf.infolist()
    if len(infos) > job.limits.max_entries:
        job.member = infos[job.limits.max_entries].orig_filename
        raise job.unsafe(
            f"{len(infos)} entries, more than {job.limits.max_entries} "
            "(ExtractionLimits.max_entries)"
        )
    seen: set[str] = set()
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        name = info.orig_filename
        job.member = name
        if name in seen:
            raise job.unsafe("the name appears more than once in the central directory")
        seen.add(name)
        raw_name = name.encode("utf-8" if info.flag_bits & _ZIP_FLAG_UTF8 else "cp437")
        file.seek(info.header_offset)
        header = file.read(_ZIP_LOCAL_HEADER.size)
        if len(header) != _ZIP_LOCAL_HEADER.size or header[:4] != _ZIP_LOCAL_SIGNATURE:
            raise job.corrupt(f"no local file header at offset {info.header_offset}")
        fields = _ZIP_LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[9], fields[10]
        local_name = file.read(name_length)
        if local_name != raw_name:
            raise job.unsafe(
                f"the local file header names {local_name!r} but the central directory "
                f"names {raw_name!r}"
            )
        start = info.header_offset
        end = start + _ZIP_LOCAL_HEADER.size + name_length + extra_length + info.compress_size
        spans.append((start, end, name))
    spans.sort()
    for (_, previous_end, previous), (start, _, name) in itertools.pairwise(spans):
        if start < previous_end:
            job.member = name
            raise job.unsafe(f"the entry overlaps the data of {previous!r}")
    central = getattr(zf, "start_dir", None)
    if spans and isinstance(central, int) and spans[-1][1] > central:
        job.member = spans[-1][2]
        raise job.unsafe("the entry overlaps the central directory")
    job.member = None
    return infos


def _zip_kind(info: zipfile.ZipInfo) -> _Kind:
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        return _Kind.SYMLINK
    if file_type == stat.S_IFDIR or (file_type in (0, stat.S_IFREG) and info.is_dir()):
        return _Kind.DIR
    if file_type in (0, stat.S_IFREG):
        return _Kind.FILE
    return _Kind.OTHER


def _check_zip_readable(job: _Job, info: zipfile.ZipInfo) -> None:
    if info.flag_bits & _ZIP_FLAG_ENCRYPTED:
        raise job.corrupt("encrypted entries are not supported")
    if info.compress_type not in _ZIP_METHODS:
        raise job.corrupt(f"unsupported compression method {info.compress_type}")


def _special_zip_entry(job: _Job, info: zipfile.ZipInfo) -> UnsafeArchiveError:
    mode = info.external_attr >> 16
    return job.unsafe(f"special file (mode {stat.filemode(mode)}) entries are not allowed")


def _plan_zip(
    job: _Job, infos: list[zipfile.ZipInfo]
) -> list[tuple[zipfile.ZipInfo, _Kind, list[str]]]:
    """Classify and validate every entry, and check the declared sizes, before writing."""
    plan: list[tuple[zipfile.ZipInfo, _Kind, list[str]]] = []
    keys: set[str] = set()
    declared = compressed = 0
    for info in infos:
        job.member = info.orig_filename
        kind = _zip_kind(info)
        if kind is _Kind.OTHER:
            raise _special_zip_entry(job, info)
        parts = _split_name(job, info.orig_filename)
        if not parts and kind is not _Kind.DIR:
            raise job.unsafe("the name is empty once normalized")
        key = "/".join(parts)
        if parts and key in keys:
            raise job.unsafe(f"{key!r} appears more than once in the archive")
        keys.add(key)
        if kind is _Kind.SYMLINK and info.file_size > _MAX_LINK_TARGET:
            raise job.unsafe(f"symbolic link target of {info.file_size} bytes")
        if kind is not _Kind.DIR:
            _check_zip_readable(job, info)
        if kind is _Kind.FILE:
            declared += info.file_size
            compressed += info.compress_size
            job.check_totals(declared, compressed)
        plan.append((info, kind, parts))
    job.member = None
    return plan


def extract_zip(
    file: BinaryIO,
    destination: Path,
    *,
    limits: ExtractionLimits,
    archive: str,
) -> list[InstalledFile]:
    """Extract a zip archive into ``destination``.

    The whole central directory is checked before anything is written: names, entry
    types, local headers, duplicates, overlaps, declared sizes and ratio.

    :param file: the archive, readable and seekable; not closed.
    :param destination: the directory to extract into; created if missing (see
        :func:`extract_tar` for what may already be there).
    :param limits: bounds on entries, bytes and expansion ratio.
    :param archive: the archive's source (path or URL), for error messages.
    :return: the regular files written, in central-directory order.
    :raises UnsafeArchiveError: an entry escapes, is special, repeats or overlaps another,
        its local header disagrees with the central directory, or a limit is passed.
    :raises ExtractionError: the zip is corrupt, truncated, encrypted or uses an unknown
        compression method.
    :raises InstallError: a file or directory could not be written.
    """
    job = _Job(archive, limits)
    with _translating(job):
        root = _prepare_directory(job, destination)
        with zipfile.ZipFile(file) as zf:
            infos = _scan_zip(job, zf, file)
            plan = _plan_zip(job, infos)
            tree = _Tree(job, root)
            read_so_far = 0

            def consumed() -> int:
                return read_so_far

            job.consumed = consumed
            for info, kind, parts in plan:
                job.member = info.orig_filename
                job.count_entry()
                if not parts:
                    continue
                if kind is _Kind.DIR:
                    tree.add_dir(parts)
                    continue
                read_so_far += info.compress_size
                with zf.open(info) as content:
                    if kind is _Kind.SYMLINK:
                        target = os.fsdecode(content.read(_MAX_LINK_TARGET + 1))
                        tree.add_symlink(parts, target)
                    else:
                        job.check_declared(info.file_size)
                        executable = bool((info.external_attr >> 16) & 0o111)
                        tree.add_file(parts, content.read, executable)
            installed = tree.finish()
    logger.debug("extracted %d entries (%d bytes) from %s", job.entries, job.written, archive)
    return installed


def extract_first_zip_entry(
    file: BinaryIO,
    target: Path,
    *,
    limits: ExtractionLimits,
    archive: str,
) -> InstalledFile:
    """Write the content of the first file entry of a zip to ``target`` (DJL's quirk).

    DJL gives an item of type ``file`` whose uri is a zip only the first entry's content.
    "First" is in file order (local headers), skipping directory entries; the entry's name
    is not used. The zip's structure is checked as by :func:`extract_zip`.

    :param file: the archive, readable and seekable; not closed.
    :param target: the file to write; its directory is created if missing, and an existing
        regular file is replaced.
    :param limits: bounds on bytes and expansion ratio.
    :param archive: the archive's source (path or URL), for error messages.
    :return: the file written; its ``path`` is the name of ``target``.
    :raises UnsafeArchiveError: the first entry is a link or special file, the structure is
        malicious, or a limit is passed.
    :raises ExtractionError: the zip is corrupt, encrypted or holds no file entry.
    :raises InstallError: the target could not be written.
    """
    job = _Job(archive, limits)
    with _translating(job):
        path = _prepare_target(job, target)
        with zipfile.ZipFile(file) as zf:
            infos = _scan_zip(job, zf, file)
            chosen: zipfile.ZipInfo | None = None
            for info in sorted(infos, key=lambda item: item.header_offset):
                if _zip_kind(info) is not _Kind.DIR:
                    chosen = info
                    break
            if chosen is None:
                raise job.corrupt("the zip holds no file entry")
            job.member = chosen.orig_filename
            kind = _zip_kind(chosen)
            if kind is _Kind.SYMLINK:
                raise job.unsafe("the first entry is a symbolic link")
            if kind is _Kind.OTHER:
                raise _special_zip_entry(job, chosen)
            _check_zip_readable(job, chosen)
            compressed_size = chosen.compress_size
            job.check_totals(chosen.file_size, compressed_size)
            job.consumed = lambda: compressed_size
            with zf.open(chosen) as content:
                executable = bool((chosen.external_attr >> 16) & 0o111)
                return _write_file(job, path, target.name, content.read, executable=executable)


def write_bytes(
    data: bytes,
    target: Path,
    *,
    limits: ExtractionLimits,
    archive: str,
    digest: str | None = None,
) -> InstalledFile:
    """Write ``data`` into the file ``target``, as :func:`decompress` copies a plain stream.

    :param digest: the :data:`~repository.hashing.FILE_DIGEST` of ``data``, when the caller
        computed it already.
    :raises UnsafeArchiveError: ``data`` is larger than ``max_total_size``.
    :raises InstallError: the target could not be written.
    """
    job = _Job(archive, limits)
    chunks = iter((data,))
    with _translating(job):
        path = _prepare_target(job, target)
        return _write_file(
            job, path, target.name, lambda _: next(chunks, b""), executable=False, digest=digest
        )


def decompress(
    stream: Readable,
    fmt: ArchiveFormat,
    target: Path,
    *,
    limits: ExtractionLimits,
    archive: str,
) -> InstalledFile:
    """Write one file, gunzipped, zstd-decompressed or copied as is, from ``stream``.

    The stream is read sequentially to its end (so that truncation is detected), in 1 MiB
    chunks; it is never seeked nor closed. Concatenated gzip members (zero padding between
    them allowed) and zstd frames (skippable frames included) are decompressed one after
    the other.

    :param stream: the raw bytes, readable.
    :param fmt: :attr:`ArchiveFormat.GZIP`, :attr:`~ArchiveFormat.ZSTD` or
        :attr:`~ArchiveFormat.PLAIN`.
    :param target: the file to write; its directory is created if missing, and an existing
        regular file is replaced.
    :param limits: ``max_total_size`` and the ratio limits apply to the output.
    :param archive: the source (path or URL), for error messages.
    :return: the file written; its ``path`` is the name of ``target``.
    :raises UnsafeArchiveError: the output passes a limit.
    :raises ExtractionError: the data is corrupt, truncated or empty, or ``fmt`` is not a
        single-file format.
    :raises InstallError: the target could not be written.
    """
    job = _Job(archive, limits)
    if fmt not in (ArchiveFormat.GZIP, ArchiveFormat.ZSTD, ArchiveFormat.PLAIN):
        raise job.corrupt(f"{fmt!r} is not a single-file format")
    with _translating(job), _opened_source(stream, fmt, job) as source:
        path = _prepare_target(job, target)
        return _write_file(job, path, target.name, source.read1, executable=False)
