"""Limit the BLAS thread pool numpy uses, for the duration of a `with` block.

Calibration runs whole batches through numpy, so each matrix product is already large and
Python dispatch is amortized; OpenBLAS threads then gain little and, on a busy machine, lose
a lot (its threads spin waiting for busy cores: measured on 2 shared cores, a 512x32x32
product took 3.3 ms with 2 threads and 0.07 ms with 1, and MobileNetV2 calibration 5.3 s
against 1.4 s). `blas_threads(1)` finds the OpenBLAS library numpy loaded and sets its
thread count, restoring it afterwards; where there is none (MKL, Accelerate, no
OpenBLAS symbols) it does nothing.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")

_cache: list[tuple[object, object]] | None = None


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
    controls = _controls()
    before = []
    for setter, getter in controls:
        before.append(int(getter()))  # type: ignore[operator]
        setter(ctypes.c_int(max(1, n)))  # type: ignore[operator]
    try:
        yield
    finally:
        for (setter, _), old in zip(controls, before):
            setter(ctypes.c_int(old))  # type: ignore[operator]


def current_blas_threads() -> int | None:
    """OpenBLAS's thread count now (None when numpy does not use OpenBLAS)."""
    controls = _controls()
    return int(controls[0][1]()) if controls else None  # type: ignore[operator]
