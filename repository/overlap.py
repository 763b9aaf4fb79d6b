"""Overlap a download with what consumes it.

The calling thread pulls chunks from the network (and appends them to the partial file) while a
second thread reads them and decompresses, extracts and hashes: on two cores, the receiving and
writing of an archive no longer waits for its extraction, and the other way round. A bounded
buffer between them keeps memory flat.

The calling thread stays in charge of the network, so that an interruption (Ctrl-C, a failed
download) stops it where it is; the consumer is then told to give up at its next read and is
waited for before the error is raised. When the consumer fails (a corrupt archive, a checksum
mismatch), the calling thread stops pulling and raises the consumer's error.

:class:`ChunkPipe` also carries decompressed data from the extractor's read-ahead thread to the
thread that writes the files (``repository.extract``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar

from repository.hashing import Readable

__all__ = ["ChunkPipe", "consume_overlapped"]

T = TypeVar("T")
DEPTH = 8


class _AbandonedError(Exception):
    """The producer stopped before the end: the consumer's reads fail with this."""


class ChunkPipe:
    """A bounded buffer of chunks: one thread puts, another reads them as a byte stream."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._chunks: deque[bytes] = deque()
        self._depth = depth
        self._condition = threading.Condition()
        self._ended = False
        self._abandoned = False
        self._error: BaseException | None = None
        self._closed = False  # the consumer reads no more
        self._current = b""
        self._offset = 0

    # -- the producer's side ----------------------------------------------------------------

    def put(self, chunk: bytes) -> bool:
        """Queue ``chunk``, waiting while the buffer is full; False once the consumer is done."""
        with self._condition:
            while len(self._chunks) >= self._depth and not self._closed:
                self._condition.wait()
            if self._closed:
                return False
            self._chunks.append(chunk)
            self._condition.notify_all()
            return True

    def end(self, *, complete: bool, error: BaseException | None = None) -> None:
        """No more chunks: the stream ends there (``complete``) or was abandoned, because of
        ``error`` when given (the reader then gets it). Only the first call counts."""
        with self._condition:
            if self._ended:
                return
            self._ended = True
            self._abandoned = not complete
            self._error = error
            self._condition.notify_all()

    # -- the consumer's side ----------------------------------------------------------------

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (the rest of the current chunk when negative); b"" at the end.

        :raises: the producer's error when it ended the stream with one, else
            ``_AbandonedError`` when it stopped before the end.
        """
        if self._offset >= len(self._current):
            with self._condition:
                while not self._chunks and not self._ended:
                    self._condition.wait()
                if not self._chunks:
                    if self._error is not None:
                        raise self._error
                    if self._abandoned:
                        raise _AbandonedError("the download stopped")
                    return b""
                self._current = self._chunks.popleft()
                self._offset = 0
                self._condition.notify_all()
        start = self._offset
        if start == 0 and (size < 0 or size >= len(self._current)):
            self._offset = len(self._current)
            return self._current  # the whole chunk, not copied
        end = len(self._current) if size < 0 else min(len(self._current), start + size)
        self._offset = end
        return self._current[start:end]

    def close(self) -> None:
        """The consumer reads no more; a waiting producer is released."""
        with self._condition:
            self._closed = True
            self._chunks.clear()
            self._condition.notify_all()


def consume_overlapped(chunks: Iterable[bytes], consume: Callable[[Readable], T]) -> T:
    """Run ``consume(reader)`` in a second thread while this thread pulls ``chunks`` for it.

    :return: what ``consume`` returned.
    :raises: this thread's error when pulling failed (the consumer is stopped and waited for),
        else the consumer's error.
    """
    pipe = ChunkPipe()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(consume(pipe))
        except BaseException as exc:  # handed to the calling thread
            failure.append(exc)
        finally:
            pipe.close()

    worker = threading.Thread(target=run, name="repository-consume", daemon=True)
    worker.start()
    try:
        for chunk in chunks:
            if not pipe.put(chunk):
                break  # the consumer finished or failed
        else:
            pipe.end(complete=True)
    except BaseException:
        pipe.end(complete=False)
        worker.join()
        raise
    pipe.end(complete=False)  # a no-op after a complete end; releases a consumer otherwise
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]
