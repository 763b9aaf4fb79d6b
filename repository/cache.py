"""Where the cache is, and where each thing lives inside it. Pure path logic; nothing is created.

Layout under the cache root (see README "Cache layout")::

    <root>/
      CACHEDIR.TAG                          marks the folder for backup tools
      repos/<repository key>/               one folder per repository (scheme, place, URI hash)
        metadata/<mrl path>metadata.json    cached copies of remote metadata
        artifacts/<mrl path><version>/<name>/   a prepared artifact (the resource directory)
      .locks/ , .tmp/                       bookkeeping (locks, transfers in progress)

``<mrl path>`` is ``MRL.path`` (``model/cv/image_classification/ai/djl/pytorch/resnet/``),
``<version>`` the artifact's version (``_`` when it has none) and ``<name>`` the artifact's name
(``_`` when it has none). Because the repository key is part of the path, two repositories that
serve the same MRL never share files.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

__all__ = ["CACHE_DIR_ENV", "cache_root", "repository_key"]

CACHE_DIR_ENV = "REPOSITORY_CACHE_DIR"
APP_NAME = "repository"
MANIFEST_NAME = ".repository-manifest.json"
NO_SEGMENT = "_"

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by repository.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: the argument, else ``$REPOSITORY_CACHE_DIR``, else the user cache folder.

    Nothing is created here; the folder appears when something is first written to it.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser().absolute()
    from_env = os.environ.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser().absolute()
    return platformdirs.user_cache_path(APP_NAME, appauthor=False)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def repository_key(base_uri: str) -> str:
    """A folder name for a repository: readable parts of its URI and a hash of all of it.

    >>> repository_key("https://mlrepo.djl.ai/")
    'https-mlrepo.djl.ai-692fd304ee'
    >>> repository_key("file:///data/models/mlrepo/")
    'file-mlrepo-b3d540e8f1'
    """
    parts = urlsplit(base_uri)
    scheme = parts.scheme or "file"
    place = parts.netloc if parts.netloc and scheme != "file" else ""
    if not place:
        place = Path(parts.path.rstrip("/")).name or "root"
    slug = _UNSAFE.sub("_", place)[:40]
    digest = hashlib.sha256(base_uri.encode("utf-8")).hexdigest()[:10]
    return f"{scheme}-{slug}-{digest}"


def path_segment(value: str | None) -> str:
    """A version or artifact name as one path segment (``_`` for none).

    :raises ValueError: when the value could climb or hide a separator.
    """
    if not value:
        return NO_SEGMENT
    if value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        raise ValueError(f"cannot be used as a folder name: {value!r}")
    return value
