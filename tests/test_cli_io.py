"""`tflquant inspect|import|export`: lossless round trip through text, one-line errors, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from models import MODELS, run_tflite, sample_inputs

from tflquant.cli import main
from tflquant.tflite.writer import write_flatbuffer


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_inspect_example(capsys, example_model):
    rc, out, err = _run(capsys, "inspect", str(example_model))
    assert rc == 0 and err == ""
    assert "schema version 3" in out
    assert "CONV_2D v1" in out and "SOFTMAX" in out
    assert "FLOAT32[?,16,16,1]" in out  # dynamic batch from shape_signature
    assert "signatures: 1" in out and "min_runtime_version" in out
    assert "constant data:" in out and "op counts:" in out


def test_inspect_shows_quantization(capsys, tmp_path):
    from xdsl.dialects.builtin import IntegerType

    from tflquant.dialects.quant import UniformQuantizedType

    from models import GraphBuilder

    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    q = g.op("QUANTIZE", [g.x], (1, 4), UniformQuantizedType.make(IntegerType(8), 0.25, -7), name="q")
    y = g.op("DEQUANTIZE", [q], (1, 4), name="y")
    path = tmp_path / "q.tflite"
    path.write_bytes(g.tflite([y]))
    rc, out, _ = _run(capsys, "inspect", str(path))
    assert rc == 0
    assert "INT8[1,4]  q(scale=0.25, zp=-7)" in out
    assert "QUANTIZE v1" in out and "DEQUANTIZE v2" in out


def test_import_edit_export_roundtrip(capsys, tmp_path, example_model):
    mlir = tmp_path / "m.mlir"
    out = tmp_path / "out.tflite"
    assert _run(capsys, "import", str(example_model), "-o", str(mlir))[0] == 0
    text = mlir.read_text()
    assert text.startswith("builtin.module") and '"tfl.conv_2d"' in text
    assert _run(capsys, "export", str(mlir), "-o", str(out))[0] == 0
    orig = example_model.read_bytes()
    new = out.read_bytes()
    ins = {"x": np.random.default_rng(0).standard_normal((3, 1, 16, 16, 1)).astype(np.float32)}
    a, b = run_tflite(orig, ins), run_tflite(new, ins)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # stdout import gives the same text
    rc, stdout_text, _ = _run(capsys, "import", str(example_model))
    assert rc == 0 and stdout_text == text
    # a user edit in the text (change the softmax beta) reaches the model
    assert "beta = 1.000000e+00 : f32" in text
    mlir.write_text(text.replace("beta = 1.000000e+00 : f32", "beta = 2.000000e+00 : f32"))
    assert _run(capsys, "export", str(mlir), "-o", str(out))[0] == 0
    rc, shown, _ = _run(capsys, "inspect", str(out))
    assert "beta=2.0" in shown


def test_export_is_deterministic(capsys, tmp_path):
    src = tmp_path / "m.tflite"
    src.write_bytes(write_flatbuffer(MODELS["shapes"]()))
    mlir = tmp_path / "m.mlir"
    assert _run(capsys, "import", str(src), "-o", str(mlir))[0] == 0
    outs = []
    for k in range(2):
        o = tmp_path / f"o{k}.tflite"
        assert _run(capsys, "export", str(mlir), "-o", str(o))[0] == 0
        outs.append(o.read_bytes())
    assert outs[0] == outs[1]
    inputs = sample_inputs(MODELS["shapes"](), 2)
    assert all(np.array_equal(x, y) for x, y in zip(run_tflite(src.read_bytes(), inputs), run_tflite(outs[0], inputs)))


def _bad_files(tmp_path, example_model) -> dict[str, tuple[list[str], str]]:
    data = example_model.read_bytes()
    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(data[: len(data) // 3])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all, just text\n" * 4)
    bad_ir = tmp_path / "bad.mlir"
    bad_ir.write_text("builtin.module { func.func @main( }\n")
    bad_ver = tmp_path / "badver.tflite"
    buf = bytearray(data)
    buf[4:8] = b"XYZ9"
    bad_ver.write_bytes(bytes(buf))
    good_ir = tmp_path / "good.mlir"
    good_ir.write_text("builtin.module {\n  func.func @main(%0: tensor<2xf32>) -> tensor<2xf32> {\n    func.return %0 : tensor<2xf32>\n  }\n}\n")
    return {
        "missing": (["inspect", str(tmp_path / "nope.tflite")], "no such TFLite model"),
        "directory": (["import", str(tmp_path)], "is a directory"),
        "truncated": (["inspect", str(trunc)], "truncated"),
        "junk": (["import", str(junk)], "not a TFLite model"),
        "identifier": (["inspect", str(bad_ver)], "not a TFLite model"),
        "bad_ir": (["export", str(bad_ir), "-o", str(tmp_path / "x.tflite")], "cannot parse IR"),
        "unwritable": (["export", str(good_ir), "-o", str(tmp_path / "no_dir" / "x.tflite")], "cannot write"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "junk", "identifier", "bad_ir", "unwritable"])
def test_errors_are_one_line_exit_2(capsys, tmp_path, example_model, case):
    argv, needle = _bad_files(tmp_path, example_model)[case]
    rc, out, err = _run(capsys, *argv)
    assert rc == 2
    assert err.startswith("tflquant: error: ")
    if case != "bad_ir":  # a parse error also shows the offending line and a caret
        assert err.count("\n") == 1, err
    assert needle in err
    path_arg = argv[1]
    assert os.path.basename(path_arg) in err or "no_dir" in err


def test_error_from_real_process_has_no_traceback(tmp_path, example_model):
    trunc = tmp_path / "t.tflite"
    trunc.write_bytes(example_model.read_bytes()[:500])
    p = subprocess.run([sys.executable, "-m", "tflquant.cli", "import", str(trunc)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.strip().startswith("tflquant: error:")
    assert p.stdout == ""


def test_inspect_large_layout_variables_and_ranges(capsys, tmp_path):
    from tflquant.dialects.quant import CalibrationStatsAttr, StatsOp

    module = MODELS["lstm"]()
    path = tmp_path / "big.tflite"
    path.write_bytes(write_flatbuffer(module, max_flatbuffer_size=512))
    rc, out, _ = _run(capsys, "inspect", str(path))
    assert rc == 0
    assert "large-model layout" in out and "(outside)" in out
    assert "'output_state' FLOAT32[1,4]  variable" in out
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM v1" in out

    from models import GraphBuilder

    g = GraphBuilder("main", {"x": ((3,), np.float32)})
    s = g.add(StatsOp(g.x, CalibrationStatsAttr.make(-2.5, 4.0)))
    y = g.op("RELU", [s.results[0]], (3,))
    path.write_bytes(g.tflite([y]))
    rc, out, _ = _run(capsys, "inspect", str(path))
    assert "range [-2.5, 4]" in out


def test_output_closed_early_is_not_an_error(tmp_path) -> None:  # noqa: ANN001
    """`tflquant ... | head -1`: the reader closes the pipe (here before anything is written); no traceback, status 0, and the
    model is still written."""
    root = os.path.join(os.path.dirname(__file__), "..", "examples")
    out = tmp_path / "q.tflite"
    cmd = (
        f"{sys.executable} -c 'from tflquant.cli import main; raise SystemExit(main())' quantize "
        f"{root}/digits_cnn.tflite -o {out} --calibration {root}/digits_cnn_calib.npz | true; "
        "exit ${PIPESTATUS[0]}"
    )
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
    assert out.read_bytes()[4:8] == b"TFL3"
