"""RemoteRepository against real servers on 127.0.0.1: nginx, and the scripted fault server.

Each test checks what the server saw (requests, Range headers, credentials), not only the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import xxhash

import repository.install
import repository.transfer
from repository import (
    MRL,
    ChecksumMismatchError,
    DownloadError,
    MetadataError,
    OfflineError,
    RemoteRepository,
    Repository,
    RetryPolicy,
)
from repository.cache import MANIFEST_NAME
from repository.transfer import (
    Partial,
    PartialDownloads,
    ResumingStream,
    _origin,
    parse_retry_after,
    wait_for_discards,
)
from repository.verify import verify_directory
from tests.conftest import OpenedFiles, compress, item_entry, leftovers, tar_bytes, tree
from tests.servers.faultserver import (
    ChangeContent,
    FaultServer,
    LieContentLength,
    RecordedRequest,
    Redirect,
    Reset,
    Response,
    ShortBody,
    Stall,
    Status,
)
from tests.servers.fixtures import NginxFactory

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
BASE = "/model/cv/image_classification/ai/djl/test/resnet/"
BIG = hashlib.shake_256(b"big").digest(3_000_000)
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, max_delay=0.05)


def metadata_for(items: dict[str, dict[str, Any]], version: str = "1.0") -> bytes:
    return json.dumps(
        {
            "metadataVersion": "0.2",
            "groupId": "ai.djl.test",
            "artifactId": "resnet",
            "application": "cv/image_classification",
            "artifacts": [{"version": version, "name": "r", "files": items}],
        }
    ).encode()


def serve(
    server: FaultServer,
    files: dict[str, bytes],
    *,
    declared: dict[str, bytes] | None = None,
    **options: Any,
) -> dict[str, str]:
    """Publish one artifact whose items are ``files`` (served under ``1.0/``); returns paths.

    ``declared`` overrides the content an item's hashes are computed from.
    """
    items = {
        name.split(".")[0]: item_entry(f"1.0/{name}", (declared or {}).get(name, data))
        for name, data in files.items()
    }
    server.add_file(BASE + "metadata.json", metadata_for(items))
    paths = {}
    for name, data in files.items():
        paths[name] = BASE + "1.0/" + name
        server.add_file(paths[name], data, **options.get(name, {}))
    return paths


def remote(server: FaultServer, cache_dir: Path, **options: Any) -> RemoteRepository:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("timeout", httpx.Timeout(3.0))
    return RemoteRepository("t", server.base_url, cache_dir=cache_dir, **options)


def prepare(repo: Repository, **filters: str) -> Any:
    artifact = repo.resolve(MRL_, None, filters or None)
    assert artifact is not None
    repo.prepare(artifact, progress=False)
    return artifact


def gets(server: FaultServer, path: str) -> list[RecordedRequest]:
    server.wait_idle()
    return [r for r in server.requests_for(path) if r.method == "GET"]


# -- 1. scheme registry and metadata cache ---------------------------------------------------


def test_http_urls_give_a_remote_repository(fault_server: FaultServer, cache_dir: Path) -> None:
    for url in (fault_server.base_url, "https://models.example.org/repo"):
        repo = Repository.new_instance("r", url, cache_dir=cache_dir)
        assert isinstance(repo, RemoteRepository) and repo.is_remote
    assert repo.base_uri == "https://models.example.org/repo/"


def test_metadata_is_cached_with_its_fetch_time_and_reused_without_a_request(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    serve(fault_server, {"a.txt": b"a"})
    repo = remote(fault_server, cache_dir)
    assert repo.locate(MRL_) is not None
    copy = repo.cache_directory / "metadata" / MRL_.path / "metadata.json"
    stamp = datetime.strptime(json.loads(copy.read_text())["lastUpdated"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(stamp.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    again = remote(fault_server, cache_dir)
    assert again.locate(MRL_) is not None and again.resolve(MRL_) is not None
    assert len(gets(fault_server, BASE + "metadata.json")) == 1


def test_expired_metadata_is_revalidated(fault_server: FaultServer, cache_dir: Path) -> None:
    serve(fault_server, {"a.txt": b"a"})
    repo = remote(fault_server, cache_dir, metadata_ttl=0)
    repo.locate(MRL_)
    assert repo.locate(MRL_) is not None
    requests = gets(fault_server, BASE + "metadata.json")
    assert len(requests) == 2
    assert requests[1].headers.get("If-None-Match") is not None
    assert requests[1].status == 304


def test_stale_copy_is_used_with_a_warning_when_the_refresh_fails(
    fault_server: FaultServer, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    serve(fault_server, {"a.txt": b"a"})
    remote(fault_server, cache_dir).locate(MRL_)
    fault_server.add_faults(BASE + "metadata.json", Status(500, times=None))
    repo = remote(fault_server, cache_dir, metadata_ttl=0)
    with caplog.at_level(logging.WARNING):
        assert repo.resolve(MRL_) is not None
    assert "refreshing it failed" in caplog.text
    assert len(gets(fault_server, BASE + "metadata.json")) == 1 + FAST_RETRY.attempts


def test_missing_metadata_is_none_and_broken_metadata_an_error(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    repo = remote(fault_server, cache_dir)
    assert repo.resolve(MRL_) is None
    fault_server.add_file(BASE + "metadata.json", b"{not json")
    with pytest.raises(MetadataError, match="not valid JSON"):
        repo.locate(MRL_)


# -- 2. offline ------------------------------------------------------------------------------


def test_offline_mode_sends_nothing(
    fault_server: FaultServer, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(fault_server, {"a.txt": b"a", "b.txt": b"b"})
    prepare(remote(fault_server, cache_dir))
    seen = len(fault_server.requests)
    offline = remote(fault_server, cache_dir, offline=True, metadata_ttl=0)
    artifact = prepare(offline)
    assert tree(offline.get_resource_directory(artifact)) == {"a.txt": b"a", "b.txt": b"b"}
    with pytest.raises(OfflineError) as caught:
        offline.resolve(MRL.model("cv", "ai.djl.test", "other"))
    assert "model/cv/ai/djl/test/other/metadata.json" in caught.value.url
    monkeypatch.setenv("REPOSITORY_OFFLINE", "1")
    from_env = Repository.new_instance("t", fault_server.base_url, cache_dir=cache_dir / "empty")
    with pytest.raises(OfflineError, match="Offline mode"):
        from_env.resolve(MRL_)
    assert len(fault_server.requests) == seen


def test_offline_prepare_names_the_item_it_needs(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    serve(fault_server, {"a.txt": b"a"})
    remote(fault_server, cache_dir).locate(MRL_)
    offline = remote(fault_server, cache_dir, offline=True)
    artifact = offline.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(OfflineError) as caught:
        offline.prepare(artifact, progress=False)
    assert caught.value.url.endswith(BASE + "1.0/a.txt")
    assert len(gets(fault_server, BASE + "1.0/a.txt")) == 0
    assert leftovers(cache_dir) == []


# -- 3. streamed, hashed while arriving, never read back ---------------------------------------


def test_items_stream_and_are_never_read_back(
    fault_server: FaultServer, cache_dir: Path, opened_files: OpenedFiles
) -> None:
    archive = tar_bytes({"w/weights.bin": BIG, "w/cfg.json": b"{}"}, "gz")
    serve(
        fault_server,
        {"big.bin": BIG, "model.tar.gz": archive, "tok.json.zst": compress(b"t" * 1000, "zst")},
    )
    repo = remote(fault_server, cache_dir)
    opened_files.clear()
    artifact = prepare(repo)
    opened = list(opened_files.modes)
    directory = repo.get_resource_directory(artifact)
    assert tree(directory) == {
        "big.bin": BIG,
        "model/w/weights.bin": BIG,
        "model/w/cfg.json": b"{}",
        "tok.json": b"t" * 1000,
    }
    downloads = str(cache_dir / ".tmp" / "downloads")
    partial_opens = [(path, mode) for path, mode in opened if path.startswith(downloads)]
    assert partial_opens, "downloads should pass through partial files"
    assert all("r" not in mode for path, mode in partial_opens if path.endswith("data")), (
        partial_opens
    )
    read_back = [
        path
        for path, mode in opened
        if path.startswith(str(directory)) and "r" in mode and not path.endswith(MANIFEST_NAME)
    ]
    assert read_back == []
    wait_for_discards()
    assert list((cache_dir / ".tmp" / "downloads").iterdir()) == []
    assert leftovers(cache_dir) == []
    # The partial file moved into place is recorded with the sha256 that verified it; the
    # files extracted from the stream with their XXH3.
    files = json.loads((directory / MANIFEST_NAME).read_text())["files"]
    assert files["big.bin"] == {"size": len(BIG), "sha256": hashlib.sha256(BIG).hexdigest()}
    weights = files["model/w/weights.bin"]
    assert weights == {"size": len(BIG), "xxh3_128": xxhash.xxh3_128(BIG).hexdigest()}
    assert verify_directory(directory).ok


def test_a_moved_download_keeps_its_strongest_source_digest_and_verify_uses_it(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    contents = {name: hashlib.shake_256(name.encode()).digest(2_000_000) for name in "abc"}
    declared = {
        "a": item_entry("1.0/a.bin", contents["a"]),  # sha1 and sha256
        "b": {"uri": "1.0/b.bin", "sha1Hash": hashlib.sha1(contents["b"]).hexdigest()},
        "c": {"uri": "1.0/c.bin"},  # nothing declared: sha256 is computed
    }
    fault_server.add_file(BASE + "metadata.json", metadata_for(declared))
    for name, data in contents.items():
        fault_server.add_file(f"{BASE}1.0/{name}.bin", data)
    repo = remote(fault_server, cache_dir)
    artifact = prepare(repo)
    directory = repo.get_resource_directory(artifact)
    files = json.loads((directory / MANIFEST_NAME).read_text())["files"]
    assert files == {
        "a.bin": {"size": 2_000_000, "sha256": hashlib.sha256(contents["a"]).hexdigest()},
        "b.bin": {"size": 2_000_000, "sha1": hashlib.sha1(contents["b"]).hexdigest()},
        "c.bin": {"size": 2_000_000, "sha256": hashlib.sha256(contents["c"]).hexdigest()},
    }
    assert verify_directory(directory).ok
    damaged = directory / "b.bin"
    damaged.write_bytes(b"x" + contents["b"][1:])  # same size: only the digest can tell
    assert verify_directory(directory).changed == ["b.bin"]


# -- 4. parallel over pooled connections, bounded --------------------------------------------


def test_items_download_in_parallel_with_a_bounded_pool(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    names = [f"part{i}.bin" for i in range(6)]
    contents = {name: name.encode() * 1000 for name in names}
    items = {name.split(".")[0]: item_entry(f"1.0/{name}", data) for name, data in contents.items()}
    fault_server.add_file(BASE + "metadata.json", metadata_for(items))
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most
    pair = threading.Barrier(2, timeout=5)

    def handler(name: str) -> Any:
        def answer(request: RecordedRequest) -> Response:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            try:
                pair.wait()  # only returns when two requests are served at the same time
            except threading.BrokenBarrierError:
                return Response(500)
            finally:
                with lock:
                    in_flight[0] -= 1
            return Response(200, body=contents[name])

        return answer

    for name in names:
        fault_server.add_route(BASE + "1.0/" + name, handler(name))
    repo = remote(fault_server, cache_dir, max_workers=2, retry=RetryPolicy(attempts=1))
    artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == contents
    assert in_flight[1] == 2
    item_connections = {r.connection_id for r in fault_server.requests if "/1.0/" in r.path}
    assert len(item_connections) == 2  # two pooled connections, reused for six items


# -- 5. resume -------------------------------------------------------------------------------


def test_dropped_connection_resumes_with_a_range_request(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    paths = serve(fault_server, {"big.bin": BIG}, **{"big.bin": {"faults": [Reset(1_000_000)]}})
    artifact = prepare(remote(fault_server, cache_dir))
    assert artifact is not None
    requests = gets(fault_server, paths["big.bin"])
    assert [r.range for r in requests] == [None, "bytes=1000000-"]
    assert requests[1].if_range == requests[0].headers.get("If-Range") or requests[1].if_range
    assert requests[1].status == 206


def test_short_body_and_stall_resume(fault_server: FaultServer, cache_dir: Path) -> None:
    archive = tar_bytes({"x/big.bin": BIG}, "zst")
    paths = serve(
        fault_server,
        {"big.bin": BIG, "arc.tar.zst": archive},
        **{
            "big.bin": {"faults": [ShortBody(500_000)]},
            "arc.tar.zst": {"faults": [Stall(400_000, seconds=2)]},
        },
    )
    repo = remote(fault_server, cache_dir, timeout=httpx.Timeout(5.0, read=0.5))
    artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == {"big.bin": BIG, "arc/x/big.bin": BIG}
    assert [r.range for r in gets(fault_server, paths["big.bin"])] == [None, "bytes=500000-"]
    resumed = gets(fault_server, paths["arc.tar.zst"])[1].range
    assert resumed is not None and resumed.startswith("bytes=") and resumed != "bytes=0-"


def test_server_without_range_support_restarts_and_skips_what_it_had(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    archive = tar_bytes({"x/big.bin": BIG}, "gz")
    paths = serve(
        fault_server,
        {"arc.tgz": archive},
        **{"arc.tgz": {"range_support": False, "faults": [Reset(600_000)]}},
    )
    repo = remote(fault_server, cache_dir)
    artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == {"arc/x/big.bin": BIG}
    requests = gets(fault_server, paths["arc.tgz"])
    assert len(requests) == 2 and requests[1].status == 200


@pytest.mark.parametrize("name", ["new.bin", "new.tar.gz"])
def test_content_changed_between_attempts_starts_over(
    fault_server: FaultServer, cache_dir: Path, name: str
) -> None:
    old, new = (tar_bytes({"f.bin": BIG[:n]}, "gz") for n in (2_000_000, 2_500_000))
    paths = serve(
        fault_server,
        {name: old},
        declared={name: new},
        **{name: {"faults": [Reset(300_000), ChangeContent(new)]}},
    )
    repo = remote(fault_server, cache_dir)
    artifact = prepare(repo)
    requests = gets(fault_server, paths[name])
    assert requests[1].range == "bytes=300000-" and requests[1].status == 200
    installed = repo.get_resource_directory(artifact)
    if name.endswith(".bin"):
        assert (installed / "new.bin").read_bytes() == new
    else:
        assert tree(installed) == {"new/f.bin": BIG[:2_500_000]}
    assert leftovers(cache_dir) == []


def test_corrupt_partial_file_is_caught_by_the_hash_and_downloaded_again(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    paths = serve(fault_server, {"big.bin": BIG}, **{"big.bin": {"faults": [Reset(1_000_000)]}})
    repo = remote(fault_server, cache_dir, retry=RetryPolicy(attempts=1))
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    with pytest.raises(DownloadError):
        repo.prepare(artifact, progress=False)
    (data,) = (cache_dir / ".tmp" / "downloads").glob("*/*/data")
    data.write_bytes(b"X" * data.stat().st_size)  # same length, wrong bytes
    repo.prepare(artifact, progress=False)
    assert (repo.get_resource_directory(artifact) / "big.bin").read_bytes() == BIG
    ranges = [r.range for r in gets(fault_server, paths["big.bin"])]
    assert ranges == [None, "bytes=1000000-", None]


def test_large_archives_are_extracted_in_a_second_thread_while_they_arrive(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    archive = tar_bytes({"w/weights.bin": BIG}, "zst")
    assert len(archive) >= Repository.small_item_size
    serve(fault_server, {"model.tar.zst": archive})
    extracting_in: list[str] = []
    receiving_in: list[str] = []
    original_extract = repository.install.extract_tar
    original_next = ResumingStream._next_chunk

    def recording_extract(*args: Any, **kwargs: Any) -> Any:
        extracting_in.append(threading.current_thread().name)
        return original_extract(*args, **kwargs)

    def recording_next(self: ResumingStream) -> bytes | None:
        receiving_in.append(threading.current_thread().name)
        return original_next(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(repository.install, "extract_tar", recording_extract)
        patch.setattr(ResumingStream, "_next_chunk", recording_next)
        repo = remote(fault_server, cache_dir)
        artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == {"model/w/weights.bin": BIG}
    assert extracting_in == ["repository-consume"]
    assert receiving_in and "repository-consume" not in receiving_in


def test_only_partial_files_of_streamed_archives_are_kept_out_of_the_page_cache(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    # A plain file is installed from its partial file, which must stay cached; an archive
    # extracted as it arrives keeps its partial file only to resume after a crash.
    archive = tar_bytes({"w/weights.bin": BIG}, "gz")
    serve(fault_server, {"model.tar.gz": archive, "plain.bin": BIG})
    uncached: list[str] = []

    class RecordingAppender(repository.transfer.UncachedAppender):
        def __init__(self, path: Any, **options: Any) -> None:
            super().__init__(path, **options)
            info = json.loads((Path(path).parent / "info.json").read_text())
            uncached.append(info["url"])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(repository.transfer, "UncachedAppender", RecordingAppender)
        repo = remote(fault_server, cache_dir)
        artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == {
        "model/w/weights.bin": BIG,
        "plain.bin": BIG,
    }
    assert len(uncached) == 1 and uncached[0].endswith("/model.tar.gz")


def test_small_items_resume_from_memory_and_leave_no_partial_files(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    small = BIG[:300_000]
    paths = serve(
        fault_server,
        {"small.bin": small, "arc.tar.gz": tar_bytes({"x/s.bin": small}, "gz")},
        **{
            "small.bin": {"faults": [Reset(120_000)]},
            "arc.tar.gz": {"faults": [ShortBody(100_000)]},
        },
    )
    claimed: list[str] = []
    repo = remote(fault_server, cache_dir)
    original_claim = repo._partials().claim

    def counting_claim(self: Any, key: str) -> Any:
        claimed.append(key)
        return original_claim(key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("repository.transfer.PartialDownloads.claim", counting_claim)
        artifact = prepare(repo)
    assert tree(repo.get_resource_directory(artifact)) == {"small.bin": small, "arc/x/s.bin": small}
    assert [r.range for r in gets(fault_server, paths["small.bin"])] == [None, "bytes=120000-"]
    assert [r.range for r in gets(fault_server, paths["arc.tar.gz"])] == [None, "bytes=100000-"]
    assert claimed == []  # no partial folder was made for them
    assert not (cache_dir / ".tmp" / "downloads").exists()


def test_items_at_or_above_the_small_size_keep_a_partial_file(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    small = BIG[:300_000]
    paths = serve(fault_server, {"small.bin": small}, **{"small.bin": {"faults": [Reset(120_000)]}})
    repo = remote(fault_server, cache_dir)
    repo.small_item_size = len(small)
    seen: list[int] = []
    original_next = ResumingStream._next_chunk

    def spying_next(self: ResumingStream) -> bytes | None:
        seen.append(self._partial.size if isinstance(self._partial, Partial) else -1)
        return original_next(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResumingStream, "_next_chunk", spying_next)
        artifact = prepare(repo)
    assert (repo.get_resource_directory(artifact) / "small.bin").read_bytes() == small
    assert seen and min(seen) >= 0  # a Partial on disk throughout
    assert [r.range for r in gets(fault_server, paths["small.bin"])] == [None, "bytes=120000-"]
    wait_for_discards()
    assert list((cache_dir / ".tmp" / "downloads").iterdir()) == []  # removed once installed


def test_partial_files_are_deleted_after_prepare_returns(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    # Freeing a gigabyte of blocks takes the file system a while; prepare does not wait.
    archive = tar_bytes({"w/weights.bin": BIG}, "gz")
    serve(fault_server, {"model.tar.gz": archive, "plain.bin": BIG})
    release = threading.Event()
    deleting_in: list[str] = []
    original = PartialDownloads.discard

    def slow_discard(partial: Partial) -> None:
        deleting_in.append(threading.current_thread().name)
        release.wait(10)
        original(partial)

    downloads = cache_dir / ".tmp" / "downloads"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PartialDownloads, "discard", staticmethod(slow_discard))
        repo = remote(fault_server, cache_dir)
        artifact = prepare(repo)
        assert tree(repo.get_resource_directory(artifact)) == {
            "model/w/weights.bin": BIG,
            "plain.bin": BIG,
        }
        assert len(list(downloads.iterdir())) == 2  # still there: prepare returned first
        release.set()
        wait_for_discards()
    assert deleting_in and set(deleting_in) == {"repository-discard"}
    assert list(downloads.iterdir()) == []


def test_killed_process_leaves_a_partial_that_the_next_run_resumes(
    nginx_factory: NginxFactory, tmp_path: Path, cache_dir: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "www"
    folder = root / BASE.strip("/")
    (folder / "1.0").mkdir(parents=True)
    (folder / "1.0" / "big.bin").write_bytes(BIG)
    (folder / "metadata.json").write_bytes(metadata_for({"big": item_entry("1.0/big.bin", BIG)}))
    nginx = nginx_factory(root, extra_locations="location /model/ { limit_rate 400k; }")
    script = (
        "import sys; from repository import Repository, MRL\n"
        "repo = Repository.new_instance('t', sys.argv[1], cache_dir=sys.argv[2])\n"
        "a = repo.resolve(MRL.model('cv/image_classification', 'ai.djl.test', 'resnet'))\n"
        "repo.prepare(a, progress=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, nginx.base_url, str(cache_dir)])
    downloads = cache_dir / ".tmp" / "downloads"
    deadline = time.monotonic() + 20
    partial_size = 0
    while time.monotonic() < deadline and partial_size < 500_000:
        partial_size = (
            sum(p.stat().st_size for p in downloads.glob("*/*/data")) if downloads.exists() else 0
        )
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    kept = sum(p.stat().st_size for p in downloads.glob("*/*/data"))
    assert 0 < kept < len(BIG)
    nginx.clear_log()
    repo = RemoteRepository("t", nginx.base_url, cache_dir=cache_dir)
    artifact = prepare(repo)
    assert (repo.get_resource_directory(artifact) / "big.bin").read_bytes() == BIG
    item_requests = [r for r in nginx.requests(min_count=1) if r.uri.endswith("big.bin")]
    assert [r.range for r in item_requests] == [f"bytes={kept}-"]
    assert item_requests[0].status == 206
    assert list(downloads.iterdir()) == []


# -- 6. retries, permanent failures, timeouts ------------------------------------------------


def test_5xx_and_429_are_retried_honouring_retry_after(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    paths = serve(
        fault_server,
        {"a.bin": b"a" * 1000},
        **{
            "a.bin": {
                "faults": [Status(503, retry_after="1"), Status(500), Status(429, retry_after="0")]
            }
        },
    )
    prepare(remote(fault_server, cache_dir))
    requests = gets(fault_server, paths["a.bin"])
    assert [r.status for r in requests] == [503, 500, 429, 200]
    assert requests[1].time - requests[0].time >= 0.95  # Retry-After: 1 was honoured


def test_retries_are_bounded(fault_server: FaultServer, cache_dir: Path) -> None:
    paths = serve(fault_server, {"a.bin": b"a"}, **{"a.bin": {"faults": [Status(502, times=None)]}})
    with pytest.raises(DownloadError) as caught:
        prepare(remote(fault_server, cache_dir))
    assert caught.value.status == 502 and caught.value.url.endswith(paths["a.bin"])
    assert len(gets(fault_server, paths["a.bin"])) == FAST_RETRY.attempts
    assert leftovers(cache_dir) == []


@pytest.mark.parametrize("status", [404, 403, 410])
def test_other_4xx_fail_at_once(fault_server: FaultServer, cache_dir: Path, status: int) -> None:
    paths = serve(
        fault_server, {"a.bin": b"a"}, **{"a.bin": {"faults": [Status(status, times=None)]}}
    )
    with pytest.raises(DownloadError) as caught:
        prepare(remote(fault_server, cache_dir))
    assert caught.value.status == status
    assert caught.value.url == fault_server.url(paths["a.bin"])
    assert len(gets(fault_server, paths["a.bin"])) == 1


def test_a_stalled_server_cannot_hang_prepare(fault_server: FaultServer, cache_dir: Path) -> None:
    serve(
        fault_server, {"a.bin": BIG}, **{"a.bin": {"faults": [Stall(1000, seconds=30, times=None)]}}
    )
    repo = remote(
        fault_server,
        cache_dir,
        timeout=httpx.Timeout(5.0, read=0.3),
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )
    with pytest.raises(DownloadError, match="ReadTimeout"):
        prepare(repo)


def test_connection_refused_is_retried_then_reported(cache_dir: Path) -> None:
    repo = RemoteRepository("t", "http://127.0.0.1:9/", cache_dir=cache_dir, retry=FAST_RETRY)
    with pytest.raises(DownloadError, match="ConnectError") as caught:
        repo.locate(MRL_)
    assert caught.value.url == "http://127.0.0.1:9" + BASE + "metadata.json"


def test_backoff_grows_with_jitter_and_caps() -> None:
    policy = RetryPolicy(backoff=1.0, max_delay=8.0, max_retry_after=5.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert policy.delay(0, retry_after=3.0) == 3.0
    assert policy.delay(0, retry_after=100.0) == 5.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0


def test_server_lying_about_content_length_fails_verification(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    paths = serve(
        fault_server,
        {"a.bin": BIG[:100_000]},
        **{"a.bin": {"faults": [LieContentLength(50_000, times=None)]}},
    )
    with pytest.raises(ChecksumMismatchError):
        prepare(remote(fault_server, cache_dir))
    assert gets(fault_server, paths["a.bin"])
    assert leftovers(cache_dir) == [] and not any(p.is_file() for p in cache_dir.rglob(".tmp/**/*"))


# -- 7. progress -----------------------------------------------------------------------------


def test_progress_callback_totals_from_sizes_or_content_length(
    fault_server: FaultServer, cache_dir: Path
) -> None:
    items = {"a": {"uri": "1.0/a.bin"}, "b": item_entry("1.0/b.bin", b"b" * 5000)}
    fault_server.add_file(BASE + "metadata.json", metadata_for(items))
    fault_server.add_file(BASE + "1.0/a.bin", b"a" * 7000)
    fault_server.add_file(BASE + "1.0/b.bin", b"b" * 5000)
    repo = remote(fault_server, cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    calls: list[tuple[int, int | None]] = []
    repo.prepare(artifact, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (12_000, 12_000)
    dones = [done for done, _ in calls]
    assert dones == sorted(dones)


def test_nothing_is_printed_when_output_is_not_a_terminal(
    fault_server: FaultServer, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(fault_server, {"a.bin": BIG})
    repo = remote(fault_server, cache_dir)
    artifact = repo.resolve(MRL_)
    assert artifact is not None
    repo.prepare(artifact)  # progress=None: a bar only on a terminal
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_bar_is_drawn_on_a_terminal(fault_server: FaultServer, cache_dir: Path) -> None:
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    serve(fault_server, {"a.bin": BIG})
    script = (
        "import sys; from repository import Repository, MRL\n"
        "repo = Repository.new_instance('t', sys.argv[1], cache_dir=sys.argv[2])\n"
        "mrl = MRL.model('cv/image_classification', 'ai.djl.test', 'resnet')\n"
        "repo.prepare(repo.resolve(mrl))\n"
    )
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-c", script, fault_server.base_url, str(cache_dir)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert child.wait(timeout=30) == 0
    os.close(leader)
    assert b"100%" in output and b"resnet" in output


# -- 8. authentication -----------------------------------------------------------------------


def test_token_and_headers_go_to_the_repository_host_only(
    fault_server: FaultServer, other_host_server: FaultServer, cache_dir: Path
) -> None:
    other_host_server.add_file("/elsewhere/b.bin", b"b" * 100)
    items = {
        "a": item_entry("1.0/a.bin", b"a" * 100),
        "b": item_entry("1.0/b.bin", b"b" * 100),
        "c": item_entry(other_host_server.url("/elsewhere/b.bin"), b"b" * 100, name="c.bin"),
    }
    fault_server.add_file(BASE + "metadata.json", metadata_for(items))
    fault_server.add_file(BASE + "1.0/a.bin", b"a" * 100)
    fault_server.add_file(
        BASE + "1.0/b.bin", b"", faults=[Redirect(other_host_server.url("/elsewhere/b.bin"))]
    )
    repo = remote(fault_server, cache_dir, token="s3cr3t-token", headers={"X-Api-Key": "k3y"})
    prepare(repo)
    fault_server.wait_idle()
    other_host_server.wait_idle()
    for request in fault_server.requests:
        assert request.authorization == "Bearer s3cr3t-token"
        assert request.headers.get("X-Api-Key") == "k3y"
    assert len(other_host_server.requests) == 2  # the redirect and the absolute uri
    for request in other_host_server.requests:
        assert request.authorization is None and "X-Api-Key" not in request.headers


def test_netrc_and_url_credentials_are_used_and_never_shown(
    fault_server: FaultServer, cache_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    serve(fault_server, {"a.bin": b"a"}, **{"a.bin": {"faults": [Status(404, times=None)]}})
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine 127.0.0.1 login alice password n3trc-pass\n")
    repo = remote(fault_server, cache_dir, netrc_file=netrc_file)
    repo.locate(MRL_)
    assert (
        fault_server.requests[-1].authorization
        == httpx.BasicAuth("alice", "n3trc-pass")._auth_header
    )

    url = fault_server.base_url.replace("http://", "http://bob:ur1-pass@")
    with caplog.at_level(logging.DEBUG):
        with_userinfo = RemoteRepository("t", url, cache_dir=cache_dir / "2", retry=FAST_RETRY)
        artifact = with_userinfo.resolve(MRL_)
        assert artifact is not None
        with pytest.raises(DownloadError) as caught:
            with_userinfo.prepare(artifact, progress=False)
    assert (
        fault_server.requests[-1].authorization == httpx.BasicAuth("bob", "ur1-pass")._auth_header
    )
    shown = " ".join(
        [
            caplog.text,
            str(caught.value),
            caught.value.url,
            repr(with_userinfo),
            with_userinfo.base_uri,
        ]
    )
    for secret in ("ur1-pass", "n3trc-pass", "bob:"):
        assert secret not in shown


def test_query_strings_of_item_urls_never_reach_the_logs(
    fault_server: FaultServer, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A presigned item URL carries its credential in the query string: it is sent, never shown
    # (httpx's client would log every URL at INFO, query included).
    signed = fault_server.url(BASE + "1.0/signed.bin") + "?X-Amz-Signature=s1gnature-0f-item"
    fault_server.add_file(BASE + "1.0/signed.bin", BIG)
    fault_server.add_file(BASE + "1.0/small.bin", b"s" * 100)
    items = {
        "signed": item_entry(signed, BIG),
        "small": item_entry("1.0/small.bin" + "?token=s1gnature-0f-item", b"s" * 100),
    }
    fault_server.add_file(BASE + "metadata.json", metadata_for(items))
    with caplog.at_level(logging.DEBUG):
        artifact = prepare(remote(fault_server, cache_dir))
    assert (
        remote(fault_server, cache_dir).get_resource_directory(artifact) / "signed.bin"
    ).exists()
    targets = [r.target for r in fault_server.requests if r.path.endswith(".bin")]
    assert any("s1gnature-0f-item" in target for target in targets)  # it was sent
    assert "GET" in caplog.text and "signed.bin" in caplog.text  # requests are logged...
    assert "s1gnature-0f-item" not in caplog.text  # ...without their query strings


# -- nginx: the happy path and the access log -------------------------------------------------


def test_prepare_from_nginx_requests_each_file_once(
    nginx_factory: NginxFactory, cache_dir: Path
) -> None:
    examples = Path(__file__).parent.parent / "examples" / "mlrepo"
    nginx = nginx_factory(examples.resolve())
    repo = Repository.new_instance("zoo", nginx.base_url, cache_dir=cache_dir)
    mrl = MRL.model("cv/image_classification", "ai.djl.example", "tiny_mlp")
    artifact = repo.resolve(mrl, "[0.0.1,0.0.2)", {"layers": "4"})
    assert artifact is not None and artifact.version == "0.0.1"
    repo.prepare(artifact, progress=False)
    repo.prepare(artifact, progress=False)
    directory = repo.get_resource_directory(artifact)
    assert (directory / MANIFEST_NAME).exists()
    assert sorted(tree(directory)) == [
        "synset.txt",
        "tiny_mlp_4/tiny_mlp/synset.txt",
        "tiny_mlp_4/tiny_mlp/tiny_mlp-0000.params",
    ]
    logged = [(r.method, r.uri.rsplit("/", 2)[-2:], r.status) for r in nginx.requests(min_count=3)]
    assert sorted(logged) == sorted(
        [
            ("GET", ["tiny_mlp", "metadata.json"], 200),
            ("GET", ["tiny_mlp", "synset.txt"], 200),
            ("GET", ["0.0.1", "tiny_mlp_4.tar.gz"], 200),
        ]
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://h/a",
        "https://User:pw@Example.COM:8443/x?y#z",
        "http://[::1]:80/p",
        "http://h?x=1",
        "http://h#f",
        "HTTP://H:81",
        "http://evil.example\\@good.example/x",
        "http://good.example/a@evil.example/",
        "not a url",
    ],
)
def test_origins_are_what_urlsplit_says(url: str) -> None:
    # Credentials follow the origin; the parsed-once shortcut must agree with urlsplit.
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    assert _origin(url) == (parts.scheme, (parts.hostname or "").lower(), parts.port or default)
