"""Dynamic-range and float16 modes: the passes' guarantees (property tests), models built
from IR end to end in LiteRT, and every reference model in ../shared against the TF
converter's own dynamic and float16 files (SQNR and size at least as good)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, Float32Type, ModuleOp, TensorType

import tflquant
from tflquant import testing as tt
from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType, quantized_element
from tflquant.ir import make_context, print_module
from tflquant.passes.cast_weights_f16 import FP16_MAX
from tflquant.passes.quantize_weights import WEIGHT_INPUTS, quantize_weight
from tflquant.pipeline import run_pipeline
from tflquant.scoring import sqnr_db
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer

from conftest import SHARED_MODELS
from models import GraphBuilder, run_tflite, sample_inputs

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(module: ModuleOp, spec: str) -> ModuleOp:
    run_pipeline(make_context(), module, spec)
    return module


def _consts(module: ModuleOp) -> list[tfl.ConstOp]:
    return [o for o in module.walk() if isinstance(o, tfl.ConstOp)]


def _elem(v) -> object:  # noqa: ANN001
    return v.type.element_type if isinstance(v.type, TensorType) else None


# ---------------------------------------------------------------------------------------
# A model with every weight kind the dynamic mode handles
# ---------------------------------------------------------------------------------------


def hybrid_zoo() -> ModuleOp:
    """conv, depthwise, transpose conv, fully connected, batch matmul (constant rhs),
    gather and embedding lookup tables, and a unidirectional LSTM; six outputs."""
    r = np.random.default_rng(7)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    g = GraphBuilder("main", {
        "image": ((1, 8, 8, 4), np.float32),
        "tokens": ((1, 6), np.int32),
        "ids": ((6,), np.int32),
        "seq": ((1, 3, 4), np.float32),
    })
    a = g.args
    c = g.op("CONV_2D", [a["image"], g.const(w(16, 3, 3, 4), "conv/w"), g.const(w(16), "conv/b")], (1, 8, 8, 16),
             padding="SAME", stride_w=1, stride_h=1, fused_activation_function="RELU")
    d = g.op("DEPTHWISE_CONV_2D", [c, g.const(w(1, 3, 3, 16), "dw/w"), g.const(w(16), "dw/b")], (1, 8, 8, 16),
             padding="SAME", stride_w=1, stride_h=1, depth_multiplier=1, name="dw")
    tc = g.op("TRANSPOSE_CONV", [g.const(np.array([1, 16, 16, 8], np.int32)), g.const(w(8, 2, 2, 16), "tconv/w"), d,
                                 g.const(w(8), "tconv/b")], (1, 16, 16, 8), padding="SAME", stride_w=2, stride_h=2, name="tconv")
    m = g.op("MEAN", [d, g.const(np.array([1, 2], np.int32))], (1, 16))
    fc = g.op("FULLY_CONNECTED", [m, g.const(w(32, 16), "fc/w"), g.const(w(32), "fc/b")], (1, 32),
              fused_activation_function="RELU")
    rs = g.op("RESHAPE", [fc, g.const(np.array([1, 4, 8], np.int32))], (1, 4, 8))
    bmm = g.op("BATCH_MATMUL", [rs, g.const(w(8, 12), "bmm/rhs")], (1, 4, 12), name="bmm")
    gat = g.op("GATHER", [g.const(w(20, 16), "embedding/table"), a["tokens"]], (1, 6, 16), axis=0, name="gathered")
    emb = g.op("EMBEDDING_LOOKUP", [a["ids"], g.const(w(20, 16), "lookup/table")], (6, 16), name="looked_up")
    nc, ni = 8, 4
    lw = [g.const(w(nc, ni), f"lstm/wi{k}") for k in range(4)]
    lr = [g.const(w(nc, nc), f"lstm/wr{k}") for k in range(4)]
    lb = [g.const(np.zeros(nc, np.float32), f"lstm/b{k}") for k in range(4)]
    n = g.no_value()
    h = g.add(tfl.VariableOp(result_types=[TensorType(Float32Type(), [1, nc])])).results[0]
    cs = g.add(tfl.VariableOp(result_types=[TensorType(Float32Type(), [1, nc])])).results[0]
    lstm = g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [a["seq"], *lw, *lr, n, n, n, *lb, n, n, h, cs, n, n, n, n], (1, 3, nc),
                fused_activation_function="TANH", time_major=False, name="lstm")
    return g.module([tc, bmm, gat, emb, lstm, d], ["tconv", "bmm", "gathered", "looked_up", "lstm", "dw"])


def _zoo_inputs(n: int = 4) -> dict[str, np.ndarray]:
    ins = sample_inputs(hybrid_zoo(), n=n, seed=3)
    ins["tokens"] = np.random.default_rng(1).integers(0, 20, size=(n, 1, 6)).astype(np.int32)
    ins["ids"] = np.random.default_rng(2).integers(0, 20, size=(n, 6)).astype(np.int32)
    return ins


def _litert_ops(model: bytes) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return [{"op": o["op_name"], "inputs": [tensors.get(i) for i in o["inputs"]]} for o in it._get_ops_details()]


# ---------------------------------------------------------------------------------------
# quantize-weights: unit and property tests
# ---------------------------------------------------------------------------------------


@FAST
@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
               elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False)),
    st.data(),
)
def test_weight_quantization_is_symmetric_int8_within_half_a_step(w: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.one_of(st.none(), st.integers(0, w.ndim - 1)))
    q, t = quantize_weight(w, axis)
    assert q.dtype == np.int8 and q.shape == w.shape
    assert (t.qmin, t.qmax) == (-127, 127) and not np.any(t.zero_point_array())
    assert np.all(np.abs(q.astype(np.int32)) <= 127)
    s = t.scale_array().astype(np.float32)
    if axis is not None:
        assert t.axis.data == axis and len(s) == w.shape[axis]
        s = s.reshape([-1 if d == axis else 1 for d in range(w.ndim)])
        absmax = np.max(np.abs(w), axis=tuple(d for d in range(w.ndim) if d != axis), keepdims=True)
    else:
        assert not t.per_axis
        absmax = np.max(np.abs(w), keepdims=True)
    err = np.abs(w.astype(np.float64) - q * s.astype(np.float64))
    assert np.all(err <= s.astype(np.float64) * 0.5 * (1 + 1e-5))
    # the largest magnitude of every non-zero slice lands on +-127
    qmax = np.max(np.abs(q.astype(np.int32)), axis=tuple(d for d in range(w.ndim) if d != axis) if axis is not None else None,
                  keepdims=True)
    assert np.all((qmax == 127) | (absmax == 0))


def _weight_slots(module: ModuleOp) -> list[tuple[tfl.TflOp, int]]:
    return [
        (o, i) for o in module.walk() if isinstance(o, tfl.TflOp) and o.BUILTIN in WEIGHT_INPUTS
        for i in WEIGHT_INPUTS[o.BUILTIN] if i < len(o.inputs)
    ]


@FAST
@given(tt.tfl_graphs(max_ops=5), st.sampled_from([1, 16, 64, 1024]), st.booleans())
def test_quantize_weights_guarantees(module: ModuleOp, min_elements: int, per_channel: bool) -> None:
    original = module.clone()
    before = {(id(o), i): o.inputs[i] for o, i in _weight_slots(original)}
    spec = f"quantize-weights{{min-elements={min_elements} per-channel={'true' if per_channel else 'false'}}}"
    _run(module, spec)
    text = print_module(module)
    # every weight slot of at least min-elements is an int8 constant (or its DEQUANTIZE)
    for (o, i), (o0, i0) in zip(_weight_slots(module), _weight_slots(original)):
        v, v0 = o.inputs[i], o0.inputs[i0]
        if not isinstance(v0.owner, tfl.ConstOp):
            assert v.owner is not None
            continue
        w0 = v0.owner.numpy()
        src = v.owner.inputs[0] if isinstance(v.owner, tfl.DequantizeOp) else v
        if w0.size < min_elements:
            assert isinstance(_elem(v), Float32Type) and isinstance(v.owner, tfl.ConstOp)
            continue
        q = quantized_element(src.type)
        assert q is not None and q.bits == 8 and (q.qmin, q.qmax) == (-127, 127)
        assert not np.any(q.zero_point_array())
        hybrid = v is src
        if o.BUILTIN == "DEPTHWISE_CONV_2D":
            assert hybrid == per_channel and (q.axis.data == 3 if per_channel else not q.per_axis)
        elif o.BUILTIN in ("CONV_2D", "FULLY_CONNECTED"):
            assert hybrid and (q.axis.data == 0 if per_channel else not q.per_axis)
        if o.BUILTIN == "FULLY_CONNECTED":
            assert o.option("asymmetric_quantize_inputs")
        # dequantized weights are within half a step of the float ones
        s = q.scale_array()
        if q.per_axis:
            s = s.reshape([-1 if d == q.axis.data else 1 for d in range(w0.ndim)])
        assert np.all(np.abs(src.owner.numpy() * s - w0) <= s * 0.5 * (1 + 1e-5))
    assert len(before) == len(_weight_slots(module))
    # activations stay float32: every op result is float32 except int8 GATHER outputs
    for o in module.walk():
        if isinstance(o, tfl.TflOp) and not isinstance(o, tfl.GatherOp):
            assert all(isinstance(_elem(r), Float32Type) for r in o.results), o.name
    # deterministic and idempotent
    again = _run(original.clone(), spec)
    assert print_module(again) == text
    assert print_module(_run(module, spec)) == text


@FAST
@given(tt.tfl_graphs(max_ops=4))
def test_dynamic_random_graphs_run_in_litert(module: ModuleOp) -> None:
    float_model = write_flatbuffer(module)
    _run(module, "quantize-weights{min-elements=1}")
    q_model = write_flatbuffer(module)
    ins = sample_inputs(module, n=2, seed=0)
    ref = run_tflite(float_model, ins)
    got = run_tflite(q_model, ins)
    for r, g in zip(ref, got):
        assert r.shape == g.shape and np.all(np.isfinite(g))
        if np.sum(r.astype(np.float64) ** 2) > 1e-6:
            assert sqnr_db(r, g) > 10


def test_dynamic_zoo_in_litert() -> None:
    ins = _zoo_inputs()
    float_model = write_flatbuffer(hybrid_zoo())
    ref = run_tflite(float_model, ins)
    # default threshold: these weights are all under 1024 elements and stay float
    m = _run(hybrid_zoo(), "quantize-weights")
    assert not any(quantized_element(c.result.type) for c in _consts(m))
    # threshold 32: every weight is int8, hybrid ops read it directly
    q_model = write_flatbuffer(_run(hybrid_zoo(), "quantize-weights{min-elements=32}"))
    got = run_tflite(q_model, ins)
    for name, r, g in zip(["tconv", "bmm", "gathered", "looked_up", "lstm", "dw"], ref, got):
        assert sqnr_db(r, g) > 30, name
    ops = _litert_ops(q_model)
    kinds = [o["op"] for o in ops]
    assert kinds.count("DEQUANTIZE") == 1  # the gather table's, run once (constant input)
    for o in ops:
        if o["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL", "EMBEDDING_LOOKUP"):
            weights = [t for t in o["inputs"] if t is not None and t["dtype"] == np.int8]
            assert len(weights) == 1, o["op"]
            per_channel = len(weights[0]["quantization_parameters"]["scales"]) > 1
            assert per_channel == (o["op"] != "BATCH_MATMUL"), o["op"]
        if o["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            assert sum(t is not None and t["dtype"] == np.int8 for t in o["inputs"]) == 8
    # size: the int8 weights take a quarter of their float bytes (per-channel scales and zero
    # points cost 12 bytes a channel, noticeable on a model this small)
    int8_bytes = sum(c.numpy().size for c in _consts(read_flatbuffer(q_model)) if quantized_element(c.result.type))
    assert len(float_model) - len(q_model) >= 2 * int8_bytes


def test_dynamic_big_gather_table_is_gathered_as_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    import tflquant.passes.quantize_weights as qw

    monkeypatch.setattr(qw, "GATHER_DEQUANTIZE_ONCE_MAX", 100)
    ins = _zoo_inputs()
    ref = run_tflite(write_flatbuffer(hybrid_zoo()), ins)
    # one scale (per tensor): int8 rows gathered, then dequantized
    m = _run(hybrid_zoo(), "quantize-weights{min-elements=32 granularity=tensor}")
    gather = next(o for o in m.walk() if isinstance(o, tfl.GatherOp))
    q = quantized_element(gather.outputs[0].type)
    assert q is not None and not q.per_axis
    (use,) = gather.outputs[0].uses
    assert isinstance(use.operation, tfl.DequantizeOp)
    got = run_tflite(write_flatbuffer(m), ins)
    assert sqnr_db(ref[2], got[2]) > 30
    # the default (8 bits): int16 rows, one scale, gathered then dequantized (EMBEDDING_BITS)
    m = _run(hybrid_zoo(), "quantize-weights{min-elements=32}")
    gather = next(o for o in m.walk() if isinstance(o, tfl.GatherOp))
    q = quantized_element(gather.outputs[0].type)
    assert q is not None and not q.per_axis and q.bits == 16
    got = run_tflite(write_flatbuffer(m), ins)
    assert sqnr_db(ref[2], got[2]) > 60
    # per channel at 8 bits asked for: EMBEDDING_LOOKUP of per-row int8 rows (issue 12)
    m = _run(hybrid_zoo(), 'quantize-weights{min-elements=32 op-bits="GATHER=8"}')
    lookup = next(o for o in m.walk() if isinstance(o, tfl.EmbeddingLookupOp))
    q = quantized_element(lookup.operands[1].type)
    assert q is not None and q.per_axis and q.axis.data == 0
    assert not any(isinstance(o, tfl.GatherOp) for o in m.walk())
    got = run_tflite(write_flatbuffer(m), ins)
    assert sqnr_db(ref[2], got[2]) > 30


def test_dynamic_per_tensor_zoo_in_litert() -> None:
    ins = _zoo_inputs()
    ref = run_tflite(write_flatbuffer(hybrid_zoo()), ins)
    q_model = write_flatbuffer(_run(hybrid_zoo(), "quantize-weights{min-elements=32 per-channel=false}"))
    got = run_tflite(q_model, ins)
    for r, g in zip(ref, got):
        assert sqnr_db(r, g) > 25
    ops = _litert_ops(q_model)
    dw = next(o for o in ops if o["op"] == "DEPTHWISE_CONV_2D")
    assert dw["inputs"][1]["dtype"] == np.float32  # per-tensor depthwise: weight-only, DEQUANTIZE
    assert [o["op"] for o in ops].count("DEQUANTIZE") == 2


def test_dynamic_quantizes_fp16_weights_from_their_fp16_values() -> None:
    ins = _zoo_inputs()
    f16 = write_flatbuffer(_run(hybrid_zoo(), "cast-weights-f16"))
    m = _run(read_flatbuffer(f16), "quantize-weights{min-elements=32}")
    # every weight is int8 now (its fp16 constant and DEQUANTIZE are gone) and the hybrid ops'
    # biases are float32 again (XNNPACK cannot prepare a hybrid op with an fp16 bias)
    for o, i in _weight_slots(m):
        src = o.inputs[i].owner
        if isinstance(src, tfl.NoValueOp):
            continue
        if isinstance(src, tfl.DequantizeOp):
            src = src.inputs[0].owner
        assert quantized_element(src.results[0].type) is not None, o.name
        if o.BUILTIN != "GATHER":  # a small gather table is dequantized once, by design
            assert not any(isinstance(v.owner, tfl.DequantizeOp) for v in o.inputs), o.name
    assert not any(isinstance(_elem(c.result), Float16Type) for c in _consts(m))
    ref = run_tflite(write_flatbuffer(hybrid_zoo()), ins)
    got = run_tflite(write_flatbuffer(m), ins)
    for r, g in zip(ref, got):
        assert sqnr_db(r, g) > 30


def test_dynamic_api_report_and_errors(tmp_path: Path) -> None:
    model = tmp_path / "zoo.tflite"
    model.write_bytes(write_flatbuffer(hybrid_zoo()))
    res = tflquant.quantize(str(model), mode="dynamic", min_weight_elements=32)
    kinds = {o.op_type: o.kind for o in res.report.ops}
    assert kinds["CONV_2D"] == "hybrid" and kinds["FULLY_CONNECTED"] == "hybrid"
    assert res.model == tflquant.quantize(str(model), mode="dynamic", min_weight_elements=32).model  # deterministic
    bad = hybrid_zoo()
    w = next(c for c in _consts(bad) if "fc/w" in str(c.attributes.get("names")))
    arr = w.numpy().copy()
    arr[0, 0] = np.inf
    from tflquant.ir import dense_from_numpy

    w.properties["value"] = dense_from_numpy(arr)
    with pytest.raises(tflquant.TflquantError, match="fc/w.*NaN or infinite"):
        _run(bad, "quantize-weights{min-elements=32}")


def _float64_sqnr(w: np.ndarray, q: np.ndarray, s: np.ndarray) -> float:
    w = w.astype(np.float64)
    return float(10 * np.log10(np.sum(w * w) / np.sum((w - q.astype(np.float64) * s) ** 2)))


def test_weights_carry_the_sqnr_measured_while_rounding() -> None:
    # per-channel axis-0 weights and GATHER tables carry tflquant.sqnr: exactly sqnr_db's
    # value (what the check and the report would compute), the SQNR to float64 precision
    from tflquant.passes.quantize_weights import SQNR_ATTR, sqnr_db

    zoo = hybrid_zoo()
    floats = {str(c.attributes["names"].data[0].data): c.numpy().copy() for c in _consts(zoo) if "names" in c.attributes}
    _run(zoo, "quantize-weights{min-elements=32}")
    measured = {}
    for c in _consts(zoo):
        e = quantized_element(c.result.type)
        if e is None:
            continue
        name = str(c.attributes["names"].data[0].data)
        q, w = c.numpy(), floats[name]
        shape = [1] * q.ndim
        if e.per_axis:
            shape[e.axis.data] = -1
        s = e.scale_array().astype(np.float32).reshape(shape)
        if SQNR_ATTR in c.attributes:
            db = c.attributes[SQNR_ATTR].value.data
            assert db == sqnr_db(w, q, s), name
            assert db == 99.0 or abs(db - _float64_sqnr(w, q, s)) < 1e-3, name
            measured[name] = db
    # FC and conv per output channel; not the per-tensor BATCH_MATMUL rhs nor the int16 GATHER table
    assert {"fc/w", "conv/w"} <= set(measured) and not {"bmm/rhs", "embedding/table"} & set(measured)


def test_dynamic_check_reads_the_measured_sqnr(tmp_path: Path) -> None:
    # the measured fallback takes a weight's recorded SQNR as it is: a weight recorded
    # below the floor keeps its op float, one without the record is measured again
    from xdsl.dialects.builtin import Float64Type, FloatAttr

    from tflquant import api
    from tflquant.passes.quantize_weights import SQNR_ATTR

    zoo = hybrid_zoo()
    originals = api._float_weights(zoo, 32)
    _run(zoo, "quantize-weights{min-elements=32}")
    fc_w = next(c for c in _consts(zoo) if "fc/w" in str(c.attributes.get("names")))
    conv_w = next(c for c in _consts(zoo) if "conv/w" in str(c.attributes.get("names")) and SQNR_ATTR in c.attributes)
    honest = conv_w.attributes[SQNR_ATTR].value.data
    fc_w.attributes[SQNR_ATTR] = FloatAttr(1.0, Float64Type())
    del conv_w.attributes[SQNR_ATTR]
    db: dict[str, float] = {}
    poor = api._poor_weights(zoo, originals, db)
    assert db["fc/w"] == 1.0 and db["conv/w"] == round(honest, 2)
    assert len(poor) == 1 and "'fc/w' measured 1.0 dB" in next(iter(poor.values()))


@FAST
@given(
    st.sampled_from([(40, 16), (9, 4, 8), (300, 2), (3, 700)]),
    st.sampled_from([8, 4, 2]),
    st.floats(0.0, 3.0),
    st.data(),
)
def test_gather_table_candidates_equal_rounding_each_axis(shape: tuple[int, ...], bits: int, tail: float, data: st.DataObject) -> None:
    # one sweep over the table gives quantize_weight's codes and scales along the axis whose
    # error is lower (the features' on a tie; float64 errors decide where they differ clearly)
    from tflquant.passes.quantize_weights import _table_candidates, quantize_weight, sqnr_db

    r = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    w = (r.standard_normal(shape) * np.exp(tail * r.standard_normal(shape))).astype(np.float32)
    if data.draw(st.booleans()):
        w[0] = 0.0  # an all-zero row (scale 1.0)
    if data.draw(st.booleans()):
        w[..., -1] = 0.0  # an all-zero feature
    axis, q, s, db = _table_candidates(w, (1 << (bits - 1)) - 1)
    errs = {}
    for a in (w.ndim - 1, 0):
        qa, ta = quantize_weight(w, a, bits)
        sa = ta.scale_array().astype(np.float32).reshape([-1 if d == a else 1 for d in range(w.ndim)])
        errs[a] = float(np.sum((w.astype(np.float64) - qa * sa.astype(np.float64)) ** 2))
        if a == axis:
            np.testing.assert_array_equal(q, qa)
            np.testing.assert_array_equal(s, ta.scale_array().astype(np.float32))
            assert db == sqnr_db(w, qa, sa)
    other = 0 if axis == w.ndim - 1 else w.ndim - 1
    assert errs[axis] <= errs[other] * (1 + 1e-5)
    w[(0,) * w.ndim] = np.nan
    assert _table_candidates(w, 127) is None


def test_release_payload_leaves_small_mapped_files_alone(tmp_path: Path) -> None:
    import mmap

    import tflquant.fileio as fileio
    from tflquant.ir import release_payload

    path = tmp_path / "blob"
    path.write_bytes(np.arange(4 * mmap.PAGESIZE, dtype=np.float32).tobytes())
    m = fileio.map_file(path)
    arr = np.frombuffer(memoryview(m), np.float32)[mmap.PAGESIZE // 4 :]  # whole pages from the second on
    assert not release_payload(arr, min_file=len(m) + 1)  # a file below the size: kept resident
    assert not release_payload(np.ones(8 * mmap.PAGESIZE, np.float32), min_file=1)  # not mapped: nothing to drop
    assert release_payload(arr, min_file=len(m))
    assert release_payload(arr)
    assert float(arr[-1]) == 4 * mmap.PAGESIZE - 1  # read again: back from the file


# ---------------------------------------------------------------------------------------
# cast-weights-f16
# ---------------------------------------------------------------------------------------


@FAST
@given(tt.tfl_graphs(max_ops=5))
def test_cast_weights_f16_guarantees(module: ModuleOp) -> None:
    originals = {c.result: c.numpy().copy() for c in _consts(module) if isinstance(_elem(c.result), Float32Type)}
    readers = {v: [(u.operation, u.index) for u in v.uses] for v in originals}
    _run(module, "cast-weights-f16")
    text = print_module(module)
    for c in _consts(module):
        assert not isinstance(_elem(c.result), Float32Type) or not c.result.uses
    for v, w in originals.items():
        for op, idx in readers[v]:
            dq = op.operands[idx].owner
            assert isinstance(dq, tfl.DequantizeOp) and isinstance(_elem(dq.outputs[0]), Float32Type)
            half = dq.inputs[0].owner.numpy()
            assert half.dtype == np.float16
            np.testing.assert_array_equal(half, np.clip(w, -FP16_MAX, FP16_MAX).astype(np.float16))
    # an fp16 model is recognised: a second run changes nothing
    assert print_module(_run(module, "cast-weights-f16")) == text
    for f in module.walk():
        if isinstance(f, func.FuncOp):
            assert all(isinstance(_elem(a), Float32Type) for a in f.body.block.args)


def test_float16_zoo_in_litert() -> None:
    ins = _zoo_inputs()
    float_model = write_flatbuffer(hybrid_zoo())
    h_model = write_flatbuffer(_run(hybrid_zoo(), "cast-weights-f16"))
    ref = run_tflite(float_model, ins)
    got = run_tflite(h_model, ins)
    for r, g in zip(ref, got):
        assert sqnr_db(r, g) > 50
    ops = _litert_ops(h_model)
    n_float_consts = sum(isinstance(_elem(c.result), Float32Type) for c in _consts(hybrid_zoo()))
    assert [o["op"] for o in ops].count("DEQUANTIZE") == n_float_consts
    # weights take half their bytes; each DEQUANTIZE, its tensor and padding cost ~100 bytes, which
    # matters on a model of 30 small constants (the shared models check the real ratio)
    f32_bytes = sum(4 * c.numpy().size for c in _consts(hybrid_zoo()) if isinstance(_elem(c.result), Float32Type))
    f16_bytes = sum(2 * c.numpy().size for c in _consts(read_flatbuffer(h_model)) if isinstance(_elem(c.result), Float16Type))
    assert f16_bytes * 2 == f32_bytes
    assert len(float_model) - len(h_model) >= f16_bytes - 120 * n_float_consts
    md = read_flatbuffer(h_model).attributes["tfl.metadata"]
    assert md.data["reduced_precision_support"].data == b"fp16accfp32"  # type: ignore[attr-defined]
    # converting the fp16 model again changes nothing (no double conversion)
    assert print_module(_run(read_flatbuffer(h_model), "cast-weights-f16")) == print_module(read_flatbuffer(h_model))
    res = tflquant.quantize(h_model, mode="float16")
    assert res.model == write_flatbuffer(read_flatbuffer(h_model))


def test_float16_clamps_to_the_fp16_range() -> None:
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    y = g.op("MUL", [g.x, g.const(np.array([1e6, -1e9, 3.0, 1e-9], np.float32), "k")], (1, 4))
    data = write_flatbuffer(_run(g.module([y]), "cast-weights-f16"))
    out = run_tflite(data, {"x": np.ones((1, 1, 4), np.float32)})[0]
    np.testing.assert_array_equal(out.reshape(-1), np.array([65504.0, -65504.0, 3.0, 0.0], np.float32))


# ---------------------------------------------------------------------------------------
# The reference models in ../shared against the TF converter
# ---------------------------------------------------------------------------------------

def _score_module():  # noqa: ANN202
    path = SHARED_MODELS.parent / "tools" / "score.py"
    spec = importlib.util.spec_from_file_location("shared_score", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("mode,tf_file", [("dynamic", "tf_dynamic.tflite"), ("float16", "tf_float16.tflite")])
def test_shared_models_match_or_beat_tf(shared_model: Path, mode: str, tf_file: str, tmp_path: Path) -> None:
    score = _score_module()
    res = tflquant.quantize(str(shared_model / "float.tflite"), mode=mode)
    ours = tmp_path / f"{mode}.tflite"
    res.save(ours)
    tf = shared_model / tf_file
    z = np.load(shared_model / "eval.npz")
    inputs = [z[k] for k in z.files if k != "labels"]  # all of eval.npz, as score.py
    ref = score.run(str(shared_model / "float.tflite"), inputs)
    got = score.run(str(ours), inputs)
    want = score.run(str(tf), inputs)
    for r, g, t in zip(ref, got, want):
        assert score.sqnr_db(r, g) >= score.sqnr_db(r, t), f"{shared_model.name} {mode}: SQNR below TF's"
    assert os.path.getsize(ours) <= os.path.getsize(tf), f"{shared_model.name} {mode}: larger than TF's"
    float_size = os.path.getsize(shared_model / "float.tflite")
    if mode == "float16":
        assert os.path.getsize(ours) < 0.7 * float_size
    else:
        # every weight of 1024+ elements read by a hybrid-capable op is int8
        m = res.module
        assert m is not None
        for o, i in _weight_slots(m):
            v = o.inputs[i]
            if isinstance(v.owner, tfl.ConstOp) and v.owner.numpy().size >= 1024:
                assert isinstance(_elem(v), UniformQuantizedType), f"{o.name} weight stayed float"
        assert os.path.getsize(ours) < 0.6 * float_size


def test_shared_fp16_models_are_recognised(shared_model: Path, tmp_path: Path) -> None:
    """TF's float16 files (weights already fp16 behind DEQUANTIZE): float16 mode leaves them
    as they are; dynamic mode quantizes their weights from the fp16 values and stays within
    3 dB of quantizing the float model (the fp16 rounding of the biases, norms and small
    weights it keeps comes first: tiny_transformer 47.6 against 50.1 dB with an int16
    embedding table, 46.6 against 47.7 with an int8 one)."""
    score = _score_module()
    src = (shared_model / "tf_float16.tflite").read_bytes()
    assert tflquant.quantize(src, mode="float16").model == write_flatbuffer(read_flatbuffer(src))
    z = np.load(shared_model / "eval.npz")
    inputs = [z[k] for k in z.files if k != "labels"]
    ref = score.run(str(shared_model / "float.tflite"), inputs)
    sq = {}
    for label, model in (("fp16", src), ("float", (shared_model / "float.tflite").read_bytes())):
        out = tmp_path / f"dynamic_from_{label}.tflite"
        tflquant.quantize(model, mode="dynamic").save(out)
        got = score.run(str(out), inputs)
        sq[label] = min(score.sqnr_db(r, g) for r, g in zip(ref, got))
    assert sq["fp16"] >= sq["float"] - 3.0, sq


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_rounding_skips_the_clip_only_where_no_code_can_pass_qmax(bits: int) -> None:
    # the clip is left out for slices whose scales are all normal floats: there rint(max|w| / s)
    # never passes qmax (millions of maxima over the whole float32 range, each a weight value
    # itself); a slice with a subnormal scale is clipped, and its codes still stay in range
    from tflquant.passes.quantize_weights import _F32_TINY, _quantize_rows, _table_candidates

    qmax = (1 << (bits - 1)) - 1
    r = np.random.default_rng(bits)
    amax = r.integers(1, 0x7F7FFFFF, 1 << 20, dtype=np.uint32).view(np.float32)  # every positive finite float32 kind
    amax = np.concatenate([amax, np.nextafter(np.float32(qmax) * _F32_TINY, [0, np.inf] * 50).astype(np.float32)])
    s = (amax / np.float32(qmax)).astype(np.float32)
    s[~(s > 0)] = 1.0
    normal = s >= _F32_TINY
    assert normal.any() and (~normal).any()
    assert np.all(np.abs(np.rint(amax[normal] / s[normal])) <= qmax)
    assert np.all(np.abs(np.rint(-amax[normal] / s[normal])) <= qmax)
    # rows with subnormal scales (clipped) beside normal ones, through both rounding sweeps
    k = 64
    w = (r.standard_normal((96, k)) * np.float32(1e-38) * np.exp(8 * r.standard_normal((96, 1)))).astype(np.float32)
    w[::7] *= np.float32(1e-7)  # maxima near qmax * tiny and below
    w[5] = 0.0
    w[:, 3] = -np.abs(w).max(axis=1)  # each row's max|w| on a negative value
    s_ref = (np.abs(w).max(axis=1) / np.float32(qmax)).astype(np.float32)
    s_ref[~(s_ref > 0)] = 1.0
    assert (s_ref < _F32_TINY).any() and (s_ref >= _F32_TINY).any()
    ref = np.clip(np.rint(w / s_ref[:, None]), -qmax, qmax).astype(np.int8)
    q, scales, _ = _quantize_rows(w, qmax, measure=True)
    np.testing.assert_array_equal(scales, s_ref)
    np.testing.assert_array_equal(q, ref)
    axis, qt, st_, _db = _table_candidates(w, qmax)
    if axis == 0:
        np.testing.assert_array_equal(qt, ref)
    assert np.abs(qt.astype(np.int16)).max() <= qmax


def test_row_maxima_from_bit_patterns_equal_numpys() -> None:
    # abs_row_max reads float32 magnitudes as uint32: the same maxima as np.max(axis=1), a NaN
    # kept (above an infinity), zeros, subnormals and the largest floats included
    from tflquant.calibration.weight_rounding import abs_row_max as _row_max

    r = np.random.default_rng(7)
    a = (r.standard_normal((400, 37)) * np.exp(np.clip(40 * r.standard_normal((400, 1)), -100, 80))).astype(np.float32)
    a[1] = 0.0
    a[2, 3] = -0.0
    a[3, 5] = np.nan
    a[4, 6] = np.inf
    a[5, [7, 8]] = [np.inf, -np.nan]
    a[6] = np.float32(1e-45) * np.arange(37, dtype=np.float32)  # subnormals
    a[7, 9] = np.finfo(np.float32).max
    a = np.abs(a)
    got = _row_max(a)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.max(a, axis=1))  # (NaN equal to NaN)
    assert np.isnan(got[3]) and np.isnan(got[5]) and got[4] == np.inf
    np.testing.assert_array_equal(_row_max(a.astype(np.float64)), np.max(a.astype(np.float64), axis=1))
