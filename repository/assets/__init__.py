"""Assets by short specs (``some/asset:1.2[sub/path]``), as modelkit's assets manager has them.

Fetch into a local assets directory with modelkit's layout (:class:`AssetsManager`), from a
storage with modelkit's remote layout (:class:`AssetStorage`: a folder, ``http(s)://``
read-only, or ``s3://`` and the other fsspec schemes), and push new versions to it. Downloads are
verified against the sha256 the ``.meta`` records and installed atomically, with the core
library's installer.

>>> from repository.assets import AssetSpec
>>> AssetSpec.parse("category/asset:1[weights/model.bin]")
AssetSpec(name='category/asset', version='1', sub_part='weights/model.bin')
"""

from repository.assets.errors import (
    AssetError,
    AssetExistsError,
    AssetNotFoundError,
    InvalidAssetError,
    InvalidAssetSpecError,
    InvalidAssetVersionError,
    ObjectNotFoundError,
    UnknownVersioningSystemError,
    UnsupportedStorageOperationError,
    UploadError,
)
from repository.assets.manager import AssetInfo, AssetsManager
from repository.assets.meta import AssetFile, AssetMeta
from repository.assets.spec import AssetSpec
from repository.assets.storage import AssetStorage
from repository.assets.store import LocalFolderStore, ObjectStore, open_store
from repository.assets.versioning import (
    MajorMinorVersioning,
    SimpleDateVersioning,
    VersioningSystem,
    get_versioning_system,
    register_versioning_system,
)

__all__ = [
    "AssetError",
    "AssetExistsError",
    "AssetFile",
    "AssetInfo",
    "AssetMeta",
    "AssetNotFoundError",
    "AssetSpec",
    "AssetStorage",
    "AssetsManager",
    "InvalidAssetError",
    "InvalidAssetSpecError",
    "InvalidAssetVersionError",
    "LocalFolderStore",
    "MajorMinorVersioning",
    "ObjectNotFoundError",
    "ObjectStore",
    "SimpleDateVersioning",
    "UnknownVersioningSystemError",
    "UnsupportedStorageOperationError",
    "UploadError",
    "VersioningSystem",
    "get_versioning_system",
    "open_store",
    "register_versioning_system",
]
