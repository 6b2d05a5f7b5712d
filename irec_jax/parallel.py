"""How much of the CPU this process may use, and running independent pieces of work on it.

XLA:CPU runs a small program on about one core and numpy's table building
releases the GIL, so independent pieces of work (groups of images, row slices
of a table) run faster on threads of one process than one after another.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_on(pool: Executor | None, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, the items after the first on ``pool`` (none: all here)
    while the calling thread does the first."""
    if pool is None or len(items) < 2:
        return [fn(item) for item in items]
    rest = [pool.submit(fn, item) for item in items[1:]]
    first = fn(items[0])
    return [first] + [f.result() for f in rest]


def map_threads(fn: Callable[[T], R], items: Sequence[T], name: str = "irec") -> list[R]:
    """``map_on`` a new pool of one thread per item after the first; an exception raised by any
    item is raised here once all have finished."""
    if len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(len(items) - 1, thread_name_prefix=name) as pool:
        return map_on(pool, fn, items)
