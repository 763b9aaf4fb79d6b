"""Progress reporting: a callback for programs, a tqdm bar on a terminal, nothing otherwise."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "ProgressCallback", "ProgressOption", "known_total", "progress_for"]

ProgressCallback = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total)``; the total is None while it is unknown."""

ProgressOption = ProgressCallback | bool | None
"""``None``: a bar when stderr is a terminal; ``False``: nothing; ``True``: always a bar;
a callable: that callback."""

NO_PROGRESS_ENV = "REPOSITORY_NO_PROGRESS"


def known_total(sizes: list[int | None]) -> int | None:
    """The sum of ``sizes`` when every one is known (positive), else None.

    >>> known_total([3, 4]), known_total([3, None]), known_total([])
    (7, None, 0)
    """
    if any(size is None or size <= 0 for size in sizes):
        return None
    return sum(size for size in sizes if size is not None)


class Progress:
    """Thread-safe byte counter for one prepare, feeding a callback.

    Items report bytes as they are read (from any worker thread). The total is the sum of the
    items' declared sizes; items without a size add their Content-Length once a server tells it.
    """

    def __init__(self, callback: ProgressCallback, sizes: list[int | None]) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._done = 0
        self._unknown = sum(1 for size in sizes if not size or size < 0)
        self._total = sum(size for size in sizes if size and size > 0)

    @property
    def total(self) -> int | None:
        """The total bytes, once every item's size is known."""
        return self._total if self._unknown == 0 else None

    def learn_size(self, size: int) -> None:
        """An item without a declared size turned out to have ``size`` bytes."""
        with self._lock:
            if self._unknown:
                self._unknown -= 1
                self._total += size

    def advance(self, count: int) -> None:
        """``count`` more bytes were read."""
        with self._lock:
            self._done += count
            done, total = self._done, self.total
        self._callback(done, total)

    def close(self) -> None:
        """End the report (closes a bar)."""
        close = getattr(self._callback, "close", None)
        if close is not None:
            close()


class _Bar:
    """A tqdm bar as a progress callback (imported lazily: tqdm is only needed on a terminal)."""

    def __init__(self, description: str, total: int | None) -> None:
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(
            desc=description,
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
        )

    def __call__(self, done: int, total: int | None) -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def progress_for(
    option: ProgressOption, description: str, total: int | None = None
) -> ProgressCallback | None:
    """The callback to use for a ``progress`` argument (see :data:`ProgressOption`)."""
    if option is False:
        return None
    if callable(option):
        return option
    if option is None and (os.environ.get(NO_PROGRESS_ENV) or not sys.stderr.isatty()):
        return None
    return _Bar(description, total)
