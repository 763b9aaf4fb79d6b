"""Write ``schemas/metadata.schema.json`` from the pydantic models.

python schemas/generate.py          # rewrite the file
python schemas/generate.py --check  # exit 1 when the file differs from the models
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from repository.metadata import metadata_json_schema

SCHEMA_FILE = Path(__file__).with_name("metadata.schema.json")


def render() -> str:
    """The schema file's expected text."""
    return json.dumps(metadata_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SCHEMA_FILE.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA_FILE} is out of date: run python schemas/generate.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
