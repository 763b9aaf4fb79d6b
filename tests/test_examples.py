"""The example repository and script that README's first command runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


def test_example_script_prepares_without_network(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "prepare_example.py"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "tiny_mlp/tiny_mlp-0000.params" in result.stdout
    assert "iris_train.csv starts with: sepal_length,sepal_width,label" in result.stdout
    assert "0.0.2 {'layers': '4'" in result.stdout


def test_example_repository_has_real_checksums_and_an_archive() -> None:
    metadata_files = sorted((EXAMPLES / "mlrepo").rglob("metadata.json"))
    kinds = {m.relative_to(EXAMPLES / "mlrepo").parts[0] for m in metadata_files}
    assert kinds == {"model", "dataset"}
    archives = 0
    for metadata_file in metadata_files:
        metadata = json.loads(metadata_file.read_text())
        for artifact in metadata["artifacts"]:
            for item in artifact["files"].values():
                data = (metadata_file.parent / item["uri"]).read_bytes()
                assert hashlib.sha1(data).hexdigest() == item["sha1Hash"]
                assert hashlib.sha256(data).hexdigest() == item["sha256Hash"]
                assert len(data) == item["size"]
                archives += item["uri"].endswith(".tar.gz")
    assert archives >= 1


def test_example_repository_is_what_the_generator_makes(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in (EXAMPLES / "mlrepo").rglob("*") if p.is_file()}
    subprocess.run([sys.executable, str(EXAMPLES / "make_example_repo.py")], check=True)
    after = {p: p.read_bytes() for p in (EXAMPLES / "mlrepo").rglob("*") if p.is_file()}
    assert after == before
