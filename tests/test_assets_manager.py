"""AssetsManager and AssetStorage with a local folder storage and an HTTP one (nginx).

Issue 5 points 3 (manager and layout), 4 (resolution), 5 (storage providers: folder, HTTP;
modelkit's remote layout; sha256 in .meta verified) and 6 (pushing). The S3 side is in
tests/test_assets_s3.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

from repository.assets import (
    AssetExistsError,
    AssetInfo,
    AssetNotFoundError,
    AssetsManager,
    AssetSpec,
    AssetStorage,
    InvalidAssetError,
    InvalidAssetSpecError,
    InvalidAssetVersionError,
    LocalFolderStore,
    ObjectNotFoundError,
    SimpleDateVersioning,
    UnsupportedStorageOperationError,
    VersioningSystem,
    register_versioning_system,
    versioning,
)
from repository.assets.http_store import HttpStore
from repository.assets.versioning import SortKey
from repository.cache import cache_root
from repository.errors import ChecksumMismatchError, DownloadError, OfflineError
from repository.hashing import Readable
from repository.transfer import HttpTransport, RetryPolicy
from tests.conftest import leftovers
from tests.servers.fixtures import NginxFactory


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_below(root: Path) -> dict[str, bytes]:
    """Every file below ``root``, dotfiles included, by POSIX relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


class RecordingStore(LocalFolderStore):
    """A folder store that records every call: (operation, key)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        self.calls.append(("open", key))
        with super()._open(key) as stream:
            yield stream

    def _write(self, key: str, stream: Readable) -> None:
        self.calls.append(("write", key))
        super()._write(key, stream)

    def _list(self, prefix: str) -> list[str]:
        self.calls.append(("list", prefix))
        return super()._list(prefix)


@pytest.fixture
def bucket(tmp_path: Path) -> RecordingStore:
    return RecordingStore(tmp_path / "bucket" / "modelkit-assets")


@pytest.fixture
def storage(bucket: RecordingStore) -> AssetStorage:
    return AssetStorage(bucket)


@pytest.fixture
def assets_dir(tmp_path: Path) -> Path:
    return tmp_path / "assets"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A directory asset with nested files and dotfiles."""
    root = tmp_path / "folder"
    for relative, data in {
        "content0": b"zero",
        "content1.json": b'{"one": 1}',
        "sub/deep.txt": b"deep",
        ".hidden": b"dot",
        "sub/.keep": b"",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


def a_file(tmp_path: Path, data: bytes, name: str = "data.bin") -> Path:
    path = tmp_path / "sources" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ====================================================================== point 3: layout
def test_file_asset_layout_marker_and_info(
    tmp_path: Path, storage: AssetStorage, assets_dir: Path
) -> None:
    data = b"some data " * 100
    assert storage.new(a_file(tmp_path, data), "category-test/some-data.ext") == "0.0"
    manager = AssetsManager(assets_dir, storage)

    info = manager.fetch_asset("category-test/some-data.ext:0.0", return_info=True)
    expected = assets_dir / "category-test" / "some-data.ext" / "0.0"
    assert info == AssetInfo(
        expected, "category-test/some-data.ext", "0.0", from_cache=False, hashes={".": sha256(data)}
    )
    assert expected.is_file()
    assert expected.read_bytes() == data
    assert (expected.parent / ".0.0.SUCCESS").is_file()
    assert sorted(p.name for p in expected.parent.iterdir()) == [".0.0.SUCCESS", "0.0"]

    again = manager.fetch_asset("category-test/some-data.ext", return_info=True)
    assert again.from_cache
    assert again.hashes == {".": sha256(data)}  # recorded in the marker when verified
    assert manager.fetch_asset("category-test/some-data.ext:0") == expected


def test_directory_asset_layout_sub_parts_and_dotfiles(
    folder: Path, storage: AssetStorage, assets_dir: Path
) -> None:
    storage.new(folder, "some/directory/asset")
    assert storage.update(folder, "some/directory/asset") == "0.1"
    manager = AssetsManager(assets_dir, storage)

    path = manager.fetch_asset("some/directory/asset:0.1[content0]")
    root = assets_dir / "some" / "directory" / "asset" / "0.1"
    assert path == root / "content0"
    assert path.read_bytes() == b"zero"
    assert (root / ".SUCCESS").is_file()
    assert files_below(root).keys() - {".SUCCESS"} == files_below(folder).keys()
    for relative, data in files_below(folder).items():
        assert (root / relative).read_bytes() == data  # dotfiles kept, nested ones too
    assert manager.fetch_asset("some/directory/asset:0.1[/sub/deep.txt]") == root / "sub/deep.txt"
    info = manager.fetch_asset(AssetSpec("some/directory/asset", "0"), return_info=True)
    assert (info.path, info.version, info.from_cache) == (root, "0.1", True)
    assert info.hashes == {path: sha256(data) for path, data in files_below(folder).items()}

    with pytest.raises(AssetNotFoundError) as caught:
        manager.fetch_asset("some/directory/asset:0.1[missing]")
    assert (caught.value.sub_part, caught.value.version) == ("missing", "0.1")


def test_default_assets_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert AssetsManager().assets_dir == cache_root() / "assets"
    monkeypatch.setenv("REPOSITORY_ASSETS_DIR", str(tmp_path / "from-env"))
    assert AssetsManager().assets_dir == tmp_path / "from-env"
    assert AssetsManager(tmp_path / "arg").assets_dir == tmp_path / "arg"
    assert not (tmp_path / "from-env").exists()  # nothing is created until a download


# ====================================================================== point 4: resolution
def make_local(assets_dir: Path, name: str, versions: dict[str, bool], *, dirs: bool) -> None:
    """Versions of ``name`` made by hand in modelkit's layout; True: with a success marker."""
    folder = assets_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for version, marked in versions.items():
        if dirs:
            (folder / version / "subpart").mkdir(parents=True)
            (folder / version / "subpart" / "deep.txt").write_text(version)
            if marked:
                (folder / version / ".SUCCESS").touch()
        else:
            (folder / version).write_text(version)
            if marked:
                (folder / f".{version}.SUCCESS").touch()


@pytest.mark.parametrize("dirs", [True, False])
def test_without_storage_latest_local_version_with_marker(assets_dir: Path, dirs: bool) -> None:
    versions = {"0.0": True, "0.1": True, "1.0": True, "1.1": False, "10.0": True}
    make_local(assets_dir, "something", versions, dirs=dirs)
    manager = AssetsManager(assets_dir)
    assert manager.local_versions("something") == ["10.0", "1.0", "0.1", "0.0"]

    def version(spec: str) -> str:
        return manager.fetch_asset(spec, return_info=True).version

    assert version("something") == "10.0"
    assert version("something:1") == "1.0"  # 1.1 has no marker; 10.0 is not a 1.x
    assert version("something:0") == "0.1"
    assert version("something:0.0") == "0.0"
    if dirs:
        path = manager.fetch_asset("something:1.0[subpart/deep.txt]")
        assert path == assets_dir / "something" / "1.0" / "subpart" / "deep.txt"
    for missing in ("something:1.1", "something:2", "something:2.0", "nothing"):
        with pytest.raises(AssetNotFoundError) as caught:
            manager.fetch_asset(missing)
        assert caught.value.name == missing.split(":")[0]


def test_pinned_local_version_makes_no_network_call(assets_dir: Path) -> None:
    make_local(assets_dir, "cat/asset", {"1.0": True}, dirs=False)
    # Nothing listens on port 9 of 127.0.0.1: any request fails.
    url = "http://127.0.0.1:9/assets"
    store = HttpStore(url, transport=HttpTransport(url, retry=RetryPolicy(attempts=1)))
    manager = AssetsManager(assets_dir, store)
    assert manager.fetch_asset("cat/asset:1.0", return_info=True).from_cache
    with pytest.raises(DownloadError) as caught:
        manager.fetch_asset("cat/asset:1")  # a partial version asks the storage
    assert caught.value.url == f"{url}/cat/asset.versions"


def test_with_storage_asks_for_versions_and_uses_local_copies(
    tmp_path: Path, bucket: RecordingStore, storage: AssetStorage, assets_dir: Path
) -> None:
    for index, version in enumerate(["0.0", "0.1", "1.0"]):
        storage.push(a_file(tmp_path, b"v%d" % index), "cat/asset", version)
    manager = AssetsManager(assets_dir, storage)
    bucket.calls.clear()

    assert manager.fetch_asset("cat/asset:0.1", return_info=True).from_cache is False
    assert bucket.calls == [
        ("open", "cat/asset.versions"),
        ("open", "cat/asset/0.1.meta"),
        ("open", "cat/asset/0.1"),
    ]
    bucket.calls.clear()
    assert manager.fetch_asset("cat/asset:0.1").read_bytes() == b"v1"
    assert bucket.calls == []  # pinned and present locally: storage untouched

    info = manager.fetch_asset("cat/asset:0", return_info=True)
    assert (info.version, info.from_cache) == ("0.1", True)
    assert bucket.calls == [("open", "cat/asset.versions")]  # asked, then the local copy

    info = manager.fetch_asset("cat/asset", return_info=True)
    assert (info.version, info.from_cache) == ("1.0", False)
    assert info.path.read_bytes() == b"v2"
    assert manager.fetch_asset("cat/asset:1", return_info=True).from_cache

    with pytest.raises(AssetNotFoundError) as caught:
        manager.fetch_asset("cat/asset:2")
    assert caught.value.available == ["1.0", "0.1", "0.0"]
    with pytest.raises(AssetNotFoundError):
        manager.fetch_asset("cat/other")


def test_storage_versions_not_listed_in_the_index_are_invisible(
    tmp_path: Path, storage: AssetStorage, assets_dir: Path
) -> None:
    storage.new(a_file(tmp_path, b"old"), "cat/asset")
    index = storage.store.read("cat/asset.versions")
    storage.update(a_file(tmp_path, b"new"), "cat/asset")  # 0.1
    storage.store.write("cat/asset.versions", index)  # as if the push stopped before the index
    manager = AssetsManager(assets_dir, storage)
    assert manager.fetch_asset("cat/asset", return_info=True).version == "0.0"
    with pytest.raises(AssetNotFoundError):
        manager.fetch_asset("cat/asset:0.1")


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_mode_falls_back_to_local_versions(
    tmp_path: Path,
    bucket: RecordingStore,
    storage: AssetStorage,
    assets_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    storage.new(a_file(tmp_path, b"0"), "cat/asset")
    AssetsManager(assets_dir, storage).fetch_asset("cat/asset")
    storage.update(a_file(tmp_path, b"1"), "cat/asset")
    bucket.calls.clear()
    if how == "env":
        monkeypatch.setenv("REPOSITORY_OFFLINE", "1")
        manager = AssetsManager(assets_dir, storage)
    else:
        manager = AssetsManager(assets_dir, storage, offline=True)

    info = manager.fetch_asset("cat/asset", return_info=True)
    assert (info.version, info.from_cache) == ("0.0", True)
    assert manager.fetch_asset("cat/asset:0").read_bytes() == b"0"
    with pytest.raises(OfflineError) as caught:
        manager.fetch_asset("cat/asset:0.1")
    assert caught.value.url == bucket.url
    assert bucket.calls == []


def test_missing_marker_means_download_again(
    tmp_path: Path, folder: Path, storage: AssetStorage, assets_dir: Path
) -> None:
    storage.new(a_file(tmp_path, b"file"), "f")
    storage.new(folder, "d")
    manager = AssetsManager(assets_dir, storage)
    for name, marker in (("f", "f/.0.0.SUCCESS"), ("d", "d/0.0/.SUCCESS")):
        manager.fetch_asset(name)
        assert manager.fetch_asset(name, return_info=True).from_cache
        (assets_dir / marker).unlink()
        info = manager.fetch_asset(name, return_info=True)
        assert not info.from_cache
        assert (assets_dir / marker).is_file()
    assert files_below(assets_dir / "d" / "0.0").keys() - {".SUCCESS"} == files_below(folder).keys()
    assert leftovers(assets_dir) == []


# ====================================================================== point 5: storage
def test_existing_modelkit_bucket_works_as_it_is(tmp_path: Path, assets_dir: Path) -> None:
    """The remote layout modelkit writes (no hashes in .meta), made by hand."""
    prefix = tmp_path / "bucket" / "modelkit-assets"
    objects = {
        "category/asset.versions": json.dumps({"versions": ["0.1", "0.0"]}).encode(),
        "category/asset/0.0": b"file v0",
        "category/asset/0.0.meta": b'{"is_directory": false, '
        b'"push_date": "2020-05-20T13:52:54.754318+00:00"}',
        "category/asset/0.1/a.json": b"{}",
        "category/asset/0.1/sub/b.json": b"[]",
        "category/asset/0.1.meta": json.dumps(
            {
                "is_directory": True,
                "push_date": "2020-05-21T13:52:54.754318+00:00",
                "contents": ["a.json", "sub/b.json"],
            }
        ).encode(),
    }
    for key, data in objects.items():
        (prefix / key).parent.mkdir(parents=True, exist_ok=True)
        (prefix / key).write_bytes(data)
    manager = AssetsManager(assets_dir, prefix)

    info = manager.fetch_asset("category/asset", return_info=True)
    assert (info.version, info.hashes) == ("0.1", {})
    assert files_below(info.path).items() >= {"a.json": b"{}", "sub/b.json": b"[]"}.items()
    assert (info.path / ".SUCCESS").is_file()
    assert manager.fetch_asset("category/asset:0.0").read_bytes() == b"file v0"
    assert list(AssetStorage(prefix).iterate_assets()) == [("category/asset", ["0.1", "0.0"])]


def test_data_not_matching_its_meta_is_refused_and_nothing_is_left(
    tmp_path: Path, folder: Path, storage: AssetStorage, bucket: RecordingStore, assets_dir: Path
) -> None:
    storage.new(folder, "d")
    (bucket.root / "d" / "0.0" / "sub" / "deep.txt").write_bytes(b"DEEP")
    manager = AssetsManager(assets_dir, storage)
    with pytest.raises(ChecksumMismatchError) as caught:
        manager.fetch_asset("d")
    assert caught.value.expected == sha256(b"deep")
    assert caught.value.actual == sha256(b"DEEP")
    assert caught.value.source.endswith("d/0.0/sub/deep.txt")
    assert [path for path in assets_dir.rglob("*") if not path.is_dir()] == []
    assert leftovers(assets_dir) == []
    assert manager.local_versions("d") == []


# ====================================================================== point 6: pushing
def test_new_and_update_number_versions(
    tmp_path: Path, folder: Path, storage: AssetStorage
) -> None:
    source = a_file(tmp_path, b"x")
    assert storage.new(source, "a") == "0.0"
    assert storage.update(source, "a") == "0.1"
    assert storage.update(source, "a", bump_major=True) == "1.0"
    assert storage.update(source, "a") == "1.1"
    assert storage.update(source, "a", major="0") == "0.2"
    assert storage.versions("a") == ["1.1", "1.0", "0.2", "0.1", "0.0"]
    assert json.loads(storage.store.read("a.versions")) == {
        "versions": ["1.1", "1.0", "0.2", "0.1", "0.0"]
    }
    assert storage.new(folder, "b", version="3.7") == "3.7"
    assert storage.update(folder, "b") == "3.8"
    meta = storage.meta("b", "3.8")
    assert meta.is_directory
    assert [file.path for file in meta.files] == sorted(files_below(folder))
    assert meta.hashes == {path: sha256(data) for path, data in files_below(folder).items()}
    assert storage.meta("a", "0.0").hashes == {".": sha256(b"x")}


def test_pushing_what_exists_is_refused(
    tmp_path: Path, folder: Path, storage: AssetStorage
) -> None:
    source = a_file(tmp_path, b"x")
    storage.new(source, "a")
    storage.new(folder, "d")
    before = storage.store.list_keys()
    with pytest.raises(AssetExistsError) as caught:
        storage.new(source, "a")
    assert (caught.value.name, caught.value.version) == ("a", None)
    for path, name in ((source, "a"), (folder, "d")):  # a file version, and a folder version
        with pytest.raises(AssetExistsError) as caught:
            storage.push(path, name, "0.0")
        assert caught.value.version == "0.0"
    with pytest.raises(AssetNotFoundError):
        storage.update(source, "never-pushed")
    assert storage.store.list_keys() == before


def test_pushes_refuse_bad_input(tmp_path: Path, storage: AssetStorage) -> None:
    source = a_file(tmp_path, b"x")
    with pytest.raises(InvalidAssetSpecError):
        storage.push(source, "../escape", "0.0")
    with pytest.raises(InvalidAssetVersionError):
        storage.push(source, "a", "1")  # partial
    with pytest.raises(InvalidAssetVersionError):
        storage.push(source, "a", "latest")
    with pytest.raises(InvalidAssetError):
        storage.new(tmp_path / "missing", "a")
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / ".SUCCESS").touch()
    with pytest.raises(InvalidAssetError):
        storage.new(marked, "a")
    assert storage.store.list_keys() == []


def test_the_index_is_written_after_the_data(
    folder: Path, bucket: RecordingStore, storage: AssetStorage
) -> None:
    storage.new(folder, "d")
    writes = [key for operation, key in bucket.calls if operation == "write"]
    data = sorted(f"d/0.0/{path}" for path in files_below(folder))
    assert sorted(writes[: len(data)]) == data
    assert writes[len(data) :] == ["d/0.0.meta", "d.versions"]


class IntegerVersioning(VersioningSystem):
    """A third system, plugged in: versions are 1, 2, 3..."""

    name = "integer"

    def is_valid(self, version: str) -> bool:
        return version.isdigit()

    def is_complete(self, version: str) -> bool:
        return True

    def sort_key(self, version: str) -> SortKey:
        return (int(version),)

    def initial_version(self) -> str:
        return "1"

    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        return str(int(self.latest(versions) or "0") + 1)


def test_another_versioning_system_plugs_in(
    tmp_path: Path, bucket: RecordingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(versioning, "_SYSTEMS", dict(versioning._SYSTEMS))  # restored after
    register_versioning_system("integer", IntegerVersioning)
    storage = AssetStorage(bucket, versioning="integer")
    source = a_file(tmp_path, b"x")
    assert [storage.new(source, "a"), storage.update(source, "a"), storage.update(source, "a")] == [
        "1",
        "2",
        "3",
    ]
    manager = AssetsManager(tmp_path / "assets", storage)
    assert manager.versioning.name == "integer"
    assert manager.fetch_asset("a", return_info=True).version == "3"
    assert manager.fetch_asset("a:2", return_info=True).version == "2"
    with pytest.raises(InvalidAssetVersionError):
        manager.fetch_asset("a:1.0")


def test_simple_date_assets(tmp_path: Path, bucket: RecordingStore) -> None:
    clock = [datetime(2021, 11, 14, 18, 0, 0, tzinfo=UTC)]
    storage = AssetStorage(bucket, versioning=SimpleDateVersioning(now=lambda: clock[0]))
    source = a_file(tmp_path, b"x")
    assert storage.new(source, "a") == "2021-11-14T18-00-00Z"
    clock[0] += timedelta(days=1)
    assert storage.update(source, "a") == "2021-11-15T18-00-00Z"
    assert storage.update(source, "a") == "2021-11-15T18-00-01Z"  # same second: one later
    manager = AssetsManager(tmp_path / "assets", storage)
    assert manager.fetch_asset("a", return_info=True).version == "2021-11-15T18-00-01Z"
    assert manager.fetch_asset("a:2021-11-14T18-00-00Z").read_bytes() == b"x"


# ====================================================================== HTTP storage (nginx)
@pytest.mark.network
def test_http_storage_is_read_only_and_serves_fetches(
    tmp_path: Path,
    folder: Path,
    bucket: RecordingStore,
    storage: AssetStorage,
    nginx_factory: NginxFactory,
    assets_dir: Path,
) -> None:
    storage.new(a_file(tmp_path, b"file"), "cat/file")
    storage.new(folder, "cat/dir")
    storage.update(folder, "cat/dir", bump_major=True)
    server = nginx_factory(bucket.root.parent)
    http = AssetStorage(server.url("modelkit-assets"))
    manager = AssetsManager(assets_dir, http)

    assert manager.fetch_asset("cat/file").read_bytes() == b"file"
    info = manager.fetch_asset("cat/dir:1[sub/deep.txt]", return_info=True)
    assert (info.version, info.from_cache) == ("1.0", False)
    assert info.path.read_bytes() == b"deep"
    assert (
        files_below(assets_dir / "cat/dir/1.0").keys() - {".SUCCESS"} == files_below(folder).keys()
    )
    with pytest.raises(AssetNotFoundError):
        manager.fetch_asset("cat/missing")
    with pytest.raises(ObjectNotFoundError) as caught:
        http.store.read("cat/missing.meta")
    assert caught.value.status == 404
    with pytest.raises(UnsupportedStorageOperationError) as refused:
        http.update(folder, "cat/dir")
    assert refused.value.operation == "write"
    with pytest.raises(UnsupportedStorageOperationError):
        list(http.iterate_assets())
    uris = [request.uri for request in server.requests(min_count=1)]
    assert "/modelkit-assets/cat/dir/1.0/sub/deep.txt" in uris
