"""Accuracy of static int8 / 16x8 against the float model, as ../shared/tools/score.py measures.

- bias correction (`correct-bias`, `quantize(..., bias_correction=True)`) raises SQNR on a
  self-contained model whose layer inputs have a large mean (where weight rounding shifts
  every output by a constant), in int8 and int16x8; output-error weight clipping
  (`clip-weights`, `clip_weights=True`) does on a layer with heavy-tailed weights;
- on the shared reference models (skipped when absent): SQNR at least the TF converter's,
  top-1 agreement and labelled accuracy no worse, for the default pipeline (int8 and
  integer-only int8). Bias correction's own numbers on them are in benchmarks/README.md.
"""

from __future__ import annotations

import numpy as np
import pytest

import tflquant
from tflquant.scoring import accuracy, sqnr_db, top1
from tests.conftest import shared_model_dir
from tests.models import GraphBuilder, run_tflite


def _offset_mlp() -> bytes:
    """x [1, 64] -> FC 64->48 (relu) -> FC 48->10 (no bias) -> conv-free classifier head."""
    r = np.random.default_rng(7)
    g = GraphBuilder("main", {"x": ((1, 64), np.float32)})
    h = g.op("FULLY_CONNECTED", [g.x, g.const((r.standard_normal((48, 64)) * 0.2).astype(np.float32)),
                                 g.const(np.zeros(48, np.float32))], (1, 48), fused_activation_function="RELU")
    y = g.op("FULLY_CONNECTED", [h, g.const((r.standard_normal((10, 48)) * 0.2).astype(np.float32)), g.no_value()],
             (1, 10), name="logits")
    return g.tflite([y], output_names=["logits"])


def _heavy_tailed_mlp() -> bytes:
    """x [1, 64] -> FC 64->32 whose weights have a few large outliers per row (Student t, 2 dof)."""
    r = np.random.default_rng(11)
    g = GraphBuilder("main", {"x": ((1, 64), np.float32)})
    w = (r.standard_t(2, (32, 64)) * 0.05).astype(np.float32)
    y = g.op("FULLY_CONNECTED", [g.x, g.const(w), g.const(np.zeros(32, np.float32))], (1, 32), name="y")
    return g.tflite([y], output_names=["y"])


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {"x": (3.0 + 0.5 * r.standard_normal((n, 1, 64))).astype(np.float32)}


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_bias_correction_raises_sqnr(mode: str) -> None:
    model = _offset_mlp()
    calib, evald = _data(100, 1), _data(200, 2)
    ref = run_tflite(model, evald)[0]
    off = tflquant.quantize(model, mode=mode, representative_dataset=calib, bias_correction=False)
    on = tflquant.quantize(model, mode=mode, representative_dataset=calib, bias_correction=True)
    default = tflquant.quantize(model, mode=mode, representative_dataset=calib)
    assert default.model == (on.model if mode == "int16x8" else off.model)  # on by default for 16x8 only
    assert "correct-bias" in on.report.pipeline and "correct-bias" not in off.report.pipeline
    s_off = sqnr_db(ref, run_tflite(off.model, evald)[0])
    s_on = sqnr_db(ref, run_tflite(on.model, evald)[0])
    assert s_on > s_off + 1.0, (s_off, s_on)
    # the second FC had no bias: it gets one (float32 in, int32 out)
    kinds = [o.kind for o in on.report.ops if o.op_type == "FULLY_CONNECTED"]
    assert kinds == ["int16" if mode == "int16x8" else "int8"] * 2


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_clip_weights_raises_sqnr(mode: str) -> None:
    model = _heavy_tailed_mlp()
    calib, evald = _data(100, 5), _data(200, 6)
    ref = run_tflite(model, evald)[0]
    off = tflquant.quantize(model, mode=mode, representative_dataset=calib, bias_correction=False)
    on = tflquant.quantize(model, mode=mode, representative_dataset=calib, clip_weights=True, bias_correction=True)
    assert "clip-weights{corrected=true},correct-bias" in on.report.pipeline
    s_off = sqnr_db(ref, run_tflite(off.model, evald)[0])
    s_on = sqnr_db(ref, run_tflite(on.model, evald)[0])
    assert s_on > s_off + 1.0, (s_off, s_on)


def test_bias_correction_is_deterministic() -> None:
    model = _offset_mlp()
    a = tflquant.quantize(model, representative_dataset=_data(50, 3), bias_correction=True).model
    b = tflquant.quantize(model, representative_dataset=_data(50, 3), bias_correction=True).model
    assert a == b


def test_calibration_records_layer_input_means() -> None:
    from tflquant.calibration.driver import calibrate
    from tflquant.tflite.reader import read_flatbuffer

    module = read_flatbuffer(_offset_mlp())
    data = _data(64, 4)
    stats = calibrate(module, data).stats
    m = stats["x"].mean
    assert m is not None and len(m) == 64
    np.testing.assert_allclose(m, data["x"].reshape(-1, 64).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["x"].mean_sq, (data["x"].astype(np.float64) ** 2).reshape(-1, 64).mean(axis=0), rtol=1e-6)
    assert stats["logits"].mean is None  # not the input of a weighted layer
    assert calibrate(module, data, channel_means=False).stats["x"].mean is None


def _score(d, path: str) -> dict[str, float]:
    z = np.load(d / "eval.npz")
    inputs = {k: z[k] for k in z.files if k != "labels"}
    with open(d / "float.tflite", "rb") as f:
        ref = run_tflite(f.read(), inputs)[0]
    with open(path, "rb") as f:
        got = run_tflite(f.read(), inputs)[0]
    out = {"sqnr": sqnr_db(ref, got), "top1": top1(ref, got)}
    if "labels" in z.files:
        out["acc"] = accuracy(got, z["labels"])
    return out


def _mine_and_tf(name: str, tmp_path) -> tuple[dict[str, float], dict[str, float]]:  # noqa: ANN001
    """Scores of the default int8 pipeline's model and of the TF converter's tf_int8.tflite."""
    d = shared_model_dir(name)
    ours = tmp_path / "int8.tflite"
    tflquant.quantize(d / "float.tflite", representative_dataset=d / "calib.npz").save(ours)
    return _score(d, str(ours)), _score(d, str(d / "tf_int8.tflite"))


@pytest.mark.parametrize("name", ["digits_cnn", "tiny_transformer"])
def test_shared_int8_at_least_tf(name: str, tmp_path) -> None:
    """Default int8 pipeline vs the TF converter's file (the two small labelled models):
    SQNR and top-1 agreement at least TF's; on the transformer labelled accuracy too."""
    mine, tf = _mine_and_tf(name, tmp_path)
    assert mine["sqnr"] >= tf["sqnr"] and mine["top1"] >= tf["top1"], (mine, tf)
    if name == "tiny_transformer":
        assert mine["sqnr"] >= tf["sqnr"] + 6, (mine, tf)  # fold-bias-add: +6.8 dB measured
        assert mine["acc"] >= tf["acc"], (mine, tf)


@pytest.mark.xfail(
    strict=True,
    reason="known gap (issue 3): TF's int8 digits model is one eval sample more accurate than the float "
    "model itself; ours tracks the float model (top-1 agreement 0.995 vs TF's 0.992). Over 20 bootstrap "
    "resamples of calib.npz, 2 reach TF's accuracy (benchmarks/calibration_spread.py)",
)
def test_shared_int8_digits_labels_at_least_tf(tmp_path) -> None:
    mine, tf = _mine_and_tf("digits_cnn", tmp_path)
    assert mine["acc"] >= tf["acc"], (mine, tf)


def test_stats_file_keeps_means(tmp_path) -> None:
    from tflquant.calibration.stats import Range, read_stats, write_stats
    from tflquant.errors import TflquantError

    p = tmp_path / "s.json"
    write_stats(p, {"x": Range((0.0,), (4.0,), -1, (1.0, 2.0), (2.0, 5.0)), "y": Range.of(-1, 1)})
    back = read_stats(p)
    assert back["x"].mean == (1.0, 2.0) and back["x"].mean_sq == (2.0, 5.0) and back["y"].mean is None
    p.write_text('{"x": {"min": 0, "max": 1, "mean": [1.0], "mean_sq": [1.0, 2.0]}}')
    with pytest.raises(TflquantError, match="mean_sq"):
        read_stats(p)
