"""Calibration statistics files: JSON keyed by TFLite tensor name.

    {
      "format": "tflquant-calibration-stats",
      "version": 1,
      "tensors": {
        "conv1": {"min": -1.5, "max": 6.0},
        "dense": {"axis": 1, "min": [-1.0, -2.0], "max": [1.0, 2.0]},
        "pool": {"min": 0.0, "max": 4.0, "mean": [0.5, 1.25]}
      }
    }

The reader also takes the bare mapping (`{"conv1": {"min": .., "max": ..}}`) and
`[min, max]` pairs, so a hand-written file for a test stays short. The optional "mean" is the
tensor's per-channel mean over the calibration data (mean over every axis but the last, one
value per last-axis index); calibration records it for the inputs of CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED, with "mean_sq" (per-channel mean of squares).
Version 2 (written when calibration collected them) adds, per tensor, what the other
calibration methods need, so `annotate-calibration{stats-file=PATH method=percentile
percentile=99.9}` can pick the method at replay time and files from separate runs merge
exactly (`merge_stats`):

        "conv1": {"min": -1.5, "max": 6.0,
                  "hist": {"exp": -8, "start": -384, "counts": [3, 0, 7, ...]},
                  "samples": {"min": "<base64 little-endian float32>", "max": "..."},
                  "chosen": {"method": "percentile", "min": -1.2, "max": 5.1}}

"hist" is a histogram on a fixed grid: bin k holds the values x with floor(x / 2**exp) == k,
for k = start .. start + len(counts) - 1 (see `Histogram`); "samples" holds each calibration
sample's min and max in the order the samples ran (what moving-average needs); "chosen" is
informative only (the range the method of that run picked; the reader ignores it). Older
files (version 1) read as before; they support minmax only.
`annotate-calibration{stats-file=PATH}` reads these files and attaches every statistic to
the IR (ranges as quant.stats ops, the moments as the layers' `input_moments` that
`correct-bias` and `clip-weights` read); the driver writes one with `--save-stats` and
hands the same statistics over in memory (`run_pipeline(..., stats=...)`). Nothing here
is process-wide state: statistics travel as values.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tflquant.errors import TflquantError

FORMAT = "tflquant-calibration-stats"


@dataclass(frozen=True)
class Range:
    """A calibrated range: per tensor (axis -1, one min and max) or per axis; `mean`, when
    recorded, is the per-channel (last axis) mean of the tensor over the calibration data."""

    mins: tuple[float, ...]
    maxs: tuple[float, ...]
    axis: int = -1
    mean: tuple[float, ...] | None = None
    mean_sq: tuple[float, ...] | None = None  # per-channel mean of squares, with `mean`
    # what the calibration methods other than minmax need (None: not collected)
    hist: Histogram | None = field(default=None, compare=False)
    sample_min: np.ndarray | None = field(default=None, compare=False, repr=False)  # float32, one per sample
    sample_max: np.ndarray | None = field(default=None, compare=False, repr=False)
    chosen: tuple[str, float, float] | None = field(default=None, compare=False)  # (method, lo, hi) picked

    @staticmethod
    def of(lo: float, hi: float) -> Range:
        return Range((float(lo),), (float(hi),))

    def to_json(self) -> dict[str, Any]:
        if self.axis < 0:
            out: dict[str, Any] = {"min": self.mins[0], "max": self.maxs[0]}
        else:
            out = {"axis": self.axis, "min": list(self.mins), "max": list(self.maxs)}
        if self.mean is not None:
            out["mean"] = list(self.mean)
        if self.mean_sq is not None:
            out["mean_sq"] = list(self.mean_sq)
        if self.hist is not None:
            out["hist"] = self.hist.to_json()
        if self.sample_min is not None and self.sample_max is not None:
            out["samples"] = {"min": _b64(self.sample_min), "max": _b64(self.sample_max)}
        if self.chosen is not None:
            out["chosen"] = {"method": self.chosen[0], "min": self.chosen[1], "max": self.chosen[2]}
        return out

    @property
    def extended(self) -> bool:
        return self.hist is not None or self.sample_min is not None

    def merge(self, other: Range) -> Range:
        """This range's statistics and `other`'s, as if one calibration had seen this one's
        samples and then the other's: min/max, histograms and the per-sample sequences merge
        exactly (in any grouping); means are weighted by sample counts, which need the
        per-sample sequences (without them the mean is dropped)."""
        if self.axis >= 0 or other.axis >= 0:
            if self.axis != other.axis or len(self.mins) != len(other.mins):
                raise TflquantError("cannot merge per-axis statistics of different axes or channel counts")
            return Range(tuple(map(min, self.mins, other.mins)), tuple(map(max, self.maxs, other.maxs)), self.axis)
        lo, hi = min(self.mins[0], other.mins[0]), max(self.maxs[0], other.maxs[0])
        hist = None
        if self.hist is not None and other.hist is not None:
            hist = self.hist.merge(other.hist, lo, hi)
        smin = smax = None
        if self.sample_min is not None and other.sample_min is not None and self.sample_max is not None and other.sample_max is not None:
            smin = np.concatenate([self.sample_min, other.sample_min])
            smax = np.concatenate([self.sample_max, other.sample_max])
        mean = mean_sq = None
        if self.mean is not None and other.mean is not None and len(self.mean) == len(other.mean) and smin is not None:
            # weighted by samples (a tensor holds as many values in each sample; histogram
            # totals are estimates of value counts: see observers)
            na, nb = len(self.sample_min), len(other.sample_min)  # type: ignore[arg-type]
            if na + nb > 0:
                mean = tuple((a * na + b * nb) / (na + nb) for a, b in zip(self.mean, other.mean))
                if self.mean_sq is not None and other.mean_sq is not None:
                    mean_sq = tuple((a * na + b * nb) / (na + nb) for a, b in zip(self.mean_sq, other.mean_sq))
        return Range((lo,), (hi,), -1, mean, mean_sq, hist, smin, smax)


Stats = dict[str, Range]


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes()).decode("ascii")


def _unb64(text: Any, name: str, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError):
        raise TflquantError(f"{where}: tensor '{name}': 'samples' must hold base64 float32 data") from None
    if len(raw) % 4:
        raise TflquantError(f"{where}: tensor '{name}': 'samples' data is not a whole number of float32 values")
    return np.frombuffer(raw, "<f4").astype(np.float32)


# ---------------------------------------------------------------------------------------
# Histograms on a power-of-two grid (exact merges)
# ---------------------------------------------------------------------------------------

HIST_BINS = 2048  # at most this many bins; the data's range always spans more than half of them
_EXP_MIN = -126  # finest bin width 2**-126 (2**126, the scale, is a float32; below it only subnormals)
_PRECISION = 23  # bins no finer than float32's resolution at the largest |value| (indices < 2**24)


def _fit_exponent(lo: float, hi: float) -> int:
    """The smallest exponent e for which [lo, hi] spans at most HIST_BINS bins of width 2**e
    and bins are no finer than float32 resolves at max(|lo|, |hi|). A monotone function of
    the range: a wider range never gets a finer grid, so the grid of the whole data is the
    same however it was split (see Histogram)."""
    top = max(abs(lo), abs(hi))
    e = _EXP_MIN
    if top > 0:
        e = max(e, math.frexp(top)[1] - 1 - _PRECISION)
    if hi > lo:
        # (hi - lo) / 2**e > HIST_BINS bins below frexp's exponent f, so the answer is >= f;
        # f - 1 allows for hi - lo rounded up across a power of two. Starting there the loop
        # runs about once (from f - 2 it ran twice a call)
        e = max(e, math.frexp((hi - lo) / HIST_BINS)[1] - 1)
    while math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) + 1 > HIST_BINS:
        e += 1
    return e


def bin_index(values: np.ndarray, exp: int, start: int) -> np.ndarray:
    """floor(x / 2**exp) - start for float32 / float64 values x (int32): exact, since the
    scaling is by a power of two and the floor's result and `start` are integers below
    2**24 (see _fit_exponent)."""
    t = np.multiply(values, values.dtype.type(math.ldexp(1.0, -exp)))
    np.floor(t, out=t)
    t -= t.dtype.type(start)  # exact: integers below 2**24
    return t.astype(np.int32)  # bincount takes int32 (float32 -> int32 is SIMD, -> intp is not)


_SCRATCH_VALUES = 1 << 18  # count_bins reuses per-thread buffers for up to this many values
_scratch = threading.local()


def count_bins(values: np.ndarray, exp: int, start: int, n: int) -> np.ndarray:
    """np.bincount(bin_index(values, exp, start), minlength=n) (int64 counts; longer than n
    when a value lies above bin n - 1), the float32 temporaries in buffers this thread
    reuses: no fresh pages to fault in for every tensor."""
    k = values.size
    if values.dtype != np.float32 or k > _SCRATCH_VALUES:
        return np.bincount(bin_index(values, exp, start).reshape(-1), minlength=n)
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None or len(bufs[0]) < k:
        size = max(k, 1 << 16)
        bufs = _scratch.bufs = (np.empty(size, np.float32), np.empty(size, np.int32), np.empty(size, np.intp))
    t, i32, idx = bufs[0][:k], bufs[1][:k], bufs[2][:k]
    np.multiply(values, math.ldexp(1.0, -exp), out=t.reshape(values.shape))  # (a power of two: exact as float32)
    np.floor(t, out=t)
    np.subtract(t, float(start), out=t)  # exact: integers below 2**24
    # float32 -> int32 -> intp: both casts SIMD (float32 -> intp directly is not), and
    # bincount takes intp without a copy of its own
    np.copyto(i32, t, casting="unsafe")
    np.copyto(idx, i32)
    return np.bincount(idx, minlength=n)


@dataclass(frozen=True)
class Histogram:
    """Counts of a tensor's finite values on the grid of width 2**exp: bin k holds the x
    with floor(x / 2**exp) == k, for k = start .. start + len(counts) - 1 (the bins from the
    tensor's min to its max). The exponent is `_fit_exponent(min, max)` of the values seen;
    when more data widens the range, bins merge in pairs (k -> floor(k / 2)), which is exact:
    floor(floor(x / 2**e) / 2) == floor(x / 2**(e+1)). So the histogram of some data depends
    on the data only, not on how it was split into batches, threads or processes, nor on
    the order of the parts. (A negative float32 subnormal whose scaled value underflows to
    -0.0 is counted in bin 0: negligible.)"""

    exp: int
    start: int
    counts: np.ndarray  # int64

    @property
    def width(self) -> float:
        return math.ldexp(1.0, self.exp)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @staticmethod
    def of(values: np.ndarray, lo: float, hi: float, exp: int | None = None, weight: int = 1) -> Histogram:
        """The histogram of finite float values that lie in [lo, hi] (the range it is for:
        the values' own, or wider), on the grid of that range or the coarser grid `exp`;
        each value counts `weight` times."""
        e = _fit_exponent(lo, hi) if exp is None else max(exp, _fit_exponent(lo, hi))
        start = math.floor(math.ldexp(lo, -e))
        n = math.floor(math.ldexp(hi, -e)) - start + 1
        a = values if isinstance(values, np.ndarray) and values.dtype in (np.float32, np.float64) else np.asarray(values, np.float32)
        counts = np.bincount(bin_index(a, e, start).ravel(), minlength=n)
        if len(counts) != n or counts.dtype != np.int64:
            counts = counts[:n].astype(np.int64)
        return Histogram(e, start, counts * weight if weight != 1 else counts)

    def covers(self, lo: float, hi: float) -> bool:
        """Values in [lo, hi] all fall in these bins (counted on this grid as they are)."""
        return math.floor(math.ldexp(lo, -self.exp)) >= self.start and math.floor(math.ldexp(hi, -self.exp)) < self.start + len(self.counts)

    def rebin(self, exp: int, start: int, n: int) -> np.ndarray:
        """These counts on the coarser grid `exp` (>= self.exp), bins start .. start + n - 1."""
        d = exp - self.exp
        first, last = self.start >> d, (self.start + len(self.counts) - 1) >> d  # (>>: floor, negatives too)
        # bin b of the coarse grid sums the fine bins b * 2**d .. (b + 1) * 2**d - 1: runs of the counts
        bounds = np.maximum((np.arange(first, last + 1, dtype=np.int64) << d) - self.start, 0)
        out = np.zeros(n, np.int64)
        sums = np.add.reduceat(self.counts.astype(np.int64, copy=False), bounds)
        lo = first - start  # sums[j] is bin lo + j of out; only the overlap is kept
        a, b = max(lo, 0), min(lo + len(sums), n)
        if a < b:
            out[a:b] = sums[a - lo : b - lo]
        return out

    def merge(self, other: Histogram, lo: float, hi: float) -> Histogram:
        """Both histograms' counts on the grid of the merged range [lo, hi]."""
        e = max(self.exp, other.exp, _fit_exponent(lo, hi))
        start = math.floor(math.ldexp(lo, -e))
        n = math.floor(math.ldexp(hi, -e)) - start + 1
        out = np.zeros(n, np.int64)
        for h in (self, other):
            if h.exp == e:  # same grid: add in place
                out[h.start - start : h.start - start + len(h.counts)] += h.counts
            else:
                out += h.rebin(e, start, n)
        return Histogram(e, start, out)

    def to_json(self) -> dict[str, Any]:
        return {"exp": self.exp, "start": self.start, "counts": [int(c) for c in self.counts]}

    @staticmethod
    def from_json(v: Any, name: str, where: str) -> Histogram:
        try:
            counts = np.asarray([int(c) for c in v["counts"]], np.int64)
            h = Histogram(int(v["exp"]), int(v["start"]), counts)
        except (KeyError, TypeError, ValueError):
            raise TflquantError(f"{where}: tensor '{name}': 'hist' needs integer 'exp', 'start' and a list of integer 'counts'") from None
        if not len(counts) or len(counts) > HIST_BINS or (counts < 0).any():
            raise TflquantError(f"{where}: tensor '{name}': 'hist' needs 1 to {HIST_BINS} non-negative counts")
        return h


def qualified_name(function: str, name: str) -> str:
    """The statistics key of tensor `name` in `function` when several functions (signatures)
    have a tensor of that name: '@function/name'. Calibration records such tensors under
    this key only, so one signature's ranges never quantize another signature's tensor."""
    return f"@{function}/{name}"


def function_of(v: Any) -> str | None:
    """The name of the func.func a value (SSA value) belongs to."""
    from xdsl.dialects import func
    from xdsl.ir import Block

    owner = v.owner
    op = owner.parent_op() if isinstance(owner, Block) else owner
    while op is not None and not isinstance(op, func.FuncOp):
        op = op.parent_op()
    return op.sym_name.data if op is not None else None


def lookup(stats: Mapping[str, Range], v: Any, name: str) -> Range | None:
    """The range of value `v` (TFLite tensor `name`): its function-qualified entry, else
    the plain one."""
    fn = function_of(v)
    if fn is not None and (r := stats.get(qualified_name(fn, name))) is not None:
        return r
    return stats.get(name)


def as_stats(data: Mapping[str, Any]) -> Stats:
    """Normalize an in-memory mapping (name -> Range | (min, max) | {"min","max"[,"axis"]})."""
    return {str(k): _range(str(k), v, "stats") for k, v in data.items()}


def _range(name: str, v: Any, where: str) -> Range:
    if isinstance(v, Range):
        r = v
    elif isinstance(v, Mapping):
        if "min" not in v or "max" not in v:
            raise TflquantError(f"{where}: tensor '{name}' needs both 'min' and 'max'")
        axis = int(v.get("axis", -1))
        lo, hi = v["min"], v["max"]
        if axis >= 0:
            if not isinstance(lo, list) or not isinstance(hi, list) or len(lo) != len(hi) or not lo:
                raise TflquantError(f"{where}: tensor '{name}' has axis {axis}, so 'min' and 'max' must be lists of equal length")
            r = Range(tuple(map(float, lo)), tuple(map(float, hi)), axis)
        else:
            r = Range.of(_num(lo, name, where), _num(hi, name, where))
        if "mean" in v:
            m = v["mean"]
            if not isinstance(m, list) or not m:
                raise TflquantError(f"{where}: tensor '{name}': 'mean' must be a non-empty list of numbers (one per channel)")
            mean = tuple(_num(x, name, where) for x in m)
            if not all(math.isfinite(x) for x in mean):
                raise TflquantError(f"{where}: tensor '{name}' has a non-finite mean")
            mean_sq = None
            if "mean_sq" in v:
                q = v["mean_sq"]
                if not isinstance(q, list) or len(q) != len(mean):
                    raise TflquantError(f"{where}: tensor '{name}': 'mean_sq' must be a list as long as 'mean'")
                mean_sq = tuple(_num(x, name, where) for x in q)
                if not all(math.isfinite(x) and x >= 0 for x in mean_sq):
                    raise TflquantError(f"{where}: tensor '{name}' has a negative or non-finite mean_sq")
            r = Range(r.mins, r.maxs, r.axis, mean, mean_sq)
        if axis < 0 and "hist" in v:
            r = replace(r, hist=Histogram.from_json(v["hist"], name, where))
        if axis < 0 and "samples" in v:
            smp = v["samples"]
            if not isinstance(smp, Mapping) or "min" not in smp or "max" not in smp:
                raise TflquantError(f"{where}: tensor '{name}': 'samples' needs 'min' and 'max'")
            smin, smax = _unb64(smp["min"], name, where), _unb64(smp["max"], name, where)
            if len(smin) != len(smax):
                raise TflquantError(f"{where}: tensor '{name}': 'samples' has {len(smin)} minima and {len(smax)} maxima")
            r = replace(r, sample_min=smin, sample_max=smax)
    elif isinstance(v, (list, tuple)) and len(v) == 2:
        r = Range.of(_num(v[0], name, where), _num(v[1], name, where))
    else:
        raise TflquantError(f"{where}: tensor '{name}': expected {{\"min\": .., \"max\": ..}} or [min, max], got {v!r}")
    for lo, hi in zip(r.mins, r.maxs):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise TflquantError(f"{where}: tensor '{name}' has a non-finite range [{lo}, {hi}]")
        if lo > hi:
            raise TflquantError(f"{where}: tensor '{name}' has min {lo} greater than max {hi}")
    h = r.hist
    if h is not None and not isinstance(v, Range):
        # its bins lie within its range's (calibration builds it on the range's grid);
        # merges and methods read it on that grid
        first, last = math.floor(math.ldexp(r.mins[0], -h.exp)), math.floor(math.ldexp(r.maxs[0], -h.exp))
        if h.start < first or h.start + len(h.counts) - 1 > last:
            raise TflquantError(
                f"{where}: tensor '{name}': 'hist' covers [{math.ldexp(h.start, h.exp)}, {math.ldexp(h.start + len(h.counts), h.exp)}), "
                f"outside its range [{r.mins[0]}, {r.maxs[0]}]: the file was edited or is corrupt; recalibrate with --save-stats"
            )
    return r


def _num(x: Any, name: str, where: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TflquantError(f"{where}: tensor '{name}': {x!r} is not a number") from None


def stats_to_json(stats: Mapping[str, Range], method: Mapping[str, Any] | None = None) -> str:
    """The stats file text; version 2 when any range carries histograms or samples.
    `method`: the calibration method the run used (informative: {"method": .., ...})."""
    version = 2 if any(r.extended for r in stats.values()) else 1
    body: dict[str, Any] = {"format": FORMAT, "version": version}
    if method is not None:
        body["calibration_method"] = dict(method)
    body["tensors"] = {k: stats[k].to_json() for k in sorted(stats)}
    return json.dumps(body, indent=1) + "\n"


def merge_stats(*parts: Mapping[str, Range]) -> Stats:
    """Statistics of separate calibration runs (processes, workers, files) as one run over
    their samples in the order given: see `Range.merge`. A tensor only some parts saw keeps
    what those parts saw."""
    out: Stats = {}
    for part in parts:
        for k, r in part.items():
            out[k] = out[k].merge(r) if k in out else r
    return out


def write_stats(path: str | os.PathLike[str], stats: Mapping[str, Range], method: Mapping[str, Any] | None = None) -> None:
    from tflquant.fileio import atomic_write

    atomic_write(path, stats_to_json(stats, method))


def read_stats(path: str | os.PathLike[str]) -> Stats:
    from tflquant.fileio import read_bytes

    where = os.fspath(path)
    text = read_bytes(path, "calibration stats file")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TflquantError(f"{where}: not a JSON calibration stats file: {e}") from None
    if not isinstance(data, dict):
        raise TflquantError(f"{where}: expected a JSON object keyed by tensor name")
    if "tensors" in data and isinstance(data["tensors"], dict):
        if data.get("format", FORMAT) != FORMAT:
            raise TflquantError(f"{where}: unknown stats format {data.get('format')!r}")
        if not isinstance(data.get("version", 1), int) or data.get("version", 1) > 2:
            raise TflquantError(f"{where}: stats format version {data.get('version')!r} is newer than this tflquant reads (1 or 2)")
        data = data["tensors"]
    return {str(k): _range(str(k), v, where) for k, v in data.items()}


# ---------------------------------------------------------------------------------------
# Calibration methods: the range each method picks from the statistics
# ---------------------------------------------------------------------------------------

METHODS = ("minmax", "moving-average", "percentile", "mse", "entropy")
DEFAULT_PERCENTILE = 99.99
EMA_FACTOR = 0.95  # moving-average: m <- 0.95 m + 0.05 x per sample (AEQ's calibrator)


def check_method(method: str, percentile: float = DEFAULT_PERCENTILE, bits: int = 8, auto: bool = False) -> None:
    """One clear error for a method, percentile or bit width the methods do not take.
    `auto`: the driver's "auto" (tflquant.calibration.auto) is a choice too."""
    choices = METHODS + ("auto",) if auto else METHODS
    if method not in choices:
        raise TflquantError(f"unknown calibration method {method!r}: choose one of {', '.join(choices)}")
    try:
        p = float(percentile)
    except (TypeError, ValueError):
        raise TflquantError(f"percentile must be a number in (50, 100], got {percentile!r}") from None
    if not (50.0 < p <= 100.0):
        raise TflquantError(f"percentile must be in (50, 100] (the share of values kept inside each tail's cut), got {percentile!r}")
    if bits not in (8, 16):
        raise TflquantError(f"calibration method bit width must be 8 (int8) or 16 (int16x8), got {bits!r}")


def select(stats: Mapping[str, Range], method: str, percentile: float = DEFAULT_PERCENTILE, bits: int = 8) -> Stats:
    """The statistics with each per-tensor range replaced by the range `method` picks
    (recorded in `chosen`); minmax returns them unchanged. A tensor without what the method
    needs (no histogram: an empty tensor, every value NaN) keeps its min/max. Raises when no
    tensor has it (statistics from a file written before methods existed)."""
    check_method(method, percentile, bits)
    if method == "minmax":
        return dict(stats)
    need = "sample_min" if method == "moving-average" else "hist"
    if stats and not any(getattr(r, need) is not None for r in stats.values()):
        what = "per-sample minima and maxima" if method == "moving-average" else "histograms"
        raise TflquantError(
            f"calibration method {method} needs {what}, which these statistics do not have "
            "(a stats file written by an older tflquant?): recalibrate with --save-stats"
        )
    out: Stats = {}
    for k, r in stats.items():
        lo_hi = method_range(r, method, float(percentile), bits)
        out[k] = r if lo_hi is None else replace(r, mins=(lo_hi[0],), maxs=(lo_hi[1],), chosen=(method, lo_hi[0], lo_hi[1]))
    return out


def method_range(r: Range, method: str, percentile: float = DEFAULT_PERCENTILE, bits: int = 8) -> tuple[float, float] | None:
    """The (lo, hi) `method` picks for one per-tensor range, always containing 0 and inside
    the observed [min, max] widened to 0; None when the range lacks what the method needs."""
    if r.axis >= 0:
        return None
    mn, mx = r.mins[0], r.maxs[0]
    if method == "moving-average":
        if r.sample_min is None or r.sample_max is None:
            return None
        lo, hi = _ema(r.sample_min), _ema(r.sample_max)
        if lo is None or hi is None:
            return None
    else:
        h = r.hist
        if h is None or h.total == 0:
            return None
        if method == "percentile":
            lo, hi = _percentile_range(h, mn, mx, percentile)
        elif method == "mse":
            lo, hi = _mse_range(h, mn, mx, bits)
        elif method == "entropy":
            lo, hi = _entropy_range(h, mn, mx, bits)
        else:
            return None
    lo, hi = max(float(lo), mn), min(float(hi), mx)
    return min(lo, 0.0), max(hi, 0.0)


def _ema(x: np.ndarray) -> float | None:
    """AEQ's moving average: the first sample's value, then m = 0.95 m + 0.05 x for each
    later sample in order (samples without a finite value, NaN here, are skipped)."""
    m = None
    for v in x.tolist():
        if v != v:
            continue
        m = v if m is None else EMA_FACTOR * m + (1.0 - EMA_FACTOR) * v
    return m


def _edges(h: Histogram) -> np.ndarray:
    return (np.arange(h.start, h.start + len(h.counts) + 1, dtype=np.float64)) * h.width


def _percentile_range(h: Histogram, mn: float, mx: float, p: float) -> tuple[float, float]:
    """The (100 - p)-th and p-th percentiles, interpolated linearly inside a bin."""
    c = h.counts.astype(np.float64)
    cum = np.concatenate([[0.0], np.cumsum(c)])
    total = cum[-1]
    tail = total * (100.0 - p) / 100.0
    edges = _edges(h)

    def at(mass: float) -> float:
        i = int(np.searchsorted(cum, mass, side="left"))  # cum[i-1] < mass <= cum[i]
        i = min(max(i, 1), len(c))
        f = (mass - cum[i - 1]) / c[i - 1] if c[i - 1] > 0 else 0.0
        return float(edges[i - 1] + f * (edges[i] - edges[i - 1]))

    lo = mn if tail <= 0 else at(tail)
    hi = mx if tail <= 0 else at(total - tail)
    return lo, hi


def _centers(h: Histogram, mn: float, mx: float) -> np.ndarray:
    e = _edges(h)
    return np.clip((e[:-1] + e[1:]) / 2, mn, mx)


def _candidates(values: np.ndarray, n: int = 160) -> np.ndarray:
    """At most about n evenly spread candidates from sorted `values`, both ends kept."""
    if len(values) <= n:
        return values
    return values[np.unique(np.linspace(0, len(values) - 1, n).round().astype(np.int64))]


def _mse_range(h: Histogram, mn: float, mx: float, bits: int) -> tuple[float, float]:
    """The clipping range with the least expected quantization MSE: values inside [lo, hi]
    cost step**2 / 12 (uniform rounding error; step = (hi - lo) / 255 for int8 asymmetric,
    hi / 32767 symmetric for int16), values outside their distance to the range squared.
    Candidates are the histogram's bin edges (and the true min / max), lo <= 0 <= hi."""
    x = _centers(h, mn, mx)
    n = h.counts.astype(np.float64)
    e = _edges(h)
    if bits == 16:  # symmetric: one amax, |x| against it
        a = np.abs(x)
        order = np.argsort(a, kind="stable")
        a, n = a[order], n[order]
        top = max(abs(mn), abs(mx))
        amax = _candidates(np.unique(np.concatenate([np.abs(e[(e != 0)]), [top]])))
        amax = amax[(amax > 0) & (amax <= top)]
        if not len(amax):
            return mn, mx
        s = amax / 32767.0
        # values above amax: sum n (a - amax)^2 = S2 - 2 amax S1 + amax^2 S0 over a > amax
        S0, S1, S2 = (np.concatenate([np.cumsum((n * a**k)[::-1])[::-1], [0.0]]) for k in (0, 1, 2))
        j = np.searchsorted(a, amax, side="right")
        err = (n.sum() - S0[j]) * s**2 / 12 + S2[j] - 2 * amax * S1[j] + amax**2 * S0[j]
        best = float(amax[int(np.argmin(err))])
        return -best, best
    # int8 asymmetric: lo among edges in [mn, 0], hi among edges in [0, mx]
    his = _candidates(np.unique(np.concatenate([e[(e > 0) & (e < mx)], [max(mx, 0.0)]])))
    los = _candidates(np.unique(np.concatenate([e[(e < 0) & (e > mn)], [min(mn, 0.0)]])))
    P0, P1, P2 = (np.concatenate([[0.0], np.cumsum(n * x**k)]) for k in (0, 1, 2))  # prefix sums over sorted centers
    jh = np.searchsorted(x, his, side="right")  # bins with center <= hi are inside
    jl = np.searchsorted(x, los, side="left")  # bins with center < lo are below
    above = (P2[-1] - P2[jh]) - 2 * his * (P1[-1] - P1[jh]) + his**2 * (P0[-1] - P0[jh])
    below = P2[jl] - 2 * los * P1[jl] + los**2 * P0[jl]
    inside = P0[jh][None, :] - P0[jl][:, None]
    step = (his[None, :] - los[:, None]) / 255.0
    err = inside * step**2 / 12 + above[None, :] + below[:, None]
    i, k = np.unravel_index(int(np.argmin(err)), err.shape)
    return float(los[i]), float(his[k])


def _entropy_range(h: Histogram, mn: float, mx: float, bits: int) -> tuple[float, float]:
    """TensorRT's entropy calibration on the histogram of |x|: for each threshold bin i
    (from `target` bins on), P = the first i bins with the values beyond added to the last,
    Q = the first i bins merged into `target` bins (2**(bits-1): 128 for int8) and spread
    back evenly over the bins that held values; the threshold with the least KL(P || Q)
    wins (the bin holding 0 is left out, as pytorch-quantization's skip_zeros does). The
    range is [-T, T] cut to the observed [min, max]. With more target bins than
    the histogram has (int16), nothing is clipped."""
    target = 1 << (bits - 1)
    # |x| on the same grid: bin k >= 0 holds [k w, (k+1) w); bin k < 0 holds (-(k+1) w ... ] -> |x| bin -k-1
    k = np.arange(h.start, h.start + len(h.counts), dtype=np.int64)
    ak = np.where(k >= 0, k, -k - 1)
    hist = np.bincount(ak, weights=h.counts.astype(np.float64))
    # |x| bin 0 holds the zeros (ReLU outputs: often most values), which every range holds
    # exactly; left in, their spike makes any merge of bin 0 costly and the KL clips hard
    hist[0] = 0.0
    nb = len(hist)
    # thresholds from `target` bins past the first that holds values (data away from 0, as
    # a LayerNorm's variance: a threshold below the data would clip it all)
    nonzero = np.flatnonzero(hist)
    if not len(nonzero):
        return mn, mx
    first = int(nonzero[0]) + target
    if nb <= first:
        return mn, mx
    step = max(1, (nb - first) // 256)
    best_i, best_kl = nb, math.inf
    for i in list(range(first, nb, step)) + [nb]:
        src = hist[:i]
        p = src.copy()
        p[-1] += hist[i:].sum()
        starts = (np.arange(target, dtype=np.int64) * i) // target
        nz = src > 0
        sums = np.add.reduceat(src, starts)
        cnt = np.add.reduceat(nz.astype(np.float64), starts)
        per = np.divide(sums, cnt, out=np.zeros_like(sums), where=cnt > 0)
        q = np.where(nz, np.repeat(per, np.diff(np.append(starts, i))), 0.0)
        p /= p.sum()
        qs = q.sum()
        if qs <= 0:
            continue
        q /= qs
        m = p > 0
        qq = np.maximum(q[m], 1e-12)
        kl = float(np.sum(p[m] * np.log(p[m] / qq)))
        if kl < best_kl:
            best_i, best_kl = i, kl
    t = best_i * h.width
    return -t, t


def with_chosen(stats: Mapping[str, Range], method: str, percentile: float = DEFAULT_PERCENTILE, bits: int = 8) -> Stats:
    """The statistics as observed (what a stats file keeps, so any method can replay) with
    the range `method` picks recorded in each `chosen` (written to the file as "chosen")."""
    picked = select(stats, method, percentile, bits)
    out: Stats = {}
    for k, r in stats.items():
        chosen = picked[k].chosen  # None: minmax, or the tensor lacked what the method needs
        if chosen is None and r.axis < 0:
            chosen = ("minmax", r.mins[0], r.maxs[0])
        out[k] = replace(r, chosen=chosen)
    return out
