"""The benchmark data: deterministic artifacts in DJL's layout, generated once and reused.

Each served folder (``<root>/model/cv/image_classification/ai/djl/bench/<artifact id>/``) holds
its items, a ``metadata.json`` as DJL writes it (``sha1Hash`` and/or ``sha256Hash``, ``size``) and a
``.built.json`` written last, which records the parameters the folder was built from. A folder
is rebuilt only when those parameters change (or the build never finished).

- ``big``: one file of pseudo-random bytes (incompressible), served as two artifacts: one
  declaring its sha256 (``digests=sha256``), as Hugging Face's and pooch's users do, and one
  declaring sha1 and sha256 (``digests=sha1+sha256``), which makes ``prepare`` compute both.
- ``archive``: two artifacts, ``format=gz`` and ``format=zst``, each one item, a tar of the same
  mixed content: a few large weight-like shards (float32-like bytes: random mantissas, a narrow
  range of exponents, so they compress about as little as real weights) plus many small files,
  half text and half binary. gzip level 6, zstd level 3, as the usual tools write them.
- ``small``: one artifact of many small pseudo-random files, one item each.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import zstandard

from repository import MRL

__all__ = ["FULL", "GIB", "KIB", "MIB", "QUICK", "Item", "Served", "Sizes", "build", "read_through"]

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

APPLICATION = "cv/image_classification"
GROUP = "ai.djl.bench"
VERSION = "1.0"
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
GENERATOR = 2  # bump whenever generated content changes, so that cached folders are rebuilt
BUILT_FILE = ".built.json"
CHUNK = 4 * MIB
TAR_MTIME = 1_700_000_000
WEIGHT_SHARDS = 4
WEIGHT_SHARE = 7 / 8  # of an archive's content; small files fill the rest
ARCHIVE_SMALL_MAX = 128 * KIB
TEXT_POOL = 4 * MIB

# The high byte of a little-endian float32 (sign and top exponent bits) of weights around
# N(0, 0.02): a handful of values. Every fourth byte of a weight-like buffer is mapped onto them.
_EXPONENT_BYTES = bytes([0x3A, 0x3B, 0x3C, 0x3C, 0xBA, 0xBB, 0xBC, 0xBC])
_HIGH_BYTE = bytes(_EXPONENT_BYTES[i % len(_EXPONENT_BYTES)] for i in range(256))


@dataclass(frozen=True)
class Sizes:
    """How big the generated data is."""

    big_file: int
    archive_content: int
    small_files: int = 1000
    small_min: int = 1 * KIB
    small_max: int = 20 * KIB


FULL = Sizes(big_file=GIB, archive_content=GIB)
QUICK = Sizes(big_file=64 * MIB, archive_content=64 * MIB)


@dataclass(frozen=True)
class Item:
    """One item of a served artifact; ``uri`` is relative to the artifact's folder."""

    key: str
    uri: str
    size: int
    sha1: str
    sha256: str


@dataclass(frozen=True)
class Served:
    """One artifact as the server holds it."""

    artifact_id: str
    name: str
    properties: dict[str, str]
    items: tuple[Item, ...]
    content_files: int  # regular files once prepared
    content_size: int  # their bytes
    digests: tuple[str, ...] = ("sha1", "sha256")  # declared in the metadata

    @property
    def mrl(self) -> MRL:
        return MRL.model(APPLICATION, GROUP, self.artifact_id)

    def path(self, item: Item) -> str:
        """The item's path relative to the served root."""
        return self.mrl.path + item.uri

    @property
    def download_size(self) -> int:
        return sum(item.size for item in self.items)


# -- content --------------------------------------------------------------------------------


def _random_chunks(seed: str, size: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    while size > 0:
        count = min(size, CHUNK)
        yield rng.randbytes(count)
        size -= count


def _weight_chunks(seed: str, size: int) -> Iterator[bytes]:
    for chunk in _random_chunks(seed, size):
        buffer = bytearray(chunk)
        buffer[3::4] = bytes(buffer[3::4]).translate(_HIGH_BYTE)
        yield bytes(buffer)


def _text_pool(seed: str) -> bytes:
    """Word-like text with a Zipf-like word distribution; its last bytes repeat its first ones,
    so that any slice of up to ``ARCHIVE_SMALL_MAX`` bytes from an offset below ``TEXT_POOL``
    is available in one piece."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    vocabulary = [
        "".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 10)))
        for _ in range(5000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    text = bytearray()
    while len(text) < TEXT_POOL:
        words = rng.choices(vocabulary, weights=weights, k=12_000)
        lines = (" ".join(words[start : start + 12]) for start in range(0, len(words), 12))
        text += "\n".join(lines).encode() + b"\n"
    return bytes(text[:TEXT_POOL] + text[:ARCHIVE_SMALL_MAX])


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = next(self._chunks, b"")
        count = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _write(path: Path, chunks: Iterator[bytes]) -> None:
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)


def _item(key: str, folder: Path, uri: str) -> Item:
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    with (folder / uri).open("rb") as source:
        while chunk := source.read(CHUNK):
            sha1.update(chunk)
            sha256.update(chunk)
    size = (folder / uri).stat().st_size
    return Item(key=key, uri=uri, size=size, sha1=sha1.hexdigest(), sha256=sha256.hexdigest())


# -- the three folders ----------------------------------------------------------------------


def _build_big(folder: Path, sizes: Sizes) -> list[Served]:
    _write(folder / "big.bin", _random_chunks("big", sizes.big_file))
    item = _item("weights", folder, "big.bin")
    return [
        Served("big", name, {"digests": "+".join(digests)}, (item,), 1, sizes.big_file, digests)
        for name, digests in (("big", ("sha256",)), ("big_sha1_sha256", ("sha1", "sha256")))
    ]


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    text: bool


def _archive_members(total: int) -> list[_Member]:
    shard = int(total * WEIGHT_SHARE) // WEIGHT_SHARDS
    members = [
        _Member(f"model/weights-{i + 1:05d}-of-{WEIGHT_SHARDS:05d}.bin", shard, text=False)
        for i in range(WEIGHT_SHARDS)
    ]
    rng = random.Random("archive-members")
    remaining = total - shard * WEIGHT_SHARDS
    while remaining > 0:
        index = len(members) - WEIGHT_SHARDS
        size = min(remaining, rng.randint(KIB, ARCHIVE_SMALL_MAX))
        text = index % 2 == 0
        suffix = "txt" if text else "bin"
        members.append(_Member(f"data/part-{index // 100:03d}/{index:05d}.{suffix}", size, text))
        remaining -= size
    return members


def _member_chunks(member: _Member, pool: bytes) -> Iterator[bytes]:
    if member.text:
        start = random.Random(member.name).randrange(TEXT_POOL)
        yield pool[start : start + member.size]
    else:
        yield from _weight_chunks(member.name, member.size)


def _write_tar(path: Path, members: list[_Member]) -> None:
    pool = _text_pool("text")
    directories: set[str] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            parent = member.name.rpartition("/")[0]
            parts = parent.split("/")
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    archive.addfile(_tar_info(directory, 0, tarfile.DIRTYPE, 0o755))
            info = _tar_info(member.name, member.size, tarfile.REGTYPE, 0o644)
            reader = io.BufferedReader(_ChunkReader(_member_chunks(member, pool)), CHUNK)
            archive.addfile(info, reader)


def _tar_info(name: str, size: int, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, mode, TAR_MTIME
    return info


def _gzip(source: Path, target: Path) -> None:
    with (
        source.open("rb") as raw,
        target.open("wb") as out,
        gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=out, mtime=0) as gz,
    ):
        shutil.copyfileobj(raw, gz, CHUNK)


def _zstd(source: Path, target: Path) -> None:
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    with source.open("rb") as raw, target.open("wb") as out:
        compressor.copy_stream(raw, out, size=source.stat().st_size)


def _build_archives(folder: Path, sizes: Sizes) -> list[Served]:
    members = _archive_members(sizes.archive_content)
    tar = folder / "archive.tar"
    _write_tar(tar, members)
    packers: dict[str, Callable[[Path, Path], None]] = {"gz": _gzip, "zst": _zstd}
    with ThreadPoolExecutor(len(packers)) as pool:
        jobs = [
            pool.submit(pack, tar, folder / f"archive.tar.{fmt}") for fmt, pack in packers.items()
        ]
        for job in jobs:
            job.result()
    tar.unlink()
    return [
        Served(
            "archive",
            f"archive_{fmt}",
            {"format": fmt},
            (_item("model", folder, f"archive.tar.{fmt}"),),
            len(members),
            sum(member.size for member in members),
        )
        for fmt in packers
    ]


def _build_small(folder: Path, sizes: Sizes) -> list[Served]:
    (folder / "files").mkdir()
    rng = random.Random("small-sizes")
    items = []
    for index in range(sizes.small_files):
        uri = f"files/f{index:04d}.bin"
        size = rng.randint(sizes.small_min, sizes.small_max)
        _write(folder / uri, _random_chunks(uri, size))
        items.append(_item(f"f{index:04d}", folder, uri))
    total = sum(item.size for item in items)
    return [Served("small", "small", {}, tuple(items), len(items), total)]


_BUILDERS: dict[str, tuple[Callable[[Path, Sizes], list[Served]], tuple[str, ...]]] = {
    "big": (_build_big, ("big_file",)),
    "archive": (_build_archives, ("archive_content",)),
    "small": (_build_small, ("small_files", "small_min", "small_max")),
}


def _metadata(artifact_id: str, served: list[Served]) -> dict[str, Any]:
    return {
        "metadataVersion": "0.2",
        "resourceType": "model",
        "application": APPLICATION,
        "groupId": GROUP,
        "artifactId": artifact_id,
        "name": f"benchmark data: {artifact_id}",
        "artifacts": [
            {
                "version": VERSION,
                "snapshot": False,
                "name": artifact.name,
                "properties": artifact.properties,
                "files": {
                    item.key: {
                        "uri": item.uri,
                        **({"sha1Hash": item.sha1} if "sha1" in artifact.digests else {}),
                        **({"sha256Hash": item.sha256} if "sha256" in artifact.digests else {}),
                        "size": item.size,
                    }
                    for item in artifact.items
                },
            }
            for artifact in served
        ],
    }


def _load(built: Path, params: dict[str, Any]) -> list[Served] | None:
    try:
        record = json.loads(built.read_text())
    except (OSError, ValueError):
        return None
    if record.get("params") != params:
        return None
    return [
        Served(
            **{
                **artifact,
                "items": tuple(Item(**item) for item in artifact["items"]),
                "digests": tuple(artifact["digests"]),
            }
        )
        for artifact in record["artifacts"]
    ]


def build(root: Path, sizes: Sizes, artifact_id: str, log: Callable[[str], None]) -> list[Served]:
    """The artifacts of the folder ``artifact_id`` under ``root``, generated unless up to date."""
    builder, fields = _BUILDERS[artifact_id]
    params = {"generator": GENERATOR, **{field: getattr(sizes, field) for field in fields}}
    folder = root / MRL.model(APPLICATION, GROUP, artifact_id).path
    cached = _load(folder / BUILT_FILE, params)
    if cached is not None:
        return cached
    log(f"generating {folder} (once; reused while {params} holds)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    served = builder(folder, sizes)
    (folder / "metadata.json").write_text(json.dumps(_metadata(artifact_id, served), indent=2))
    record = {"params": params, "artifacts": [asdict(artifact) for artifact in served]}
    (folder / BUILT_FILE).write_text(json.dumps(record, indent=2))
    return served


def read_through(paths: list[Path]) -> None:
    """Read files once so that they are in the page cache before anything is timed."""
    sink = bytearray(CHUNK)
    for path in paths:
        with path.open("rb") as source:
            while source.readinto(sink):
                pass
