"""Where assets live: the local assets directory and the storage's objects. Pure path logic.

Local, exactly modelkit's assets directory::

    ASSETS_DIR/<name parts>/<version>              a file asset
    ASSETS_DIR/<name parts>/.<version>.SUCCESS     ... and its success marker, beside it
    ASSETS_DIR/<name parts>/<version>/...          a directory asset
    ASSETS_DIR/<name parts>/<version>/.SUCCESS     ... and its success marker, inside it

In storage, under the prefix, modelkit's remote layout::

    <name>/<version>                  a file asset's data
    <name>/<version>/<path>           a directory asset's data, one object per file
    <name>/<version>.meta             the version's .meta (see repository.assets.meta)
    <name>.versions                   the versions index, newest first

Downloads work in ``.<version>.<random>.part`` folders beside the target (see
:func:`repository.install.work_directory`); those never count as versions.
"""

from __future__ import annotations

from pathlib import Path

from repository.assets.meta import DIRECTORY_MARKER
from repository.assets.spec import name_parts

__all__ = [
    "asset_key",
    "asset_path",
    "file_key",
    "marker_path",
    "meta_key",
    "versions_key",
]


def asset_key(name: str) -> str:
    """The name as it appears in object names: its segments joined by ``/``.

    >>> asset_key("category//asset"), versions_key("category/asset")
    ('category/asset', 'category/asset.versions')
    >>> meta_key("a/b", "1.0"), file_key("a/b", "1.0", "x/y.json")
    ('a/b/1.0.meta', 'a/b/1.0/x/y.json')
    """
    return "/".join(name_parts(name))


def versions_key(name: str) -> str:
    """The object listing the versions of ``name``."""
    return f"{asset_key(name)}.versions"


def meta_key(name: str, version: str) -> str:
    """The ``.meta`` object of one version."""
    return f"{asset_key(name)}/{version}.meta"


def file_key(name: str, version: str, path: str) -> str:
    """The object holding one file of a version (``path`` is ``.`` for a file asset)."""
    base = f"{asset_key(name)}/{version}"
    return base if path == "." else f"{base}/{path}"


def asset_path(assets_dir: Path, name: str, version: str) -> Path:
    """``ASSETS_DIR/<name parts>/<version>``.

    >>> asset_path(Path("/assets"), "category/asset", "1.0").as_posix()
    '/assets/category/asset/1.0'
    """
    return assets_dir.joinpath(*name_parts(name), version)


def marker_path(path: Path, *, is_directory: bool) -> Path:
    """The success marker of the asset at ``path``: inside a directory, beside a file.

    >>> marker_path(Path("a/1.0"), is_directory=False).as_posix()
    'a/.1.0.SUCCESS'
    >>> marker_path(Path("a/1.0"), is_directory=True).as_posix()
    'a/1.0/.SUCCESS'
    """
    if is_directory:
        return path / DIRECTORY_MARKER
    return path.with_name(f".{path.name}.SUCCESS")
