"""Threads for numpy-heavy work whose answer does not depend on how it is split.

numpy releases the GIL inside its array loops, so independent fits (the layers of a network,
the row groups of a layer) overlap on threads without the start-up, pickling and import costs of
worker processes. Callers split work only where each piece's result is the same however the
pieces are grouped, so the output never depends on the number of threads.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

MAX_THREADS = 4  # a cap, not a measured optimum: only two cores were at hand to measure on


def threads() -> int:
    """The cores this process may use, at most MAX_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


def thread_map(fn, items) -> list:
    """[fn(x) for x in items], on up to threads() threads, in order."""
    items = list(items)
    n = min(threads(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(n, thread_name_prefix="vqexport-fit") as pool:
        return list(pool.map(fn, items))
