"""Crash safety (issue 4, point 3): a real child process is SIGKILLed at many points of prepare.

After each kill, no directory may exist that a later prepare trusts unless it is complete and
verified; the next prepare finishes the job (resuming the download where it can) and cleans up
what the dead process left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from repository import MRL, RemoteRepository
from repository.verify import verify_directory
from tests.conftest import leftovers, tree
from tests.servers.nginx import NginxServer
from tests.test_concurrency import CHILD, EXPECTED, slow_nginx

__all__ = ["slow_nginx"]

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")


@pytest.mark.parametrize(
    "point",
    [
        "download:100000",
        "download:1200000",
        "extract:200000",
        "manifest",
        "rename",
        "cleanup",
    ],
)
def test_killed_prepare_is_never_trusted_half_done_and_is_finished_later(
    slow_nginx: NginxServer, tmp_path: Path, point: str
) -> None:
    cache_dir = tmp_path / "cache"
    killed = subprocess.run(
        [sys.executable, str(CHILD), slow_nginx.base_url, str(cache_dir), "--kill-at", point],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    repo = RemoteRepository("t", slow_nginx.base_url, cache_dir=cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    target = repo.get_resource_directory(artifact)
    if repo.is_prepared(artifact):
        assert point == "cleanup", (
            "only a process killed after the rename leaves a trusted directory"
        )
        assert verify_directory(target).ok and tree(target) == EXPECTED
    else:
        assert not target.exists()
        assert leftovers(cache_dir), "the dead process's work directory is still there"
    slow_nginx.clear_log()

    repo.prepare(artifact, progress=False)
    assert tree(target) == EXPECTED and verify_directory(target).ok
    assert leftovers(cache_dir) == [], "the next prepare removes what the dead process left"
    logged = [r for r in slow_nginx.requests() if "/1.0/" in r.uri]
    if point.startswith("download"):
        assert any(r.range for r in logged), "the next prepare resumes the interrupted download"
    if point.startswith("extract"):
        # The archive may have arrived whole before its extraction got that far (the network
        # runs ahead of the extractor): then it is not fetched at all, else only its rest.
        archive_gets = [r for r in logged if r.uri.endswith("bundle.tar.gz")]
        assert all(r.range for r in archive_gets), "what arrived is not fetched again"
    if point == "cleanup":
        assert logged == []
    downloads = cache_dir / ".tmp" / "downloads"
    if point != "cleanup":
        assert list(downloads.iterdir()) == []
