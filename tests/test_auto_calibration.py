"""calibration_method="auto" (issue 13): the search on a model whose answer is known, the
report, determinism and the budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tflquant
from tflquant.calibration import auto
from tflquant.calibration.observers import MinMaxObserver
from tflquant.calibration.stats import Range
from tflquant.errors import TflquantError

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits_cnn.tflite"
DIGITS_CALIB = ROOT / "examples" / "digits_cnn_calib.npz"


# ---------------------------------------------------------------------------------------
# the search on a synthetic measure with a known best answer
# ---------------------------------------------------------------------------------------


def _stats() -> dict[str, Range]:
    """Two tensors: 'spiky' (normal values and one huge outlier), 'plain' (uniform)."""
    rng = np.random.default_rng(5)
    o = MinMaxObserver(histograms=True)
    spiky = rng.normal(0, 1, (64, 500)).astype(np.float32)
    spiky[3, 7] = 400.0
    o.observe("spiky", spiky)
    o.observe("plain", rng.uniform(-1, 1, (64, 500)).astype(np.float32))
    o.end_batch(64)
    return o.stats()


def _fake_measure(calls: list[dict[str, tuple[float, float]]]):  # type: ignore[no-untyped-def]
    """The 'model' outputs each tensor's reference values quantized to 255 steps of its range
    (clipped): the error of int8 on exactly those values."""
    rng = np.random.default_rng(6)
    ref = [rng.normal(0, 1, (16, 200)).astype(np.float32), rng.uniform(-1, 1, (16, 200)).astype(np.float32)]

    def measure(st):  # type: ignore[no-untyped-def]
        r = {k: (st[k].mins[0], st[k].maxs[0]) for k in ("spiky", "plain")}
        calls.append(r)
        outs = []
        for x, k in zip(ref, ("spiky", "plain")):
            lo, hi = r[k]
            step = (hi - lo) / 255
            outs.append((np.round((np.clip(x, lo, hi) - lo) / step) * step + lo).astype(np.float32))
        return outs, {k: f"{lo:.6g}:{hi:.6g}" for k, (lo, hi) in r.items()}

    return measure, ref


def test_search_narrows_the_tensor_with_an_outlier_and_respects_the_budget() -> None:
    st = _stats()
    calls: list[dict[str, tuple[float, float]]] = []
    measure, ref = _fake_measure(calls)
    res = auto.search(st, measure, ref, budget=12)
    assert res.measured <= 12 and len(calls) <= 3 * 12
    minmax = next(t for t in res.trials if t.label == "minmax")
    assert res.best.score >= minmax.score + 10  # the outlier's minmax range wastes ~8 bits of steps
    lo, hi = auto.candidates(st)["spiky"][res.methods["spiky"]]
    assert hi < 50  # the outlier is cut
    assert res.lines()[0].startswith("auto: ")
    # deterministic: the same search again makes the same choices
    again = auto.search(st, _fake_measure([])[0], ref, budget=12)
    assert again.methods == res.methods and [t.sample_db for t in again.trials] == [t.sample_db for t in res.trials]


def test_search_with_budget_one_measures_only_minmax() -> None:
    st = _stats()
    calls: list[dict[str, tuple[float, float]]] = []
    measure, ref = _fake_measure(calls)
    res = auto.search(st, measure, ref, budget=1)
    assert len(calls) == 1 and res.start == "minmax" and set(res.methods.values()) == {"minmax"}


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_bad_budget_is_one_clear_error(budget: object) -> None:
    measure, ref = _fake_measure([])
    with pytest.raises(TflquantError, match="calibration budget must be a positive number"):
        auto.search(_stats(), measure, ref, budget=budget)  # type: ignore[arg-type]


def test_budget_in_seconds_models_or_both() -> None:
    assert auto.parse_budget(None) == (auto.DEFAULT_BUDGET, None)
    assert auto.parse_budget(7) == (7, None) and auto.parse_budget("7") == (7, None)
    assert auto.parse_budget("90s") == (auto.MAX_MODELS, 90.0)
    assert auto.parse_budget("12, 2.5s") == (12, 2.5) == auto.parse_budget("2.5s,12")
    for bad in ("", "s", "0s", "-1s", "nans", "12,13", "1s,2s", "ten", 1.5, None.__class__):
        with pytest.raises(TflquantError, match="calibration budget must be a positive number of trials"):
            auto.parse_budget(bad)  # type: ignore[arg-type]
    # a budget of seconds that is spent at once still measures one model (minmax), not zero
    res = auto.search(_stats(), _fake_measure([])[0], _fake_measure([])[1], budget="1e-9s")
    assert res.measured == 1 and res.start == "minmax" and res.seconds_budget == 1e-9
    assert "models measured" in res.lines()[0] and " of 1e-09s" in res.lines()[0]


def test_sample_quantile_cuts_a_value_few_samples_reach() -> None:
    """10 samples; one of them reaches 300 (5% of its values): the median and the 90th
    percentile of the per-sample maxima cut it, the 99.99th percentile of the values does not."""
    rng = np.random.default_rng(3)
    o = MinMaxObserver(histograms=True)
    x = rng.uniform(-1, 1, (10, 200)).astype(np.float32)
    x[4, :10] = 300.0
    o.observe("t", x)
    o.end_batch(10)
    c = auto.candidates(o.stats())["t"]
    assert c["minmax"][1] == 300.0 and c["percentile"][1] == 300.0
    assert c["sample-quantile 50"][1] < 1.0 and c["sample-quantile 50"][0] > -1.0
    assert c["sample-quantile 90"][1] < 1.0  # the 9th largest of 10 maxima


def test_run_cache_reuses_unchanged_ops_and_gives_the_same_outputs() -> None:
    """Two models that differ in the range of the last tensors only: the second run reuses
    the ops upstream of them, and every output equals an uncached run's."""
    from tflquant.api import _load
    from tflquant.calibration.stats import select
    from tflquant.ir import make_context
    from tflquant.pipeline import pipeline_spec, run_pipeline

    data = DIGITS.read_bytes()
    module = _load(data)[0]
    calib = auto.calibrate_keeping(module, str(DIGITS_CALIB))
    base = select(calib.stats, "minmax")
    last = next(k for k in calib.stats if "dense_1_2" in k)  # the logits (the softmax after them has a fixed scale)
    late = dict(base)
    late[last] = Range.of(base[last].mins[0] * 0.5, base[last].maxs[0] * 0.5)

    def quantized(st):  # type: ignore[no-untyped-def]
        m = _load(data)[0]
        run_pipeline(make_context(), m, pipeline_spec("int8"), stats=st)
        return m

    cache = auto.RunCache()
    first = auto.run_quantized(quantized(base), "main", calib.inputs, cache, "a")
    cache.pin("a")
    misses = cache.misses
    second = auto.run_quantized(quantized(late), "main", calib.inputs, cache, "b")
    assert cache.hits > 0 and cache.misses - misses < misses  # the upstream ops were reused
    for st, got in ((base, first), (late, second)):
        want = auto.run_quantized(quantized(st), "main", calib.inputs)
        assert all(np.array_equal(a, b) for a, b in zip(want, got))
    assert not np.array_equal(first[0], second[0])


# ---------------------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------------------


def test_quantize_auto_reports_each_tensors_method_and_is_deterministic(tmp_path: Path) -> None:
    a = tflquant.quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), calibration_method="auto",
                          calibration_budget=6, save_stats=str(tmp_path / "s.json"))
    b = tflquant.quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), calibration_method="auto", calibration_budget=6)
    assert a.model == b.model
    methods = a.report.calibration_methods
    assert methods and set(methods.values()) <= set(auto.labels()) | {f"{m} (low end)" for m in auto.labels()} | {f"{m} (high end)" for m in auto.labels()}
    assert a.report.to_dict()["calibration_methods"] == methods
    text = str(a.report)
    assert "auto: " in text and "models measured" in text
    # the saved file keeps the observed statistics and records each tensor's pick
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["calibration_method"] == {"method": "auto"}
    chosen = {k: v["chosen"]["method"] for k, v in saved["tensors"].items() if "chosen" in v}
    assert chosen == methods
    assert all("hist" in v for k, v in saved["tensors"].items() if k in methods)


def test_auto_scores_at_least_minmax_on_the_samples_it_measures() -> None:
    """By construction (minmax is a whole-model candidate): the model auto writes scores at
    least minmax's on the calibration samples the search measured."""
    from tflquant.api import _load
    from tflquant.reference.interpreter import Interpreter
    from tflquant.tflite.reader import read_flatbuffer

    module, _, _ = _load(str(DIGITS))
    calib = auto.calibrate_keeping(module, str(DIGITS_CALIB), histograms=True)
    ref = Interpreter(module).run(calib.inputs)
    minmax = tflquant.quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB))
    picked = tflquant.quantize(str(DIGITS), representative_dataset=str(DIGITS_CALIB), calibration_method="auto", calibration_budget=8)

    def per_sample(model: bytes) -> float:
        q = read_flatbuffer(model, "q")
        out = auto.run_quantized(q, "main", calib.inputs)
        return auto._sample_db(*auto._sums(ref[0], out[0]))

    assert per_sample(picked.model) >= per_sample(minmax.model) - 1e-9


def test_auto_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tflquant.cli import main

    out = tmp_path / "q.tflite"
    assert main(["quantize", str(DIGITS), "--calibration", str(DIGITS_CALIB), "--calibration-method", "auto",
                 "--calibration-budget", "3", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.exists() and "auto: 3 of 3 models measured" in text and "start " in text
    assert main(["quantize", str(DIGITS), "--calibration", str(DIGITS_CALIB), "--calibration-method", "auto",
                 "--calibration-budget", "0", "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "calibration budget must be a positive number of trials" in err and len(err.strip().splitlines()) == 1
    # seconds: spent at once, auto still measures minmax
    assert main(["quantize", str(DIGITS), "--calibration", str(DIGITS_CALIB), "--calibration-method", "auto",
                 "--calibration-budget", "1e-9s", "-o", str(out)]) == 0
    assert "auto: 1 models measured" in capsys.readouterr().out
    # the pipeline it prints: the picked ranges reach annotate-calibration as they are
    assert main(["quantize", str(DIGITS), "--print-pipeline", "--calibration-method", "auto"]) == 0
    assert capsys.readouterr().out.startswith("annotate-calibration,")


def test_auto_needs_a_static_mode() -> None:
    with pytest.raises(TflquantError, match="calibration_method applies to the int8 and int16x8 modes"):
        tflquant.quantize(str(DIGITS), mode="dynamic", calibration_method="auto")
