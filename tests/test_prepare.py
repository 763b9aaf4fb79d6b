"""prepare(): verified, extracted by DJL's rules, atomic, and a cheap no-op once done."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import xxhash

from repository import (
    MRL,
    ChecksumMismatchError,
    DownloadError,
    ExtractionError,
    ExtractionLimits,
    LocalRepository,
    MetadataError,
    Repository,
    UnsafeArchiveError,
)
from repository.cache import MANIFEST_NAME
from tests.conftest import RepoBuilder, compress, item_entry, leftovers, tar_bytes, tree, zip_bytes

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")

WEIGHTS = hashlib.shake_256(b"weights").digest(300_000)
INNER = {"inner/x.txt": b"x", "inner/deep/y.bin": WEIGHTS}


def every_kind() -> tuple[dict[str, Any], dict[str, bytes]]:
    """An artifact with one item of each packing, and the files it points at."""
    files = {
        "synset.txt": b"cat\ndog\n",
        "0.0.1/model.pt.gz": compress(WEIGHTS, "gz"),
        "0.0.1/tokens.json.zst": compress(b'{"a": 1}', "zst"),
        "0.0.1/bundle.zip": zip_bytes(INNER),
        "0.0.1/t.tar.gz": tar_bytes({"z.txt": b"z"}, "gz"),
        "0.0.1/plaindir.tar": tar_bytes({"p.txt": b"p"}),
        "0.0.1/zs.tar.zst": tar_bytes({"q/r.txt": b"r"}, "zst"),
        "0.0.1/only.zip": zip_bytes({"first.bin": b"first", "second.bin": b"second"}),
    }
    entries = {
        "synset": item_entry("synset.txt", files["synset.txt"], name="classes.txt"),
        "model": item_entry("0.0.1/model.pt.gz", files["0.0.1/model.pt.gz"]),
        "tokens": item_entry("0.0.1/tokens.json.zst", files["0.0.1/tokens.json.zst"]),
        "bundle": item_entry("0.0.1/bundle.zip", files["0.0.1/bundle.zip"]),
        "t": item_entry("0.0.1/t.tar.gz", files["0.0.1/t.tar.gz"], name=""),
        "plain": item_entry("0.0.1/plaindir.tar", files["0.0.1/plaindir.tar"]),
        "zs": item_entry("0.0.1/zs.tar.zst", files["0.0.1/zs.tar.zst"]),
        "only": item_entry("0.0.1/only.zip", files["0.0.1/only.zip"], type="file", name="only.bin"),
    }
    return {"version": "0.0.1", "name": "r18", "files": entries}, files


EXPECTED_TREE = {
    "classes.txt": b"cat\ndog\n",
    "model.pt": WEIGHTS,
    "tokens.json": b'{"a": 1}',
    "bundle/inner/x.txt": b"x",
    "bundle/inner/deep/y.bin": WEIGHTS,
    "z.txt": b"z",
    "plaindir/p.txt": b"p",
    "zs/q/r.txt": b"r",
    "only.bin": b"first",
}


@pytest.fixture
def prepared(make_local_repo: RepoBuilder, cache_dir: Path) -> tuple[Repository, Any]:
    artifact, files = every_kind()
    repo = LocalRepository("t", make_local_repo([artifact], files), cache_dir=cache_dir)
    resolved = repo.resolve(MRL_)
    assert resolved is not None
    repo.prepare(resolved)
    return repo, resolved


def test_items_install_by_djl_rules(prepared: tuple[Repository, Any], cache_dir: Path) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)
    assert tree(directory) == EXPECTED_TREE
    # A person finds it by repository, MRL path, version and name.
    assert directory == repo.cache_directory / "artifacts" / MRL_.path / "0.0.1" / "r18"
    assert directory.is_relative_to(cache_dir)
    assert leftovers(cache_dir) == []


def test_manifest_records_every_file_and_source(prepared: tuple[Repository, Any]) -> None:
    repo, artifact = prepared
    manifest = json.loads((repo.get_resource_directory(artifact) / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == set(EXPECTED_TREE)
    for path, data in EXPECTED_TREE.items():
        assert manifest["files"][path] == {
            "size": len(data),
            "xxh3_128": xxhash.xxh3_128(data).hexdigest(),
        }
    assert manifest["source_digests"]["model"]["sha1"] == artifact.files["model"].sha1_hash
    # The declared digests are recorded; sha256 is computed only for items that declare none.
    for key, item in artifact.files.items():
        assert set(manifest["source_digests"][key]) == (set(item.hashes) or {"sha256"})
    assert manifest["mrl"] == str(MRL_) and manifest["version"] == "0.0.1"


def test_manifest_records_declared_digests_only_and_sha256_when_none_is_declared(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    archive = tar_bytes({"w.bin": WEIGHTS}, "gz")
    files = {"djl.bin": WEIGHTS, "bare.bin": b"bare", "a.tar.gz": archive}
    sha1_only = {"sha1Hash": hashlib.sha1(WEIGHTS).hexdigest(), "uri": "djl.bin"}
    entries = {
        "djl": sha1_only,
        "bare": {"uri": "bare.bin"},
        "arch": {"uri": "a.tar.gz", "sha1Hash": hashlib.sha1(archive).hexdigest()},
    }
    root = make_local_repo([{"version": "1.0", "files": entries}], files)
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    repo.prepare(artifact)
    manifest = json.loads((repo.get_resource_directory(artifact) / MANIFEST_NAME).read_text())
    assert manifest["format"] == 3
    assert manifest["source_digests"] == {
        "djl": {"sha1": hashlib.sha1(WEIGHTS).hexdigest()},
        "bare": {"sha256": hashlib.sha256(b"bare").hexdigest()},
        "arch": {"sha1": hashlib.sha1(archive).hexdigest()},
    }
    assert manifest["files"] == {
        name: {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}
        for name, data in {"djl.bin": WEIGHTS, "bare.bin": b"bare", "a/w.bin": WEIGHTS}.items()
    }


def test_reading_prepared_files(prepared: tuple[Repository, Any]) -> None:
    repo, artifact = prepared
    bundle = artifact.files["bundle"]
    assert repo.list_directory(bundle, "inner") == ["deep", "x.txt"]
    with repo.open_stream(bundle, "inner/x.txt") as stream:
        assert stream.read() == b"x"
    assert repo.get_file(artifact.files["model"]).read_bytes() == WEIGHTS
    assert repo.get_file(artifact.files["model"], "ignored/for/files").name == "model.pt"
    assert MANIFEST_NAME not in repo.list_directory(artifact.files["t"])
    with pytest.raises(ValueError, match=r"\.\."):
        repo.get_file(bundle, "../r18")


def test_second_prepare_opens_only_the_manifest(
    prepared: tuple[Repository, Any], opened_files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, artifact = prepared

    def no_reading(item: Any) -> Any:
        raise AssertionError(f"item {item.key} was opened again")

    monkeypatch.setattr(repo, "_open_item", no_reading)
    opened_files.clear()
    repo.prepare(artifact)
    assert opened_files == [str(repo.get_resource_directory(artifact) / MANIFEST_NAME)]


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
@pytest.mark.parametrize(
    "uri", ["0.0.1/model.pt.gz", "0.0.1/bundle.zip", "0.0.1/t.tar.gz", "synset.txt"]
)
def test_checksum_mismatch_leaves_nothing(
    make_local_repo: RepoBuilder, cache_dir: Path, algorithm: str, uri: str
) -> None:
    artifact, files = every_kind()
    key = next(k for k, v in artifact["files"].items() if v["uri"] == uri)
    wrong = "0" * (40 if algorithm == "sha1" else 64)
    artifact["files"][key][f"{algorithm}Hash"] = wrong
    repo = LocalRepository("t", make_local_repo([artifact], files), cache_dir=cache_dir)
    resolved = repo.resolve(MRL_)
    assert resolved is not None
    with pytest.raises(ChecksumMismatchError) as caught:
        repo.prepare(resolved)
    error = caught.value
    assert (error.item, error.algorithm, error.expected) == (key, algorithm, wrong)
    assert error.actual == hashlib.new(algorithm, files[uri]).hexdigest()
    assert wrong in str(error) and error.actual in str(error)
    assert not repo.get_resource_directory(resolved).exists()
    assert leftovers(cache_dir) == []


def test_resource_directory_appears_only_when_everything_verified(
    make_local_repo: RepoBuilder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact, files = every_kind()
    repo = LocalRepository("t", make_local_repo([artifact], files), cache_dir=cache_dir)
    resolved = repo.resolve(MRL_)
    assert resolved is not None
    target = repo.get_resource_directory(resolved)
    original = repo._open_item
    seen: list[str] = []

    def watching(item: Any) -> Any:
        assert not target.exists(), "the target appeared before every item was installed"
        seen.append(item.key)
        if item.key == "only":
            raise DownloadError("simulated failure on the last item", url="x")
        return original(item)

    monkeypatch.setattr(repo, "_open_item", watching)
    with pytest.raises(DownloadError):
        repo.prepare(resolved)
    assert seen[-1] == "only" and len(seen) == len(resolved.files)
    assert not target.exists()
    assert leftovers(cache_dir) == []
    monkeypatch.setattr(repo, "_open_item", original)
    repo.prepare(resolved)
    assert tree(target) == EXPECTED_TREE


def test_changed_item_is_prepared_again(make_local_repo: RepoBuilder, cache_dir: Path) -> None:
    data = {"a.txt": b"one"}
    root = make_local_repo([{"version": "1.0", "files": {"a": item_entry("a.txt", b"one")}}], data)
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    first = repo.resolve(MRL_)
    assert first is not None
    repo.prepare(first)
    make_local_repo(
        [{"version": "1.0", "files": {"a": item_entry("a.txt", b"two")}}],
        {"a.txt": b"two"},
        root=root,
    )
    second = repo.resolve(MRL_)
    assert second is not None and not repo.is_prepared(second)
    repo.prepare(second)
    assert repo.get_file(second.files["a"]).read_bytes() == b"two"
    assert leftovers(cache_dir) == []


def test_directory_without_manifest_is_not_trusted(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    root = make_local_repo(
        [{"version": "1.0", "files": {"a": item_entry("a.txt", b"one")}}], {"a.txt": b"one"}
    )
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    target = repo.get_resource_directory(artifact)
    target.mkdir(parents=True)
    (target / "a.txt").write_bytes(b"half")
    assert not repo.is_prepared(artifact)
    repo.prepare(artifact)
    assert (target / "a.txt").read_bytes() == b"one"
    assert leftovers(cache_dir) == []


def _evil_tar(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        archive.addfile(member, io.BytesIO(data) if data else None)
    return raw.getvalue()


def _member(name: str, **attributes: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for key, value in attributes.items():
        setattr(info, key, value)
    return info


HOSTILE = {
    "absolute": _evil_tar(_member("/tmp/evil", size=4), b"evil"),
    "dotdot": _evil_tar(_member("../../evil", size=4), b"evil"),
    "symlink-out": _evil_tar(_member("link", type=tarfile.SYMTYPE, linkname="../../../../evil")),
    "hardlink-out": _evil_tar(_member("link", type=tarfile.LNKTYPE, linkname="../../evil")),
    "device": _evil_tar(_member("dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_leaves_nothing_in_the_cache_or_outside(
    make_local_repo: RepoBuilder, tmp_path: Path, case: str
) -> None:
    data = HOSTILE[case]
    root = make_local_repo(
        [{"version": "1.0", "files": {"a": item_entry("a.tar", data)}}], {"a.tar": data}
    )
    cache = tmp_path / "sandbox" / "cache"
    repo = LocalRepository("t", root, cache_dir=cache)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(UnsafeArchiveError):
        repo.prepare(artifact)
    assert not repo.get_resource_directory(artifact).exists()
    assert leftovers(cache) == []
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == ["cache"]
    assert not Path("/tmp/evil").exists()


def test_extraction_limits_are_configurable(make_local_repo: RepoBuilder, cache_dir: Path) -> None:
    data = tar_bytes({f"f{i}.txt": b"x" for i in range(5)}, "gz")
    root = make_local_repo(
        [{"version": "1.0", "files": {"a": item_entry("a.tgz", data)}}], {"a.tgz": data}
    )
    strict = LocalRepository(
        "t", root, cache_dir=cache_dir, extraction_limits=ExtractionLimits(max_entries=3)
    )
    artifact = strict.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(UnsafeArchiveError):
        strict.prepare(artifact)
    assert leftovers(cache_dir) == []
    LocalRepository("t", root, cache_dir=cache_dir).prepare(artifact)


def test_corrupt_archive_is_an_extraction_error(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    data = tar_bytes({"a.txt": b"a" * 10000}, "gz")[:-100]
    root = make_local_repo([{"version": "1.0", "files": {"a": {"uri": "a.tgz"}}}], {"a.tgz": data})
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(ExtractionError):
        repo.prepare(artifact)
    assert leftovers(cache_dir) == []


def test_dir_item_that_is_not_an_archive_is_refused(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    root = make_local_repo(
        [{"version": "1.0", "files": {"a": {"uri": "a.bin", "type": "dir"}}}], {"a.bin": b"x"}
    )
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(ExtractionError, match="not a zip or tar"):
        repo.prepare(artifact)


@pytest.mark.parametrize("uri", ["../../../../etc/passwd", "/etc/passwd", "a/../../x.txt"])
def test_relative_uri_may_not_leave_the_repository(
    make_local_repo: RepoBuilder, cache_dir: Path, uri: str
) -> None:
    root = make_local_repo([{"version": "1.0", "files": {"a": {"uri": uri}}}])
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(MetadataError) as caught:
        repo.prepare(artifact)
    assert caught.value.field == "files.a.uri"


def test_missing_item_file_is_a_download_error(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    root = make_local_repo([{"version": "1.0", "files": {"a": {"uri": "gone.txt"}}}])
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(DownloadError, match=r"gone\.txt"):
        repo.prepare(artifact)
    assert leftovers(cache_dir) == []


def test_progress_callback_counts_raw_bytes(make_local_repo: RepoBuilder, cache_dir: Path) -> None:
    artifact, files = every_kind()
    repo = LocalRepository("t", make_local_repo([artifact], files), cache_dir=cache_dir)
    resolved = repo.resolve(MRL_)
    assert resolved is not None
    calls: list[tuple[int, int | None]] = []
    repo.prepare(resolved, progress=lambda done, total: calls.append((done, total)))
    total = sum(len(data) for data in files.values())
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_variants_with_equal_version_and_name_get_their_own_folders(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    root = make_local_repo(
        [
            {
                "version": "1.0",
                "name": "m",
                "properties": {"engine": "cpu"},
                "files": {"a": item_entry("cpu.txt", b"cpu")},
            },
            {
                "version": "1.0",
                "name": "m",
                "properties": {"engine": "gpu"},
                "files": {"a": item_entry("gpu.txt", b"gpu")},
            },
        ],
        {"cpu.txt": b"cpu", "gpu.txt": b"gpu"},
    )
    repo = LocalRepository("t", root, cache_dir=cache_dir)
    cpu, gpu = (repo.resolve(MRL_, None, {"engine": e}) for e in ("cpu", "gpu"))
    assert cpu is not None and gpu is not None
    repo.prepare(cpu)
    repo.prepare(gpu)
    assert repo.get_resource_directory(cpu) != repo.get_resource_directory(gpu)
    assert repo.is_prepared(cpu) and repo.is_prepared(gpu)
