"""Hypothesis strategies for testing passes and kernels (importable as `tflquant.testing`).

    from hypothesis import given
    from tflquant import testing as tt

    @given(tt.tfl_graphs())                       # random valid float tfl module
    def test_my_pass(module): ...

    @given(tt.quant_types(bits=8))                # random !quant.uniform element types
    @given(tt.calibration_stats())                # random #quant.stats attributes
    @given(tt.graphs_with_data())                 # (module, [inputs (N, *shape)])
    @given(tt.quantized_graphs(mode="int8"))      # (int8 module, float module, int8 inputs)

Graphs use the ops of `SAFE_OPS` (conv, depthwise, fully connected, add, sub, mul,
concatenation, reshape, pad, pools, mean, softmax, logistic, tanh, relu, relu6,
hard_swish, resize_bilinear) on static shapes with batch 1, one input and one output;
`EXTRA_OPS` and `MORE_OPS` are drawn when asked for (`ops=`), `DRAWABLE_OPS` is every op
the graphs can hold (a declared op outside it says why: tfl.NotInRandomGraphs);
constants come from `tflquant.ir.dense_from_numpy`. Structure (op mix, shapes, options) is
drawn by hypothesis and shrinks; constant and input *values* come from a drawn seed.

`quantize_graph(module, inputs, mode)` is a small stand-alone quantizer for tests: it
calibrates a float graph with the reference interpreter and assigns int8 (or 16x8)
types that satisfy LiteRT's kernel constraints (fixed softmax/logistic/tanh outputs,
same-scale ops, per-channel weights, int32/int64 biases), so a module with quantized
types can be built without the quantization passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    Float32Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue

from tflquant import quant_math as qm
from tflquant.dialects import tfl
from tflquant.dialects.quant import CalibrationStatsAttr, UniformQuantizedType
from tflquant.ir import dense_from_numpy

F32 = Float32Type()

SAFE_OPS: tuple[str, ...] = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "SUB",
    "MUL",
    "CONCATENATION",
    "RESHAPE",
    "PAD",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "MEAN",
    "SOFTMAX",
    "LOGISTIC",
    "TANH",
    "RELU",
    "RELU6",
    "HARD_SWISH",
    "RESIZE_BILINEAR",
)
# More ops the quantizer handles, drawn only when asked for (ops=SAFE_OPS + EXTRA_OPS).
EXTRA_OPS: tuple[str, ...] = (
    "ABS",
    "EXP",
    "LEAKY_RELU",
    "PRELU",
    "L2_NORMALIZATION",
    "MAXIMUM",
    "MINIMUM",
    "ELU",
    "RELU_0_TO_1",
)
# Ops without an int16 kernel in LiteRT (their declaration: tfl.Quantizable int16=False).
NOT_INT16 = frozenset(
    b for b, cls in tfl.BUILTIN_CLASSES.items() if (q := cls.get_trait(tfl.Quantizable)) is not None and not q.int16
)
# More ops the graphs can draw, outside the mixes the quantization property tests use.
MORE_OPS: tuple[str, ...] = (
    "DIV", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "LOG_SOFTMAX", "RELU_N1_TO_1", "GELU", "LOG", "SQRT",
    "RSQRT", "SQUARE", "NEG", "SQUARED_DIFFERENCE", "EXPAND_DIMS", "SQUEEZE", "TRANSPOSE", "SLICE", "STRIDED_SLICE",
    "PADV2", "MIRROR_PAD", "GATHER", "RESIZE_NEAREST_NEIGHBOR", "TILE", "BROADCAST_TO", "CUMSUM", "REVERSE_V2",
    "BATCH_MATMUL", "SELECT", "SELECT_V2", "PACK", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "DYNAMIC_UPDATE_SLICE",
)  # fmt: skip
# Every op the graphs can draw; tests/test_op_declarations.py: every declared op is here or
# says why not (tfl.NotInRandomGraphs).
DRAWABLE_OPS: frozenset[str] = frozenset((*SAFE_OPS, *EXTRA_OPS, *MORE_OPS))


# ---------------------------------------------------------------------------------------
# Quantized types and calibration statistics
# ---------------------------------------------------------------------------------------


@st.composite
def scales(draw: st.DrawFn, min_exp: int = -14, max_exp: int = 2) -> float:
    """A positive float32 scale, log-uniform between 2^min_exp and 2^max_exp."""
    e = draw(st.floats(min_value=min_exp, max_value=max_exp, allow_nan=False))
    return float(np.float32(2.0**e))


@st.composite
def quant_types(
    draw: st.DrawFn,
    bits: int | Sequence[int] = (8, 16),
    per_axis: bool | None = False,
    channels: int | None = None,
    axis: int = 0,
    signed: bool | None = True,
) -> UniformQuantizedType:
    """Random valid `!quant.uniform` types.

    Per-tensor types: int8 with any zero point, uint8 with any zero point, int16 with
    zero point 0 (the 16x8 convention). Per-axis types (per_axis=True, or None for
    either): symmetric narrow-range weights with `channels` scales along `axis`.
    """
    b = draw(st.sampled_from([bits] if isinstance(bits, int) else list(bits)))
    sgn = draw(st.booleans()) if signed is None else signed
    pa = draw(st.booleans()) if per_axis is None else per_axis
    if pa:
        n = channels if channels is not None else draw(st.integers(1, 8))
        ss = draw(st.lists(scales(), min_size=n, max_size=n))
        return UniformQuantizedType.make(qm.storage_type(b, True), ss, 0, axis=axis, narrow=True)
    s = draw(scales())
    lo, hi = qm._range(b, sgn, False)
    if b == 16 and sgn:
        zp = 0
    else:
        zp = draw(st.integers(lo, hi))
    return UniformQuantizedType.make(qm.storage_type(b, sgn), s, zp)


@st.composite
def ranges(draw: st.DrawFn, max_abs: float = 1e3) -> tuple[float, float]:
    """A finite float32 (min, max) with min <= max."""
    a = draw(st.floats(-max_abs, max_abs, allow_nan=False, width=32))
    b = draw(st.floats(-max_abs, max_abs, allow_nan=False, width=32))
    return (min(a, b), max(a, b))


@st.composite
def calibration_stats(draw: st.DrawFn, per_axis: bool | None = False, channels: int | None = None, axis: int = 0) -> CalibrationStatsAttr:
    """Random `#quant.stats` attributes (per tensor, or per axis with `channels` ranges)."""
    pa = draw(st.booleans()) if per_axis is None else per_axis
    if not pa:
        lo, hi = draw(ranges())
        return CalibrationStatsAttr.make(lo, hi)
    n = channels if channels is not None else draw(st.integers(1, 6))
    rs = draw(st.lists(ranges(), min_size=n, max_size=n))
    return CalibrationStatsAttr.make([r[0] for r in rs], [r[1] for r in rs], axis)


# ---------------------------------------------------------------------------------------
# Random graphs
# ---------------------------------------------------------------------------------------


@dataclass
class GraphBuilder:
    """Builds one `func.func @main` of tfl ops; `value(v)` gives a value's static shape."""

    rng: np.random.Generator
    ops: list[Operation] = field(default_factory=list)
    counter: int = 0

    def name(self, base: str) -> list[str]:
        self.counter += 1
        return [f"{base.lower()}_{self.counter}"]

    def const(self, arr: np.ndarray) -> SSAValue:
        op = tfl.ConstOp(dense_from_numpy(arr))
        self.ops.append(op)
        return op.result

    def weights(self, shape: Sequence[int], scale: float | None = None) -> SSAValue:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        return self.const((self.rng.standard_normal(shape) * s).astype(np.float32))

    def add(self, builtin: str, inputs: Sequence[SSAValue], shape: Sequence[int], options: dict | None = None) -> SSAValue:
        cls = tfl.BUILTIN_CLASSES[builtin]
        op = cls(list(inputs), [TensorType(F32, list(shape))], options=options or {}, names=self.name(builtin))
        self.ops.append(op)
        return op.outputs[0]


def shape_of(v: SSAValue) -> tuple[int, ...]:
    t = v.type
    assert isinstance(t, TensorType)
    return tuple(int(d) for d in t.get_shape())


def _out_size(size: int, k: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - k + stride) // stride


_REDUCERS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD")


def _applicable(builtin: str, shape: tuple[int, ...]) -> bool:
    r = len(shape)
    if builtin in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "PADV2", "MIRROR_PAD", *_REDUCERS):
        return r == 4
    if builtin in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        return r == 4 and shape[1] * shape[2] <= 64
    if builtin in ("FULLY_CONNECTED", "SOFTMAX", "BATCH_MATMUL"):
        return r == 2
    if builtin == "SPACE_TO_DEPTH":
        return r == 4 and shape[1] % 2 == 0 and shape[2] % 2 == 0
    if builtin == "DEPTH_TO_SPACE":
        return r == 4 and shape[3] % 4 == 0
    if builtin == "SQUEEZE":
        return 1 in shape[1:]
    if builtin in ("EXPAND_DIMS", "BROADCAST_TO", "PACK"):
        return r <= 4
    return True


@st.composite
def _step(draw: st.DrawFn, b: GraphBuilder, live: list[SSAValue], ops: Sequence[str]) -> SSAValue:
    x = live[-1]
    shape = shape_of(x)
    choices = [o for o in ops if _applicable(o, shape)]
    builtin = draw(st.sampled_from(choices))
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    if builtin == "CONV_2D":
        _, h, w, c = shape
        k = draw(st.sampled_from([1, 3]))
        s = draw(st.sampled_from([1, 2]))
        pad = draw(st.sampled_from(["SAME", "VALID"]))
        if pad == "VALID" and (h < k or w < k):
            pad = "SAME"
        o = draw(st.integers(1, 8))
        oh, ow = _out_size(h, k, s, pad), _out_size(w, k, s, pad)
        return b.add(
            builtin,
            [x, b.weights([o, k, k, c]), b.weights([o], 0.1)],
            [1, oh, ow, o],
            {"padding": pad, "stride_w": s, "stride_h": s, "fused_activation_function": act},
        )
    if builtin == "DEPTHWISE_CONV_2D":
        _, h, w, c = shape
        k = draw(st.sampled_from([1, 3]))
        s = draw(st.sampled_from([1, 2]))
        m = draw(st.sampled_from([1, 1, 2]))
        pad = draw(st.sampled_from(["SAME", "VALID"]))
        if pad == "VALID" and (h < k or w < k):
            pad = "SAME"
        oh, ow = _out_size(h, k, s, pad), _out_size(w, k, s, pad)
        return b.add(
            builtin,
            [x, b.weights([1, k, k, c * m], 1.0 / k), b.weights([c * m], 0.1)],
            [1, oh, ow, c * m],
            {"padding": pad, "stride_w": s, "stride_h": s, "depth_multiplier": m, "fused_activation_function": act},
        )
    if builtin == "FULLY_CONNECTED":
        _, k = shape
        o = draw(st.integers(1, 12))
        return b.add(builtin, [x, b.weights([o, k]), b.weights([o], 0.1)], [1, o], {"fused_activation_function": act})
    if builtin in ("ADD", "SUB", "MUL"):
        other = [v for v in live[:-1] if shape_of(v) == shape]
        kind = draw(st.sampled_from(["self", "const", "live"] if other else ["self", "const"]))
        if kind == "self":
            y = x
        elif kind == "live":
            y = draw(st.sampled_from(other))
        else:
            cshape = draw(st.sampled_from([list(shape), [shape[-1]]]))
            y = b.const((b.rng.standard_normal(cshape) * 0.5).astype(np.float32))
        return b.add(builtin, [x, y], shape, {"fused_activation_function": act})
    if builtin == "CONCATENATION":
        other = [v for v in live if shape_of(v)[:-1] == shape[:-1]]
        y = draw(st.sampled_from(other))
        out = list(shape)
        out[-1] += shape_of(y)[-1]
        return b.add(builtin, [x, y], out, {"axis": len(shape) - 1})
    if builtin == "RESHAPE":
        n = int(np.prod(shape))
        targets = [[1, n]]
        if len(shape) == 2 and n % 4 == 0:
            targets.append([1, 2, n // 4, 2])
        if len(shape) == 4:
            targets.append([1, shape[1] * shape[2], 1, shape[3]])
        tgt = draw(st.sampled_from(targets))
        return b.add(builtin, [x, b.const(np.array(tgt, np.int32))], tgt)
    if builtin == "PAD":
        p = draw(st.integers(0, 2))
        pads = np.array([[0, 0], [p, p], [0, p], [0, 0]], np.int32)
        return b.add(builtin, [x, b.const(pads)], [1, shape[1] + 2 * p, shape[2] + p, shape[3]])
    if builtin in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        _, h, w, c = shape
        k, s = draw(st.sampled_from([(2, 2), (3, 1), (3, 2)]))
        pad = draw(st.sampled_from(["SAME", "VALID"]))
        if pad == "VALID" and (h < k or w < k):
            pad = "SAME"
        oh, ow = _out_size(h, k, s, pad), _out_size(w, k, s, pad)
        return b.add(
            builtin,
            [x],
            [1, oh, ow, c],
            {"padding": pad, "stride_w": s, "stride_h": s, "filter_width": k, "filter_height": k, "fused_activation_function": act},
        )
    if builtin in _REDUCERS:
        keep = draw(st.booleans())
        out = [1, 1, 1, shape[3]] if keep else [1, shape[3]]
        if builtin == "REDUCE_PROD":  # a product of many values under- or overflows: multiply values near 1
            x = b.add("ADD", [b.add("TANH", [x], shape), b.const(np.full([shape[3]], 1.5, np.float32))], shape)
        return b.add(builtin, [x, b.const(np.array([1, 2], np.int32))], out, {"keep_dims": keep})
    if builtin == "SOFTMAX":
        return b.add(builtin, [x], shape, {"beta": 1.0})
    if builtin in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        _, h, w, c = shape
        oh, ow = draw(st.sampled_from([(2 * h, 2 * w), (h + 1, w + 1), (max(h // 2, 1), max(w // 2, 1))]))
        hp = draw(st.booleans())
        return b.add(
            builtin,
            [x, b.const(np.array([oh, ow], np.int32))],
            [1, oh, ow, c],
            {"align_corners": False, "half_pixel_centers": hp},
        )
    if builtin == "LEAKY_RELU":
        return b.add(builtin, [x], shape, {"alpha": draw(st.sampled_from([0.1, 0.2, 0.3]))})
    if builtin == "PRELU":
        alpha = (b.rng.uniform(0.05, 0.5, [shape[-1]])).astype(np.float32)
        return b.add(builtin, [x, b.const(alpha)], shape)
    if builtin in ("MAXIMUM", "MINIMUM"):
        other = [v for v in live[:-1] if shape_of(v) == shape]
        y = draw(st.sampled_from(other)) if other and draw(st.booleans()) else b.const((b.rng.standard_normal(shape) * 0.5).astype(np.float32))
        return b.add(builtin, [x, y], shape)
    if builtin == "EXP":
        # keep exp's input bounded (chains of EXP would overflow): exp(tanh(x))
        return b.add(builtin, [b.add("TANH", [x], shape)], shape)
    if builtin in ("LOG", "SQRT", "RSQRT"):  # positive inputs: f(logistic(x))
        return b.add(builtin, [b.add("LOGISTIC", [x], shape)], shape)
    if builtin in ("DIV", "SQUARED_DIFFERENCE"):
        sign = b.rng.choice([-1.0, 1.0], [shape[-1]]) if builtin == "DIV" else 1.0
        y = b.const((b.rng.uniform(0.5, 2.0, [shape[-1]]) * sign).astype(np.float32))  # divisors away from 0
        return b.add(builtin, [x, y], shape, {"fused_activation_function": act} if builtin == "DIV" else None)
    if builtin == "BATCH_MATMUL":
        n = draw(st.integers(1, 12))
        return b.add(builtin, [x, b.weights([shape[1], n])], [1, n])
    if builtin == "EXPAND_DIMS":
        return b.add(builtin, [x, b.const(np.array([len(shape)], np.int32))], [*shape, 1])
    if builtin == "SQUEEZE":
        dim = next(i for i in range(1, len(shape)) if shape[i] == 1)
        return b.add(builtin, [x], [d for i, d in enumerate(shape) if i != dim], {"squeeze_dims": [dim]})
    if builtin == "TRANSPOSE":
        perm = [0, *range(len(shape) - 1, 0, -1)]
        return b.add(builtin, [x, b.const(np.array(perm, np.int32))], [shape[p] for p in perm])
    if builtin in ("SLICE", "STRIDED_SLICE"):
        out = [*shape[:-1], (shape[-1] + 1) // 2]
        begin = b.const(np.zeros(len(shape), np.int32))
        if builtin == "SLICE":
            return b.add(builtin, [x, begin, b.const(np.array(out, np.int32))], out)
        strides = b.const(np.array([1] * (len(shape) - 1) + [2], np.int32))
        return b.add(builtin, [x, begin, b.const(np.array(shape, np.int32)), strides], out)
    if builtin in ("PADV2", "MIRROR_PAD"):
        pads = np.array([[0, 0], *[[1, 1] if d > 1 else [0, 0] for d in shape[1:]]], np.int32)
        out = [d + int(p.sum()) for d, p in zip(shape, pads)]
        if builtin == "MIRROR_PAD":
            return b.add(builtin, [x, b.const(pads)], out, {"mode": "REFLECT"})
        return b.add(builtin, [x, b.const(pads), b.const(np.array(0.25, np.float32))], out)
    if builtin == "GATHER":
        idx = b.rng.integers(0, shape[-1], [draw(st.integers(1, 4))]).astype(np.int32)
        return b.add(builtin, [x, b.const(idx)], [*shape[:-1], len(idx)], {"axis": len(shape) - 1})
    if builtin == "TILE":
        mult = np.array([1] * (len(shape) - 1) + [2], np.int32)
        return b.add(builtin, [x, b.const(mult)], [*shape[:-1], 2 * shape[-1]])
    if builtin == "BROADCAST_TO":
        out = [1, 2, *shape[1:]]
        return b.add(builtin, [x, b.const(np.array(out, np.int32))], out)
    if builtin in ("CUMSUM", "REVERSE_V2"):
        axis = np.array(len(shape) - 1 if builtin == "CUMSUM" else [len(shape) - 1], np.int32)
        return b.add(builtin, [x, b.const(axis)], shape)
    if builtin in ("SELECT", "SELECT_V2"):
        cond = b.const(b.rng.random(shape) < 0.5)
        return b.add(builtin, [cond, x, b.const((b.rng.standard_normal(shape) * 0.5).astype(np.float32))], shape)
    if builtin == "PACK":
        return b.add(builtin, [x, x], [*shape, 2], {"axis": len(shape), "values_count": 2})
    if builtin == "SPACE_TO_DEPTH":
        return b.add(builtin, [x], [1, shape[1] // 2, shape[2] // 2, shape[3] * 4], {"block_size": 2})
    if builtin == "DEPTH_TO_SPACE":
        return b.add(builtin, [x], [1, shape[1] * 2, shape[2] * 2, shape[3] // 4], {"block_size": 2})
    if builtin == "DYNAMIC_UPDATE_SLICE":
        upd = b.const((b.rng.standard_normal([*shape[:-1], 1])).astype(np.float32))
        return b.add(builtin, [x, upd, b.const(np.zeros(len(shape), np.int32))], shape)
    # elementwise unary: LOGISTIC, TANH, RELU, RELU6, HARD_SWISH, ABS, L2_NORMALIZATION, GELU, ...
    return b.add(builtin, [x], shape)


def make_module(inputs: Sequence[tuple[str, Sequence[int]]], build) -> ModuleOp:  # noqa: ANN001
    """A module with one `@main` whose body `build(builder, args) -> results` creates."""
    from xdsl.ir import Block, Region

    arg_types = [TensorType(F32, list(s)) for _, s in inputs]
    block = Block(arg_types=arg_types)
    b = GraphBuilder(np.random.default_rng(0))
    results = build(b, list(block.args))
    for op in b.ops:
        block.add_op(op)
    block.add_op(func.ReturnOp(*results))
    ftype = (arg_types, [r.type for r in results])
    arg_attrs = ArrayAttr([DictionaryAttr({"tfl.name": StringAttr(n)}) for n, _ in inputs])
    f = func.FuncOp("main", ftype, Region(block), arg_attrs=arg_attrs)
    return ModuleOp([f])


@st.composite
def tfl_graphs(
    draw: st.DrawFn,
    ops: Sequence[str] = SAFE_OPS,
    min_ops: int = 1,
    max_ops: int = 6,
    rank: int | None = None,
) -> ModuleOp:
    """A random valid float `tfl` module: `@main` with one input (batch 1) and one output."""
    from xdsl.ir import Block, Region

    ranks = [r for r in (2, 4) if any(_applicable(o, (1,) * r) for o in ops)]
    r = rank if rank is not None else draw(st.sampled_from([rk for rk in (2, 4, 4) if rk in ranks] or [4]))
    if r == 4:
        shape = [1, draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 4))]
    else:
        shape = [1, draw(st.integers(1, 16))]
    seed = draw(st.integers(0, 2**32 - 1))
    b = GraphBuilder(np.random.default_rng(seed))
    block = Block(arg_types=[TensorType(F32, shape)])
    live: list[SSAValue] = [block.args[0]]
    n = draw(st.integers(min_ops, max_ops))
    for _ in range(n):
        if not any(_applicable(o, shape_of(live[-1])) for o in ops):
            break  # no op of the mix takes this rank (e.g. only CONV_2D after a MEAN)
        live.append(draw(_step(b, live, ops)))
    for op in b.ops:
        block.add_op(op)
    out = live[-1]
    block.add_op(func.ReturnOp(out))
    arg_attrs = ArrayAttr([DictionaryAttr({"tfl.name": StringAttr("input")})])
    f = func.FuncOp("main", ([TensorType(F32, shape)], [out.type]), Region(block), arg_attrs=arg_attrs)
    module = ModuleOp([f])
    module.verify()
    return module


def input_shapes(module: ModuleOp) -> list[tuple[int, ...]]:
    f = next(o for o in module.ops if isinstance(o, func.FuncOp))
    return [tuple(int(d) for d in a.type.get_shape()) for a in f.body.block.args]  # type: ignore[union-attr]


def representative_data(module: ModuleOp, n: int = 8, seed: int = 0, scale: float = 1.0) -> list[np.ndarray]:
    """Float inputs for `@main`: one array (n, *shape) per argument, normal(0, scale)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, *s)) * scale).astype(np.float32) for s in input_shapes(module)]


@st.composite
def representative_datasets(draw: st.DrawFn, module: ModuleOp, min_samples: int = 1, max_samples: int = 16) -> list[np.ndarray]:
    """Random float input batches for a module (value scale and sample count drawn)."""
    n = draw(st.integers(min_samples, max_samples))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0]))
    return representative_data(module, n, seed, scale)


@st.composite
def graphs_with_data(draw: st.DrawFn, ops: Sequence[str] = SAFE_OPS, max_ops: int = 6, samples: int = 8) -> tuple[ModuleOp, list[np.ndarray]]:
    """(random float module, its float inputs with a leading sample axis)."""
    m = draw(tfl_graphs(ops=ops, max_ops=max_ops))
    return m, draw(representative_datasets(m, samples, samples))


# ---------------------------------------------------------------------------------------
# A stand-alone test quantizer
# ---------------------------------------------------------------------------------------

def calibrate(module: ModuleOp, inputs: Sequence[np.ndarray]) -> dict[SSAValue, tuple[float, float]]:
    """min/max of every argument and op result over `inputs` (float reference interpreter)."""
    from tflquant.reference import Interpreter

    rng: dict[SSAValue, tuple[float, float]] = {}

    def observe(v: SSAValue, a: np.ndarray) -> None:
        if a.dtype.kind == "f" and a.size:
            lo, hi = float(np.min(a)), float(np.max(a))
            if v in rng:
                lo, hi = min(lo, rng[v][0]), max(hi, rng[v][1])
            rng[v] = (lo, hi)

    Interpreter(module).run(list(inputs), observer=observe)
    return rng


def _tensor(shape: Sequence[int], elem: Attribute) -> TensorType:
    return TensorType(elem, list(shape))


def quantize_graph(module: ModuleOp, inputs: Sequence[np.ndarray], mode: str = "int8") -> ModuleOp:
    """An integer-only copy of a float graph from `tfl_graphs` (int8 or 16x8 activations).

    Arguments and results become quantized (no QUANTIZE/DEQUANTIZE at the edges), weights
    int8 per channel, biases int32 (int8) or int64 (16x8), ranges calibrated on `inputs`.
    CONCATENATION inputs are requantized (QUANTIZE op) to the output's parameters.
    """
    if mode not in ("int8", "int16x8"):
        raise ValueError(f"mode must be int8 or int16x8, got {mode!r}")
    from xdsl.ir import Block, Region

    i16 = mode == "int16x8"
    act_bits = 16 if i16 else 8
    ranges_ = calibrate(module, inputs)
    f = next(o for o in module.ops if isinstance(o, func.FuncOp))

    def act_type(v: SSAValue) -> UniformQuantizedType:
        lo, hi = ranges_.get(v, (0.0, 0.0))
        if hi - lo < 1e-6 and not isinstance(v, BlockArgument) and v.owner.operands:
            # An (almost) constant result, e.g. x - x: borrow the first input's range, so
            # no rescale multiplier explodes (LiteRT's int16 ADD/SUB cannot take > 1).
            lo, hi = ranges_.get(v.owner.operands[0], (lo, hi))
        return qm.choose_activation_params(lo, hi, bits=act_bits, symmetric=i16)

    st_act = qm.storage_type(act_bits)
    new_types: dict[SSAValue, UniformQuantizedType] = {}
    mapping: dict[SSAValue, SSAValue] = {}
    old_args = list(f.body.block.args)
    for a in old_args:
        new_types[a] = act_type(a)
    block = Block(arg_types=[_tensor(shape_of(a), new_types[a]) for a in old_args])
    for a, na in zip(old_args, block.args):
        mapping[a] = na

    def emit(op: Operation) -> Operation:
        block.add_op(op)
        return op

    def requant(v: SSAValue, t: UniformQuantizedType) -> SSAValue:
        op = emit(tfl.QuantizeOp([v], [_tensor(shape_of(v), t)], names=[f"requantize_{len(block.ops)}"]))
        return op.outputs[0]

    consts = {}
    for op in f.body.block.ops:
        if isinstance(op, tfl.ConstOp):
            consts[op.result] = op.numpy()
            continue
        if isinstance(op, func.ReturnOp):
            block.add_op(func.ReturnOp(*[mapping[v] for v in op.operands]))
            break
        assert isinstance(op, tfl.TflOp), op
        kind = op.BUILTIN
        x = op.inputs[0]
        xt = new_types[x]
        out = op.outputs[0]
        options = {k: op.option(k) for k in op.properties}
        fixed = type(op).get_trait(tfl.FixedResultScale)
        fixed_params = (fixed.int16 if i16 else fixed.int8) if fixed is not None else None
        same = type(op).get_trait(tfl.SameScale)
        affine = type(op).get_trait(tfl.AffineOp)
        if fixed_params is not None:
            s, z = fixed_params
            ot = UniformQuantizedType.make(st_act, s, z)
        elif same is not None and same.operands == (0,):
            ot = xt
        else:
            ot = act_type(out)
        if kind == "HARD_SWISH" and ot.scale < xt.scale / 128 * 1.01:
            # LiteRT's int8 HARD_SWISH needs s_in / (128 s_out) < 1: widen the output range.
            lo, hi = ranges_.get(out, (0.0, 0.0))
            k = xt.scale / 128 / ot.scale * 1.02
            ot = qm.choose_activation_params(lo * k, hi * k, bits=act_bits, symmetric=i16)
        operands: list[SSAValue] = []
        if affine is not None and affine.calibrated_bias and affine.bias is not None:
            w = consts[op.inputs[affine.weight]]
            bias = consts[op.inputs[affine.bias]]
            wt = qm.choose_weight_params(w, axis=affine.channel_axis)
            wq = qm.quantize(w, wt)
            bq, bt = qm.quantize_bias(bias, xt.scale, wt, bits=64 if i16 else 32)
            wc = emit(tfl.ConstOp(dense_from_numpy(wq), _tensor(w.shape, wt)))
            bc = emit(tfl.ConstOp(dense_from_numpy(bq), _tensor(bias.shape, bt)))
            operands = [mapping[x], wc.result, bc.result]
        elif kind in ("ADD", "SUB", "MUL", "PRELU"):
            for v in op.inputs:
                if v in consts:
                    c = consts[v]
                    ct = qm.choose_activation_params(float(c.min()), float(c.max()), bits=act_bits, symmetric=i16)
                    cc = emit(tfl.ConstOp(dense_from_numpy(qm.quantize(c, ct)), _tensor(c.shape, ct)))
                    new_types[cc.result] = ct
                    operands.append(cc.result)
                else:
                    operands.append(mapping[v])
            if i16 and kind in ("ADD", "SUB"):
                options["pot_scale_int16"] = False
        elif kind in ("CONCATENATION", "MAXIMUM", "MINIMUM"):
            ot = act_type(out)
            if kind != "CONCATENATION":  # inputs share the output's range: cover both
                lo = min(ranges_.get(v, (0.0, 0.0))[0] for v in op.inputs if v in ranges_)
                hi = max(ranges_.get(v, (0.0, 0.0))[1] for v in op.inputs if v in ranges_)
                cs = [consts[v] for v in op.inputs if v in consts]
                lo = min([lo, *[float(c.min()) for c in cs]])
                hi = max([hi, *[float(c.max()) for c in cs]])
                ot = qm.choose_activation_params(lo, hi, bits=act_bits, symmetric=i16)
            for v in op.inputs:
                if v in consts:
                    c = consts[v]
                    cc = emit(tfl.ConstOp(dense_from_numpy(qm.quantize(c, ot)), _tensor(c.shape, ot)))
                    operands.append(cc.result)
                    continue
                nv = mapping[v]
                operands.append(nv if new_types[v] == ot else requant(nv, ot))
        else:
            for v in op.inputs:
                if v in consts:
                    c = consts[v]
                    operands.append(emit(tfl.ConstOp(dense_from_numpy(c))).result)
                else:
                    operands.append(mapping[v])
        names = tfl.tensor_names(op)
        nop = emit(type(op)(operands, [_tensor(shape_of(out), ot)], options=options, names=names))
        mapping[out] = nop.outputs[0]
        new_types[out] = ot
    ret = block.last_op
    assert isinstance(ret, func.ReturnOp)
    ftype = (list(block.arg_types), [v.type for v in ret.operands])
    nf = func.FuncOp("main", ftype, Region(block), arg_attrs=f.arg_attrs)
    m = ModuleOp([nf])
    m.verify()
    return m


def quantize_inputs(module: ModuleOp, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Float input batches quantized to the argument types of a quantized module."""
    f = next(o for o in module.ops if isinstance(o, func.FuncOp))
    out = []
    for a, x in zip(f.body.block.args, inputs):
        t = a.type
        assert isinstance(t, TensorType) and isinstance(t.element_type, UniformQuantizedType)
        out.append(qm.quantize(x, t.element_type))
    return out


@st.composite
def quantized_graphs(
    draw: st.DrawFn, mode: str = "int8", ops: Sequence[str] | None = None, max_ops: int = 5, samples: int = 8
) -> tuple[ModuleOp, ModuleOp, list[np.ndarray]]:
    """(integer-only module, its float original, quantized inputs with a sample axis)."""
    use = ops if ops is not None else tuple(o for o in SAFE_OPS if not (mode == "int16x8" and o in NOT_INT16))
    fm = draw(tfl_graphs(ops=use, max_ops=max_ops))
    data = draw(representative_datasets(fm, samples, samples))
    qmod = quantize_graph(fm, data, mode)
    return qmod, fm, quantize_inputs(qmod, data)


def is_int(t: Attribute) -> bool:
    return isinstance(t, IntegerType)
