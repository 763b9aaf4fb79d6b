"""UncachedAppender: appends like a file, and leaves the page cache once its pages are on disk."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

import pytest

from repository.pagecache import UncachedAppender

MiB = 1 << 20
PAGE = mmap.PAGESIZE


def resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, from mincore(2) over a mapping of the file."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    size = path.stat().st_size
    pages = (size + PAGE - 1) // PAGE
    vector = (ctypes.c_ubyte * pages)()
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) as view:
        first = ctypes.c_char.from_buffer(view)
        try:
            address = ctypes.c_void_p(ctypes.addressof(first))
            if libc.mincore(address, ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del first  # the mapping cannot close while a ctypes object points into it
    return sum(byte & 1 for byte in vector) * PAGE


def write_back(path: Path) -> None:
    """Wait until every dirty page of ``path`` is on disk (fsync through another descriptor)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.fixture
def dropping_file_system(tmp_path: Path) -> Path:
    """``tmp_path``, when its file system drops clean pages on advice (tmpfs does not)."""
    if not hasattr(os, "posix_fadvise") or not hasattr(os, "POSIX_FADV_DONTNEED"):
        pytest.skip("no posix_fadvise here")
    probe = tmp_path / "probe"
    probe.write_bytes(os.urandom(MiB))
    write_back(probe)
    fd = os.open(probe, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if resident_bytes(probe) > MiB // 2:
        pytest.skip("this file system keeps pages in memory whatever it is advised")
    probe.unlink()
    return tmp_path


def test_appends_after_what_the_file_holds(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_bytes(b"earlier ")
    with UncachedAppender(target, window=4) as sink:
        assert sink.name == str(target)
        assert sink.write(b"and later") == 9
        assert sink.write(memoryview(b" bytes")) == 6
        sink.flush()
        assert target.read_bytes() == b"earlier and later bytes"
    assert sink.closed
    sink.close()  # twice is harmless


def test_pages_written_back_leave_the_page_cache(dropping_file_system: Path) -> None:
    chunk = os.urandom(MiB)
    plain = dropping_file_system / "plain"
    with plain.open("wb") as file:
        for _ in range(32):
            file.write(chunk)
    write_back(plain)
    assert resident_bytes(plain) >= 30 * MiB  # an ordinary file stays cached

    target = dropping_file_system / "uncached"
    sink = UncachedAppender(target, window=4 * MiB)
    for _ in range(32):
        sink.write(chunk)
    # Each full window was handed to writeback at once, and the windows before the previous
    # one dropped: once on disk, at most the last windows' pages are left...
    write_back(target)
    sink.write(chunk)  # (the next full window drops the clean ones)
    sink.write(chunk)
    sink.write(chunk)
    sink.write(chunk)
    assert resident_bytes(target) <= 3 * 4 * MiB
    # ...and closing drops whatever is clean.
    write_back(target)
    sink.close()
    assert resident_bytes(target) <= MiB
    assert target.stat().st_size == 36 * MiB
    with target.open("rb") as file:
        assert file.read(MiB) == chunk
