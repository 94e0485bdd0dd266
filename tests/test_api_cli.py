"""The public API (`tflquant.quantize`) and the `tflquant quantize` command: options, errors,
atomic output, determinism, the report, and README's main command."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tflquant
from tflquant.api import QuantizationResult, check_options
from tflquant.cli import main
from tflquant.errors import TflquantError

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits_cnn.tflite"
DIGITS_CALIB = ROOT / "examples" / "digits_cnn_calib.npz"
DIGITS_INPUT = "serving_default_keras_tensor:0"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _litert_run(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for s in x:
        s = s.reshape(d["shape"])
        if d["dtype"] != np.float32:
            sc, zp = d["quantization"]
            s = np.clip(np.round(s / sc) + zp, np.iinfo(d["dtype"]).min, np.iinfo(d["dtype"]).max)
        it.set_tensor(d["index"], s.astype(d["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float32)
        if o["dtype"] != np.float32:
            sc, zp = o["quantization"]
            y = (y - zp) * sc
        outs.append(y)
    return np.stack(outs)


@pytest.fixture
def calib() -> np.ndarray:
    return np.load(DIGITS_CALIB)[DIGITS_INPUT]


# ---------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------


def test_package_exports_quantize() -> None:
    assert tflquant.quantize is tflquant.api.quantize
    assert tflquant.QuantizationResult is QuantizationResult


def test_report_describes_the_module_as_quantize_returned_it() -> None:
    """The report is built when first read; reading `module` first settles it, so changing
    the module afterwards does not change the report."""
    from xdsl.dialects.builtin import ArrayAttr, StringAttr

    from tflquant.dialects import tfl

    early = tflquant.quantize(str(DIGITS), mode="dynamic")
    early_ops = [(o.op_type, o.name, o.kind) for o in early.report.ops]
    late = tflquant.quantize(str(DIGITS), mode="dynamic")
    fc = next(o for o in late.module.walk() if isinstance(o, tfl.FullyConnectedOp))
    fc.attributes["names"] = ArrayAttr([StringAttr("renamed")])  # the caller edits the IR
    assert [(o.op_type, o.name, o.kind) for o in late.report.ops] == early_ops
    assert late.report is late.report and str(late.report).splitlines()[1:] and late.model == early.model


@pytest.mark.parametrize("mode", ["dynamic", "float16"])
def test_weight_only_modes_from_path_and_bytes_give_the_same_bytes(mode: str, tmp_path: Path) -> None:
    before = _sha(DIGITS)
    a = tflquant.quantize(str(DIGITS), mode=mode)
    b = tflquant.quantize(DIGITS.read_bytes(), mode=mode)
    assert a.model == b.model and a.model[4:8] == b"TFL3"
    assert _sha(DIGITS) == before
    assert a.report.size_after == len(a.model) < a.report.size_before == DIGITS.stat().st_size
    out = tmp_path / "m.tflite"
    a.save(out)
    assert out.read_bytes() == a.model
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tflquant-")]
    y = _litert_run(a.model, np.load(DIGITS_CALIB)[DIGITS_INPUT][:4])
    assert y.shape == (4, 1, 10) and np.all(np.isfinite(y))


def test_int8_with_npz_iterable_and_generator_function(calib: np.ndarray) -> None:
    a = tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB)
    b = tflquant.quantize(DIGITS, representative_dataset=({DIGITS_INPUT: s[None]} for s in calib))

    def gen():
        for s in calib:
            yield [s[None]]

    c = tflquant.quantize(DIGITS, representative_dataset=gen)
    assert a.model == b.model == c.model  # same data, same bytes
    r = a.report
    assert r.calibration_samples == 100 and r.mode == "int8"
    assert {o.op_type for o in r.quantized} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"}
    text = str(r)
    for needle in ("int8", "size", "CONV_2D", "calibration 100 samples", "of the input model"):
        assert needle in text
    y = _litert_run(a.model, calib[:8])
    ref = _litert_run(DIGITS.read_bytes(), calib[:8])
    assert np.mean(y.argmax(-1) == ref.argmax(-1)) >= 0.75


def test_integer_only_io(calib: np.ndarray) -> None:
    r = tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB, io_type="int8")
    assert not r.report.float_ops
    assert "int8[" in r.report.inputs[0] and "int8[" in r.report.outputs[0]
    y = _litert_run(r.model, calib[:4])
    assert y.shape == (4, 1, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="int4"), "unknown mode 'int4'"),
        (dict(mode="int8", io_type="int16", representative_dataset="x"), "io_type int16 does not go with mode int8"),
        (dict(mode="int16x8", io_type="uint8", representative_dataset="x"), "io_type uint8 does not go with mode int16x8"),
        (dict(mode="dynamic", io_type="int8"), "io_type int8 does not go with mode dynamic"),
        (dict(mode="float16", io_type="float64"), "unknown io_type 'float64'"),
        (dict(mode="int8", bias_type="int64", representative_dataset="x"), "bias_type int64 does not go with mode int8"),
        (dict(mode="float16", bias_type="int32"), "bias_type applies to int8 and int16x8 only"),
        (dict(mode="int8"), "mode int8 needs representative data"),
        (dict(mode="int16x8"), "mode int16x8 needs representative data"),
    ],
)
def test_bad_option_combinations(kwargs: dict, message: str) -> None:
    with pytest.raises(TflquantError, match=message):
        tflquant.quantize(DIGITS, **kwargs)


def test_option_check_accepts_the_valid_combinations() -> None:
    for mode, io in [("int8", "float32"), ("int8", "int8"), ("int8", "uint8"), ("int16x8", "int16"), ("dynamic", "float32")]:
        check_options(mode, io, None, "data")
    check_options("int16x8", "float32", "int32", "data")


def test_bad_model_inputs(tmp_path: Path) -> None:
    with pytest.raises(TflquantError, match="no such TFLite model"):
        tflquant.quantize(tmp_path / "missing.tflite", mode="float16")
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(TflquantError, match="junk.tflite: not a TFLite model"):
        tflquant.quantize(tmp_path / "junk.tflite", mode="float16")
    with pytest.raises(TflquantError, match="not a TFLite model"):
        tflquant.quantize(b"hello", mode="float16")
    with pytest.raises(TflquantError, match="corrupted|truncated"):
        tflquant.quantize(DIGITS.read_bytes()[:2000], mode="float16")
    with pytest.raises(TflquantError, match="model must be a path"):
        tflquant.quantize(12, mode="float16")  # type: ignore[arg-type]


def test_bad_calibration_data(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(TflquantError, match="bad.npz: not a readable .npz"):
        tflquant.quantize(DIGITS, representative_dataset=tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", x=np.zeros((3, 8, 8), np.float32))
    with pytest.raises(TflquantError, match=f"input '{DIGITS_INPUT}'.*expects a sample of shape \\[\\?, 16, 16, 1\\]|input '{DIGITS_INPUT}'.*expects a sample of shape"):
        tflquant.quantize(DIGITS, representative_dataset=tmp_path / "shape.npz")
    with pytest.raises(TflquantError, match="no calibration samples"):
        tflquant.quantize(DIGITS, representative_dataset=[])
    with pytest.raises(TflquantError, match="batch_size must be a positive integer"):
        tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB, batch_size=0)


def test_save_is_atomic_and_reports_unwritable_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = tflquant.quantize(DIGITS, mode="float16")
    with pytest.raises(TflquantError, match="cannot write"):
        r.save(tmp_path / "no" / "such" / "dir" / "m.tflite")
    out = tmp_path / "m.tflite"
    out.write_bytes(b"old contents")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(TflquantError, match="No space left"):
        r.save(out)
    assert out.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


@pytest.mark.parametrize("join_max", [64 << 20, 0], ids=["joined in memory", "verified as the mapped file"])
def test_save_verifies_the_pieces_and_never_writes_a_bad_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, join_max: int) -> None:
    import tflquant.api as api

    monkeypatch.setattr(api, "SAVE_JOIN_MAX", join_max)
    good = tflquant.quantize(DIGITS, mode="dynamic").model
    r = tflquant.quantize(DIGITS, mode="dynamic")
    r.pieces = [good[:1000], memoryview(good)[1000:5000], good[5000:]]
    r.save(tmp_path / "ok.tflite")
    assert (tmp_path / "ok.tflite").read_bytes() == good
    assert r.model == good
    bad = bytearray(good)
    bad[4:8] = b"XXXX"  # not the TFLite file identifier
    r.pieces = [bytes(bad[:1000]), bytes(bad[1000:])]
    with pytest.raises(TflquantError, match=r"^internal error: the written model fails LiteRT's model checks: not a TFLite flatbuffer"):
        r.save(tmp_path / "bad.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tflite"]


def test_model_keeps_no_unverified_bytes_after_a_failed_check() -> None:
    good = tflquant.quantize(DIGITS, mode="dynamic").model
    r = tflquant.quantize(DIGITS, mode="dynamic")
    bad = bytearray(good)
    bad[4:8] = b"XXXX"
    r.pieces = [bytes(bad[:1000]), bytes(bad[1000:])]
    for _ in range(2):  # the second read must fail as the first did (not return the joined bytes)
        with pytest.raises(TflquantError, match="fails LiteRT's model checks"):
            r.model


def test_result_does_not_read_the_input_file_after_quantize(tmp_path: Path) -> None:
    """Constants passed through (weights left float) are copied out of the mapped input:
    overwriting the input with the result, or truncating it, cannot change or crash save."""
    src = tmp_path / "m.tflite"
    src.write_bytes(DIGITS.read_bytes())
    kw = dict(mode="dynamic", min_weight_elements=1 << 30)  # every weight stays float: passed through
    clean = tflquant.quantize(DIGITS, **kw).model
    r = tflquant.quantize(src, **kw)
    assert any(len(p) >= 4096 for p in r.pieces[1:]) or len(r.pieces) == 1
    src.write_bytes(b"")  # truncated (as open(src, "wb") does before the result is written)
    r.save(tmp_path / "out.tflite")
    assert (tmp_path / "out.tflite").read_bytes() == clean
    src.write_bytes(bytes(len(clean)))
    assert r.model == clean


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def test_cli_print_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", str(DIGITS), "--print-pipeline"]) == 0
    spec = capsys.readouterr().out.strip()
    assert spec.startswith("annotate-calibration,fold-bias-add,insert-fake-quant") and "quantize-bias" in spec
    assert main(["quantize", str(DIGITS), "--mode", "int8", "--io-type", "uint8", "--per-tensor", "--print-pipeline"]) == 0
    spec = capsys.readouterr().out.strip()
    assert "per-channel=false" in spec and "set-io-types{type=uint8}" in spec


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "int8"], "needs representative data"),
        (["--mode", "int8", "--io-type", "int16", "--calibration", "x.npz"], "io_type int16 does not go with mode int8"),
        (["--calibration", "missing.npz"], "missing.npz: no such calibration file"),
    ],
)
def test_cli_errors_are_one_line_and_leave_no_file(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.tflite"
    assert main(["quantize", str(DIGITS), "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tflquant: error: ") and message in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", str(tmp_path / "nope.tflite"), "-o", str(tmp_path / "o.tflite"), "--mode", "dynamic"]) == 2
    assert "nope.tflite: no such TFLite model" in capsys.readouterr().err


def test_cli_quantize_writes_model_stats_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "in.tflite"
    shutil.copy(DIGITS, model)
    before = _sha(model)
    out, stats = tmp_path / "out.tflite", tmp_path / "stats.json"
    rc = main(["quantize", str(model), "-o", str(out), "--calibration", str(DIGITS_CALIB), "--save-stats", str(stats), "--batch-size", "50"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "-> int8" in text and "calibration 100 samples in 2 batches" in text and f"wrote {out}" in text
    assert _sha(model) == before
    assert out.read_bytes()[4:8] == b"TFL3"
    from tflquant.calibration.stats import read_stats

    assert DIGITS_INPUT in read_stats(stats)
    # -q: nothing on stdout, same bytes
    out2 = tmp_path / "out2.tflite"
    assert main(["quantize", str(model), "-o", str(out2), "--calibration", str(DIGITS_CALIB), "--batch-size", "50", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert out2.read_bytes() == out.read_bytes()


def test_readme_main_command(tmp_path: Path) -> None:
    """README: `tflquant quantize examples/digits_cnn.tflite -o digits_cnn_int8.tflite --calibration ...`."""
    proc = subprocess.run(
        [sys.executable, "-m", "tflquant.cli", "quantize", str(DIGITS), "-o", "digits_cnn_int8.tflite", "--calibration", str(DIGITS_CALIB)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "-> int8" in proc.stdout and "CONV_2D" in proc.stdout
    assert (tmp_path / "digits_cnn_int8.tflite").stat().st_size < DIGITS.stat().st_size


def test_multi_signature_model_quantizes_every_signature_it_has_data_for() -> None:
    from ai_edge_litert.interpreter import Interpreter
    from test_calibration import MULTI_SIG

    from tflquant.ir import parse_module
    from tflquant.tflite.writer import write_flatbuffer

    fb = write_flatbuffer(parse_module(MULTI_SIG))
    x = np.random.default_rng(0).normal(size=(20, 1, 2)).astype(np.float32)
    r = tflquant.quantize(fb, representative_dataset={"add/x": x, "mul_x": x})
    assert sorted(o.op_type for o in r.report.quantized) == ["ADD", "MUL"]
    ref, got = Interpreter(model_content=fb), Interpreter(model_content=r.model)
    assert got.get_signature_list() == ref.get_signature_list()
    for key in ("add", "mul"):
        a = ref.get_signature_runner(key)(x=x[3])["y"]
        b = got.get_signature_runner(key)(x=x[3])["y"]
        np.testing.assert_allclose(a, b, atol=0.05)


def test_integer_io_means_integer_only_unless_float_is_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models import MODELS, sample_inputs

    from tflquant.tflite.writer import write_flatbuffer

    module = MODELS["matmul"]()  # has a CUMSUM, which has no integer kernel
    model = tmp_path / "m.tflite"
    model.write_bytes(write_flatbuffer(module))
    calib = tmp_path / "c.npz"
    np.savez(calib, **sample_inputs(module, n=16, seed=1))
    out = tmp_path / "o.tflite"
    args = ["quantize", str(model), "-o", str(out), "--calibration", str(calib), "--io-type", "int8"]
    assert main(args) == 2
    assert "'cumsum_7' (CUMSUM)" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--allow-float", "-q"]) == 0 and out.exists()
    assert main(["quantize", str(model), "--io-type", "int8", "--print-pipeline"]) == 0
    assert "strict=true" in capsys.readouterr().out
    assert main(["quantize", str(model), "--io-type", "int8", "--allow-float", "--print-pipeline"]) == 0
    assert "strict=false" in capsys.readouterr().out


def test_same_bytes_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"o{seed}.tflite"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-m", "tflquant.cli", "quantize", str(DIGITS), "-o", str(out), "--calibration", str(DIGITS_CALIB), "-q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


# ---------------------------------------------------------------------------------------
# Selective quantization: keep_float / --keep-float
# ---------------------------------------------------------------------------------------

DIGITS_HEAD = "functional_1/dense_1_2/MatMul;functional_1/dense_1_2/BiasAdd"


def test_keep_float_leaves_the_named_ops_float_and_quantizes_the_rest(calib: np.ndarray) -> None:
    """By op type and by output tensor name: those ops stay float (weights too), say why,
    and the model still follows the float one; in dynamic mode they get no hybrid kernel."""
    r = tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB, keep_float=["SOFTMAX", DIGITS_HEAD])
    kinds = {(o.op_type, o.name): o.kind for o in r.report.ops}
    assert kinds[("SOFTMAX", "StatefulPartitionedCall_1:0")] == "float" and kinds[("FULLY_CONNECTED", DIGITS_HEAD)] == "float"
    assert sum(k == "int8" for k in kinds.values()) == 8
    assert {o.reason for o in r.report.fallbacks} == {"kept float on request (keep-float)"}
    assert r.report.pipeline.startswith('keep-float{ops="SOFTMAX","' + DIGITS_HEAD + '"},annotate-calibration')
    ref = _litert_run(DIGITS.read_bytes(), calib[:50])
    assert 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - _litert_run(r.model, calib[:50])) ** 2)) > 25.0
    d = tflquant.quantize(DIGITS, mode="dynamic", keep_float=["FULLY_CONNECTED"])
    assert {o.kind for o in d.report.ops if o.op_type == "FULLY_CONNECTED"} == {"float"}
    assert "hybrid" in {o.kind for o in d.report.ops if o.op_type == "CONV_2D"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keep_float": ["nope"]}, "keep-float: no op has the output tensor or op type 'nope'"),
        ({"keep_float": ['a"b\\c']}, "no op has the output tensor or op type 'a\"b\\\\c'"),  # quotes and backslashes reach the pass
        ({"keep_float": ["functional_1/conv2d_1/convolution"]}, "names a constant (a weight), not an op"),
        ({"keep_float": ["SOFTMAX"], "io_type": "int8"}, "'StatefulPartitionedCall_1:0' (SOFTMAX, kept float on request)"),
        ({"keep_float": ["SOFTMAX"], "mode": "float16", "representative_dataset": None}, "keep_float applies to the int8, int16x8 and dynamic modes"),
    ],
)
def test_keep_float_errors(kwargs: dict, message: str) -> None:
    kw = {"representative_dataset": DIGITS_CALIB, **kwargs}
    with pytest.raises(TflquantError) as e:
        tflquant.quantize(DIGITS, **kw)
    assert message in str(e.value)


def test_cli_keep_float(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.tflite"
    assert main(["quantize", str(DIGITS), "-o", str(out), "--calibration", str(DIGITS_CALIB), "--keep-float", "SOFTMAX", "--keep-float", DIGITS_HEAD]) == 0
    text = capsys.readouterr().out
    assert "kept float (2):" in text and f"FULLY_CONNECTED '{DIGITS_HEAD}': kept float on request (keep-float)" in text
    assert main(["quantize", str(DIGITS), "-o", str(tmp_path / "x.tflite"), "--calibration", str(DIGITS_CALIB), "--keep-float", "CONV2D"]) == 2
    assert "keep-float: no op has the output tensor or op type 'CONV2D'" in capsys.readouterr().err
    assert not (tmp_path / "x.tflite").exists()


def test_keep_float_with_absent_inputs_tied_weights_and_none() -> None:
    """Models with absent optional inputs (tfl.no_value) keep ops float too; in dynamic mode
    a kept op sharing its weight with a hybrid one reads the float weight; None means none."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from models import MODELS, GraphBuilder, sample_inputs

    from tflquant.tflite.writer import write_flatbuffer

    m = MODELS["lstm"]()
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset=sample_inputs(m, n=16), keep_float=["FULLY_CONNECTED"])
    assert {(o.op_type, o.kind) for o in r.report.ops} >= {("FULLY_CONNECTED", "float"), ("UNIDIRECTIONAL_SEQUENCE_LSTM", "int8")}
    assert tflquant.quantize(write_flatbuffer(m), representative_dataset=sample_inputs(m, n=16), keep_float=None).report.float_ops == []

    g = GraphBuilder("main", {"x": ((1, 64), np.float32)})
    w = g.const(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "shared_w")
    a = g.op("FULLY_CONNECTED", [g.x, w, g.no_value()], (1, 64), name="fc_a")
    k = g.op("FULLY_CONNECTED", [a, w, g.no_value()], (1, 64), name="fc_keep")
    tied = write_flatbuffer(g.module([k], ["y"]))
    d = tflquant.quantize(tied, mode="dynamic", keep_float=["fc_keep"])
    assert {o.name: o.kind for o in d.report.ops if o.op_type == "FULLY_CONNECTED"} == {"fc_a": "hybrid", "fc_keep": "float"}
    x = np.random.default_rng(1).standard_normal((4, 1, 64)).astype(np.float32)
    ref = _litert_run(tied, x)
    assert 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - _litert_run(d.model, x)) ** 2)) > 30.0


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_integer_io_around_ops_kept_float(io_type: str, calib: np.ndarray) -> None:
    """Integer I/O with float fallback where the first and the last op stay float: the input
    is read through a DEQUANTIZE, the output comes from a QUANTIZE (as the TF converter does)."""
    from ai_edge_litert.interpreter import Interpreter

    r = tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB, io_type=io_type, allow_float=True, keep_float=["SOFTMAX", "CONV_2D"])
    it = Interpreter(model_content=r.model)
    assert it.get_input_details()[0]["dtype"] == np.dtype(io_type) and it.get_output_details()[0]["dtype"] == np.dtype(io_type)
    ref = _litert_run(DIGITS.read_bytes(), calib[:40])
    got = _litert_run(r.model, calib[:40])
    assert 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - got) ** 2)) > 30.0
