"""Write one local file atomically: into a private temporary file beside it, then rename.

A reader sees the old file or the new one, never a part of it; a crash leaves at most a
``.<name>.<random>.part`` file, which nobody trusts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from repository.hashing import CHUNK_SIZE, Readable
from repository.install import WORK_SUFFIX

__all__ = ["copy_stream", "write_atomically"]


def copy_stream(source: Readable, out: BinaryIO) -> None:
    """Copy ``source`` to its end into ``out``, 1 MiB at a time."""
    while chunk := source.read(CHUNK_SIZE):
        out.write(chunk)


def write_atomically(target: Path, content: Readable | bytes) -> None:
    """Write ``content`` (bytes, or a stream read to its end) to ``target`` atomically.

    :raises OSError: when the file cannot be written; the temporary file is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=WORK_SUFFIX, dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as file:
            if isinstance(content, bytes):
                file.write(content)
            else:
                copy_stream(content, file)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
