"""Limit the BLAS thread pool numpy uses, for the duration of a `with` block.

Calibration runs whole batches through numpy, so each matrix product is already large and
Python dispatch is amortized; OpenBLAS threads then gain little and, on a busy machine, lose
a lot (its threads spin waiting for busy cores: measured on 2 shared cores, a 512x32x32
product took 3.3 ms with 2 threads and 0.07 ms with 1, and MobileNetV2 calibration 5.3 s
against 1.4 s). `blas_threads(1)` finds the OpenBLAS library numpy loaded and sets its
thread count, restoring it afterwards; where there is none (MKL, Accelerate, no
OpenBLAS symbols) it does nothing.

The thread count is a process-wide setting, so concurrent calls share it under one lock:
the first call to enter sets it and the last to leave restores what it was before; a call
that asks for a different count waits until no other call is inside (it never changes the
count under another call's feet, and never leaves the process with another call's count).
A call nested in the same thread runs under the outer call's count. While any call is
inside, the whole process (other numpy work of an embedding application included) uses
that count; `calibration_threads=None` leaves BLAS alone.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")

_cache: list[tuple[object, object]] | None = None  # the library's setters/getters, found once


class _Setting:
    """Who is inside `blas_threads` (process-wide, guarded by `cond`)."""

    cond = threading.Condition()
    count: int | None = None  # the count set while `users` > 0
    users = 0
    saved: list[int] = []  # what each library had before the first user set it
    depth = threading.local()  # per thread: how deep in blas_threads it is


def _openblas_libs() -> list[str]:
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                name = os.path.basename(p).lower()
                if "openblas" in name and (".so" in name or name.endswith(".dylib")) and p not in paths:
                    paths.append(p)
    except OSError:
        pass
    if not paths:
        import numpy

        base = os.path.dirname(numpy.__file__)
        for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*", "../numpy/.dylibs/*openblas*"):
            paths += glob.glob(os.path.join(base, pattern))
    return paths


def _controls() -> list[tuple[object, object]]:
    with _Setting.cond:
        return _find_controls()


def _find_controls() -> list[tuple[object, object]]:
    global _cache
    if _cache is not None:
        return _cache
    found = []
    for path in _openblas_libs():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            getter.restype = ctypes.c_int
            found.append((setter, getter))
    _cache = found
    return found


@contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Within the block, OpenBLAS uses at most `n` threads (None: leave it alone)."""
    if n is None:
        yield
        return
    n = max(1, int(n))
    st = _Setting
    nested = getattr(st.depth, "n", 0) > 0
    with st.cond:
        controls = _find_controls()
        if not nested:
            while st.users > 0 and st.count != n:  # another count is in use: wait for it to end
                st.cond.wait()
            if st.users == 0:
                st.saved = [int(getter()) for _, getter in controls]  # type: ignore[operator]
                for setter, _ in controls:
                    setter(ctypes.c_int(n))  # type: ignore[operator]
                st.count = n
        st.users += 1
    st.depth.n = getattr(st.depth, "n", 0) + 1
    try:
        yield
    finally:
        st.depth.n -= 1
        with st.cond:
            st.users -= 1
            if st.users == 0:
                for (setter, _), old in zip(controls, st.saved):
                    setter(ctypes.c_int(old))  # type: ignore[operator]
                st.count = None
                st.cond.notify_all()


def current_blas_threads() -> int | None:
    """OpenBLAS's thread count now (None when numpy does not use OpenBLAS)."""
    controls = _controls()
    return int(controls[0][1]()) if controls else None  # type: ignore[operator]
