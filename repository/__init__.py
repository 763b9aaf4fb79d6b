"""repository: fetch ML models and data sets the way Maven fetches jars.

Resolve an artifact by MRL, version range and properties, then prepare it: download, verify and
extract its items into a local cache, atomically::

    from repository import MRL, Repository

    repo = Repository.new_instance("zoo", "examples/mlrepo")
    mrl = MRL.model("cv/image_classification", "ai.djl.example", "tiny_mlp")
    artifact = repo.resolve(mrl, "[0.0.1,)", {"layers": "4"})
    repo.prepare(artifact)

Names are imported on first use, so that ``import repository`` (and the command line's
``--help``) stays quick and loads neither httpx nor pydantic until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repository.assets import AssetInfo, AssetsManager, AssetSpec, AssetStorage
    from repository.assets.errors import (
        AssetExistsError,
        AssetNotFoundError,
        InvalidAssetSpecError,
    )
    from repository.base import Repository
    from repository.errors import (
        ArtifactExistsError,
        ArtifactNotFoundError,
        ChecksumMismatchError,
        DownloadError,
        ExtractionError,
        InstallError,
        InvalidMRLError,
        InvalidVersionError,
        MetadataError,
        OfflineError,
        RepositoryError,
        UnsafeArchiveError,
        UnsupportedSchemeError,
    )
    from repository.extract import ExtractionLimits
    from repository.local import LocalRepository
    from repository.metadata import (
        Artifact,
        Item,
        License,
        Metadata,
        dump_metadata,
        load_metadata,
    )
    from repository.mrl import MRL
    from repository.objectstore import ObjectStoreRepository
    from repository.progress import ProgressCallback
    from repository.registry import RepositoryFactory, register_repository_factory
    from repository.remote import RemoteRepository
    from repository.simple import SimpleRepository
    from repository.transfer import RetryPolicy
    from repository.version import Version, VersionRange

__version__ = "0.1.0"

_SOURCES = {
    "AssetInfo": "repository.assets",
    "AssetSpec": "repository.assets",
    "AssetStorage": "repository.assets",
    "AssetsManager": "repository.assets",
    "AssetExistsError": "repository.assets.errors",
    "AssetNotFoundError": "repository.assets.errors",
    "InvalidAssetSpecError": "repository.assets.errors",
    "ObjectStoreRepository": "repository.objectstore",
    "Repository": "repository.base",
    "ArtifactExistsError": "repository.errors",
    "ArtifactNotFoundError": "repository.errors",
    "ChecksumMismatchError": "repository.errors",
    "DownloadError": "repository.errors",
    "ExtractionError": "repository.errors",
    "InstallError": "repository.errors",
    "InvalidMRLError": "repository.errors",
    "InvalidVersionError": "repository.errors",
    "MetadataError": "repository.errors",
    "OfflineError": "repository.errors",
    "RepositoryError": "repository.errors",
    "UnsafeArchiveError": "repository.errors",
    "UnsupportedSchemeError": "repository.errors",
    "ExtractionLimits": "repository.extract",
    "LocalRepository": "repository.local",
    "Artifact": "repository.metadata",
    "Item": "repository.metadata",
    "License": "repository.metadata",
    "Metadata": "repository.metadata",
    "dump_metadata": "repository.metadata",
    "load_metadata": "repository.metadata",
    "MRL": "repository.mrl",
    "ProgressCallback": "repository.progress",
    "RepositoryFactory": "repository.registry",
    "register_repository_factory": "repository.registry",
    "RemoteRepository": "repository.remote",
    "SimpleRepository": "repository.simple",
    "RetryPolicy": "repository.transfer",
    "Version": "repository.version",
    "VersionRange": "repository.version",
}

__all__ = [
    "MRL",
    "Artifact",
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "AssetExistsError",
    "AssetInfo",
    "AssetNotFoundError",
    "AssetSpec",
    "AssetStorage",
    "AssetsManager",
    "ChecksumMismatchError",
    "DownloadError",
    "ExtractionError",
    "ExtractionLimits",
    "InstallError",
    "InvalidAssetSpecError",
    "InvalidMRLError",
    "InvalidVersionError",
    "Item",
    "License",
    "LocalRepository",
    "Metadata",
    "MetadataError",
    "ObjectStoreRepository",
    "OfflineError",
    "ProgressCallback",
    "RemoteRepository",
    "Repository",
    "RepositoryError",
    "RepositoryFactory",
    "RetryPolicy",
    "SimpleRepository",
    "UnsafeArchiveError",
    "UnsupportedSchemeError",
    "Version",
    "VersionRange",
    "__version__",
    "dump_metadata",
    "load_metadata",
    "register_repository_factory",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'repository' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
