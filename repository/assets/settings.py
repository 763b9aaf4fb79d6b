"""The environment the assets manager reads: offline mode and the assets directory.

Read here and nowhere else in the package, at the moment of use (never at import time), so that
a program or the command line may set them late.
"""

from __future__ import annotations

import os
from pathlib import Path

from repository.cache import cache_root
from repository.transfer import OFFLINE_ENV, offline_from_env

__all__ = ["ASSETS_DIR_ENV", "OFFLINE_ENV", "default_assets_dir", "offline_mode"]

ASSETS_DIR_ENV = "REPOSITORY_ASSETS_DIR"


def offline_mode(offline: bool | None = None) -> bool:
    """True when no network call may be made: the argument, else ``$REPOSITORY_OFFLINE``
    (read as :func:`repository.transfer.offline_from_env` reads it)."""
    if offline is not None:
        return offline
    return offline_from_env()


def default_assets_dir(assets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The assets directory: the argument, else ``$REPOSITORY_ASSETS_DIR``, else
    ``<cache root>/assets``. Nothing is created here."""
    if assets_dir is not None:
        return Path(assets_dir).expanduser().absolute()
    from_env = os.environ.get(ASSETS_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser().absolute()
    return cache_root() / "assets"
