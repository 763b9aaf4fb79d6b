"""Asset specs ``name[:version][[sub/part]]``: modelkit's grammar, but a name is never a path.

The grammar is modelkit's (``AssetSpec.from_string``): a name starts and ends with a letter or
digit and may hold ``- _ . / \\`` between; a version is ``[0-9A-Za-z._-]+`` and is then checked by
the versioning system; a sub-part is one or more names, each with an optional leading ``/``.
Unlike modelkit, ``..`` segments, absolute paths (a leading ``/`` or ``\\``) and Windows drives
are refused in the name and in the sub-part, so that a spec can never reach outside the assets
directory or the storage prefix. A sub-part's single leading ``/`` (``[/foo/bar]``) is relative
to the asset, as in modelkit. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from repository.assets.errors import InvalidAssetSpecError
from repository.assets.versioning import VersioningSystem, get_versioning_system

__all__ = ["AssetSpec", "name_parts"]

_NAME = r"(?:[A-Z]:\\|/)?[a-zA-Z0-9](?:[a-zA-Z0-9\-_./\\]*[a-zA-Z0-9])?"
_VERSION = r"[0-9A-Za-z._-]+?"
_SPEC = re.compile(
    rf"(?P<name>{_NAME})(?::(?P<version>{_VERSION}))?(?:\[(?P<sub_part>(?:/?{_NAME})+)\])?"
)
_PLAIN_NAME = re.compile(_NAME.removeprefix(r"(?:[A-Z]:\\|/)?"))
_GENERIC_VERSION = re.compile(r"[0-9A-Za-z._-]+")
_SEPARATORS = re.compile(r"[/\\]")
_DRIVE = re.compile(r"[A-Za-z]:")


def _path_problem(value: str) -> str | None:
    """What makes ``value`` a path rather than a name, or None.

    >>> [_path_problem(v) for v in ("a/b", "/a", "C:\\\\x", "a/../b", "a\\\\..", "a..b")]
    [None, 'is an absolute path', 'holds a Windows drive', "holds a '..' segment", \
"holds a '..' segment", None]
    """
    if any(_DRIVE.match(segment) for segment in _SEPARATORS.split(value)):
        return "holds a Windows drive"
    if value.startswith(("/", "\\")):
        return "is an absolute path"
    if ".." in _SEPARATORS.split(value):
        return "holds a '..' segment"
    return None


def _invalid(spec: str, reason: str) -> InvalidAssetSpecError:
    return InvalidAssetSpecError(f"Invalid asset spec {spec!r}: {reason}", spec=spec, reason=reason)


def _check(name: str, version: str | None, sub_part: str | None, *, spec: str) -> None:
    problem = _path_problem(name)
    if problem:
        raise _invalid(spec, f"the name {name!r} {problem}")
    if not _PLAIN_NAME.fullmatch(name):
        raise _invalid(
            spec,
            f"the name {name!r} must start and end with a letter or digit and hold only "
            "letters, digits and - _ . / \\",
        )
    if version is not None and not _GENERIC_VERSION.fullmatch(version):
        raise _invalid(spec, f"the version {version!r} is empty or holds other than 0-9 A-Z . _ -")
    if sub_part is not None:
        relative = sub_part.removeprefix("/")
        problem = _path_problem(relative)
        if problem:
            raise _invalid(spec, f"the sub-part {sub_part!r} {problem}")
        if not all(_PLAIN_NAME.fullmatch(piece) for piece in relative.split("/") if piece):
            raise _invalid(spec, f"the sub-part {sub_part!r} is not made of names")


def name_parts(value: str) -> list[str]:
    """The path segments of a name or sub-part (``/``-separated; empty and ``.`` dropped).

    >>> name_parts("category/asset"), name_parts("/foo//./bar")
    (['category', 'asset'], ['foo', 'bar'])
    """
    return [part for part in value.split("/") if part not in ("", ".")]


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """An asset's name, with an optional (possibly partial) version and sub-part.

    >>> spec = AssetSpec.parse("some/directory/asset:0.1[content0]")
    >>> spec.name, spec.version, spec.sub_part
    ('some/directory/asset', '0.1', 'content0')
    >>> str(spec)
    'some/directory/asset:0.1[content0]'
    >>> AssetSpec.parse("blabli/blebla[/foo/bar]")
    AssetSpec(name='blabli/blebla', version=None, sub_part='/foo/bar')

    :raises InvalidAssetSpecError: when the name or the sub-part is not a name (see the module).
    """

    name: str
    version: str | None = None
    sub_part: str | None = None

    def __post_init__(self) -> None:
        _check(self.name, self.version, self.sub_part, spec=str(self))

    @classmethod
    def parse(cls, text: str, versioning: str | VersioningSystem | None = None) -> AssetSpec:
        """Parse ``name[:version][[sub_part]]``, checking the version with ``versioning``.

        >>> AssetSpec.parse("a:2021-11-14T18-00-00Z", "simple_date").version
        '2021-11-14T18-00-00Z'
        >>> AssetSpec.parse("x:1.0[a/../../b]")
        Traceback (most recent call last):
        ...
        repository.assets.errors.InvalidAssetSpecError: Invalid asset spec 'x:1.0[a/../../b]': \
the sub-part 'a/../../b' holds a '..' segment

        :param versioning: the versioning system (or its name) the version must belong to;
            ``major_minor`` when None.
        :raises InvalidAssetSpecError: when the text does not parse or names a path.
        :raises InvalidAssetVersionError: when the versioning system rejects the version.
        """
        match = _SPEC.fullmatch(text)
        if match is None:
            climbs = ".." in _SEPARATORS.split(text.replace("[", "/").replace("]", "/"))
            reason = "holds a '..' segment; " if climbs else ""
            raise _invalid(text, f"{reason}expected name[:version][[sub/part]]")
        name, version, sub_part = match["name"], match["version"], match["sub_part"]
        _check(name, version, sub_part, spec=text)
        if version is not None:
            get_versioning_system(versioning).check(version, spec=text)
        return cls(name, version, sub_part)

    def __str__(self) -> str:
        version = f":{self.version}" if self.version is not None else ""
        sub_part = f"[{self.sub_part}]" if self.sub_part is not None else ""
        return f"{self.name}{version}{sub_part}"

    @property
    def name_parts(self) -> list[str]:
        """The name's path segments, as the asset's folders locally and in storage."""
        return name_parts(self.name)

    @property
    def sub_part_parts(self) -> list[str]:
        """The sub-part's path segments (none when there is no sub-part)."""
        return name_parts(self.sub_part or "")
