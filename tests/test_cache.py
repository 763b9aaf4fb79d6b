"""Where the cache is, and that repositories serving the same MRL never share files."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from repository import MRL, LocalRepository, Repository
from repository.cache import cache_root
from tests.conftest import RepoBuilder, item_entry, tree

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")


def test_argument_wins_over_environment_over_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPOSITORY_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("REPOSITORY_CACHE_DIR")
    assert cache_root() == platformdirs.user_cache_path("repository", appauthor=False)


def test_repository_uses_the_environment_cache(
    make_local_repo: RepoBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPOSITORY_CACHE_DIR", str(tmp_path / "env"))
    root = make_local_repo(
        [{"version": "1.0", "files": {"a": item_entry("a.txt", b"a")}}], {"a.txt": b"a"}
    )
    repo = Repository.new_instance("r", root)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    repo.prepare(artifact)
    assert repo.get_resource_directory(artifact).is_relative_to(tmp_path / "env")


def test_no_folder_is_created_until_something_is_written(
    tmp_path: Path, make_local_repo: RepoBuilder
) -> None:
    root = make_local_repo([{"version": "1.0"}])
    repo = LocalRepository("r", root, cache_dir=tmp_path / "c")
    repo.resolve(MRL_)
    assert not (tmp_path / "c").exists()


def test_two_repositories_with_the_same_mrl_never_share_files(
    make_local_repo: RepoBuilder, cache_dir: Path
) -> None:
    repos = []
    for content in (b"first", b"second"):
        root = make_local_repo(
            [{"version": "1.0", "name": "m", "files": {"a": item_entry("a.txt", content)}}],
            {"a.txt": content},
        )
        repos.append(LocalRepository("same-name", root, cache_dir=cache_dir))
    artifacts = [repo.resolve(MRL_) for repo in repos]
    for repo, artifact in zip(repos, artifacts, strict=True):
        assert artifact is not None
        repo.prepare(artifact)
    first, second = (
        repo.get_resource_directory(a) for repo, a in zip(repos, artifacts, strict=True)
    )  # type: ignore[arg-type]
    assert first != second
    assert tree(first) == {"a.txt": b"first"} and tree(second) == {"a.txt": b"second"}
    # Both are readable paths: repository key, then the MRL path, version and name.
    for directory in (first, second):
        relative = directory.relative_to(cache_dir).as_posix()
        assert relative.startswith("repos/file-mlrepo")
        assert relative.endswith("artifacts/model/cv/image_classification/ai/djl/test/resnet/1.0/m")
