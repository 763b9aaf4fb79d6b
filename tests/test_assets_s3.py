"""Assets in S3, against moto's real S3 server on 127.0.0.1, through the code users run on AWS.

Issue 5 points 5 (s3:// and other fsspec schemes, modelkit's layout, sha256 verified), 6 (a push
interrupted mid-way) and 8 (two processes at once, an interrupted push, tampered data).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from repository.assets import (
    AssetNotFoundError,
    AssetsManager,
    AssetStorage,
    UploadError,
)
from repository.assets.fsspec_store import FsspecStore
from repository.errors import ChecksumMismatchError, DownloadError, OfflineError
from tests.conftest import leftovers
from tests.servers.moto import S3Bucket, moto_server, s3_bucket

__all__ = ["moto_server", "s3_bucket"]  # the fixtures, until tests/conftest.py re-exports them

pytestmark = pytest.mark.network

PROJECT = Path(__file__).resolve().parents[1]
PREFIX = "modelkit-assets"


def files_below(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(
        tmp_path / "folder",
        {"a.json": b'{"a": 1}', "sub/b.bin": bytes(range(256)) * 40, ".hidden": b"dot"},
    )


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` in the project, with this test's environment."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ============================================================================ round trips
def test_round_trip_with_modelkit_layout(s3_bucket: S3Bucket, folder: Path, tmp_path: Path) -> None:
    storage = AssetStorage(s3_bucket.url(PREFIX))
    source = tmp_path / "some_data.json"
    source.write_bytes(b'{"x": 1}')
    storage.new(source, "category-test/some-data.ext")
    storage.new(folder, "category-test/some-data-2")
    storage.update(folder, "category-test/some-data-2", bump_major=True)

    assert s3_bucket.keys() == sorted(
        [
            f"{PREFIX}/category-test/some-data.ext.versions",
            f"{PREFIX}/category-test/some-data.ext/0.0",
            f"{PREFIX}/category-test/some-data.ext/0.0.meta",
            f"{PREFIX}/category-test/some-data-2.versions",
            *(
                f"{PREFIX}/category-test/some-data-2/{version}{suffix}"
                for version in ("0.0", "1.0")
                for suffix in (".meta", "/a.json", "/sub/b.bin", "/.hidden")
            ),
        ]
    )
    index = json.loads(s3_bucket.get(f"{PREFIX}/category-test/some-data-2.versions"))
    assert index == {"versions": ["1.0", "0.0"]}
    meta = json.loads(s3_bucket.get(f"{PREFIX}/category-test/some-data-2/1.0.meta"))
    assert meta["is_directory"] is True
    assert meta["contents"] == [".hidden", "a.json", "sub/b.bin"]
    assert (
        meta["files"]["sub/b.bin"]["sha256"] == hashlib.sha256(bytes(range(256)) * 40).hexdigest()
    )

    manager = AssetsManager(tmp_path / "assets", s3_bucket.url(PREFIX))
    info = manager.fetch_asset("category-test/some-data.ext", return_info=True)
    assert info.path.read_bytes() == b'{"x": 1}'
    assert info.hashes == {".": hashlib.sha256(b'{"x": 1}').hexdigest()}
    info = manager.fetch_asset("category-test/some-data-2:1[sub/b.bin]", return_info=True)
    assert (info.version, info.from_cache) == ("1.0", False)
    fetched = info.path.parent.parent
    assert files_below(fetched).keys() == {*files_below(folder), ".SUCCESS"}
    assert manager.fetch_asset("category-test/some-data-2", return_info=True).from_cache
    assert list(storage.iterate_assets()) == [
        ("category-test/some-data-2", ["1.0", "0.0"]),
        ("category-test/some-data.ext", ["0.0"]),
    ]


def test_existing_modelkit_bucket(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """Objects exactly as modelkit's S3 driver writes them: no hashes anywhere."""
    s3_bucket.put(f"{PREFIX}/cat/asset.versions", b'{"versions": ["0.1", "0.0"]}')
    s3_bucket.put(f"{PREFIX}/cat/asset/0.1", b"modelkit data")
    s3_bucket.put(
        f"{PREFIX}/cat/asset/0.1.meta",
        b'{"push_date": "2020-05-20T13:52:54.754318+00:00", "is_directory": false}',
    )
    info = AssetsManager(tmp_path, s3_bucket.url(PREFIX)).fetch_asset("cat/asset", return_info=True)
    assert (info.version, info.hashes) == ("0.1", {})
    assert info.path.read_bytes() == b"modelkit data"


def test_other_fsspec_schemes(folder: Path, tmp_path: Path) -> None:
    """fsspec's in-memory file system stands for gs://, az://... (same code path as s3://)."""
    url = f"memory://bucket-{uuid.uuid4().hex[:8]}/assets"
    AssetStorage(url).new(folder, "cat/dir")
    path = AssetsManager(tmp_path / "assets", url).fetch_asset("cat/dir[sub/b.bin]")
    assert path.read_bytes() == (folder / "sub/b.bin").read_bytes()


# ============================================================================ failures
def test_tampered_object_is_refused_and_nothing_is_left(
    s3_bucket: S3Bucket, folder: Path, tmp_path: Path
) -> None:
    storage = AssetStorage(s3_bucket.url(PREFIX))
    storage.new(folder, "cat/dir")
    storage.new(folder / "a.json", "cat/file")
    s3_bucket.put(f"{PREFIX}/cat/dir/0.0/sub/b.bin", b"tampered")
    s3_bucket.put(f"{PREFIX}/cat/file/0.0", b'{"a": 2}')
    assets = tmp_path / "assets"
    manager = AssetsManager(assets, storage)
    for spec, path in (("cat/dir", "cat/dir/0.0/sub/b.bin"), ("cat/file", "cat/file/0.0")):
        with pytest.raises(ChecksumMismatchError) as caught:
            manager.fetch_asset(spec)
        assert caught.value.source == s3_bucket.url(f"{PREFIX}/{path}")
        assert caught.value.actual != caught.value.expected
    assert [path for path in assets.rglob("*") if not path.is_dir()] == []
    assert leftovers(assets) == []


def test_unreachable_endpoint_and_offline_mode(
    s3_bucket: S3Bucket, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    AssetStorage(s3_bucket.url(PREFIX)).new(folder, "cat/dir")
    manager = AssetsManager(tmp_path / "assets", s3_bucket.url(PREFIX))
    manager.fetch_asset("cat/dir")

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cold = AssetsManager(tmp_path / "assets", AssetStorage(FsspecStore(s3_bucket.url(PREFIX),
        storage_options={"skip_instance_cache": True})))  # fmt: skip
    with pytest.raises(DownloadError) as caught:
        cold.fetch_asset("cat/dir:0")
    assert caught.value.url == s3_bucket.url(f"{PREFIX}/cat/dir.versions")
    assert cold.fetch_asset("cat/dir:0.0").is_dir()  # pinned and local: no call at all

    monkeypatch.setenv("REPOSITORY_OFFLINE", "1")
    assert cold.fetch_asset("cat/dir:0", return_info=True).from_cache
    with pytest.raises(OfflineError):
        cold.fetch_asset("cat/dir:1")
    with pytest.raises(OfflineError):
        AssetStorage(s3_bucket.url(PREFIX)).versions("cat/dir")


def test_failed_write_midway_publishes_nothing(
    s3_bucket: S3Bucket, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = AssetStorage(s3_bucket.url(PREFIX))
    fs = storage.store.fs  # type: ignore[attr-defined]
    real_open = fs.open
    opened: list[str] = []

    def failing_open(path: str, mode: str = "rb", **kwargs: object) -> object:
        if "w" in mode:
            opened.append(path)
            if len(opened) == 2:
                raise PermissionError("Access Denied")
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(fs, "open", failing_open)
    with pytest.raises(UploadError) as caught:
        storage.new(folder, "cat/dir")
    assert caught.value.status == 403
    assert caught.value.url.startswith(s3_bucket.url(f"{PREFIX}/cat/dir/0.0/"))
    monkeypatch.undo()

    assert storage.versions("cat/dir") is None
    with pytest.raises(AssetNotFoundError):
        AssetsManager(tmp_path / "assets", storage).fetch_asset("cat/dir")
    assert storage.new(folder, "cat/dir") == "0.0"  # the same version, pushed again, works
    path = AssetsManager(tmp_path / "assets", storage).fetch_asset("cat/dir")
    assert files_below(path).keys() == {*files_below(folder), ".SUCCESS"}


PUSH_THEN_DIE = """
    import os, signal, sys
    from repository.assets import AssetStorage
    from repository.assets.fsspec_store import FsspecStore

    real_write = FsspecStore._write
    written = []

    def write(self, key, stream):
        if len(written) == int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)  # the pusher dies mid-way
        real_write(self, key, stream)
        written.append(key)

    FsspecStore._write = write
    AssetStorage(sys.argv[1]).update(sys.argv[2], sys.argv[3])
"""


def test_push_killed_midway_is_invisible_and_can_be_pushed_again(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    storage = AssetStorage(s3_bucket.url(PREFIX))
    storage.new(make_folder(tmp_path / "v0", {"weights": b"v0"}), "cat/model")
    big = make_folder(tmp_path / "v1", {f"part{i}": b"%d" % i * 1000 for i in range(6)})

    pusher = run_python(PUSH_THEN_DIE, s3_bucket.url(PREFIX), str(big), "cat/model", "3")
    _, err = pusher.communicate(timeout=60)
    assert pusher.returncode == -signal.SIGKILL, err
    assert s3_bucket.keys(f"{PREFIX}/cat/model/0.1") == [
        f"{PREFIX}/cat/model/0.1/part{i}" for i in range(3)
    ]  # three objects of six were written, then no .meta and no index entry
    assert storage.versions("cat/model") == ["0.0"]

    reader = AssetsManager(tmp_path / "assets", storage)
    assert reader.fetch_asset("cat/model", return_info=True).version == "0.0"
    assert reader.fetch_asset("cat/model:0", return_info=True).version == "0.0"
    with pytest.raises(AssetNotFoundError):
        reader.fetch_asset("cat/model:0.1")

    retry = make_folder(tmp_path / "v1-again", {"weights": b"v1"})
    assert storage.update(retry, "cat/model") == "0.1"
    info = reader.fetch_asset("cat/model", return_info=True)
    assert (info.version, info.from_cache) == ("0.1", False)
    assert files_below(info.path) == {
        "weights": b"v1",
        ".SUCCESS": files_below(info.path)[".SUCCESS"],
    }


FETCH_WHEN_TOLD = """
    import json, os, sys, time
    from pathlib import Path
    from repository.assets import AssetsManager

    manager = AssetsManager(sys.argv[1], sys.argv[2])
    Path(sys.argv[3]).touch()
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.005)
    infos = [manager.fetch_asset(spec, return_info=True) for spec in sys.argv[5:]]
    print(json.dumps([[str(i.path), i.version, i.from_cache] for i in infos]))
"""


def test_two_processes_fetch_the_same_assets_at_once(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    storage = AssetStorage(s3_bucket.url(PREFIX))
    files = {f"shard{i}.bin": os.urandom(1 << 20) for i in range(4)}
    storage.new(make_folder(tmp_path / "src", files), "cat/dir")
    single = tmp_path / "single.bin"
    single.write_bytes(os.urandom(2 << 20))
    storage.new(single, "cat/file")
    assets = tmp_path / "assets"
    go = tmp_path / "go"

    processes = [
        run_python(
            FETCH_WHEN_TOLD,
            str(assets),
            s3_bucket.url(PREFIX),
            str(tmp_path / f"ready{n}"),
            str(go),
            "cat/dir",
            "cat/file",
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready{n}").exists() for n in range(2)):
        assert time.monotonic() < deadline, [p.poll() for p in processes]
        time.sleep(0.01)
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out))

    assert results[0][0][:2] == results[1][0][:2] == [str(assets / "cat/dir/0.0"), "0.0"]
    assert results[0][1][:2] == results[1][1][:2] == [str(assets / "cat/file/0.0"), "0.0"]
    assert files_below(assets / "cat/dir/0.0").items() >= files.items()
    assert files_below(assets / "cat/dir/0.0").keys() == {*files, ".SUCCESS"}
    assert (assets / "cat/file/0.0").read_bytes() == single.read_bytes()
    assert sorted(path.name for path in (assets / "cat/file").iterdir()) == [".0.0.SUCCESS", "0.0"]
    assert leftovers(assets) == []
    assert AssetsManager(assets).local_versions("cat/dir") == ["0.0"]
    assert any(not result[0][2] for result in results)  # at least one downloaded
