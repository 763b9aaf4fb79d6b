"""The structure of a zstd stream, followed without decompressing it (RFC 8878, section 3).

A decompressor fed a piece of compressed data returns all the output that piece holds, however
large: an RLE block of 4 bytes stands for 128 KiB. To bound the output of each call, and to
tell where one frame ends and whether the stream stops inside one (which ``zstandard``'s
streaming readers do not report), :class:`ZstdWalker` reads the frame and block headers as the
data goes by and cuts it into :class:`Step` pieces of at most a given number of blocks. Each
block decompresses to at most 128 KiB, so a piece of ``n`` blocks yields at most ``n + 1``
times that (the block it started in, plus ``n``).

>>> import zstandard
>>> data = zstandard.ZstdCompressor(write_checksum=True).compress(b"hello" * 100)
>>> walker = ZstdWalker()
>>> first = walker.advance(memoryview(data), max_blocks=8)
>>> first.starts_frame, walker.in_frame
(True, True)
>>> rest = walker.advance(memoryview(data)[first.size :], max_blocks=8)
>>> rest.ends_frame, first.size + rest.size == len(data), walker.in_frame
(True, True, False)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["MAX_BLOCK_SIZE", "Step", "ZstdStructureError", "ZstdWalker"]

MAX_BLOCK_SIZE = 128 << 10
"""The most a block may hold or regenerate (Block_Maximum_Size)."""
_FRAME_MAGIC = 0xFD2FB528
_SKIPPABLE_MAGIC = 0x184D2A50  # the low 4 bits are free
_DICTIONARY_ID_SIZES = (0, 1, 2, 4)
_CONTENT_SIZE_SIZES = (0, 2, 4, 8)  # the first is 1 in a single-segment frame
_BLOCK_RLE = 1
_BLOCK_RESERVED = 3
_CHECKSUM_SIZE = 4


class ZstdStructureError(ValueError):
    """The data does not have the structure of a zstd stream."""


@dataclass(frozen=True, slots=True)
class Step:
    """The next ``size`` bytes of the stream, and what they are.

    ``size`` is 0 when more data is needed to go on. Otherwise the bytes belong to one frame:
    to a skippable frame (``skip``, for no decompressor), or to a zstd frame, whose header they
    start with when ``starts_frame`` and whose last byte they end with when ``ends_frame``.
    """

    size: int
    skip: bool = False
    starts_frame: bool = False
    ends_frame: bool = False


class _State(enum.Enum):
    BETWEEN = "between frames"
    SKIPPING = "in a skippable frame"
    BLOCKS = "in the blocks of a frame"
    CHECKSUM = "in the checksum of a frame"


class ZstdWalker:
    """Follows the frames and blocks of a zstd stream fed to it in order."""

    def __init__(self) -> None:
        self._state = _State.BETWEEN
        self._remaining = 0  # bytes left in the current block content, checksum or skip
        self._last_block = False
        self._checksum = False
        #: zstd frames started so far (skippable frames not counted).
        self.frames = 0

    @property
    def in_frame(self) -> bool:
        """True between the first and the last byte of a frame: the stream may not end here."""
        return self._state is not _State.BETWEEN

    def advance(self, data: memoryview | bytes, max_blocks: int) -> Step:
        """The step that ``data``, the bytes after the previous steps, starts with.

        A step within a frame's blocks holds at most ``max_blocks`` block headers. A header cut
        by the end of ``data`` is left for the next call, with more data.

        :raises ZstdStructureError: on an unknown frame magic number, a reserved block type,
            or a block larger than :data:`MAX_BLOCK_SIZE`.
        """
        if self._state is _State.BETWEEN:
            return self._start(data)
        if self._state is _State.SKIPPING:
            size = min(self._remaining, len(data))
            self._remaining -= size
            if not self._remaining:
                self._state = _State.BETWEEN
            return Step(size, skip=True)
        return self._blocks(data, max_blocks)

    def _start(self, data: memoryview | bytes) -> Step:
        if len(data) < 4:
            return Step(0)
        magic = int.from_bytes(data[:4], "little")
        if magic & ~0xF == _SKIPPABLE_MAGIC:
            if len(data) < 8:
                return Step(0)
            self._remaining = int.from_bytes(data[4:8], "little")
            if self._remaining:
                self._state = _State.SKIPPING
            return Step(8, skip=True)
        if magic != _FRAME_MAGIC:
            raise ZstdStructureError(f"unknown frame magic number {magic:#010x}")
        if len(data) < 5:
            return Step(0)
        descriptor = data[4]
        single_segment = bool(descriptor & 0x20)
        content_size_flag = descriptor >> 6
        header_size = (
            5
            + (0 if single_segment else 1)
            + _DICTIONARY_ID_SIZES[descriptor & 3]
            + (_CONTENT_SIZE_SIZES[content_size_flag] or int(single_segment))
        )
        if len(data) < header_size:
            return Step(0)
        self._state = _State.BLOCKS
        self._last_block = False
        self._checksum = bool(descriptor & 0x04)
        self.frames += 1
        return Step(header_size, starts_frame=True)

    def _blocks(self, data: memoryview | bytes, max_blocks: int) -> Step:
        position = 0
        end = len(data)
        blocks = 0
        while True:
            if self._remaining:
                taken = min(self._remaining, end - position)
                position += taken
                self._remaining -= taken
                if self._remaining:
                    return Step(position)
            if self._state is _State.CHECKSUM or self._last_block:
                if self._state is _State.BLOCKS and self._checksum:
                    self._state = _State.CHECKSUM
                    self._remaining = _CHECKSUM_SIZE
                    continue
                self._state = _State.BETWEEN
                return Step(position, ends_frame=True)
            if blocks == max_blocks or end - position < 3:
                return Step(position)
            header = int.from_bytes(data[position : position + 3], "little")
            position += 3
            blocks += 1
            kind = (header >> 1) & 3
            size = header >> 3
            if kind == _BLOCK_RESERVED:
                raise ZstdStructureError("block of the reserved type")
            if size > MAX_BLOCK_SIZE:
                raise ZstdStructureError(f"block of {size} bytes (at most {MAX_BLOCK_SIZE})")
            self._last_block = bool(header & 1)
            self._remaining = 1 if kind == _BLOCK_RLE else size
