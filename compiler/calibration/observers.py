"""Observers: what calibration records about each float tensor.

An observer sees every float activation of every batch (`observe(name, array)`) and in the
end gives `stats()`: tensor name -> (min, max). `MinMaxObserver` keeps the running global
minimum and maximum over all samples, which is what the TF converter's calibrator does.
NaN and +-Inf never enter a range: they are skipped and counted, and `warnings()` says which
tensors had them.

For the tensors named in `mean_names` the observer also keeps the per-channel mean and mean
square (over samples and every axis but the last, accumulated in float64; non-finite values
left out), which `correct-bias` and `clip-weights` need for the inputs of weighted layers.
It is not a range: min/max stays the calibration that decides quantization parameters.

With `histograms` on, the observer also keeps what the other calibration methods need
(`tflquant.calibration.stats.select` picks their ranges):
- a histogram of each tensor's finite values (`stats.Histogram`: at most 2048 bins on a
  power-of-two grid that coarsens exactly when the range grows, so it is the same however
  the data was split into batches, threads or processes). Counting every value costs 20x
  a min/max; a sample of more than HIST_VALUES (1024) values is subsampled with a fixed
  prime stride (`_stride`: a function of the tensor's shape, so still the same however the
  data was split);
- each sample's min and max, in sample order (moving-average). A sample's min/max is taken
  over every observation of the tensor while that sample ran: the tensors of a WHILE body
  or an LSTM's cell state are observed once per step, and their per-sample minima are the
  minima over the steps. The driver tells the observer where each batch ends
  (`end_batch(n)`), which is when a batch's observations become per-sample values; so the
  sequence, and the moving average computed from it, depend on the samples and their order
  only, not on the batch size or the parallel sample ranges (one exception: a loop whose
  step count differs between the samples of one batch gives each of those samples the
  batch's min/max).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tflquant.calibration.stats import Histogram, Range, Stats, _fit_exponent, bin_index, count_bins


_BLOCK_ROWS = 4096  # rows per block when accumulating per-channel sums


@dataclass
class TensorRange:
    min: float = float("inf")
    max: float = float("-inf")
    nonfinite: int = 0  # NaN/Inf values skipped
    seen: int = 0  # values seen, finite or not
    sums: np.ndarray | None = None  # per-channel sums (float64), when means are kept
    sqsums: np.ndarray | None = None  # per-channel sums of squares
    counts: np.ndarray | None = None  # per-channel finite value counts
    hist: Histogram | None = None  # with histograms on (the observer's running one: its counts grow in place)
    hist_shared: bool = False  # `hist` is another's too (a part's, or handed out by stats()): copy it before counting into it
    bins: list[tuple[np.ndarray, Any, Any, int]] | None = None  # this batch's values to count: (values, min, max, weight), or (int32 bin indices, exp, start, weight) on the running grid
    hists: list[Histogram] | None = None  # a reduce result's counts (on the running grid, or its range's / the coarser running one): merge adds them
    pending: list[tuple[np.ndarray, np.ndarray]] | None = None  # this batch's per-sample (min, max) per observation
    sample_min: list[np.ndarray] | None = None  # finished batches' per-sample minima (float32)
    sample_max: list[np.ndarray] | None = None

    def add_channels(self, a: np.ndarray) -> None:
        """Accumulate per-channel (last axis) sums of finite values; a channel count change
        (a tensor whose last dimension varies between batches) drops the mean."""
        if a.ndim < 2:
            return
        c = a.shape[-1]
        flat = a.reshape(-1, c)
        # Blocks of rows summed in the tensor's own precision (a vector-matrix product: 6x
        # faster than a float64 column sum), accumulated in float64: no float64 copy of the
        # whole tensor (per-block relative error ~1e-7).
        s, q = np.zeros(c), np.zeros(c)
        ones = np.ones(min(_BLOCK_ROWS, flat.shape[0]), flat.dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: caught below
            for i in range(0, flat.shape[0], _BLOCK_ROWS):
                b = flat[i : i + _BLOCK_ROWS]
                s += ones[: b.shape[0]] @ b
                q += np.einsum("ij,ij->j", b, b)
        n = np.full(c, flat.shape[0], np.int64)
        if not (np.isfinite(s).all() and np.isfinite(q).all()):  # NaN/Inf (or float32 overflow): count finite values only
            finite = np.isfinite(flat)
            f64 = np.where(finite, flat, 0).astype(np.float64)
            n = finite.sum(axis=0).astype(np.int64)
            s = f64.sum(axis=0)
            q = np.einsum("ij,ij->j", f64, f64)
        self.add_sums(TensorRange(sums=s, sqsums=q, counts=n))

    def add_sums(self, other: TensorRange) -> None:
        """Add another range's per-channel sums (a channel count change drops the mean)."""
        s, q, n = other.sums, other.sqsums, other.counts
        if self.sums is None:
            self.sums, self.sqsums, self.counts = s, q, n
        elif s is not None and self.sums.shape == s.shape and self.counts is not None and self.sqsums is not None:
            self.sums += s
            self.sqsums += q
            self.counts += n
        else:
            self.sums = self.sqsums = self.counts = np.zeros(0)  # inconsistent: no mean

    def mean(self) -> tuple[float, ...] | None:
        if self.sums is None or self.counts is None or self.sums.size == 0 or np.any(self.counts == 0):
            return None
        return tuple(float(x) for x in self.sums / self.counts)

    def mean_square(self) -> tuple[float, ...] | None:
        if self.mean() is None or self.sqsums is None or self.counts is None:
            return None
        return tuple(float(x) for x in self.sqsums / self.counts)

    @property
    def valid(self) -> bool:
        return self.min <= self.max


@dataclass
class MinMaxObserver:
    """Running global min/max per tensor name; non-finite values are skipped and counted.

    `observe(name, array)` is `merge(name, reduce(name, array))`: `reduce` reads the array
    (and nothing of the observer but `mean_names`), so calibration can run it for several
    sample ranges at once and merge the results in range order."""

    ranges: dict[str, TensorRange] = field(default_factory=dict)
    mean_names: frozenset[str] = frozenset()  # tensors whose per-channel mean is kept too
    histograms: bool = False  # also keep histograms and per-sample min/max (see the module docstring)
    # with histograms: what the calibration methods to come will read (what calibrate's
    # `method` / `method_tensors` say); None: every tensor's. A tensor left out gets min/max
    # (and means) only
    method_names: frozenset[str] | None = None
    sample_ranges: bool = True  # per-sample min/max (moving-average)
    histogram_counts: bool = True  # histograms (percentile, mse, entropy)
    _binned: bool = field(default=False, repr=False)  # a merged part has values or bin indices to count (end_batch)

    def observe(self, name: str, array: np.ndarray) -> None:
        if self.histograms and self._observe_direct(name, array):
            return
        part = self.reduce(name, array, now=True)
        if part is not None:
            self.merge(name, part)

    def _observe_direct(self, name: str, a: Any, keep: bool = False) -> TensorRange | bool:
        """observe() with every statistic, written straight into the running statistics
        (no reduce result to build and merge), for the common case: a float32 array with a
        sample axis, finite values, no means. False (nothing changed): take reduce + merge.
        The same statistics as reduce + merge (the same counts, in the same places).
        `keep`: return what reduce(name, a, now=True) would have (for same_values: another
        tensor holds these values too) instead of True."""
        if (
            type(a) is not np.ndarray
            or a.dtype != np.float32
            or not a.ndim
            or not a.size
            or not a.strides[0]
            or self.method_names is not None
            or not (self.sample_ranges and self.histogram_counts)
            or name in self.mean_names
        ):
            return False
        r = self.ranges.get(name)
        if r is not None and r.bins:
            return False
        rows = a.shape[0]
        flat = a.reshape(rows, a.size // rows)
        smin, smax = _row_min_max(flat)
        lo, hi = float(np.minimum.reduce(smin)), float(np.maximum.reduce(smax))
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN / Inf: reduce skips them
            return False
        step = _stride_of(a.shape[1:])
        sub = flat[:, ::step] if step > 1 else flat
        if r is None:
            r = self.ranges[name] = TensorRange()
        r.seen += a.size
        if lo < r.min:
            r.min = lo
        if hi > r.max:
            r.max = hi
        g = r.hist
        if g is not None and g.covers(lo, hi):
            part = count_bins(sub, g.exp, g.start, len(g.counts))
            counts = _own_counts(r)
            counts += part  # on the running grid, in place
            h = Histogram(g.exp, g.start, part) if keep else None
        else:
            h = _histogram(sub, 1, lo, hi, g.exp if g is not None else None)
            _add_histogram(r, h, own=not keep)
        pending = [(smin, smax)]
        r.pending = r.pending + pending if r.pending else pending
        if keep:
            return TensorRange(min=lo, max=hi, seen=a.size, hists=[h], pending=pending)  # type: ignore[list-item]
        return True

    def reduce(self, name: str, array: np.ndarray, now: bool = False) -> TensorRange | None:
        """What one array adds to `name`'s statistics (None: not a float tensor, or empty).
        `now`: the caller merges the result before it reduces anything else (observe): its
        values are counted here, on the running grid when they fit it (see _bin)."""
        a = array if type(array) is np.ndarray else np.asarray(array)
        if a.dtype.kind != "f":
            return None
        if a.size == 0:  # an empty tensor (a SLICE of size 0): no value, any scale fits; [0, 0]
            return TensorRange(min=0.0, max=0.0)
        n = a.shape[0] if a.ndim else 1
        if a.ndim and a.strides[0] == 0:  # a sample-independent value broadcast over samples
            a = a[:1]
        part = TensorRange(seen=a.size)
        if name in self.mean_names:
            part.add_channels(a)
        wanted = self.histograms and (self.method_names is None or name in self.method_names)
        samples = wanted and self.sample_ranges
        if not samples:
            lo, hi = float(a.min()), float(a.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                finite = np.isfinite(a)
                part.nonfinite = int(a.size - np.count_nonzero(finite))
                if not finite.any():
                    return part
                vals = a[finite]
                lo, hi = float(vals.min()), float(vals.max())
            part.min, part.max = lo, hi
            if not (wanted and self.histogram_counts):
                return part
        # per-sample minima and maxima first; the tensor's min/max is theirs (the same values)
        rows = a.shape[0] if a.ndim else 1
        m = a.size // rows
        flat = a.reshape(rows, m)
        step = _stride(a.shape)
        weight = n // rows  # a broadcast value counts once per sample
        sub = flat[:, ::step] if step > 1 else flat  # a deterministic subsample of each sample (see _stride)
        if not samples:  # the histogram only (min/max above)
            if part.nonfinite:
                sub = sub[np.isfinite(sub)]
            self._bin(name, part, sub, lo, hi, weight, now)
            return part
        smin, smax = _row_min_max(flat)
        lo, hi = float(np.minimum.reduce(smin)), float(np.maximum.reduce(smax))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            finite = np.isfinite(flat)
            part.nonfinite = int(a.size - np.count_nonzero(finite))
            smin = np.min(np.where(finite, flat, np.inf), axis=1)
            smax = np.max(np.where(finite, flat, -np.inf), axis=1)
            none = ~np.isfinite(smin)  # samples without a finite value: NaN (skipped)
            smin, smax = np.where(none, np.nan, smin), np.where(none, np.nan, smax)
            part.pending = [(_f32(smin, n), _f32(smax, n))]
            if not finite.any():
                return part
            lo, hi = float(flat[finite].min()), float(flat[finite].max())
            sub = sub[np.isfinite(sub)]
        part.min, part.max = lo, hi
        if self.histogram_counts:
            self._bin(name, part, sub, lo, hi, weight, now)
        if part.pending is None:
            if smin.dtype == np.float32 and smin.shape[0] == n:  # (reduceat's result: nothing writes it)
                part.pending = [(smin, smax)]
            else:
                part.pending = [(_f32(smin, n), _f32(smax, n))]
        return part

    def _bin(self, name: str, part: TensorRange, sub: np.ndarray, lo: float, hi: float, weight: int, now: bool) -> None:
        """The part's values to count (finite, in [lo, hi]). An observation merged right
        away (`now`: no parallel sample ranges) is counted here: on the running histogram's
        grid when it fits (merge adds the counts in place), else on the grid of its range or
        the coarser running one. Otherwise (parallel sample ranges: parts reduced before any
        is merged) they are counted in end_batch with
        the batch's other parts in one bincount (see _count_bins): their bin indices when
        they fit the running grid (reading it is all reduce reads of the observer), else a
        copy of them (the activation is not kept). All the same counts: histograms of the
        same data merge exactly however it was split (see stats.Histogram)."""
        run = self.ranges.get(name)
        g = run.hist if run is not None else None
        if g is not None and g.covers(lo, hi):
            if now:  # counted right away on the running grid (merge adds them in place)
                counts = count_bins(_f(sub), g.exp, g.start, len(g.counts))
                if weight != 1:
                    counts *= weight
                part.hists = [Histogram(g.exp, g.start, counts)]
            else:
                part.bins = [(bin_index(_f(sub), g.exp, g.start), g.exp, g.start, weight)]
        elif now and (run is None or not run.bins):
            part.hists = [_histogram(_f(sub), weight, lo, hi, g.exp if g is not None else None)]
        else:
            part.bins = [(np.array(_f(sub), copy=True), lo, hi, weight)]

    def same_values(self, name: str, array: Any, src: Any, part: TensorRange | None, same_order: bool) -> TensorRange | None:
        """`part`, reduce's result for the array `src`, as the result for `array`, when
        `array` holds src's values sample by sample (the result of a RESHAPE or TRANSPOSE of
        it, the interpreter says) and reduce would find exactly the same statistics: same
        order (`same_order`: the same buffer, and the same histogram subsample) or every value
        in the histogram (a permutation). None: reduce it."""
        if part is None or (part.bins is None and part.hists is None) or name in self.mean_names or not self.histograms:
            return None
        a = array
        if not (isinstance(a, np.ndarray) and isinstance(src, np.ndarray)) or a.ndim == 0 or src.ndim == 0:
            return None
        if a.dtype != src.dtype or a.size != src.size or a.shape[0] != src.shape[0] or a.strides[0] == 0 or src.strides[0] == 0:
            return None
        if same_order:
            if not (a.flags.c_contiguous and src.flags.c_contiguous) or a.ctypes.data != src.ctypes.data or _stride(a.shape) != _stride(src.shape):
                return None
        elif _stride(a.shape) != 1 or _stride(src.shape) != 1:
            return None
        if self.method_names is not None and name not in self.method_names:  # min/max only
            return TensorRange(min=part.min, max=part.max, nonfinite=part.nonfinite, seen=part.seen)
        return TensorRange(min=part.min, max=part.max, nonfinite=part.nonfinite, seen=part.seen, bins=part.bins, hists=part.hists, pending=part.pending)

    def merge(self, name: str, part: TensorRange) -> None:
        """Add a `reduce` result to the running statistics of `name`."""
        r = self.ranges.get(name)
        if r is None:
            r = self.ranges[name] = TensorRange()
        r.seen += part.seen
        r.nonfinite += part.nonfinite
        if part.sums is not None:
            r.add_sums(part)
        if part.min < r.min:
            r.min = part.min
        if part.max > r.max:
            r.max = part.max
        # (lists are never changed in place: a part's list may be another tensor's too)
        if part.bins:
            r.bins = r.bins + part.bins if r.bins else part.bins
            self._binned = True
        if part.hists:  # counted already: added now (no reduce runs while merges do, see the interpreter)
            for h in part.hists:  # (same_values may share h with another tensor: not r's own)
                _add_histogram(r, h)
        if part.pending:
            r.pending = r.pending + part.pending if r.pending else part.pending

    def end_batch(self, n: int) -> None:
        """A batch of n samples has run: its observations become per-sample min/max."""
        if not self.histograms:
            return
        if self._binned:  # parts whose values are counted now
            self._binned = False
            # a part several tensors share (same_values: a reshape's values) is counted once
            parts = [r.bins for r in self.ranges.values() if r.bins]  # (and kept alive: ids below)
            seen: set[int] = set()
            shared: set[int] = set()
            for bins in parts:
                for p in bins:
                    (shared if id(p[0]) in seen else seen).add(id(p[0]))
            memo: dict[tuple[Any, ...], Any] | None = {} if shared else None
            for r in self.ranges.values():
                if r.bins:
                    _count_bins(r, memo, shared)
        for r in self.ranges.values():
            pending = r.pending
            if pending:
                r.pending = None
                smin, smax = _per_sample(pending, n)
                if r.sample_min is None or r.sample_max is None:
                    r.sample_min, r.sample_max = [smin], [smax]
                else:
                    r.sample_min.append(smin)
                    r.sample_max.append(smax)

    def stats(self) -> Stats:
        """Tensor name -> Range, only for tensors that had at least one finite value."""
        out: Stats = {}
        for n, r in sorted(self.ranges.items()):
            if r.valid:
                m = r.mean()
                msq = r.mean_square() if m is not None else None
                if not self.histograms:
                    out[n] = Range((float(r.min),), (float(r.max),), -1, m, msq)
                    continue
                if r.pending or r.bins:  # observations after the last end_batch: one batch of their own
                    self.end_batch(len(r.pending[0][0]) if r.pending else 1)
                smin = np.concatenate(r.sample_min) if r.sample_min else None
                smax = np.concatenate(r.sample_max) if r.sample_max else None
                h = r.hist  # (handed out: counting into it again copies it first)
                r.hist_shared = h is not None
                out[n] = Range((float(r.min),), (float(r.max),), -1, m, msq, h, smin, smax)
        return out

    def warnings(self) -> list[str]:
        out = []
        for n, r in sorted(self.ranges.items()):
            if r.nonfinite and r.valid:
                out.append(f"tensor '{n}': skipped {r.nonfinite} NaN/Inf value(s) of {r.seen} during calibration")
            elif not r.valid:
                out.append(f"tensor '{n}': every calibration value was NaN/Inf; it has no range")
        return out


def _add_histogram(r: TensorRange, h: Histogram, own: bool = False) -> None:
    """Add a part's histogram to the running one of `r` (whose min/max already include the
    part's): in place when its bins lie on the running grid, else both on the merged grid.
    `own`: h is r's alone (else r keeps it as shared, copied before anything is counted into
    it: h may be another tensor's too, same_values)."""
    cur = r.hist
    if cur is None:
        r.hist, r.hist_shared = h, not own  # (copied when counted into: _own_counts)
        return
    off = h.start - cur.start
    if h.exp == cur.exp and off >= 0 and off + len(h.counts) <= len(cur.counts):
        _own_counts(r)[off : off + len(h.counts)] += h.counts
    else:
        r.hist, r.hist_shared = cur.merge(h, r.min, r.max), False


def _own_counts(r: TensorRange) -> np.ndarray:
    """r's histogram counts to add to in place: a copy first when they are shared."""
    h = r.hist
    assert h is not None
    if r.hist_shared:
        h = r.hist = Histogram(h.exp, h.start, h.counts.copy())
        r.hist_shared = False
    return h.counts


def _count_bins(r: TensorRange, memo: dict[tuple[Any, ...], Any] | None = None, shared: set[int] | frozenset[int] = frozenset()) -> None:
    """Count a batch's values (r.bins) into r's histogram: bin indices on one grid with one
    bincount (per weight); values on the grid of their range, or the running grid when that
    is coarser (int32 bin indices: float32 -> int32 is SIMD, -> intp is not); each added in
    place when it fits. Counts of parts that other tensors share too (ids in `shared`) are
    kept in `memo` for them, keyed by everything the counts depend on (the parts, the grid,
    the weight): the same counts, counted once."""
    parts, r.bins = r.bins or [], None
    for key in sorted({(p[0].dtype.kind == "i",) + (p[1:] if p[0].dtype.kind == "i" else p[3:]) for p in parts}):
        if key[0]:  # indices on a grid: (True, exp, start, weight)
            _, exp, start, weight = key
            idx = [p[0] for p in parts if p[0].dtype.kind == "i" and p[1:] == key[1:]]
            g = r.hist
            nb = len(g.counts) if g is not None and g.exp == exp and g.start == start else 0
            mkey = (True, exp, start, weight, nb, *map(id, idx)) if memo is not None and all(id(a) in shared for a in idx) else None
            counts = memo.get(mkey) if mkey is not None else None  # type: ignore[union-attr]
            if counts is None:
                counts = np.bincount(idx[0].reshape(-1) if len(idx) == 1 else np.concatenate([a.reshape(-1) for a in idx]), minlength=nb)
                if weight != 1:
                    counts *= weight
                if mkey is not None:
                    memo[mkey] = counts  # type: ignore[index]
            _add_histogram(r, Histogram(exp, start, counts), own=mkey is None)
        else:  # values: (False, weight)
            weight = key[1]
            same = [p for p in parts if p[0].dtype.kind != "i" and p[3] == weight]
            lo, hi = min(p[1] for p in same), max(p[2] for p in same)
            run_exp = r.hist.exp if r.hist is not None else None
            mkey = (False, weight, lo, hi, run_exp, *(id(p[0]) for p in same)) if memo is not None and all(id(p[0]) in shared for p in same) else None
            h = memo.get(mkey) if mkey is not None else None  # type: ignore[union-attr]
            if h is None:
                vals = same[0][0] if len(same) == 1 else np.concatenate([p[0].reshape(-1) for p in same])
                h = _histogram(vals, weight, lo, hi, run_exp)
                if mkey is not None:
                    memo[mkey] = h  # type: ignore[index]
            _add_histogram(r, h, own=mkey is None)


def _f(v: np.ndarray) -> np.ndarray:
    """float32 or float64 values (float16: as float32, which scales without overflow)."""
    return v if v.dtype == np.float32 or v.dtype == np.float64 else v.astype(np.float32)


def _histogram(vals: np.ndarray, weight: int, lo: float, hi: float, exp: int | None) -> Histogram:
    """The histogram of finite values in [lo, hi], each counted `weight` times, on the grid
    of [lo, hi] or the coarser grid `exp` (Histogram.of without its conversions)."""
    e = _fit_exponent(lo, hi)
    if exp is not None and exp > e:
        e = exp
    start = math.floor(math.ldexp(lo, -e))
    nb = math.floor(math.ldexp(hi, -e)) - start + 1
    if not vals.size:
        return Histogram(e, start, np.zeros(nb, np.int64))
    counts = count_bins(_f(vals), e, start, nb)
    if weight != 1:
        counts *= weight
    return Histogram(e, start, counts)


HIST_VALUES = 1024  # values per sample and tensor that go into the histogram, at most about


def _stride(shape: tuple[int, ...]) -> int:
    return _stride_of(shape[1:])  # numpy shapes are tuples of ints


@functools.lru_cache(maxsize=4096)
def _stride_of(shape: tuple[int, ...]) -> int:
    """Every how many values of a sample (flattened) the histogram counts: 1 up to
    HIST_VALUES values, else the smallest prime stride that brings it to about HIST_VALUES
    and divides no dimension (so the subsample runs through every channel and position).
    A function of the tensor's per-sample shape only: the same for every batch size, split
    or process, so histograms still merge exactly."""
    m = 1
    for d in shape:
        m *= d
    if m <= HIST_VALUES:
        return 1
    p = -(-m // HIST_VALUES)
    while not (_is_prime(p) and all(d % p for d in shape if d > 1)):
        p += 1
    return p


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % q for q in range(2, int(p**0.5) + 1))


def _f32(v: np.ndarray, n: int) -> np.ndarray:
    """Per-sample values as float32, length n (a broadcast value: repeated)."""
    v = np.asarray(v, np.float32).reshape(-1)
    return np.repeat(v, n) if len(v) == 1 and n != 1 else v


def _row_min_max(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's min and max (reduceat over the contiguous rows: a third of the time of an
    axis-1 reduction of a few hundred values a row)."""
    if flat.shape[0] > 1 and flat.flags.c_contiguous:
        r, offs = flat.reshape(-1), _row_starts(flat.shape[0], flat.shape[1])
        return np.minimum.reduceat(r, offs), np.maximum.reduceat(r, offs)
    return flat.min(axis=1), flat.max(axis=1)


@functools.lru_cache(maxsize=256)
def _row_starts(rows: int, m: int) -> np.ndarray:
    a = np.arange(0, rows * m, m, dtype=np.intp)
    a.flags.writeable = False
    return a


def _per_sample(obs: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch's observations of a tensor (per-sample vectors in merge order: sample ranges
    in order, each range's observations in step order) as one min and max per sample. A
    tensor observed k times per sample (loop steps) comes as k vectors per sample range."""
    if len(obs) == 1 and len(obs[0][0]) == n:  # nothing writes these arrays: no copy
        return obs[0]
    total = sum(len(m) for m, _ in obs)
    if total == n:
        return np.concatenate([m for m, _ in obs]), np.concatenate([x for _, x in obs])
    if n > 0 and total % n == 0:
        k = total // n
        mins, maxs, i, covered = [], [], 0, 0
        while i + k <= len(obs):
            group = obs[i : i + k]
            if any(len(g[0]) != len(group[0][0]) for g in group):
                break
            mins.append(np.fmin.reduce([g[0] for g in group]))
            maxs.append(np.fmax.reduce([g[1] for g in group]))
            covered += len(group[0][0])
            i += k
        if i == len(obs) and covered == n:
            return np.concatenate(mins), np.concatenate(maxs)
    # irregular (a loop whose step count differs between samples): the batch's min/max for each
    lo = np.float32(np.nanmin([np.nanmin(m) if np.isfinite(m).any() else np.nan for m, _ in obs]))
    hi = np.float32(np.nanmax([np.nanmax(x) if np.isfinite(x).any() else np.nan for _, x in obs]))
    return np.full(n, lo, np.float32), np.full(n, hi, np.float32)


OBSERVERS = {"minmax": MinMaxObserver}


def make_observer(kind: str = "minmax") -> MinMaxObserver:
    from tflquant.errors import TflquantError

    try:
        return OBSERVERS[kind]()
    except KeyError:
        raise TflquantError(f"unknown observer {kind!r}: choose one of {', '.join(OBSERVERS)}") from None
