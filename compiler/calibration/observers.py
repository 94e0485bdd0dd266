"""Observers: what calibration records about each float tensor.

An observer sees every float activation of every batch (`observe(name, array)`) and in the
end gives `stats()`: tensor name -> (min, max). `MinMaxObserver` keeps the running global
minimum and maximum over all samples, which is what the TF converter's calibrator does.
NaN and +-Inf never enter a range: they are skipped and counted, and `warnings()` says which
tensors had them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflquant.calibration.stats import Range, Stats


@dataclass
class TensorRange:
    min: float = float("inf")
    max: float = float("-inf")
    nonfinite: int = 0  # NaN/Inf values skipped
    seen: int = 0  # values seen, finite or not

    @property
    def valid(self) -> bool:
        return self.min <= self.max


@dataclass
class MinMaxObserver:
    """Running global min/max per tensor name; non-finite values are skipped and counted."""

    ranges: dict[str, TensorRange] = field(default_factory=dict)

    def observe(self, name: str, array: np.ndarray) -> None:
        a = np.asarray(array)
        if a.dtype.kind != "f" or a.size == 0:
            return
        if a.ndim and a.strides[0] == 0:  # a sample-independent value broadcast over samples
            a = a[:1]
        r = self.ranges.get(name)
        if r is None:
            r = self.ranges[name] = TensorRange()
        r.seen += a.size
        lo, hi = float(a.min()), float(a.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            finite = np.isfinite(a)
            r.nonfinite += int(a.size - np.count_nonzero(finite))
            if not finite.any():
                return
            vals = a[finite]
            lo, hi = float(vals.min()), float(vals.max())
        if lo < r.min:
            r.min = lo
        if hi > r.max:
            r.max = hi

    def stats(self) -> Stats:
        """Tensor name -> Range, only for tensors that had at least one finite value."""
        return {n: Range.of(r.min, r.max) for n, r in sorted(self.ranges.items()) if r.valid}

    def warnings(self) -> list[str]:
        out = []
        for n, r in sorted(self.ranges.items()):
            if r.nonfinite and r.valid:
                out.append(f"tensor '{n}': skipped {r.nonfinite} NaN/Inf value(s) of {r.seen} during calibration")
            elif not r.valid:
                out.append(f"tensor '{n}': every calibration value was NaN/Inf; it has no range")
        return out


OBSERVERS = {"minmax": MinMaxObserver}


def make_observer(kind: str = "minmax") -> MinMaxObserver:
    from tflquant.errors import TflquantError

    try:
        return OBSERVERS[kind]()
    except KeyError:
        raise TflquantError(f"unknown observer {kind!r}: choose one of {', '.join(OBSERVERS)}") from None
