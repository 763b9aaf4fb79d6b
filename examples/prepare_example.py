"""Resolve and prepare artifacts from the example repository shipped in ``examples/mlrepo``.

Runs with no network::

    python examples/prepare_example.py [CACHE_DIR]

The cache goes to CACHE_DIR, else ``$REPOSITORY_CACHE_DIR``, else the user cache folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from repository import MRL, Repository

HERE = Path(__file__).parent


def main() -> None:
    cache_dir = sys.argv[1] if len(sys.argv) > 1 else None
    repo = Repository.new_instance("examples", HERE / "mlrepo", cache_dir=cache_dir)
    print(f"{repo!r} serves:")
    for mrl in repo.get_resources():
        print(f"  {mrl}")

    model = MRL.model("cv/image_classification", "ai.djl.example", "tiny_mlp")
    artifact = repo.resolve(model, "[0.0.1,1.0)", {"layers": "4"})
    assert artifact is not None, "the example repository should hold tiny_mlp with 4 layers"
    repo.prepare(artifact)
    model_dir = repo.get_resource_directory(artifact)
    print(f"\n{model} {artifact.version} {artifact.properties} -> {model_dir}")
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            print(f"  {path.relative_to(model_dir)} ({path.stat().st_size} bytes)")

    dataset = MRL.dataset("tabular", "ai.djl.example", "iris")
    data = repo.resolve(dataset)
    assert data is not None
    repo.prepare(data)
    with repo.open_stream(data.files["train"]) as stream:
        header = stream.readline().decode().strip()
    print(f"\n{dataset} {data.version} -> {repo.get_resource_directory(data)}")
    print(f"  iris_train.csv starts with: {header}")


if __name__ == "__main__":
    main()
