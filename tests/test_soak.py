"""Soak (issue 4, point 7): mixed prepare, verify and remove by several processes on one cache
while processes are being SIGKILLed; bounded in time (about 12 s) and size (a few MB).

At the end, every artifact the cache calls complete must be byte-for-byte correct.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from repository import MRL, RemoteRepository
from repository.verify import verify_directory
from tests.conftest import item_entry, leftovers, tar_bytes, tree
from tests.servers.fixtures import NginxFactory

WORKER = Path(__file__).with_name("child_soak.py")
MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "soak")
FOLDER = "model/cv/image_classification/ai/djl/test/soak"
WORKERS = 4
DURATION = 10.0


def build(root: Path) -> dict[str, dict[str, bytes]]:
    """Three artifacts of a plain file and a tar.gz each; returns their expected trees."""
    folder = root / FOLDER
    artifacts, expected = [], {}
    for index in range(3):
        version = f"1.{index}"
        (folder / version).mkdir(parents=True)
        weights = hashlib.shake_256(f"w{index}".encode()).digest(400_000 + 50_000 * index)
        members = {f"cfg/{n}.json": f"{index}-{n}".encode() * 100 for n in range(20)}
        archive = tar_bytes(members, "gz")
        (folder / version / "w.bin").write_bytes(weights)
        (folder / version / "cfg.tar.gz").write_bytes(archive)
        files = {
            "w": item_entry(f"{version}/w.bin", weights),
            "c": item_entry(f"{version}/cfg.tar.gz", archive),
        }
        artifacts.append({"version": version, "name": "s", "files": files})
        expected[version] = {"w.bin": weights, **{f"cfg/{k}": v for k, v in members.items()}}
    metadata = {
        "metadataVersion": "0.2",
        "groupId": "ai.djl.test",
        "artifactId": "soak",
        "artifacts": artifacts,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return expected


def test_soak_with_kills_leaves_only_correct_artifacts(
    nginx_factory: NginxFactory, tmp_path: Path
) -> None:
    expected = build(tmp_path / "www")
    nginx = nginx_factory(tmp_path / "www", extra_locations="location /model/ { limit_rate 4m; }")
    cache_dir = tmp_path / "cache"
    rng = random.Random(4)
    deadline = time.time() + DURATION

    def start(seed: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(WORKER), nginx.base_url, str(cache_dir), str(seed), str(deadline)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    workers = [start(seed) for seed in range(WORKERS)]
    kills = 0
    seed = WORKERS
    while time.time() < deadline - 1:
        time.sleep(rng.uniform(0.2, 0.6))
        victim = rng.randrange(WORKERS)
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        kills += 1
        workers[victim] = start(seed)
        seed += 1
    failures = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        if worker.returncode not in (0, -signal.SIGKILL):
            failures.append((worker.returncode, out, err[-2000:]))
    assert failures == []
    assert kills >= 10

    repo = RemoteRepository("soak", nginx.base_url, cache_dir=cache_dir)
    metadata = repo.locate(MRL_)
    assert metadata is not None
    complete = 0
    for artifact in metadata.artifacts:
        directory = repo.get_resource_directory(artifact)
        if repo.is_prepared(artifact):
            complete += 1
            assert verify_directory(directory).ok
            assert tree(directory) == expected[artifact.version or ""]
        repo.prepare(artifact, progress=False)
        assert tree(directory) == expected[artifact.version or ""]
    assert leftovers(cache_dir / "repos") == []
    print(f"{kills} kills; {complete} of 3 artifacts complete at the end")
