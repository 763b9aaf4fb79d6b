"""Version orders like Maven 3.9's ComparableVersion; VersionRange parses DJL's range syntax."""

from __future__ import annotations

import copy
import itertools
import pickle
import random

import pytest

from repository.errors import InvalidVersionError
from repository.version import Version, VersionRange

# -- Version: ordering --------------------------------------------------------------------------

# In strictly increasing order. Every pair is checked for <, <=, >, >=, != and unequal hashes.
VERSIONS = [
    "abc",  # a qualifier alone is below any number
    "0.9",
    "1.0-alpha1",
    "1.0-alpha2",
    "1.0-alpha-10",
    "1.0-beta1",
    "1.0-milestone1",
    "1.0-rc1",
    "1.0-rc2",
    "1.0-SNAPSHOT",
    "1.0",
    "1.0-sp",
    "1.0-sp1",
    "1.0-abc",  # unknown qualifiers come after every known one, lexically
    "1.0-XYZ",
    "1.0-1",
    "1.0.1-SNAPSHOT",
    "1.0.1",
    "1.1",
    "1.2.3.4.5.6.7.8.9.10",
    "1.2.3.4.5.6.7.8.9.11",
    "1.2.3.4.5.6.7.8.10",
    "1.9",
    "1.10-beta1",
    "1.10",
    "1.10.1",
    "2",
    "2.0.1",
    "10",
    "10.0.0.1",
    "20190126.230843",
    "2147483647",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "123456789012345678901234567890",
]

# Pairs that are equal under Maven ordering, and so must hash equal.
EQUAL = [
    ("1", "1.0"),
    ("1", "1.0.0"),
    ("1.0", "1.0.0"),
    ("1", "1-0"),
    ("1.0", "1.0-0"),
    ("0", "0.0.0"),
    ("01", "1"),
    ("1.010", "1.10"),
    ("0000000000000000001", "1"),
    ("12345678901234567890", "12345678901234567890.0"),
    ("1.0-alpha1", "1.0-a1"),
    ("1.0-beta2", "1.0-b2"),
    ("1.0-milestone3", "1.0-m3"),
    ("1.0-rc1", "1.0-cr1"),
    ("1.0", "1.0-ga"),
    ("1.0", "1.0-final"),
    ("1.0", "1.0-release"),
    ("1.0", "1.0.GA"),
    ("1.0", "1.0-Final"),
    ("1.0-SNAPSHOT", "1.0-snapshot"),
    ("1.0-RC1", "1.0-rc1"),
    ("1X", "1x"),
    ("1a", "1-a"),
    ("1.0alpha1", "1.0-alpha-1"),
    ("1.0.0.RC1", "1.0-RC1"),  # MNG-7644: a qualifier after "." counts as after "-"
    ("2-abc", "2.0.abc"),
    ("2.0.abc", "2.0.0.abc"),
]

# The chain from the specification, with its one equality.
CHAIN = [
    "1.0-alpha1",
    "1.0-beta1",
    "1.0-milestone1",
    "1.0-rc1",
    "1.0-SNAPSHOT",
    "1.0",
    "1.0.0",
    "1.0-sp1",
    "1.0.1",
]

# Maven's own ComparableVersionTest.VERSIONS_QUALIFIER (3.x), in increasing order.
MAVEN_QUALIFIER_ORDER = [
    "1-alpha2snapshot",
    "1-alpha2",
    "1-alpha-123",
    "1-beta-2",
    "1-beta123",
    "1-m2",
    "1-m11",
    "1-rc",
    "1-cr2",
    "1-rc123",
    "1-SNAPSHOT",
    "1",
    "1-sp",
    "1-sp2",
    "1-sp123",
    "1-abc",
    "1-def",
    "1-pom-1",
    "1-1-snapshot",
    "1-1",
    "1-2",
    "1-123",
]


def test_versions_table_is_long_enough() -> None:
    assert len(VERSIONS) >= 25
    assert len(set(VERSIONS)) == len(VERSIONS)


@pytest.mark.parametrize(("left", "right"), list(itertools.combinations(VERSIONS, 2)))
def test_ordered_pairs(left: str, right: str) -> None:
    low, high = Version(left), Version(right)
    assert low < high
    assert low <= high
    assert high > low
    assert high >= low
    assert low != high
    assert not low == high  # noqa: SIM201
    assert not high < low
    assert hash(low) != hash(high)


@pytest.mark.parametrize(("left", "right"), EQUAL)
def test_equal_pairs(left: str, right: str) -> None:
    a, b = Version(left), Version(right)
    assert a == b
    assert b == a
    assert not a != b  # noqa: SIM202
    assert a <= b and a >= b
    assert not a < b and not a > b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_specification_chain() -> None:
    versions = [Version(text) for text in CHAIN]
    for low, high in itertools.pairwise(versions):
        if str(low) == "1.0" and str(high) == "1.0.0":
            assert low == high
        else:
            assert low < high, (low, high)
    assert Version("1.9") < Version("1.10")
    assert Version("1-1") < Version("1.1")
    assert Version("2") < Version("10")


def test_sorting_shuffled_versions_restores_the_table() -> None:
    shuffled = [Version(text) for text in VERSIONS]
    random.Random(7).shuffle(shuffled)
    assert [str(v) for v in sorted(shuffled)] == VERSIONS
    assert str(max(shuffled)) == VERSIONS[-1]


def test_maven_qualifier_order() -> None:
    versions = [Version(text) for text in MAVEN_QUALIFIER_ORDER]
    for low, high in itertools.combinations(versions, 2):
        assert low < high, (low, high)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1-0.alpha", "1"),  # MNG-6964: the whole sub-list is compared, not its first item
        ("1-0.beta", "1"),
        ("1-0.alpha", "1-0.beta"),
        ("1.0.0.RC1", "1.0.0-RC2"),  # MNG-7644
        ("1.0.0.X1", "1.0.0-X2"),
        ("6.1.0rc3", "6.1.0"),  # MNG-5568
        ("6.1.0rc3", "6.1H.5-beta"),
        ("20190126.230843", "1234567890.12345"),  # MNG-6572: int, long and big numbers
        ("1234567890.12345", "123456789012345.1H.5-beta"),
        ("123456789012345.1H.5-beta", "12345678901234567890.1H.5-beta"),
        ("1.0-alpha-1-SNAPSHOT", "1.0-alpha-1"),
        ("2.0.1-klm", "2.0.1-lmn"),
        ("2.0.1", "2.0.1-xyz"),  # Maven 3: unknown qualifiers above the release
        ("2.0.1-xyz", "2.0.1-123"),
        ("1.0", "1.0-1"),
        ("1.0-1", "1.0-2"),
        ("2.0-1", "2.0.1"),
    ],
)
def test_maven_edge_cases(low: str, high: str) -> None:
    assert Version(low) < Version(high)
    assert Version(high) > Version(low)


def test_maven_intransitive_corners_are_kept() -> None:
    """Maven's compareTo is not transitive here; we follow it rather than invent an order."""
    sp, pre, release = Version("1-sp"), Version("1-0.alpha"), Version("1")
    assert sp < pre < release < sp
    dotted_sp, dotted_alpha = Version("1.sp.1"), Version("1.0.alpha.1")
    assert release < dotted_sp < dotted_alpha < release


def test_case_insensitive_qualifiers() -> None:
    assert Version("1-ABCDEFGHIJKLMNOPQRSTUVWXYZ") == Version("1-abcdefghijklmnopqrstuvwxyz")
    assert Version("1.0-Alpha1") == Version("1.0-ALPHA-1")


def test_single_letter_alias_needs_a_digit() -> None:
    assert Version("1.0-a") != Version("1.0-alpha")
    assert Version("1.0-a") > Version("1.0")  # "a" alone is an unknown qualifier
    assert Version("1.0-a1") < Version("1.0")


def test_very_deep_versions_do_not_exhaust_the_stack() -> None:
    deep = "1-" * 20000 + "1"
    assert Version(deep) == Version(deep)
    assert Version(deep) < Version("1.1")
    assert Version(deep) > Version(deep[:-2])
    assert hash(Version(deep)) == hash(Version(deep))


# -- Version: representation and behaviour --------------------------------------------------


def test_str_is_the_original_text_and_repr_names_it() -> None:
    assert str(Version("1.0-RC1")) == "1.0-RC1"
    assert repr(Version("1.0")) == "<Version('1.0')>"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.0.0", "1"),
        ("1.0-SNAPSHOT", "1-snapshot"),
        ("1.0-alpha1", "1-alpha-1"),
        ("1.0-a1", "1-alpha-1"),
        ("1.0-CR1", "1-rc-1"),
        ("1.0-ga", "1"),
        ("1.0.1", "1.0.1"),
        ("1.0.0.RC1", "1-rc-1"),
        ("0", ""),
        ("01.002", "1.2"),
    ],
)
def test_canonical(text: str, canonical: str) -> None:
    assert Version(text).canonical == canonical


@pytest.mark.parametrize(
    ("text", "snapshot"),
    [
        ("1.0-SNAPSHOT", True),
        ("1.0-snapshot", True),
        ("1.0-alpha-1-SNAPSHOT", True),
        ("1.0", False),
        ("1.0.SNAPSHOT", False),
        ("SNAPSHOT", False),
        ("1.0-SNAPSHOT-1", False),
    ],
)
def test_is_snapshot(text: str, snapshot: bool) -> None:
    assert Version(text).is_snapshot is snapshot


def test_versions_are_immutable() -> None:
    version = Version("1.0")
    with pytest.raises(AttributeError):
        version._text = "2.0"
    with pytest.raises(AttributeError):
        version.anything = 1
    with pytest.raises(AttributeError):
        del version._text
    assert str(version) == "1.0"


def test_foreign_types_are_not_comparable() -> None:
    assert Version("1.0") != "1.0"
    assert not Version("1.0") == "1.0"  # noqa: SIM201
    with pytest.raises(TypeError):
        _ = Version("1.0") < "2.0"  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Version("1.0") >= 1  # type: ignore[operator]


def test_pickle_and_copy_keep_the_text() -> None:
    version = Version("1.0-RC1")
    for clone in (pickle.loads(pickle.dumps(version)), copy.copy(version), copy.deepcopy(version)):
        assert clone == version and str(clone) == "1.0-RC1"


# -- Version: rejected input ------------------------------------------------------------------

INVALID_VERSIONS = [
    "",
    " ",
    "\t",
    " 1.0",
    "1.0 ",
    "1 .0",
    "1.0\n",
    "1.0\u00a0",  # no-break space
    "1.0\x00",
    "1.0\x7f",
    "1.0\u200b",  # zero-width space
    "1/0",
    "1\\0",
    "1,0",
    "[1.0",
    "1.0]",
    "(1.0",
    "1.0)",
    ".",
    "..",
]


@pytest.mark.parametrize("text", INVALID_VERSIONS)
def test_invalid_versions_are_rejected(text: str) -> None:
    with pytest.raises(InvalidVersionError) as info:
        Version(text)
    assert isinstance(info.value, ValueError)
    assert info.value.version == text
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [None, 1, 1.0, b"1.0", ["1.0"]])
def test_non_str_versions_are_rejected(value: object) -> None:
    with pytest.raises(InvalidVersionError) as info:
        Version(value)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert info.value.version == repr(value)
    assert repr(value) in str(info.value)


# -- VersionRange -------------------------------------------------------------------------------

CANDIDATES = [
    "0.9",
    "1.0",
    "1.0-SNAPSHOT",
    "1.0.0",
    "1.5",
    "2.0",
    "2.0-SNAPSHOT",
    "2.5",
    "3.0",
    "10.0",
]

# DJL's table (djl.md §3.2) under Maven ordering: 1.0-SNAPSHOT < 1.0 == 1.0.0 < 2.0-SNAPSHOT < 2.0.
RANGES: list[tuple[str | None, str, set[str]]] = [
    (None, "", set(CANDIDATES)),
    ("", "", set(CANDIDATES)),
    ("1.0", "1.0", {"1.0", "1.0.0"}),
    ("1.0.0", "1.0.0", {"1.0", "1.0.0"}),
    ("1.0-SNAPSHOT", "1.0-SNAPSHOT", {"1.0-SNAPSHOT"}),
    ("[1.0]", "[1.0,1.0]", {"1.0", "1.0.0"}),
    ("[1.0,2.0)", "[1.0,2.0)", {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT"}),
    ("[1.0,2.0]", "[1.0,2.0]", {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT", "2.0"}),
    ("(1.0,2.0)", "(1.0,2.0)", {"1.5", "2.0-SNAPSHOT"}),
    ("[1.0,2.0-SNAPSHOT)", "[1.0,2.0-SNAPSHOT)", {"1.0", "1.0.0", "1.5"}),
    ("(,1.0]", "(,1.0]", {"0.9", "1.0-SNAPSHOT", "1.0", "1.0.0"}),
    ("(,1.0)", "(,1.0)", {"0.9", "1.0-SNAPSHOT"}),
    ("[1.0,)", "[1.0,)", set(CANDIDATES) - {"0.9", "1.0-SNAPSHOT"}),
    ("(1.0,)", "(1.0,)", {"1.5", "2.0-SNAPSHOT", "2.0", "2.5", "3.0", "10.0"}),
    (
        "[1.0,2.0),[3.0,)",
        "[1.0,2.0),[3.0,)",
        {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT", "3.0", "10.0"},
    ),
    ("(,1.0],[1.2,)", "(,1.0],[1.2,)", set(CANDIDATES)),  # 1.0.0 == 1.0 now
    ("(,1.0),(1.0,)", "(,1.0),(1.0,)", set(CANDIDATES) - {"1.0", "1.0.0"}),
    (
        "[1.0,2.0],[2.0,3.0]",  # touching sets are allowed
        "[1.0,2.0],[2.0,3.0]",
        {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT", "2.0", "2.5", "3.0"},
    ),
    ("[ 1.0 , 2.0 ]", "[1.0,2.0]", {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT", "2.0"}),
    (
        "[1.0,2.0) , [3.0,4.0)",
        "[1.0,2.0),[3.0,4.0)",
        {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT", "3.0"},
    ),
    ("[1.0,2.0)[3.0,4.0)", "[1.0,2.0),[3.0,4.0)", {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT", "3.0"}),
    ("[1.0,2.0),", "[1.0,2.0)", {"1.0", "1.0.0", "1.5", "2.0-SNAPSHOT"}),  # DJL drops one comma
    ("[1.0,1.0.0]", "[1.0,1.0.0]", {"1.0", "1.0.0"}),  # different text, equal versions
    ("[1.0-SNAPSHOT,1.0)", "[1.0-SNAPSHOT,1.0)", {"1.0-SNAPSHOT"}),
]


@pytest.mark.parametrize(("spec", "text", "contained"), RANGES)
def test_range_table(spec: str | None, text: str, contained: set[str]) -> None:
    version_range = VersionRange.parse(spec)
    assert str(version_range) == text
    assert {c for c in CANDIDATES if version_range.contains(c)} == contained
    assert {c for c in CANDIDATES if version_range.contains(Version(c))} == contained
    assert {c for c in CANDIDATES if c in version_range} == contained


def test_any() -> None:
    assert VersionRange.parse(None) is VersionRange.ANY
    assert VersionRange.parse("") is VersionRange.ANY
    assert VersionRange() == VersionRange.ANY
    assert str(VersionRange.ANY) == ""
    assert repr(VersionRange.ANY) == "<VersionRange('')>"
    assert VersionRange.ANY.contains("0.0.1-SNAPSHOT")


def test_repr() -> None:
    assert repr(VersionRange.parse("[1.0,2.0)")) == "<VersionRange('[1.0,2.0)')>"
    assert repr(VersionRange.parse("1.0")) == "<VersionRange('1.0')>"


def test_constructor_parses_like_parse() -> None:
    assert VersionRange("[1.0,2.0)") == VersionRange.parse("[1.0,2.0)")


def test_range_equality_is_on_the_parsed_structure() -> None:
    half_open = VersionRange.parse("[1.0,2.0)")
    assert half_open == VersionRange.parse("[ 1.0 , 2.0 )")
    assert half_open == VersionRange.parse("[1.0.0,2.0)")  # equal bounds under Maven ordering
    assert half_open == VersionRange.parse("[1.0,2.0),")
    assert hash(half_open) == hash(VersionRange.parse("[1.0.0,2.0)"))
    assert half_open != VersionRange.parse("[1.0,2.0]")
    assert half_open != VersionRange.parse("(1.0,2.0)")
    assert VersionRange.parse("1.0") == VersionRange.parse("1.0.0")
    assert VersionRange.parse("1.0") != VersionRange.parse("[1.0]")
    assert VersionRange.parse("1.0") != VersionRange.ANY
    assert half_open != "[1.0,2.0)"
    assert len({half_open, VersionRange.parse("[1.0.0,2.0)"), VersionRange.ANY}) == 2


def test_ranges_are_immutable_and_pickle() -> None:
    for spec in ("[1.0]", "[1.0,2.0),[3.0,)", "1.0", ""):
        version_range = VersionRange.parse(spec)
        with pytest.raises(AttributeError):
            version_range._restrictions = ()
        for clone in (pickle.loads(pickle.dumps(version_range)), copy.deepcopy(version_range)):
            assert clone == version_range and str(clone) == str(version_range)


def test_contains_rejects_invalid_versions() -> None:
    with pytest.raises(InvalidVersionError):
        VersionRange.parse("[1.0,2.0)").contains("1 .5")
    with pytest.raises(InvalidVersionError):
        VersionRange.ANY.contains("")


def test_bounds_use_maven_ordering() -> None:
    """The deliberate difference from DJL: release candidates sort below the release."""
    assert VersionRange.parse("[1.0-rc1,1.0)").contains("1.0-rc2")
    assert not VersionRange.parse("(1.0,2.0)").contains("1.0-rc1")
    assert VersionRange.parse("[1.0-alpha,1.0)").contains("1.0-SNAPSHOT")
    assert VersionRange.parse("[1.9,1.10]").contains("1.10")


REJECTED_RANGES = [
    ("(,)", "Range cannot have identical boundaries"),
    ("[,]", "Range cannot have identical boundaries"),
    ("[1.0,1.0]", "Range cannot have identical boundaries"),
    ("( 1.0 ,1.0)", "Range cannot have identical boundaries"),
    ("(1.0)", "Single version must be surrounded by []"),
    ("[1.0)", "Single version must be surrounded by []"),
    ("()", "Single version must be surrounded by []"),
    ("[2.0,1.0]", "Range defies version ordering"),
    ("[1.0,1.0-SNAPSHOT]", "Range defies version ordering"),
    ("[1.0,2.0),[1.5,3.0)", "Ranges overlap"),
    ("[3.0,4.0),[1.0,2.0)", "Ranges overlap"),  # sets must ascend
    ("[1.0,2.0),(,3.0)", "Ranges overlap"),
    ("[1.0,),[2.0,3.0)", "Ranges overlap"),  # nothing can follow an unbounded set
    ("[1.0,2.0)1.0", "Only fully-qualified sets allowed"),
    ("[1.0,2.0)]", "Only fully-qualified sets allowed"),
    ("[1.0,2.0),,[3.0,4.0)", "Only fully-qualified sets allowed"),
    ("[1.0", "Unbounded range"),
    ("(1.0,", "Unbounded range"),
    ("[1.0,2.0),[3.0", "Unbounded range"),
    ("1.0,2.0", "Invalid version"),  # DJL takes it as a bare version that matches nothing
    (" 1.0", "Invalid version"),
    ("1.0 ", "Invalid version"),
    ("1 .0", "Invalid version"),
    ("[]", "Invalid version"),
    ("[1 .0,2.0)", "Invalid version"),
    ("[1.0,2.0,3.0]", "Invalid version"),
    ("[(1.0,2.0]", "Invalid version"),
]


@pytest.mark.parametrize(("spec", "message"), REJECTED_RANGES)
def test_invalid_ranges_are_rejected(spec: str, message: str) -> None:
    with pytest.raises(InvalidVersionError) as info:
        VersionRange.parse(spec)
    assert isinstance(info.value, ValueError)
    assert info.value.version == spec
    assert repr(spec) in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("value", [1, 1.0, b"[1.0,2.0)"])
def test_non_str_ranges_are_rejected(value: object) -> None:
    with pytest.raises(InvalidVersionError) as info:
        VersionRange.parse(value)  # type: ignore[arg-type]
    assert info.value.version == repr(value)


def test_numbers_too_long_for_int_are_rejected_cleanly() -> None:
    assert Version("9" * 4000) > Version("9" * 3999)
    text = "1." + "9" * 10000
    with pytest.raises(InvalidVersionError) as info:
        Version(text)
    assert info.value.version == text
