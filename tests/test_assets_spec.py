"""Asset specs, versioning systems, version resolution and the .meta format: pure logic.

Issue 5 points 1 (specs), 2 (versioning systems) and the decisions of point 4.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from repository.assets import (
    AssetMeta,
    AssetSpec,
    InvalidAssetSpecError,
    InvalidAssetVersionError,
    MajorMinorVersioning,
    SimpleDateVersioning,
    UnknownVersioningSystemError,
    get_versioning_system,
)
from repository.assets.resolve import Resolution, needs_storage, resolve_version
from repository.errors import MetadataError, RepositoryError

# ============================================================================ spec grammar
# modelkit's from_string table (reference/modelkit.md §1), for versions 1, 1.2 and 12.
GRAMMAR = [
    ("blabli/blebla", "blabli/blebla", None, None),
    ("bl2_32_a.bli/bl3.debla", "bl2_32_a.bli/bl3.debla", None, None),
    ("bl2_32_a.BLI/bl3.DEBLA", "bl2_32_a.BLI/bl3.DEBLA", None, None),
    ("blabli/blebla[foo]", "blabli/blebla", None, "foo"),
    ("blabli/blebla[/foo/bar]", "blabli/blebla", None, "/foo/bar"),
    *(
        row
        for version in ("1", "1.2", "12")
        for row in (
            (f"blabli/blebla:{version}[/foo/bar]", "blabli/blebla", version, "/foo/bar"),
            (f"blabli/blebla:{version}[/foo]", "blabli/blebla", version, "/foo"),
            (f"blabli/BLEBLA:{version}[FOO]", "blabli/BLEBLA", version, "FOO"),
        )
    ),
    ("a[b]", "a", None, "b"),
    ("a:01", "a", "01", None),
    ("a:1.01", "a", "1.01", None),
    ("a\\b", "a\\b", None, None),
    ("a//b", "a//b", None, None),
    ("o", "o", None, None),
    ("1", "1", None, None),
    ("some_go0d_name", "some_go0d_name", None, None),
    ("50M3_G00D_N4ME_4S_W3LL", "50M3_G00D_N4ME_4S_W3LL", None, None),
]


@pytest.mark.parametrize(("text", "name", "version", "sub_part"), GRAMMAR)
def test_spec_parses_as_modelkit(
    text: str, name: str, version: str | None, sub_part: str | None
) -> None:
    spec = AssetSpec.parse(text)
    assert (spec.name, spec.version, spec.sub_part) == (name, version, sub_part)
    assert AssetSpec.parse(str(spec)) == spec


# Rejected by modelkit's grammar too (ISE in the probe table).
NOT_SPECS = [
    "", "_", "a_", "a:", "a::1", ":1", "a[b/]", "a[]", "a:1[/]", "a:1[b][c]", "a[b]:1",
    "a:1[b c]", "a b", "a:1 ", "é", "a@1", "./x", "-a", "a-", "a.", "a[.hidden]", "a\n",
]  # fmt: skip


@pytest.mark.parametrize("text", NOT_SPECS)
def test_malformed_specs_are_refused(text: str) -> None:
    with pytest.raises(InvalidAssetSpecError) as caught:
        AssetSpec.parse(text)
    assert caught.value.spec == text
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RepositoryError)


# Accepted by modelkit, refused here: the spec is a name, not a path (issue 5, point 1).
PATHS = [
    ("../x", "'..' segment"),
    ("a/../../etc", "'..' segment"),
    ("a\\..\\b", "'..' segment"),
    ("x:1.0[a/../../b]", "'..' segment"),
    ("x:1.0[..\\b]", "'..' segment"),
    ("/modelkit/tmp-local-asset/1.0/subpart/README.md", "absolute path"),
    ("/abs/p", "absolute path"),
    ("x[//etc/passwd]", "absolute path"),
    ("C:\\A\\L0cAL\\Windows\\file.ext", "Windows drive"),
    ("x:1.0[C:\\Windows]", "Windows drive"),
    ("x[a/C:\\b]", "Windows drive"),
]


@pytest.mark.parametrize(("text", "problem"), PATHS)
def test_paths_in_names_and_sub_parts_are_refused(text: str, problem: str) -> None:
    with pytest.raises(InvalidAssetSpecError) as caught:
        AssetSpec.parse(text)
    assert caught.value.spec == text
    assert problem in caught.value.reason
    assert repr(text) in str(caught.value)


def test_constructor_checks_as_parse_does() -> None:
    assert AssetSpec("a/b", "1.0", "c/d").sub_part_parts == ["c", "d"]
    for kwargs in ({"name": "../a"}, {"name": "a", "sub_part": "../b"}, {"name": "/a"}):
        with pytest.raises(InvalidAssetSpecError):
            AssetSpec(**kwargs)
    with pytest.raises(InvalidAssetSpecError):
        AssetSpec("a", version="1/2")


def test_versions_are_checked_by_the_versioning_system() -> None:
    for text in ("a:1.2.3", "a:latest", "a:v1", "a:1.0a", "a:1.-1", "a:2021-11-14T18-00-00Z"):
        with pytest.raises(InvalidAssetVersionError) as caught:
            AssetSpec.parse(text)
        assert caught.value.versioning == "major_minor"
        assert caught.value.version == text.split(":")[1]
    spec = AssetSpec.parse("a:2021-11-14T18-00-00Z[x]", "simple_date")
    assert spec.version == "2021-11-14T18-00-00Z"
    with pytest.raises(InvalidAssetVersionError):
        AssetSpec.parse("a:1.0", "simple_date")


# ============================================================================ versioning
def test_major_minor_validity_and_completeness() -> None:
    mm = MajorMinorVersioning()
    for version in ("1", "1.1", "10.1", "10.10", "123.4", "01"):
        assert mm.is_valid(version)
    for version in ("ok", "1.", "_", "a.a", "1.a", ".1", "12.", "1/2", "1.1.1", ""):
        assert not mm.is_valid(version)
    assert [mm.is_complete(v) for v in ("1", "1.1")] == [False, True]


def test_major_minor_orders_numerically() -> None:
    mm = MajorMinorVersioning()
    assert mm.sort(["0.0", "1.0", "2.0"]) == ["2.0", "1.0", "0.0"]
    assert mm.sort(["0.0", "0.1", "1.0", "1.1"]) == ["1.1", "1.0", "0.1", "0.0"]
    assert mm.sort(["0.2", "0.10", "2.0"]) == ["2.0", "0.10", "0.2"]
    assert mm.sort(["1.9", "1.10", "10.0", "9.0"]) == ["10.0", "9.0", "1.10", "1.9"]


def test_partial_major_never_matches_another_major() -> None:
    """modelkit's ``re.match("^1.", v)`` takes ``10.0`` for a ``1.x``: not here."""
    mm = MajorMinorVersioning()
    assert mm.latest(["10.0", "1.2"], "1") == "1.2"
    assert mm.latest(["10.0", "11.3"], "1") is None
    assert mm.latest(["10.0", "1.2", "1.10"], "1") == "1.10"
    assert mm.latest(["0.0", "0.1", "1.0"], "0") == "0.1"
    assert mm.latest(["1.0", "1.3"], "1.0") == "1.0"  # complete: itself, not the latest 1.x


INCREMENTS = [
    (["0.0"], False, None, "0.1"),
    (["0.0"], False, "0", "0.1"),
    (["0.0"], True, None, "1.0"),
    (["0.9"], False, None, "0.10"),
    (["0.9", "1.0"], False, None, "1.1"),
    (["0.9", "1.0"], False, "0", "0.10"),
    (["9.0"], True, None, "10.0"),
    (["123.456"], False, None, "123.457"),
    (["123.456"], True, None, "124.0"),
    (["123.456"], True, "0", "124.0"),
    ([], False, None, "0.0"),
]


@pytest.mark.parametrize(("versions", "bump_major", "major", "expected"), INCREMENTS)
def test_major_minor_increments(
    versions: list[str], bump_major: bool, major: str | None, expected: str
) -> None:
    assert MajorMinorVersioning().next_version(versions, bump_major=bump_major, major=major) == (
        expected
    )


@pytest.mark.parametrize("major", ["0", "ok", "1.0"])
def test_major_minor_refuses_updating_a_missing_major(major: str) -> None:
    with pytest.raises(InvalidAssetVersionError):
        MajorMinorVersioning().next_version(["123.456"], major=major)


def test_simple_date_versions() -> None:
    now = datetime(2021, 11, 15, 17, 30, 56, tzinfo=UTC)
    sd = SimpleDateVersioning(now=lambda: now)
    for version in ("2021-11-15T17-30-56Z", "0000-00-00T00-00-00Z", "9999-99-99T99-99-99Z"):
        assert sd.is_valid(version)
        assert sd.is_complete(version)
    for version in ("2021-11-15T17-30-56", "21-11-15T17-30-56Z", "", "1.0"):
        assert not sd.is_valid(version)
    assert sd.initial_version() == "2021-11-15T17-30-56Z"
    assert sd.next_version(["2021-11-14T18-00-00Z"]) == "2021-11-15T17-30-56Z"
    assert sd.next_version(["2021-11-15T17-30-56Z"]) == "2021-11-15T17-30-57Z"
    versions = ["2021-11-14T18-00-00Z", "2021-11-15T17-31-06Z", "2020-01-01T00-00-00Z"]
    assert sd.sort(versions) == sorted(versions, reverse=True)
    assert sd.latest(versions) == "2021-11-15T17-31-06Z"


def test_versioning_systems_by_name() -> None:
    assert isinstance(get_versioning_system(), MajorMinorVersioning)
    assert isinstance(get_versioning_system("simple_date"), SimpleDateVersioning)
    system = SimpleDateVersioning()
    assert get_versioning_system(system) is system
    with pytest.raises(UnknownVersioningSystemError) as caught:
        get_versioning_system("semver")
    assert caught.value.known == ["major_minor", "simple_date"]
    assert isinstance(caught.value, ValueError)


# ============================================================================ resolution
def test_resolution_decisions() -> None:
    mm = MajorMinorVersioning()
    local = {"0.0", "0.1", "1.0"}
    assert not needs_storage("1.0", mm, local)
    assert needs_storage("1.1", mm, local)
    assert needs_storage("1", mm, local)
    assert needs_storage(None, mm, local)
    # No storage asked: the latest local version that matches.
    assert resolve_version(None, mm, local, None) == Resolution("1.0", local=True)
    assert resolve_version("0", mm, local, None) == Resolution("0.1", local=True)
    assert resolve_version("2", mm, local, None) is None
    assert resolve_version("1.1", mm, local, None) is None
    # Storage asked: the latest of both, local copy when present.
    assert resolve_version(None, mm, local, ["1.1", "1.0"]) == Resolution("1.1", local=False)
    assert resolve_version("0", mm, local, ["1.1", "0.1"]) == Resolution("0.1", local=True)
    assert resolve_version("1", mm, local, ["10.0"]) == Resolution("1.0", local=True)
    assert resolve_version("1.1", mm, local, ["1.1"]) == Resolution("1.1", local=False)
    assert resolve_version("1.2", mm, local, ["1.1"]) is None


# ============================================================================ .meta
def test_meta_reads_modelkit_and_round_trips_hashes() -> None:
    modelkit = '{"is_directory": true, "push_date": "2020-05-20T13:52:54.754318+00:00", '
    modelkit += '"contents": ["a.json", "sub/b.json"]}'
    meta = AssetMeta.from_json(modelkit, source="x.meta")
    assert meta.is_directory
    assert [file.path for file in meta.files] == ["a.json", "sub/b.json"]
    assert meta.hashes == {}
    digest = "ab" * 32
    ours = AssetMeta.from_json(
        '{"is_directory": false, "push_date": null, "sha256": "' + digest + '", "size": 3,'
        ' "pusher": "kept"}',
        source="y.meta",
    )
    assert ours.hashes == {".": digest}
    assert ours.extra == {"pusher": "kept"}
    assert AssetMeta.from_json(ours.to_json(), source="again") == ours


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{",
        '{"is_directory": "yes"}',
        '{"is_directory": true, "contents": ["../escape"]}',
        '{"is_directory": true, "contents": ["/abs"]}',
        '{"is_directory": true, "contents": [".SUCCESS"]}',
        '{"is_directory": true, "contents": ["a", "a"]}',
        '{"is_directory": true, "contents": ["a"], "files": {"b": {}}}',
        '{"is_directory": false, "sha256": "nothex"}',
        '{"is_directory": false, "size": -1}',
    ],
)
def test_bad_meta_is_a_metadata_error(text: str) -> None:
    with pytest.raises(MetadataError) as caught:
        AssetMeta.from_json(text, source="s3://b/p/x/1.0.meta")
    assert caught.value.source == "s3://b/p/x/1.0.meta"


def test_every_pair_of_major_minor_versions_orders_consistently() -> None:
    ordered = ["0.0", "0.1", "0.2", "0.10", "1.0", "1.9", "1.10", "2.0", "10.0", "10.1"]
    mm = MajorMinorVersioning()
    for older, newer in itertools.combinations(ordered, 2):
        assert mm.sort_key(older) < mm.sort_key(newer)
        assert mm.sort([older, newer]) == [newer, older]
