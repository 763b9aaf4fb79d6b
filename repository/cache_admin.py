"""Look after the cache: scan it, size it, tell when things were last used, remove and prune.

The decisions are pure functions over :class:`CacheEntry` values (:func:`plan_prune`,
:func:`select_entries`, :func:`parse_duration`, :func:`parse_size`), apart from the I/O that
finds the entries (:func:`scan_cache`, :func:`cache_usage`) and removes them
(:func:`remove_entry`).

What the cache holds (see :mod:`repository.cache` for the layout):

- **artifact**: a resource directory with a readable completion marker
  (``.repository-manifest.json``); complete and trusted.
- **incomplete**: a folder where artifacts live that holds files but no readable marker (a
  damaged or foreign directory); never trusted, a prepare replaces it.
- **work**: ``.<name>.<owner>.<random>.part`` and ``.trash`` folders beside resource
  directories (installs or removals in progress, or left by a crash), and temporary files of
  metadata copies. Owned by a live process (see :mod:`repository.locks`), they are in use.
- **download**: a partial download, ``.tmp/downloads/<key>/<owner>.<random>/`` (or
  ``free.<random>`` when released for a later resume).

**Last use** is read without any write on cache hits: a cache hit reads only the artifact's
marker file, so the marker's access time is the last use, or its modification time (the
install) when that is later (file systems mounted ``noatime``). Under Linux's default
``relatime`` the access time advances at most once a day, so last use is exact to a day. Reading
markers here (``cache ls``, ``cache verify``) leaves their access time as it was.

Nothing here imports :mod:`repository.install` at import time, so that the installer can call
:func:`ensure_cachedir_tag`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from repository.cache import CACHEDIR_TAG, MANIFEST_NAME
from repository.manifest import Manifest

if TYPE_CHECKING:
    from repository.verify import VerifyReport
    from repository.version import Version

__all__ = [
    "CACHEDIR_TAG_NAME",
    "LEFTOVER_AGE",
    "CacheEntry",
    "CacheUsage",
    "RepositoryUsage",
    "atime_kept",
    "cache_usage",
    "ensure_cachedir_tag",
    "format_size",
    "last_use",
    "latest_versions",
    "parse_duration",
    "parse_size",
    "plan_prune",
    "relative_to",
    "remove_entry",
    "scan_cache",
    "select_entries",
    "tree_stats",
    "verify_entry",
]

logger = logging.getLogger(__name__)

CACHEDIR_TAG_NAME = "CACHEDIR.TAG"
#: Leftovers (work folders, partial downloads, incomplete folders) inactive for longer than
#: this are abandoned, and pruned.
LEFTOVER_AGE = 24 * 3600.0
_WORK_SUFFIXES = (".part", ".trash")  # repository.install's work and trash folders

EntryKind = Literal["artifact", "incomplete", "work", "download"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One thing in the cache that can be listed and removed on its own.

    :param path: the folder (or, for a spool, the file).
    :param kind: ``artifact`` (complete), ``incomplete``, ``work`` or ``download``.
    :param size: bytes on disk (allocated blocks; hard links counted once).
    :param last_used: seconds since the epoch: the last use of an artifact, the last
        activity (newest modification inside) of anything else.
    :param repository_key: the folder under ``repos/`` ("" for downloads).
    :param repository: the repository's URI, from the marker (artifacts only).
    :param mrl: ``type/application/group/artifact`` (artifacts only).
    :param version: the artifact's version (artifacts only; None when it has none).
    :param name: the artifact's name (artifacts only; None when it has none).
    :param in_use: a live process on this host owns it (partial downloads).
    """

    path: Path
    kind: EntryKind
    size: int
    last_used: float
    repository_key: str = ""
    repository: str | None = None
    mrl: str | None = None
    version: str | None = None
    name: str | None = None
    in_use: bool = False

    @property
    def complete(self) -> bool:
        """True for a complete, trusted artifact."""
        return self.kind == "artifact"

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """A JSON-ready description (``path`` absolute; ``relative`` to ``root`` when given)."""
        data: dict[str, Any] = {
            "path": str(self.path),
            "kind": self.kind,
            "complete": self.complete,
            "size": self.size,
            "last_used": datetime.fromtimestamp(self.last_used, UTC).isoformat(),
            "repository_key": self.repository_key,
            "repository": self.repository,
            "mrl": self.mrl,
            "version": self.version,
            "name": self.name,
        }
        if root is not None:
            data["relative"] = relative_to(self.path, root)
        return data


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    """The disk use of one repository's folder (``repos/<key>``)."""

    key: str
    repository: str | None
    size: int
    artifacts: int


@dataclass(slots=True)
class CacheUsage:
    """What :func:`cache_usage` found: the total, per repository, and the rest by folder."""

    root: Path
    total: int = 0
    repositories: list[RepositoryUsage] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX), or ``path`` itself when it is not below it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# -- parsing and formatting (pure) --------------------------------------------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgtp]?)(i?b)?\s*", re.IGNORECASE)
_SIZE_UNITS = "bkmgtp"


def _number_and_unit(pattern: re.Pattern[str], text: str, what: str) -> tuple[float, str]:
    match = pattern.fullmatch(text)
    if not match:
        raise ValueError(f"not {what}: {text!r}")
    return float(match[1]), match[2].lower()


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (or plain seconds).

    :raises ValueError: when it does not parse.

    >>> parse_duration("30d"), parse_duration("12h"), parse_duration("1.5m"), parse_duration("7")
    (2592000.0, 43200.0, 90.0, 7.0)
    """
    number, unit = _number_and_unit(_DURATION, text, "a duration (like 30d, 12h, 90m)")
    return number * _DURATION_UNITS[unit]


def parse_size(text: str) -> int:
    """Bytes in a size such as ``10G``, ``500M``, ``1.5GiB``, ``64k`` (powers of 1024) or ``123``.

    :raises ValueError: when it does not parse.

    >>> parse_size("10G"), parse_size("1.5KiB"), parse_size("500mb"), parse_size("123")
    (10737418240, 1536, 524288000, 123)
    """
    number, unit = _number_and_unit(_SIZE, text, "a size (like 10G, 500M, 1.5GiB)")
    return int(number * 1024 ** _SIZE_UNITS.index(unit or "b"))


def format_size(size: int) -> str:
    """A size for people, in powers of 1024.

    >>> format_size(0), format_size(1023), format_size(1536), format_size(10 * 1024**3)
    ('0B', '1023B', '1.5K', '10.0G')
    """
    value = float(size)
    for unit in _SIZE_UNITS.upper()[:-1]:
        if value < 1024:
            return f"{int(value)}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}P"


# -- decisions (pure) ---------------------------------------------------------------------------


def _parsed_version(text: str | None) -> Version | None:
    """The version of an artifact, or None when it has none (or one that does not parse)."""
    from repository.errors import InvalidVersionError
    from repository.version import Version

    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersionError:
        return None


def latest_versions(entries: Iterable[CacheEntry], keep: int) -> set[Path]:
    """The artifacts among the ``keep`` highest versions (Maven order) of each repository and
    MRL. Every artifact of a kept version is kept, whatever its name; no version ranks lowest."""
    groups: dict[tuple[str, str | None], list[CacheEntry]] = {}
    for entry in entries:
        if entry.kind == "artifact":
            groups.setdefault((entry.repository_key, entry.mrl), []).append(entry)
    kept: set[Path] = set()
    for members in groups.values():
        versions = {_parsed_version(entry.version) for entry in members}
        ranked: list[Version | None] = [
            *sorted((v for v in versions if v is not None), reverse=True)
        ]
        if None in versions:
            ranked.append(None)
        top = ranked[:keep]
        kept.update(entry.path for entry in members if _parsed_version(entry.version) in top)
    return kept


def plan_prune(
    entries: Sequence[CacheEntry],
    now: float,
    older_than: float | None = None,
    max_size: int | None = None,
    keep_latest: int | None = None,
    *,
    leftover_age: float = LEFTOVER_AGE,
) -> list[CacheEntry]:
    """The entries a prune removes, in the order it removes them.

    - Leftovers (``incomplete``, ``work``, ``download``) inactive for more than
      ``leftover_age`` seconds go, unless a live process owns them; always, whatever the options.
    - Artifacts go when they match **every** rule given: ``older_than`` (unused for more than
      that many seconds) and ``keep_latest`` (not among the N highest versions of their MRL in
      their repository). With neither rule, no artifact goes on these grounds.
    - Then, with ``max_size``, the least recently used artifacts go until all that remains
      totals at most ``max_size`` bytes; those kept by ``keep_latest`` go last.
    """
    removed: list[CacheEntry] = []
    for entry in entries:
        if entry.kind != "artifact" and not entry.in_use and now - entry.last_used > leftover_age:
            removed.append(entry)
    latest = latest_versions(entries, keep_latest) if keep_latest is not None else set()
    artifacts = sorted(
        (entry for entry in entries if entry.kind == "artifact"),
        key=lambda entry: (entry.last_used, str(entry.path)),
    )
    if older_than is not None or keep_latest is not None:
        for entry in artifacts:
            old = older_than is None or now - entry.last_used > older_than
            superseded = keep_latest is None or entry.path not in latest
            if old and superseded:
                removed.append(entry)
    if max_size is not None:
        gone = {entry.path for entry in removed}
        total = sum(entry.size for entry in entries if entry.path not in gone)
        candidates = [entry for entry in artifacts if entry.path not in gone]
        candidates.sort(key=lambda entry: entry.path in latest)  # stable: LRU within each
        for entry in candidates:
            if total <= max_size:
                break
            removed.append(entry)
            total -= entry.size
    return removed


def select_entries(
    entries: Iterable[CacheEntry], mrl: str | None = None, version: str | None = None
) -> list[CacheEntry]:
    """The artifacts of ``mrl`` (any, when None) whose version is in the range ``version``
    (a range as :class:`~repository.version.VersionRange` parses it; any, when None).

    :raises InvalidVersionError: when ``version`` does not parse.
    """
    from repository.version import Version, VersionRange

    wanted = VersionRange.parse(version)
    chosen = []
    for entry in entries:
        if entry.kind != "artifact" or (mrl is not None and entry.mrl != mrl):
            continue
        if version is not None and (
            entry.version is None or not wanted.contains(Version(entry.version))
        ):
            continue
        chosen.append(entry)
    return chosen


# -- reading the cache --------------------------------------------------------------------------


def _is_work_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(_WORK_SUFFIXES)


def tree_stats(path: Path) -> tuple[int, float]:
    """Bytes on disk below ``path`` (itself included; links not followed; hard links counted
    once) and the newest modification time found."""
    seen: set[tuple[int, int]] = set()
    size = 0
    newest = 0.0
    pending = [os.fspath(path)]
    try:
        first = os.lstat(pending[0])
    except OSError:
        return 0, 0.0
    stats: list[os.stat_result] = [first]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as children:
                for child in children:
                    with contextlib.suppress(OSError):
                        stats.append(child.stat(follow_symlinks=False))
                        if child.is_dir(follow_symlinks=False):
                            pending.append(child.path)
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            pass
    for stat in stats:
        newest = max(newest, stat.st_mtime)
        if stat.st_nlink > 1 and not _is_dir_stat(stat):
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
        blocks = getattr(stat, "st_blocks", None)
        size += blocks * 512 if blocks is not None else stat.st_size
    return size, newest


def _is_dir_stat(stat: os.stat_result) -> bool:
    import stat as stat_module

    return stat_module.S_ISDIR(stat.st_mode)


def _read_noatime(path: Path) -> bytes:
    """Read a file without advancing its access time (O_NOATIME where allowed)."""
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
    try:
        handle = os.open(path, flags)
    except PermissionError:  # O_NOATIME needs the file's owner
        handle = os.open(path, os.O_RDONLY)
    with os.fdopen(handle, "rb") as file:
        return file.read()


@contextlib.contextmanager
def atime_kept(path: Path) -> Iterator[os.stat_result | None]:
    """Put back ``path``'s access time after the block, so that reading it is not a "use"."""
    try:
        before: os.stat_result | None = os.stat(path)
    except OSError:
        before = None
    try:
        yield before
    finally:
        if before is not None:
            with contextlib.suppress(OSError):
                after = os.stat(path)
                if (
                    after.st_atime_ns != before.st_atime_ns
                    and after.st_mtime_ns == before.st_mtime_ns
                ):
                    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def last_use(stat: os.stat_result) -> float:
    """The last use of an artifact from its marker's stat: access time, or the modification
    time when later (no atime on the file system)."""
    return max(stat.st_atime, stat.st_mtime)


def _artifact_entry(directory: Path, key: str) -> CacheEntry:
    marker = directory / MANIFEST_NAME
    manifest: Manifest | None = None
    with atime_kept(marker) as stat, contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        manifest = Manifest.from_json(_read_noatime(marker))
    size, newest = tree_stats(directory)
    if manifest is None or stat is None:
        return CacheEntry(directory, "incomplete", size, newest, repository_key=key)
    return CacheEntry(
        directory,
        "artifact",
        size,
        last_use(stat),
        repository_key=key,
        repository=manifest.repository,
        mrl=manifest.mrl,
        version=manifest.version,
        name=manifest.name,
    )


def _leftover(path: Path, kind: EntryKind, key: str, in_use: bool = False) -> CacheEntry:
    size, newest = tree_stats(path)
    return CacheEntry(path, kind, size, newest, repository_key=key, in_use=in_use)


def _walk(directory: Path, key: str, top: bool) -> list[CacheEntry]:
    """The entries below a repository's ``artifacts/`` folder: a folder with a marker is an
    artifact; work folders are work; a folder holding files but no marker, with neither
    artifacts nor work below it, is one incomplete entry."""
    try:
        children = sorted(os.scandir(directory), key=lambda child: child.name)
    except OSError:
        return []
    if any(child.name == MANIFEST_NAME for child in children):
        return [_artifact_entry(directory, key)]
    found: list[CacheEntry] = []
    has_files = False
    for child in children:
        if _is_work_name(child.name):
            found.append(_work_entry(Path(child.path), key))
        elif child.is_dir(follow_symlinks=False):
            found.extend(_walk(Path(child.path), key, top=False))
        else:
            has_files = True
    if has_files and not top and all(entry.kind == "incomplete" for entry in found):
        return [_leftover(directory, "incomplete", key)]
    return found


def _work_entry(path: Path, key: str) -> CacheEntry:
    """A work or trash folder ``.<name>.<owner tag>.<random>.part``, in use while its owner
    lives."""
    stem = path.name[1:].rsplit(".", 1)[0]
    parts = stem.rsplit(".", 2)
    tag = parts[1] if len(parts) == 3 else ""
    return _leftover(path, "work", key, in_use=_owned_by_live_process(tag, path))


def _work_files(directory: Path, key: str) -> Iterator[CacheEntry]:
    """Abandoned temporary files below a repository's ``metadata/`` folder."""
    for folder, subfolders, files in os.walk(directory):
        subfolders.sort()
        for name in sorted(files):
            if _is_work_name(name):
                yield _work_entry(Path(folder, name), key)


def _owned_by_live_process(tag: str, path: Path) -> bool:
    """True when an owner tag (``<host>+<pid>``) names a live process (see
    :mod:`repository.locks`); False for ``free`` and untagged names."""
    from repository.locks import is_abandoned

    return "+" in tag and not is_abandoned(tag, path)


def _partial_downloads(downloads: Path) -> Iterator[CacheEntry]:
    """The partial downloads: ``<key>/<owner>.<random>/`` or ``<key>/free.<random>/`` folders
    (see :class:`repository.transfer.PartialDownloads`), and trash left beside them."""
    try:
        keys = sorted(downloads.iterdir())
    except OSError:
        return
    for key in keys:
        try:
            partials = sorted(key.iterdir())
        except OSError:
            continue
        for partial in partials:
            if _is_work_name(partial.name):
                yield _leftover(partial, "work", "")
            else:
                owner = partial.name.split(".")[0]
                in_use = _owned_by_live_process(owner, partial)
                yield _leftover(partial, "download", "", in_use=in_use)


def scan_cache(root: Path) -> list[CacheEntry]:
    """Every artifact, incomplete folder, work folder and partial download under ``root``.

    Reads each artifact's marker (keeping its access time) and stats every file; opens no
    artifact file. A missing root is an empty cache.
    """
    entries: list[CacheEntry] = []
    repos = root / "repos"
    with contextlib.suppress(OSError):
        for repo in sorted(repos.iterdir()):
            if repo.is_dir() and not repo.is_symlink():
                entries.extend(_walk(repo / "artifacts", repo.name, top=True))
                entries.extend(_work_files(repo / "metadata", repo.name))
    entries.extend(_partial_downloads(root / ".tmp" / "downloads"))
    return entries


def cache_usage(root: Path, entries: Sequence[CacheEntry] | None = None) -> CacheUsage:
    """Disk use of the cache: the total, each repository's folder, and the other top folders.

    :param entries: a scan of ``root``, to name each repository (scanned when None).
    """
    usage = CacheUsage(root)
    if entries is None:
        entries = scan_cache(root)
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.kind == "artifact":
            counts[entry.repository_key] = counts.get(entry.repository_key, 0) + 1
            if entry.repository:
                names.setdefault(entry.repository_key, entry.repository)
    usage.total = tree_stats(root)[0]
    with contextlib.suppress(OSError):
        for top in sorted(root.iterdir()):
            if top.name != "repos":
                usage.other[top.name] = tree_stats(top)[0]
                continue
            for repo in sorted(top.iterdir()):
                usage.repositories.append(
                    RepositoryUsage(
                        repo.name,
                        names.get(repo.name),
                        tree_stats(repo)[0],
                        counts.get(repo.name, 0),
                    )
                )
    return usage


# -- writing the cache --------------------------------------------------------------------------


def ensure_cachedir_tag(root: Path) -> bool:
    """Write ``<root>/CACHEDIR.TAG`` (so backup tools skip the cache) if it is missing.

    Written atomically (a temporary file renamed into place); creates ``root``. Returns True
    when it wrote the tag.

    :raises OSError: when it cannot be written.
    """
    tag = root / CACHEDIR_TAG_NAME
    if tag.is_file():
        return False
    root.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{CACHEDIR_TAG_NAME}.", suffix=".part", dir=root)
    try:
        with os.fdopen(handle, "w", encoding="ascii") as file:
            file.write(CACHEDIR_TAG)
        os.replace(temporary, tag)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True


def remove_entry(entry: CacheEntry, root: Path, *, lock_timeout: float = 60.0) -> bool:
    """Remove an entry atomically: a folder is renamed to a ``.trash`` sibling first, then
    deleted, so a concurrent reader sees the whole folder or nothing, never a part. An artifact
    is removed under its lock (see :mod:`repository.locks`), so a prepare of it in progress
    finishes first. Returns False when the entry was gone already.

    A crash while deleting leaves a ``.trash`` folder, which a later prune removes.

    :raises OSError: when it cannot be removed (permissions, a read-only cache).
    """
    from repository.install import remove_directory, remove_tree
    from repository.locks import work_lock

    path = entry.path
    if not path.is_dir() or path.is_symlink():
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
    if entry.kind == "work":  # never read by anyone: no need to move it aside first
        remove_tree(path)
        return True
    if entry.kind == "download":
        return remove_directory(path)
    with work_lock(root, str(path), timeout=lock_timeout):
        removed = remove_directory(path)
    logger.info("Removed %s", path)
    return removed


def verify_entry(entry: CacheEntry) -> VerifyReport:
    """Re-hash an artifact against its marker (reading the marker is not counted as a use)."""
    from repository.verify import verify_directory

    with atime_kept(entry.path / MANIFEST_NAME):
        return verify_directory(entry.path)
