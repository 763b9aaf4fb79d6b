"""Receiving and extracting overlap: results, errors and back-pressure between the two threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from repository.hashing import Readable
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
