"""Models for TFLite Micro (target="micro") have static shapes and no run-time shape
arithmetic, so they run on TFLite Micro as well as LiteRT (freeze-batch-size, fold-constants,
legalize-for-micro in the micro pipeline), with the accuracy they had before; the default
target (LiteRT) applies none of them.

- ../shared tiny_transformer (skipped when absent): its input has a dynamic batch and its
  Tensordots compute shapes at run time (SHAPE -> GATHER -> REDUCE_PROD -> PACK -> RESHAPE);
  TFLM has no REDUCE_PROD (the TF converter's integer-only file fails there), no GELU and no
  int32 SELECT_V2. Ours runs and matches LiteRT.
- Self-contained: an IR-built model with a dynamic batch, a SHAPE -> STRIDED_SLICE ->
  REDUCE_PROD / PACK -> RESHAPE chain and a GELU.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import shared_model_dir
from models import GraphBuilder, sample_inputs
from test_e2e_int8 import TflmMissingOps, assert_tflm_matches_litert, litert_raw, litert_run, sqnr_db, tflm_run, top1

import tflquant
import tflquant.pipeline
from tflquant.tflite.writer import write_flatbuffer

NEW_PASSES = ("freeze-batch-size", "fold-constants", "legalize-for-micro")
SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "REDUCE_PROD", "PACK"}
SQNR_SLACK_DB = 0.1


@contextmanager
def _pipeline_without(passes: tuple[str, ...]) -> Iterator[None]:
    """The mode's pipeline minus some passes (what tflquant did before they existed);
    without legalize-for-micro, check-micro goes too (it would refuse what is left)."""
    spec = tflquant.pipeline.pipeline_spec
    if "legalize-for-micro" in passes:
        passes = (*passes, "check-micro")

    def without(*args: object, **kw: object) -> str:
        return ",".join(p for p in spec(*args, **kw).split(",") if p.split("{")[0] not in passes)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tflquant.pipeline, "pipeline_spec", without)
        yield


def _quantize(model: object, data: object, io_type: str, drop: tuple[str, ...] = (), target: str = "micro") -> tflquant.QuantizationResult:
    with _pipeline_without(drop):
        return tflquant.quantize(model, representative_dataset=data, io_type=io_type, target=target)  # type: ignore[arg-type]


def _op_types(r: tflquant.QuantizationResult) -> set[str]:
    return {o.op_type for o in r.report.ops}


def _input_signatures(model: bytes) -> list[list[int]]:
    from ai_edge_litert.interpreter import Interpreter

    return [list(d["shape_signature"]) for d in Interpreter(model_content=model).get_input_details()]


# ---------------------------------------------------------------------------------------
# ../shared tiny_transformer
# ---------------------------------------------------------------------------------------


@functools.cache
def _tt(io_type: str, drop: tuple[str, ...] = (), target: str = "micro") -> tflquant.QuantizationResult:
    d = shared_model_dir("tiny_transformer")
    return _quantize(d / "float.tflite", d / "calib.npz", io_type, drop, target)


@functools.cache
def _tt_eval() -> tuple[list[np.ndarray], list[np.ndarray]]:
    d = shared_model_dir("tiny_transformer")
    z = np.load(d / "eval.npz")
    inputs = [z[k] for k in z.files if k != "labels"]
    return inputs, litert_run((d / "float.tflite").read_bytes(), inputs)


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_tiny_transformer_integer_only_runs_on_tflm_like_litert(io_type: str) -> None:
    r = _tt(io_type)
    assert _input_signatures(r.model) == [[1, 16]]
    ops = _op_types(r)
    assert not ops & (SHAPE_OPS | {"GELU", "SELECT_V2"}), ops
    inputs, _ = _tt_eval()
    assert_tflm_matches_litert(r.model, [a[:20] for a in inputs])


def test_tiny_transformer_accuracy_unchanged_and_tf_file_fails_on_tflm() -> None:
    inputs, ref = _tt_eval()
    before = _tt("int8", NEW_PASSES)
    after = _tt("int8")
    assert "REDUCE_PROD" in _op_types(before) and _input_signatures(before.model) == [[-1, 16]]
    s_before = sqnr_db(ref[0], litert_run(before.model, inputs)[0])
    got = litert_run(after.model, inputs)[0]
    s_after = sqnr_db(ref[0], got)
    assert abs(s_after - s_before) <= SQNR_SLACK_DB, f"SQNR {s_before:.2f} dB before, {s_after:.2f} dB after"
    assert top1(ref[0], got) >= 0.98
    assert len(after.model) <= (shared_model_dir("tiny_transformer") / "tf_int8only.tflite").stat().st_size
    # the TF converter's integer-only file does not run on TFLM; ours (above) does
    with pytest.raises(TflmMissingOps, match="REDUCE_PROD"):
        tflm_run((shared_model_dir("tiny_transformer") / "tf_int8only.tflite").read_bytes(), [a[:2] for a in inputs])


def test_tiny_transformer_legalize_for_micro_keeps_litert_outputs_bit_identical() -> None:
    inputs, _ = _tt_eval()
    a = litert_raw(_tt("int8").model, inputs)
    b = litert_raw(_tt("int8", ("legalize-for-micro",)).model, inputs)
    assert "GELU" in _op_types(_tt("int8", ("legalize-for-micro",)))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # the integer reference interpreter computes the same on both forms too (CAST of int8
    # storage copies the raw values, as in LiteRT)
    from tflquant.reference.integer_interpreter import IntegerInterpreter
    from tflquant.tflite.reader import read_flatbuffer

    x = [inputs[0][:16]]
    (ia,) = IntegerInterpreter(read_flatbuffer(_tt("int8").model)).run(x)
    (ib,) = IntegerInterpreter(read_flatbuffer(_tt("int8", ("legalize-for-micro",)).model)).run(x)
    assert np.array_equal(ia, ib)


@pytest.mark.parametrize("io_type", ["float32", "int8"])
def test_tiny_transformer_for_litert_keeps_dynamic_batch_and_gelu(io_type: str) -> None:
    """target litert (the default): no Micro lowering (GELU stays GELU, as fast as LiteRT
    runs it), the dynamic batch kept, in float-I/O and integer-only models alike."""
    r = _tt(io_type, target="litert")
    assert _input_signatures(r.model) == [[-1, 16]]
    assert "SHAPE" in _op_types(r) and "GELU" in _op_types(r)
    assert not set(r.report.pipeline.split(",")) & set(NEW_PASSES)


# ---------------------------------------------------------------------------------------
# Self-contained: dynamic batch, SHAPE chain, GELU
# ---------------------------------------------------------------------------------------


def _shape_chain_model() -> bytes:
    r = np.random.default_rng(7)
    g = GraphBuilder("main", {"x": ((None, 4, 8), np.float32)})
    c = lambda a: g.const(np.array(a, np.int32))  # noqa: E731
    w1 = g.const((r.standard_normal((16, 8)) * 0.3).astype(np.float32))
    h = g.op("FULLY_CONNECTED", [g.x, w1, g.no_value()], (None, 4, 16), keep_num_dims=True, name="fc1")
    h = g.op("GELU", [h], (None, 4, 16), name="gelu")
    sh = g.op("SHAPE", [h], (3,), out_dtype=np.int32, out_type="INT32", name="shape")
    lead = g.op("STRIDED_SLICE", [sh, c([0]), c([2]), c([1])], (2,), out_dtype=np.int32, name="lead_dims")
    rows = g.op("REDUCE_PROD", [lead, c([0])], (), out_dtype=np.int32, name="rows")
    cols = g.op("STRIDED_SLICE", [sh, c([2]), c([3]), c([1])], (), out_dtype=np.int32, shrink_axis_mask=1, name="cols")
    pk = g.op("PACK", [rows, cols], (2,), out_dtype=np.int32, values_count=2, axis=0, name="stack")
    flat = g.op("RESHAPE", [h, pk], (None, None), name="flat")
    w2 = g.const((r.standard_normal((3, 16)) * 0.3).astype(np.float32))
    b2 = g.const(np.array([0.1, -0.2, 0.05], np.float32))
    y = g.op("FULLY_CONNECTED", [flat, w2, b2], (None, 3), name="logits")
    y = g.op("SOFTMAX", [y], (None, 3), beta=1.0, name="probs")
    return write_flatbuffer(g.module([y], ["probs"]))


@functools.cache
def _chain() -> tuple[bytes, dict[str, np.ndarray], list[np.ndarray]]:
    from tflquant.tflite.reader import read_flatbuffer

    model = _shape_chain_model()
    module = read_flatbuffer(model)
    return model, sample_inputs(module, n=64, seed=1), list(sample_inputs(module, n=16, seed=2).values())


def test_shape_chain_model_integer_only_runs_on_tflm_with_unchanged_accuracy() -> None:
    model, calib, inputs = _chain()
    assert _input_signatures(model) == [[-1, 4, 8]]
    ref = litert_run(model, inputs)[0]
    before = _quantize(model, calib, "int8", NEW_PASSES)
    after = _quantize(model, calib, "int8")
    assert {"SHAPE", "REDUCE_PROD", "GELU"} <= _op_types(before)
    assert not _op_types(after) & (SHAPE_OPS | {"GELU"})
    assert _input_signatures(after.model) == [[1, 4, 8]]
    s_before = sqnr_db(ref, litert_run(before.model, inputs)[0])
    s_after = sqnr_db(ref, litert_run(after.model, inputs)[0])
    assert s_after > 20.0 and abs(s_after - s_before) <= SQNR_SLACK_DB, (s_before, s_after)
    with pytest.raises(TflmMissingOps):
        tflm_run(before.model, [a[:2] for a in inputs])
    assert_tflm_matches_litert(after.model, inputs)


def test_shape_chain_model_for_litert_is_unchanged_by_the_new_passes() -> None:
    model, calib, _ = _chain()
    r = _quantize(model, calib, "int8", target="litert")
    assert _input_signatures(r.model) == [[-1, 4, 8]]
    assert {"SHAPE", "REDUCE_PROD", "PACK", "GELU"} <= _op_types(r)
