"""HashingReader: digests of what passes through, in the reading thread or in background ones."""

from __future__ import annotations

import hashlib
import io

import pytest
import xxhash

from repository import ChecksumMismatchError
from repository.hashing import FILE_DIGEST, HashingReader, new_hash, verify_digests

DATA = hashlib.shake_256(b"data").digest(5_000_000)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("chunk", [1, 4096, 65536, 1 << 20])
def test_digests_cover_every_byte_in_order(background: bool, chunk: int) -> None:
    data = DATA if chunk > 1 else DATA[:20_000]
    seen: list[int] = []
    with HashingReader(
        io.BytesIO(data), ["sha1", "sha256"], on_bytes=seen.append, background=background
    ) as reader:
        while reader.read(chunk):
            pass
        digests = reader.hexdigests()
    assert digests == {
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert sum(seen) == reader.bytes_read == len(data)


def test_background_hashing_copies_what_it_is_given() -> None:
    # The threads hash from buffers of their own: a caller may reuse its buffer at once, and
    # bytes received are freed where they were made (see _BackgroundHashing).
    expected = hashlib.sha256()
    shared = bytearray(300_000)
    with HashingReader(io.BytesIO(b""), ["sha256"], background=True) as reader:
        for round_ in range(64):  # 18 MiB: more than the ring holds, so buffers are reused
            shared[:] = bytes([round_]) * len(shared)
            expected.update(shared)
            reader.consume([shared])  # type: ignore[list-item]
        assert reader.hexdigests() == {"sha256": expected.hexdigest()}


def test_background_threads_stop_on_close() -> None:
    import threading

    before = threading.active_count()
    reader = HashingReader(io.BytesIO(DATA), ["sha1", "sha256"], background=True)
    assert threading.active_count() == before + 2
    reader.drain()
    reader.close()
    assert threading.active_count() == before


def test_each_digest_gets_a_thread_of_its_own_in_background() -> None:
    import threading

    before = threading.active_count()
    with HashingReader(
        io.BytesIO(DATA), ["sha1", "sha256", FILE_DIGEST], background=True
    ) as reader:
        assert threading.active_count() == before + 3
        reader.drain()
        digests = reader.hexdigests()
    assert threading.active_count() == before
    assert digests == {
        "sha1": hashlib.sha1(DATA).hexdigest(),
        "sha256": hashlib.sha256(DATA).hexdigest(),
        FILE_DIGEST: xxhash.xxh3_128(DATA).hexdigest(),
    }


def test_new_hash_knows_hashlib_names_and_the_file_digest() -> None:
    assert new_hash("sha256", b"x").hexdigest() == hashlib.sha256(b"x").hexdigest()
    assert new_hash(FILE_DIGEST, b"x").hexdigest() == xxhash.xxh3_128(b"x").hexdigest()
    assert len(new_hash(FILE_DIGEST).hexdigest()) == 32


def test_mismatch_names_algorithm_expected_and_actual() -> None:
    with pytest.raises(ChecksumMismatchError) as caught:
        verify_digests({"sha256": "A" * 64}, {"sha256": "b" * 64}, item="model", source="u")
    error = caught.value
    assert (error.algorithm, error.expected, error.actual, error.item) == (
        "sha256",
        "a" * 64,
        "b" * 64,
        "model",
    )
    verify_digests(
        {"sha1": "AB" * 20}, {"sha1": "ab" * 20}, item="m", source="u"
    )  # case-insensitive
