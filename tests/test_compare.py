"""tflquant.compare / `tflquant compare`: per-tensor errors of a quantized model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tflquant
from tflquant.cli import main
from tflquant.compare import layer_errors
from tflquant.dialects import tfl
from tflquant.ir import dense_from_numpy
from tflquant.scoring import litert_run, sqnr_db
from tflquant.tflite.writer import write_flatbuffer

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits_cnn.tflite"
DIGITS_CALIB = ROOT / "examples" / "digits_cnn_calib.npz"


@pytest.fixture(scope="module")
def digits_int8() -> tflquant.QuantizationResult:
    return tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB)


def test_every_computed_tensor_in_execution_order(digits_int8: tflquant.QuantizationResult) -> None:
    rows = layer_errors(DIGITS, digits_int8.model, DIGITS_CALIB, max_samples=40)
    assert [r.op_type for r in rows][:3] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    # the model output is the int8 SOFTMAX's (renamed '<name>_int8' in the file), not the
    # DEQUANTIZE that copies it to float
    assert rows[-1].op_type == "SOFTMAX" and rows[-1].name == "StatefulPartitionedCall_1:0" and rows[-1].tensor_name.endswith("_int8")
    assert len(rows) == 10 and all(r.kind == "int8" for r in rows) and "DEQUANTIZE" not in {r.op_type for r in rows}
    assert all(20.0 < r.sqnr_db < 60.0 and 0.5 <= r.max_error_steps < 10 for r in rows[:-1])  # type: ignore[operator]
    assert rows[-1].max_error_steps > 1  # type: ignore[operator]
    # the model output's row is the model's SQNR in LiteRT's builtin kernels (the XNNPACK
    # delegate rounds its own way)
    x = np.load(DIGITS_CALIB)["serving_default_keras_tensor:0"][:40]
    got = litert_run(digits_int8.model, [x], delegates=False)[0]
    ref = litert_run(DIGITS.read_bytes(), [x])[0].reshape(40, -1)
    assert rows[-1].sqnr_db == pytest.approx(sqnr_db(ref, got.reshape(40, -1)), abs=0.01)


def test_a_broken_layer_is_where_the_sqnr_drops(digits_int8: tflquant.QuantizationResult) -> None:
    """Negate the int8 filter of the third convolution: its output collapses, the rows
    before it keep their SQNR."""
    m = digits_int8.module.clone()
    convs = [o for o in m.walk() if tfl.op_type(o) == "CONV_2D"]
    w = convs[2].operand("filter").owner  # type: ignore[union-attr]
    assert isinstance(w, tfl.ConstOp)
    flipped = tfl.ConstOp(dense_from_numpy(-w.numpy()), w.result.type, name=tfl.tensor_names(w)[0])
    w.parent_block().insert_op_before(flipped, w)  # type: ignore[union-attr]
    w.result.replace_all_uses_with(flipped.result)
    w.detach()
    w.erase()
    rows = layer_errors(DIGITS, write_flatbuffer(m), DIGITS_CALIB, max_samples=40)
    names = [r.name for r in rows]
    broken = names.index(tfl.tensor_names(convs[2])[0])
    assert rows[broken].sqnr_db < 3.0 and all(r.sqnr_db > 30.0 for r in rows[:broken])


def test_cli_compare(digits_int8: tflquant.QuantizationResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = tmp_path / "q.tflite"
    q.write_bytes(digits_int8.model)
    assert main(["compare", str(DIGITS), str(q), str(DIGITS_CALIB), "--max-samples", "20", "--worst", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "SQNR" and len(lines) == 3
    worst = [float(line.split()[0]) for line in lines[1:]]
    assert worst == sorted(worst)
    assert main(["compare", str(DIGITS), str(q), str(tmp_path / "none.npz")]) == 2
    assert "none.npz" in capsys.readouterr().err


def test_loops_and_integer_results() -> None:
    """compare runs WHILE models (their subgraphs' tensors named '@subgraph/tensor', with
    their subgraph index) and skips integer tensors (no SQNR)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from test_control_flow import gru_loop

    from tflquant.errors import TflquantError

    m = gru_loop()
    x = {"seq": np.random.default_rng(1).standard_normal((32, 1, 6, 4)).astype(np.float32)}
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset=x, io_type="int8")
    rows = layer_errors(write_flatbuffer(m), r.model, x)
    names = [row.name for row in rows]
    # the loop body's tensors (every iteration), then the WHILE's results and the head
    body = [n.removeprefix("@body/") for n in names if n.startswith("@body/")]
    assert body[:3] == ["x_t", "gx", "gh"] and names[-4:] == ["h_final", "outs", "seq_final", "head"]
    assert {"z", "r", "cand", "h_next", "o_next"} <= set(body)
    assert {row.subgraph for row in rows if row.name.startswith("@body/")} == {2}
    assert {row.subgraph for row in rows if not row.name.startswith("@")} == {0}
    assert all(row.sqnr_db > 25.0 and row.kind == "int8" for row in rows)
    assert not any(n.endswith(("i_final", "i_next")) for n in names)  # the int32 loop counter
    with pytest.raises(TflquantError, match="max_samples must be a positive integer"):
        layer_errors(DIGITS, r.model, DIGITS_CALIB, max_samples=0)
