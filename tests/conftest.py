"""Shared fixtures: a clean environment, a private cache, builders of repositories and archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from repository.transfer import wait_for_discards
from tests.servers.fixtures import fault_server, nginx_factory, other_host_server, raw_server
from tests.servers.moto import moto_server, s3_bucket

__all__ = [
    "fault_server",
    "moto_server",
    "nginx_factory",
    "other_host_server",
    "raw_server",
    "s3_bucket",
]

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No REPOSITORY_* variable leaks in, and nothing is written to the user's real cache."""
    import os

    for name in list(os.environ):
        if name.startswith("REPOSITORY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REPOSITORY_CACHE_DIR", str(tmp_path_factory.mktemp("default-cache")))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def tar_bytes(members: dict[str, bytes], compression: str = "") -> bytes:
    """A tar archive of ``members``, compressed with "" (none), "gz" or "zst"."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return compress(raw.getvalue(), compression)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return raw.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gz":
        return gzip.compress(data, mtime=0)
    if compression == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


def item_entry(uri: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """A metadata.json item for ``data`` with its real sha1, sha256 and size."""
    return {
        "uri": uri,
        "sha1Hash": hashlib.sha1(data).hexdigest(),
        "sha256Hash": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **extra,
    }


RepoBuilder = Callable[..., Path]


@pytest.fixture
def make_local_repo(tmp_path: Path) -> RepoBuilder:
    """Build a local repository: ``make_local_repo(artifacts, files={relative uri: bytes})``.

    ``artifacts`` is the metadata's artifact list; the metadata goes to the MRL path of
    ``model/cv/image_classification/ai.djl.test/resnet`` unless ``mrl_path`` says otherwise.
    """
    counter = iter(range(1000))

    def build(
        artifacts: list[dict[str, Any]],
        files: dict[str, bytes] | None = None,
        *,
        mrl_path: str = "model/cv/image_classification/ai/djl/test/resnet",
        root: Path | None = None,
        **fields: Any,
    ) -> Path:
        repo = root or tmp_path / f"mlrepo{next(counter)}"
        folder = repo / mrl_path
        folder.mkdir(parents=True, exist_ok=True)
        for relative, data in (files or {}).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        parts = mrl_path.split("/")
        metadata = {
            "metadataVersion": "0.2",
            "resourceType": parts[0],
            "application": "/".join(parts[1:-4]) if parts[0] == "model" else parts[1],
            "groupId": "ai.djl.test",
            "artifactId": parts[-1],
            "artifacts": artifacts,
            **fields,
        }
        (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
        return repo

    return build


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` (dotfiles excluded) by POSIX relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def leftovers(root: Path) -> list[str]:
    """Work and trash directories or spool files left anywhere below ``root`` (once the
    partial downloads this process is deleting in the background are gone)."""
    wait_for_discards()
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.name.endswith((".part", ".trash"))
    )


class OpenedFiles(list[str]):
    """Paths opened while recording, with the mode of each open in :attr:`modes`."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[tuple[str, str]] = []


@pytest.fixture
def opened_files() -> Iterator[OpenedFiles]:
    """Record every file this process opens while the fixture is active (an audit hook)."""
    import sys

    recorded = OpenedFiles()
    active = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event == "open" and isinstance(args[0], str | bytes | Path):
            recorded.append(str(args[0]))
            recorded.modes.append((str(args[0]), str(args[1])))

    sys.addaudithook(hook)
    yield recorded
    active[0] = False
