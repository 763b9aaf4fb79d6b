"""Many real processes on one cache: each item is downloaded once, and nothing depends on the lock.

Issue 4, points 1 and 2: processes are started together against nginx on 127.0.0.1, and the
access log tells how often each item was fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from repository import MRL, Repository
from repository.locks import LOCKS_FOLDER, work_lock
from repository.verify import verify_directory
from tests.conftest import item_entry, leftovers, tar_bytes, tree
from tests.servers.fixtures import NginxFactory
from tests.servers.nginx import NginxServer

CHILD = Path(__file__).with_name("child_prepare.py")
MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
FOLDER = "model/cv/image_classification/ai/djl/test/resnet"
WEIGHTS = hashlib.shake_256(b"weights").digest(1_500_000)
# Both items are larger than Repository.small_item_size, so that both leave partial files.
ARCHIVE_MEMBERS = {
    "bundle/a.bin": hashlib.shake_256(b"a").digest(1_100_000),
    "bundle/cfg.json": b"{}",
}
EXPECTED = {"weights.bin": WEIGHTS, **{f"bundle/{k}": v for k, v in ARCHIVE_MEMBERS.items()}}


def publish_repository(root: Path) -> None:
    folder = root / FOLDER
    (folder / "1.0").mkdir(parents=True)
    archive = tar_bytes(ARCHIVE_MEMBERS, "gz")
    (folder / "1.0" / "weights.bin").write_bytes(WEIGHTS)
    (folder / "1.0" / "bundle.tar.gz").write_bytes(archive)
    items = {
        "weights": item_entry("1.0/weights.bin", WEIGHTS),
        "bundle": item_entry("1.0/bundle.tar.gz", archive),
    }
    metadata = {
        "metadataVersion": "0.2",
        "groupId": "ai.djl.test",
        "artifactId": "resnet",
        "application": "cv/image_classification",
        "artifacts": [{"version": "1.0", "name": "r", "files": items}],
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))


@pytest.fixture
def slow_nginx(nginx_factory: NginxFactory, tmp_path: Path) -> NginxServer:
    """nginx serving one artifact at about 1.5 MB/s per connection, so prepares overlap."""
    root = tmp_path / "www"
    publish_repository(root)
    return nginx_factory(root, extra_locations="location /model/ { limit_rate 1500k; }")


def start_children(
    count: int, url: str, cache_dir: Path, start_file: Path, *extra: str
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                url,
                str(cache_dir),
                "--start-file",
                str(start_file),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def release(children: list[subprocess.Popen[str]], start_file: Path) -> None:
    """Start the children's prepares together, once every one of them is ready."""
    deadline = time.monotonic() + 60
    while len(list(start_file.parent.glob(f"{start_file.name}.ready.*"))) < len(children):
        assert time.monotonic() < deadline, "the children did not get ready"
        assert all(child.poll() is None for child in children), "a child died early"
        time.sleep(0.02)
    start_file.touch()


def finish(children: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def item_fetches(nginx: NginxServer, minimum: int) -> Counter[str]:
    return Counter(
        r.uri.rsplit("/", 1)[1] for r in nginx.requests(min_count=minimum) if "/1.0/" in r.uri
    )


def test_eight_processes_download_each_item_once(slow_nginx: NginxServer, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    start = tmp_path / "start"
    children = start_children(8, slow_nginx.base_url, cache_dir, start)
    release(children, start)
    directories = set(finish(children))
    assert len(directories) == 1
    directory = Path(directories.pop())
    assert tree(directory) == EXPECTED
    assert verify_directory(directory).ok
    assert item_fetches(slow_nginx, 3) == {"weights.bin": 1, "bundle.tar.gz": 1}
    assert leftovers(cache_dir) == []
    assert not list(directory.rglob("*.lock"))
    assert list((cache_dir / LOCKS_FOLDER).iterdir())


def test_correctness_does_not_depend_on_the_lock(slow_nginx: NginxServer, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    start = tmp_path / "start"
    repo = Repository.new_instance("t", slow_nginx.base_url, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    # The test holds the lock throughout, so every child gives up on it at once and works alone.
    with work_lock(cache_dir, str(repo.get_resource_directory(artifact)), timeout=1) as held:
        assert held
        children = start_children(8, slow_nginx.base_url, cache_dir, start, "--lock-timeout", "0")
        release(children, start)
        directories = set(finish(children))
    assert len(directories) == 1
    directory = Path(directories.pop())
    assert tree(directory) == EXPECTED and verify_directory(directory).ok
    assert item_fetches(slow_nginx, 17) == {"weights.bin": 8, "bundle.tar.gz": 8}
    assert leftovers(cache_dir) == []
    assert list((cache_dir / ".tmp" / "downloads").iterdir()) == []


def test_a_killed_lock_holder_is_not_waited_for(slow_nginx: NginxServer, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    holder = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            slow_nginx.base_url,
            str(cache_dir),
            "--kill-at",
            "download:400000",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert holder.returncode == -signal.SIGKILL
    waiter = subprocess.run(
        [sys.executable, str(CHILD), slow_nginx.base_url, str(cache_dir), "--lock-timeout", "600"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert waiter.returncode == 0, waiter.stderr
    assert tree(Path(waiter.stdout.strip())) == EXPECTED
    logged = [(r.uri.rsplit("/", 1)[1], r.range) for r in slow_nginx.requests(min_count=4)]
    assert any(rng for _, rng in logged), (
        f"the second process resumes what was downloaded: {logged}"
    )


def test_a_lock_held_too_long_is_given_up(slow_nginx: NginxServer, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    repo = Repository.new_instance("t", slow_nginx.base_url, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    target = str(repo.get_resource_directory(artifact))
    with work_lock(cache_dir, target, timeout=1) as held:
        assert held
        child = subprocess.run(
            [
                sys.executable,
                str(CHILD),
                slow_nginx.base_url,
                str(cache_dir),
                "--lock-timeout",
                "0.5",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert child.returncode == 0, child.stderr
    assert "going on without it" in child.stderr
    assert tree(Path(child.stdout.strip())) == EXPECTED


def test_a_prepared_cache_works_on_a_read_only_mount(
    slow_nginx: NginxServer, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    cache_dir = tmp_path / "cache"
    Repository.new_instance("t", slow_nginx.base_url, cache_dir=cache_dir).prepare(
        Repository.new_instance("t", slow_nginx.base_url, cache_dir=cache_dir).resolve(MRL_),  # type: ignore[arg-type]
        progress=False,
    )
    view = tmp_path / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(cache_dir), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        with pytest.raises(OSError):
            (view / "probe").touch()
        child = subprocess.run(
            [sys.executable, str(CHILD), slow_nginx.base_url, str(view)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(["umount", str(view)], check=True)
    assert child.returncode == 0, child.stderr
    assert tree(Path(child.stdout.strip().replace(str(view), str(cache_dir)))) == EXPECTED
