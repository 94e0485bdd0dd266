"""The process's kernel threads: ranges of independent numpy work run on the calling thread
and a shared pool (numpy releases the GIL in its ufuncs, copies, reductions and matrix
products). Used by the reference kernels (tflquant.reference.float_kernels, whose
set_threads / get_threads / split_samples are these) and by the weight rounding of a
quantization without data (quantize-weights, weight_rounding's scale search), which must
not import the reference kernels (start-up).

One pool per process, created on first use under a lock; concurrent callers share it, and
each caller also drains its own ranges, so a caller never waits on a pool that is busy with
another caller's work (it takes every range itself). A range run on a pool thread does not
split again. Which thread runs a range never changes the result: callers give each range
its own outputs (and work buffers) and combine per-range partials in range order.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from typing import Any

# at most 2: measured on the 2-core machine (more threads than cores only add switching)
_THREADS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
_POOL: list[Any] = []  # [ThreadPoolExecutor], created on first use (one per process, under _POOL_LOCK)
_POOL_LOCK = threading.Lock()
_LOCAL = threading.local()  # .serial: ranges run on this thread do not split again
WORKER_PREFIX = "tflquant-kernel"


def set_threads(n: int) -> int:
    """Use at most n threads (1: never split); returns the old value. Process-wide (the
    quantize path only reads it): set it before quantizing, not during."""
    global _THREADS
    old, _THREADS = _THREADS, max(1, int(n))
    return old


def get_threads() -> int:
    return _THREADS


def nested() -> bool:
    """Whether the current thread is running a range (a pool thread, or a caller in a
    serial_parts split): work there is not split again."""
    return bool(getattr(_LOCAL, "serial", False)) or threading.current_thread().name.startswith(WORKER_PREFIX)


def run_ranges(n: int, fn: Callable[[int, int], None], threads: int | None = None, serial_parts: bool = False, ranges: int = 0) -> None:
    """fn(i0, i1) over ranges covering [0, n): on `threads` threads (default get_threads(),
    at most n; 1, or a nested call: fn(0, n) here). The calling thread and the pool's
    workers take the ranges (`ranges` of them, default one per thread) in order from a
    shared counter, so a thread slowed by other processes takes fewer. With serial_parts,
    a split inside fn runs on its thread (whole-plan parallelism). The first exception a
    range raises is re-raised here (the ranges not yet taken are skipped)."""
    threads = min(_THREADS if threads is None else threads, n)
    if threads <= 1 or nested():
        fn(0, n)
        return
    count = min(n, max(ranges, threads))
    bounds = [n * i // count for i in range(count + 1)]
    lock = threading.Lock()
    state = {"next": 0}
    errors: list[BaseException] = []

    def drain() -> None:
        if serial_parts:
            _LOCAL.serial = True
        try:
            while True:
                with lock:
                    i = state["next"]
                    if i >= count or errors:
                        return
                    state["next"] = i + 1
                try:
                    fn(bounds[i], bounds[i + 1])
                except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                    with lock:
                        errors.append(e)
                    return
        finally:
            if serial_parts:
                _LOCAL.serial = False

    # each worker runs in a copy of the caller's context (numpy's errstate is a context variable)
    futures = [_pool().submit(contextvars.copy_context().run, drain) for _ in range(threads - 1)]
    drain()
    for f in futures:
        if not f.cancel():  # (one not started yet, behind another caller's work: withdrawn, the ranges are done)
            f.result()
    if errors:
        raise errors[0]


def _pool() -> Any:
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        with _POOL_LOCK:  # concurrent callers share one pool
            if not _POOL:
                _POOL.append(ThreadPoolExecutor(max_workers=max(1, _THREADS - 1), thread_name_prefix=WORKER_PREFIX))
    return _POOL[0]


def over_slices(count: int, fn: Callable[[int, int], None], parallel: bool = True) -> None:
    """fn(i0, i1) over the slice indices [0, count): with `parallel` (the caller has found the
    work worth it) ranges of slices on the kernel threads, a few per thread (a thread slowed
    by other processes takes fewer); else fn(0, count) here."""
    if not parallel or count < 2:
        fn(0, count)
        return
    run_ranges(count, fn, ranges=min(count, 4 * _THREADS))
