"""repository: fetch ML models and data sets the way Maven fetches jars.

Resolve an artifact by MRL, version range and properties, then prepare it: download, verify and
extract its items into a local cache, atomically.

>>> import repository
>>> repo = repository.Repository.new_instance("zoo", "examples/mlrepo")  # doctest: +SKIP
>>> mrl = MRL.model("cv/image_classification", "ai.djl.example", "tiny_mlp")  # doctest: +SKIP
>>> artifact = repo.resolve(mrl, "[0.0.1,)", {"layers": "4"})  # doctest: +SKIP
>>> repo.prepare(artifact)  # doctest: +SKIP
"""

from repository.base import ProgressCallback, Repository
from repository.errors import (
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
from repository.metadata import Artifact, Item, License, Metadata, dump_metadata, load_metadata
from repository.mrl import MRL
from repository.registry import RepositoryFactory, register_repository_factory
from repository.simple import SimpleRepository
from repository.version import Version, VersionRange

__version__ = "0.1.0"

__all__ = [
    "MRL",
    "Artifact",
    "ArtifactNotFoundError",
    "ChecksumMismatchError",
    "DownloadError",
    "ExtractionError",
    "ExtractionLimits",
    "InstallError",
    "InvalidMRLError",
    "InvalidVersionError",
    "Item",
    "License",
    "LocalRepository",
    "Metadata",
    "MetadataError",
    "OfflineError",
    "ProgressCallback",
    "Repository",
    "RepositoryError",
    "RepositoryFactory",
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
