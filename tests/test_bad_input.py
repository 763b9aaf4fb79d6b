"""The bad-input corpus (issue 4, point 6): each hostile input, its error class, nothing left.

Every case is served by the scripted server on 127.0.0.1 and prepared by a RemoteRepository;
after the error, the cache holds no resource directory, no work directory and no partial
download, and nothing was written outside the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from repository import (
    MRL,
    ChecksumMismatchError,
    DownloadError,
    MetadataError,
    RemoteRepository,
    RepositoryError,
    UnsafeArchiveError,
)
from repository.transfer import RetryPolicy
from tests.conftest import item_entry, leftovers
from tests.servers.faultserver import FaultServer, LieContentLength
from tests.test_extract import Zeros

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")
BASE = "/model/cv/image_classification/ai/djl/test/resnet/"


def tar_zst_bomb() -> bytes:
    out = io.BytesIO()
    with (
        zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as sink,
        tarfile.open(fileobj=sink, mode="w|") as archive,
    ):
        info = tarfile.TarInfo("zeros.bin")
        info.size = 2 << 30  # 2 GiB of zeros in a few hundred KiB
        archive.addfile(info, Zeros(info.size))
    return out.getvalue()


def zip_header_mismatch() -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("aaaa.txt", b"harmless")
    data = raw.getvalue()
    local_name_at = 30  # the local file header's name follows its 30 fixed bytes
    assert data[local_name_at : local_name_at + 8] == b"aaaa.txt"
    return data[:local_name_at] + b"../x.txt" + data[local_name_at + 8 :]


def zip_duplicates() -> bytes:
    raw = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(raw, "w") as archive:
        warnings.simplefilter("ignore")
        archive.writestr("model.bin", b"first")
        archive.writestr("model.bin", b"second")
    return raw.getvalue()


def tar_symlink_escape() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        link = tarfile.TarInfo("weights")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../../../etc"
        archive.addfile(link)
    return raw.getvalue()


def artifact_with(items: dict[str, Any], **artifact: Any) -> bytes:
    return json.dumps(
        {
            "metadataVersion": "0.2",
            "groupId": "ai.djl.test",
            "artifactId": "resnet",
            "artifacts": [{"version": "1.0", "name": "r", "files": items, **artifact}],
        }
    ).encode()


Case = Callable[[FaultServer], None]


def serve_item(name: str, data: bytes, **entry: Any) -> Case:
    def setup(server: FaultServer) -> None:
        server.add_file(
            BASE + "metadata.json", artifact_with({"a": item_entry(f"1.0/{name}", data, **entry)})
        )
        server.add_file(BASE + f"1.0/{name}", data)

    return setup


def serve_metadata(text: bytes) -> Case:
    def setup(server: FaultServer) -> None:
        server.add_file(BASE + "metadata.json", text)

    return setup


def lying_server(server: FaultServer) -> None:
    data = hashlib.shake_256(b"lie").digest(200_000)
    server.add_file(BASE + "metadata.json", artifact_with({"a": item_entry("1.0/a.bin", data)}))
    server.add_file(BASE + "1.0/a.bin", data, faults=[LieContentLength(150_000, times=None)])


def wrong_checksum(server: FaultServer) -> None:
    entry = item_entry("1.0/a.bin", b"expected")
    server.add_file(BASE + "metadata.json", artifact_with({"a": entry}))
    server.add_file(BASE + "1.0/a.bin", b"tampered")


CORPUS: dict[str, tuple[Case, type[RepositoryError]]] = {
    "metadata: not JSON": (serve_metadata(b"<html>oops</html>"), MetadataError),
    "metadata: artifacts is not a list": (
        serve_metadata(b'{"artifacts": {"a": 1}}'),
        MetadataError,
    ),
    "metadata: version of the wrong type": (
        serve_metadata(b'{"artifacts": [{"version": 1.5}]}'),
        MetadataError,
    ),
    "metadata: a huge declared size": (
        serve_metadata(artifact_with({"a": {"uri": "a", "size": 10**20}})),
        MetadataError,
    ),
    "metadata: a huge file": (
        serve_metadata(b'{"artifacts": [], "pad": "' + b"x" * (17 << 20) + b'"}'),
        DownloadError,
    ),
    "metadata: uri climbing with ..": (
        serve_metadata(artifact_with({"a": {"uri": "../../../../secret"}})),
        MetadataError,
    ),
    "metadata: file uri in a remote repository": (
        serve_metadata(artifact_with({"a": {"uri": "file:///etc/passwd"}})),
        MetadataError,
    ),
    "metadata: item name escaping": (
        serve_metadata(artifact_with({"a": {"uri": "a.bin", "name": "../../evil"}})),
        MetadataError,
    ),
    "metadata: absolute item name": (
        serve_metadata(artifact_with({"a": {"uri": "a.bin", "name": "/tmp/evil"}})),
        MetadataError,
    ),
    "metadata: artifact name escaping": (
        serve_metadata(artifact_with({}, name="../../evil")),
        MetadataError,
    ),
    "archive: zip local and central headers disagree": (
        serve_item("m.zip", zip_header_mismatch()),
        UnsafeArchiveError,
    ),
    "archive: zip duplicate entries": (serve_item("m.zip", zip_duplicates()), UnsafeArchiveError),
    "archive: tar.zst bomb": (serve_item("m.tar.zst", tar_zst_bomb()), UnsafeArchiveError),
    "archive: tar symlink escaping": (
        serve_item("m.tar", tar_symlink_escape()),
        UnsafeArchiveError,
    ),
    "checksum mismatch": (wrong_checksum, ChecksumMismatchError),
    "server lies about Content-Length": (lying_server, ChecksumMismatchError),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_input_gets_its_error_and_leaves_nothing(
    fault_server: FaultServer, tmp_path: Path, case: str
) -> None:
    setup, expected = CORPUS[case]
    setup(fault_server)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    cache = sandbox / "cache"
    repo = RemoteRepository(
        "t", fault_server.base_url, cache_dir=cache, retry=RetryPolicy(attempts=2, backoff=0.01)
    )
    with pytest.raises(expected) as caught:
        artifact = repo.resolve(MRL_)
        assert artifact is not None
        repo.prepare(artifact, progress=False)
    assert str(caught.value)
    assert leftovers(cache) == []
    artifacts = cache / "repos" / repo.cache_directory.name / "artifacts"
    assert not artifacts.exists() or not [p for p in artifacts.rglob("*") if p.is_file()]
    downloads = cache / ".tmp" / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []
    assert sorted(p.name for p in sandbox.iterdir()) in ([], ["cache"])
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()
