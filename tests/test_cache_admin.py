"""Cache management (issue 6, point 4): scan, last use, size, atomic removal, prune decisions,
CACHEDIR.TAG. The decisions are tested as tables over made-up entries; the I/O on a real cache
prepared from the example repository."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from repository import MRL, Repository
from repository.cache import CACHEDIR_TAG, MANIFEST_NAME
from repository.cache_admin import (
    CacheEntry,
    cache_usage,
    ensure_cachedir_tag,
    format_size,
    parse_duration,
    parse_size,
    plan_prune,
    remove_entry,
    scan_cache,
    select_entries,
    verify_entry,
)
from repository.locks import owner_tag

EXAMPLES = Path(__file__).parent.parent / "examples" / "mlrepo"
DAY = 86400.0
NOW = 1_800_000_000.0
TINY = "model/cv/image_classification/ai.djl.example/tiny_mlp"
IRIS = "dataset/tabular/ai.djl.example/iris"


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * DAY), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 14 * DAY),
     ("1.5h", 5400), ("7", 7), (" 3D ", 3 * DAY)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("10G", 10 * 1024**3), ("500M", 500 * 1024**2), ("1.5GiB", 3 * 1024**3 // 2),
     ("64k", 65536), ("2TB", 2 * 1024**4), ("123", 123), ("7b", 7)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "d", "30x", "-1d", "ten days", "1d2h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "G", "10Q", "-1G", "1e3", "ten"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 1536, 5 * 1024**3)] == [
        "0B",
        "1023B",
        "1.0K",
        "1.5K",
        "5.0G",
    ]


# -- prune decisions (pure) ---------------------------------------------------------------------


def entry(
    label: str,
    *,
    kind: str = "artifact",
    version: str | None = "1.0",
    age: float = 0.0,
    size: int = 10,
    mrl: str = "model/cv/g/a",
    repo: str = "r1",
    in_use: bool = False,
) -> CacheEntry:
    """An entry named ``label`` (its path), last used ``age`` days before NOW."""
    return CacheEntry(
        Path("/cache") / label,
        kind,  # type: ignore[arg-type]
        size,
        NOW - age * DAY,
        repository_key=repo,
        repository=f"file:///{repo}/",
        mrl=mrl if kind == "artifact" else None,
        version=version if kind == "artifact" else None,
        name=label,
        in_use=in_use,
    )


LEFTOVERS = [
    entry("work-old", kind="work", age=2),
    entry("work-new", kind="work", age=0.5),
    entry("work-live", kind="work", age=3, in_use=True),
    entry("download-old", kind="download", age=1.5),
    entry("download-live", kind="download", age=9, in_use=True),
    entry("incomplete-old", kind="incomplete", age=2),
]
VERSIONS = [
    entry("v1.0", version="1.0", age=40),
    entry("v1.9", version="1.9", age=20),
    entry("v1.10-a", version="1.10", age=35),
    entry("v1.10-b", version="1.10.0", age=1),  # the same version as 1.10 (Maven), another name
    entry("v1.10-rc1", version="1.10-rc1", age=50),
    entry("none", version=None, age=60),
    entry("other-mrl", version="0.1", age=45, mrl="dataset/x/g/b"),
    entry("other-repo", version="0.9", age=45, repo="r2"),
]

OLD_LEFTOVERS = ["work-old", "download-old", "incomplete-old"]
PRUNE_CASES: list[tuple[str, list[CacheEntry], dict[str, float], list[str]]] = [
    (
        "no options: leftovers inactive for a day, not owned",
        LEFTOVERS + VERSIONS,
        {},
        OLD_LEFTOVERS,
    ),
    ("leftovers go whatever the options", LEFTOVERS, {"keep_latest": 1}, OLD_LEFTOVERS),
    (
        "older than 30 days, least recently used first",
        VERSIONS,
        {"older_than": 30 * DAY},
        ["none", "v1.10-rc1", "other-mrl", "other-repo", "v1.0", "v1.10-a"],
    ),
    (
        "keep the latest version per MRL and repository (1.10 == 1.10.0 > 1.9; no version last)",
        VERSIONS,
        {"keep_latest": 1},
        ["none", "v1.10-rc1", "v1.0", "v1.9"],
    ),
    ("keep the 3 latest (1.10 > 1.10-rc1 > 1.9)", VERSIONS, {"keep_latest": 3}, ["none", "v1.0"]),
    (
        "old AND superseded: both rules must match",
        VERSIONS,
        {"older_than": 30 * DAY, "keep_latest": 2},
        ["none", "v1.0"],
    ),
    (
        "max size: least recently used first until it fits",
        VERSIONS,
        {"max_size": 40},
        ["none", "v1.10-rc1", "other-mrl", "other-repo"],
    ),
    (
        "max size after the rules: what keep-latest keeps goes last",
        VERSIONS,
        {"older_than": 30 * DAY, "keep_latest": 1, "max_size": 35},
        ["none", "v1.10-rc1", "v1.0", "v1.9", "other-mrl"],
    ),
    ("max size met already", VERSIONS, {"max_size": 10_000}, []),
]


@pytest.mark.parametrize(
    ("entries", "options", "expected"),
    [case[1:] for case in PRUNE_CASES],
    ids=[case[0] for case in PRUNE_CASES],
)
def test_plan_prune(
    entries: list[CacheEntry], options: dict[str, float], expected: list[str]
) -> None:
    plan = plan_prune(entries, NOW, **options)  # type: ignore[arg-type]
    assert [e.path.name for e in plan] == expected


def test_leftovers_count_in_the_size_budget() -> None:
    entries = [entry("young-work", kind="work", size=100), entry("a", size=10, age=1)]
    assert [e.path.name for e in plan_prune(entries, NOW, max_size=105)] == ["a"]


def test_select_entries_by_mrl_and_version_range() -> None:
    chosen = select_entries(VERSIONS + LEFTOVERS, "model/cv/g/a", "[1.5,)")
    assert sorted(e.path.name for e in chosen) == ["v1.10-a", "v1.10-b", "v1.10-rc1", "v1.9"]
    assert [e.path.name for e in select_entries(VERSIONS, "dataset/x/g/b")] == ["other-mrl"]
    assert len(select_entries(VERSIONS + LEFTOVERS)) == len(VERSIONS)


# -- the real cache -----------------------------------------------------------------------------


@pytest.fixture
def prepared(cache_dir: Path) -> Repository:
    """The example repository with iris 1.0 and tiny_mlp 0.0.1 and 0.0.2 (layers=4) prepared."""
    repo = Repository.new_instance("zoo", EXAMPLES, cache_dir=cache_dir)
    for mrl, version, filter in (
        (MRL.parse(IRIS), None, {}),
        (MRL.parse(TINY), "0.0.1", {"layers": "4"}),
        (MRL.parse(TINY), "0.0.2", {"layers": "4"}),
    ):
        artifact = repo.resolve(mrl, version, filter)
        assert artifact is not None
        repo.prepare(artifact, progress=False)
    return repo


def artifacts_of(entries: list[CacheEntry]) -> dict[tuple[str | None, str | None], CacheEntry]:
    return {(e.mrl, e.version): e for e in entries if e.kind == "artifact"}


def test_scan_lists_prepared_artifacts_with_size_and_origin(
    prepared: Repository, cache_dir: Path
) -> None:
    entries = scan_cache(cache_dir)
    found = artifacts_of(entries)
    assert sorted(found) == [(IRIS, "1.0"), (TINY, "0.0.1"), (TINY, "0.0.2")]
    tiny = found[(TINY, "0.0.2")]
    assert tiny.complete and tiny.name == "tiny_mlp_4"
    assert tiny.repository == prepared.base_uri
    assert tiny.repository_key == prepared.cache_directory.name
    assert tiny.path.name == "tiny_mlp_4" and (tiny.path / MANIFEST_NAME).is_file()
    apparent = sum(p.stat().st_size for p in tiny.path.rglob("*") if p.is_file())
    assert tiny.size >= apparent > 16_000  # bytes on disk: whole blocks
    assert all(e.kind == "artifact" for e in entries)
    assert scan_cache(cache_dir / "missing") == []


def test_scan_tells_leftovers_and_incomplete_folders_apart(
    prepared: Repository, cache_dir: Path
) -> None:
    entries = artifacts_of(scan_cache(cache_dir))
    tiny1, tiny2 = entries[(TINY, "0.0.1")].path, entries[(TINY, "0.0.2")].path
    (tiny1 / MANIFEST_NAME).unlink()  # a damaged artifact: no marker any more
    (entries[(IRIS, "1.0")].path / MANIFEST_NAME).write_text("{not json")  # unreadable marker
    (tiny2.parent / "stray.txt").write_text("?")  # a stray file beside a complete artifact
    dead = tiny2.parent / f".tiny_mlp_4.{owner_tag().split('+')[0]}+99999999.abc123.part"
    live = tiny2.parent / f".tiny_mlp_4.{owner_tag()}.def456.part"
    for work in (dead, live):
        (work / "m").mkdir(parents=True)
        (work / "m" / "half.bin").write_bytes(b"x" * 100)
    downloads = cache_dir / ".tmp" / "downloads"
    (downloads / "0123abcd" / "free.1234abcd").mkdir(parents=True)
    (downloads / "0123abcd" / "free.1234abcd" / "data").write_bytes(b"partial")
    (downloads / "4567cdef" / f"{owner_tag()}.5678cdef").mkdir(parents=True)
    meta_tmp = prepared.cache_directory / "metadata" / ".metadata.json.xyz.part"
    meta_tmp.parent.mkdir(parents=True, exist_ok=True)
    meta_tmp.write_text("{")

    kinds = {(e.kind, e.path.name, e.in_use) for e in scan_cache(cache_dir)}
    assert kinds == {
        ("incomplete", tiny1.name, False),
        ("incomplete", "_", False),
        ("artifact", tiny2.name, False),
        ("work", dead.name, False),
        ("work", live.name, True),
        ("work", meta_tmp.name, False),
        ("download", "free.1234abcd", False),
        ("download", f"{owner_tag()}.5678cdef", True),
    }


def set_times(path: Path, atime: float, mtime: float) -> None:
    os.utime(path, (atime, mtime))


def test_last_use_is_the_markers_access_time_or_its_modification_time(
    prepared: Repository, cache_dir: Path
) -> None:
    marker = artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")].path / MANIFEST_NAME
    set_times(marker, NOW, NOW - 10 * DAY)
    assert artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")].last_used == NOW
    set_times(marker, NOW - 20 * DAY, NOW - 10 * DAY)  # noatime: the access time lags
    assert artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")].last_used == NOW - 10 * DAY


def test_listing_and_verifying_do_not_count_as_a_use(prepared: Repository, cache_dir: Path) -> None:
    entry_ = artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")]
    marker = entry_.path / MANIFEST_NAME
    old = time.time() - 10 * DAY
    set_times(marker, old - DAY, old)  # under relatime, a plain read would advance the atime
    scan_cache(cache_dir)
    assert verify_entry(entry_).ok
    assert marker.stat().st_atime == pytest.approx(old - DAY)
    assert artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")].last_used == pytest.approx(old)


def atime_advances(directory: Path) -> bool:
    probe = directory / "atime-probe"
    probe.write_bytes(b"x")
    set_times(probe, 1_000_000, 2_000_000)
    probe.read_bytes()
    return probe.stat().st_atime > 1_000_000


def test_a_cache_hit_advances_last_use_without_writing(
    prepared: Repository, cache_dir: Path, tmp_path: Path
) -> None:
    if not atime_advances(tmp_path):
        pytest.skip("this file system does not record access times (noatime)")
    entry_ = artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")]
    marker = entry_.path / MANIFEST_NAME
    old = time.time() - 10 * DAY
    set_times(marker, old, old)
    artifact = prepared.resolve(MRL.parse(IRIS))
    assert artifact is not None
    prepared.prepare(artifact, progress=False)  # a hit: reads the marker only
    assert marker.stat().st_mtime == pytest.approx(old)
    assert artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")].last_used > time.time() - 60


def test_remove_renames_aside_before_deleting(
    prepared: Repository, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import repository.install

    target = artifacts_of(scan_cache(cache_dir))[(TINY, "0.0.2")]
    deleted: list[tuple[Path, bool, list[str]]] = []
    real: Callable[[Path], None] = repository.install.remove_tree

    def spy(path: Path) -> None:
        moved = path / "old"
        deleted.append((path, target.path.exists(), sorted(os.listdir(moved))))
        real(path)

    monkeypatch.setattr(repository.install, "remove_tree", spy)
    assert remove_entry(target, cache_dir)
    ((trash, still_there, content),) = deleted
    assert trash.parent == target.path.parent and trash.name.endswith(".trash")
    assert not still_there  # the whole folder had left its place before anything was deleted
    assert MANIFEST_NAME in content and "tiny_mlp_4" in content
    assert not target.path.exists() and not trash.exists()
    assert not remove_entry(target, cache_dir)  # gone already
    assert sorted(artifacts_of(scan_cache(cache_dir))) == [(IRIS, "1.0"), (TINY, "0.0.1")]
    artifact = prepared.resolve(MRL.parse(TINY), "0.0.2", {"layers": "4"})
    assert artifact is not None and not prepared.is_prepared(artifact)


def test_usage_per_repository(prepared: Repository, cache_dir: Path) -> None:
    entries = scan_cache(cache_dir)
    usage = cache_usage(cache_dir, entries)
    (repo,) = usage.repositories
    assert repo.key == prepared.cache_directory.name
    assert repo.repository == prepared.base_uri and repo.artifacts == 3
    assert repo.size >= sum(e.size for e in entries)
    assert usage.total >= repo.size + sum(usage.other.values())
    assert cache_usage(cache_dir / "missing").total == 0


def test_cachedir_tag_is_written_once_atomically(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    assert ensure_cachedir_tag(root)
    tag = root / "CACHEDIR.TAG"
    assert tag.read_text() == CACHEDIR_TAG
    assert tag.read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    assert not ensure_cachedir_tag(root)
    tag.write_text(CACHEDIR_TAG + "# kept\n")
    assert not ensure_cachedir_tag(root)
    assert tag.read_text().endswith("# kept\n")
    assert sorted(os.listdir(root)) == ["CACHEDIR.TAG"]  # no temporary file left


def test_verify_entry_reports_damage(prepared: Repository, cache_dir: Path) -> None:
    entry_ = artifacts_of(scan_cache(cache_dir))[(TINY, "0.0.1")]
    assert verify_entry(entry_).ok
    victim = next(p for p in sorted(entry_.path.rglob("*.params")))
    victim.write_bytes(b"0" * victim.stat().st_size)
    report = verify_entry(entry_)
    assert not report.ok and report.changed == [victim.relative_to(entry_.path).as_posix()]
    shutil.rmtree(entry_.path)
    assert not verify_entry(entry_).ok


def test_partial_downloads_of_the_transfer_layer_are_found(cache_dir: Path) -> None:
    from repository.transfer import PartialDownloads

    store = PartialDownloads(cache_dir / ".tmp" / "downloads")
    partial = store.claim("0123456789abcdef")
    partial.data.write_bytes(b"half")
    (found,) = scan_cache(cache_dir)
    assert (found.kind, found.path, found.in_use) == ("download", partial.folder, True)
    store.release(partial)
    (found,) = scan_cache(cache_dir)
    assert found.kind == "download" and not found.in_use and found.path.name.startswith("free.")
    assert plan_prune([found], found.last_used + 2 * DAY) == [found]
    assert remove_entry(found, cache_dir)
    assert scan_cache(cache_dir) == []


def test_work_directories_of_the_installer_are_found(prepared: Repository, cache_dir: Path) -> None:
    from repository.install import work_directory

    target = artifacts_of(scan_cache(cache_dir))[(IRIS, "1.0")].path
    work = work_directory(target)
    (work / "half.csv").write_text("sepal")
    found = [e for e in scan_cache(cache_dir) if e.kind == "work"]
    assert [(e.path, e.in_use) for e in found] == [(work, True)]
    assert plan_prune(found, time.time() + 9 * DAY) == []  # its owner (this process) lives
