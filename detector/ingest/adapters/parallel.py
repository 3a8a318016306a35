"""Reading a large file of a site format on every core (issue 14's throughput).

A source adapter's records are read by Python (``json``, a regular expression, the XML parser), which
holds the interpreter lock: threads would not share the work. ``run_parts`` runs one function over
contiguous parts of a file instead: the first part in this process, each other part in a child forked
for it, which inherits the file's bytes without a copy and sends back plain Python values (lists,
counters, tuples); the caller joins the answers in part order, so the result is the one a single pass
gives (tests/adapters/test_parallel.py holds the two equal).

A child runs only the adapter's parsing of its part: it opens no DuckDB connection and takes no lock
another thread of this process may hold. Children are forked where forking is the platform's usual way
(Linux); elsewhere, with one core, or when a part would hold fewer than ``MIN_PART`` records (a fork and
its reply cost about as much as reading a few thousand records), the parts are read one after another
in this process. A child that dies (killed, out of memory) has its part read again here, and when no
child can be forked at all the parts are read here one after another.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["MIN_PART", "cores", "part_count", "run_parts"]

P = TypeVar("P")
R = TypeVar("R")

MIN_PART = 5000
"""Fewest records a part holds: a smaller file is read in one pass, in this process."""
MAX_CORES = 8
_JOB: tuple[Callable[[Any], Any], Sequence[Any]] | None = None
"""The function and parts of the call under way, read by the forked children (set before they fork)."""


def cores() -> int:
    """How many processes may read a file at once: the cores this process may run on (Linux), else 1."""
    if sys.platform != "linux":
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_CORES))


def part_count(records: int, min_part: int | None = None) -> int:
    """How many parts ``records`` records are read in: one per core, each of at least ``min_part``."""
    return max(1, min(cores(), records // (min_part or MIN_PART)))


def run_parts(work: Callable[[P], R], parts: Sequence[P]) -> list[R]:
    """``[work(part) for part in parts]``, the parts after the first read in forked children."""
    global _JOB
    if len(parts) <= 1 or cores() == 1:
        return [work(part) for part in parts]
    _JOB = (work, parts)
    gc.freeze()  # the collector would otherwise write to every object's page: copies on write
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(parts) - 1, mp_context=context) as pool:
            try:
                futures = [pool.submit(_run_part, index) for index in range(1, len(parts))]
            except OSError:  # no child could be forked (memory, a process limit): one pass, here
                return [work(part) for part in parts]
            first = work(parts[0])
            rest = zip(futures, parts[1:], strict=True)
            return [first, *(_answer(future, work, part) for future, part in rest)]
    finally:
        _JOB = None
        gc.unfreeze()


def _answer(future: Future[R], work: Callable[[P], R], part: P) -> R:
    try:
        return future.result()
    except BrokenProcessPool:
        return work(part)


def _run_part(index: int) -> Any:
    """In a forked child: the part ``index`` of the call under way."""
    assert _JOB is not None, "run_parts sets the job before its children fork"
    work, parts = _JOB
    return work(parts[index])
