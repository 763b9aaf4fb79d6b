"""Publishing (issue 6, point 3): into a local repository folder and into S3, in DJL's layout,
read back by our resolver, atomic, idempotent, refusing to change a published version."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from repository import MRL, ArtifactExistsError, LocalRepository, Repository
from repository.assets.errors import InvalidAssetError, UploadError
from repository.assets.store import LocalFolderStore
from repository.cli import main
from repository.errors import ChecksumMismatchError
from repository.hashing import Readable
from repository.publish import archive_directory, item_keys, publish_artifact
from tests.conftest import tree
from tests.servers.moto import S3Bucket, moto_server, s3_bucket

__all__ = ["moto_server", "s3_bucket"]

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
MRL_PATH = "model/cv/image_classification/ai/djl/test/resnet"
COORDINATES = [
    "--type", "model", "--application", "cv/image_classification",
    "--group", "ai.djl.test", "--artifact", "resnet",
]  # fmt: skip
WEIGHTS = hashlib.shake_256(b"weights").digest(100_000)


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A model folder ``weights/`` (nested, with an executable), ``synset.txt`` and a file."""
    src = tmp_path / "src"
    (src / "weights" / "deep").mkdir(parents=True)
    (src / "weights" / "model.bin").write_bytes(WEIGHTS)
    (src / "weights" / "deep" / "config.json").write_text('{"layers": 18}')
    (src / "weights" / "run.sh").write_text("#!/bin/sh\n")
    (src / "weights" / "run.sh").chmod(0o755)
    (src / "synset.txt").write_text("cat\ndog\n")
    (src / "extra.pt").write_bytes(b"pt" * 1000)
    return src


def publish_cli(repo: Path | str, version: str, *files: Path | str, extra: list[str] = ()) -> int:  # type: ignore[assignment]
    return main(
        ["publish", str(repo), *COORDINATES, "--version", version, *extra, *map(str, files)]
    )


def read_metadata(repo: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo / MRL_PATH / "metadata.json").read_text())
    return data


# -- the layout DJL reads -----------------------------------------------------------------------


def test_publish_writes_djls_layout_and_field_names(
    sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    files = (sources / "weights", sources / "synset.txt")
    extra = ["--name", "r18", "--property", "layers=18", "--property", "dataset=imagenet"]
    assert publish_cli(repo, "1.0", *files, extra=extra) == 0
    out = capsys.readouterr()
    assert out.out.strip().endswith(f"{MRL_PATH}/metadata.json")
    assert "Published" in out.err
    metadata = read_metadata(repo)
    # DJL's top-level names (djl.md section 2); metadataVersion is what DJL's local repository
    # detection checks for.
    assert list(metadata) == [
        "metadataVersion", "resourceType", "application", "groupId", "artifactId", "name",
        "artifacts",
    ]  # fmt: skip
    assert metadata["metadataVersion"] == "0.2"
    assert metadata["resourceType"] == "model"
    assert metadata["application"] == "cv/image_classification"
    assert (metadata["groupId"], metadata["artifactId"]) == ("ai.djl.test", "resnet")
    (artifact,) = metadata["artifacts"]
    assert artifact["version"] == "1.0" and artifact["name"] == "r18"
    assert artifact["snapshot"] is False
    assert artifact["properties"] == {"layers": "18", "dataset": "imagenet"}
    assert sorted(artifact["files"]) == ["synset", "weights"]
    published = {
        "1.0/weights.tar.gz": (repo / MRL_PATH / "1.0" / "weights.tar.gz").read_bytes(),
        "1.0/synset.txt": b"cat\ndog\n",
    }
    for item in artifact["files"].values():
        # DJL's item names; a uri relative to the metadata.json's folder (djl.md section 4.3)
        assert sorted(item) == ["sha1Hash", "sha256Hash", "size", "uri"]
        data = published[item["uri"]]
        assert item["sha1Hash"] == hashlib.sha1(data).hexdigest()
        assert item["sha256Hash"] == hashlib.sha256(data).hexdigest()
        assert item["size"] == len(data)
    assert (repo / MRL_PATH / "1.0" / "synset.txt").read_bytes() == b"cat\ndog\n"
    assert sorted(tree(repo)) == [
        f"{MRL_PATH}/{path}" for path in (*sorted(published), "metadata.json")
    ]


def test_what_is_published_resolves_and_prepares_verified(
    sources: Path, tmp_path: Path, cache_dir: Path
) -> None:
    repo_dir = tmp_path / "repo"
    files = (sources / "weights", sources / "synset.txt")
    assert publish_cli(repo_dir, "1.0", *files, extra=["--property", "layers=18"]) == 0
    assert publish_cli(repo_dir, "1.1", *files, extra=["--property", "layers=50"]) == 0
    repo = Repository.new_instance("published", repo_dir, cache_dir=cache_dir)
    assert isinstance(repo, LocalRepository)
    assert repo.get_resources() == [MRL_]
    artifact = repo.resolve(MRL_, "[1.0,2.0)", {"layers": "18"})
    assert artifact is not None and artifact.version == "1.0" and artifact.name == "resnet"
    repo.prepare(artifact, progress=False)
    directory = repo.get_resource_directory(artifact)
    assert tree(directory) == {
        "synset.txt": b"cat\ndog\n",
        "weights/model.bin": WEIGHTS,
        "weights/deep/config.json": b'{"layers": 18}',
        "weights/run.sh": b"#!/bin/sh\n",
    }
    assert (directory / "weights" / "run.sh").stat().st_mode & 0o111
    assert repo.verify(artifact).ok
    # The declared digests are the real ones: other bytes are refused.
    latest = repo.resolve(MRL_)
    assert latest is not None and latest.version == "1.1"
    (repo_dir / MRL_PATH / "1.1" / "synset.txt").write_bytes(b"cat\ncow\n")
    with pytest.raises(ChecksumMismatchError):
        repo.prepare(latest, progress=False)


def test_a_folder_is_archived_deterministically(sources: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    archive_directory(sources / "weights", first)
    (sources / "weights" / "model.bin").touch()  # a new mtime changes nothing
    archive_directory(sources / "weights", second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == [
        "deep", "deep/config.json", "model.bin", "run.sh",
    ]  # fmt: skip
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.name: oct(m.mode) for m in members} == {
        "deep": "0o755", "deep/config.json": "0o644", "model.bin": "0o644", "run.sh": "0o755",
    }  # fmt: skip


def test_item_keys() -> None:
    assert item_keys(["model.pt.gz", "synset.txt", "weights.tar.gz"]) == {
        "model.pt.gz": "model",
        "synset.txt": "synset",
        "weights.tar.gz": "weights",
    }
    assert item_keys(["a.txt", "a.csv", ".hidden"]) == {
        "a.txt": "a.txt",
        "a.csv": "a.csv",
        ".hidden": ".hidden",
    }


# -- extending, idempotence, refusal ------------------------------------------------------------


def test_an_existing_metadata_is_extended_and_keeps_every_key(
    sources: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    folder = repo / MRL_PATH
    (folder / "0.9").mkdir(parents=True)
    (folder / "0.9" / "old.bin").write_bytes(b"old")
    existing = {
        "metadataVersion": "0.1",
        "resourceType": "model",
        "application": "cv/image_classification",
        "groupId": "ai.djl.test",
        "artifactId": "resnet",
        "name": "ResNet (display name)",
        "description": "kept",
        "licenses": {"apache": {"name": "Apache", "url": "https://www.apache.org/licenses"}},
        "customTopLevel": {"any": ["thing", 1]},
        "artifacts": [
            {
                "version": "0.9",
                "name": "resnet",
                "arguments": {"width": 224},
                "options": {"mapLocation": "true"},
                "customArtifactKey": True,
                "files": {"model": {"uri": "0.9/old.bin", "size": 3, "customItemKey": "x"}},
            }
        ],
    }
    (folder / "metadata.json").write_text(json.dumps(existing))
    assert publish_cli(repo, "1.0", sources / "synset.txt") == 0
    metadata = read_metadata(repo)
    assert metadata["artifacts"][0] == existing["artifacts"][0]
    for key in ("metadataVersion", "name", "description", "licenses", "customTopLevel"):
        assert metadata[key] == existing[key]
    assert [a["version"] for a in metadata["artifacts"]] == ["0.9", "1.0"]


def test_publishing_the_same_content_again_changes_nothing(
    sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    files = (sources / "weights", sources / "synset.txt")
    assert publish_cli(repo, "1.0", *files) == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in repo.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert (
        main(["publish", "--json", str(repo), *COORDINATES, "--version", "1.0", *map(str, files)])
        == 0
    )
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["changed"] is False and result["written"] == []
    assert "nothing changed" in out.err
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in repo.rglob("*") if p.is_file()}
    assert after == before


def test_publishing_a_version_again_with_other_content_is_refused(
    sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert publish_cli(repo, "1.0", sources / "synset.txt") == 0
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    (sources / "synset.txt").write_text("cat\ndog\nbird\n")
    capsys.readouterr()
    assert publish_cli(repo, "1.0", sources / "synset.txt") == 3
    assert "published already with other content" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    # Other properties are other content too; another name is another artifact.
    assert publish_cli(repo, "1.0", sources / "synset.txt", extra=["--property", "a=b"]) == 3
    assert publish_cli(repo, "1.0", sources / "synset.txt", extra=["--name", "v2"]) == 3  # same uri
    assert publish_cli(repo, "1.0", sources / "extra.pt", extra=["--name", "v2"]) == 0
    assert [a["name"] for a in read_metadata(repo)["artifacts"]] == ["resnet", "v2"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda src: src / "missing.bin", "not a regular file or folder"),
        (lambda src: _write(src / "has space.txt"), "only letters, digits"),
        (lambda src: _write(src / "metadata.json"), "taken for a resource"),
        (lambda src: _link(src / "weights" / "link", "model.bin") and src / "weights", "links"),
    ],
    ids=["missing", "space", "metadata.json", "link inside a folder"],
)
def test_files_that_cannot_be_published_are_usage_errors(
    sources: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Any,
    message: str,
) -> None:
    assert publish_cli(tmp_path / "repo", "1.0", make(sources)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "repo" / MRL_PATH / "metadata.json").exists()


def _write(path: Path) -> Path:
    path.write_text("x")
    return path


def _link(path: Path, target: str) -> bool:
    path.symlink_to(target)
    return True


def test_bad_coordinates_are_usage_errors(sources: Path, tmp_path: Path) -> None:
    synset = str(sources / "synset.txt")
    assert publish_cli(tmp_path / "r", "not a version", synset) == 2
    assert publish_cli(tmp_path / "r", "1.0", synset, extra=["--name", "../x"]) == 2
    assert publish_cli(tmp_path / "r", "1.0", synset, extra=["--property", "novalue"]) == 2
    bad_group = ["publish", str(tmp_path / "r"), *COORDINATES, "--version", "1", synset]
    bad_group[bad_group.index("ai.djl.test")] = "ai..djl"
    assert main(bad_group) == 2
    assert main(["publish", str(tmp_path / "r"), "--type", "model", synset]) == 2  # missing options
    assert not (tmp_path / "r").exists()


# -- atomicity ----------------------------------------------------------------------------------


class RecordingStore(LocalFolderStore):
    """A folder store that records each write, and can fail the n-th one."""

    def __init__(self, root: Path, fail_at: int | None = None) -> None:
        super().__init__(root)
        self.writes: list[str] = []
        self.fail_at = fail_at

    def _write(self, key: str, stream: Readable) -> None:
        if self.fail_at is not None and len(self.writes) == self.fail_at:
            raise UploadError(f"Cannot write {key}: injected", url=self.url_of(key))
        self.writes.append(key)
        super()._write(key, stream)


def test_metadata_is_written_last(sources: Path, tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "repo")
    result = publish_artifact(store, MRL_, "1.0", [sources / "weights", sources / "synset.txt"])
    assert store.writes == [
        f"{MRL_PATH}/1.0/weights.tar.gz",
        f"{MRL_PATH}/1.0/synset.txt",
        f"{MRL_PATH}/metadata.json",
    ]
    assert result.written == store.writes and result.changed


def test_a_failed_upload_leaves_the_published_metadata_as_it_was(
    sources: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    publish_artifact(root, MRL_, "1.0", [sources / "synset.txt"])
    before = read_metadata(root)
    store = RecordingStore(root, fail_at=1)
    with pytest.raises(UploadError):
        publish_artifact(store, MRL_, "2.0", [sources / "weights", sources / "extra.pt"])
    assert read_metadata(root) == before  # no artifact 2.0 whose files are missing
    assert not [p for p in root.rglob("*") if p.name.endswith(".part")]
    assert (
        main(["publish", str(root), *COORDINATES, "--version", "2.0", str(sources / "extra.pt")])
        == 0
    )


def test_a_concurrent_publish_is_merged_not_lost(sources: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"

    class Racing(LocalFolderStore):
        """Another publisher adds 0.5 while this one uploads its items."""

        raced = False

        def _write(self, key: str, stream: Readable) -> None:
            super()._write(key, stream)
            if not self.raced:
                self.raced = True
                publish_artifact(root, MRL_, "0.5", [sources / "extra.pt"])

    publish_artifact(Racing(root), MRL_, "1.0", [sources / "synset.txt"])
    assert [a["version"] for a in read_metadata(root)["artifacts"]] == ["0.5", "1.0"]


def test_the_api_raises_the_documented_errors(sources: Path, tmp_path: Path) -> None:
    publish_artifact(tmp_path / "r", MRL_, "1.0", [sources / "synset.txt"])
    (sources / "synset.txt").write_text("other")
    with pytest.raises(ArtifactExistsError) as raised:
        publish_artifact(tmp_path / "r", MRL_, "1.0", [sources / "synset.txt"])
    assert raised.value.version == "1.0"
    with pytest.raises(InvalidAssetError):
        publish_artifact(tmp_path / "r", MRL_, "1.0", [])


# -- S3 -----------------------------------------------------------------------------------------


@pytest.mark.network
def test_publish_to_s3_is_read_back_by_the_object_store_repository(
    s3_bucket: S3Bucket, sources: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = s3_bucket.url("zoo")
    files = (sources / "weights", sources / "synset.txt")
    assert publish_cli(url, "1.0", *files, extra=["--property", "layers=18", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["written"][-1] == f"{MRL_PATH}/metadata.json"
    assert s3_bucket.keys("zoo/") == [
        f"zoo/{MRL_PATH}/1.0/synset.txt",
        f"zoo/{MRL_PATH}/1.0/weights.tar.gz",
        f"zoo/{MRL_PATH}/metadata.json",
    ]
    metadata = json.loads(s3_bucket.get(f"zoo/{MRL_PATH}/metadata.json"))
    assert metadata["artifacts"][0]["files"]["synset"]["uri"] == "1.0/synset.txt"
    repo = Repository.new_instance("s3", url, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_, "1.0", {"layers": "18"})
    assert artifact is not None
    repo.prepare(artifact, progress=False)
    assert tree(repo.get_resource_directory(artifact))["weights/model.bin"] == WEIGHTS
    # Again with the same content: nothing is uploaded; with other content: refused.
    assert publish_cli(url, "1.0", *files, extra=["--property", "layers=18"]) == 0
    (sources / "synset.txt").write_text("changed")
    assert publish_cli(url, "1.0", *files, extra=["--property", "layers=18"]) == 3
    assert re.search(r"refused: .*published already", capsys.readouterr().err)
    assert io.BytesIO(s3_bucket.get(f"zoo/{MRL_PATH}/1.0/synset.txt")).read() == b"cat\ndog\n"
