"""The command line (issue 6): ``main(argv)`` in-process, the installed ``repository`` script and
``python -m repository`` in subprocesses, exit codes, ``--json``, ``--offline``, the cache
commands end to end, start-up imports, and README's examples.

Points: 1 (commands, common options, exit codes), 2 (list/info/resolve/prepare), 4 (cache
commands through the command line), 5 (start-up), 6 (console script, README examples);
point 3 (publish) is in tests/test_publish.py and point 4's decisions in
tests/test_cache_admin.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from repository.cache import CACHEDIR_TAG, MANIFEST_NAME
from repository.cli import main
from tests.conftest import RepoBuilder, item_entry
from tests.servers.fixtures import NginxFactory

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "mlrepo"
TINY = "model/cv/image_classification/ai.djl.example/tiny_mlp"
IRIS = "dataset/tabular/ai.djl.example/iris"
COMMANDS = [
    ["list"], ["info"], ["resolve"], ["prepare"], ["publish"],
    ["cache", "ls"], ["cache", "du"], ["cache", "verify"], ["cache", "rm"], ["cache", "prune"],
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``: its exit code, stdout and stderr."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """``main([*argv, "--json"])``, which must succeed and print only JSON on stdout."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def script() -> str:
    """The installed console script."""
    found = shutil.which("repository", path=str(Path(sys.executable).parent)) or shutil.which(
        "repository"
    )
    assert found, "the repository console script is not installed (pip install -e .)"
    return found


def run_script(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(), *argv], capture_output=True, text=True, check=False, cwd=cwd, timeout=60
    )


# -- 1. commands, common options, exit codes ----------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_and_the_common_options(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: repository {' '.join(command)}")
    for option in ("--cache-dir", "--offline", "--json", "--help"):
        assert option in out
    assert "exit codes: 0 success, 1 nothing matched, 2 usage error, 3 integrity" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["list"],
        ["list", "nosuchscheme://somewhere/"],
        ["info", str(EXAMPLES)],
        ["resolve", str(EXAMPLES), "not-an-mrl"],
        ["resolve", str(EXAMPLES), TINY, "--filter", "layers"],
        ["resolve", str(EXAMPLES), TINY, "--version", "[1.0"],
        ["cache"],
        ["cache", "prune", "--older-than", "soon"],
        ["cache", "prune", "--max-size", "lots"],
        ["cache", "prune", "--keep-latest", "0"],
        ["cache", "ls", "not/an/mrl"],
        ["cache", "rm", "no-such-path-or-mrl"],
    ],
    ids=lambda argv: " ".join(argv) or "(nothing)",
)
def test_usage_errors_return_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == "" and "error" in err


def test_nothing_matched_returns_1(
    capsys: pytest.CaptureFixture[str], make_local_repo: RepoBuilder
) -> None:
    assert run(capsys, "resolve", str(EXAMPLES), TINY, "--filter", "layers=99")[0] == 1
    assert run(capsys, "prepare", str(EXAMPLES), TINY, "--version", "[9,)")[0] == 1
    code, _, err = run(capsys, "info", str(EXAMPLES), "model/cv/ai.djl.example/nothing")
    assert code == 1 and "not found" in err
    other_kind = make_local_repo([{"version": "1", "files": {}}], mrl_path="other/x/a/b/c")
    assert run(capsys, "list", str(other_kind))[0] == 1
    assert run(capsys, "cache", "ls", TINY)[0] == 1
    assert run(capsys, "cache", "verify", TINY)[0] == 1
    assert run(capsys, "cache", "rm", TINY)[0] == 1


def test_an_integrity_failure_returns_3(
    make_local_repo: RepoBuilder, capsys: pytest.CaptureFixture[str], cache_dir: Path
) -> None:
    items = {"m": item_entry("1.0/m.bin", b"declared")}
    repo = make_local_repo([{"version": "1.0", "files": items}], {"1.0/m.bin": b"tampered"})
    mrl = "model/cv/image_classification/ai.djl.test/resnet"
    code, out, err = run(capsys, "prepare", str(repo), mrl, "--cache-dir", str(cache_dir))
    assert code == 3
    assert out == "" and "ChecksumMismatchError" in err
    assert not list((cache_dir / "repos").rglob(MANIFEST_NAME))


def test_common_options_go_before_or_after_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cache = tmp_path / "elsewhere"
    before = run_json(capsys, "--cache-dir", str(cache), "prepare", str(EXAMPLES), IRIS)
    after = run_json(capsys, "prepare", str(EXAMPLES), IRIS, "--cache-dir", str(cache))
    assert before == after
    assert before["resource_directory"].startswith(str(cache))
    assert json.loads(run(capsys, "--json", "cache", "--cache-dir", str(cache), "du")[1])["total"]


def test_offline_mode_uses_only_the_cache(
    nginx_factory: NginxFactory, capsys: pytest.CaptureFixture[str], cache_dir: Path
) -> None:
    url = nginx_factory(EXAMPLES.resolve()).base_url
    args = ["prepare", url, IRIS, "--cache-dir", str(cache_dir)]
    code, out, err = run(capsys, *args, "--offline")
    assert code == 3 and out == "" and "OfflineError" in err
    assert "REPOSITORY_OFFLINE" not in os.environ  # put back after the command
    assert run(capsys, *args)[0] == 0
    code, out, _ = run(capsys, *args, "--offline")
    assert code == 0 and (Path(out.strip()) / "labels.txt").is_file()


def test_python_dash_m_runs_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "repository", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: repository")
    bad = subprocess.run(
        [sys.executable, "-m", "repository", "nope"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and bad.stdout == "" and "invalid choice" in bad.stderr


# -- 2. list, info, resolve, prepare ------------------------------------------------------------


def test_list_info_resolve_prepare_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "list", str(EXAMPLES)) == [IRIS, TINY]
    info = run_json(capsys, "info", str(EXAMPLES), TINY)
    assert [(a["version"], a["name"]) for a in info["artifacts"]] == [
        ("0.0.1", "tiny_mlp_2"), ("0.0.1", "tiny_mlp_4"),
        ("0.0.2", "tiny_mlp_2"), ("0.0.2", "tiny_mlp_4"),
    ]  # fmt: skip
    first = info["artifacts"][1]
    assert first["properties"] == {"layers": "4", "dataset": "example"}
    assert first["files"]["model"]["size"] == 16619 and first["files"]["model"]["type"] == "dir"
    chosen = run_json(
        capsys, "resolve", str(EXAMPLES), TINY, "--version", "[0.0.1,0.0.2)", "--filter", "layers=4"
    )
    assert (chosen["version"], chosen["name"], chosen["prepared"]) == ("0.0.1", "tiny_mlp_4", False)
    prepared = run_json(capsys, "prepare", str(EXAMPLES), TINY, "--filter", "layers=4")
    assert (prepared["version"], prepared["prepared"]) == ("0.0.2", True)
    directory = Path(prepared["resource_directory"])
    assert (directory / "tiny_mlp_4" / "tiny_mlp" / "tiny_mlp-0000.params").is_file()


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", str(EXAMPLES), TINY)
    assert code == 0
    assert re.search(r"0\.0\.2  tiny_mlp_4  \[layers=4, dataset=example\]  16699 bytes", out)
    assert "model: 0.0.2/tiny_mlp_4.tar.gz (16619 bytes)" in out
    code, out, _ = run(capsys, "prepare", str(EXAMPLES), IRIS, "--no-progress")
    assert code == 0 and Path(out.strip()).is_dir() and out.count("\n") == 1


def test_prepare_shows_a_progress_bar_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(capsys, "prepare", str(EXAMPLES), TINY, "--cache-dir", str(tmp_path / "a"))
    assert code == 0 and "tiny_mlp 0.0.2" in err and "100%" in err
    assert Path(out.strip()).is_dir()  # stdout holds the result only
    argv = ["prepare", str(EXAMPLES), TINY, "--cache-dir", str(tmp_path / "b"), "--no-progress"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""


def test_prepare_from_a_remote_repository(
    nginx_factory: NginxFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    nginx = nginx_factory(EXAMPLES.resolve())
    result = run_json(
        capsys, "prepare", nginx.base_url, TINY, "--version", "0.0.1", "--filter", "layers=2"
    )
    assert result["prepared"] and (Path(result["resource_directory"]) / "synset.txt").is_file()
    assert sorted(r.uri.rsplit("/", 1)[-1] for r in nginx.requests(min_count=3)) == [
        "metadata.json", "synset.txt", "tiny_mlp_2.tar.gz",
    ]  # fmt: skip


# -- 4. cache commands --------------------------------------------------------------------------


def prepare_examples(capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """Prepare iris and tiny_mlp 0.0.1 and 0.0.2 (layers=4); their resource directories."""
    found = {}
    for mrl, version in ((IRIS, "1.0"), (TINY, "0.0.1"), (TINY, "0.0.2")):
        filters = ["--filter", "layers=4"] if mrl == TINY else []
        data = run_json(capsys, "prepare", str(EXAMPLES), mrl, "--version", version, *filters)
        found[f"{mrl}@{version}"] = Path(data["resource_directory"])
    return found


def test_cache_ls_du_and_the_cachedir_tag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("REPOSITORY_CACHE_DIR", str(root))
    assert run(capsys, "cache", "ls") == (0, "", f"0 entries, 0B in {root}\n")
    assert not root.exists()  # nothing is created by looking
    dirs = prepare_examples(capsys)
    listing = run_json(capsys, "cache", "ls")
    assert listing["root"] == str(root)
    assert (root / "CACHEDIR.TAG").read_text() == CACHEDIR_TAG
    entries = {f"{e['mrl']}@{e['version']}": e for e in listing["entries"]}
    assert sorted(entries) == sorted(dirs)
    tiny = entries[f"{TINY}@0.0.2"]
    assert tiny["complete"] and tiny["size"] > 16_000 and tiny["name"] == "tiny_mlp_4"
    assert tiny["path"] == str(dirs[f"{TINY}@0.0.2"])
    assert tiny["repository"] == EXAMPLES.as_uri() + "/"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*\+00:00", tiny["last_used"])
    (dirs[f"{IRIS}@1.0"] / MANIFEST_NAME).unlink()
    code, out, _ = run(capsys, "cache", "ls")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "SIZE", "LAST", "USED", "COMPLETE", "MRL", "VERSION", "NAME", "REPOSITORY",
    ]  # fmt: skip
    assert any(" no " in line and "incomplete: repos/" in line for line in lines)
    assert sum(" yes " in line and TINY in line for line in lines) == 2
    only = run_json(capsys, "cache", "ls", TINY, "--version", "[0.0.2,)")["entries"]
    assert [e["version"] for e in only] == ["0.0.2"]
    usage = run_json(capsys, "cache", "du")
    (repo,) = usage["repositories"]
    assert repo["repository"] == EXAMPLES.as_uri() + "/" and repo["artifacts"] == 2
    assert usage["total"] >= repo["size"] > sum(e["size"] for e in listing["entries"]) // 2


def test_cache_verify_and_repair(capsys: pytest.CaptureFixture[str]) -> None:
    dirs = prepare_examples(capsys)
    assert run(capsys, "cache", "verify")[0] == 0
    params = next(dirs[f"{TINY}@0.0.1"].rglob("*.params"))
    params.write_bytes(b"\0" * params.stat().st_size)
    (dirs[f"{IRIS}@1.0"] / "labels.txt").unlink()
    code, out, err = run(capsys, "cache", "verify")
    assert code == 3 and "3 artifacts verified, 2 damaged" in err
    assert f"DAMAGED {TINY} 0.0.1 tiny_mlp_4" in out and "1 changed" in out
    assert f"DAMAGED {IRIS} 1.0" in out and "1 missing (labels.txt)" in out
    assert run(capsys, "cache", "verify", TINY, "--version", "0.0.2")[0] == 0
    report = json.loads(run(capsys, "cache", "verify", IRIS, "--json")[1])
    assert report["damaged"] == 1 and report["artifacts"][0]["missing"] == ["labels.txt"]
    code, out, _ = run(capsys, "cache", "verify", "--repair")
    assert code == 0 and out.count("  repaired") == 2
    assert run(capsys, "cache", "verify")[0] == 0
    assert (dirs[f"{IRIS}@1.0"] / "labels.txt").is_file()


def test_cache_rm_by_mrl_version_or_path(capsys: pytest.CaptureFixture[str]) -> None:
    dirs = prepare_examples(capsys)
    dry = run_json(capsys, "cache", "rm", TINY, "--version", "0.0.1", "--dry-run")
    assert [e["path"] for e in dry["removed"]] == [str(dirs[f"{TINY}@0.0.1"])]
    assert dry["dry_run"] and dirs[f"{TINY}@0.0.1"].is_dir()
    removed = run_json(capsys, "cache", "rm", TINY, "--version", "0.0.1")
    assert removed["freed"] > 0 and not dirs[f"{TINY}@0.0.1"].exists()
    assert dirs[f"{TINY}@0.0.2"].is_dir()
    code, out, err = run(capsys, "cache", "rm", str(dirs[f"{IRIS}@1.0"]))
    assert code == 0 and "Removed 1 entries" in err and IRIS in out
    assert not dirs[f"{IRIS}@1.0"].exists()
    assert not [p for p in dirs[f"{IRIS}@1.0"].parent.iterdir() if p.name.endswith(".trash")]
    assert run(capsys, "cache", "rm", str(EXAMPLES))[0] == 1  # not a cache entry


def test_cache_prune(capsys: pytest.CaptureFixture[str]) -> None:
    dirs = prepare_examples(capsys)
    root = Path(os.environ["REPOSITORY_CACHE_DIR"])
    old = time.time() - 40 * 86400
    for directory in dirs.values():
        os.utime(directory / MANIFEST_NAME, (old, old))
    os.utime(dirs[f"{TINY}@0.0.2"] / MANIFEST_NAME, (time.time(), old))
    abandoned = root / ".tmp" / "downloads" / "0123abcd" / "free.1234abcd"
    abandoned.mkdir(parents=True)
    (abandoned / "data").write_bytes(b"partial")
    os.utime(abandoned / "data", (old, old))
    os.utime(abandoned, (old, old))
    keep = sorted(str(p) for p in dirs.values())

    dry = run_json(capsys, "cache", "prune", "--older-than", "30d", "--dry-run")
    assert sorted(e["path"] for e in dry["removed"]) == sorted(
        [str(abandoned), str(dirs[f"{IRIS}@1.0"]), str(dirs[f"{TINY}@0.0.1"])]
    )
    assert abandoned.exists() and sorted(str(p) for p in dirs.values() if p.is_dir()) == keep

    code, out, err = run(capsys, "cache", "prune", "--keep-latest", "1")
    assert code == 0 and "Removed 2 entries" in err and "0.0.1" in out
    assert not abandoned.exists() and not dirs[f"{TINY}@0.0.1"].exists()
    assert dirs[f"{IRIS}@1.0"].is_dir() and dirs[f"{TINY}@0.0.2"].is_dir()

    pruned = run_json(capsys, "cache", "prune", "--max-size", "1")
    assert len(pruned["removed"]) == 2 and not any(p.exists() for p in dirs.values())
    assert run_json(capsys, "cache", "prune")["removed"] == []


# -- 5. start-up --------------------------------------------------------------------------------


def test_help_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from repository.cli import main\n"
        "for argv in (['--help'], ['cache', 'prune', '--help'], ['publish', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(argv) == 0\n"
        "print(sorted(m for m in ('httpx', 'pydantic', 'tqdm', 'fsspec') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- 6. the console script, and README's examples -----------------------------------------------


def test_console_script_main_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    (src / "weights").mkdir(parents=True)
    (src / "weights" / "w.bin").write_bytes(hashlib.sha256(b"w").digest() * 100)
    monkeypatch.setenv("REPOSITORY_CACHE_DIR", str(tmp_path / "cache"))  # for the children
    listed = run_script("list", str(EXAMPLES), "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [IRIS, TINY]
    info = run_script("info", str(EXAMPLES), IRIS)
    assert info.returncode == 0 and "1.0  -  []  431 bytes" in info.stdout
    resolved = run_script("resolve", str(EXAMPLES), TINY, "--filter", "layers=2")
    assert resolved.returncode == 0 and resolved.stdout.startswith("0.0.2  tiny_mlp_2")
    prepared = run_script("prepare", str(EXAMPLES), IRIS)
    assert prepared.returncode == 0 and (Path(prepared.stdout.strip()) / "labels.txt").is_file()
    published = run_script(
        "publish", str(tmp_path / "repo"), "--type", "model", "--application", "cv",
        "--group", "ai.djl.test", "--artifact", "w", "--version", "1.0", str(src / "weights"),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    prepared = run_script("prepare", str(tmp_path / "repo"), "model/cv/ai.djl.test/w")
    assert prepared.returncode == 0, prepared.stderr
    assert (Path(prepared.stdout.strip()) / "weights" / "w.bin").is_file()
    listing = run_script("cache", "ls", "--json")
    assert len(json.loads(listing.stdout)["entries"]) == 2
    (Path(prepared.stdout.strip()) / "weights" / "w.bin").write_bytes(b"damaged")
    verified = run_script("cache", "verify")
    assert verified.returncode == 3 and "DAMAGED model/cv/ai.djl.test/w" in verified.stdout
    pruned = run_script("cache", "prune", "--max-size", "0", "--dry-run")
    assert pruned.returncode == 0 and "Would remove 2 entries" in pruned.stderr
    assert len(json.loads(run_script("cache", "ls", "--json").stdout)["entries"]) == 2


def readme_commands() -> list[str]:
    """The ``repository ...`` lines of the code blocks in README's "Command line" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("repository ")]


def test_readme_documents_every_command_with_a_working_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = readme_commands()
    documented = {tuple(shlex.split(c)[1:3]) for c in commands}
    for command in COMMANDS:
        assert any(d[: len(command)] == tuple(command) for d in documented), command
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        code, _, err = run(capsys, *shlex.split(command)[1:])
        assert code == 0, f"{command}: {err}"
