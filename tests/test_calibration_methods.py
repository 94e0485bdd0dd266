"""Calibration methods (issue 13): histograms and per-sample ranges that merge exactly, the
range each method picks on data with known answers, the option checks, and replay from a
saved stats file with another method."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tflquant.calibration.driver import calibrate
from tflquant.calibration.observers import MinMaxObserver
from tflquant.calibration.stats import (
    Histogram,
    Range,
    check_method,
    merge_stats,
    method_range,
    read_stats,
    select,
    stats_to_json,
    write_stats,
)
from tflquant.errors import TflquantError
from tflquant.ir import make_context, parse_module, print_module
from tflquant.pipeline import pipeline_spec, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits_cnn.tflite"
DIGITS_CALIB = ROOT / "examples" / "digits_cnn_calib.npz"


def _observe(batches: list[np.ndarray], name: str = "t") -> Range:
    obs = MinMaxObserver(histograms=True)
    for b in batches:
        obs.observe(name, b)
        obs.end_batch(len(b))
    return obs.stats()[name]


def _same(a: Range, b: Range) -> None:
    assert a == b
    assert a.hist is not None and b.hist is not None
    assert (a.hist.exp, a.hist.start) == (b.hist.exp, b.hist.start)
    assert np.array_equal(a.hist.counts, b.hist.counts)
    assert np.array_equal(a.sample_min, b.sample_min) and np.array_equal(a.sample_max, b.sample_max)


# ---------------------------------------------------------------------------------------
# exact merges
# ---------------------------------------------------------------------------------------


def test_histogram_of_split_data_is_the_histogram_of_the_whole() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 8, 8)), rng.standard_cauchy((24, 8, 8))]).astype(np.float32)
    whole = _observe([x])
    assert whole.hist is not None and whole.hist.total == x.size and len(whole.hist.counts) <= 2048
    # any batch size: the grid is a function of the global range only
    for size in (1, 5, 17, 63):
        _same(whole, _observe([x[i : i + size] for i in range(0, len(x), size)]))
    # two halves calibrated separately, merged; the histogram is the same in either order
    a, b = _observe([x[:10]]), _observe([x[10:]])
    _same(whole, a.merge(b))
    _same(whole, merge_stats({"t": a}, {"t": b})["t"])
    ba = b.merge(a)
    assert ba == whole and np.array_equal(ba.hist.counts, whole.hist.counts) and ba.hist.start == whole.hist.start
    # the per-sample sequence is in the order the parts are merged
    assert np.array_equal(ba.sample_min, np.concatenate([b.sample_min, a.sample_min]))
    # three parts in both groupings
    p = [_observe([x[:7]]), _observe([x[7:30]]), _observe([x[30:]])]
    _same(whole, p[0].merge(p[1]).merge(p[2]))
    _same(whole, p[0].merge(p[1].merge(p[2])))


def test_subsampled_histograms_still_merge_exactly() -> None:
    """Samples of more than HIST_VALUES values are subsampled with a stride fixed by the
    tensor's shape: the same in any split."""
    from tflquant.calibration.observers import HIST_VALUES, _stride

    x = np.random.default_rng(6).gamma(2.0, 1.0, (20, 40, 70)).astype(np.float32)
    p = _stride(x.shape)
    assert p > 1 and 40 % p and 70 % p and 40 * 70 // p <= HIST_VALUES + 1
    whole = _observe([x])
    assert whole.hist.total == 20 * len(range(0, 2800, p))
    _same(whole, _observe([x[i : i + 3] for i in range(0, 20, 3)]))
    _same(whole, _observe([x[:9]]).merge(_observe([x[9:]])))
    # a value broadcast over the samples (stride 0) counts once per sample
    b = np.broadcast_to(np.float32([[1.5, -2.0]]), (6, 2))
    assert _observe([b]).hist.total == 12 and _observe([b]).merge(_observe([b[:2]])).hist.total == 16


def test_histogram_counts_each_value_in_its_bin() -> None:
    x = np.array([-3.0, -0.25, 0.0, 0.1, 0.1, 7.5], np.float32)
    h = Histogram.of(x, -3.0, 7.5)
    assert h.total == 6 and len(h.counts) <= 2048
    k = np.floor(x.astype(np.float64) / h.width).astype(np.int64) - h.start
    assert np.array_equal(np.bincount(k, minlength=len(h.counts)), h.counts)
    # coarsening by one power of two is exact
    c = h.merge(Histogram.of(np.array([100.0], np.float32), 100.0, 100.0), -3.0, 100.0)
    k2 = np.floor(np.append(x, 100.0).astype(np.float64) / c.width).astype(np.int64) - c.start
    assert np.array_equal(np.bincount(k2, minlength=len(c.counts)), c.counts)


def test_rebin_keeps_the_counts_inside_the_window() -> None:
    """Coarse bins start .. start + n - 1 hold the fine counts that fall in them: a
    histogram wholly below or above the window (or partly in it) gives zeros outside, not
    an error."""
    h = Histogram(0, 20, np.arange(1, 11, dtype=np.int64))  # bins 20 .. 29
    for exp in range(3):
        coarse = np.arange(20, 30) >> exp
        for start in range(-10, 60):
            for n in (1, 3, 15, 40):
                want = np.array([h.counts[coarse == b].sum() for b in range(start, start + n)], np.int64)
                assert np.array_equal(h.rebin(exp, start, n), want), (exp, start, n)


@pytest.mark.parametrize("hist", [{"exp": 0, "start": 20, "counts": [1, 2]}, {"exp": 0, "start": -3, "counts": [1, 2]}, {"exp": 0, "start": 4, "counts": [1, 2, 3]}])
def test_stats_file_with_a_histogram_outside_its_range_is_rejected(tmp_path: Path, hist) -> None:
    """A histogram whose bins lie outside its tensor's min/max (an edited file) is one clear
    error naming the tensor and the file, not a failure when the statistics merge."""
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"format": "tflquant-calibration-stats", "version": 2, "tensors": {"act": {"min": 0.0, "max": 5.5, "hist": hist}}}))
    with pytest.raises(TflquantError, match=r"s\.json: tensor 'act': 'hist' covers .* outside its range"):
        read_stats(p)
    hist_ok = {"exp": 0, "start": 0, "counts": [1, 0, 0, 0, 0, 1]}
    p.write_text(json.dumps({"format": "tflquant-calibration-stats", "version": 2, "tensors": {"act": {"min": 0.0, "max": 5.5, "hist": hist_ok}}}))
    r = read_stats(p)["act"]
    assert merge_stats({"act": r}, {"act": r})["act"].hist.total == 4

def test_model_statistics_merge_exactly_threads_and_sequential() -> None:
    from tflquant.calibration.dataset import load_npz
    from tflquant.tflite.reader import load_model

    data = load_npz(DIGITS_CALIB)
    n = len(next(iter(data.values())))
    half = (n // 2) // 8 * 8
    first = {k: v[:half] for k, v in data.items()}
    second = {k: v[half:] for k, v in data.items()}
    whole = calibrate(load_model(DIGITS), data, batch_size=8, histograms=True).stats

    def run(d: dict[str, np.ndarray]) -> dict[str, Range]:
        return calibrate(load_model(DIGITS), d, batch_size=8, histograms=True).stats

    with ThreadPoolExecutor(2) as ex:
        parts = list(ex.map(run, [first, second]))
    merged = merge_stats(*parts)
    assert merged.keys() == whole.keys()
    for k in whole:
        _same(whole[k], merged[k])
    # histograms off: the same min/max (the default statistics do not change)
    plain = calibrate(load_model(DIGITS), data, batch_size=8).stats
    assert plain == whole and all(r.hist is None for r in plain.values())


def test_per_sample_ranges_do_not_depend_on_how_a_batch_was_split() -> None:
    """The interpreter may observe a batch as several sample ranges, and a loop's tensor once
    per step: end_batch turns them into one min/max per sample."""
    rng = np.random.default_rng(1)
    steps = [rng.normal(0, 1, (6, 4)).astype(np.float32) for _ in range(3)]  # 3 loop steps, 6 samples
    want_min = np.min([s.min(axis=1) for s in steps], axis=0)
    one = MinMaxObserver(histograms=True)
    for s in steps:
        one.observe("t", s)
    one.end_batch(6)
    ranges = MinMaxObserver(histograms=True)  # two sample ranges of 3, each running the 3 steps
    for lo, hi in ((0, 3), (3, 6)):
        for s in steps:
            ranges.observe("t", s[lo:hi])
    ranges.end_batch(6)
    for o in (one, ranges):
        assert np.array_equal(o.stats()["t"].sample_min, want_min)


# ---------------------------------------------------------------------------------------
# the ranges the methods pick
# ---------------------------------------------------------------------------------------


def _range(x: np.ndarray) -> Range:
    return _observe([x.astype(np.float32).reshape(len(x), -1)])


def test_percentile_of_a_known_distribution_within_a_bin() -> None:
    x = np.linspace(-2.0, 6.0, 80001)[:, None]  # uniform on [-2, 6]
    r = _range(x)
    lo, hi = method_range(r, "percentile", 99.0)
    w = r.hist.width
    assert abs(lo - (-2.0 + 0.08)) <= w and abs(hi - (6.0 - 0.08)) <= w
    assert method_range(r, "percentile", 100.0) == (-2.0, 6.0)
    # one-sided data keeps 0 in the range
    lo, hi = method_range(_range(np.linspace(1.0, 5.0, 4001)[:, None]), "percentile", 99.0)
    assert lo == 0.0 and abs(hi - 4.96) <= 0.01


def test_mse_clips_a_heavy_tail_and_keeps_a_uniform_range() -> None:
    rng = np.random.default_rng(2)
    heavy = _range(rng.laplace(0, 1, 200000)[:, None])  # min/max about -11 / 12
    lo, hi = method_range(heavy, "mse", bits=8)
    assert 6 < hi < 0.9 * heavy.maxs[0] and 0.9 * heavy.mins[0] < lo < -6
    u = _range(rng.uniform(-1, 3, 200000)[:, None])
    lo, hi = method_range(u, "mse", bits=8)
    span = u.maxs[0] - u.mins[0]
    assert lo <= u.mins[0] + 0.01 * span and hi >= u.maxs[0] - 0.01 * span
    # int16 (symmetric, 65535 levels): rounding costs far less, so it clips less
    lo16, hi16 = method_range(heavy, "mse", bits=16)
    assert hi16 > hi and lo16 < lo


def test_entropy_and_moving_average_are_sane() -> None:
    rng = np.random.default_rng(3)
    heavy = np.concatenate([np.abs(rng.normal(0, 1, 100000)), [50.0]])[:, None]
    lo, hi = method_range(_range(heavy), "entropy")
    assert lo == 0.0 and 2.0 < hi < 50.0
    g = _range(rng.normal(0, 1, 100000)[:, None])
    lo, hi = method_range(g, "entropy")
    assert g.mins[0] <= lo < -1.5 and 1.5 < hi <= g.maxs[0]
    # moving average: first sample, then m = 0.95 m + 0.05 x per sample, in order
    x = np.array([[1.0, -1.0], [3.0, -2.0], [2.0, 0.5]], np.float32)
    r = _range(x)
    hi = 0.95 * (0.95 * 1.0 + 0.05 * 3.0) + 0.05 * 2.0
    lo = 0.95 * (0.95 * -1.0 + 0.05 * -2.0) + 0.05 * 0.5
    assert method_range(r, "moving-average") == pytest.approx((lo, hi), abs=1e-12)


def test_every_method_picks_a_range_containing_zero_inside_the_data() -> None:
    rng = np.random.default_rng(4)
    for x in (rng.normal(2, 1, 5000), rng.uniform(-5, -1, 5000), rng.standard_cauchy(5000)):
        r = _range(x[:, None])
        for m in ("moving-average", "percentile", "mse", "entropy"):
            for bits in (8, 16):
                lo, hi = method_range(r, m, 99.9, bits)
                assert min(r.mins[0], 0) <= lo <= 0 <= hi <= max(r.maxs[0], 0), (m, bits)


@pytest.mark.parametrize(
    "method, percentile, message",
    [
        ("kl", 99.99, "unknown calibration method 'kl': choose one of minmax, moving-average, percentile, mse, entropy"),
        ("percentile", 50, r"percentile must be in \(50, 100\]"),
        ("percentile", 100.5, r"percentile must be in \(50, 100\]"),
        ("percentile", "high", r"percentile must be a number in \(50, 100\]"),
    ],
)
def test_bad_method_or_percentile_is_one_clear_error(method: str, percentile: object, message: str) -> None:
    with pytest.raises(TflquantError, match=message):
        check_method(method, percentile)  # type: ignore[arg-type]
    with pytest.raises(TflquantError, match=message):
        pipeline_spec("int8", calibration_method=method, percentile=percentile)  # type: ignore[arg-type]


def test_pipeline_spec_carries_the_method() -> None:
    assert "annotate-calibration," in pipeline_spec("int8")
    assert "annotate-calibration{method=percentile percentile=99.9}," in pipeline_spec("int8", calibration_method="percentile", percentile=99.9)
    assert "annotate-calibration{method=mse bits=16}," in pipeline_spec("int16x8", calibration_method="mse")
    s = pipeline_spec("int8", stats_file="s.json", calibration_method="entropy")
    assert 'annotate-calibration{stats-file="s.json" method=entropy},' in s


# ---------------------------------------------------------------------------------------
# stats files: the new fields, old files, replay with another method
# ---------------------------------------------------------------------------------------


def test_stats_file_keeps_histograms_and_samples(tmp_path: Path) -> None:
    r = _range(np.random.default_rng(5).normal(0, 1, (50, 30)))
    write_stats(tmp_path / "s.json", {"t": r})
    body = json.loads((tmp_path / "s.json").read_text())
    assert body["version"] == 2 and "hist" in body["tensors"]["t"] and "samples" in body["tensors"]["t"]
    back = read_stats(tmp_path / "s.json")["t"]
    _same(r, back)
    # version-1 files (min/max only) still read, and minmax needs nothing more
    assert json.loads(stats_to_json({"t": Range.of(0, 1)}))["version"] == 1
    (tmp_path / "old.json").write_text('{"format": "tflquant-calibration-stats", "version": 1, "tensors": {"t": {"min": -1, "max": 2}}}')
    old = read_stats(tmp_path / "old.json")
    assert select(old, "minmax") == old
    with pytest.raises(TflquantError, match="needs histograms, which these statistics do not have"):
        select(old, "percentile")


def test_annotate_calibration_picks_the_method_from_a_stats_file(tmp_path: Path) -> None:
    x = np.concatenate([np.linspace(-1.0, 1.0, 20000), [40.0]]).reshape(-1, 1).astype(np.float32)
    write_stats(tmp_path / "s.json", {"x": _range(x)})
    text = """builtin.module {
  func.func @main(%arg0: tensor<1xf32> {tfl.name = "x"}) -> tensor<1xf32> {
    %0 = "tfl.relu"(%arg0) {names = ["y"]} : (tensor<1xf32>) -> tensor<1xf32>
    func.return %0 : tensor<1xf32>
  }
}"""
    got = {}
    for spec in (f'annotate-calibration{{stats-file="{tmp_path / "s.json"}"}}', f'annotate-calibration{{stats-file="{tmp_path / "s.json"}" method=percentile percentile=99.9}}'):
        ctx = make_context()
        m = parse_module(text, ctx=ctx)
        run_pipeline(ctx, m, spec)
        got[spec] = print_module(m)
    a, b = got.values()
    assert "40.0>" in a and "40.0>" not in b


def test_in_memory_statistics_get_the_pass_method() -> None:
    ctx = make_context()
    text = """builtin.module {
  func.func @main(%arg0: tensor<1xf32> {tfl.name = "x"}) -> tensor<1xf32> {
    func.return %arg0 : tensor<1xf32>
  }
}"""
    m = parse_module(text, ctx=ctx)
    r = _range(np.concatenate([np.linspace(0.0, 1.0, 10000), [30.0]])[:, None])
    run_pipeline(ctx, m, "annotate-calibration{method=percentile percentile=99.9}", stats={"x": r})
    import re

    lo, hi = map(float, re.search(r"quant\.stats %\w+, <([-\d.e]+), ([-\d.e]+)>", print_module(m)).groups())
    assert lo == 0.0 and 0.9 < hi < 1.1


# ---------------------------------------------------------------------------------------
# API, CLI, replay
# ---------------------------------------------------------------------------------------


def test_default_minmax_bytes_do_not_change_with_histograms(tmp_path: Path) -> None:
    from tflquant.api import quantize

    plain = quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB))
    # save_stats turns histograms on: the min/max, and so the bytes, stay the same
    saved = quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), calibration_method="minmax", save_stats=str(tmp_path / "s.json"))
    assert saved.model == plain.model and saved.report.pipeline == plain.report.pipeline
    assert "method=" not in plain.report.pipeline
    body = json.loads((tmp_path / "s.json").read_text())
    assert body["calibration_method"] == {"method": "minmax"}
    assert all(t["chosen"]["method"] == "minmax" for t in body["tensors"].values())


@pytest.mark.parametrize("method", ["moving-average", "percentile", "mse", "entropy"])
def test_replay_from_saved_stats_with_another_method_gives_the_same_bytes(method: str, tmp_path: Path) -> None:
    """One calibration (minmax, --save-stats) replayed by tflquant-opt with another method
    is the model quantize(calibration_method=method) writes."""
    import re

    from tflquant import opt
    from tflquant.api import quantize

    stats = tmp_path / "s.json"
    quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), save_stats=str(stats))
    direct = quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), calibration_method=method, percentile=99.9)
    spec = direct.report.pipeline
    assert f"annotate-calibration{{method={method}" in spec
    spec = re.sub(r"annotate-calibration\{", f'annotate-calibration{{stats-file="{stats}" ', spec, count=1)
    out = tmp_path / "replayed.tflite"
    assert opt.main([str(DIGITS), "-p", spec, "-o", str(out)]) == 0
    assert out.read_bytes() == direct.model


def test_cli_options_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tflquant import cli
    from tflquant.api import quantize

    out, stats = tmp_path / "m.tflite", tmp_path / "s.json"
    argv = ["quantize", str(DIGITS), "--calibration", str(DIGITS_CALIB), "-o", str(out), "-q"]
    assert cli.main([*argv, "--calibration-method", "percentile", "--percentile", "99.9", "--save-stats", str(stats)]) == 0
    api = quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), calibration_method="percentile", percentile=99.9)
    assert out.read_bytes() == api.model
    body = json.loads(stats.read_text())
    assert body["calibration_method"] == {"method": "percentile", "percentile": 99.9} and body["version"] == 2
    assert any(t["chosen"]["method"] == "percentile" and t["chosen"]["max"] < t["max"] for t in body["tensors"].values())
    assert cli.main(["quantize", str(DIGITS), "--print-pipeline", "--calibration-method", "mse", "--mode", "int16x8"]) == 0
    assert "annotate-calibration{method=mse bits=16}" in capsys.readouterr().out
    for bad, message in (
        (["--calibration-method", "kl"], "unknown calibration method 'kl'"),
        (["--calibration-method", "percentile", "--percentile", "40"], "percentile must be in (50, 100]"),
    ):
        assert cli.main([*argv, *bad]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(TflquantError, match="calibration_method applies to the int8 and int16x8 modes"):
        quantize(str(DIGITS), mode="dynamic", calibration_method="mse")


def test_parallel_sample_ranges_keep_the_sample_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's parallel sample ranges (threads) give each sample's min/max in
    sample order, as one thread does (equal up to the kernels' float rounding, which
    depends on the matrix sizes BLAS sees), and histograms of as many values."""
    from tflquant.reference import float_kernels as fk
    from tflquant.reference import interpreter as interp_mod
    from tflquant.tflite.reader import load_model

    x = np.load(DIGITS_CALIB)
    data = {k: x[k][:64] for k in x.files}
    old = fk.set_threads(1)
    try:
        serial = calibrate(load_model(DIGITS), data, batch_size=64, histograms=True).stats
        fk.set_threads(2)
        monkeypatch.setattr(interp_mod, "PARALLEL_MIN_ELEMS", 0)
        parallel = calibrate(load_model(DIGITS), data, batch_size=64, histograms=True).stats
    finally:
        fk.set_threads(old)
    assert serial.keys() == parallel.keys()
    for k in serial:
        a, b = serial[k], parallel[k]
        assert len(a.sample_min) == 64 and np.allclose(a.sample_min, b.sample_min, rtol=1e-5, atol=1e-6), k
        assert np.allclose(a.sample_max, b.sample_max, rtol=1e-5, atol=1e-6), k
        assert a.hist.total == b.hist.total, k


def test_degenerate_tensors_have_histograms() -> None:
    """All zeros, one constant, subnormal values, NaN/Inf: a histogram of the finite values
    and a range every method can take."""
    zeros = _observe([np.zeros((3, 4), np.float32)])
    assert zeros.hist.total == 12 and len(zeros.hist.counts) == 1
    tiny = _observe([np.array([[1e-42, 3e-40], [2e-39, 0.0]], np.float32)])
    assert tiny.hist.total == 4
    nan = _observe([np.array([[np.nan, 1.0], [np.inf, -2.0], [np.nan, np.nan]], np.float32)])
    assert nan.hist.total == 2 and (nan.mins[0], nan.maxs[0]) == (-2.0, 1.0) and np.isnan(nan.sample_min[2])
    for r in (zeros, tiny, nan, _observe([np.full((5, 3), 7.25, np.float32)])):
        for m in ("moving-average", "percentile", "mse", "entropy"):
            lo, hi = method_range(r, m)
            assert min(r.mins[0], 0) <= lo <= 0 <= hi <= max(r.maxs[0], 0)


def test_reshape_and_transpose_results_reuse_their_operand_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """With histograms, a RESHAPE / SQUEEZE / EXPAND_DIMS / TRANSPOSE result takes what its
    operand's reduce found (binned once) only when that is exactly what its own reduce finds."""
    from tests import models
    from tflquant.calibration import driver as cal_mod

    module = models.shapes()
    data = models.sample_inputs(module, n=12)
    hits: list[str] = []
    same_values = MinMaxObserver.same_values

    def spy(self: MinMaxObserver, name: str, *args: object) -> object:
        part = same_values(self, name, *args)  # type: ignore[arg-type]
        if part is not None:
            hits.append(name)
        return part

    counted: list[int] = []  # values each bincount of the observer counts
    bincount = np.bincount

    def count(x: np.ndarray, *args: object, **kw: object) -> np.ndarray:
        counted.append(np.asarray(x).size)
        return bincount(x, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(MinMaxObserver, "same_values", spy)
    monkeypatch.setattr("tflquant.calibration.observers.np.bincount", count)
    reused = calibrate(module, data, batch_size=5, histograms=True).stats
    assert len(set(hits)) >= 3  # the transpose, reshape, squeeze and expand_dims results
    reused_values = sum(counted)
    monkeypatch.setattr(cal_mod, "_SAME_ORDER", frozenset())
    monkeypatch.setattr(cal_mod, "_PERMUTED", frozenset())
    hits.clear()
    counted.clear()
    own = calibrate(module, data, batch_size=5, histograms=True).stats
    assert not hits and reused.keys() == own.keys()
    assert reused_values < sum(counted)  # a part the results share is counted once
    for k in own:
        _same(reused[k], own[k])


@pytest.mark.parametrize("method", ["moving-average", "percentile", None])
def test_one_method_keeps_exactly_its_statistics(method: str | None) -> None:
    """calibrate(method=..., method_tensors=...) keeps what that method reads (moving-average:
    per-sample ranges; the others: histograms) of the tensors named, bit-identical to a
    calibration that keeps everything, and min/max (and means) of every tensor."""
    from tests import models

    for module, data in ((models.shapes(), None), (None, DIGITS_CALIB)):
        if module is None:
            from tflquant.tflite.reader import load_model

            module = load_model(DIGITS)
        else:
            data = models.sample_inputs(module, n=12)
        full = calibrate(module, data, batch_size=5, histograms=True).stats
        some = sorted(full)[::2]
        for names in (None, some):
            part = calibrate(module, data, batch_size=5, histograms=True, method=method, method_tensors=names).stats
            assert part.keys() == full.keys()
            for k, r in full.items():
                p = part[k]
                assert (p.mins, p.maxs, p.mean, p.mean_sq) == (r.mins, r.maxs, r.mean, r.mean_sq)
                wanted = names is None or k in names
                if wanted and method != "moving-average":
                    assert p.hist is not None and r.hist is not None
                    assert (p.hist.exp, p.hist.start) == (r.hist.exp, r.hist.start) and np.array_equal(p.hist.counts, r.hist.counts)
                else:
                    assert p.hist is None
                if wanted and method != "percentile":
                    assert np.array_equal(p.sample_min, r.sample_min) and np.array_equal(p.sample_max, r.sample_max)
                else:
                    assert p.sample_min is None and p.sample_max is None
    with pytest.raises(TflquantError, match="unknown calibration method"):
        calibrate(module, DIGITS_CALIB, histograms=True, method="median")


def test_histograms_counted_in_reduce_equal_those_counted_at_the_batch_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without parallel sample ranges, a batch's first observation of a tensor is counted into
    a histogram of its own right away (no copy kept until end_batch): the same statistics."""
    from tests import models

    module = models.shapes()
    data = models.sample_inputs(module, n=12)
    bin_ = MinMaxObserver._bin
    now: list[bool] = []

    def spy(self: MinMaxObserver, *args: object) -> None:
        now.append(bool(args[-1]))
        bin_(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(MinMaxObserver, "_bin", spy)
    counted_now = calibrate(module, data, batch_size=5, histograms=True).stats
    assert any(now)
    monkeypatch.setattr(MinMaxObserver, "_bin", lambda self, *args: bin_(self, *args[:-1], False))  # type: ignore[misc]
    deferred = calibrate(module, data, batch_size=5, histograms=True).stats
    assert counted_now.keys() == deferred.keys()
    for k in deferred:
        _same(counted_now[k], deferred[k])
