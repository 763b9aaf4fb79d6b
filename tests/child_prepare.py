"""A child process for the concurrency and crash tests: prepare one artifact, perhaps dying.

    python tests/child_prepare.py URL CACHE_DIR [--kill-at POINT[:N]] [--start-file F]
        [--lock-timeout S] [--mrl MRL] [--filter k=v]

``--kill-at`` makes the process SIGKILL itself at a point of prepare, the way a killed job
dies: ``download:N`` after N bytes arrived from the network, ``extract:N`` after the extractor
consumed N bytes, ``manifest`` before the manifest is written, ``rename`` just before the work
directory is renamed into place, ``cleanup`` after the rename, before partials are removed.
The hooks wrap the library's own functions from outside; the library has no test switches.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import repository.base
import repository.install
import repository.transfer
from repository import MRL, Repository


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_hook(point: str, count: int) -> None:
    if point == "download":
        original_next = repository.transfer.ResumingStream._next_chunk
        seen = [0]

        def next_chunk(self: Any) -> bytes | None:
            chunk = original_next(self)
            seen[0] += len(chunk or b"")
            if seen[0] >= count:
                self._sink.flush()
                die()
            return chunk

        repository.transfer.ResumingStream._next_chunk = next_chunk  # type: ignore[method-assign]
    elif point == "extract":
        original_extract = repository.install.extract_tar

        def extract_tar(stream: Any, *args: Any, **kwargs: Any) -> Any:
            consumed = [0]
            read = stream.read

            def counting_read(size: int = -1) -> bytes:
                data = read(size)
                consumed[0] += len(data)
                if consumed[0] >= count:
                    die()
                return data

            stream.read = counting_read
            return original_extract(stream, *args, **kwargs)

        repository.install.extract_tar = extract_tar  # type: ignore[assignment]
    elif point in ("manifest", "rename", "cleanup"):
        owner, name = {
            "manifest": (repository.base, "write_manifest"),
            "rename": (repository.base, "publish"),
            "cleanup": (repository.transfer.PartialDownloads, "discard"),
        }[point]

        def dying(*args: Any, **kwargs: Any) -> Any:
            die()

        setattr(owner, name, dying)
    else:
        raise SystemExit(f"unknown kill point {point}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("cache_dir")
    parser.add_argument("--kill-at")
    parser.add_argument("--start-file")
    parser.add_argument("--lock-timeout", type=float)
    parser.add_argument("--mrl", default="model/cv/image_classification/ai.djl.test/resnet")
    parser.add_argument("--filter", action="append", default=[])
    args = parser.parse_args()
    if args.kill_at:
        point, _, count = args.kill_at.partition(":")
        install_kill_hook(point, int(count or 0))
    repo = Repository.new_instance("t", args.url, cache_dir=args.cache_dir)
    if args.lock_timeout is not None:
        repo.lock_timeout = args.lock_timeout
    filters = dict(pair.split("=", 1) for pair in args.filter)
    artifact = repo.resolve(MRL.parse(args.mrl), None, filters or None)
    assert artifact is not None
    if args.start_file:
        Path(f"{args.start_file}.ready.{os.getpid()}").touch()
        while not Path(args.start_file).exists():
            time.sleep(0.005)
    repo.prepare(artifact, progress=False)
    print(repo.get_resource_directory(artifact), flush=True)


if __name__ == "__main__":
    sys.exit(main())
