"""Append to a file that is read again only after a crash, keeping it out of the page cache.

The partial download of an archive that is extracted as it arrives is insurance: it is read
back only to resume after the process died, and deleted once the artifact is installed. Left in
the page cache, its gigabyte of dirty pages doubles the memory a ``prepare`` touches and pushes
out pages that other programs (or the extracted model, about to be loaded) need; on a virtual
machine that returns free memory to its host, touching that many fresh pages also costs more
CPU than copying the data. :class:`UncachedAppender` starts writing each window back to disk as
soon as it is full and drops the windows written back before it, as ``dd oflag=nocache`` means
to, so that the file holds only a couple of windows of the page cache at a time.

Where ``posix_fadvise`` does not exist (macOS, Windows) or a file system ignores it (tmpfs), the
appender writes like an ordinary unbuffered file.
"""

from __future__ import annotations

import logging
import os

__all__ = ["UncachedAppender"]

logger = logging.getLogger(__name__)

WINDOW = 8 << 20
"""Bytes between two pieces of advice: large enough that advising costs nothing, small enough
that the two windows kept in the page cache are a few MiB."""
_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)


class UncachedAppender:
    """An unbuffered, append-only file whose pages leave the page cache once written back.

    Dirty pages cannot be dropped: each full window is handed to writeback at once, and the
    windows before the previous one, written back by then, are dropped. Closing hands the rest
    to writeback and drops whatever is clean.

    :param path: the file, created when missing; writes go after its current content.
    :param window: bytes written between two pieces of advice.
    :raises OSError: when the file cannot be opened or written, as :func:`os.write` does.
    """

    def __init__(self, path: str | os.PathLike[str], *, window: int = WINDOW) -> None:
        #: The file's path, as ``name`` of a file object.
        self.name = os.fspath(path)
        self._file = open(self.name, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._window = window
        self._position = self._file.tell()
        self._window_start = self._position
        self._previous_start = self._position
        self._advising = _DONTNEED is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._file.closed

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append all of ``data``; returns its length."""
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            view = view[self._file.write(view) or 0 :]
        self._position += size
        if self._position - self._window_start >= self._window:
            self._advise(self._window_start, self._position - self._window_start)
            self._advise(0, self._previous_start)
            self._previous_start = self._window_start
            self._window_start = self._position
        return size

    def flush(self) -> None:
        """Nothing to do: every write goes straight to the file."""

    def close(self) -> None:
        """Hand what is left to writeback, drop what is clean, and close the file."""
        if self._file.closed:
            return
        try:
            self._advise(0, self._position)
        finally:
            self._file.close()

    def __enter__(self) -> UncachedAppender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _advise(self, offset: int, length: int) -> None:
        if not self._advising or length <= 0:
            return
        assert _DONTNEED is not None
        try:
            os.posix_fadvise(self._file.fileno(), offset, length, _DONTNEED)
        except OSError as exc:  # advice only: a file system may refuse it
            logger.debug("no page-cache advice for %s: %s", self.name, exc)
            self._advising = False
