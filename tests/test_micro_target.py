"""`target="micro"` / `--target micro` and the default `target="litert"` (issue 10, defect 4).

- micro: every model either runs on TFLite Micro (its Python interpreter, arena large enough
  for the model), matching LiteRT within a quantization step or two, or is refused with ONE
  TflquantError listing every op TFLM has no kernel for (type, output tensor name, why).
  Lowerings in legalize-for-micro: int8 SQRT (and GELU, EXP, LOG, RELU_N1_TO_1) as a table
  lookup, SELECT (v1) as SELECT_V2, a 6-D TRANSPOSE with size-1 dims as RESHAPE, 5-D
  TRANSPOSE, RESHAPE, TILE as RESHAPE, BROADCAST_TO, RESHAPE.
- litert: no Micro lowering (GELU stays GELU), dynamic batch kept; runs in LiteRT.
- The rules of passes/_micro_ops.py are probed against the installed TFLM interpreter on
  one-op integer models (a sample: each kind of rule).
"""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest
from models import GraphBuilder, sample_inputs, ttype
from xdsl.dialects.builtin import IntegerType

import tflquant
from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.ir import dense_from_numpy
from tflquant.scoring import litert_run, sqnr_db, tflm_run
from tflquant.tflite.writer import write_flatbuffer

I8 = IntegerType(8)


def _q8(scale: float = 0.05, zp: int = 3) -> UniformQuantizedType:
    return UniformQuantizedType.make(I8, scale, zp)


def _quantize(model: bytes, calib: dict, target: str, **kw: object) -> tflquant.QuantizationResult:
    return tflquant.quantize(model, representative_dataset=calib, io_type=kw.pop("io_type", "int8"), target=target, **kw)  # type: ignore[arg-type]


def _ops(r: tflquant.QuantizationResult) -> list[str]:
    return [o.op_type for o in r.report.ops]


def _assert_micro_matches_litert(model: bytes, inputs: list[np.ndarray], steps: int = 1) -> None:
    """TFLM's outputs equal LiteRT's builtin kernels' within `steps` output steps."""
    lit = litert_run(model, inputs, dequantize=False, delegates=False)
    mic = tflm_run(model, inputs)
    assert len(lit) == len(mic)
    for a, b in zip(lit, mic):
        d = np.abs(a.astype(np.int64) - b.reshape(a.shape).astype(np.int64))
        assert d.max() <= steps, f"TFLM differs from LiteRT by {d.max()} steps"


# ---------------------------------------------------------------------------------------
# Models, one per kind of op TFLM lacks
# ---------------------------------------------------------------------------------------


def _sqrt_model() -> GraphBuilder:
    g = GraphBuilder("main", {"x": ((1, 4, 16), np.float32)})
    a = g.op("ABS", [g.x], (1, 4, 16), name="abs")
    s = g.op("SQRT", [a], (1, 4, 16), name="sqrt")
    y = g.op("GELU", [g.op("SUB", [s, g.const(np.full((1, 1, 16), 0.8, np.float32))], (1, 4, 16), name="centre")], (1, 4, 16), name="gelu")
    return g.module([y])


def _select_model() -> GraphBuilder:
    """SELECT (v1) with a rank-1 condition along dim 0 (TFLM has SELECT_V2 only), and a
    broadcasting SELECT_V2 (condition 1x1x8, a constant 1x1x8 branch)."""
    g = GraphBuilder("main", {"x": ((4, 8), np.float32)})
    m = g.op("MEAN", [g.x, g.const(np.array([1], np.int32))], (4,), keep_dims=False, name="row_mean")
    cond = g.op("LESS", [m, g.const(np.zeros((), np.float32))], (4,), out_dtype=np.bool_, name="row_negative")
    sel = g.op("SELECT", [cond, g.x, g.op("RELU", [g.x], (4, 8), name="relu")], (4, 8), name="select_rows")
    x3 = g.op("RESHAPE", [sel, g.const(np.array([1, 4, 8], np.int32))], (1, 4, 8), name="as3d")
    c2 = g.op("GREATER", [g.op("MEAN", [x3, g.const(np.array([1], np.int32))], (1, 1, 8), keep_dims=True, name="col_mean"),
                          g.const(np.zeros((1, 1, 8), np.float32))], (1, 1, 8), out_dtype=np.bool_, name="col_positive")
    y = g.op("SELECT_V2", [c2, x3, g.const(np.full((1, 1, 8), 0.25, np.float32))], (1, 4, 8), name="select_cols")
    return g.module([y])


def _transpose6_model(unit_dims: bool = True) -> GraphBuilder:
    shape6, perm = ((1, 2, 1, 3, 4, 1), [0, 3, 2, 1, 4, 5]) if unit_dims else ((2, 2, 2, 2, 2, 2), [5, 4, 3, 2, 1, 0])
    out6 = tuple(shape6[p] for p in perm)
    g = GraphBuilder("main", {"x": ((1, 24) if unit_dims else (1, 64), np.float32)})
    r = g.op("RESHAPE", [g.x, g.const(np.array(shape6, np.int32))], shape6, name="to6d")
    t = g.op("TRANSPOSE", [r, g.const(np.array(perm, np.int32))], out6, name="transpose6d")
    y = g.op("RESHAPE", [t, g.const(np.array([1, -1], np.int32))], (1, int(np.prod(shape6))), name="flat")
    return g.module([y])


def _int32_transpose6_model() -> GraphBuilder:
    """A 6-D int32 TRANSPOSE of token ids next to an int8 path (TFLM: rank and type)."""
    g = GraphBuilder("main", {"x": ((1, 8), np.float32), "ids": ((1, 2, 1, 3, 1, 2), np.int32)})
    y = g.op("RELU", [g.x], (1, 8), name="relu")
    t = g.op("TRANSPOSE", [g.args["ids"], g.const(np.array([0, 3, 2, 1, 4, 5], np.int32))], (1, 3, 1, 2, 1, 2), out_dtype=np.int32, name="ids_t")
    return g.module([y, t])


@functools.cache
def _case(name: str) -> tuple[bytes, dict, list[np.ndarray]]:
    module = {
        "sqrt": _sqrt_model,
        "select": _select_model,
        "transpose6": _transpose6_model,
        "transpose6_full": lambda: _transpose6_model(unit_dims=False),
        "int32_transpose6": _int32_transpose6_model,
    }[name]()
    calib = sample_inputs(module, n=64, seed=1)
    ev = list(sample_inputs(module, n=8, seed=2).values())
    return write_flatbuffer(module), calib, ev


# ---------------------------------------------------------------------------------------
# micro: lowered and run, or refused naming the op
# ---------------------------------------------------------------------------------------


def test_int8_sqrt_and_gelu_become_table_lookups_that_run_on_micro() -> None:
    model, calib, ev = _case("sqrt")
    r = _quantize(model, calib, "micro")
    assert "SQRT" not in _ops(r) and "GELU" not in _ops(r) and _ops(r).count("GATHER") == 2
    assert r.report.pipeline.endswith("legalize-for-micro,check-micro")
    # LiteRT's own int8 SQRT is not a table (fixed point): within 2 steps after GELU, and the
    # table (rounded to nearest) is at least as accurate against the float model
    lr = _quantize(model, calib, "litert")
    assert "SQRT" in _ops(lr) and "GELU" in _ops(lr)
    a = litert_run(lr.model, ev, dequantize=False, delegates=False)[0]
    b = litert_run(r.model, ev, dequantize=False, delegates=False)[0]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    ref = litert_run(model, ev)[0]
    assert sqnr_db(ref, litert_run(r.model, ev)[0]) >= sqnr_db(ref, litert_run(lr.model, ev)[0]) - 0.1
    _assert_micro_matches_litert(r.model, ev)


def test_uint8_io_for_micro_runs_on_micro() -> None:
    model, calib, ev = _case("sqrt")
    r = _quantize(model, calib, "micro", io_type="uint8")
    assert r.report.inputs[0].split()[1].startswith("uint8")
    _assert_micro_matches_litert(r.model, ev)


def test_select_v1_becomes_select_v2_and_broadcasting_select_runs_on_micro() -> None:
    model, calib, ev = _case("select")
    r = _quantize(model, calib, "micro")
    assert "SELECT" not in _ops(r) and _ops(r).count("SELECT_V2") == 2
    lr = _quantize(model, calib, "litert")
    assert "SELECT" in _ops(lr)
    a = litert_run(lr.model, ev, dequantize=False, delegates=False)[0]
    b = litert_run(r.model, ev, dequantize=False, delegates=False)[0]
    assert np.array_equal(a, b)
    _assert_micro_matches_litert(r.model, ev, steps=0)


def test_6d_transpose_with_unit_dims_is_collapsed_for_micro() -> None:
    model, calib, ev = _case("transpose6")
    r = _quantize(model, calib, "micro")
    from tflquant.tflite.reader import read_flatbuffer

    ranks = [len(o.operands[0].type.get_shape()) for o in read_flatbuffer(r.model).walk() if o.name == "tfl.transpose"]
    assert ranks and max(ranks) <= 5
    lr = _quantize(model, calib, "litert")
    a = litert_run(lr.model, ev, dequantize=False, delegates=False)[0]
    assert np.array_equal(a, litert_run(r.model, ev, dequantize=False, delegates=False)[0])
    _assert_micro_matches_litert(r.model, ev, steps=0)


def test_micro_refuses_in_one_error_every_op_it_cannot_run() -> None:
    # a 6-D int32 TRANSPOSE: TFLM's TRANSPOSE takes float32/int8/int16, up to 5 dims
    model, calib, _ = _case("int32_transpose6")
    with pytest.raises(tflquant.TflquantError, match=r"TFLite Micro cannot run 1 op .*TRANSPOSE 'ids_t': input is int32"):
        _quantize(model, calib, "micro")
    # a 6-D int8 TRANSPOSE with no size-1 dims cannot be collapsed: refused by rank
    model, calib, _ = _case("transpose6_full")
    with pytest.raises(tflquant.TflquantError, match=r"TRANSPOSE 'transpose6d': rank 6: TFLite Micro's TRANSPOSE takes at most 5"):
        _quantize(model, calib, "micro")
    # several kinds in one model, with an op type TFLM has no kernel for: one error, all listed
    g = GraphBuilder("main", {"x": ((1, 8), np.float32), "ids": ((1, 2, 1, 3, 1, 2), np.int32), "v": ((2, 3), np.int32)})
    y = g.op("RELU", [g.x], (1, 8), name="relu")
    t = g.op("TRANSPOSE", [g.args["ids"], g.const(np.array([0, 3, 2, 1, 4, 5], np.int32))], (1, 3, 1, 2, 1, 2), out_dtype=np.int32, name="ids_t")
    gi = g.op("GATHER", [g.args["v"], g.const(np.array([1, 0], np.int32))], (2, 3), out_dtype=np.int32, axis=0, name="rows")
    p = g.op("REDUCE_PROD", [gi, g.const(np.array([1], np.int32))], (2,), out_dtype=np.int32, keep_dims=False, name="prod")
    m = g.module([y, t, p])
    with pytest.raises(tflquant.TflquantError) as e:
        _quantize(write_flatbuffer(m), sample_inputs(m, n=16, seed=1), "micro")
    msg = str(e.value)
    assert msg.startswith("TFLite Micro cannot run 3 ops of this model (target micro): ") and "\n" not in msg
    assert "TRANSPOSE 'ids_t': input is int32" in msg
    assert "GATHER 'rows': input is int32: TFLite Micro's GATHER takes float32, int8" in msg
    assert "REDUCE_PROD 'prod': TFLite Micro has no kernel for this op type" in msg


def test_litert_target_runs_what_micro_refuses() -> None:
    for name in ("int32_transpose6", "transpose6_full"):
        model, calib, ev = _case(name)
        r = _quantize(model, calib, "litert")
        assert "TRANSPOSE" in _ops(r)
        litert_run(r.model, ev)


def test_micro_judges_float_fallback_ops_too() -> None:
    """Float I/O: the float ops left must have TFLM float kernels (REDUCE_PROD, kept float
    here, has no TFLM kernel at all)."""
    g = GraphBuilder("main", {"x": ((1, 8), np.float32)})
    y = g.op("REDUCE_PROD", [g.op("RELU", [g.x], (1, 8), name="relu"), g.const(np.array([1], np.int32))], (1,), keep_dims=False, name="prod")
    m = g.module([y])
    r = _quantize(write_flatbuffer(m), sample_inputs(m, n=16, seed=1), "litert", io_type="float32", keep_float=["REDUCE_PROD"])
    assert ("REDUCE_PROD", "float") in {(o.op_type, o.kind) for o in r.report.ops}
    with pytest.raises(tflquant.TflquantError, match=r"REDUCE_PROD 'prod': TFLite Micro has no kernel for this op type"):
        _quantize(write_flatbuffer(m), sample_inputs(m, n=16, seed=1), "micro", io_type="float32", keep_float=["REDUCE_PROD"])
    # a float op Micro has (SQRT in float: keep_float) runs, between QUANTIZE and DEQUANTIZE
    model, calib2, ev = _case("sqrt")
    r = _quantize(model, calib2, "micro", io_type="float32", keep_float=["SQRT"])
    assert "SQRT" in _ops(r)
    a = litert_run(r.model, ev, delegates=False)[0]
    b = tflm_run(r.model, ev)[0]
    np.testing.assert_allclose(b.reshape(a.shape), a, atol=0.1)


def test_hybrid_conv_is_what_tflm_refuses_in_prepare_and_check_micro_names_it() -> None:
    """TFLM's ConvPrepare: "Hybrid models are not supported" (float input, int8 filter)."""
    from tflquant.errors import TflquantError
    from tflquant.ir import make_context
    from tflquant.pipeline import run_pipeline

    g = GraphBuilder("main", {"x": ((1, 6, 6, 2), np.float32)})
    wq = UniformQuantizedType.make(I8, [0.01] * 4, [0] * 4, axis=0, narrow=True)
    w = g.add(tfl.ConstOp(dense_from_numpy(np.ones((4, 3, 3, 2), np.int8)), ttype((4, 3, 3, 2), wq), name="w")).results[0]
    y = g.op("CONV_2D", [g.x, w, g.const(np.zeros(4, np.float32))], (1, 6, 6, 4), padding="SAME", stride_w=1, stride_h=1, name="hybrid_conv")
    module = g.module([y])
    fb = write_flatbuffer(module)
    with pytest.raises(RuntimeError, match=r"CONV_2D \(number 0\) failed to prepare"):
        tflm_run(fb, [np.zeros((1, 1, 6, 6, 2), np.float32)])
    with pytest.raises(TflquantError, match=r"CONV_2D 'hybrid_conv': input float32 with weights int8.*hybrid"):
        run_pipeline(make_context(), module, "check-micro")


def test_micro_refuses_dynamic_and_float16_and_unknown_targets() -> None:
    model, calib, _ = _case("sqrt")
    with pytest.raises(tflquant.TflquantError, match="mode dynamic writes hybrid ops"):
        tflquant.quantize(model, mode="dynamic", target="micro")
    with pytest.raises(tflquant.TflquantError, match="mode float16"):
        tflquant.quantize(model, mode="float16", target="micro")
    with pytest.raises(tflquant.TflquantError, match="unknown target 'tflm'"):
        tflquant.quantize(model, representative_dataset=calib, target="tflm")


def test_cli_target(tmp_path) -> None:  # noqa: ANN001
    model, calib, _ = _case("int32_transpose6")
    (tmp_path / "m.tflite").write_bytes(model)
    np.savez(tmp_path / "c.npz", **calib)
    base = [sys.executable, "-m", "tflquant.cli", "quantize", str(tmp_path / "m.tflite"), "--calibration", str(tmp_path / "c.npz"), "--io-type", "int8", "-q"]
    p = subprocess.run(base + ["-o", str(tmp_path / "a.tflite"), "--target", "micro"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "TRANSPOSE 'ids_t'" in p.stderr and not (tmp_path / "a.tflite").exists()
    p = subprocess.run(base + ["-o", str(tmp_path / "b.tflite")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(base + ["--print-pipeline", "--target", "micro"], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip().endswith("legalize-for-micro,check-micro")


# ---------------------------------------------------------------------------------------
# The rules, probed on TFLM with one-op integer models
# ---------------------------------------------------------------------------------------


def _one_op(op: str, shapes: list[tuple], elem: object, out_shape: tuple, out_elem: object = None, **opts: object) -> object:
    g = GraphBuilder("main", {f"x{k}": (s, elem) for k, s in enumerate(shapes)})
    consts = opts.pop("consts", [])
    y = g.op(op, list(g.block.args) + [g.const(c) for c in consts], out_shape, out_dtype=out_elem if out_elem is not None else elem, name="y", **opts)
    return g.module([y])


PROBES = [
    # (label, module builder, TFLM runs it)
    ("SQRT int8", lambda: _one_op("SQRT", [(1, 8)], _q8(), (1, 8)), False),
    ("SQRT float", lambda: _one_op("SQRT", [(1, 8)], np.float32, (1, 8)), True),
    ("RSQRT int8", lambda: _one_op("RSQRT", [(1, 8)], _q8(0.05, -128), (1, 8)), True),
    ("TRANSPOSE int8 5-D", lambda: _one_op("TRANSPOSE", [(1, 2, 3, 4, 5)], _q8(), (1, 3, 2, 4, 5), consts=[np.array([0, 2, 1, 3, 4], np.int32)]), True),
    ("TRANSPOSE int8 6-D", lambda: _one_op("TRANSPOSE", [(1, 2, 3, 4, 5, 1)], _q8(), (1, 3, 2, 4, 5, 1), consts=[np.array([0, 2, 1, 3, 4, 5], np.int32)]), False),
    ("TRANSPOSE int32", lambda: _one_op("TRANSPOSE", [(2, 3)], np.int32, (3, 2), consts=[np.array([1, 0], np.int32)]), False),
    ("SELECT_V2 int32", lambda: _select_probe(np.int32), False),
    ("SELECT_V2 int8 broadcast", lambda: _select_probe(_q8()), True),
    ("GATHER int32 data", lambda: _one_op("GATHER", [(5, 4)], np.int32, (2, 4), axis=0, consts=[np.array([0, 2], np.int32)]), False),
    ("STRIDED_SLICE int8 6-D", lambda: _one_op("STRIDED_SLICE", [(1, 1, 1, 2, 4, 4)], _q8(), (1, 1, 1, 1, 4, 4),
                                                consts=[np.zeros(6, np.int32), np.array([1, 1, 1, 1, 4, 4], np.int32), np.ones(6, np.int32)]), False),
    ("ADD int8 6-D broadcast", lambda: _one_op("ADD", [(1, 2, 1, 3, 4, 5), (1, 1, 2, 1, 1, 5)], _q8(), (1, 2, 2, 3, 4, 5)), True),
    ("EXPAND_DIMS int32", lambda: _one_op("EXPAND_DIMS", [(2, 3)], np.int32, (1, 2, 3), consts=[np.array(0, np.int32)]), False),
    ("MIRROR_PAD int16", lambda: _one_op("MIRROR_PAD", [(1, 4, 4, 1)], UniformQuantizedType.make(IntegerType(16), 0.001, 0), (1, 6, 6, 1),
                                          consts=[np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)], mode="REFLECT"), False),
    ("RESIZE_BILINEAR int16", lambda: _one_op("RESIZE_BILINEAR", [(1, 2, 2, 1)], UniformQuantizedType.make(IntegerType(16), 0.001, 0), (1, 4, 4, 1),
                                               consts=[np.array([4, 4], np.int32)]), False),
]


def _select_probe(elem: object) -> object:
    g = GraphBuilder("main", {"c": ((1, 1, 8), np.bool_), "a": ((1, 4, 1), elem), "b": ((1, 4, 8), elem)})
    y = g.op("SELECT_V2", list(g.block.args), (1, 4, 8), out_dtype=elem, name="y")
    return g.module([y])


@pytest.mark.parametrize("label,build,runs", PROBES, ids=[p[0] for p in PROBES])
def test_micro_rules_agree_with_tflm(label: str, build, runs: bool) -> None:  # noqa: ANN001
    from tflquant.passes.check_micro import micro_problems

    module = build()
    problems = micro_problems(module)
    assert (not problems) == runs, problems
    fb = write_flatbuffer(module)
    ins = []
    from tflquant.ir import numpy_dtype_of_element

    for a in module.ops.first.body.blocks[0].args:
        e = a.type.element_type
        dt = e.numpy_dtype() if isinstance(e, UniformQuantizedType) else numpy_dtype_of_element(e)
        ins.append((np.arange(int(np.prod(a.type.get_shape()))) % 5 + 1).astype(dt).reshape((1, *a.type.get_shape())))
    if runs:
        tflm_run(fb, ins)
    else:
        with pytest.raises(RuntimeError):
            tflm_run(fb, ins)


@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=["int8", "int32"])
def test_tile_becomes_reshape_broadcast_to_reshape_on_micro(dtype: type) -> None:
    """TILE has no TFLM kernel: [2, 3, 4] tiled [1, 2, 3] is [2, 3, 1, 4] broadcast to
    [2, 2, 3, 3, 4]; the same bytes as LiteRT's TILE (int8 data and int32 ids)."""
    g = GraphBuilder("main", {"x": ((2, 3, 4), dtype)})
    y = g.op("TILE", [g.x, g.const(np.array([1, 2, 3], np.int32))], (2, 6, 12), out_dtype=dtype, name="tiled")
    m = g.module([y])
    fb, calib, ev = write_flatbuffer(m), sample_inputs(m, n=16, seed=1), list(sample_inputs(m, n=4, seed=2).values())
    kw = {"io_type": "int8"} if dtype == np.float32 else {"io_type": "float32"}
    r = tflquant.quantize(fb, representative_dataset=calib, target="micro", **kw)
    assert _ops(r) == ["RESHAPE", "BROADCAST_TO", "RESHAPE"]
    lr = tflquant.quantize(fb, representative_dataset=calib, **kw)
    assert _ops(lr) == ["TILE"]
    a = litert_run(lr.model, ev, dequantize=False, delegates=False)[0]
    assert np.array_equal(a, litert_run(r.model, ev, dequantize=False, delegates=False)[0])
    _assert_micro_matches_litert(r.model, ev, steps=0)


@pytest.mark.parametrize("si,zi,so,zo", [(0.02, -128, 0.01, -128), (0.05, -3, 0.03, -128), (0.1, 10, 0.05, -100), (1.7, -128, 0.1, -128)])
def test_sqrt_table_is_within_one_step_of_litert_on_every_input(si: float, zi: int, so: float, zo: int) -> None:
    from tflquant.passes.legalize_for_micro import _sqrt_table
    from tflquant.tflite.reader import read_flatbuffer

    qi, qo = UniformQuantizedType.make(I8, si, zi), UniformQuantizedType.make(I8, so, zo)
    g = GraphBuilder("main", {"x": ((1, 256), qi)})
    fb = write_flatbuffer(g.module([g.op("SQRT", [g.x], (1, 256), out_dtype=qo, name="s")]))
    codes = np.arange(-128, 128)
    ok = codes >= zi  # LiteRT refuses inputs below zero
    lit = litert_run(fb, [np.maximum(codes, zi).astype(np.int8).reshape(1, 1, 256)], dequantize=False, delegates=False)[0].reshape(-1)
    (op,) = [o for o in read_flatbuffer(fb).walk() if o.name == "tfl.sqrt"]
    table = _sqrt_table(op)
    assert np.abs(lit[ok].astype(int) - table[ok].astype(int)).max() <= 1


def test_micro_freezes_the_batch_and_refuses_other_dynamic_dims() -> None:
    """TFLM plans memory for static shapes: a dynamic batch is frozen to 1 (and runs), a
    dynamic sequence length is refused naming the op."""
    g = GraphBuilder("main", {"x": ((None, 8), np.float32)})
    m = g.module([g.op("RELU", [g.x], (None, 8), name="relu")])
    r = _quantize(write_flatbuffer(m), sample_inputs(m, n=16, seed=1), "micro")
    assert r.report.inputs[0].startswith("x int8[1x8]")
    tflm_run(r.model, list(sample_inputs(m, n=2, seed=2).values()))
    g = GraphBuilder("main", {"x": ((1, None, 8), np.float32)})
    m = g.module([g.op("RELU", [g.x], (1, None, 8), name="relu")])
    with pytest.raises(tflquant.TflquantError, match=r"RELU 'relu': output shape 1x\?x8 is dynamic"):
        _quantize(write_flatbuffer(m), sample_inputs(m, n=16, seed=1), "micro")


SLICES = [  # input shape, begin, end, strides, output shape, options
    ((1, 4, 3, 2, 8), [0, 0, 1, 0, 0], [1, 4, 2, 2, 8], [1, 1, 1, 1, 1], (1, 4, 2, 8), {"shrink_axis_mask": 4}),
    ((2, 4, 3, 2, 8), [0, 1, 0, 0, 0], [2, 4, 3, 2, 8], [1, 2, 1, 1, 2], (2, 2, 3, 2, 4), {}),
    ((1, 1, 6, 1, 5), [0, 0, -3, 0, 1], [1, 1, 6, 1, 5], [1, 1, 1, 1, 2], (1, 1, 3, 1, 2), {"begin_mask": 1}),
]


@pytest.mark.parametrize("shape,begin,end,strides,out,opts", SLICES)
def test_5d_strided_slice_is_collapsed_for_micro(shape, begin, end, strides, out, opts) -> None:  # noqa: ANN001
    """TFLM's STRIDED_SLICE takes up to 4 dims: size-1 dims dropped, whole dims merged."""
    g = GraphBuilder("main", {"x": (shape, np.float32)})
    c = [g.const(np.array(v, np.int32)) for v in (begin, end, strides)]
    m = g.module([g.op("STRIDED_SLICE", [g.x, *c], out, name="ss", **opts)])
    fb, calib, ev = write_flatbuffer(m), sample_inputs(m, n=16, seed=1), list(sample_inputs(m, n=3, seed=2).values())
    r = _quantize(fb, calib, "micro")
    assert _ops(r) == ["RESHAPE", "STRIDED_SLICE", "RESHAPE"]
    a = litert_run(_quantize(fb, calib, "litert").model, ev, dequantize=False, delegates=False)[0]
    assert np.array_equal(a, litert_run(r.model, ev, dequantize=False, delegates=False)[0])
    _assert_micro_matches_litert(r.model, ev, steps=0)
