"""Splitting a big file at line ends between worker processes (``verify`` and ``summary``).

Both read a journal in independent pieces: a piece starts at a line start and
needs nothing from the piece before it (``verify`` starts from the stored hash
of the line before; ``summary`` only counts). Below :data:`PARALLEL_FROM` bytes,
or with one CPU, one piece is read in the calling process: starting workers
costs more than it saves.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["PARALLEL_FROM", "in_pieces", "split_at_lines"]

#: Files smaller than this (bytes) are read in one piece, in the calling process.
PARALLEL_FROM = 16 << 20
_T = TypeVar("_T")


def _workers() -> int:
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(4, os.cpu_count() or 1))


def split_at_lines(path: Path, end: int, pieces: int) -> list[tuple[int, int]]:
    """Up to ``pieces`` ranges covering ``[0, end)``, each starting at a line start."""
    bounds = [0]
    with path.open("rb") as fh:
        for k in range(1, pieces):
            fh.seek(end * k // pieces)
            fh.readline()
            at = fh.tell()
            if bounds[-1] < at < end:
                bounds.append(at)
    bounds.append(end)
    return list(itertools.pairwise(bounds))


def in_pieces(work: Callable[[str, int, int], _T], path: Path, end: int) -> list[_T]:
    """``work(path, start, stop)`` over pieces of ``[0, end)``, in worker processes when big.

    ``work`` must be a module-level function (it is pickled to the workers).
    Results come in file order.
    """
    # Workers are forked (no start-up, no re-import), and only from a process
    # with no other thread: forking a threaded process can deadlock the child.
    fork = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
    workers = _workers() if end >= PARALLEL_FROM and fork else 1
    ranges = split_at_lines(path, end, workers) if workers > 1 else [(0, end)]
    if len(ranges) == 1:
        return [work(str(path), 0, end)]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
        futures = [pool.submit(work, str(path), a, b) for a, b in ranges]
        return [f.result() for f in futures]
