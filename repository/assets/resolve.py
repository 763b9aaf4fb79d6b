"""Which version of an asset a fetch uses, and whether it needs the storage. Pure decisions.

- A complete version present locally (with its success marker) is used as it is: the storage
  is not even asked (:func:`needs_storage` is False).
- Otherwise the candidates are the local versions, and the versions the storage lists when it
  was asked (it is not without storage or in offline mode). The latest candidate that the
  spec's version matches wins (``1`` matches ``1.x``, never ``10.0``); it is used from the
  local copy when present there, and downloaded otherwise.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from repository.assets.versioning import VersioningSystem

__all__ = ["Resolution", "needs_storage", "resolve_version"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """The version a fetch uses, and whether its local copy serves (else it is downloaded)."""

    version: str
    local: bool


def needs_storage(
    version: str | None, versioning: VersioningSystem, local: Collection[str]
) -> bool:
    """False only when ``version`` is complete and present locally.

    >>> from repository.assets.versioning import MajorMinorVersioning
    >>> mm = MajorMinorVersioning()
    >>> [needs_storage(version, mm, {"1.0"}) for version in ("1.0", "1", None)]
    [False, True, True]
    """
    return not (version is not None and versioning.is_complete(version) and version in local)


def resolve_version(
    version: str | None,
    versioning: VersioningSystem,
    local: Collection[str],
    remote: Collection[str] | None,
) -> Resolution | None:
    """The version to use for a spec's ``version`` (None: the latest), or None when none fits.

    :param local: the complete versions present locally with their success marker.
    :param remote: the versions the storage lists, or None when it was not asked.

    >>> from repository.assets.versioning import MajorMinorVersioning
    >>> mm = MajorMinorVersioning()
    >>> resolve_version("1", mm, {"1.0"}, None)
    Resolution(version='1.0', local=True)
    >>> resolve_version("1", mm, {"1.0"}, ["10.0", "1.2", "1.0"])
    Resolution(version='1.2', local=False)
    >>> resolve_version(None, mm, {"1.0"}, ["0.1"]), resolve_version("2", mm, {"1.0"}, None)
    (Resolution(version='1.0', local=True), None)
    """
    candidates = set(local) | set(remote or ())
    if version is not None and versioning.is_complete(version):
        chosen: str | None = version if version in candidates else None
    else:
        chosen = versioning.latest(candidates, version)
    if chosen is None:
        return None
    return Resolution(chosen, chosen in local)
