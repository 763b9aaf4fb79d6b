"""The zstd structure walker: frame boundaries, bounded steps, and refusals."""

from __future__ import annotations

import os
import random

import pytest
import zstandard

from repository.zstdframes import MAX_BLOCK_SIZE, Step, ZstdStructureError, ZstdWalker

MiB = 1 << 20


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    return (
        (0x184D2A50 | nibble).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload
    )


def walk(
    data: bytes, max_blocks: int, feed: list[int] | None = None
) -> tuple[list[Step], ZstdWalker]:
    """Every step over ``data``, offered in pieces of the given sizes (all at once by default)."""
    walker = ZstdWalker()
    steps: list[Step] = []
    available = 0
    position = 0
    for size in feed or [len(data)]:
        available = min(len(data), available + size)
        while (step := walker.advance(memoryview(data)[position:available], max_blocks)).size:
            steps.append(step)
            position += step.size
    assert position <= len(data)
    return steps, walker


def stream() -> bytes:
    """Three zstd frames of all kinds of blocks, with skippable frames between them."""
    checked = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    plain = zstandard.ZstdCompressor(write_checksum=False, write_content_size=False)
    incompressible = os.urandom(300_000)  # raw blocks
    zeros = bytes(2 * MiB)  # RLE blocks
    text = b"the quick brown fox " * 30_000  # compressed blocks
    return (
        skippable(b"x" * 10, 3)
        + checked.compress(incompressible + zeros)
        + skippable(b"")
        + plain.compress(text)
        + checked.compress(b"")
        + skippable(b"tail", 15)
    )


@pytest.mark.parametrize("feed", ["whole", "bytewise", "random"])
def test_frames_are_found_however_the_data_arrives(feed: str) -> None:
    data = stream()
    pieces = None
    if feed == "bytewise":
        pieces = [1] * len(data)
    elif feed == "random":
        generator = random.Random(7)
        pieces = [generator.randint(1, 70_000) for _ in range(len(data) // 10_000)]
    steps, walker = walk(data, 8, pieces)
    assert sum(step.size for step in steps) == len(data)
    assert not walker.in_frame
    assert walker.frames == 3
    assert sum(step.starts_frame for step in steps) == 3
    assert sum(step.ends_frame for step in steps) == 3
    assert not any(step.skip and (step.starts_frame or step.ends_frame) for step in steps)
    # Decompressing frame by frame, as the steps say, gives back the content.
    context = zstandard.ZstdDecompressor()
    output = []
    frame = None
    position = 0
    for step in steps:
        piece = data[position : position + step.size]
        position += step.size
        if step.skip:
            continue
        if step.starts_frame:
            frame = context.decompressobj()
        assert frame is not None
        output.append(frame.decompress(piece))
        if step.ends_frame:
            assert frame.eof
            frame = None
    content = b"".join(output)
    assert len(content) == 300_000 + 2 * MiB + 600_000
    assert content.endswith(b"the quick brown fox ")


@pytest.mark.parametrize("max_blocks", [1, 2, 8])
def test_a_step_never_holds_more_than_its_blocks_worth(max_blocks: int) -> None:
    # 64 MiB of zeros pack into a few KiB of RLE blocks: one unbounded call would return all of
    # it; a step returns at most one block more than asked.
    data = zstandard.ZstdCompressor().compress(bytes(64 * MiB))
    assert len(data) < 64 * 1024
    steps, _ = walk(data, max_blocks)
    frame = zstandard.ZstdDecompressor().decompressobj()
    position = 0
    total = 0
    for step in steps:
        out = frame.decompress(data[position : position + step.size])
        position += step.size
        assert len(out) <= (max_blocks + 1) * MAX_BLOCK_SIZE
        total += len(out)
    assert total == 64 * MiB
    assert len(steps) >= 64 * MiB // (max_blocks * MAX_BLOCK_SIZE)


def test_a_cut_stream_leaves_the_walker_inside_a_frame() -> None:
    data = zstandard.ZstdCompressor(write_checksum=True).compress(os.urandom(400_000))
    for cut in (3, 4, 9, len(data) // 2, len(data) - 4, len(data) - 1):
        _, walker = walk(data[:cut], 8)
        assert walker.in_frame or cut < 5, cut
    _, walker = walk(skippable(b"12345678")[:-2], 8)
    assert walker.in_frame
    _, walker = walk(data, 8)
    assert not walker.in_frame


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"junk" * 4, "unknown frame magic number"),
        (bytes.fromhex("28b52ffd") + b"\x00\x00" + (0b110).to_bytes(3, "little"), "reserved"),
        (
            bytes.fromhex("28b52ffd")
            + b"\x00\x00"
            + ((MAX_BLOCK_SIZE + 1) << 3).to_bytes(3, "little"),
            "at most",
        ),
    ],
    ids=["magic", "reserved-block", "oversized-block"],
)
def test_what_is_not_zstd_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ZstdStructureError, match=message):
        walk(data, 8)
