"""Peak memory of one cold ``prepare``, in a process that does nothing else (case f of run.py).

    python benchmarks/peak_rss.py LOCATION CACHE_DIR ARTIFACT_ID [KEY=VALUE ...]

resolves ``model/cv/image_classification/ai.djl.bench/ARTIFACT_ID`` (with the properties given)
in the repository at LOCATION, prepares it into CACHE_DIR and prints, as JSON, the process's
peak resident set size (interpreter and imports included, nothing subtracted) and the same
figure just before ``prepare`` started.

The peak is Linux's ``VmHWM`` of this process's address space. ``getrusage``'s ``ru_maxrss``
would not do: Linux carries it over ``execve``, so a child started from a big parent reports
at least the parent's size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from repository import MRL, Repository

APPLICATION = "cv/image_classification"
GROUP = "ai.djl.bench"


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (``VmHWM``, which is in KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError("/proc/self/status has no VmHWM line")


def main(argv: list[str]) -> None:
    location, cache_dir, artifact_id, *properties = argv
    repo = Repository.new_instance("bench", location, cache_dir=cache_dir)
    mrl = MRL.model(APPLICATION, GROUP, artifact_id)
    artifact = repo.resolve(mrl, None, dict(pair.split("=", 1) for pair in properties))
    if artifact is None:
        sys.exit(f"{mrl} not found in {location}")
    before = peak_rss_mib()
    repo.prepare(artifact)
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), "before_prepare_mib": before}))


if __name__ == "__main__":
    main(sys.argv[1:])
