"""The ``repository`` command line. Thin: it parses arguments and calls the public API.

Heavy modules (httpx, pydantic, tqdm) are imported inside the commands, so ``--help`` is quick.
Exit codes: 0 success, 1 nothing matched, 2 usage error, 3 integrity or download failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repository.base import Repository
    from repository.metadata import Artifact

__all__ = ["main"]

EXIT_OK, EXIT_NO_MATCH, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


class UsageError(Exception):
    """A command line that parses but cannot be acted on (a bad MRL, filter or range)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", help="cache folder (default: $REPOSITORY_CACHE_DIR or the user cache)"
    )
    parser.add_argument("--offline", action="store_true", help="never use the network")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (to stderr)")


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="repository path or URL")
    parser.add_argument(
        "mrl",
        help="type/application/group/artifact, e.g. model/cv/image_classification/ai.djl.zoo/mlp",
    )
    parser.add_argument(
        "--version", dest="version_range", help="version or range, e.g. '[1.0,2.0)'"
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="required property (repeatable)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repository",
        description="Resolve, verify and cache ML models and data sets from repositories.",
        epilog="Exit codes: 0 success, 1 nothing matched, 2 usage error, "
        "3 integrity or download failure.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list a repository's resources")
    listing.add_argument("url", help="repository path or URL")
    _common(listing)

    info = commands.add_parser("info", help="show a resource's artifacts, properties and sizes")
    info.add_argument("url", help="repository path or URL")
    info.add_argument("mrl", help="type/application/group/artifact")
    _common(info)

    resolve = commands.add_parser(
        "resolve", help="print the artifact a version range and filter pick"
    )
    _selection(resolve)
    _common(resolve)

    prepare = commands.add_parser(
        "prepare", help="download, verify and extract an artifact into the cache"
    )
    _selection(prepare)
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(prepare)
    return parser


def _open(args: argparse.Namespace) -> Repository:
    from repository.base import Repository

    return Repository.new_instance(args.url, args.url, cache_dir=args.cache_dir)


def _mrl(text: str) -> Any:
    from repository.errors import InvalidMRLError
    from repository.mrl import MRL

    try:
        return MRL.parse(text)
    except InvalidMRLError as exc:
        raise UsageError(str(exc)) from None


def _filters(pairs: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--filter takes KEY=VALUE, got {pair!r}")
        filters[key] = value
    return filters


def _artifact_summary(repo: Repository, artifact: Artifact) -> dict[str, Any]:
    return {
        "version": artifact.version,
        "name": artifact.name,
        "properties": artifact.properties,
        "files": {
            key: {
                "uri": item.uri,
                "size": item.size,
                "name": item.effective_name,
                "type": item.effective_type,
            }
            for key, item in artifact.files.items()
        },
        "resource_directory": str(repo.get_resource_directory(artifact)),
        "prepared": repo.is_prepared(artifact),
    }


def _resolve(args: argparse.Namespace, repo: Repository) -> Artifact | None:
    from repository.errors import InvalidVersionError

    try:
        return repo.resolve(_mrl(args.mrl), args.version_range, _filters(args.filter))
    except InvalidVersionError as exc:
        raise UsageError(str(exc)) from None


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _cmd_list(args: argparse.Namespace) -> int:
    repo = _open(args)
    resources = [str(mrl) for mrl in repo.get_resources()]
    _print(args, resources, "\n".join(resources))
    return EXIT_OK if resources else EXIT_NO_MATCH


def _cmd_info(args: argparse.Namespace) -> int:
    repo = _open(args)
    metadata = repo.locate(_mrl(args.mrl))
    if metadata is None:
        print(f"{args.mrl}: not found in {args.url}", file=sys.stderr)
        return EXIT_NO_MATCH
    artifacts = [_artifact_summary(repo, artifact) for artifact in metadata.artifacts]
    lines = [f"{args.mrl} ({metadata.name or metadata.artifact_id}): {len(artifacts)} artifacts"]
    for summary in artifacts:
        size = sum(f["size"] or 0 for f in summary["files"].values())
        props = ", ".join(f"{k}={v}" for k, v in summary["properties"].items())
        lines.append(
            f"  {summary['version'] or '-'}  {summary['name'] or '-'}  [{props}]  {size} bytes"
        )
    _print(args, {"mrl": args.mrl, "artifacts": artifacts}, "\n".join(lines))
    return EXIT_OK


def _cmd_resolve(args: argparse.Namespace) -> int:
    repo = _open(args)
    artifact = _resolve(args, repo)
    if artifact is None:
        print(f"{args.mrl}: no artifact matches", file=sys.stderr)
        return EXIT_NO_MATCH
    summary = _artifact_summary(repo, artifact)
    props = ", ".join(f"{k}={v}" for k, v in artifact.properties.items())
    _print(args, summary, f"{artifact.version or '-'}  {artifact.name or '-'}  [{props}]")
    return EXIT_OK


def _cmd_prepare(args: argparse.Namespace) -> int:
    repo = _open(args)
    artifact = _resolve(args, repo)
    if artifact is None:
        print(f"{args.mrl}: no artifact matches", file=sys.stderr)
        return EXIT_NO_MATCH
    progress = (
        None if args.no_progress or args.json or not sys.stderr.isatty() else _tqdm_progress()
    )
    repo.prepare(artifact, progress=progress)
    directory = str(repo.get_resource_directory(artifact))
    _print(args, {**_artifact_summary(repo, artifact), "resource_directory": directory}, directory)
    return EXIT_OK


def _tqdm_progress() -> Any:
    from tqdm import tqdm

    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update


COMMANDS = {"list": _cmd_list, "info": _cmd_info, "resolve": _cmd_resolve, "prepare": _cmd_prepare}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.offline:
        import os

        os.environ["REPOSITORY_OFFLINE"] = "1"
    from repository.errors import (
        ChecksumMismatchError,
        DownloadError,
        ExtractionError,
        RepositoryError,
    )

    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"repository: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ChecksumMismatchError, DownloadError, ExtractionError) as exc:
        print(f"repository: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except RepositoryError as exc:
        print(f"repository: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
