"""Benchmarks of issue 3, point 10: ``prepare`` against curl and pooch, all served by a local nginx.

    python benchmarks/run.py [--quick] [--repeat N] [--only a,b,...] [--local]

Prints a table of medians and of ratios measured in the same run, and writes the raw figures
with a description of the machine to ``benchmarks/results/latest.json``. It exits 0 whether or
not the targets are met: it is a report, not a test. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pooch  # type: ignore[import-untyped]

# Run as a script from anywhere: the project root holds the benchmarks and the test servers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.datasets import FULL, QUICK, Served, Sizes, build, read_through
from repository import Artifact, Repository
from repository.errors import UnsupportedSchemeError
from tests.servers.nginx import NGINX_BINARY, NginxServer

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
DATA = BENCHMARKS / ".data"
RESULTS = BENCHMARKS / "results"
WARM_CALLS = 1000  # prepare calls timed per case of (d)
FOLDERS = {  # the generated folders each case needs
    "a": ("big",),
    "b": ("archive",),
    "c": ("big", "archive"),
    "d": ("big", "archive", "small"),
    "e": ("small",),
    "f": ("big",),
}
TOOLS = {"curl": "curl", "tar": "tar", "zstd": "zstd"}  # command: its Debian package
UNPACK = {  # curl's output piped through these, then into the target directory
    "gz": (["tar", "-xzf", "-", "-C"],),
    "zst": (["zstd", "-dcq"], ["tar", "-xf", "-", "-C"]),
}

Probe = Callable[[Path], float]
"""Runs once with a directory of its own (fresh and empty for a cold case); returns a measure."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- what is measured -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on ours/peer (``of_ratio``) or on our own median; ``strict`` means "under"."""

    text: str
    limit: float
    of_ratio: bool
    strict: bool = False

    def met(self, ours: float, ratio: float | None) -> bool:
        value = ratio if self.of_ratio else ours
        if value is None:
            return False
        return value < self.limit if self.strict else value <= self.limit


@dataclass
class Comparison:
    """One row of the report: our probe against a peer's, alternated round after round."""

    key: str
    label: str
    target: Target
    make: Callable[[Path], tuple[Probe, Probe | None]]  # set up in a folder, return the probes
    peer_name: str = ""
    unit: str = "s"
    fresh: bool = True  # a new empty directory for every call (cold)
    # Many small files: every call's directory stays until the case ends. ext4 skips the inodes
    # freed in the last 5 to 35 seconds when it allocates new ones (recently_deleted), so
    # removing a thousand files after each call charged the next call with them.
    removed_at_end: bool = False
    ours_per_round: int = 1
    details: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Result:
    comparison: Comparison
    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    error: str = ""
    ours_cpu: list[float] = field(default_factory=list)  # CPU seconds of each timed call
    peer_cpu: list[float] = field(default_factory=list)

    @property
    def ours_median(self) -> float | None:
        return statistics.median(self.ours) if self.ours else None

    @property
    def peer_median(self) -> float | None:
        return statistics.median(self.peer) if self.peer else None

    @property
    def ratio(self) -> float | None:
        ours, peer = self.ours_median, self.peer_median
        return ours / peer if ours is not None and peer else None

    @property
    def passed(self) -> bool:
        ours = self.ours_median
        return ours is not None and self.comparison.target.met(ours, self.ratio)


class Timed:
    """A probe measuring the wall-clock seconds ``action`` takes; it also keeps, in :attr:`cpu`,
    the CPU seconds (user and system, every thread, child processes included) of each call."""

    def __init__(self, action: Callable[[Path], object]) -> None:
        self.action = action
        self.cpu: list[float] = []

    def __call__(self, directory: Path) -> float:
        before = cpu_seconds()
        start = time.perf_counter()
        self.action(directory)
        elapsed = time.perf_counter() - start
        self.cpu.append(cpu_seconds() - before)
        return elapsed


def cpu_seconds() -> float:
    """User and system seconds of this process and of its waited-for children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[Path], object]) -> Probe:
    """A :class:`Timed` probe."""
    return Timed(action)


def sample(
    contenders: Sequence[tuple[Probe, int]],
    rounds: int,
    scratch: Path,
    *,
    fresh: bool,
    removed_at_end: bool = False,
) -> list[list[float]]:
    """Run each probe its number of times per round, reversing the order every other round."""
    values: list[list[float]] = [[] for _ in contenders]
    for round_ in range(rounds):
        order = list(range(len(contenders)))
        if round_ % 2:
            order.reverse()
        for index in order:
            probe, calls = contenders[index]
            for _ in range(calls):
                values[index].append(
                    _once(probe, scratch, fresh=fresh, removed_at_end=removed_at_end)
                )
    return values


def _once(probe: Probe, scratch: Path, *, fresh: bool, removed_at_end: bool) -> float:
    if not fresh:
        return probe(scratch)
    directory = Path(tempfile.mkdtemp(dir=scratch))
    try:
        return probe(directory)
    finally:
        if not removed_at_end:  # else with the rest of the case's folder
            shutil.rmtree(directory)
        # Untimed: let the kernel write back and discard what this call left, so that the
        # next contender does not pay for it.
        os.sync()


def measure(comparison: Comparison, rounds: int, scratch: Path) -> Result:
    """Set the comparison up and sample it in a folder of its own, removed afterwards."""
    workdir = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{comparison.key}-"))
    try:
        ours, peer = comparison.make(workdir)
        contenders = [(ours, comparison.ours_per_round)] + ([(peer, 1)] if peer else [])
        values = sample(
            contenders,
            rounds,
            workdir,
            fresh=comparison.fresh,
            removed_at_end=comparison.removed_at_end,
        )
    except Exception as exc:
        traceback.print_exc()
        return Result(comparison, error=f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(workdir)
    return Result(
        comparison,
        values[0],
        values[1] if peer else [],
        ours_cpu=getattr(ours, "cpu", []),
        peer_cpu=getattr(peer, "cpu", []),
    )


# -- the contenders -------------------------------------------------------------------------


@dataclass
class Bench:
    """The served data, the server and where runs write."""

    root: Path
    server: NginxServer
    local: bool
    served: dict[str, Served]

    @property
    def location(self) -> str:
        """Where our repository reads: nginx, or the served folder itself with ``--local``."""
        return str(self.root) if self.local else self.server.base_url

    def repository(self, cache: Path) -> Repository:
        return Repository.new_instance("bench", self.location, cache_dir=cache)

    def resolve(self, repo: Repository, served: Served) -> Artifact:
        artifact = repo.resolve(served.mrl, None, served.properties)
        if artifact is None:
            raise LookupError(f"{served.mrl} {served.properties} not found in {repo}")
        return artifact

    def url(self, served: Served) -> str:
        return self.server.url(served.path(served.items[0]))


def ours_cold(bench: Bench, served: Served) -> Probe:
    """A fresh repository: resolve (fetches the metadata) and prepare."""

    def run(directory: Path) -> None:
        repo = bench.repository(directory)
        repo.prepare(bench.resolve(repo, served))

    return timed(run)


def pipeline(*stages: Sequence[str]) -> None:
    """Run commands with each one's stdout piped into the next; raise if any fails."""
    processes: list[subprocess.Popen[bytes]] = []
    for index, stage in enumerate(stages):
        previous = processes[-1].stdout if processes else None
        piped = index < len(stages) - 1
        processes.append(
            subprocess.Popen(
                stage,
                stdin=previous or subprocess.DEVNULL,
                stdout=subprocess.PIPE if piped else None,
            )
        )
        if previous is not None:
            previous.close()  # the new stage holds the only reading end
    for process in processes:
        if process.wait() != 0:
            raise subprocess.CalledProcessError(process.returncode, process.args)


def curl_download(bench: Bench, served: Served) -> Probe:
    return timed(
        lambda directory: pipeline(["curl", "-sSf", "-o", str(directory / "f"), bench.url(served)])
    )


def curl_untar(bench: Bench, served: Served) -> Probe:
    *filters, untar = UNPACK[served.properties["format"]]
    return timed(
        lambda directory: pipeline(
            ["curl", "-sSf", bench.url(served)], *filters, [*untar, str(directory)]
        )
    )


def pooch_fetch(bench: Bench, served: Served, directory: Path, *, untar: bool) -> None:
    """pooch.retrieve with the known sha256, item after item, as its users write it."""
    for item in served.items:
        pooch.retrieve(
            bench.server.url(served.path(item)),
            known_hash=f"sha256:{item.sha256}",
            path=directory,
            processor=pooch.Untar() if untar else None,
        )


def pooch_cold(bench: Bench, served: Served, *, untar: bool = False) -> Probe:
    return timed(lambda directory: pooch_fetch(bench, served, directory, untar=untar))


def ours_and(
    peer: Callable[..., Probe], bench: Bench, served: Served, _workdir: Path, **options: bool
) -> tuple[Probe, Probe]:
    """Our cold probe and the peer's, on the same artifact (each call gets a fresh folder)."""
    return ours_cold(bench, served), peer(bench, served, **options)


def warm_pair(
    bench: Bench, served: Served, workdir: Path, *, untar: bool = False
) -> tuple[Probe, Probe]:
    """Prepare (and pooch-fetch) once, untimed; the probes then repeat the call on the result."""
    repo = bench.repository(workdir / "ours")
    artifact = bench.resolve(repo, served)
    repo.prepare(artifact)
    if not repo.is_prepared(artifact):
        raise RuntimeError(f"{served.name} is not prepared after prepare()")
    fetched = workdir / "pooch"
    pooch_fetch(bench, served, fetched, untar=untar)
    return (
        timed(lambda _: repo.prepare(artifact)),
        timed(lambda _: pooch_fetch(bench, served, fetched, untar=untar)),
    )


def peak_rss(bench: Bench, served: Served, before: list[float]) -> Probe:
    """Run ``peak_rss.py`` (only a cold prepare) in a child; appends its pre-prepare peak."""

    def probe(directory: Path) -> float:
        command = [sys.executable, str(BENCHMARKS / "peak_rss.py"), bench.location]
        properties = [f"{key}={value}" for key, value in served.properties.items()]
        output = subprocess.run(
            [*command, str(directory), served.artifact_id, *properties],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        figures = json.loads(output)
        before.append(figures["before_prepare_mib"])
        return float(figures["peak_rss_mib"])

    return probe


# -- the cases of issue 3 -------------------------------------------------------------------


def human_size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def archive_label(served: Served) -> str:
    return (
        f"tar.{served.properties['format']}: {served.content_files:,} files, "
        f"{human_size(served.content_size)} ({human_size(served.download_size)} packed)"
    )


def case_a(bench: Bench, rounds: int) -> list[Comparison]:
    # The same file twice: declaring one digest, as every real repository does, and two, which
    # makes prepare verify both (a second hash of a gigabyte on two cores).
    return [
        Comparison(
            key,
            f"{human_size(big.content_size)} file, {big.properties['digests']} verified",
            Target("<= 1.25x curl", 1.25, of_ratio=True),
            partial(ours_and, curl_download, bench, big),
            "curl -o",
        )
        for key, big in (("a", bench.served["big"]), ("a-2", bench.served["big_sha1_sha256"]))
    ]


def case_b(bench: Bench, rounds: int) -> list[Comparison]:
    return [
        Comparison(
            f"b-{archive.properties['format']}",
            archive_label(archive),
            Target("<= 1.3x curl|tar", 1.3, of_ratio=True),
            partial(ours_and, curl_untar, bench, archive),
            "curl | tar -x",
        )
        for archive in (bench.served["archive_gz"], bench.served["archive_zst"])
    ]


def case_c(bench: Bench, rounds: int) -> list[Comparison]:
    # No tar.zst: pooch's Untar uses tarfile, which reads zstd only from Python 3.14 on.
    big, gz = bench.served["big"], bench.served["archive_gz"]
    target = Target("< 1x pooch (faster)", 1.0, of_ratio=True, strict=True)
    return [
        Comparison(
            "c-file",
            f"{human_size(big.content_size)} file",
            target,
            partial(ours_and, pooch_cold, bench, big),
            "pooch.retrieve",
        ),
        Comparison(
            "c-gz",
            archive_label(gz),
            target,
            partial(ours_and, pooch_cold, bench, gz, untar=True),
            "pooch + Untar",
        ),
    ]


def case_d(bench: Bench, rounds: int) -> list[Comparison]:
    big, gz, small = (bench.served[name] for name in ("big", "archive_gz", "small"))
    cases = [
        ("d-file", f"{human_size(big.content_size)} file", big, False, "pooch hit"),
        ("d-gz", archive_label(gz), gz, True, "pooch+Untar hit"),
        ("d-items", f"{small.content_files:,}-item artifact", small, False, "pooch hits"),
    ]
    return [
        Comparison(
            key,
            f"already prepared: {label}",
            Target("< 1 ms", 0.001, of_ratio=False, strict=True),
            partial(warm_pair, bench, artifact, untar=untar),
            peer,
            fresh=False,
            ours_per_round=max(1, WARM_CALLS // rounds),
        )
        for key, label, artifact, untar, peer in cases
    ]


def case_e(bench: Bench, rounds: int) -> list[Comparison]:
    small = bench.served["small"]
    sizes = [item.size for item in small.items]
    return [
        Comparison(
            "e",
            f"{len(sizes):,} items of {human_size(min(sizes))}..{human_size(max(sizes))} "
            f"({human_size(sum(sizes))})",
            Target(">= 5x faster (<= 0.2x)", 0.2, of_ratio=True),
            partial(ours_and, pooch_cold, bench, small),
            "pooch, one by one",
            removed_at_end=True,
        )
    ]


def case_f(bench: Bench, rounds: int) -> list[Comparison]:
    big = bench.served["big"]
    before: list[float] = []
    return [
        Comparison(
            "f",
            f"peak RSS of a cold prepare of the {human_size(big.content_size)} file",
            Target("< 100 MiB", 100.0, of_ratio=False, strict=True),
            lambda _workdir: (peak_rss(bench, big, before), None),
            unit="MiB",
            details={"peak_RSS_MiB_before_prepare_started": before},
        )
    ]


CASES: dict[str, Callable[[Bench, int], list[Comparison]]] = {
    "a": case_a,
    "b": case_b,
    "c": case_c,
    "d": case_d,
    "e": case_e,
    "f": case_f,
}


# -- the report -----------------------------------------------------------------------------


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def spread(values: list[float], unit: str) -> str:
    if not values:
        return "-"
    median = show(statistics.median(values), unit)
    return f"{median} ({show(min(values), unit)}..{show(max(values), unit)})"


def cpu_cell(result: Result) -> str:
    """Median CPU seconds per call, ours/peer, for wall-clock cases."""
    if result.comparison.unit != "s" or not result.ours_cpu:
        return "-"
    ours = f"{statistics.median(result.ours_cpu):.2f}"
    return f"{ours}/{statistics.median(result.peer_cpu):.2f}" if result.peer_cpu else ours


def table(results: list[Result]) -> str:
    rows = [["case", "what", "ours: median (min..max)", "peer", "peer: median (min..max)"]]
    rows[0] += ["ours/peer", "target", "result", "CPU s: ours/peer"]
    for result in results:
        comparison = result.comparison
        unit = comparison.unit
        verdict = "ERROR" if result.error else ("PASS" if result.passed else "FAIL")
        ratio = result.ratio
        rows.append(
            [
                comparison.key,
                comparison.label,
                spread(result.ours, unit),
                comparison.peer_name or "-",
                spread(result.peer, unit),
                "-" if ratio is None else f"{ratio:.3g}x",
                comparison.target.text,
                verdict,
                cpu_cell(result),
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def tool_version(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0]


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    meminfo = Path("/proc/meminfo").read_text().split()
    packages = ("repository", "httpx", "pooch", "requests", "zstandard", "xxhash")
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / (1 << 20), 1),
        "system": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in packages},
        "tools": {
            "curl": tool_version("curl", "--version"),
            "nginx": tool_version(str(NGINX_BINARY), "-v"),
            "tar": tool_version("tar", "--version"),
            "zstd": tool_version("zstd", "--version"),
        },
        "commit": tool_version("git", "-C", str(ROOT), "describe", "--always", "--dirty"),
    }


def report(results: list[Result], settings: dict[str, Any], output: Path) -> None:
    info = machine()
    print(f"\n{settings['transport']}")
    print(
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['system']}, "
        f"Python {info['python']}, {settings['repeat']} rounds, commit {info['commit']}\n"
    )
    print(table(results))
    for result in results:
        if result.error:
            print(f"\n{result.comparison.key}: {result.error}")
        for name, values in result.comparison.details.items():
            if values:
                median = statistics.median(values)
                print(f"\n{result.comparison.key}: {name.replace('_', ' ')}: median {median:.1f}")
    print("\nFile data is served from the page cache: the figures are the clients' CPU cost.")
    print("CPU s: user + system seconds of the client per call (threads and child processes).")
    if any(result.comparison.key.startswith("c-") for result in results):
        print(
            "c has no tar.zst row: pooch's Untar uses tarfile, which reads zstd from Python 3.14."
        )
    cases = [
        {
            "key": result.comparison.key,
            "label": result.comparison.label,
            "unit": result.comparison.unit,
            "peer": result.comparison.peer_name or None,
            "target": result.comparison.target.text,
            "ours": result.ours,
            "peer_values": result.peer,
            "ours_median": result.ours_median,
            "peer_median": result.peer_median,
            "ratio": result.ratio,
            "ours_cpu": result.ours_cpu,
            "peer_cpu": result.peer_cpu,
            "passed": result.passed,
            "error": result.error or None,
            "details": result.comparison.details,
        }
        for result in results
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, *sys.argv],
        "machine": info,
        "settings": settings,
        "cases": cases,
    }
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"Raw figures: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")


# -- main -----------------------------------------------------------------------------------


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case (default 5)")
    parser.add_argument(
        "--only", default="".join(FOLDERS), help="cases to run, e.g. a,b (default: all)"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="our repository reads the served folder as a path (peers still use nginx)",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default results/latest*.json)")
    args = parser.parse_args(argv)
    args.only = list(dict.fromkeys(args.only.replace(",", "").replace(" ", "")))
    unknown = sorted(set(args.only) - set(FOLDERS))
    if unknown or args.repeat < 1:
        parser.error(f"unknown cases {unknown}" if unknown else "--repeat must be at least 1")
    return args


def main(argv: list[str]) -> None:
    args = parse_arguments(argv)
    missing = [package for command, package in TOOLS.items() if shutil.which(command) is None]
    if missing:
        sys.exit(f"Missing tools: apt-get install -y {' '.join(missing)}")
    sizes: Sizes = QUICK if args.quick else FULL
    root = DATA / ("quick" if args.quick else "full")
    output = args.output or RESULTS / ("latest-quick.json" if args.quick else "latest.json")
    folders = sorted({folder for letter in args.only for folder in FOLDERS[letter]})
    served = {
        artifact.name: artifact
        for folder in folders
        for artifact in build(root, sizes, folder, log)
    }
    read_through(
        [root / artifact.path(item) for artifact in served.values() for item in artifact.items]
    )
    pooch.get_logger().setLevel("WARNING")  # one line per file on stderr otherwise
    with (
        NginxServer(root) as server,
        tempfile.TemporaryDirectory(dir=DATA, prefix="scratch-") as scratch,
    ):
        bench = Bench(root, server, args.local, served)
        try:
            kind = type(bench.repository(Path(scratch))).__name__
        except UnsupportedSchemeError as exc:
            sys.exit(f"{exc}\nRemoteRepository is not available yet: run with --local.")
        where = f"reading {root}" if args.local else f"over {server.base_url} (nginx)"
        settings = {
            "quick": args.quick,
            "repeat": args.repeat,
            "only": args.only,
            "sizes": asdict(sizes),
            "warm_calls": max(1, WARM_CALLS // args.repeat) * args.repeat,
            "transport": f"ours: {kind} {where}; peers: curl and pooch over nginx",
        }
        results: list[Result] = []
        for letter in args.only:
            for comparison in CASES[letter](bench, args.repeat):
                log(f"{comparison.key}: {comparison.label} ...")
                result = measure(comparison, args.repeat, Path(scratch))
                log(
                    f"{comparison.key}: ours {spread(result.ours, comparison.unit)}, "
                    f"{comparison.peer_name or '-'} {spread(result.peer, comparison.unit)}"
                )
                results.append(result)
    report(results, settings, output)


if __name__ == "__main__":
    main(sys.argv[1:])
