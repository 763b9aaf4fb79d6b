"""Extraction of tar, zip, gzip and zstd sources: content, links, limits and every refusal.

Every archive is built here. Each refusal checks the error class, its ``archive`` and
``member`` attributes, and that nothing appeared outside the destination: the destination
lives in a sandbox directory whose other content must stay as it was.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import threading
import time
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
import xxhash
import zstandard

from repository.errors import DownloadError, ExtractionError, InstallError, UnsafeArchiveError
from repository.extract import (
    ExtractionLimits,
    InstalledFile,
    decompress,
    extract_first_zip_entry,
    extract_tar,
    extract_zip,
)
from repository.filetypes import ArchiveFormat

ARCHIVE = "https://example.com/repo/item.archive"
MiB = 1 << 20
LIMITS = ExtractionLimits()
SMALL = ExtractionLimits(max_total_size=10 * MiB)
TAR_FORMATS = [ArchiveFormat.TAR, ArchiveFormat.TGZ, ArchiveFormat.TZST]


# -- sources -------------------------------------------------------------------------------


class ForwardOnly:
    """A source that can only be read forward, in short reads, like a network body.

    ``seek``, ``tell`` and ``close`` are recorded and fail: the tar and single-file
    functions must read sequentially and leave closing to the caller.
    """

    def __init__(self, data: bytes, max_read: int = 100_003, fail: Exception | None = None):
        self._data = data
        self._pos = 0
        self._max_read = max_read
        self._fail = fail
        self.misuse: list[str] = []

    def read(self, size: int = -1) -> bytes:
        if self._fail is not None and self._pos > len(self._data) // 2:
            raise self._fail
        if size < 0:
            size = len(self._data)
        size = min(size, self._max_read)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    @property
    def position(self) -> int:
        return self._pos

    def seek(self, *args: Any) -> int:
        self.misuse.append("seek")
        raise AssertionError("seek called on a forward-only source")

    def tell(self) -> int:
        self.misuse.append("tell")
        raise AssertionError("tell called on a forward-only source")

    def close(self) -> None:
        self.misuse.append("close")
        raise AssertionError("close called on the caller's stream")


def run_tar(
    data: bytes, fmt: ArchiveFormat, dest: Path, limits: ExtractionLimits = LIMITS
) -> list[InstalledFile]:
    source = ForwardOnly(data)
    try:
        return extract_tar(cast(BinaryIO, source), fmt, dest, limits=limits, archive=ARCHIVE)
    finally:
        assert source.misuse == []


def run_decompress(
    data: bytes, fmt: ArchiveFormat, target: Path, limits: ExtractionLimits = LIMITS
) -> InstalledFile:
    source = ForwardOnly(data)
    try:
        return decompress(cast(BinaryIO, source), fmt, target, limits=limits, archive=ARCHIVE)
    finally:
        assert source.misuse == []


def run_zip(data: bytes, dest: Path, limits: ExtractionLimits = LIMITS) -> list[InstalledFile]:
    return extract_zip(io.BytesIO(data), dest, limits=limits, archive=ARCHIVE)


def run_first_entry(data: bytes, target: Path, limits: ExtractionLimits = LIMITS) -> InstalledFile:
    return extract_first_zip_entry(io.BytesIO(data), target, limits=limits, archive=ARCHIVE)


def sha(data: bytes) -> str:
    """The digest an installed file records."""
    return xxhash.xxh3_128(data).hexdigest()


# -- tar builders --------------------------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    if "\x00" in name:  # a ustar name stops at NUL: carry the whole name in a pax header
        info.pax_headers = {"path": name}
    return info, data


def directory(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def symlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info, None


def special(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


def compress(raw: bytes, fmt: ArchiveFormat) -> bytes:
    if fmt in (ArchiveFormat.TGZ, ArchiveFormat.GZIP):
        return gzip.compress(raw)
    if fmt in (ArchiveFormat.TZST, ArchiveFormat.ZSTD):
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def tar_archive(
    members: dict[str, bytes] | Iterable[Member], fmt: ArchiveFormat = ArchiveFormat.TAR
) -> bytes:
    """A tar of ``members`` (a ``{name: content}`` dict, or built members), compressed per fmt."""
    if isinstance(members, dict):
        members = [reg(name, data) for name, data in members.items()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, None if data is None else io.BytesIO(data))
    return compress(raw.getvalue(), fmt)


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced lazily."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._left)
        buffer[:count] = bytes(count)
        self._left -= count
        return count


def zero_tar(path: Path, fmt: ArchiveFormat, sizes: list[int]) -> bytes:
    """A tar of zero-filled members, streamed through the compressor (a bomb)."""
    with path.open("wb") as out:
        sink: Any
        if fmt is ArchiveFormat.TGZ:
            sink = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9)
        else:
            sink = zstandard.ZstdCompressor().stream_writer(out, closefd=False)
        with sink, tarfile.open(fileobj=sink, mode="w|") as archive:
            for index, size in enumerate(sizes):
                info = tarfile.TarInfo(f"zeros-{index}.bin")
                info.size = size
                archive.addfile(info, Zeros(size))
    return path.read_bytes()


def zero_stream(fmt: ArchiveFormat, size: int) -> bytes:
    if fmt is ArchiveFormat.GZIP:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = bytes(MiB)
        parts = [compressor.compress(block) for _ in range(size // MiB)]
        return b"".join([*parts, compressor.flush()])
    writer_target = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(writer_target, closefd=False) as writer:
        for _ in range(size // MiB):
            writer.write(bytes(MiB))
    return writer_target.getvalue()


# -- zip builders --------------------------------------------------------------------------


def zip_archive(members: dict[str, bytes] | Iterable[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are built on purpose
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            if isinstance(members, dict):
                for name, data in members.items():
                    archive.writestr(name, data)
            else:
                for info, data in members:
                    archive.writestr(info, data)
    return raw.getvalue()


def zip_entry(name: str, mode: int, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = compress_type
    return info


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    return zip_entry(name, stat.S_IFLNK | 0o777), target.encode()


_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")


def raw_local(name: bytes, data: bytes, flags: int = 0) -> bytes:
    crc = zlib.crc32(data)
    header = _LOCAL.pack(
        b"PK\x03\x04", 20, flags, 0, 0, 0x21, crc, len(data), len(data), len(name), 0
    )
    return header + name + data


def raw_zip(entries: list[tuple[bytes, bytes, int]], body: bytes, flags: int = 0) -> bytes:
    """A stored zip whose central directory lists ``(name, data, header_offset)`` in ``body``."""
    central = b""
    for name, data, offset in entries:
        central += (
            _CENTRAL.pack(
                b"PK\x01\x02",
                20,
                20,
                flags,
                0,
                0,
                0x21,
                zlib.crc32(data),
                len(data),
                len(data),
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    end = _END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return body + central + end


# -- sandbox -------------------------------------------------------------------------------


@dataclass
class Sandbox:
    root: Path
    dest: Path

    def assert_untouched(self) -> None:
        names = sorted(entry.name for entry in self.root.iterdir())
        assert names in (["dest", "keep.txt", "outside"], ["keep.txt", "outside"])
        assert (self.root / "keep.txt").read_bytes() == b"keep"
        assert sorted(p.name for p in (self.root / "outside").iterdir()) == ["secret.txt"]
        assert (self.root / "outside" / "secret.txt").read_bytes() == b"secret"
        for evil in (self.root / "evil", self.root.parent / "evil", Path("/evil")):
            assert not os.path.lexists(evil)

    def written(self) -> int:
        total = 0
        for folder, _, files in os.walk(self.dest):
            total += sum(os.lstat(os.path.join(folder, name)).st_size for name in files)
        return total


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    root = tmp_path / "sandbox"
    root.mkdir()
    (root / "keep.txt").write_bytes(b"keep")
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_bytes(b"secret")
    return Sandbox(root=root, dest=root / "dest")


def check_refusal(
    excinfo: pytest.ExceptionInfo[ExtractionError],
    sandbox: Sandbox,
    member: str | None,
    *,
    unsafe: bool = True,
) -> None:
    error = excinfo.value
    assert isinstance(error, UnsafeArchiveError) is unsafe
    assert error.archive == ARCHIVE
    assert error.member == member
    assert ARCHIVE in str(error)
    sandbox.assert_untouched()


def tree(root: Path) -> dict[str, Any]:
    """``{relative path: bytes, "<dir>" or ("->", target)}`` for everything under root."""
    result: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[rel] = ("->", os.readlink(path))
            elif path.is_dir():
                result[rel] = "<dir>"
            else:
                result[rel] = path.read_bytes()
    return result


# == normal extraction =====================================================================


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_tar_extracts_content_sizes_and_hashes(sandbox: Sandbox, fmt: ArchiveFormat) -> None:
    members = {
        "model.pt": os.urandom(3 * MiB + 17),
        "./synset.txt": b"cat\ndog\n",
        "nested/deeper/config.json": b"{}",
        "nested/empty.bin": b"",
    }
    files = run_tar(tar_archive(members, fmt), fmt, sandbox.dest)

    expected = {name.removeprefix("./"): data for name, data in members.items()}
    assert files == [
        InstalledFile(path=name, size=len(data), digest=sha(data))
        for name, data in expected.items()
    ]
    assert tree(sandbox.dest) == {**expected, "nested": "<dir>", "nested/deeper": "<dir>"}
    sandbox.assert_untouched()


def test_tar_creates_explicit_and_empty_directories(sandbox: Sandbox) -> None:
    archive = tar_archive(
        [
            directory("."),
            directory("./empty"),
            directory("a"),
            directory("a/b/"),
            reg("a/b/c.txt", b"c"),
            directory("a"),
            directory("x/y/z"),
        ]
    )
    files = run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    assert [f.path for f in files] == ["a/b/c.txt"]
    assert tree(sandbox.dest) == {
        "empty": "<dir>",
        "a": "<dir>",
        "a/b": "<dir>",
        "a/b/c.txt": b"c",
        "x": "<dir>",
        "x/y": "<dir>",
        "x/y/z": "<dir>",
    }


def test_tar_keeps_only_the_executable_bit(sandbox: Sandbox) -> None:
    archive = tar_archive(
        [reg("run.sh", b"#!/bin/sh\n", mode=0o6755), reg("data.bin", b"x", mode=0o1600)]
    )
    run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    umask = os.umask(0)
    os.umask(umask)
    run_mode = stat.S_IMODE(os.stat(sandbox.dest / "run.sh").st_mode)
    data_mode = stat.S_IMODE(os.stat(sandbox.dest / "data.bin").st_mode)
    assert run_mode == 0o777 & ~umask
    assert data_mode == 0o666 & ~umask
    assert not (run_mode | data_mode) & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)


def test_tar_internal_links_are_allowed(sandbox: Sandbox) -> None:
    archive = tar_archive(
        [
            symlink("early", "data/a.txt"),  # before its target: links are created last
            reg("data/a.txt", b"alpha"),
            symlink("data/sibling", "a.txt"),
            symlink("dirlink", "data"),
            symlink("up/back", "../data/./a.txt"),
            symlink("chain", "early"),  # a link to a link (its last component) is fine
            symlink("self", "."),
            hardlink("hard", "data/a.txt"),
            hardlink("./hard2", "./hard"),
        ]
    )
    files = run_tar(compress(archive, ArchiveFormat.TZST), ArchiveFormat.TZST, sandbox.dest)

    alpha = InstalledFile(path="data/a.txt", size=5, digest=sha(b"alpha"))
    assert files == [
        alpha,
        InstalledFile(path="hard", size=5, digest=alpha.digest),
        InstalledFile(path="hard2", size=5, digest=alpha.digest),
    ]
    dest = sandbox.dest
    assert os.readlink(dest / "early") == "data/a.txt"
    assert os.readlink(dest / "up" / "back") == "../data/./a.txt"
    for path in ("early", "data/sibling", "up/back", "chain", "dirlink/a.txt", "hard", "hard2"):
        assert (dest / path).read_bytes() == b"alpha"
    assert (dest / "self").resolve() == dest.resolve()
    sandbox.assert_untouched()


def test_tar_symlink_through_a_regular_file_is_harmless(sandbox: Sandbox) -> None:
    archive = tar_archive([reg("f.txt", b"f"), symlink("l", "f.txt/x")])
    run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    assert os.readlink(sandbox.dest / "l") == "f.txt/x"


def test_tar_hard_link_falls_back_to_a_copy(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("repository.extract.os.link", no_links)
    archive = tar_archive([reg("a.bin", b"content"), hardlink("b.bin", "a.bin")])
    files = run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    assert [f.digest for f in files] == [sha(b"content")] * 2
    assert (sandbox.dest / "b.bin").read_bytes() == b"content"
    assert os.stat(sandbox.dest / "b.bin").st_ino != os.stat(sandbox.dest / "a.bin").st_ino


def test_tar_reads_forward_only_and_stops_at_the_end_marker(sandbox: Sandbox) -> None:
    archive = tar_archive({"a.txt": b"a" * 5000, "b.txt": b"b"})
    source = ForwardOnly(archive + os.urandom(4 * MiB), max_read=777)
    files = extract_tar(
        cast(BinaryIO, source), ArchiveFormat.TAR, sandbox.dest, limits=LIMITS, archive=ARCHIVE
    )
    assert [f.path for f in files] == ["a.txt", "b.txt"]
    assert source.misuse == []
    assert source.position < len(archive) + 2 * MiB  # the caller drains the rest


def test_tgz_with_several_gzip_members_and_zero_padding(sandbox: Sandbox) -> None:
    raw = tar_archive({"a.txt": b"a" * 100_000, "b.txt": b"b" * 10})
    packed = gzip.compress(raw[:30_000]) + gzip.compress(raw[30_000:]) + bytes(1000)
    files = run_tar(packed, ArchiveFormat.TGZ, sandbox.dest)
    assert [(f.path, f.size) for f in files] == [("a.txt", 100_000), ("b.txt", 10)]


def test_tzst_with_several_frames(sandbox: Sandbox) -> None:
    raw = tar_archive({"a.txt": b"a" * 100_000, "b.txt": b"b" * 10})
    compressor = zstandard.ZstdCompressor()
    packed = compressor.compress(raw[:30_000]) + compressor.compress(raw[30_000:])
    files = run_tar(packed, ArchiveFormat.TZST, sandbox.dest)
    assert [(f.path, f.size) for f in files] == [("a.txt", 100_000), ("b.txt", 10)]


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write sparse members")
@pytest.mark.parametrize(
    "options",
    [
        ["--format=gnu"],
        ["--format=pax", "--sparse-version=0.0"],
        ["--format=pax", "--sparse-version=0.1"],
        ["--format=pax", "--sparse-version=1.0"],
    ],
    ids=["gnu", "pax-0.0", "pax-0.1", "pax-1.0"],
)
@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_sparse_members_are_extracted_with_their_holes(
    tmp_path: Path, sandbox: Sandbox, options: list[str], fmt: ArchiveFormat
) -> None:
    # Sparse members take tarfile's own reader; the next member must still line up after them.
    source = tmp_path / "src"
    source.mkdir()
    holes = source / "holes.bin"
    with holes.open("wb") as out:
        for offset in (100_000, 700_000):
            out.seek(offset)
            out.write(os.urandom(5000))
        out.truncate(1_000_000)
    (source / "z_after.txt").write_bytes(b"after the sparse member")
    raw = subprocess.run(
        ["tar", "--sparse", *options, "-cf", "-", "-C", str(source), "holes.bin", "z_after.txt"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as check:  # the member really is sparse
        assert check.getmember("holes.bin").sparse
    files = run_tar(compress(raw, fmt), fmt, sandbox.dest)
    assert [(f.path, f.size) for f in files] == [("holes.bin", 1_000_000), ("z_after.txt", 23)]
    assert (sandbox.dest / "holes.bin").read_bytes() == holes.read_bytes()
    assert (sandbox.dest / "z_after.txt").read_bytes() == b"after the sparse member"


class ThreadRecording(ForwardOnly):
    """A forward-only source that records which thread made each read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.readers: list[str] = []

    def read(self, size: int = -1) -> bytes:
        self.readers.append(threading.current_thread().name)
        return super().read(size)


def decompressing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "repository-decompress"]


BIG_MEMBERS = {f"shard{n}.bin": os.urandom(5 * MiB) for n in range(3)}


@pytest.mark.parametrize("fmt", [ArchiveFormat.TGZ, ArchiveFormat.TZST])
def test_large_archives_are_decompressed_in_a_thread_of_their_own(
    sandbox: Sandbox, fmt: ArchiveFormat
) -> None:
    big = ThreadRecording(tar_archive(BIG_MEMBERS, fmt))
    files = extract_tar(cast(BinaryIO, big), fmt, sandbox.dest, limits=LIMITS, archive=ARCHIVE)
    assert {f.path: f.digest for f in files} == {
        name: sha(data) for name, data in BIG_MEMBERS.items()
    }
    caller = threading.current_thread().name
    assert big.readers[0] == caller  # the first 8 MiB are decoded inline...
    assert set(big.readers) == {caller, "repository-decompress"}  # ...the rest ahead
    assert decompressing_threads() == []
    small = ThreadRecording(tar_archive({"a.txt": b"a" * 100_000}, fmt))
    extract_tar(cast(BinaryIO, small), fmt, sandbox.dest / "s", limits=LIMITS, archive=ARCHIVE)
    assert set(small.readers) == {caller}


@pytest.mark.parametrize("fmt", [ArchiveFormat.TGZ, ArchiveFormat.TZST])
def test_corruption_decoded_ahead_is_reported_at_its_member(
    sandbox: Sandbox, fmt: ArchiveFormat
) -> None:
    archive = tar_archive(BIG_MEMBERS, fmt)
    with pytest.raises(ExtractionError) as excinfo:
        run_tar(archive[: len(archive) * 5 // 6], fmt, sandbox.dest)
    check_refusal(excinfo, sandbox, "shard2.bin", unsafe=False)
    assert (sandbox.dest / "shard1.bin").read_bytes() == BIG_MEMBERS["shard1.bin"]
    assert decompressing_threads() == []


@pytest.mark.parametrize("fmt", [ArchiveFormat.TGZ, ArchiveFormat.TZST])
def test_a_refusal_stops_the_decoder_where_it_is(sandbox: Sandbox, fmt: ArchiveFormat) -> None:
    members = [reg(name, data) for name, data in BIG_MEMBERS.items()]
    members.insert(2, reg("../escape.txt", b"x"))
    members.append(reg("tail.bin", os.urandom(40 * MiB)))
    source = ForwardOnly(tar_archive(members, fmt))
    with pytest.raises(UnsafeArchiveError) as excinfo:
        extract_tar(cast(BinaryIO, source), fmt, sandbox.dest, limits=LIMITS, archive=ARCHIVE)
    check_refusal(excinfo, sandbox, "../escape.txt")
    assert decompressing_threads() == []
    # The decoder ran at most a few chunks ahead: most of the 40 MiB tail was never read.
    assert source.position < 30 * MiB


def test_tar_into_a_destination_shared_with_other_items(sandbox: Sandbox) -> None:
    run_tar(
        tar_archive({"first/x.txt": b"1", "shared.txt": b"old"}), ArchiveFormat.TAR, sandbox.dest
    )
    files = run_tar(
        tar_archive({"second/y.txt": b"2", "shared.txt": b"new"}), ArchiveFormat.TAR, sandbox.dest
    )
    assert [f.path for f in files] == ["second/y.txt", "shared.txt"]
    assert tree(sandbox.dest) == {
        "first": "<dir>",
        "first/x.txt": b"1",
        "second": "<dir>",
        "second/y.txt": b"2",
        "shared.txt": b"new",
    }


def test_tar_of_a_thousand_small_files_is_fast(sandbox: Sandbox) -> None:
    members = {f"d{i % 10}/file-{i}.txt": f"content {i}".encode() for i in range(1000)}
    archive = tar_archive(members, ArchiveFormat.TGZ)
    started = time.perf_counter()
    files = run_tar(archive, ArchiveFormat.TGZ, sandbox.dest)
    elapsed = time.perf_counter() - started
    assert len(files) == 1000
    assert elapsed < 3.0, f"1000 small files took {elapsed:.2f}s"


def test_zip_extracts_content_dirs_links_and_modes(sandbox: Sandbox) -> None:
    big = os.urandom(2 * MiB + 3)
    archive = zip_archive(
        [
            (zip_entry("bundle/", stat.S_IFDIR | 0o755), b""),
            (zip_entry("bundle/inner/x.txt", stat.S_IFREG | 0o644), b"x"),
            (zip_entry("bundle/big.bin", stat.S_IFREG | 0o644, zipfile.ZIP_STORED), big),
            (zip_entry("bundle/run.sh", stat.S_IFREG | 0o755), b"#!/bin/sh"),
            (zip_entry("empty/", stat.S_IFDIR | 0o755), b""),
            (zipfile.ZipInfo("./plain.txt"), b"no unix mode"),
            zip_symlink("bundle/link", "inner/x.txt"),
        ]
    )
    files = run_zip(archive, sandbox.dest)
    assert files == [
        InstalledFile(path="bundle/inner/x.txt", size=1, digest=sha(b"x")),
        InstalledFile(path="bundle/big.bin", size=len(big), digest=sha(big)),
        InstalledFile(path="bundle/run.sh", size=9, digest=sha(b"#!/bin/sh")),
        InstalledFile(path="plain.txt", size=12, digest=sha(b"no unix mode")),
    ]
    dest = sandbox.dest
    assert tree(dest) == {
        "bundle": "<dir>",
        "bundle/inner": "<dir>",
        "bundle/inner/x.txt": b"x",
        "bundle/big.bin": big,
        "bundle/run.sh": b"#!/bin/sh",
        "bundle/link": ("->", "inner/x.txt"),
        "empty": "<dir>",
        "plain.txt": b"no unix mode",
    }
    assert os.stat(dest / "bundle" / "run.sh").st_mode & 0o100
    assert not os.stat(dest / "bundle" / "big.bin").st_mode & 0o111
    sandbox.assert_untouched()


def test_first_zip_entry_skips_directories_and_replaces_the_target(sandbox: Sandbox) -> None:
    archive = zip_archive({"d/": b"", "d/model.bin": b"weights", "other.txt": b"other"})
    sandbox.dest.mkdir()
    target = sandbox.dest / "only.bin"
    target.write_bytes(b"from an earlier attempt")
    record = run_first_entry(archive, target)
    assert record == InstalledFile(path="only.bin", size=7, digest=sha(b"weights"))
    assert tree(sandbox.dest) == {"only.bin": b"weights"}


@pytest.mark.parametrize("fmt", [ArchiveFormat.GZIP, ArchiveFormat.ZSTD, ArchiveFormat.PLAIN])
def test_decompress_single_file(sandbox: Sandbox, fmt: ArchiveFormat) -> None:
    data = os.urandom(MiB) + b"text " * 300_000
    record = run_decompress(compress(data, fmt), fmt, sandbox.dest / "model.pt")
    assert record == InstalledFile(path="model.pt", size=len(data), digest=sha(data))
    assert (sandbox.dest / "model.pt").read_bytes() == data
    sandbox.assert_untouched()


def test_decompress_gzip_members_and_zstd_frames(sandbox: Sandbox) -> None:
    parts = [b"alpha " * 1000, b"", b"beta " * 5000]
    gz = b"".join(gzip.compress(p) for p in parts) + bytes(512)
    record = run_decompress(gz, ArchiveFormat.GZIP, sandbox.dest / "a")
    assert record.digest == sha(b"".join(parts))

    compressor = zstandard.ZstdCompressor(write_checksum=True)
    skippable = struct.pack("<II", 0x184D2A50, 3) + b"xyz"
    zst = compressor.compress(parts[0]) + skippable + compressor.compress(parts[2])
    record = run_decompress(zst, ArchiveFormat.ZSTD, sandbox.dest / "b")
    assert record.digest == sha(b"".join(parts))


def test_decompress_empty_plain_file(sandbox: Sandbox) -> None:
    record = run_decompress(b"", ArchiveFormat.PLAIN, sandbox.dest / "empty.txt")
    assert record == InstalledFile(path="empty.txt", size=0, digest=sha(b""))


# == refusals: names =======================================================================

BAD_NAMES = [
    "/evil",
    "../evil",
    "a/../../evil",
    "..\\evil",
    "a\\..\\..\\evil",
    "C:/evil",
    "c:evil",
    "\\\\server\\share\\evil",
    "//server/share/evil",
    "a\x00b",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_tar_refuses_bad_names(sandbox: Sandbox, name: str) -> None:
    archive = tar_archive([reg("ok.txt", b"ok"), reg(name, b"evil")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, name)


def test_tar_refuses_an_empty_file_name(sandbox: Sandbox) -> None:
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(tar_archive([reg("./.", b"x")]), ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "./.")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_zip_refuses_bad_names(sandbox: Sandbox, name: str) -> None:
    # zipfile cuts names at NUL when writing: write "a_b" and patch in the NUL byte.
    archive = zip_archive([(zipfile.ZipInfo(name.replace("\x00", "_")), b"evil")])
    if "\x00" in name:
        written = name.replace("\x00", "_").encode()
        assert archive.count(written) == 2
        archive = archive.replace(written, name.encode())
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_zip(archive, sandbox.dest)
    check_refusal(excinfo, sandbox, name)
    assert tree(sandbox.dest) == {}


# == refusals: links =======================================================================


@pytest.mark.parametrize(
    "target", ["../evil", "../", "a/../../evil", "/etc/passwd", "..\\evil", ""]
)
def test_tar_refuses_symlinks_leaving_the_destination(sandbox: Sandbox, target: str) -> None:
    archive = tar_archive([symlink("link", target), reg("link/evil", b"x")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "link")


@pytest.mark.parametrize("order", ["b first", "c first"])
def test_tar_refuses_a_symlink_chain_escape(sandbox: Sandbox, order: str) -> None:
    links = [symlink("b", "."), symlink("c", "b/..")]
    if order == "c first":
        links.reverse()
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(tar_archive([reg("x.txt", b"x"), *links]), ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "c")
    assert not any(path.is_symlink() for path in sandbox.dest.iterdir())


def test_tar_refuses_a_member_under_a_symlink(sandbox: Sandbox) -> None:
    archive = tar_archive([directory("real"), symlink("l", "real"), reg("l/x.txt", b"x")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "l/x.txt")


def test_tar_refuses_a_symlink_over_an_earlier_directory(sandbox: Sandbox) -> None:
    archive = tar_archive([reg("l/x.txt", b"x"), symlink("l", "../outside")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "l")


@pytest.mark.parametrize(
    ("members", "member"),
    [
        ([hardlink("h", "../evil")], "h"),
        ([hardlink("h", "/etc/passwd")], "h"),
        ([hardlink("h", "missing.txt")], "h"),
        ([hardlink("h", "later.txt"), reg("later.txt", b"x")], "h"),
        ([symlink("s", "../outside/secret.txt"), hardlink("h", "s")], "s"),
        ([symlink("s", "x.txt"), reg("x.txt", b"x"), hardlink("h", "s")], "h"),
        ([directory("d"), hardlink("h", "d")], "h"),
    ],
)
def test_tar_refuses_bad_hard_links(sandbox: Sandbox, members: list[Member], member: str) -> None:
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(tar_archive(members), ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, member)


@pytest.mark.parametrize(
    "kind",
    [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, b"V"],
    ids=["chr", "blk", "fifo", "volume"],
)
def test_tar_refuses_special_members(sandbox: Sandbox, kind: bytes) -> None:
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(tar_archive([special("dev/thing", kind)]), ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "dev/thing")


def test_tar_refuses_a_huge_pax_header(sandbox: Sandbox) -> None:
    info, data = reg("a.txt", b"a")
    info.pax_headers = {"comment": "x" * (2 * MiB)}  # tarfile would read it into memory
    with pytest.raises(UnsafeArchiveError, match="extended header") as excinfo:
        run_tar(tar_archive([reg("ok.txt", b"ok"), (info, data)]), ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, None)


def test_tar_refuses_a_repeated_path(sandbox: Sandbox) -> None:
    archive = tar_archive([reg("a.txt", b"first"), reg("./a.txt", b"second")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "./a.txt")


def test_tar_refuses_a_file_used_as_a_directory(sandbox: Sandbox) -> None:
    archive = tar_archive([reg("a", b"file"), reg("a/b", b"under a file")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "a/b")


def test_tar_refuses_to_write_through_a_symlink_left_by_another_item(sandbox: Sandbox) -> None:
    sandbox.dest.mkdir()
    (sandbox.dest / "planted").symlink_to(sandbox.root / "outside")
    archive = tar_archive([reg("planted/evil", b"x")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "planted/evil")

    archive = tar_archive([reg("planted", b"x")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "planted")

    archive = tar_archive([symlink("l", "planted/secret.txt")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, "l")


def test_tar_refuses_to_change_the_kind_of_an_existing_path(sandbox: Sandbox) -> None:
    sandbox.dest.mkdir()
    (sandbox.dest / "dir").mkdir()
    (sandbox.dest / "file").write_bytes(b"old")
    for members, member in [
        ([reg("dir", b"x")], "dir"),
        ([reg("file/x", b"x")], "file/x"),
        ([symlink("file", "dir")], "file"),
    ]:
        with pytest.raises(UnsafeArchiveError) as excinfo:
            run_tar(tar_archive(members), ArchiveFormat.TAR, sandbox.dest)
        check_refusal(excinfo, sandbox, member)
    assert (sandbox.dest / "file").read_bytes() == b"old"


def test_refuses_a_destination_that_is_a_symlink(sandbox: Sandbox) -> None:
    sandbox.dest.symlink_to(sandbox.root / "outside")
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_tar(tar_archive({"evil": b"x"}), ArchiveFormat.TAR, sandbox.dest)
    sandbox.dest.unlink()
    check_refusal(excinfo, sandbox, None)


def test_zip_refuses_symlinks_leaving_the_destination(sandbox: Sandbox) -> None:
    for members, member in [
        ([zip_symlink("link", "../outside")], "link"),
        ([zip_symlink("link", "/etc")], "link"),
        ([zip_symlink("b", "."), zip_symlink("c", "b/..")], "c"),
        ([zip_symlink("link", "sub"), (zipfile.ZipInfo("link/x"), b"x")], "link/x"),
    ]:
        with pytest.raises(UnsafeArchiveError) as excinfo:
            run_zip(zip_archive(members), sandbox.dest)
        check_refusal(excinfo, sandbox, member)


def test_zip_refuses_special_entries(sandbox: Sandbox) -> None:
    archive = zip_archive(
        [(zipfile.ZipInfo("ok.txt"), b"ok"), (zip_entry("fifo", stat.S_IFIFO | 0o644), b"")]
    )
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_zip(archive, sandbox.dest)
    check_refusal(excinfo, sandbox, "fifo")
    assert tree(sandbox.dest) == {}


def test_first_zip_entry_refuses_a_symlink(sandbox: Sandbox) -> None:
    archive = zip_archive([zip_symlink("link", "../outside/secret.txt")])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_first_entry(archive, sandbox.dest / "only.bin")
    check_refusal(excinfo, sandbox, "link")
    assert tree(sandbox.dest) == {}


# == refusals: zip structure ===============================================================


def test_zip_refuses_a_local_header_that_disagrees_with_the_central_directory(
    sandbox: Sandbox,
) -> None:
    archive = bytearray(zip_archive({"a.txt": b"a", "b.txt": b"b"}))
    info = zipfile.ZipFile(io.BytesIO(bytes(archive))).getinfo("b.txt")
    start = info.header_offset + 30
    assert archive[start : start + 5] == b"b.txt"
    archive[start : start + 5] = b"c.txt"
    for run in (run_zip, run_first_entry):
        with pytest.raises(UnsafeArchiveError) as excinfo:
            run(bytes(archive), sandbox.dest / "out")
        check_refusal(excinfo, sandbox, "b.txt")
    assert sandbox.written() == 0


@pytest.mark.parametrize(
    ("names", "member"), [(["a.txt", "a.txt"], "a.txt"), (["a.txt", "./a.txt"], "./a.txt")]
)
def test_zip_refuses_duplicate_names(sandbox: Sandbox, names: list[str], member: str) -> None:
    archive = zip_archive([(zipfile.ZipInfo(name), name.encode()) for name in names])
    with pytest.raises(UnsafeArchiveError) as excinfo:
        run_zip(archive, sandbox.dest)
    check_refusal(excinfo, sandbox, member)
    assert tree(sandbox.dest) == {}


def test_zip_refuses_overlapping_entries(sandbox: Sandbox) -> None:
    inner = raw_local(b"b", b"hello")
    outer = raw_local(b"a", inner)
    archive = raw_zip([(b"a", inner, 0), (b"b", b"hello", 31)], outer)
    for run in (run_zip, run_first_entry):
        with pytest.raises(UnsafeArchiveError) as excinfo:
            run(archive, sandbox.dest / "out")
        check_refusal(excinfo, sandbox, "b")


def test_zip_refuses_encrypted_entries(sandbox: Sandbox) -> None:
    archive = raw_zip([(b"secret.txt", b"data", 0)], raw_local(b"secret.txt", b"data", 1), flags=1)
    for run in (run_zip, run_first_entry):
        with pytest.raises(ExtractionError, match="encrypted") as excinfo:
            run(archive, sandbox.dest / "out")
        check_refusal(excinfo, sandbox, "secret.txt", unsafe=False)


# == refusals: limits ======================================================================


def test_tar_refuses_too_many_entries(sandbox: Sandbox) -> None:
    archive = tar_archive({f"f{i}.txt": b"x" for i in range(10)})
    with pytest.raises(UnsafeArchiveError, match="max_entries") as excinfo:
        run_tar(archive, ArchiveFormat.TAR, sandbox.dest, ExtractionLimits(max_entries=5))
    check_refusal(excinfo, sandbox, "f5.txt")
    assert len(list(sandbox.dest.iterdir())) == 5


def test_zip_refuses_too_many_entries(sandbox: Sandbox) -> None:
    archive = zip_archive({f"f{i}.txt": b"x" for i in range(10)})
    with pytest.raises(UnsafeArchiveError, match="max_entries") as excinfo:
        run_zip(archive, sandbox.dest, ExtractionLimits(max_entries=5))
    check_refusal(excinfo, sandbox, "f5.txt")
    assert tree(sandbox.dest) == {}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """200 MiB of zeros, in one member or in 40 members of 5 MiB, compressed."""
    folder = tmp_path_factory.mktemp("bombs")
    result = {}
    for fmt in (ArchiveFormat.TGZ, ArchiveFormat.TZST):
        result[f"{fmt}-one"] = zero_tar(folder / f"{fmt}-one", fmt, [200 * MiB])
        result[f"{fmt}-many"] = zero_tar(folder / f"{fmt}-many", fmt, [5 * MiB] * 40)
    for fmt in (ArchiveFormat.GZIP, ArchiveFormat.ZSTD):
        result[str(fmt)] = zero_stream(fmt, 200 * MiB)
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("ok.txt", b"ok")
        with archive.open("zeros.bin", "w", force_zip64=True) as entry:
            for _ in range(200):
                entry.write(bytes(MiB))
    result["zip"] = raw.getvalue()
    assert all(len(data) < 2 * MiB for data in result.values())
    return result


@pytest.mark.parametrize("fmt", [ArchiveFormat.TGZ, ArchiveFormat.TZST])
@pytest.mark.parametrize("shape", ["one", "many"])
def test_tar_bombs_stop_at_the_size_limit(
    sandbox: Sandbox, bombs: dict[str, bytes], fmt: ArchiveFormat, shape: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match="max_total_size") as excinfo:
        run_tar(bombs[f"{fmt}-{shape}"], fmt, sandbox.dest, SMALL)
    assert time.perf_counter() - started < 5
    check_refusal(excinfo, sandbox, "zeros-0.bin" if shape == "one" else "zeros-2.bin")
    assert sandbox.written() <= SMALL.max_total_size


@pytest.mark.parametrize("fmt", [ArchiveFormat.TGZ, ArchiveFormat.TZST])
def test_tar_bombs_stop_at_the_ratio_limit_with_default_limits(
    sandbox: Sandbox, bombs: dict[str, bytes], fmt: ArchiveFormat
) -> None:
    with pytest.raises(UnsafeArchiveError, match="max_ratio") as excinfo:
        run_tar(bombs[f"{fmt}-one"], fmt, sandbox.dest)
    check_refusal(excinfo, sandbox, "zeros-0.bin")
    assert sandbox.written() <= LIMITS.ratio_floor + 2 * MiB


def test_tar_hard_links_count_towards_the_size_limit(sandbox: Sandbox) -> None:
    members = [reg("big.bin", bytes(4 * MiB))] + [hardlink(f"h{i}", "big.bin") for i in range(50)]
    with pytest.raises(UnsafeArchiveError, match="max_total_size") as excinfo:
        run_tar(tar_archive(members, ArchiveFormat.TGZ), ArchiveFormat.TGZ, sandbox.dest, SMALL)
    check_refusal(excinfo, sandbox, "h1")
    assert sorted(p.name for p in sandbox.dest.iterdir()) == ["big.bin", "h0"]


@pytest.mark.parametrize("fmt", [ArchiveFormat.GZIP, ArchiveFormat.ZSTD])
def test_decompress_bombs_stop_at_the_size_limit(
    sandbox: Sandbox, bombs: dict[str, bytes], fmt: ArchiveFormat
) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match="max_total_size") as excinfo:
        run_decompress(bombs[str(fmt)], fmt, sandbox.dest / "model.pt", SMALL)
    assert time.perf_counter() - started < 5
    check_refusal(excinfo, sandbox, None)
    assert sandbox.written() <= SMALL.max_total_size


@pytest.mark.parametrize("fmt", [ArchiveFormat.GZIP, ArchiveFormat.ZSTD])
def test_decompress_bombs_stop_at_the_ratio_limit(
    sandbox: Sandbox, bombs: dict[str, bytes], fmt: ArchiveFormat
) -> None:
    limits = ExtractionLimits(max_ratio=100, ratio_floor=MiB)
    with pytest.raises(UnsafeArchiveError, match="max_ratio") as excinfo:
        run_decompress(bombs[str(fmt)], fmt, sandbox.dest / "model.pt", limits)
    check_refusal(excinfo, sandbox, None)
    assert sandbox.written() <= 2 * MiB


def test_zip_bomb_is_refused_before_writing(sandbox: Sandbox, bombs: dict[str, bytes]) -> None:
    for limits, reason in [(SMALL, "max_total_size"), (LIMITS, "max_ratio")]:
        with pytest.raises(UnsafeArchiveError, match=reason) as excinfo:
            run_zip(bombs["zip"], sandbox.dest, limits)
        check_refusal(excinfo, sandbox, "zeros.bin")
        assert sandbox.written() == 0
    with pytest.raises(UnsafeArchiveError, match="max_total_size") as excinfo:
        extract_first_zip_entry(
            io.BytesIO(zip_archive({"zeros.bin": bytes(20 * MiB)})),
            sandbox.dest / "only.bin",
            limits=SMALL,
            archive=ARCHIVE,
        )
    check_refusal(excinfo, sandbox, "zeros.bin")
    assert sandbox.written() == 0


def test_ratio_limit_can_be_disabled(sandbox: Sandbox) -> None:
    data = zero_stream(ArchiveFormat.ZSTD, 8 * MiB)
    limits = ExtractionLimits(max_ratio=None, ratio_floor=0)
    record = run_decompress(data, ArchiveFormat.ZSTD, sandbox.dest / "zeros", limits)
    assert record.size == 8 * MiB


# == corrupt input =========================================================================


@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_truncated_tar_is_an_extraction_error(sandbox: Sandbox, fmt: ArchiveFormat) -> None:
    archive = tar_archive({"a.bin": os.urandom(300_000), "b.bin": os.urandom(300_000)}, fmt)
    with pytest.raises(ExtractionError) as excinfo:
        run_tar(archive[: len(archive) * 3 // 4], fmt, sandbox.dest)
    check_refusal(excinfo, sandbox, "b.bin", unsafe=False)
    assert isinstance(excinfo.value.__cause__, Exception)


@pytest.mark.parametrize(
    ("fmt", "damage"),
    [
        (ArchiveFormat.TGZ, "crc"),
        (ArchiveFormat.TGZ, "cut"),
        (ArchiveFormat.TGZ, "junk"),
        (ArchiveFormat.TZST, "cut"),
        (ArchiveFormat.TZST, "junk"),
    ],
)
def test_compressed_tar_is_checked_to_its_end(
    sandbox: Sandbox, fmt: ArchiveFormat, damage: str
) -> None:
    archive = tar_archive({"a.txt": b"a" * 1000}, fmt)
    if damage == "crc":  # the gzip trailer: CRC32 then size
        archive = archive[:-8] + bytes([archive[-8] ^ 0xFF]) + archive[-7:]
    elif damage == "cut":
        archive = archive[:-3]
    else:
        archive += b"junk" * 10
    with pytest.raises(ExtractionError) as excinfo:
        run_tar(archive, fmt, sandbox.dest)
    check_refusal(excinfo, sandbox, None, unsafe=False)


def test_tar_with_a_corrupt_header_after_the_first_member(sandbox: Sandbox) -> None:
    archive = bytearray(tar_archive({"a.txt": b"a", "b.txt": b"b"}))
    header = archive.index(b"b.txt") // 512 * 512
    archive[header : header + 512] = b"\xff" * 512
    with pytest.raises(ExtractionError, match="header") as excinfo:
        run_tar(bytes(archive), ArchiveFormat.TAR, sandbox.dest)
    check_refusal(excinfo, sandbox, None, unsafe=False)


@pytest.mark.parametrize("fmt", [ArchiveFormat.GZIP, ArchiveFormat.ZSTD])
def test_truncated_single_file_is_an_extraction_error(sandbox: Sandbox, fmt: ArchiveFormat) -> None:
    data = compress(os.urandom(500_000), fmt)
    for cut in (len(data) - 1, len(data) // 2, 5):
        with pytest.raises(ExtractionError, match="ends in the middle") as excinfo:
            run_decompress(data[:cut], fmt, sandbox.dest / "x")
        check_refusal(excinfo, sandbox, None, unsafe=False)


GARBAGE = os.urandom(70_000)


@pytest.mark.parametrize("data", [GARBAGE, b""], ids=["garbage", "empty"])
@pytest.mark.parametrize("fmt", TAR_FORMATS)
def test_tar_garbage_is_an_extraction_error(
    sandbox: Sandbox, fmt: ArchiveFormat, data: bytes
) -> None:
    with pytest.raises(ExtractionError) as excinfo:
        run_tar(data, fmt, sandbox.dest)
    check_refusal(excinfo, sandbox, None, unsafe=False)


@pytest.mark.parametrize("data", [GARBAGE, b""], ids=["garbage", "empty"])
@pytest.mark.parametrize("fmt", [ArchiveFormat.GZIP, ArchiveFormat.ZSTD])
def test_single_file_garbage_is_an_extraction_error(
    sandbox: Sandbox, fmt: ArchiveFormat, data: bytes
) -> None:
    with pytest.raises(ExtractionError) as excinfo:
        run_decompress(data, fmt, sandbox.dest / "x")
    check_refusal(excinfo, sandbox, None, unsafe=False)


def test_gzip_with_trailing_garbage_is_an_extraction_error(sandbox: Sandbox) -> None:
    with pytest.raises(ExtractionError) as excinfo:
        run_decompress(gzip.compress(b"data") + b"junk", ArchiveFormat.GZIP, sandbox.dest / "x")
    check_refusal(excinfo, sandbox, None, unsafe=False)


@pytest.mark.parametrize("data", [GARBAGE, b"", zip_archive({"a.txt": b"a" * 1000})[:-30]])
def test_zip_garbage_is_an_extraction_error(sandbox: Sandbox, data: bytes) -> None:
    for run in (run_zip, run_first_entry):
        with pytest.raises(ExtractionError) as excinfo:
            run(data, sandbox.dest / "out")
        check_refusal(excinfo, sandbox, None, unsafe=False)


def test_zip_with_corrupt_content_is_an_extraction_error(sandbox: Sandbox) -> None:
    archive = bytearray(zip_archive({"a.txt": b"a" * 1000}))
    info = zipfile.ZipFile(io.BytesIO(bytes(archive))).getinfo("a.txt")
    data_start = info.header_offset + 30 + len("a.txt")
    archive[data_start : data_start + 4] = b"\xff\xff\xff\xff"
    with pytest.raises(ExtractionError) as excinfo:
        run_zip(bytes(archive), sandbox.dest)
    check_refusal(excinfo, sandbox, "a.txt", unsafe=False)


def test_first_zip_entry_of_a_zip_without_files(sandbox: Sandbox) -> None:
    with pytest.raises(ExtractionError, match="no file") as excinfo:
        run_first_entry(zip_archive({"d/": b""}), sandbox.dest / "only.bin")
    check_refusal(excinfo, sandbox, None, unsafe=False)


def test_unsupported_formats(sandbox: Sandbox) -> None:
    with pytest.raises(ExtractionError, match="tar format"):
        run_tar(b"", ArchiveFormat.ZIP, sandbox.dest)
    with pytest.raises(ExtractionError, match="single-file"):
        run_decompress(b"", ArchiveFormat.TGZ, sandbox.dest / "x")
    sandbox.assert_untouched()


def test_errors_of_the_source_are_translated_or_kept(sandbox: Sandbox) -> None:
    archive = tar_archive({"a.bin": os.urandom(400_000)}, ArchiveFormat.TGZ)
    failing = ForwardOnly(archive, fail=OSError(errno.ECONNRESET, "connection reset"))
    with pytest.raises(ExtractionError) as excinfo:
        extract_tar(
            cast(BinaryIO, failing), ArchiveFormat.TGZ, sandbox.dest, limits=LIMITS, archive=ARCHIVE
        )
    assert not isinstance(excinfo.value, InstallError)
    assert isinstance(excinfo.value.__cause__, OSError)

    ours = DownloadError("checksum server gone", url=ARCHIVE)
    failing = ForwardOnly(archive, fail=ours)
    with pytest.raises(DownloadError) as download:
        extract_tar(
            cast(BinaryIO, failing), ArchiveFormat.TGZ, sandbox.dest, limits=LIMITS, archive=ARCHIVE
        )
    assert download.value is ours


# == write failures ========================================================================


def test_write_failures_are_install_errors(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def full_disk(fd: int, data: Any) -> int:
        if len(data) > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("repository.extract.os.write", full_disk)
    archive = tar_archive({"small.txt": b"s", "big.bin": os.urandom(5000)}, ArchiveFormat.TZST)
    with pytest.raises(InstallError) as excinfo:
        run_tar(archive, ArchiveFormat.TZST, sandbox.dest)
    assert excinfo.value.path == str(sandbox.dest / "big.bin")
    assert "No space left" in str(excinfo.value)

    with pytest.raises(InstallError) as excinfo:
        run_decompress(gzip.compress(bytes(5000)), ArchiveFormat.GZIP, sandbox.dest / "x.bin")
    assert excinfo.value.path == str(sandbox.dest / "x.bin")


def test_unwritable_destination_is_an_install_error(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(path: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", path)

    sandbox.dest.mkdir()
    monkeypatch.setattr("repository.extract.os.mkdir", read_only)
    with pytest.raises(InstallError) as excinfo:
        run_zip(zip_archive({"sub/a.txt": b"a"}), sandbox.dest)
    assert excinfo.value.path == str(sandbox.dest / "sub")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ExtractionLimits(max_entries=0)
    with pytest.raises(ValueError, match="max_ratio"):
        ExtractionLimits(max_ratio=0)
