"""ObjectStoreRepository on moto's real S3 server: DJL's layout with metadata.json files (as a
LocalRepository), and DJL's S3 layout without (the objects one level under the prefix).

Issue 5 point 7 (and point 8: a real S3-compatible server on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from repository import MRL, LocalRepository, Repository
from repository.errors import ChecksumMismatchError, MetadataError, UnsupportedSchemeError
from repository.objectstore import ObjectStoreRepository, ObjectStoreRepositoryFactory
from repository.registry import new_repository, register_repository_factory
from tests.conftest import RepoBuilder, compress, item_entry, leftovers, tar_bytes, tree, zip_bytes
from tests.servers.moto import S3Bucket, moto_server, s3_bucket

__all__ = ["moto_server", "s3_bucket"]  # the fixtures, until tests/conftest.py re-exports them

pytestmark = pytest.mark.network

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
WEIGHTS = hashlib.shake_256(b"weights").digest(200_000)


def upload(bucket: S3Bucket, root: Path, prefix: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            bucket.put(f"{prefix}/{path.relative_to(root).as_posix()}", path.read_bytes())


@pytest.fixture
def registry() -> Iterator[None]:
    """Restore the repository factory registry after the test."""
    from repository import registry as module

    module._load_defaults()
    saved = dict(module._registry)
    yield
    module._registry.clear()
    module._registry.update(saved)


# ============================================================================ metadata.json
def every_kind() -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    files = {
        "synset.txt": b"cat\ndog\n",
        "0.0.1/model.pt.gz": compress(WEIGHTS, "gz"),
        "0.0.1/bundle.zip": zip_bytes({"inner/x.txt": b"x"}),
        "0.0.1/t.tar.gz": tar_bytes({"z.txt": b"z"}, "gz"),
        "0.0.2/model.pt": WEIGHTS[:1000],
    }
    artifacts = [
        {
            "version": "0.0.1",
            "name": "r18",
            "properties": {"layers": "18"},
            "files": {
                "synset": item_entry("synset.txt", files["synset.txt"], name="classes.txt"),
                "model": item_entry("0.0.1/model.pt.gz", files["0.0.1/model.pt.gz"]),
                "bundle": item_entry("0.0.1/bundle.zip", files["0.0.1/bundle.zip"]),
                "t": item_entry("0.0.1/t.tar.gz", files["0.0.1/t.tar.gz"], name=""),
            },
        },
        {
            "version": "0.0.2",
            "name": "r50",
            "properties": {"layers": "50"},
            "files": {"model": item_entry("0.0.2/model.pt", files["0.0.2/model.pt"])},
        },
    ]
    return artifacts, files


def test_with_metadata_files_it_behaves_as_a_local_repository(
    s3_bucket: S3Bucket, make_local_repo: RepoBuilder, tmp_path: Path
) -> None:
    artifacts, files = every_kind()
    local_root = make_local_repo(artifacts, files)
    make_local_repo(
        [{"version": "1.0", "files": {"d": item_entry("d.bin", b"d")}}],
        {"d.bin": b"d"},
        mrl_path="dataset/nlp/ai/djl/test/words",
        root=local_root,
    )
    upload(s3_bucket, local_root, "zoo")
    local = LocalRepository("local", local_root, cache_dir=tmp_path / "local-cache")
    remote = ObjectStoreRepository("s3", s3_bucket.url("zoo"), cache_dir=tmp_path / "cache")

    assert remote.base_uri == s3_bucket.url("zoo/")
    assert sorted(map(str, remote.get_resources())) == sorted(map(str, local.get_resources()))
    for version, wanted in ((None, {}), ("0.0.1", {}), ("[0.0.1,1.0)", {"layers": "18"})):
        mine, theirs = remote.resolve(MRL_, version, wanted), local.resolve(MRL_, version, wanted)
        assert mine is not None and theirs is not None
        assert (mine.version, mine.name) == (theirs.version, theirs.name)
        remote.prepare(mine, progress=False)
        local.prepare(theirs, progress=False)
        assert tree(remote.get_resource_directory(mine)) == tree(
            local.get_resource_directory(theirs)
        )
    artifact = remote.resolve(MRL_, "0.0.1")
    assert artifact is not None
    assert remote.is_prepared(artifact)
    assert tree(remote.get_resource_directory(artifact))["model.pt"] == WEIGHTS
    assert remote.resolve(MRL.model("cv", "ai.djl.test", "missing")) is None
    located = remote.locate(MRL_)
    assert located is not None
    assert located.source == s3_bucket.url("zoo/" + MRL_.path + "metadata.json")


def test_metadata_items_are_verified_and_confined(
    s3_bucket: S3Bucket, make_local_repo: RepoBuilder, tmp_path: Path
) -> None:
    root = make_local_repo(
        [
            {"version": "1", "files": {"m": item_entry("m.bin", b"good")}},
            {"version": "2", "files": {"m": {"uri": "../../../../../../../../x.bin"}}},
        ],
        {"m.bin": b"good"},
    )
    upload(s3_bucket, root, "zoo")
    s3_bucket.put(f"zoo/{MRL_.path}m.bin", b"evil")
    repo = ObjectStoreRepository("s3", s3_bucket.url("zoo"), cache_dir=tmp_path / "cache")
    for version, error in (("1", ChecksumMismatchError), ("2", MetadataError)):
        artifact = repo.resolve(MRL_, version)
        assert artifact is not None
        with pytest.raises(error):
            repo.prepare(artifact, progress=False)
        assert not repo.is_prepared(artifact)
    assert leftovers(tmp_path / "cache") == []


def test_prepared_artifacts_serve_offline(
    s3_bucket: S3Bucket,
    make_local_repo: RepoBuilder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    artifacts, files = every_kind()
    upload(s3_bucket, make_local_repo(artifacts, files), "zoo")
    repo = ObjectStoreRepository("s3", s3_bucket.url("zoo"), cache_dir=tmp_path / "cache")
    artifact = repo.resolve(MRL_, "0.0.2")
    assert artifact is not None
    repo.prepare(artifact, progress=False)

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any request would fail
    monkeypatch.setenv("REPOSITORY_OFFLINE", "1")
    again = ObjectStoreRepository("s3", s3_bucket.url("zoo"), cache_dir=tmp_path / "cache")
    found = again.resolve(MRL_, "0.0.2")
    assert found is not None
    assert again.is_prepared(found)
    again.prepare(found)  # a no-op
    assert str(MRL_) in map(str, again.get_resources())


# ============================================================================ DJL's S3 layout
def test_without_metadata_the_objects_one_level_under_the_prefix_are_one_artifact(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    s3_bucket.put("models/resnet/model.pt", WEIGHTS)
    s3_bucket.put("models/resnet/synset.txt", b"cat\ndog\n")
    s3_bucket.put("models/resnet/extra.tar.gz", tar_bytes({"config/a.json": b"{}"}, "gz"))
    s3_bucket.put("models/resnet/sub/not-an-item.txt", b"one level only")
    s3_bucket.put("models/resnetx/other.txt", b"another prefix")
    repo = ObjectStoreRepository("s3", s3_bucket.url("models/resnet"), cache_dir=tmp_path)

    mrl = MRL.undefined("ai.djl.localmodelzoo", "resnet")
    assert repo.base_uri == s3_bucket.url("models/resnet/")
    assert repo.get_resources() == [mrl]
    artifact = repo.resolve(mrl)
    assert artifact is not None
    assert artifact.name == "resnet"
    assert sorted(artifact.files) == [
        "models/resnet/extra.tar.gz",
        "models/resnet/model.pt",
        "models/resnet/synset.txt",
    ]
    assert artifact.files["models/resnet/model.pt"].size == len(WEIGHTS)
    repo.prepare(artifact, progress=False)
    assert tree(repo.get_resource_directory(artifact)) == {
        "model.pt": WEIGHTS,
        "synset.txt": b"cat\ndog\n",
        "config/a.json": b"{}",  # an archive is extracted into the resource directory itself
    }
    assert repo.resolve(MRL.undefined("ai.djl.localmodelzoo", "other")) is None

    s3_bucket.put("models/resnet/synset.txt", b"cat\nemu\n")  # same size, new content
    changed = repo.resolve(mrl)
    assert changed is not None
    assert not repo.is_prepared(changed)
    repo.prepare(changed, progress=False)
    assert tree(repo.get_resource_directory(changed))["synset.txt"] == b"cat\nemu\n"


def test_artifact_names_from_query_archive_prefix_bucket_and_emptiness(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    s3_bucket.put("models/resnet18.zip", zip_bytes({"weights.bin": b"w", "conf/c.txt": b"c"}))
    named = ObjectStoreRepository(
        "s3",
        s3_bucket.url("models/resnet18.zip?artifact_id=rn&model_name=rn18"),
        cache_dir=tmp_path,
    )
    assert named.base_uri == s3_bucket.url("models/resnet18.zip")
    assert named.get_resources() == [MRL.undefined("ai.djl.localmodelzoo", "rn")]
    artifact = named.resolve(named.mrl)
    assert artifact is not None
    assert (artifact.name, artifact.arguments) == (
        "rn18",
        {"artifact_id": "rn", "model_name": "rn18"},
    )
    named.prepare(artifact, progress=False)
    assert tree(named.get_resource_directory(artifact)) == {"weights.bin": b"w", "conf/c.txt": b"c"}

    archive = ObjectStoreRepository("s3", s3_bucket.url("models/resnet18.zip"), cache_dir=tmp_path)
    assert archive.mrl.artifact_id == "resnet18"
    whole = ObjectStoreRepository("s3", s3_bucket.url(), cache_dir=tmp_path)
    assert whole.mrl.artifact_id == s3_bucket.name
    empty = ObjectStoreRepository("s3", s3_bucket.url("nothing/here"), cache_dir=tmp_path)
    assert empty.get_resources() == []
    assert empty.locate(empty.mrl) is None
    assert empty.resolve(empty.mrl) is None


def test_registered_through_the_factory_registry(
    s3_bucket: S3Bucket, tmp_path: Path, registry: None
) -> None:
    factory = ObjectStoreRepositoryFactory()
    assert {"s3", "s3a"} <= factory.supported_schemes()
    register_repository_factory(factory)
    s3_bucket.put("m/model.pt", b"w")
    repo = Repository.new_instance("s3", s3_bucket.url("m"), cache_dir=tmp_path)
    assert isinstance(repo, ObjectStoreRepository)
    assert repo.cache_root == tmp_path
    artifact = repo.resolve(repo.mrl)
    assert artifact is not None
    repo.prepare(artifact, progress=False)
    assert repo.get_resource_directory(artifact).is_relative_to(tmp_path)
    with pytest.raises(UnsupportedSchemeError):
        new_repository("x", "memory://bucket/p")  # not an object store it claims
