"""Versioning systems of assets: how versions look, order, match a partial version and grow.

Two are built in, as in modelkit: ``major_minor`` (``1.2``; ``1`` means the latest ``1.x``, in
numeric order) and ``simple_date`` (a UTC time ``2021-11-14T18-00-00Z``). Another system is
plugged in by subclassing :class:`VersioningSystem` and calling
:func:`register_versioning_system`. Pure: no I/O, except reading the clock for new dates.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from repository.assets.errors import InvalidAssetVersionError, UnknownVersioningSystemError

__all__ = [
    "MajorMinorVersioning",
    "SimpleDateVersioning",
    "VersioningSystem",
    "get_versioning_system",
    "register_versioning_system",
]

logger = logging.getLogger(__name__)

SortKey = tuple[int | str, ...]


class VersioningSystem(abc.ABC):
    """What a versioning system decides. Subclasses give :attr:`name` and the abstract methods.

    Versions are strings; :meth:`sort` puts the newest first, as modelkit's ``.versions`` does.
    """

    #: The name managers and storages choose the system by.
    name: ClassVar[str]

    @abc.abstractmethod
    def is_valid(self, version: str) -> bool:
        """True when ``version`` is a version (complete or partial) of this system."""

    @abc.abstractmethod
    def is_complete(self, version: str) -> bool:
        """True when ``version`` names one version, False when it is partial (``1``)."""

    @abc.abstractmethod
    def sort_key(self, version: str) -> SortKey:
        """A key that orders valid versions from oldest to newest."""

    @abc.abstractmethod
    def initial_version(self) -> str:
        """The version of an asset's first push."""

    @abc.abstractmethod
    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        """The version of the next push, given the existing ``versions``.

        :param bump_major: start a new major version instead of a new minor one, where the
            system has majors.
        :param major: the major whose next minor version is wanted (default: the latest's).
        :raises InvalidAssetVersionError: when ``major`` has no version yet.
        """

    def matches(self, partial: str, version: str) -> bool:
        """True when ``version`` is one that ``partial`` may resolve to.

        A complete version matches only itself; systems with partial versions override this.
        """
        return partial == version

    def check(self, version: str, *, spec: str | None = None) -> str:
        """Return ``version`` if it is valid, else raise naming ``spec`` (default: the version).

        :raises InvalidAssetVersionError: when the version is not one of this system.
        """
        if not self.is_valid(version):
            raise InvalidAssetVersionError(
                f"Invalid asset spec {spec or version!r}: {version!r} is not a {self.name} version",
                spec=spec or version,
                reason=f"not a {self.name} version",
                version=version,
                versioning=self.name,
            )
        return version

    def sort(self, versions: Iterable[str]) -> list[str]:
        """The distinct complete ``versions``, newest first; others are dropped with a warning."""
        valid = set()
        for version in versions:
            if self.is_valid(version) and self.is_complete(version):
                valid.add(version)
            else:
                logger.warning("Ignoring %r: not a complete %s version", version, self.name)
        return sorted(valid, key=lambda v: (self.sort_key(v), v), reverse=True)

    def latest(self, versions: Iterable[str], partial: str | None = None) -> str | None:
        """The newest of ``versions`` that ``partial`` matches (any when None), or None."""
        for version in self.sort(versions):
            if partial is None or self.matches(partial, version):
                return version
        return None


_MAJOR_MINOR = re.compile(r"(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?")


class MajorMinorVersioning(VersioningSystem):
    """``major.minor`` versions in numeric order; a bare major is partial.

    >>> mm = MajorMinorVersioning()
    >>> mm.sort(["0.2", "0.10", "2.0", "10.0", "1.9"])
    ['10.0', '2.0', '1.9', '0.10', '0.2']
    >>> mm.latest(["10.0", "1.2", "1.10"], "1"), mm.latest(["10.0"], "1")
    ('1.10', None)
    >>> mm.next_version(["0.9", "1.0"]), mm.next_version(["0.9", "1.0"], major="0")
    ('1.1', '0.10')
    >>> mm.next_version(["9.0"], bump_major=True), mm.next_version([])
    ('10.0', '0.0')
    """

    name = "major_minor"

    def is_valid(self, version: str) -> bool:
        """True for ``M`` and ``M.m`` with decimal digits (leading zeros allowed)."""
        return _MAJOR_MINOR.fullmatch(version) is not None

    def is_complete(self, version: str) -> bool:
        """True for ``M.m``; ``M`` is partial.

        >>> MajorMinorVersioning().is_complete("1"), MajorMinorVersioning().is_complete("1.0")
        (False, True)
        """
        match = _MAJOR_MINOR.fullmatch(version)
        return match is not None and match["minor"] is not None

    def sort_key(self, version: str) -> SortKey:
        """``(major, minor)`` as integers; a bare major counts as ``M.0``."""
        match = _MAJOR_MINOR.fullmatch(version)
        if match is None:
            raise ValueError(f"not a major_minor version: {version!r}")
        return (int(match["major"]), int(match["minor"] or 0))

    def matches(self, partial: str, version: str) -> bool:
        """A major matches every version with the same major, numerically (``1`` is not ``10``).

        >>> [MajorMinorVersioning().matches("1", v) for v in ("1.3", "10.0", "01.2")]
        [True, False, True]
        """
        if not self._is_major(partial):
            return partial == version
        return self.is_valid(version) and self.sort_key(version)[0] == int(partial)

    def _is_major(self, value: str) -> bool:
        return self.is_valid(value) and not self.is_complete(value)

    def initial_version(self) -> str:
        """``0.0``."""
        return "0.0"

    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        """The next minor of the latest version (of ``major``), or the next major.

        :raises InvalidAssetVersionError: when ``major`` is not a number or has no version.
        """
        ordered = self.sort(versions)
        if not ordered:
            return self.initial_version()
        if bump_major:
            return f"{int(self.sort_key(ordered[0])[0]) + 1}.0"
        base = ordered[0]
        if major is not None:
            found = self.latest(ordered, major) if self._is_major(major) else None
            if found is None:
                raise InvalidAssetVersionError(
                    f"Cannot update major {major!r}: not a major with versions among {ordered}",
                    spec=major,
                    reason="not a major with versions",
                    version=major,
                    versioning=self.name,
                )
            base = found
        current_major, current_minor = self.sort_key(base)
        return f"{current_major}.{int(current_minor) + 1}"


_SIMPLE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z")
_DATE_FORMAT = "%Y-%m-%dT%H-%M-%SZ"


class SimpleDateVersioning(VersioningSystem):
    """UTC times with ``-`` for ``:``, ordered as strings; every version is complete.

    >>> sd = SimpleDateVersioning(now=lambda: datetime(2021, 11, 15, 17, 30, 56, tzinfo=UTC))
    >>> sd.initial_version()
    '2021-11-15T17-30-56Z'
    >>> sd.next_version(["2021-11-15T17-30-56Z"])  # same second: one second later
    '2021-11-15T17-30-57Z'
    >>> sd.is_valid("2021-11-15T17-30-56"), sd.is_valid("9999-99-99T99-99-99Z")
    (False, True)
    """

    name = "simple_date"

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))

    def is_valid(self, version: str) -> bool:
        """True for ``YYYY-MM-DDThh-mm-ssZ`` (the pattern only, as modelkit checks)."""
        return _SIMPLE_DATE.fullmatch(version) is not None

    def is_complete(self, version: str) -> bool:
        """Always True: there are no partial dates."""
        return True

    def sort_key(self, version: str) -> SortKey:
        """The string itself: the format orders as time does."""
        return (version,)

    def initial_version(self) -> str:
        """The current UTC time."""
        return self._now().astimezone(UTC).strftime(_DATE_FORMAT)

    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        """The current UTC time, or one second after the latest version when that is not older.

        ``bump_major`` and ``major`` do not apply to dates and are ignored.
        """
        now = self.initial_version()
        latest = self.latest(versions)
        if latest is None or now > latest:
            return now
        try:
            after = datetime.strptime(latest, _DATE_FORMAT) + timedelta(seconds=1)
        except ValueError:  # matches the pattern, but is no calendar time (9999-99-99...)
            return now
        return after.strftime(_DATE_FORMAT)


_SYSTEMS: dict[str, Callable[[], VersioningSystem]] = {
    MajorMinorVersioning.name: MajorMinorVersioning,
    SimpleDateVersioning.name: SimpleDateVersioning,
}

DEFAULT_VERSIONING = MajorMinorVersioning.name


def register_versioning_system(name: str, factory: Callable[[], VersioningSystem]) -> None:
    """Make ``factory()`` the versioning system chosen by ``name`` from now on."""
    _SYSTEMS[name] = factory


def get_versioning_system(system: str | VersioningSystem | None = None) -> VersioningSystem:
    """The versioning system ``system`` names (``major_minor`` when None), or ``system`` itself.

    >>> get_versioning_system().name, get_versioning_system("simple_date").name
    ('major_minor', 'simple_date')

    :raises UnknownVersioningSystemError: listing the known names, for an unknown one.
    """
    if isinstance(system, VersioningSystem):
        return system
    name = system or DEFAULT_VERSIONING
    factory = _SYSTEMS.get(name)
    if factory is None:
        raise UnknownVersioningSystemError(
            f"Unknown assets versioning system {name!r}; known: {', '.join(sorted(_SYSTEMS))}",
            name=name,
            known=_SYSTEMS,
        )
    return factory()
