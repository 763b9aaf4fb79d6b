"""Peak memory of one cold ``prepare``, in a process that does nothing else (case f of run.py).

    python benchmarks/peak_rss.py LOCATION CACHE_DIR ARTIFACT_ID

resolves ``model/cv/image_classification/ai.djl.bench/ARTIFACT_ID`` in the repository at
LOCATION, prepares it into CACHE_DIR and prints, as JSON, the process's peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``: interpreter and imports included, nothing subtracted)
and the same figure just before ``prepare`` started.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from repository import MRL, Repository

APPLICATION = "cv/image_classification"
GROUP = "ai.djl.bench"


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    location, cache_dir, artifact_id = argv
    repo = Repository.new_instance("bench", location, cache_dir=cache_dir)
    mrl = MRL.model(APPLICATION, GROUP, artifact_id)
    artifact = repo.resolve(mrl)
    if artifact is None:
        sys.exit(f"{mrl} not found in {location}")
    before = peak_rss_mib()
    repo.prepare(artifact)
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), "before_prepare_mib": before}))


if __name__ == "__main__":
    main(sys.argv[1:])
