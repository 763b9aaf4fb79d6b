"""Who owns a piece of work in progress, and locks that only save duplicate work.

Correctness never depends on these locks: every attempt works in its own temporary place and
publishes with an atomic rename. A lock only makes the other processes wait for the first one
instead of doing the same download. Locks are ``flock`` locks (through ``filelock``), which the
kernel releases when their holder dies, so a killed process never blocks the others; they have a
timeout after which a waiter goes on without the lock, and after waiting a process checks again
whether the work is done. Lock files live in ``<cache root>/.locks/``.

Temporary names carry an owner tag (host and pid), so that later runs can tell the leftovers of
dead processes from work in progress and clean them up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import filelock

__all__ = ["LOCKS_FOLDER", "is_abandoned", "owner_tag", "work_lock"]

logger = logging.getLogger(__name__)

LOCKS_FOLDER = ".locks"
# Work of another machine (on a shared cache) is taken as abandoned once untouched this long.
FOREIGN_STALE_AFTER = 3600.0
_HOST = socket.gethostname().replace(".", "_").replace("+", "_") or "localhost"


def owner_tag() -> str:
    """``<host>+<pid>`` of this process, safe inside a file name (no dots)."""
    return f"{_HOST}+{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(tag: str, path: Path) -> bool:
    """True when the owner ``tag`` of ``path`` is a dead process (or, on another host, when the
    path has not been touched for an hour)."""
    host, _, pid = tag.rpartition("+")
    if not pid.isdigit():
        return False
    if host == _HOST:
        return not _pid_alive(int(pid))
    try:
        return time.time() - path.stat().st_mtime > FOREIGN_STALE_AFTER
    except OSError:
        return False


@contextlib.contextmanager
def work_lock(cache_root: Path, name: str, *, timeout: float) -> Iterator[bool]:
    """Hold the lock for ``name`` while the block runs; yields False when it went on without it.

    :param timeout: seconds to wait for another holder; after that, the work is done anyway
        (correct, only duplicated). 0 tries once.
    :raises OSError: when the lock file cannot be created (e.g. a read-only cache).
    """
    folder = cache_root / LOCKS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(name.encode("utf-8")).hexdigest()[:32] + ".lock")
    lock = filelock.FileLock(path, mode=0o664, thread_local=False, is_singleton=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock.acquire(timeout=min(10.0, max(0.0, deadline - time.monotonic())))
            break
        except filelock.Timeout:
            if time.monotonic() >= deadline:
                logger.warning(
                    "Lock for %s still held after %.0f s; going on without it", name, timeout
                )
                yield False
                return
            logger.info("Still waiting for the lock of %s", name)
    try:
        yield True
    finally:
        lock.release()
