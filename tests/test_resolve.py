"""resolve(): the highest version in the range whose properties contain the filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from repository import MRL, InvalidVersionError, LocalRepository, Repository
from tests.conftest import RepoBuilder

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "resnet")

# DJL's probe (reference/djl.md §3.3), artifacts in this file order.
PROBE = [
    {"name": "r18", "version": "0.0.1", "properties": {"layers": "18"}},
    {"name": "r18", "version": "0.0.2", "properties": {"layers": "18"}},
    {"name": "r50", "version": "0.0.1", "properties": {"layers": "50"}},
    {"name": "r50b", "version": "0.0.2", "properties": {"layers": "50"}},
    {"name": "badtype", "version": "0.0.2", "properties": {}},
]


@pytest.fixture
def repo(make_local_repo: RepoBuilder, cache_dir: Path) -> Repository:
    return Repository.new_instance("probe", make_local_repo(PROBE), cache_dir=cache_dir)


@pytest.mark.parametrize(
    ("version", "filter", "expected"),
    [
        (None, None, ("r18", "0.0.2")),
        ("0.0.1", None, ("r18", "0.0.1")),
        ("[0.0.1,0.0.2)", None, ("r18", "0.0.1")),
        (None, {"layers": "50"}, ("r50b", "0.0.2")),
        ("0.0.3", None, None),
        (None, {"layers": "99"}, None),
        ("(,0.0.2]", {"layers": "50"}, ("r50b", "0.0.2")),
        ("(,0.0.2)", {"layers": "50"}, ("r50", "0.0.1")),
        ("[0.0.1],[0.0.2,)", {"layers": "18"}, ("r18", "0.0.2")),
        (None, {"layers": "18", "missing": "x"}, None),
        (None, {}, ("r18", "0.0.2")),
    ],
)
def test_resolve_probe_table(
    repo: Repository,
    version: str | None,
    filter: dict[str, str] | None,
    expected: tuple[str, str] | None,
) -> None:
    artifact = repo.resolve(MRL_, version, filter)
    assert (None if artifact is None else (artifact.name, artifact.version)) == expected


def test_equal_versions_keep_the_first_in_file_order(make_local_repo: RepoBuilder) -> None:
    repo = LocalRepository(
        "r",
        make_local_repo(
            [
                {"name": "a", "version": "1.0"},
                {"name": "b", "version": "1.0.0"},
                {"name": "c", "version": "0.9"},
            ]
        ),
    )
    artifact = repo.resolve(MRL_)
    assert artifact is not None and artifact.name == "a"


def test_maven_ordering_decides_the_highest(make_local_repo: RepoBuilder) -> None:
    versions = ["1.0-SNAPSHOT", "1.10", "1.9", "1.0-rc1", "1.10-beta1"]
    repo = LocalRepository("r", make_local_repo([{"name": v, "version": v} for v in versions]))
    artifact = repo.resolve(MRL_)
    assert artifact is not None and artifact.version == "1.10"
    pre = repo.resolve(MRL_, "[1.0-alpha,1.0)")
    assert pre is not None and pre.version == "1.0-SNAPSHOT"


def test_versionless_artifact_matches_only_any_version(make_local_repo: RepoBuilder) -> None:
    repo = LocalRepository(
        "r", make_local_repo([{"name": "none"}, {"name": "v", "version": "1.0"}])
    )
    assert repo.resolve(MRL_).name == "v"  # type: ignore[union-attr]
    only = LocalRepository("r", make_local_repo([{"name": "none"}]))
    assert only.resolve(MRL_).name == "none"  # type: ignore[union-attr]
    assert only.resolve(MRL_, "[0,)") is None


def test_unknown_mrl_resolves_to_none(repo: Repository) -> None:
    assert repo.resolve(MRL.model("cv", "ai.djl.test", "other")) is None


def test_bad_range_raises_naming_the_input(repo: Repository) -> None:
    with pytest.raises(InvalidVersionError, match=r"\[2.0,1.0\]"):
        repo.resolve(MRL_, "[2.0,1.0]")
