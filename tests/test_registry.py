"""Repository.new_instance picks the repository by scheme; users add factories."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

import repository.registry as registry
from repository import (
    LocalRepository,
    Repository,
    RepositoryFactory,
    SimpleRepository,
    UnsupportedSchemeError,
    register_repository_factory,
)
from repository.metadata import Item
from tests.conftest import RepoBuilder, tar_bytes, zip_bytes


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registry", {})
    monkeypatch.setattr(registry, "_defaults_loaded", False)


def test_folder_with_nested_metadata_is_local(make_local_repo: RepoBuilder) -> None:
    root = make_local_repo([{"version": "1.0"}])
    for location in (root, str(root), root.as_uri(), root.as_uri() + "/"):
        repo = Repository.new_instance("r", location)
        assert isinstance(repo, LocalRepository), location
        assert repo.base_uri == root.as_uri() + "/"
        assert repo.is_remote is False


def test_folder_with_only_a_top_level_metadata_is_simple(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "metadata.json").write_text('{"metadataVersion": "0.2", "artifacts": []}')
    repo = Repository.new_instance("r", tmp_path / "flat")
    assert isinstance(repo, SimpleRepository) and repo.artifact_id == "flat"


def test_folder_whose_nested_metadata_is_broken_is_simple(tmp_path: Path) -> None:
    (tmp_path / "m" / "a" / "b").mkdir(parents=True)
    (tmp_path / "m" / "a" / "b" / "metadata.json").write_text("{broken")
    assert isinstance(Repository.new_instance("r", tmp_path / "m"), SimpleRepository)


@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        ("test_model.zip", zip_bytes({"synset.txt": b"cat"})),
        ("test_model.tar", tar_bytes({"synset.txt": b"cat"})),
        ("test_model.tar.gz", tar_bytes({"synset.txt": b"cat"}, "gz")),
        ("test_model.tgz", tar_bytes({"synset.txt": b"cat"}, "gz")),
        ("test_model.tar.zst", tar_bytes({"synset.txt": b"cat"}, "zst")),
        ("test_model.tzst", tar_bytes({"synset.txt": b"cat"}, "zst")),
        ("test_model.gz", b"\x1f\x8b"),
        ("test_model.zst", b"(\xb5/\xfd"),
    ],
)
def test_archive_files_are_simple(tmp_path: Path, file_name: str, content: bytes) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    plain = Repository.new_instance("r", path)
    url = Repository.new_instance("r", path.as_uri())
    for repo in (plain, url):
        assert isinstance(repo, SimpleRepository)
        assert repo.is_remote is True
        assert repo.artifact_id == "test_model"
        assert repo.base_uri == path.as_uri()


def test_djl_query_parameters(tmp_path: Path) -> None:
    path = tmp_path / "test_model.zip"
    path.write_bytes(zip_bytes({"synset.txt": b"cat"}))
    for location in (
        f"{path.as_uri()}?artifact_id=resnet&model_name=resnet18",
        f"{path}?artifact_id=resnet&model_name=resnet18",
    ):
        repo = Repository.new_instance("r", location)
        assert isinstance(repo, SimpleRepository)
        assert (repo.artifact_id, repo.model_name) == ("resnet", "resnet18")
        artifact = repo.resolve(repo.get_resources()[0])
        assert artifact is not None and artifact.name == "resnet18"
        assert artifact.arguments == {"artifact_id": "resnet", "model_name": "resnet18"}


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnsupportedSchemeError) as caught:
        Repository.new_instance("r", "gopher://h/x")
    assert caught.value.scheme == "gopher"
    assert "file" in caught.value.known
    assert "file" in str(caught.value) and "gopher" in str(caught.value)


class MemoryFactory:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def supported_schemes(self) -> set[str]:
        return {"mem"}

    def new_instance(self, name: str, uri: str) -> Repository:
        repo = SimpleRepository(name, "/nonexistent")
        repo.name = f"{self.tag}:{uri}"
        return repo


def test_registered_factory_serves_its_scheme_and_the_last_one_wins(tmp_path: Path) -> None:
    assert isinstance(MemoryFactory("a"), RepositoryFactory)
    register_repository_factory(MemoryFactory("first"))
    register_repository_factory(MemoryFactory("second"))
    repo = Repository.new_instance("x", "mem://bucket/p", cache_dir=tmp_path / "c")
    assert repo.name == "second:mem://bucket/p"
    assert repo.cache_root == tmp_path / "c"


def test_factories_installed_as_packages_are_found_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real (if tiny) installed distribution on sys.path: a module and its dist-info.
    (tmp_path / "memplugin.py").write_text(
        "from repository import SimpleRepository\n"
        "class Factory:\n"
        "    def supported_schemes(self):\n"
        "        return {'plug'}\n"
        "    def new_instance(self, name, uri):\n"
        "        repo = SimpleRepository(name, '/nonexistent')\n"
        "        repo.name = 'plugged:' + uri\n"
        "        return repo\n"
    )
    dist_info = tmp_path / "memplugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: memplugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[repository.factories]\nplug = memplugin:Factory\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert any(
        ep.name == "plug" for ep in importlib.metadata.entry_points(group="repository.factories")
    )
    repo = Repository.new_instance("x", "plug://thing")
    assert repo.name == "plugged:plug://thing"
    sys.modules.pop("memplugin", None)


def test_item_helpers_are_reachable_from_the_package() -> None:
    assert Item(uri="a.zip").effective_type == "dir"
