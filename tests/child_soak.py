"""A soak-test worker: mixed prepare, verify and remove on one cache until a deadline.

python tests/child_soak.py URL CACHE_DIR SEED DEADLINE_EPOCH
"""

from __future__ import annotations

import random
import sys
import time

from repository import MRL, Repository, RepositoryError

MRL_ = MRL.model("cv/image_classification", "ai.djl.test", "soak")


def main() -> None:
    url, cache_dir, seed, deadline = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    rng = random.Random(seed)
    repo = Repository.new_instance("soak", url, cache_dir=cache_dir)
    metadata = repo.locate(MRL_)
    assert metadata is not None
    while time.time() < deadline:
        artifact = rng.choice(metadata.artifacts)
        operation = rng.choice(["prepare", "prepare", "verify", "remove"])
        try:
            if operation == "prepare":
                repo.prepare(artifact, progress=False)
            elif operation == "verify":
                report = repo.verify(artifact)
                # A verify racing a removal sees files vanish; a changed file is damage.
                if report.changed:
                    print(f"DAMAGED {report}", flush=True)
                    sys.exit(1)
            else:
                repo.remove(artifact)
        except RepositoryError as exc:
            print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
            sys.exit(2)


if __name__ == "__main__":
    main()
