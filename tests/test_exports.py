"""The public API: every exported name is reachable, documented, and import stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys

import repository
from repository import _SOURCES


def test_all_matches_the_lazy_table() -> None:
    assert sorted(repository.__all__) == sorted([*_SOURCES, "__version__"])
    assert len(set(repository.__all__)) == len(repository.__all__)


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in _SOURCES:
        value = getattr(repository, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__doc__, name
        assert name in dir(repository)


def test_every_error_is_a_repository_error() -> None:
    errors = [getattr(repository, name) for name in repository.__all__ if name.endswith("Error")]
    assert len(errors) >= 12
    for error in errors:
        assert issubclass(error, repository.RepositoryError)


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, repository, repository.cli; "
        "print(sorted(m for m in ('httpx', 'pydantic', 'tqdm') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
