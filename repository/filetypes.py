"""What kind of file an item is, judged from its name, as DJL's ``FilenameUtils`` does.

Unlike DJL, suffixes are matched case-insensitively both for the type and for the name part,
and zstd (``.zst``, ``.tar.zst``, ``.tzst``) is known. Query strings and fragments of URLs are
ignored. Pure functions, no I/O.
"""

from __future__ import annotations

import enum
import functools
import posixpath
from urllib.parse import unquote, urlsplit

__all__ = ["ArchiveFormat", "file_type", "last_segment", "name_part"]


class ArchiveFormat(enum.StrEnum):
    """How the bytes of an item are packed.

    The values are DJL's extension names (``zip``, ``tgz``, ``tar``, ``gzip``), plus ``tzst``
    and ``zstd`` for zstandard, and ``""`` for a plain file.
    """

    ZIP = "zip"
    TAR = "tar"
    TGZ = "tgz"
    TZST = "tzst"
    GZIP = "gzip"
    ZSTD = "zstd"
    PLAIN = ""

    @property
    def is_archive(self) -> bool:
        """True for formats that hold a tree of files (zip and the tar family)."""
        return self in _ARCHIVES


_ARCHIVES = frozenset({ArchiveFormat.ZIP, ArchiveFormat.TAR, ArchiveFormat.TGZ, ArchiveFormat.TZST})

# Longest suffix first: ".tar.gz" must win over ".gz".
_SUFFIXES: tuple[tuple[str, ArchiveFormat], ...] = (
    (".tar.gz", ArchiveFormat.TGZ),
    (".tar.z", ArchiveFormat.TGZ),
    (".tar.zst", ArchiveFormat.TZST),
    (".tgz", ArchiveFormat.TGZ),
    (".tzst", ArchiveFormat.TZST),
    (".tar", ArchiveFormat.TAR),
    (".zip", ArchiveFormat.ZIP),
    (".mar", ArchiveFormat.ZIP),
    (".gz", ArchiveFormat.GZIP),
    (".z", ArchiveFormat.GZIP),
    (".zst", ArchiveFormat.ZSTD),
)


@functools.lru_cache(maxsize=4096)  # a pure function, asked several times per item
def last_segment(uri: str) -> str:
    """The last ``/`` segment of a URI's path, percent-decoded, without query or fragment.

    >>> last_segment("https://h/a/b/model.tar.gz?x=1")
    'model.tar.gz'
    >>> last_segment("0.0.1/traced.pt.gz")
    'traced.pt.gz'
    """
    is_url = "://" in uri or uri.startswith("file:")
    path = urlsplit(uri).path if is_url else uri.split("?", maxsplit=1)[0]
    return posixpath.basename(unquote(path).rstrip("/"))


def _match(name: str) -> tuple[str, ArchiveFormat]:
    lowered = name.lower()
    for suffix, fmt in _SUFFIXES:
        if lowered.endswith(suffix):
            return suffix, fmt
    return "", ArchiveFormat.PLAIN


@functools.lru_cache(maxsize=4096)
def file_type(uri: str) -> ArchiveFormat:
    """The packing of the file a URI or file name points at.

    >>> file_type("0.0.1/resnet101_v1.tar.gz")
    <ArchiveFormat.TGZ: 'tgz'>
    >>> file_type("x.TZST")
    <ArchiveFormat.TZST: 'tzst'>
    >>> file_type("synset.txt")
    <ArchiveFormat.PLAIN: ''>
    """
    return _match(last_segment(uri))[1]


@functools.lru_cache(maxsize=4096)
def name_part(uri: str) -> str:
    """The last segment of a URI without its packing suffix: DJL's default item name.

    >>> name_part("0.0.1/traced_resnet50.pt.gz")
    'traced_resnet50.pt'
    >>> name_part("x.TGZ")
    'x'
    >>> name_part("cooking.ftz")
    'cooking.ftz'
    """
    name = last_segment(uri)
    suffix, _ = _match(name)
    return name[: len(name) - len(suffix)] if suffix else name
