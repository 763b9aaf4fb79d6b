"""SimpleRepository: an archive is extracted into the cache; a folder is used where it stands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repository import MRL, Repository, SimpleRepository
from tests.conftest import compress, leftovers, tar_bytes, tree, zip_bytes

TEST_MODEL = {"synset.txt": b"cat\n", "test_dir/test_file.txt": b"N/A"}


def prepared(repo: Repository) -> tuple[Repository, object]:
    resources = repo.get_resources()
    assert len(resources) == 1
    artifact = repo.resolve(resources[0])
    assert artifact is not None
    repo.prepare(artifact)
    return repo, artifact


@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        ("test_model.zip", zip_bytes(TEST_MODEL)),
        ("test_model.tar", tar_bytes(TEST_MODEL)),
        ("test_model.tar.gz", tar_bytes(TEST_MODEL, "gz")),
        ("test_model.tgz", tar_bytes(TEST_MODEL, "gz")),
        ("test_model.tar.zst", tar_bytes(TEST_MODEL, "zst")),
        ("test_model.tzst", tar_bytes(TEST_MODEL, "zst")),
    ],
)
def test_archive_is_extracted_into_the_cache(
    tmp_path: Path, cache_dir: Path, file_name: str, content: bytes
) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    repo = Repository.new_instance("archive", path, cache_dir=cache_dir)
    assert repo.get_resources() == [MRL.undefined("ai.djl.localmodelzoo", "test_model")]
    metadata = repo.locate(repo.get_resources()[0])
    assert metadata is not None
    assert (metadata.group_id, metadata.artifact_id, metadata.application) == (
        "ai.djl.localmodelzoo",
        "test_model",
        "undefined",
    )
    artifact = repo.resolve(repo.get_resources()[0])
    assert (
        artifact is not None
        and artifact.name == "test_model"
        and list(artifact.files) == ["test_model"]
    )
    repo.prepare(artifact)
    item = artifact.files["test_model"]
    directory = repo.get_resource_directory(artifact)
    assert directory.is_relative_to(cache_dir)
    assert tree(directory) == TEST_MODEL
    assert repo.list_directory(item, "test_dir") == ["test_file.txt"]
    with repo.open_stream(item, "synset.txt") as stream:
        assert stream.read().splitlines() == [b"cat"]
    assert repo.get_file(item, "") == directory


def test_replaced_archive_is_extracted_again(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "m.zip"
    path.write_bytes(zip_bytes({"a.txt": b"one"}))
    prepared(Repository.new_instance("r", path, cache_dir=cache_dir))
    path.write_bytes(zip_bytes({"a.txt": b"two", "b.txt": b"new"}))
    os.utime(path, ns=(1, 1))
    again = Repository.new_instance("r", path, cache_dir=cache_dir)
    artifact = again.resolve(again.get_resources()[0])
    assert artifact is not None and not again.is_prepared(artifact)
    again.prepare(artifact)
    assert tree(again.get_resource_directory(artifact)) == {"a.txt": b"two", "b.txt": b"new"}
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_single_compressed_file_is_decompressed(
    tmp_path: Path, cache_dir: Path, compression: str
) -> None:
    path = tmp_path / f"weights.bin.{compression}"
    path.write_bytes(compress(b"w" * 5000, compression))
    repo, artifact = prepared(Repository.new_instance("r", path, cache_dir=cache_dir))
    assert tree(repo.get_resource_directory(artifact)) == {"weights.bin": b"w" * 5000}  # type: ignore[arg-type]


def test_plain_file_is_copied(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx")
    repo = Repository.new_instance("r", path, cache_dir=cache_dir)
    assert isinstance(repo, SimpleRepository) and repo.artifact_id == "model.onnx"
    repo, artifact = prepared(repo)
    assert tree(repo.get_resource_directory(artifact)) == {"model.onnx": b"onnx"}  # type: ignore[arg-type]


def test_folder_is_used_where_it_stands(tmp_path: Path, cache_dir: Path) -> None:
    folder = tmp_path / "archive"
    (folder / "sub").mkdir(parents=True)
    (folder / "synset.txt").write_text("cat")
    (folder / "sub" / "w.bin").write_bytes(b"w")
    repo = Repository.new_instance(
        "r", f"{folder}?artifact_id=resnet&model_name=resnet18", cache_dir=cache_dir
    )
    assert repo.is_remote is False
    repo, artifact = prepared(repo)
    assert artifact.name == "resnet18"  # type: ignore[attr-defined]
    assert sorted(artifact.files) == ["sub", "synset.txt"]  # type: ignore[attr-defined]
    assert repo.get_resource_directory(artifact) == folder  # type: ignore[arg-type]
    assert repo.get_file(artifact.files["synset.txt"]) == folder / "synset.txt"  # type: ignore[attr-defined]
    assert repo.list_directory(artifact.files["sub"]) == ["w.bin"]  # type: ignore[attr-defined]
    assert not cache_dir.exists()


def test_missing_path_serves_nothing(tmp_path: Path, cache_dir: Path) -> None:
    for name in ("nonexistent", "nonexistent.zip"):
        repo = Repository.new_instance("r", tmp_path / name, cache_dir=cache_dir)
        assert repo.get_resources() == []
        assert repo.resolve(MRL.undefined("ai.djl.localmodelzoo", "nonexistent")) is None


def test_other_mrls_are_not_served(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    path.write_bytes(zip_bytes({"a": b"a"}))
    repo = Repository.new_instance("r", path)
    assert repo.locate(MRL.undefined("ai.djl.localmodelzoo", "other")) is None
