"""The ``repository`` command line. Thin: it parses arguments and calls the public API.

Heavy modules (httpx, pydantic, tqdm) are imported inside the commands, so ``--help`` is quick.
Exit codes: 0 success, 1 nothing matched, 2 usage error, 3 integrity or download failure.
With ``--json`` the result is JSON on stdout; messages and logs always go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repository.base import Repository
    from repository.cache_admin import CacheEntry
    from repository.metadata import Artifact
    from repository.mrl import MRL

__all__ = ["main"]

EXIT_OK, EXIT_NO_MATCH, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3
EXIT_CODES = (
    "exit codes: 0 success, 1 nothing matched, 2 usage error, 3 integrity or download failure"
)
MRL_HELP = "type/application/group/artifact, e.g. model/cv/image_classification/ai.djl.zoo/mlp"


class UsageError(Exception):
    """A command line that parses but cannot be acted on (a bad MRL, filter or range)."""


# -- the parser ---------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The options every command takes. Given before or after the command: the top parser has
    the defaults, and the commands' copies leave what the top parser found alone."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--cache-dir",
        default=default(None),
        help="cache folder (default: $REPOSITORY_CACHE_DIR, else the user cache folder)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=default(False),
        help="never use the network (sets REPOSITORY_OFFLINE=1)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the result as JSON on stdout (messages stay on stderr)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="log more (to stderr)"
    )


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="repository path or URL")
    parser.add_argument("mrl", help=MRL_HELP)
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


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser raising ValueError (argparse then exits with usage 2)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be 1 or more, got {value}")
    return value


def _duration(text: str) -> float:
    from repository.cache_admin import parse_duration

    return parse_duration(text)


def _size(text: str) -> int:
    from repository.cache_admin import parse_size

    return parse_size(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repository",
        description="Resolve, verify and cache ML models and data sets from repositories; "
        "publish them; manage the cache.",
        epilog=EXIT_CODES,
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", epilog=EXIT_CODES
        )
        _common(sub)
        return sub

    listing = command("list", "list a repository's resources")
    listing.add_argument("url", help="repository path or URL")

    info = command("info", "show a resource's artifacts: versions, properties, file sizes")
    info.add_argument("url", help="repository path or URL")
    info.add_argument("mrl", help=MRL_HELP)

    _selection(command("resolve", "print the artifact a version range and filters choose"))

    prepare = command("prepare", "download, verify and extract an artifact into the cache")
    _selection(prepare)
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")

    publish = command("publish", "publish files as a new artifact version into a repository")
    publish.add_argument("repo", metavar="REPO", help="repository folder, or s3://bucket/prefix")
    publish.add_argument("--type", required=True, choices=["model", "dataset"])
    publish.add_argument("--application", required=True, help="e.g. cv/image_classification")
    publish.add_argument("--group", required=True, help="group id, e.g. ai.djl.example")
    publish.add_argument("--artifact", required=True, help="artifact id, e.g. resnet")
    publish.add_argument("--version", required=True, help="the new version, e.g. 1.0")
    publish.add_argument("--name", help="the artifact's name (default: the artifact id)")
    publish.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a property filters can match (repeatable)",
    )
    publish.add_argument(
        "files", nargs="+", metavar="FILE", help="files (one item each) or folders (a .tar.gz)"
    )

    cache = commands.add_parser(
        "cache",
        help="inspect and clean the cache",
        description="Inspect and clean the cache.",
        epilog=EXIT_CODES,
    )
    _common(cache)
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")

    ls = command("ls", "list prepared artifacts: size, last use, completeness", cache_commands)
    ls.add_argument("mrl", nargs="?", help="only this resource (" + MRL_HELP + ")")
    ls.add_argument("--version", dest="version_range", help="only versions in this range")
    ls.add_argument("--all", action="store_true", help="also work folders and partial downloads")

    command("du", "show the cache's disk use, in total and per repository", cache_commands)

    verify = command("verify", "re-hash prepared artifacts against their manifests", cache_commands)
    verify.add_argument("mrl", nargs="?", help="only this resource")
    verify.add_argument("--version", dest="version_range", help="only versions in this range")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="prepare damaged artifacts again from their repositories",
    )

    rm = command("rm", "remove prepared artifacts (atomically)", cache_commands)
    rm.add_argument(
        "targets", nargs="+", metavar="MRL_OR_PATH", help="a resource's MRL, or an entry's path"
    )
    rm.add_argument("--version", dest="version_range", help="only versions in this range")
    rm.add_argument("--dry-run", action="store_true", help="print what would go; remove nothing")

    prune = command("prune", "remove what is old, superseded or over a size budget", cache_commands)
    prune.add_argument(
        "--older-than",
        type=_typed(_duration),
        metavar="DURATION",
        help="artifacts unused for longer than this (30d, 12h, 90m)",
    )
    prune.add_argument(
        "--max-size",
        type=_typed(_size),
        metavar="SIZE",
        help="then the least recently used until the cache fits (10G, 500M)",
    )
    prune.add_argument(
        "--keep-latest",
        type=_typed(_positive),
        metavar="N",
        help="artifacts outside the N highest versions of their resource",
    )
    prune.add_argument("--dry-run", action="store_true", help="print what would go; remove nothing")
    return parser


# -- helpers ------------------------------------------------------------------------------------


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    """The result: JSON with ``--json``, else ``text`` (nothing when empty)."""
    if args.json:
        print(json.dumps(data, indent=2))
    elif text:
        print(text)


def _say(message: str) -> None:
    """A message for people, on stderr."""
    print(message, file=sys.stderr)


def _open(args: argparse.Namespace) -> Repository:
    from repository.base import Repository

    return Repository.new_instance(args.url, args.url, cache_dir=args.cache_dir)


def _mrl(text: str) -> MRL:
    from repository.errors import InvalidMRLError
    from repository.mrl import MRL

    try:
        return MRL.parse(text)
    except InvalidMRLError as exc:
        raise UsageError(str(exc)) from None


def _pairs(pairs: list[str], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got {pair!r}")
        result[key] = value
    return result


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
    return repo.resolve(_mrl(args.mrl), args.version_range, _pairs(args.filter, "--filter"))


# -- repository commands ------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    repo = _open(args)
    resources = [str(mrl) for mrl in repo.get_resources()]
    _print(args, resources, "\n".join(resources))
    return EXIT_OK if resources else EXIT_NO_MATCH


def _cmd_info(args: argparse.Namespace) -> int:
    repo = _open(args)
    metadata = repo.locate(_mrl(args.mrl))
    if metadata is None:
        _say(f"{args.mrl}: not found in {args.url}")
        return EXIT_NO_MATCH
    artifacts = [_artifact_summary(repo, artifact) for artifact in metadata.artifacts]
    lines = [f"{args.mrl} ({metadata.name or metadata.artifact_id}): {len(artifacts)} artifacts"]
    for summary in artifacts:
        size = sum(f["size"] or 0 for f in summary["files"].values())
        props = ", ".join(f"{k}={v}" for k, v in summary["properties"].items())
        lines.append(
            f"  {summary['version'] or '-'}  {summary['name'] or '-'}  [{props}]  {size} bytes"
        )
        lines.extend(
            f"    {key}: {f['uri']} ({f['size'] if f['size'] is not None else '?'} bytes)"
            for key, f in summary["files"].items()
        )
    _print(args, {"mrl": args.mrl, "artifacts": artifacts}, "\n".join(lines))
    return EXIT_OK


def _chosen(args: argparse.Namespace) -> tuple[Repository, Artifact] | None:
    """The repository and the artifact the arguments pick, or None (said) when none matches."""
    repo = _open(args)
    artifact = _resolve(args, repo)
    if artifact is None:
        _say(f"{args.mrl}: no artifact matches")
        return None
    return repo, artifact


def _cmd_resolve(args: argparse.Namespace) -> int:
    chosen = _chosen(args)
    if chosen is None:
        return EXIT_NO_MATCH
    repo, artifact = chosen
    summary = _artifact_summary(repo, artifact)
    props = ", ".join(f"{k}={v}" for k, v in artifact.properties.items())
    _print(args, summary, f"{artifact.version or '-'}  {artifact.name or '-'}  [{props}]")
    return EXIT_OK


def _cmd_prepare(args: argparse.Namespace) -> int:
    chosen = _chosen(args)
    if chosen is None:
        return EXIT_NO_MATCH
    repo, artifact = chosen
    repo.prepare(artifact, progress=False if args.no_progress else None)
    directory = str(repo.get_resource_directory(artifact))
    _print(args, _artifact_summary(repo, artifact), directory)
    return EXIT_OK


def _cmd_publish(args: argparse.Namespace) -> int:
    from repository.errors import InvalidMRLError
    from repository.mrl import MRL
    from repository.publish import publish_artifact

    try:
        mrl = MRL(args.type, args.application, args.group, args.artifact)
    except InvalidMRLError as exc:
        raise UsageError(str(exc)) from None
    result = publish_artifact(
        args.repo,
        mrl,
        args.version,
        args.files,
        name=args.name,
        properties=_pairs(args.property, "--property"),
    )
    artifact = result.artifact
    if result.changed:
        size = sum(item["size"] for item in artifact["files"].values())
        _say(
            f"Published {mrl} {args.version} ({artifact['name']}): "
            f"{len(artifact['files'])} items, {size} bytes"
        )
    else:
        _say(f"{mrl} {args.version} ({artifact['name']}) is published already; nothing changed")
    data = {
        "mrl": str(mrl),
        "metadata": result.metadata_url,
        "changed": result.changed,
        "written": result.written,
        "artifact": artifact,
    }
    _print(args, data, result.metadata_url)
    return EXIT_OK


# -- cache commands -----------------------------------------------------------------------------


def _cache_root(args: argparse.Namespace) -> Path:
    from repository.cache import cache_root
    from repository.cache_admin import ensure_cachedir_tag

    root = cache_root(args.cache_dir)
    if root.is_dir():
        with contextlib.suppress(OSError):  # a read-only cache can still be listed
            ensure_cachedir_tag(root)
    return root


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _table(rows: list[list[str]]) -> str:
    """Rows as aligned columns, the first (a size) right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i == 0 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def _entry_row(entry: CacheEntry, root: Path) -> list[str]:
    """Size, last use, completeness, MRL (or what and where), version, name, repository."""
    from repository.cache_admin import format_size, relative_to

    first = [format_size(entry.size), _when(entry.last_used), "yes" if entry.complete else "no"]
    if entry.complete:
        return [
            *first,
            entry.mrl or "",
            entry.version or "-",
            entry.name or "-",
            entry.repository or "",
        ]
    return [*first, f"{entry.kind}: {relative_to(entry.path, root)}", "", "", ""]


ENTRY_HEADER = ["SIZE", "LAST USED", "COMPLETE", "MRL", "VERSION", "NAME", "REPOSITORY"]


def _matching(args: argparse.Namespace, entries: list[CacheEntry]) -> list[CacheEntry]:
    from repository.cache_admin import select_entries

    mrl = str(_mrl(args.mrl)) if args.mrl else None
    return select_entries(entries, mrl, args.version_range)


def _cmd_cache_ls(args: argparse.Namespace) -> int:
    from repository.cache_admin import format_size, scan_cache

    root = _cache_root(args)
    entries = scan_cache(root)
    if args.mrl or args.version_range:
        shown = _matching(args, entries)
    else:
        kinds = {"artifact", "incomplete"} | ({"work", "download"} if args.all else set())
        shown = [entry for entry in entries if entry.kind in kinds]
    rows = [ENTRY_HEADER, *(_entry_row(entry, root) for entry in shown)] if shown else []
    total = sum(entry.size for entry in shown)
    _say(f"{len(shown)} entries, {format_size(total)} in {root}")
    data = {"root": str(root), "entries": [entry.to_json(root) for entry in shown]}
    _print(args, data, _table(rows))
    return EXIT_NO_MATCH if args.mrl and not shown else EXIT_OK


def _cmd_cache_du(args: argparse.Namespace) -> int:
    from repository.cache_admin import cache_usage, format_size

    root = _cache_root(args)
    usage = cache_usage(root)
    rows = [
        [
            format_size(repo.size),
            repo.repository or "?",
            f"repos/{repo.key}, {repo.artifacts} artifacts",
        ]
        for repo in usage.repositories
    ]
    rows.extend([format_size(size), name, ""] for name, size in usage.other.items())
    rows.append([format_size(usage.total), "total", str(root)])
    data = {
        "root": str(root),
        "total": usage.total,
        "repositories": [
            {"key": r.key, "repository": r.repository, "size": r.size, "artifacts": r.artifacts}
            for r in usage.repositories
        ],
        "other": usage.other,
    }
    _print(args, data, _table(rows))
    return EXIT_OK


def _repair(entry: CacheEntry, root: Path) -> str | None:
    """Prepare a damaged artifact again from its repository; None when done, else why not."""
    from repository.base import Repository
    from repository.errors import InvalidMRLError, RepositoryError
    from repository.mrl import MRL

    if entry.repository is None or entry.mrl is None:
        return "its manifest does not name its repository"
    try:
        repo = Repository.new_instance(entry.repository, entry.repository, cache_dir=root)
        metadata = repo.locate(MRL.parse(entry.mrl))
    except (InvalidMRLError, RepositoryError) as exc:
        return f"{entry.repository}: {exc}"
    for artifact in metadata.artifacts if metadata is not None else []:
        if repo.get_resource_directory(artifact) == entry.path:
            repo.verify(artifact, repair=True)
            return None
    return f"{entry.repository} no longer serves {entry.mrl} {entry.version}"


def _cmd_cache_verify(args: argparse.Namespace) -> int:
    from repository.cache_admin import scan_cache, verify_entry

    root = _cache_root(args)
    entries = _matching(args, scan_cache(root))
    results = []
    damaged = 0
    lines = []
    for entry in entries:
        report = verify_entry(entry)
        result: dict[str, Any] = {
            **entry.to_json(root),
            "ok": report.ok,
            "checked": report.checked,
            "missing": report.missing,
            "changed": report.changed,
            "extra": report.extra,
        }
        if not report.ok:
            lines.append(f"DAMAGED {entry.mrl} {entry.version or '-'} {entry.name}: {report}")
            if args.repair:
                failure = _repair(entry, root)
                result["repaired"] = failure is None and verify_entry(entry).ok
                lines.append("  repaired" if result["repaired"] else f"  not repaired: {failure}")
            if not result.get("repaired"):
                damaged += 1
        results.append(result)
    _say(f"{len(entries)} artifacts verified, {damaged} damaged")
    _print(args, {"root": str(root), "damaged": damaged, "artifacts": results}, "\n".join(lines))
    if damaged:
        return EXIT_FAILURE
    return EXIT_NO_MATCH if args.mrl and not entries else EXIT_OK


def _remove(args: argparse.Namespace, root: Path, chosen: list[CacheEntry]) -> int:
    """Remove (or with ``--dry-run`` list) entries; prints what went and a summary."""
    from repository.cache_admin import format_size, remove_entry

    done: list[CacheEntry] = []
    for entry in chosen:
        if not args.dry_run:
            try:
                remove_entry(entry, root)
            except OSError as exc:
                _say(f"repository: cannot remove {entry.path}: {exc.strerror or exc}")
                continue
        done.append(entry)
    freed = sum(entry.size for entry in done)
    if args.dry_run:
        _say(f"Would remove {len(done)} entries, freeing {format_size(freed)} (dry run)")
    else:
        _say(f"Removed {len(done)} entries, freed {format_size(freed)}")
    data = {
        "root": str(root),
        "dry_run": args.dry_run,
        "removed": [entry.to_json(root) for entry in done],
        "freed": freed,
    }
    rows = [ENTRY_HEADER, *(_entry_row(entry, root) for entry in done)]
    _print(args, data, _table(rows) if done else "")
    return EXIT_FAILURE if len(done) < len(chosen) else EXIT_OK


def _cmd_cache_rm(args: argparse.Namespace) -> int:
    from repository.cache_admin import scan_cache, select_entries

    root = _cache_root(args)
    entries = scan_cache(root)
    chosen: list[CacheEntry] = []
    for target in args.targets:
        if os.path.lexists(target):
            path = Path(os.path.abspath(target))
            found = [entry for entry in entries if entry.path == path]
        else:
            found = select_entries(entries, str(_mrl(target)), args.version_range)
        if not found:
            _say(f"{target}: nothing in the cache matches")
        chosen.extend(entry for entry in found if entry not in chosen)
    if not chosen:
        return EXIT_NO_MATCH
    return _remove(args, root, chosen)


def _cmd_cache_prune(args: argparse.Namespace) -> int:
    from repository.cache_admin import plan_prune, scan_cache

    root = _cache_root(args)
    chosen = plan_prune(
        scan_cache(root), time.time(), args.older_than, args.max_size, args.keep_latest
    )
    return _remove(args, root, chosen)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": _cmd_list,
    "info": _cmd_info,
    "resolve": _cmd_resolve,
    "prepare": _cmd_prepare,
    "publish": _cmd_publish,
    "cache ls": _cmd_cache_ls,
    "cache du": _cmd_cache_du,
    "cache verify": _cmd_cache_verify,
    "cache rm": _cmd_cache_rm,
    "cache prune": _cmd_cache_prune,
}


@contextlib.contextmanager
def _offline(enabled: bool) -> Iterator[None]:
    """Set ``REPOSITORY_OFFLINE=1`` for the command (and put the old value back)."""
    if not enabled:
        yield
        return
    saved = os.environ.get("REPOSITORY_OFFLINE")
    os.environ["REPOSITORY_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("REPOSITORY_OFFLINE", None)
        else:
            os.environ["REPOSITORY_OFFLINE"] = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    name = f"cache {args.cache_command}" if args.command == "cache" else args.command
    from repository.errors import RepositoryError

    try:
        with _offline(args.offline):
            return COMMANDS[name](args)
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UsageError as exc:
        _say(f"repository {name}: error: {exc}")
        return EXIT_USAGE
    except RepositoryError as exc:
        return _failure(name, exc)


def _failure(name: str, exc: Exception) -> int:
    """Report an error of the library; its exit code: 2 for bad input, else 3."""
    from repository.errors import (
        ArtifactExistsError,
        InvalidMRLError,
        InvalidVersionError,
        UnsupportedSchemeError,
    )

    if isinstance(exc, ArtifactExistsError):
        _say(f"repository {name}: refused: {exc}")
        return EXIT_FAILURE
    # The assets errors (publish's) are only looked at when their module is loaded already.
    assets = sys.modules.get("repository.assets.errors")
    bad_input: tuple[type[Exception], ...] = (
        InvalidMRLError,
        InvalidVersionError,
        UnsupportedSchemeError,
    )
    if assets is not None:
        bad_input += (assets.InvalidAssetError,)
    if isinstance(exc, bad_input):
        _say(f"repository {name}: error: {exc}")
        return EXIT_USAGE
    _say(f"repository {name}: {type(exc).__name__}: {exc}")
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
