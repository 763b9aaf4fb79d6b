"""A full disk or a read-only cache during prepare (issue 4, point 4), on real small file systems.

A tmpfs of 1 MiB is mounted as the cache (as root, which the tests run as here and in CI), so
the kernel itself answers ENOSPC and EROFS.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from repository import MRL, InstallError, LocalRepository, RemoteRepository
from repository.transfer import wait_for_discards
from tests.conftest import RepoBuilder, item_entry, leftovers, tar_bytes
from tests.servers.faultserver import FaultServer
from tests.servers.fixtures import running_under_ci

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
BIG = hashlib.shake_256(b"disk").digest(3_000_000)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted after the test."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root"
        if running_under_ci():
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def files_left(root: Path) -> list[str]:
    """Everything below ``root`` except bookkeeping (lock files, the cache directory tag)."""
    wait_for_discards()
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"
    )


@pytest.mark.parametrize("name", ["big.bin", "big.tar.gz"])
def test_full_disk_is_an_install_error_naming_the_path(
    make_local_repo: RepoBuilder, small_disk: Path, name: str
) -> None:
    data = BIG if name == "big.bin" else tar_bytes({"big.bin": BIG}, "gz")
    root = make_local_repo(
        [{"version": "1.0", "files": {"a": item_entry(name, data)}}], {name: data}
    )
    repo = LocalRepository("t", root, cache_dir=small_disk)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(InstallError) as caught:
        repo.prepare(artifact, progress=False)
    assert caught.value.path.startswith(str(small_disk))
    assert "No space left" in str(caught.value) and caught.value.path in str(caught.value)
    assert files_left(small_disk) == [] and leftovers(small_disk) == []


def test_full_disk_during_a_download_removes_the_partial_file(
    fault_server: FaultServer, small_disk: Path
) -> None:
    base = "/model/cv/image_classification/ai/djl/test/resnet/"
    from tests.test_remote import metadata_for

    fault_server.add_file(
        base + "metadata.json", metadata_for({"a": item_entry("1.0/big.bin", BIG)})
    )
    fault_server.add_file(base + "1.0/big.bin", BIG)
    cache = small_disk / "cache"
    repo = RemoteRepository("t", fault_server.base_url, cache_dir=cache)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(InstallError, match="No space left") as caught:
        repo.prepare(artifact, progress=False)
    assert caught.value.path.startswith(str(cache / ".tmp" / "downloads"))
    assert list((cache / ".tmp" / "downloads").iterdir()) == []
    assert leftovers(cache) == []


def test_read_only_cache_is_an_install_error(make_local_repo: RepoBuilder, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], check=True
    )
    try:
        root = make_local_repo(
            [{"version": "1.0", "files": {"a": item_entry("a.txt", b"a")}}], {"a.txt": b"a"}
        )
        repo = LocalRepository("t", root, cache_dir=read_only / "cache")
        artifact = repo.resolve(MRL_)
        assert artifact is not None
        with pytest.raises(InstallError, match="Read-only file system") as caught:
            repo.prepare(artifact, progress=False)
        assert caught.value.path.startswith(str(read_only))
    finally:
        subprocess.run(["umount", str(read_only)], check=True)
