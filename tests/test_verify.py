"""Manifests (issue 4, point 5): what a prepared artifact holds, checked again on request."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import xxhash

from repository import MRL, LocalRepository
from repository.cache import MANIFEST_NAME
from tests.conftest import RepoBuilder, item_entry, tar_bytes, tree

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
MEMBERS = {"m/a.bin": b"a" * 5000, "m/b.txt": b"b", "m/deep/c.txt": b"c"}


@pytest.fixture
def prepared(make_local_repo: RepoBuilder, cache_dir: Path) -> tuple[LocalRepository, object]:
    archive = tar_bytes(MEMBERS, "gz")
    files = {"1.0/m.tar.gz": archive, "synset.txt": b"cat\n"}
    items = {
        "m": item_entry("1.0/m.tar.gz", archive, name=""),
        "s": item_entry("synset.txt", b"cat\n"),
    }
    repo = LocalRepository(
        "t", make_local_repo([{"version": "1.0", "files": items}], files), cache_dir=cache_dir
    )
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    repo.prepare(artifact, progress=False)
    return repo, artifact


def test_manifest_holds_each_file_and_each_source(prepared: tuple[LocalRepository, object]) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)  # type: ignore[arg-type]
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert sorted(manifest["files"]) == ["m/a.bin", "m/b.txt", "m/deep/c.txt", "synset.txt"]
    assert manifest["files"]["m/a.bin"]["size"] == 5000
    assert set(manifest["source_digests"]) == {"m", "s"}
    assert set(manifest["source_digests"]["m"]) == {"sha1", "sha256"}
    assert repo.verify(artifact).ok  # type: ignore[arg-type]


def test_verify_reports_missing_changed_and_extra_files(
    prepared: tuple[LocalRepository, object],
) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)  # type: ignore[arg-type]
    (directory / "m" / "b.txt").unlink()
    (directory / "m" / "a.bin").write_bytes(b"x" * 5000)  # same size, other bytes
    (directory / "synset.txt").write_bytes(b"cat\ndog\n")
    (directory / "m" / "stray.tmp").write_bytes(b"?")
    report = repo.verify(artifact)  # type: ignore[arg-type]
    assert not report.ok
    assert report.missing == ["m/b.txt"]
    assert report.changed == ["m/a.bin", "synset.txt"]
    assert report.extra == ["m/stray.tmp"]
    assert "1 missing" in str(report) and "2 changed" in str(report)
    # A cache hit does not notice (it reads no content): that is what verify is for.
    assert repo.is_prepared(artifact)  # type: ignore[arg-type]


def test_a_damaged_artifact_is_prepared_again_on_request(
    prepared: tuple[LocalRepository, object],
) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)  # type: ignore[arg-type]
    (directory / "m" / "deep" / "c.txt").write_bytes(b"corrupt")
    assert not repo.verify(artifact, repair=True).ok  # type: ignore[arg-type]
    assert repo.verify(artifact).ok  # type: ignore[arg-type]
    assert tree(directory) == {**{k: v for k, v in MEMBERS.items()}, "synset.txt": b"cat\n"}


def test_a_directory_without_manifest_is_reported(prepared: tuple[LocalRepository, object]) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)  # type: ignore[arg-type]
    (directory / MANIFEST_NAME).unlink()
    report = repo.verify(artifact)  # type: ignore[arg-type]
    assert not report.ok and not report.has_manifest and "no manifest" in str(report)


def test_files_carry_a_fast_digest_and_sha256_records_of_format_2_still_verify(
    prepared: tuple[LocalRepository, object],
) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)  # type: ignore[arg-type]
    marker = directory / MANIFEST_NAME
    manifest = json.loads(marker.read_text())
    assert manifest["format"] == 3
    assert manifest["files"]["m/b.txt"] == {
        "size": 1,
        "xxh3_128": xxhash.xxh3_128(b"b").hexdigest(),
    }
    # A cache written before the file digest changed: format 2, a sha256 for every file.
    contents = {**MEMBERS, "synset.txt": b"cat\n"}
    manifest["format"] = 2
    manifest["files"] = {
        path: {"size": len(contents[path]), "sha256": hashlib.sha256(contents[path]).hexdigest()}
        for path in manifest["files"]
    }
    marker.write_text(json.dumps(manifest))
    assert repo.verify(artifact).ok  # type: ignore[arg-type]
    (directory / "m" / "b.txt").write_bytes(b"B")
    assert repo.verify(artifact).changed == ["m/b.txt"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "record",
    [{"size": 1}, {"size": 1, "md5": "00"}, {"size": "1", "xxh3_128": "00"}, [1, "00"]],
)
def test_a_malformed_file_record_makes_the_manifest_unreadable(
    prepared: tuple[LocalRepository, object], record: object
) -> None:
    repo, artifact = prepared
    directory = repo.get_resource_directory(artifact)  # type: ignore[arg-type]
    marker = directory / MANIFEST_NAME
    manifest = json.loads(marker.read_text())
    manifest["files"]["m/b.txt"] = record
    marker.write_text(json.dumps(manifest))
    report = repo.verify(artifact)  # type: ignore[arg-type]
    assert not report.ok and not report.has_manifest
