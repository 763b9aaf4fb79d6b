"""Regenerate ``examples/mlrepo``: a small repository with one model and one data set.

The content is deterministic (fixed archive times and orders), so running this again gives the
same bytes and the same checksums as the committed files::

    python examples/make_example_repo.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

ROOT = Path(__file__).parent / "mlrepo"
MODEL = ROOT / "model/cv/image_classification/ai/djl/example/tiny_mlp"
DATASET = ROOT / "dataset/tabular/ai/djl/example/iris"

SYNSET = "".join(f"class_{index}\n" for index in range(10)).encode()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _params(layers: int) -> bytes:
    # Stand-in weights: deterministic bytes whose size grows with the layer count.
    return hashlib.shake_256(f"tiny_mlp-{layers}".encode()).digest(4096 * layers)


def _item(folder: Path, relative: str, data: bytes, **extra: str) -> dict[str, object]:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {
        "uri": relative,
        "sha1Hash": hashlib.sha1(data).hexdigest(),
        "sha256Hash": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **extra,
    }


def _write(folder: Path, metadata: dict[str, object]) -> None:
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    artifacts = []
    for version, layers in (("0.0.1", 2), ("0.0.1", 4), ("0.0.2", 2), ("0.0.2", 4)):
        archive = _tar_gz(
            {"tiny_mlp/tiny_mlp-0000.params": _params(layers), "tiny_mlp/synset.txt": SYNSET}
        )
        artifacts.append(
            {
                "version": version,
                "snapshot": False,
                "name": f"tiny_mlp_{layers}",
                "properties": {"layers": str(layers), "dataset": "example"},
                "arguments": {"width": 28, "height": 28, "flatten": True},
                "files": {
                    "model": _item(MODEL, f"{version}/tiny_mlp_{layers}.tar.gz", archive),
                    "synset": _item(MODEL, "synset.txt", SYNSET),
                },
            }
        )
    _write(
        MODEL,
        {
            "metadataVersion": "0.2",
            "resourceType": "model",
            "application": "cv/image_classification",
            "groupId": "ai.djl.example",
            "artifactId": "tiny_mlp",
            "name": "Tiny MLP",
            "description": "A tiny stand-in image classifier, in two sizes and two versions",
            "licenses": {
                "license": {
                    "name": "The Apache License, Version 2.0",
                    "url": "https://www.apache.org/licenses/LICENSE-2.0",
                }
            },
            "artifacts": artifacts,
        },
    )
    rows = "".join(f"{5 + i % 3}.{i % 10},{3 + i % 2}.{i % 7},{i % 3}\n" for i in range(150))
    csv = ("sepal_length,sepal_width,label\n" + rows).encode()
    _write(
        DATASET,
        {
            "metadataVersion": "0.2",
            "resourceType": "dataset",
            "application": "tabular",
            "groupId": "ai.djl.example",
            "artifactId": "iris",
            "name": "Iris (synthetic)",
            "artifacts": [
                {
                    "version": "1.0",
                    "snapshot": False,
                    "files": {
                        "train": _item(
                            DATASET, "1.0/iris_train.csv.gz", gzip.compress(csv, mtime=0)
                        ),
                        "labels": _item(
                            DATASET, "1.0/labels.txt", b"setosa\nversicolor\nvirginica\n"
                        ),
                    },
                }
            ],
        },
    )


if __name__ == "__main__":
    main()
