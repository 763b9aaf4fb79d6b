"""Receiving and extracting overlap: results, errors and back-pressure between the two threads."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest

from repository.hashing import BACKGROUND_HASHING_FROM, Readable, Sha256Writer
from repository.overlap import DEPTH, consume_overlapped


def read_all(source: Readable, size: int = 7) -> bytes:
    parts = []
    while chunk := source.read(size):
        parts.append(chunk)
    return b"".join(parts)


def test_the_consumer_reads_every_byte_in_order_whatever_its_read_size() -> None:
    chunks = [bytes([n]) * (n * 3 + 1) for n in range(50)]
    for size in (1, 5, 64, -1):
        assert consume_overlapped(iter(chunks), lambda s, n=size: read_all(s, n)) == b"".join(
            chunks
        )


def test_the_consumer_runs_in_another_thread_while_chunks_are_pulled() -> None:
    consumer_threads: list[str] = []

    def consume(source: Readable) -> bytes:
        consumer_threads.append(threading.current_thread().name)
        return read_all(source)

    assert consume_overlapped(iter([b"ab", b"cd"]), consume) == b"abcd"
    assert consumer_threads == ["repository-consume"]


def test_a_failing_consumer_stops_the_pulling_and_its_error_is_raised() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(10_000):
            pulled.append(n)
            yield b"x" * 100

    def consume(source: Readable) -> None:
        source.read(10)
        raise ValueError("corrupt archive")

    with pytest.raises(ValueError, match="corrupt archive"):
        consume_overlapped(chunks(), consume)
    assert len(pulled) < 10_000
    assert len(pulled) <= DEPTH + 3  # the bounded buffer held the producer back


def test_a_failing_producer_stops_the_consumer_and_its_own_error_is_raised() -> None:
    consumer_outcome: list[str] = []

    def chunks() -> Iterator[bytes]:
        yield b"abc"
        raise ConnectionError("network gone")

    def consume(source: Readable) -> bytes:
        try:
            return read_all(source)
        except BaseException as exc:
            consumer_outcome.append(type(exc).__name__)
            raise

    with pytest.raises(ConnectionError, match="network gone"):
        consume_overlapped(chunks(), consume)
    assert consumer_outcome == ["_AbandonedError"]  # it was told, and was waited for


def test_the_producer_waits_while_the_buffer_is_full() -> None:
    produced = [0]
    release = threading.Event()

    def chunks() -> Iterator[bytes]:
        for _ in range(DEPTH * 4):
            produced[0] += 1
            yield b"y"

    def consume(source: Readable) -> bytes:
        release.wait(5)
        return read_all(source)

    result: list[bytes] = []
    runner = threading.Thread(target=lambda: result.append(consume_overlapped(chunks(), consume)))
    runner.start()
    time.sleep(0.3)
    assert produced[0] <= DEPTH + 1
    release.set()
    runner.join(5)
    assert result == [b"y" * DEPTH * 4]


@pytest.mark.parametrize("size", [10, BACKGROUND_HASHING_FROM - 1, BACKGROUND_HASHING_FROM * 2 + 5])
def test_sha256_writer_matches_hashlib_below_and_above_the_thread_threshold(size: int) -> None:
    data = hashlib.shake_256(b"seed").digest(size)
    writer = Sha256Writer()
    for start in range(0, size, 1 << 20):
        writer.update(data[start : start + (1 << 20)])
    hashing_in_a_thread = any(t.name == "repository-hash" for t in threading.enumerate())
    assert hashing_in_a_thread == (size > BACKGROUND_HASHING_FROM)
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    assert not any(t.name == "repository-hash" for t in threading.enumerate())
