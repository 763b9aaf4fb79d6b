"""schemas/metadata.schema.json is generated from the models and must not drift from them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate", ROOT / "schemas" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_file_matches_the_models() -> None:
    generator = _generator()
    assert (ROOT / "schemas" / "metadata.schema.json").read_text() == generator.render()


def test_check_command_fails_on_drift(tmp_path: Path) -> None:
    generator = _generator()
    generator.SCHEMA_FILE = tmp_path / "metadata.schema.json"
    generator.SCHEMA_FILE.write_text("{}\n")
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_schema_uses_djl_names_and_requires_artifacts() -> None:
    schema = json.loads((ROOT / "schemas" / "metadata.schema.json").read_text())
    assert schema["required"] == ["artifacts"]
    assert {"metadataVersion", "groupId", "artifactId", "artifacts"} <= set(schema["properties"])
    item = schema["$defs"]["Item"]["properties"]
    assert {"uri", "sha1Hash", "sha256Hash", "name", "type", "size"} <= set(item)


def test_generator_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "schemas/generate.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
