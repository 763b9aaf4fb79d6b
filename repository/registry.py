"""Choose a repository class by URL scheme, through factories that users can add.

Built in: ``file`` (and plain paths), ``http`` and ``https``, and the object-store schemes
(``s3``, ``gs``, ``az``...) whose fsspec package is installed. Installed packages add factories
through the entry-point group ``repository.factories`` (an entry point names a factory class or
instance), and programs through :func:`register_repository_factory`; for each scheme the last
one registered wins.
"""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from repository.cache import cache_root
from repository.errors import UnsupportedSchemeError

if TYPE_CHECKING:
    from repository.base import Repository

__all__ = ["RepositoryFactory", "new_repository", "register_repository_factory", "url_scheme"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "repository.factories"


@runtime_checkable
class RepositoryFactory(Protocol):
    """Makes repositories for some URL schemes."""

    def supported_schemes(self) -> set[str]:
        """The URL schemes (lower case, e.g. ``{"s3"}``) this factory serves."""
        ...

    def new_instance(self, name: str, uri: str) -> Repository:
        """Create a repository named ``name`` for ``uri``."""
        ...


_registry: dict[str, RepositoryFactory] = {}
_defaults_loaded = False


def _load_defaults() -> None:
    global _defaults_loaded  # noqa: PLW0603 - one-time lazy initialisation of the table
    if _defaults_loaded:
        return
    _defaults_loaded = True
    from repository.local import FileRepositoryFactory
    from repository.objectstore import ObjectStoreRepositoryFactory
    from repository.remote import RemoteRepositoryFactory

    explicit = dict(_registry)
    _add(FileRepositoryFactory())
    _add(RemoteRepositoryFactory())
    _add(ObjectStoreRepositoryFactory())
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            factory = loaded() if isinstance(loaded, type) else loaded
        except Exception:  # a broken plug-in must not break every repository
            logger.exception("Cannot load repository factory %s", entry_point.value)
            continue
        _add(factory)
    _registry.update(explicit)  # explicit registrations made before first use still win


def _add(factory: RepositoryFactory) -> None:
    for scheme in factory.supported_schemes():
        _registry[scheme.lower()] = factory


def register_repository_factory(factory: RepositoryFactory) -> None:
    """Serve the factory's schemes with it from now on, replacing earlier factories."""
    _load_defaults()
    _add(factory)


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def url_scheme(location: str) -> str:
    """The scheme of a URL, or ``file`` for a plain path (a Windows drive is not a scheme).

    >>> [url_scheme(u) for u in ("https://h/x", "data/models", "file:/x", "C:/x")]
    ['https', 'file', 'file', 'file']
    """
    match = _SCHEME.match(location)
    if match is None or len(match.group(1)) == 1:
        return "file"
    return match.group(1).lower()


def new_repository(
    name: str, location: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
) -> Repository:
    """Create the repository for a path or URL through the factory of its scheme.

    :raises UnsupportedSchemeError: naming the known schemes, when none serves this one.
    """
    _load_defaults()
    uri = os.fspath(location)
    scheme = url_scheme(uri)
    factory = _registry.get(scheme)
    if factory is None:
        known = sorted(_registry)
        raise UnsupportedSchemeError(
            f"No repository factory for scheme {scheme!r} in {uri!r}; known schemes: "
            + ", ".join(known),
            scheme=scheme,
            known=known,
        )
    repository = factory.new_instance(name, uri)
    if cache_dir is not None:
        repository.cache_root = cache_root(cache_dir)
    return repository
