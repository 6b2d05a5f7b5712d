"""How much of the CPU this process may use, and running independent pieces of work on it.

XLA:CPU runs a small program on about one core and numpy's table building
releases the GIL, so independent pieces of work (groups of images, row slices
of a table) run faster on threads of one process than one after another.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_threads(fn: Callable[[T], R], items: Sequence[T], name: str = "irec") -> list[R]:
    """``[fn(item) for item in items]`` with one thread per item, the first on the calling thread;
    the first exception raised by any item is raised here after all have finished."""
    if len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(len(items) - 1, thread_name_prefix=name) as pool:
        rest = [pool.submit(fn, item) for item in items[1:]]
        first = fn(items[0])
        return [first] + [f.result() for f in rest]
