"""Versions ordered the way Maven orders them, and DJL's version-range syntax.

:class:`Version` implements Maven 3.9's ``ComparableVersion``: the text is parsed into a list of
numbers, qualifiers and sub-lists (``-`` and digit/letter transitions open a sub-list), trailing
nulls are dropped, and two lists are compared item by item. :class:`VersionRange` parses DJL's
``VersionRange`` grammar (Maven's range syntax, a bare version being an exact match) and compares
bounds with the Maven order rather than DJL's own.

Notes on following Maven 3.9 (``maven-artifact`` 3.9.x, with MNG-6964 and MNG-7644):

* ``ga``, ``final`` and ``release`` are aliases of the empty (release) qualifier, ``cr`` of
  ``rc``; ``a``, ``b`` and ``m`` mean alpha, beta and milestone only when a digit follows them.
* A qualifier after ``.`` opens a sub-list like one after ``-`` (``1.0.RC1 == 1-RC1``), as in
  Maven since 3.8.7/3.9.0.
* Numbers compare numerically at any size; digits are what Java's ``Character.isDigit`` accepts.
* Maven's comparison is not transitive in a few corners, and neither is this one, on purpose:
  ``1-sp < 1-0.alpha < 1 < 1-sp`` and ``1 < 1.sp.1 < 1.0.alpha.1 < 1``. Equality is an
  equivalence (it is equality of the normalised item lists) and matches the hash.

Pure logic, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NoReturn, TypeAlias

from repository.errors import InvalidVersionError

__all__ = ["Version", "VersionRange"]

# -- Maven's ComparableVersion: parsing into items ---------------------------------------------
#
# An item is an ``int`` (IntItem, LongItem and BigIntegerItem: Maven orders them numerically, so
# one arbitrary-size int is enough), a ``str`` (StringItem, already lower-cased and de-aliased) or
# a ``list`` (ListItem). A list holds scalars and, as its last element only, at most one sub-list.
_Item: TypeAlias = "int | str | list[_Item]"

# StringItem.QUALIFIERS: the index is the qualifier's rank; unknown qualifiers rank after them all.
_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_RANKS = {qualifier: rank for rank, qualifier in enumerate(_QUALIFIERS)}
_RELEASE_RANK = _RANKS[""]
_UNKNOWN_RANK = len(_QUALIFIERS)
# StringItem.ALIASES as of Maven 3.9 ("release" joined "ga" and "final").
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
# a1 = alpha-1, b1 = beta-1, m1 = milestone-1: only a single letter directly followed by a digit.
_SHORT_QUALIFIERS = {"a": "alpha", "b": "beta", "m": "milestone"}

# Characters a version may not contain: they would clash with range syntax or with paths.
_FORBIDDEN = frozenset("/\\,[]()")


def _is_digit(char: str) -> bool:
    """Java's ``Character.isDigit(char)``: a decimal digit (Nd) inside the BMP."""
    return char.isdecimal() and char <= "\uffff"


def _qualifier(text: str, followed_by_digit: bool) -> str:
    """``new StringItem(text, followedByDigit)``: the canonical spelling of a qualifier."""
    if followed_by_digit and len(text) == 1:
        text = _SHORT_QUALIFIERS.get(text, text)
    return _ALIASES.get(text, text)


class _NumberTooLongError(ValueError):
    """A run of digits too long for ``int()`` (``sys.get_int_max_str_digits()``)."""


def _parse_item(is_digit: bool, text: str) -> _Item:
    """``ComparableVersion.parseItem``: a number (leading zeros do not matter) or a qualifier."""
    if not is_digit:
        return _qualifier(text, followed_by_digit=False)
    try:
        return int(text)
    except ValueError:
        raise _NumberTooLongError(text) from None


def _is_null(item: _Item) -> bool:
    """``Item.isNull()``: 0, the release qualifier, or an empty list."""
    if isinstance(item, list):
        return not item
    return item == 0 if isinstance(item, int) else item == ""


def _normalize(items: list[_Item]) -> None:
    """``ListItem.normalize()``: drop null items from the end, looking through a sub-list."""
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if _is_null(item):
            del items[index]
        elif not isinstance(item, list):
            break


def _parse(text: str) -> list[_Item]:
    """``ComparableVersion.parseVersion`` (Maven 3.9): the normalised item list of ``text``.

    ``.`` separates items, ``-`` and a digit/letter transition open a sub-list, and (MNG-7644)
    a qualifier that follows ``.`` opens one too, so that ``1.0.RC1 == 1-RC1``.
    """
    version = text.lower()
    root: list[_Item] = []
    current = root
    lists = [root]  # every list, outermost first; each one is the last item of the one before

    def open_sublist() -> list[_Item]:
        sublist: list[_Item] = []
        current.append(sublist)
        lists.append(sublist)
        return sublist

    is_digit = False
    start = 0
    for index, char in enumerate(version):
        if char in ".-":
            current.append(0 if index == start else _parse_item(is_digit, version[start:index]))
            start = index + 1
            if char == "-":
                current = open_sublist()
        elif _is_digit(char):
            if not is_digit and index > start:
                if current:  # treat .X1 as -X1
                    current = open_sublist()
                current.append(_qualifier(version[start:index], followed_by_digit=True))
                start = index
                current = open_sublist()
            is_digit = True
        else:
            if is_digit and index > start:
                current.append(_parse_item(True, version[start:index]))
                start = index
                current = open_sublist()
            is_digit = False
    if len(version) > start:
        if not is_digit and current:  # treat .X as -X
            current = open_sublist()
        current.append(_parse_item(is_digit, version[start:]))

    for items in reversed(lists):  # innermost first, as Maven pops its stack
        _normalize(items)
    return root


def _chain(root: list[_Item]) -> list[list[_Item]]:
    """The list and its nested sub-lists, outermost first."""
    chain = [root]
    while chain[-1] and isinstance(chain[-1][-1], list):
        chain.append(chain[-1][-1])
    return chain


def _canonical(root: list[_Item]) -> str:
    """``ListItem.toString()``: items joined by ``.``, or by ``-`` before a sub-list."""
    rendered = ""
    for items in reversed(_chain(root)):  # innermost first, so no recursion
        buffer = ""
        for item in items:
            text = rendered if isinstance(item, list) else str(item)
            if buffer:  # Java checks the buffer, not the index: an empty first item adds no "."
                buffer += "-" if isinstance(item, list) else "."
            buffer += text
        rendered = buffer
    return rendered


# -- The comparison key and ComparableVersion.compareTo ------------------------------------------
#
# The key flattens the item tree: since a sub-list is always the last item of its list, the tree
# ``[1, "alpha", [2, [3]]]`` is written ``(1, "alpha", None, 2, None, 3)``, where ``None`` opens a
# sub-list that runs to the end. Equal keys are exactly the versions Maven's ``compareTo`` finds
# equal (after normalisation no list ends with an item that equals "nothing", so a longer list
# never ties with a shorter one), which makes the key a sound hash. Ordering walks two keys with
# Maven's rules, iteratively, so that very deep versions cannot exhaust the stack.
_Key: TypeAlias = tuple[int | str | None, ...]


def _flatten(root: list[_Item]) -> _Key:
    key: list[int | str | None] = []
    for items in _chain(root):
        for item in items:
            key.append(None if isinstance(item, list) else item)
    return tuple(key)


def _comparable_qualifier(qualifier: str) -> tuple[int, bytes]:
    """``StringItem.comparableQualifier``: the rank, then the spelling for unknown qualifiers.

    Java compares ``"<rank>"`` or ``"7-<qualifier>"`` as strings, char by char in UTF-16; the
    big-endian UTF-16 bytes of the qualifier order the same way.
    """
    rank = _RANKS.get(qualifier, _UNKNOWN_RANK)
    return rank, qualifier.encode("utf-16-be") if rank == _UNKNOWN_RANK else b""


def _sign(difference: int) -> int:
    return (difference > 0) - (difference < 0)


def _compare_scalars(left: int | str, right: int | str) -> int:
    """``IntItem/StringItem.compareTo``: numbers numerically, qualifiers by rank; a number wins."""
    if isinstance(left, int):
        return _sign(left - right) if isinstance(right, int) else 1  # 1.1 > 1-sp
    if isinstance(right, int):
        return -1  # 1.any < 1.1
    left_key, right_key = _comparable_qualifier(left), _comparable_qualifier(right)
    return (left_key > right_key) - (left_key < right_key)


def _compare_to_nothing(key: _Key, start: int) -> int:
    """``item.compareTo(null)`` for the items from ``start`` on, first non-zero result (MNG-6964).

    A number above 0 is above nothing, a qualifier is above or below it as it ranks against the
    release qualifier, and a sub-list compares as its items do.
    """
    for item in key[start:]:
        if isinstance(item, int):
            if item:
                return 1
        elif isinstance(item, str):
            rank = _RANKS.get(item, _UNKNOWN_RANK)
            if rank != _RELEASE_RANK:
                return _sign(rank - _RELEASE_RANK)
    return 0


def _compare(left: _Key, right: _Key) -> int:
    """``ListItem.compareTo(ListItem)`` on two flattened keys: -1, 0 or 1."""
    for index in range(min(len(left), len(right))):
        mine, theirs = left[index], right[index]
        if mine is None:
            if theirs is None:
                continue  # both open a sub-list at the same place: compare those
            return -1 if isinstance(theirs, int) else 1  # 1-1 < 1.1, 1-1 > 1-sp
        if theirs is None:
            return 1 if isinstance(mine, int) else -1
        result = _compare_scalars(mine, theirs)
        if result:
            return result
    # One list ended (and every list around it, sub-lists being last): the rest faces nothing.
    if len(left) > len(right):
        return _compare_to_nothing(left, len(right))
    return -_compare_to_nothing(right, len(left))


def _invalid(text: str, reason: str) -> NoReturn:
    raise InvalidVersionError(f"Invalid version: {text!r} ({reason})", version=text)


def _check_text(text: object) -> str:
    """``text`` as a plain str, or InvalidVersionError when it cannot be a version."""
    if not isinstance(text, str):
        raise InvalidVersionError(
            f"Invalid version: {text!r} (expected a str, got {type(text).__name__})",
            version=repr(text),
        )
    text = str(text)
    if not text:
        _invalid(text, "empty")
    if text in (".", ".."):
        _invalid(text, "not usable as a path segment")
    for char in text:
        if char.isspace():
            _invalid(text, "contains whitespace")
        if not char.isprintable():
            _invalid(text, f"contains the non-printable character {char!r}")
        if char in _FORBIDDEN:
            _invalid(text, f"contains {char!r}")
    return text


class Version:
    """A version, ordered like Maven's ``ComparableVersion`` (Maven 3.9).

    The text is split at ``.``, ``-`` and transitions between digits and letters. Numbers compare
    numerically, at any size. Trailing zeros do not count (``1 == 1.0 == 1.0.0``). Qualifiers
    compare case-insensitively as ``alpha`` (``a``) < ``beta`` (``b``) < ``milestone`` (``m``) <
    ``rc`` (``cr``) < ``snapshot`` < release (no qualifier, ``ga``, ``final``, ``release``) <
    ``sp``, then unknown qualifiers in lexical order. ``a1``, ``b1`` and ``m1`` mean ``alpha-1``,
    ``beta-1`` and ``milestone-1``. Something after ``-`` ranks below something after ``.``, so
    ``1-1 < 1.1``.

    Versions are immutable and hashable; equal versions hash equal even when spelled differently.
    Like Maven's, the order is not transitive in a few odd corners (see the module notes).

    :param text: the version, e.g. ``"1.0"``, ``"2.1.0-rc1"``, ``"0.36.0-SNAPSHOT"``.
    :raises InvalidVersionError: if ``text`` is not a str, is empty or ``.``/``..``, or contains
        whitespace, a control character, ``/``, ``\\``, ``,``, ``[``, ``]``, ``(`` or ``)``.

    >>> Version("1.0") == Version("1.0.0")
    True
    >>> Version("1.9") < Version("1.10")
    True
    >>> Version("1.0-alpha1") < Version("1.0-rc1") < Version("1.0-SNAPSHOT") < Version("1.0")
    True
    >>> Version("1.0") < Version("1.0-sp1") < Version("1.0.1")
    True
    >>> [str(v) for v in sorted(map(Version, ["1.10", "1.0-SNAPSHOT", "1.9", "1.0-rc1"]))]
    ['1.0-rc1', '1.0-SNAPSHOT', '1.9', '1.10']
    >>> Version("1.0-SNAPSHOT").is_snapshot
    True
    >>> Version("1.0.0-M1").canonical
    '1-milestone-1'
    >>> Version("1.0")
    <Version('1.0')>
    """

    __slots__ = ("_canonical", "_key", "_text")

    _text: str
    _key: _Key
    _canonical: str

    def __init__(self, text: str) -> None:
        text = _check_text(text)
        try:
            items = _parse(text)
        except _NumberTooLongError:
            _invalid(text, "contains a number too long to convert")
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_key", _flatten(items))
        object.__setattr__(self, "_canonical", _canonical(items))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[Version], tuple[str]]:
        return (type(self), (self._text,))

    @property
    def canonical(self) -> str:
        """The normalised form Maven prints for this version (``getCanonical()``).

        Lower-cased, aliases resolved, trailing zeros removed; ``-`` marks a sub-list. Equal
        versions have the same canonical form. Meant for debugging: unlike the text, it is not
        always a version that parses back to an equal one (``1.ga.1`` gives ``1..1``).

        >>> Version("1.0.0").canonical, Version("1.0-RC1").canonical, Version("1.0-ga").canonical
        ('1', '1-rc-1', '1')
        """
        return self._canonical

    @property
    def is_snapshot(self) -> bool:
        """True when the text ends with ``-SNAPSHOT``, in any case.

        >>> Version("1.0-SNAPSHOT").is_snapshot, Version("1.0-snapshot").is_snapshot
        (True, True)
        >>> Version("1.0").is_snapshot
        False
        """
        return self._text.lower().endswith("-snapshot")

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"<Version({self._text!r})>"

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return _compare(self._key, other._key) < 0

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return _compare(self._key, other._key) <= 0

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return _compare(self._key, other._key) > 0

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return _compare(self._key, other._key) >= 0


# -- VersionRange ---------------------------------------------------------------------------------


def _trim(text: str) -> str:
    """Java's ``String.trim()``: strip characters up to U+0020 (spaces and ASCII controls)."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


@dataclass(frozen=True, slots=True)
class _Restriction:
    """One set of a range: bounds that are None are unbounded."""

    lower: Version | None
    lower_inclusive: bool
    upper: Version | None
    upper_inclusive: bool

    def contains(self, version: Version) -> bool:
        if self.lower is not None and (
            version < self.lower or (version == self.lower and not self.lower_inclusive)
        ):
            return False
        return self.upper is None or not (
            version > self.upper or (version == self.upper and not self.upper_inclusive)
        )

    def __str__(self) -> str:
        return "{}{},{}{}".format(
            "[" if self.lower_inclusive else "(",
            "" if self.lower is None else self.lower,
            "" if self.upper is None else self.upper,
            "]" if self.upper_inclusive else ")",
        )


class _RangeParser:
    """DJL's ``VersionRange.parse``; every error names the whole spec."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def fail(self, message: str) -> NoReturn:
        raise InvalidVersionError(f"{message}: {self.spec!r}", version=self.spec)

    def version(self, text: str) -> Version:
        try:
            return Version(text)
        except InvalidVersionError as exc:
            raise InvalidVersionError(
                f"Invalid version range {self.spec!r}: {exc}", version=self.spec
            ) from None

    def parse(self) -> tuple[Version | None, tuple[_Restriction, ...]]:
        restrictions: list[_Restriction] = []
        process = self.spec
        while process.startswith(("[", "(")):
            close_paren, close_bracket = process.find(")"), process.find("]")
            index = close_bracket
            if (close_bracket < 0 or close_paren < close_bracket) and close_paren >= 0:
                index = close_paren
            if index < 0:
                self.fail("Unbounded range")
            restriction = self.restriction(process[: index + 1])
            if restrictions:
                # DJL wants the sets in ascending order, touching at most. It skips this check
                # after an unbounded upper bound; here that bound is +inf and any later set
                # overlaps it.
                previous = restrictions[-1].upper
                lower = restriction.lower
                if previous is None or lower is None or lower < previous:
                    self.fail("Ranges overlap")
            restrictions.append(restriction)
            process = _trim(process[index + 1 :])
            if process.startswith(","):
                process = _trim(process[1:])
        if process:
            if restrictions:
                self.fail("Only fully-qualified sets allowed in multiple set scenario")
            return self.version(process), ()
        return None, tuple(restrictions)

    def restriction(self, text: str) -> _Restriction:
        lower_inclusive = text.startswith("[")
        upper_inclusive = text.endswith("]")
        inner = _trim(text[1:-1])
        comma = inner.find(",")
        if comma < 0:
            if not (lower_inclusive and upper_inclusive):
                self.fail("Single version must be surrounded by []")
            version = self.version(inner)
            return _Restriction(version, True, version, True)
        lower_text, upper_text = _trim(inner[:comma]), _trim(inner[comma + 1 :])
        if lower_text == upper_text:
            self.fail("Range cannot have identical boundaries")
        lower = self.version(lower_text) if lower_text else None
        upper = self.version(upper_text) if upper_text else None
        if lower is not None and upper is not None and upper < lower:
            self.fail("Range defies version ordering")
        return _Restriction(lower, lower_inclusive, upper, upper_inclusive)


class VersionRange:
    """A set of versions, written in DJL's (Maven's) range syntax.

    * ``None`` or ``""``: any version (:attr:`ANY`);
    * ``1.0``: exactly that version, under Maven equality (so also ``1.0.0``). Unlike Maven,
      a bare version is not a soft requirement;
    * ``[1.0]``: exactly 1.0, too;
    * ``[1.0,2.0)``, ``(1.0,2.0]``, ``(,1.0]``, ``[1.0,)``: ``[]`` includes a bound, ``()``
      excludes it, an empty bound is unbounded;
    * ``[1.0,2.0),[3.0,)``: a union of sets, in ascending order, touching at most; the comma
      between sets is optional and spaces inside and between sets are ignored.

    Bounds are compared with the Maven order of :class:`Version`, so ``1.0-rc1`` and
    ``1.0-SNAPSHOT`` are below ``1.0``.

    :param spec: the range, or None.
    :raises InvalidVersionError: naming ``spec`` when it does not parse: a bound or a bare
        version that is not a valid :class:`Version`, ``(,)``, ``[,]``, ``[1.0,1.0]`` (identical
        bounds), ``(1.0)`` (a single version outside ``[]``), ``[2.0,1.0]`` (upper below lower),
        overlapping or descending sets, text after a set, or a set that is not closed.

    >>> r = VersionRange.parse("[1.0,2.0)")
    >>> r.contains("1.5"), r.contains("2.0"), r.contains("2.0-SNAPSHOT"), r.contains("1.0-rc1")
    (True, False, True, False)
    >>> "1.0.0" in VersionRange.parse("1.0")
    True
    >>> str(VersionRange.parse("[ 1.0 , 2.0 )[3.0,)"))
    '[1.0,2.0),[3.0,)'
    >>> VersionRange.parse(None) is VersionRange.ANY
    True
    >>> VersionRange.parse("[2.0,1.0]")
    Traceback (most recent call last):
      ...
    repository.errors.InvalidVersionError: Range defies version ordering: '[2.0,1.0]'
    """

    __slots__ = ("_recommended", "_restrictions", "_spec")

    ANY: ClassVar[VersionRange]
    """The range that contains every version; its text is ``""``."""

    _recommended: Version | None
    _restrictions: tuple[_Restriction, ...]
    _spec: str  # the text parsed, for pickling: str() of an exact set does not parse again

    def __init__(self, spec: str | None = None) -> None:
        recommended: Version | None = None
        restrictions: tuple[_Restriction, ...] = ()
        if spec is None or spec == "":
            pass
        elif isinstance(spec, str):
            spec = str(spec)
            recommended, restrictions = _RangeParser(spec).parse()
        else:
            raise InvalidVersionError(
                f"Invalid version range: {spec!r} (expected a str, got {type(spec).__name__})",
                version=repr(spec),
            )
        object.__setattr__(self, "_recommended", recommended)
        object.__setattr__(self, "_restrictions", restrictions)
        object.__setattr__(self, "_spec", spec or "")

    @classmethod
    def parse(cls, spec: str | None) -> VersionRange:
        """Parse a range; ``None`` and ``""`` give :attr:`ANY`.

        :param spec: the range, e.g. ``"[1.0,2.0)"``, ``"1.0"`` or None.
        :raises InvalidVersionError: naming ``spec`` when it does not parse.

        >>> VersionRange.parse("(,1.0],[1.2,)")
        <VersionRange('(,1.0],[1.2,)')>
        """
        if spec is None or spec == "":
            return cls.ANY
        return cls(spec)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[VersionRange], tuple[str]]:
        return (type(self), (self._spec,))

    def contains(self, version: Version | str) -> bool:
        """True when ``version`` is in this range.

        :param version: a :class:`Version` or its text.
        :raises InvalidVersionError: if ``version`` is text that is not a valid version.

        >>> VersionRange.parse("(,1.0),(1.0,)").contains("1.0.0")
        False
        >>> VersionRange.ANY.contains("0.0.1-SNAPSHOT")
        True
        """
        if not isinstance(version, Version):
            version = Version(version)
        if self._recommended is not None:
            return self._recommended == version
        if not self._restrictions:
            return True
        return any(restriction.contains(version) for restriction in self._restrictions)

    def __contains__(self, version: object) -> bool:
        return self.contains(version)  # type: ignore[arg-type]  # Version() rejects the rest

    def __str__(self) -> str:
        if self._recommended is not None:
            return str(self._recommended)
        return ",".join(str(restriction) for restriction in self._restrictions)

    def __repr__(self) -> str:
        return f"<VersionRange({str(self)!r})>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionRange):
            return NotImplemented
        return (self._recommended, self._restrictions) == (other._recommended, other._restrictions)

    def __hash__(self) -> int:
        return hash((self._recommended, self._restrictions))


VersionRange.ANY = VersionRange(None)
