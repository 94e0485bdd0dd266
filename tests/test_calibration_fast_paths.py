"""The calibration fast paths (issue 13's time budget) give what the plain definitions give:
count_bins (reused buffers) against np.bincount of bin_index, Histogram.rebin against
counting the fine bins' indices shifted, and arrays fed a batch at a time (ArraySamples)
against stacking their fitted samples one by one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tflquant.calibration.dataset import InputSpec, batches, fit_sample, samples_from_arrays
from tflquant.calibration.stats import Histogram, _fit_exponent, bin_index, count_bins
from tflquant.errors import TflquantError


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_bins_is_bincount_of_bin_index(dtype: type) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((9, 301)) * 3).astype(dtype)
    x[0, :4] = [0.0, -0.0, np.float32(1e-42), -np.float32(1e-42)]  # zeros and subnormals
    for sub in (x, x[:, ::7], x[2:3]):  # contiguous, a strided subsample, one row
        lo, hi = float(sub.min()), float(sub.max())
        for e in (_fit_exponent(lo, hi), _fit_exponent(lo, hi) + 3):
            start = math.floor(math.ldexp(lo, -e))
            n = math.floor(math.ldexp(hi, -e)) - start + 1
            want = np.bincount(bin_index(sub, e, start).reshape(-1), minlength=n)
            got = count_bins(sub, e, start, n)
            assert got.dtype == np.int64 and np.array_equal(got, want)
            assert got.sum() == sub.size
    big = count_bins(np.zeros(3 << 18, np.float32), 0, 0, 4)  # more than the buffers hold
    assert big.tolist() == [3 << 18, 0, 0, 0]


def test_fit_exponent_is_the_smallest_exponent_that_fits() -> None:
    """_fit_exponent starts its search near the answer (a fast path): it must still be the
    smallest e >= the float32-resolution floor whose grid spans [lo, hi] in HIST_BINS bins."""
    from tflquant.calibration.stats import _EXP_MIN, _PRECISION, HIST_BINS

    def bins(lo: float, hi: float, e: int) -> int:
        return math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) + 1

    rng = np.random.default_rng(11)
    ranges = [(0.0, 0.0), (-1.0, 1.0), (0.0, 2047.0), (0.0, 2048.0), (-1024.0, 1023.999), (float(np.float32(1e-42)), 1.0)]
    for _ in range(3000):
        a, b = (float(np.float32(v)) for v in rng.standard_normal(2) * 10.0 ** rng.uniform(-40, 37, 2))
        c = float(np.float32(a + abs(a) * 10.0 ** rng.uniform(-7, 0)))  # a narrow range too
        ranges += [(min(a, b), max(a, b)), (min(a, c), max(a, c))]
    for lo, hi in ranges:
        top = max(abs(lo), abs(hi))
        floor_e = max(_EXP_MIN, math.frexp(top)[1] - 1 - _PRECISION) if top > 0 else _EXP_MIN
        e = _fit_exponent(lo, hi)
        assert e >= floor_e and bins(lo, hi, e) <= HIST_BINS, (lo, hi, e)
        assert e == floor_e or bins(lo, hi, e - 1) > HIST_BINS, (lo, hi, e)  # none smaller fits


def test_rebin_sums_runs_of_fine_bins() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        size, start, e, d = int(rng.integers(1, 40)), int(rng.integers(-90, 90)), int(rng.integers(-4, 4)), int(rng.integers(0, 5))
        h = Histogram(e, start, rng.integers(0, 1 << 40, size).astype(np.int64))  # totals beyond float64's exact integers
        first, last = start >> d, (start + size - 1) >> d
        lo = first - int(rng.integers(0, 3))
        n = last - lo + 1 + int(rng.integers(0, 3))
        want = np.zeros(n, np.int64)
        np.add.at(want, (np.arange(start, start + size) >> d) - lo, h.counts)
        assert np.array_equal(h.rebin(e + d, lo, n), want)


def _stacked(arrays: dict[str, np.ndarray], specs: list[InputSpec], size: int) -> list[list[np.ndarray]]:
    n = len(next(iter(arrays.values())))
    cols = list(arrays.values())
    rows = [[fit_sample(a[i], s, "x", check_finite=False) for a, s in zip(cols, specs)] for i in range(n)]
    return [[np.stack([r[k] for r in rows[i : i + size]]) for k in range(len(specs))] for i in range(0, n, size)]


def test_array_batches_equal_stacked_fitted_samples() -> None:
    rng = np.random.default_rng(7)
    specs = [
        InputSpec("img", (1, 4, 4, 2), np.dtype(np.float32)),  # samples given without the batch dim of 1
        InputSpec("tok", (1, -1), np.dtype(np.int32)),  # a dynamic dimension
        InputSpec("f16", (3,), np.dtype(np.float16)),  # converted
    ]
    arrays = {
        "img": rng.standard_normal((11, 4, 4, 2)).astype(np.float32),
        "tok": rng.integers(0, 50, (11, 5)).astype(np.int64),
        "f16": rng.standard_normal((11, 3)),
    }
    for size in (1, 4, 11, 32):
        n, samples = samples_from_arrays(arrays, specs, "x")
        got = list(batches(samples, size))
        want = _stacked(arrays, specs, size)
        assert n == 11 and len(got) == len(want)
        for g, w in zip(got, want):
            for a, b in zip(g, w):
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) and a.flags.c_contiguous
    # iterating sample by sample, then batching the rest, then taking at most k
    _, samples = samples_from_arrays(arrays, specs, "x")
    first = next(samples)
    assert first[0].shape == (1, 4, 4, 2) and first[1].dtype == np.int32
    rest = list(batches(samples.take(6), 4))
    assert [len(b[0]) for b in rest] == [4, 2]
    assert np.array_equal(rest[0][0][0], arrays["img"][1][None])


def test_array_batches_check_integer_ranges() -> None:
    specs = [InputSpec("tok", (2,), np.dtype(np.int8))]
    _, samples = samples_from_arrays({"tok": np.array([[1, 2], [3, 4], [5, 300]])}, specs, "data.npz")
    with pytest.raises(TflquantError, match=r"data.npz, samples 0-2: input 'tok' is int8.*outside \[-128, 127\]"):
        list(batches(samples, 8))


def test_array_batches_that_view_the_callers_arrays_are_read_only() -> None:
    """A batch that is a view of the caller's array (shape and dtype already fit) is
    read-only, so nothing downstream can write the user's data; the caller's array stays
    writeable and unchanged; a converted batch (its own copy) is left as it is."""
    specs = [InputSpec("img", (2, 3), np.dtype(np.float32)), InputSpec("tok", (2,), np.dtype(np.int32))]
    img = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    tok = np.arange(8, dtype=np.int64).reshape(4, 2)
    _, samples = samples_from_arrays({"img": img, "tok": tok}, specs, "x")
    got = list(batches(samples, 2))
    assert len(got) == 2
    for k, (b_img, b_tok) in enumerate(got):
        assert np.shares_memory(b_img, img) and not b_img.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            b_img[...] = 0
        assert not np.shares_memory(b_tok, tok) and b_tok.flags.writeable
        assert np.array_equal(b_img, img[2 * k : 2 * k + 2])
    assert img.flags.writeable and tok.flags.writeable
    img[0, 0, 0] = -1.0  # the caller's array stays writeable


def test_observe_equals_reduce_then_merge_and_stats_are_snapshots() -> None:
    """observe() (written straight into the running statistics for float32 arrays) gives what
    reduce + merge gives (counted at end_batch), batch after batch: a range that grows, one
    that fits the running grid, NaN and float64 (the general path); and the histograms
    stats() handed out earlier never change as counting goes on."""
    from tflquant.calibration.observers import MinMaxObserver

    rng = np.random.default_rng(5)
    xs = [(rng.standard_normal((5, 3, 700)) * s).astype(np.float32) for s in (1.0, 0.5, 4.0, 0.25)]
    nan = xs[0].copy()
    nan[1, 0, 3] = np.nan
    xs += [nan, rng.standard_normal((4, 3, 700)), (rng.standard_normal((3, 1, 40)) * 9).astype(np.float32)]
    direct, split = MinMaxObserver(histograms=True), MinMaxObserver(histograms=True)
    handed_out = []
    for x in xs:
        direct.observe("t", x)
        split.merge("t", split.reduce("t", x))
        direct.end_batch(len(x))
        split.end_batch(len(x))
        h = direct.stats()["t"].hist
        handed_out.append((h, h.counts.copy()))
    a, b = direct.stats()["t"], split.stats()["t"]
    assert (a.mins, a.maxs) == (b.mins, b.maxs)
    assert (a.hist.exp, a.hist.start) == (b.hist.exp, b.hist.start) and np.array_equal(a.hist.counts, b.hist.counts)
    assert np.array_equal(a.sample_min, b.sample_min, equal_nan=True) and np.array_equal(a.sample_max, b.sample_max, equal_nan=True)
    assert direct.warnings() == split.warnings() and direct.warnings()
    for h, counts in handed_out:
        assert np.array_equal(h.counts, counts)
