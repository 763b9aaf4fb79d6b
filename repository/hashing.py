"""Hash bytes while they are read, and compare against declared digests.

The installer wraps every source stream in a :class:`HashingReader`, so that the raw bytes are
hashed exactly once, on their way to the disk or the extractor, and never read back.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from typing import Protocol

from repository.errors import ChecksumMismatchError

__all__ = ["HashingReader", "Readable", "verify_digests"]

CHUNK_SIZE = 1 << 20


class Readable(Protocol):
    """What sequential readers need of a source: a binary file, a response body, a
    hashing wrapper. Only ``read`` is called, never ``seek``, ``tell`` or ``close``.
    """

    def read(self, size: int, /) -> bytes:
        """Return up to ``size`` bytes; ``b""`` only at the end of the data."""
        ...


class HashingReader(io.RawIOBase):
    """A read-only, forward-only stream that hashes and counts what passes through it.

    >>> reader = HashingReader(io.BytesIO(b"abc"), ["sha256"])
    >>> reader.read()
    b'abc'
    >>> reader.hexdigests()["sha256"][:16], reader.bytes_read
    ('ba7816bf8f01cfea', 3)
    """

    def __init__(
        self,
        source: Readable,
        algorithms: list[str] | tuple[str, ...],
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._on_bytes = on_bytes
        self._hashers = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``, hashing the bytes read."""
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        count = len(data)
        view[:count] = data
        self._update(data)
        return count

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative), hashing them."""
        data = self._source.read(-1 if size is None or size < 0 else size)
        self._update(data)
        return data

    def _update(self, data: bytes) -> None:
        if data:
            for hasher in self._hashers.values():
                hasher.update(data)
            self.bytes_read += len(data)
            if self._on_bytes is not None:
                self._on_bytes(len(data))

    def drain(self) -> None:
        """Read the rest of the source, so that the digests cover every byte."""
        while self.read(CHUNK_SIZE):
            pass

    def hexdigests(self) -> dict[str, str]:
        """The hex digests of everything read so far, by algorithm."""
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}


def verify_digests(
    expected: Mapping[str, str], actual: Mapping[str, str], *, item: str, source: str
) -> None:
    """Compare declared digests with computed ones, case-insensitively.

    :raises ChecksumMismatchError: on the first algorithm whose digests differ.
    """
    for algorithm, want in expected.items():
        got = actual[algorithm]
        if want.lower() != got.lower():
            raise ChecksumMismatchError(
                f"Checksum mismatch for item {item!r} from {source}: {algorithm} expected "
                f"{want.lower()} but got {got}. Deleted download for safety.",
                item=item,
                source=source,
                algorithm=algorithm,
                expected=want.lower(),
                actual=got,
            )
