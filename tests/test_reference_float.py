"""The reference interpreter's float kernels against LiteRT.

Every op kernel runs on small single-op models (built as IR, emitted with the writer, run in
LiteRT sample by sample) and the reference models in ../shared/models run on eval samples;
both must match LiteRT within 1e-4 relative error (max |ours - LiteRT| / max |LiteRT|).
Then: batching semantics, the observer, fake quantization and error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Attribute, Block, Region

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, element_type_of_dtype, parse_module
from tflquant.reference import Interpreter
from tflquant.reference.float_kernels import strided_slice_index

N = 3  # samples per run
RTOL = 1e-4
F32 = np.float32
I8 = element_type_of_dtype(np.int8)


# ----------------------------------------------------------------------------------------
# single-op model builder
# ----------------------------------------------------------------------------------------


class In:
    """A model input; `data` has the sample axis first."""

    def __init__(self, data: Any):
        self.data = np.asarray(data)


class QConst:
    """A quantized (or otherwise typed) constant: storage array + element type."""

    def __init__(self, data: np.ndarray, element: Attribute):
        self.data, self.element = data, element


def build(builtin: str, operands: Sequence[Any], options: dict | None, results: Sequence[tuple[Attribute, Sequence[int]]]) -> ModuleOp:
    inputs = [o for o in operands if isinstance(o, In)]
    arg_types = [TensorType(element_type_of_dtype(i.data.dtype), i.data.shape[1:]) for i in inputs]
    block = Block(arg_types=arg_types)
    pre: list = []
    vals = []
    k = 0
    for o in operands:
        if isinstance(o, In):
            vals.append(block.args[k])
            k += 1
        elif o is None:
            nv = tfl.NoValueOp()
            pre.append(nv)
            vals.append(nv.result)
        elif isinstance(o, QConst):
            c = tfl.ConstOp(dense_from_numpy(o.data), TensorType(o.element, o.data.shape), name=f"c{len(pre)}")
            pre.append(c)
            vals.append(c.result)
        else:
            c = tfl.ConstOp(dense_from_numpy(np.asarray(o)), name=f"c{len(pre)}")
            pre.append(c)
            vals.append(c.result)
    rtypes = [TensorType(e, s) for e, s in results]
    op = tfl.BUILTIN_CLASSES[builtin](vals, rtypes, options=options, names=[f"out{i}" for i in range(len(rtypes))])
    block.add_ops([*pre, op, func.ReturnOp(*op.results)])
    arg_attrs = ArrayAttr([DictionaryAttr({"tfl.name": StringAttr(f"in{i}")}) for i in range(len(inputs))])
    f = func.FuncOp("main", (arg_types, rtypes), Region(block), arg_attrs=arg_attrs)
    m = ModuleOp([f])
    m.verify()
    return m


def op_model(builtin: str, operands: Sequence[Any], options: dict | None = None, out: Sequence[Any] = (np.float32,)) -> tuple[ModuleOp, list[np.ndarray]]:
    """A single-op module; result shapes come from a first reference run (LiteRT then
    computes its own, and the test compares shapes too)."""
    elems = [o if isinstance(o, Attribute) else element_type_of_dtype(np.dtype(o)) for o in out]
    inputs = [o.data for o in operands if isinstance(o, In)]
    probe = build(builtin, operands, options, [(e, []) for e in elems])
    shapes = [r.shape[1:] for r in Interpreter(probe).run(inputs)]
    return build(builtin, operands, options, list(zip(elems, shapes))), inputs


def litert_run(model: bytes, inputs: list[np.ndarray]) -> dict[str, list[list[np.ndarray]]]:
    """Outputs per sample from each LiteRT op resolver that accepts the model (samples run
    one at a time): the builtin kernels must, the default (XNNPACK) and reference ones may
    refuse (XNNPACK cannot run a graph of constants only)."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType

    results = {}
    for rt in (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, OpResolverType.AUTO, OpResolverType.BUILTIN_REF):
        try:
            li = LiteRT(model_content=model, experimental_op_resolver_type=rt)
            li.allocate_tensors()
            ins, outs = li.get_input_details(), li.get_output_details()
            n = inputs[0].shape[0] if inputs else 1
            res = []
            for k in range(n):
                li.reset_all_variables()  # LSTM state tensors persist between invocations
                for d, x in zip(ins, inputs):
                    li.set_tensor(d["index"], np.array(x[k]))
                li.invoke()
                res.append([li.get_tensor(d["index"]).copy() for d in outs])
        except (RuntimeError, ValueError):
            if rt == OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES:
                raise
            continue
        results[rt.name] = res
    return results


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max(initial=0) / max(np.abs(ref).max(initial=0), 1e-6))


def compare_with_litert(module: ModuleOp, inputs: list[np.ndarray], int_tol: int = 0) -> float:
    from tflquant.tflite.writer import write_flatbuffer

    ours = Interpreter(module).run(inputs)
    worst = 0.0
    for resolver, ref in litert_run(write_flatbuffer(module), inputs).items():
        for k, per_sample in enumerate(ref):
            for j, r in enumerate(per_sample):
                o = ours[j][k]
                assert o.shape == r.shape, f"{resolver} output {j}: shape {o.shape}, LiteRT {r.shape}"
                if r.dtype.kind == "f":
                    worst = max(worst, rel_err(o, r))
                else:
                    assert np.abs(o.astype(np.int64) - r.astype(np.int64)).max(initial=0) <= int_tol, (resolver, o, r)
        assert worst <= RTOL, f"{resolver}: max relative error {worst:.3g}"
    return worst


# ----------------------------------------------------------------------------------------
# cases: one or more per kernel
# ----------------------------------------------------------------------------------------

rng = np.random.default_rng(7)


def act(*shape: int, lo: float | None = None, hi: float | None = None) -> In:
    if lo is not None:
        return In(rng.uniform(lo, hi, (N, *shape)).astype(F32))
    return In(rng.standard_normal((N, *shape)).astype(F32))


def w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(F32)


def i32(*v: int) -> np.ndarray:
    return np.array(v, np.int32)


def ints_in(hi: int, *shape: int) -> In:
    return In(rng.integers(0, hi, (N, *shape)).astype(np.int32))


RELU6 = {"fused_activation_function": "RELU6"}


def conv(padding: str, s: int, d: int = 1, act_fn: str = "NONE", k: int = 3, cin: int = 3, h: int = 9) -> tuple:
    o = {"padding": padding, "stride_h": s, "stride_w": s, "dilation_h_factor": d, "dilation_w_factor": d, "fused_activation_function": act_fn}
    return ("CONV_2D", [act(1, h, h + 1, cin), w(4, k, k, cin), w(4)], o)


def dw(padding: str, s: int, m: int = 1, d: int = 1) -> tuple:
    o = {"padding": padding, "stride_h": s, "stride_w": s, "depth_multiplier": m, "dilation_h_factor": d, "dilation_w_factor": d}
    return ("DEPTHWISE_CONV_2D", [act(1, 8, 9, 3), w(1, 3, 3, 3 * m), w(3 * m)], o)


def tconv(padding: str, s: int, k: int, out_hw: tuple[int, int], bias: bool = True) -> tuple:
    o = {"padding": padding, "stride_h": s, "stride_w": s}
    return ("TRANSPOSE_CONV", [i32(1, *out_hw, 4), w(4, k, k, 3), act(1, 5, 6, 3), w(4) if bias else None], o)


def pool(kind: str, padding: str, s: int, k: int) -> tuple:
    o = {"padding": padding, "stride_h": s, "stride_w": s, "filter_height": k, "filter_width": k}
    return (kind, [act(1, 7, 8, 2)], o)


def ss(begin: Sequence[int], end: Sequence[int], strides: Sequence[int], **masks: int) -> tuple:
    return ("STRIDED_SLICE", [act(2, 5, 6, 3), i32(*begin), i32(*end), i32(*strides)], masks)


def resize(kind: str, size: tuple[int, int], ac: bool, hp: bool) -> tuple:
    return (kind, [act(1, 5, 7, 2), i32(*size)], {"align_corners": ac, "half_pixel_centers": hp})


def lstm(cifg: bool = False, peephole: bool = False, proj: bool = False, layer_norm: bool = False, time_major: bool = False) -> tuple:
    b, t, i, h = 2, 4, 3, 5
    out_h = 4 if proj else h
    x = act(t, b, i) if time_major else act(b, t, i)
    ops: list[Any] = [x]
    ops += [None if (cifg and g == "i") else w(h, i) * 0.5 for g in "ifco"]
    ops += [None if (cifg and g == "i") else w(h, out_h) * 0.5 for g in "ifco"]
    ops += [None if (not peephole or (cifg and g == "i")) else w(h) * 0.3 for g in "ifo"]
    ops += [None if (cifg and g == "i") else w(h) * 0.1 for g in "ifco"]
    ops += [w(out_h, h) * 0.5 if proj else None, w(out_h) * 0.1 if proj else None]
    ops += ["state_h", "state_c"]
    ops += [None if (not layer_norm or (cifg and g == "i")) else 1 + 0.1 * w(h) for g in "ifco"]
    o = {"fused_activation_function": "TANH", "cell_clip": 3.0, "proj_clip": 2.0 if proj else 0.0, "time_major": time_major}
    return ("UNIDIRECTIONAL_SEQUENCE_LSTM", ops, o, (np.float32,), {"state_h": (b, out_h), "state_c": (b, h)})


CASES: dict[str, tuple] = {
    "add_relu6": ("ADD", [act(1, 4, 4, 3), act(1, 4, 4, 3)], RELU6),
    "add_broadcast_const": ("ADD", [act(4, 3), w(2, 1, 3)], None),
    "add_int32": ("ADD", [ints_in(50, 5), i32(1, 2, 3, 4, 5)], None, (np.int32,)),
    "div_int32": ("DIV", [In(rng.integers(-50, 50, (N, 6)).astype(np.int32)), i32(7, -7, 3, -3, 1, 5)], None, (np.int32,)),
    "mul_int32": ("MUL", [ints_in(50, 6), i32(7, -7, 3, -3, 1, 5)], None, (np.int32,)),
    "sum_int32": ("SUM", [ints_in(50, 3, 4), i32(1)], None, (np.int32,)),
    "mean_int32": ("MEAN", [In(rng.integers(-50, 50, (N, 3, 4)).astype(np.int32)), i32(1)], None, (np.int32,)),
    "reduce_max_int32": ("REDUCE_MAX", [ints_in(50, 3, 4), i32(0)], None, (np.int32,)),
    "cast_f2bool": ("CAST", [In(rng.integers(0, 2, (N, 5)).astype(F32))], None, (np.bool_,)),
    "cast_i2i64": ("CAST", [ints_in(100, 5)], None, (np.int64,)),
    "gather_int": ("GATHER", [ints_in(9, 4, 3), i32(3, 1)], {"axis": 0}, (np.int32,)),
    "transpose_int": ("TRANSPOSE", [ints_in(9, 4, 3), i32(1, 0)], None, (np.int32,)),
    "concat_int": ("CONCATENATION", [ints_in(9, 4, 3), i32(1, 2, 3).reshape(1, 3)], {"axis": 0}, (np.int32,)),
    "sub_relu": ("SUB", [act(2, 3), w(3)], {"fused_activation_function": "RELU"}),
    "mul_bcast": ("MUL", [act(2, 1, 3), act(1, 4, 1)], None),
    "div": ("DIV", [act(2, 3), act(2, 3, lo=0.5, hi=2.0)], {"fused_activation_function": "RELU_N1_TO_1"}),
    "maximum": ("MAXIMUM", [act(2, 3), w(3)], None),
    "minimum": ("MINIMUM", [act(2, 3), act(2, 3)], None),
    "squared_difference": ("SQUARED_DIFFERENCE", [act(2, 3), w(2, 3)], None),
    "equal": ("EQUAL", [ints_in(3, 6), ints_in(3, 6)], None, (np.bool_,)),
    "not_equal": ("NOT_EQUAL", [ints_in(3, 6), i32(1)], None, (np.bool_,)),
    "less": ("LESS", [act(2, 3), act(2, 3)], None, (np.bool_,)),
    "less_equal": ("LESS_EQUAL", [ints_in(3, 6), ints_in(3, 6)], None, (np.bool_,)),
    "greater": ("GREATER", [act(2, 3), w(3)], None, (np.bool_,)),
    "greater_equal": ("GREATER_EQUAL", [ints_in(3, 6), ints_in(3, 6)], None, (np.bool_,)),
    "conv_same_s1": conv("SAME", 1),
    "conv_valid_s2": conv("VALID", 2),
    "conv_same_s2_relu6": conv("SAME", 2, act_fn="RELU6", h=10),
    "conv_dilated": conv("SAME", 1, d=2),
    "conv_1x1": conv("VALID", 1, k=1, cin=5),
    "conv_5x5_tanh": conv("SAME", 2, k=5, act_fn="TANH"),  # LiteRT ignores a fused TANH
    "depthwise_same": dw("SAME", 1),
    "depthwise_valid_s2": dw("VALID", 2),
    "depthwise_mult2": dw("SAME", 2, m=2),
    "depthwise_dilated": dw("SAME", 1, d=2),
    "transpose_conv_same_s2": tconv("SAME", 2, 3, (10, 12)),
    "transpose_conv_valid_s2": tconv("VALID", 2, 3, (11, 13)),
    "transpose_conv_same_s1_nobias": tconv("SAME", 1, 3, (5, 6), bias=False),
    "transpose_conv_s2_k2": tconv("SAME", 2, 2, (10, 12)),
    "fc": ("FULLY_CONNECTED", [act(2, 6), w(4, 6), w(4)], RELU6),
    "fc_3d": ("FULLY_CONNECTED", [act(2, 3, 6), w(4, 6), w(4)], None),
    "fc_keep_dims": ("FULLY_CONNECTED", [act(2, 3, 6), w(4, 6), w(4)], {"keep_num_dims": True}),
    "fc_no_bias": ("FULLY_CONNECTED", [act(1, 6), w(4, 6), None], None),
    "fc_dynamic_filter": ("FULLY_CONNECTED", [act(2, 6), act(4, 6), None], None),
    "batch_matmul": ("BATCH_MATMUL", [act(2, 3, 4), act(2, 4, 5)], None),
    "batch_matmul_adj": ("BATCH_MATMUL", [act(2, 4, 3), act(2, 5, 4)], {"adj_x": True, "adj_y": True}),
    "batch_matmul_const_bcast": ("BATCH_MATMUL", [act(2, 3, 4), w(4, 5)], None),
    "avg_pool_same": pool("AVERAGE_POOL_2D", "SAME", 2, 3),
    "avg_pool_valid": pool("AVERAGE_POOL_2D", "VALID", 2, 2),
    "max_pool_same": pool("MAX_POOL_2D", "SAME", 2, 3),
    "max_pool_valid": pool("MAX_POOL_2D", "VALID", 1, 2),
    "mean_keep": ("MEAN", [act(1, 4, 5, 3), i32(1, 2)], {"keep_dims": True}),
    "mean_neg_axis": ("MEAN", [act(2, 4, 3), i32(-1)], None),
    "sum": ("SUM", [act(2, 4, 3), i32(0, 2)], None),
    "reduce_max": ("REDUCE_MAX", [act(2, 4, 3), i32(1)], {"keep_dims": True}),
    "reduce_min": ("REDUCE_MIN", [act(2, 4, 3), i32(-2, 0)], None),
    "reduce_prod": ("REDUCE_PROD", [act(2, 4, 3), i32(1)], {"keep_dims": True}),
    "softmax": ("SOFTMAX", [act(2, 7)], {"beta": 1.0}),
    "softmax_beta": ("SOFTMAX", [act(2, 3, 7)], {"beta": 0.5}),
    "log_softmax": ("LOG_SOFTMAX", [act(2, 7)], None),
    "logistic": ("LOGISTIC", [act(2, 8)], None),
    "tanh": ("TANH", [act(2, 8)], None),
    "relu": ("RELU", [act(2, 8)], None),
    "relu6": ("RELU6", [In(rng.uniform(-3, 9, (N, 2, 8)).astype(F32))], None),
    "relu_n1_to_1": ("RELU_N1_TO_1", [act(2, 8)], None),
    "leaky_relu": ("LEAKY_RELU", [act(2, 8)], {"alpha": 0.2}),
    "prelu": ("PRELU", [act(1, 2, 2, 3), w(1, 1, 3)], None),
    "hard_swish": ("HARD_SWISH", [act(4, 8, lo=-5, hi=5)], None),
    "gelu_exact": ("GELU", [act(4, 8)], {"approximate": False}),
    "gelu_tanh": ("GELU", [act(4, 8)], {"approximate": True}),
    "exp": ("EXP", [act(2, 8)], None),
    "log": ("LOG", [act(2, 8, lo=0.1, hi=5)], None),
    "sqrt": ("SQRT", [act(2, 8, lo=0.0, hi=5)], None),
    "rsqrt": ("RSQRT", [act(2, 8, lo=0.1, hi=5)], None),
    "square": ("SQUARE", [act(2, 8)], None),
    "abs": ("ABS", [act(2, 8)], None),
    "neg": ("NEG", [act(2, 8)], None),
    "reshape": ("RESHAPE", [act(1, 4, 6), i32(-1, 3)], None),
    "reshape_scalar_dims": ("RESHAPE", [act(2, 3, 4), i32(6, 2, 2)], None),
    "squeeze_dims": ("SQUEEZE", [act(1, 4, 1, 3)], {"squeeze_dims": [2]}),
    "squeeze_all": ("SQUEEZE", [act(1, 4, 1, 3)], None),
    "expand_dims": ("EXPAND_DIMS", [act(4, 3), i32(1)], None),
    "expand_dims_neg": ("EXPAND_DIMS", [act(4, 3), i32(-1)], None),
    "transpose": ("TRANSPOSE", [act(2, 3, 4, 5), i32(0, 3, 1, 2)], None),
    "concat": ("CONCATENATION", [act(1, 4, 2), act(1, 4, 3), w(1, 4, 1)], {"axis": -1}),
    "concat_axis1": ("CONCATENATION", [act(1, 2, 3), act(1, 5, 3)], {"axis": 1}),
    "pack": ("PACK", [act(2, 3), act(2, 3), w(2, 3)], {"values_count": 3, "axis": 1}),
    "pack_neg": ("PACK", [act(2, 3), act(2, 3)], {"values_count": 2, "axis": -1}),
    "unpack": ("UNPACK", [act(2, 3, 4)], {"num": 3, "axis": 1}, (np.float32,) * 3),
    "split": ("SPLIT", [i32(2), act(1, 3, 6)], {"num_splits": 3}, (np.float32,) * 3),
    "split_v": ("SPLIT_V", [act(1, 7, 2), i32(1, -1, 2), i32(1)], {"num_splits": 3}, (np.float32,) * 3),
    "slice": ("SLICE", [act(2, 5, 6), i32(0, 1, 2), i32(-1, 3, -1)], None),
    "strided_slice_basic": ss([0, 1, 0, 0], [2, 4, 6, 3], [1, 1, 2, 1]),
    "strided_slice_masks": ss([0, 1, 5, 1], [0, 4, 0, 0], [1, 2, -2, 1], begin_mask=0b0001, end_mask=0b1101),
    "strided_slice_shrink": ss([0, -1, 0, 0], [1, 0, 6, 3], [1, 1, 1, 1], shrink_axis_mask=0b0011),
    "strided_slice_neg_stride": ss([1, 4, -1, 2], [0, 0, -7, 0], [-1, -1, -1, -1], begin_mask=0b0001, end_mask=0b0001),
    "strided_slice_ellipsis": ss([0, 1], [0, 3], [1, 1], ellipsis_mask=0b01),
    "strided_slice_new_axis": ss([0, 0, 1], [0, 0, 3], [1, 1, 1], new_axis_mask=0b010, begin_mask=0b001, end_mask=0b001),
    "strided_slice_offset": ss([0, 1, 2, 0], [2, 2, 3, 3], [1, 1, 1, 1], offset=True),
    "pad": ("PAD", [act(1, 3, 4, 2), i32(0, 0, 1, 2, 2, 0, 0, 1).reshape(4, 2)], None),
    "padv2": ("PADV2", [act(1, 3, 4, 2), i32(0, 0, 1, 2, 2, 0, 0, 0).reshape(4, 2), np.array(-1.5, F32)], None),
    "mirror_pad_reflect": ("MIRROR_PAD", [act(1, 4, 5, 2), i32(0, 0, 2, 1, 1, 3, 0, 0).reshape(4, 2)], {"mode": "REFLECT"}),
    "mirror_pad_symmetric": ("MIRROR_PAD", [act(1, 4, 5, 2), i32(0, 0, 2, 1, 1, 3, 0, 0).reshape(4, 2)], {"mode": "SYMMETRIC"}),
    "gather_const_params": ("GATHER", [w(10, 4), ints_in(10, 1, 5)], {"axis": 0}),
    "gather_axis1": ("GATHER", [act(2, 6, 3), i32(5, 0, 2, 2)], {"axis": 1}),
    "gather_axis_neg_2d_idx": ("GATHER", [act(2, 6, 3), i32(1, 0, 2, 3).reshape(2, 2)], {"axis": -2}),
    "gather_const_params_axis1": ("GATHER", [w(3, 10, 2), ints_in(10, 4)], {"axis": 1}),
    "gather_batch_dims": ("GATHER", [act(2, 6, 3), ints_in(6, 2, 4)], {"axis": 1, "batch_dims": 1}),
    "gather_nd": ("GATHER_ND", [act(4, 5, 3), i32(0, 1, 3, 4, 2, 2).reshape(3, 2)], None),
    "gather_nd_const_params": ("GATHER_ND", [w(4, 5, 3), ints_in(4, 2, 1)], None),
    "embedding_lookup": ("EMBEDDING_LOOKUP", [ints_in(7, 5), w(7, 3)], None),
    "resize_bilinear_up": resize("RESIZE_BILINEAR", (9, 16), False, False),
    "resize_bilinear_align": resize("RESIZE_BILINEAR", (9, 16), True, False),
    "resize_bilinear_half_pixel": resize("RESIZE_BILINEAR", (9, 13), False, True),
    "resize_bilinear_down": resize("RESIZE_BILINEAR", (3, 4), False, True),
    "resize_bilinear_down_align": resize("RESIZE_BILINEAR", (3, 4), True, False),
    "resize_nearest_up": resize("RESIZE_NEAREST_NEIGHBOR", (9, 16), False, False),
    "resize_nearest_align": resize("RESIZE_NEAREST_NEIGHBOR", (9, 16), True, False),
    "resize_nearest_half_pixel": resize("RESIZE_NEAREST_NEIGHBOR", (9, 13), False, True),
    "resize_nearest_align_half": resize("RESIZE_NEAREST_NEIGHBOR", (11, 5), True, True),
    "resize_nearest_down": resize("RESIZE_NEAREST_NEIGHBOR", (3, 4), False, False),
    "space_to_depth": ("SPACE_TO_DEPTH", [act(1, 4, 6, 3)], {"block_size": 2}),
    "depth_to_space": ("DEPTH_TO_SPACE", [act(1, 2, 3, 8)], {"block_size": 2}),
    "space_to_batch_nd": ("SPACE_TO_BATCH_ND", [act(1, 5, 6, 2), i32(2, 3), i32(1, 0, 0, 0).reshape(2, 2)], None),
    "batch_to_space_nd": ("BATCH_TO_SPACE_ND", [act(6, 3, 2, 2), i32(2, 3), i32(1, 0, 0, 1).reshape(2, 2)], None),
    "quantize": ("QUANTIZE", [act(2, 8)], None, (UniformQuantizedType.make(I8, 0.02, -3),)),
    "dequantize": ("DEQUANTIZE", [QConst(rng.integers(-128, 128, (3, 4)).astype(np.int8), UniformQuantizedType.make(I8, 0.05, 4)), ], None),
    "dequantize_fp16": ("DEQUANTIZE", [w(3, 4).astype(np.float16)], None),
    "cast_f2i": ("CAST", [act(2, 5, lo=-9, hi=9)], None, (np.int32,)),
    "cast_i2f": ("CAST", [ints_in(100, 5)], None, (np.float32,)),
    "shape": ("SHAPE", [act(2, 5, 3)], {"out_type": "INT32"}, (np.int32,)),
    "fill": ("FILL", [i32(2, 3), act()], None),
    "broadcast_to": ("BROADCAST_TO", [act(1, 3), i32(2, 4, 3)], None),
    "tile": ("TILE", [act(2, 1, 3), i32(2, 3, 1)], None),
    "select": ("SELECT", [In(rng.random((N, 2, 3)) > 0.5), act(2, 3), act(2, 3)], None),
    "select_v2": ("SELECT_V2", [In(rng.random((N, 2, 1)) > 0.5), act(2, 3), w(3)], None),
    "arg_max": ("ARG_MAX", [act(2, 7), i32(1)], {"output_type": "INT32"}, (np.int32,)),
    "arg_min_i64": ("ARG_MIN", [act(2, 7, 3), i32(-2)], {"output_type": "INT64"}, (np.int64,)),
    "l2_normalization": ("L2_NORMALIZATION", [act(2, 6)], None),
    "cumsum": ("CUMSUM", [act(2, 5), i32(1)], None),
    "cumsum_exclusive_reverse": ("CUMSUM", [act(2, 5), i32(-1)], {"exclusive": True, "reverse": True}),
    "dequantize_per_axis": ("DEQUANTIZE", [QConst(rng.integers(-127, 128, (3, 4)).astype(np.int8), UniformQuantizedType.make(I8, [0.5, 0.1, 0.2, 0.3], 0, axis=1, narrow=True))], None),
    "arg_max_ties": ("ARG_MAX", [In(rng.integers(0, 3, (N, 2, 7)).astype(F32)), i32(-1)], {"output_type": "INT32"}, (np.int32,)),
    "arg_min_ties": ("ARG_MIN", [In(rng.integers(0, 3, (N, 7, 2)).astype(F32)), i32(0)], {"output_type": "INT32"}, (np.int32,)),
    "gather_nd_both_batched": ("GATHER_ND", [act(4, 5, 3), In(rng.integers(0, 4, (N, 2, 2)).astype(np.int32))], None),
    "select_rank1_condition": ("SELECT", [In(rng.random((N, 4)) > 0.5), act(4, 3), act(4, 3)], None),
    "fc_batched_filter_and_bias": ("FULLY_CONNECTED", [act(2, 6), act(4, 6), act(4)], {"keep_num_dims": True}),
    "conv_batch2": ("CONV_2D", [act(2, 6, 5, 3), w(4, 3, 3, 3), w(4)], {"padding": "SAME", "stride_h": 2, "stride_w": 1}),
    "depthwise_batch2": ("DEPTHWISE_CONV_2D", [act(2, 6, 5, 3), w(1, 3, 3, 3), w(3)], {"padding": "VALID", "stride_h": 1, "stride_w": 2}),
    "transpose_conv_batch2": ("TRANSPOSE_CONV", [i32(2, 10, 12, 4), w(4, 3, 3, 3), act(2, 5, 6, 3), w(4)], {"padding": "SAME", "stride_h": 2, "stride_w": 2}),
    # the fast paths of the calibration kernels (see float_kernels): flat/polyphase depthwise
    # (few channels, >= 100 output pixels), stride-1 row-tap convolution with dilation
    "depthwise_flat_s1": ("DEPTHWISE_CONV_2D", [act(1, 12, 13, 4), w(1, 3, 3, 4), w(4)], {"padding": "SAME", "stride_h": 1, "stride_w": 1, "fused_activation_function": "RELU6"}),
    "depthwise_flat_s2_m2": ("DEPTHWISE_CONV_2D", [act(1, 23, 22, 3), w(1, 3, 3, 6), w(6)], {"padding": "SAME", "stride_h": 2, "stride_w": 2, "depth_multiplier": 2}),
    "depthwise_flat_dilated": ("DEPTHWISE_CONV_2D", [act(1, 14, 15, 5), w(1, 3, 2, 5), w(5)], {"padding": "VALID", "stride_h": 1, "stride_w": 1, "dilation_h_factor": 2, "dilation_w_factor": 3}),
    "conv_dilated_rows": ("CONV_2D", [act(1, 12, 11, 5), w(6, 3, 2, 5), w(6)], {"padding": "SAME", "stride_h": 1, "stride_w": 2, "dilation_h_factor": 2, "dilation_w_factor": 1}),
    "resize_bilinear_batch2": ("RESIZE_BILINEAR", [act(2, 3, 4, 2), i32(5, 7)], {"half_pixel_centers": True}),
    "depth_to_space_batch2": ("DEPTH_TO_SPACE", [act(2, 2, 3, 12)], {"block_size": 2}),
    "space_to_depth_batch2": ("SPACE_TO_DEPTH", [act(2, 6, 4, 2)], {"block_size": 2}),
    "avg_pool_batch2": ("AVERAGE_POOL_2D", [act(2, 5, 5, 2)], {"padding": "SAME", "stride_h": 2, "stride_w": 2, "filter_height": 3, "filter_width": 2}),
    "unpack_neg_axis": ("UNPACK", [act(2, 3, 4)], {"num": 4, "axis": -1}, (np.float32,) * 4),
    "split_neg_axis": ("SPLIT", [i32(-1), act(2, 6)], {"num_splits": 2}, (np.float32,) * 2),
    "squeeze_neg": ("SQUEEZE", [act(1, 4, 1)], {"squeeze_dims": [-1, 0]}),
    "lstm": lstm(),
    "lstm_cifg_peephole_proj": lstm(cifg=True, peephole=True, proj=True),
    "lstm_layer_norm_time_major": lstm(peephole=True, layer_norm=True, time_major=True),
}

# ops with int8 kernels added later (tests/test_more_int8_ops.py); their own generator, so
# the data of the cases above stays as it was
_rng_more = np.random.default_rng(11)


def _act_more(*shape: int, scale: float = 2.0) -> In:
    return In((_rng_more.standard_normal((N, *shape)) * scale).astype(F32))


CASES.update(
    {
        "elu": ("ELU", [_act_more(4, 8)], None),
        "relu_0_to_1": ("RELU_0_TO_1", [_act_more(4, 8, scale=0.8)], None),
        "reverse_v2": ("REVERSE_V2", [_act_more(2, 3, 4), i32(1)], None),
        "reverse_v2_neg_axis": ("REVERSE_V2", [_act_more(2, 3, 4), i32(-1)], None),
        "topk_v2": ("TOPK_V2", [_act_more(3, 7), np.array(3, np.int32)], None, (np.float32, np.int32)),
        "dynamic_update_slice": ("DYNAMIC_UPDATE_SLICE", [_act_more(4, 5, 3), _act_more(2, 2, 3), i32(1, 2, 0)], None),
        "dynamic_update_slice_clamped": ("DYNAMIC_UPDATE_SLICE", [_act_more(4, 5), _act_more(2, 3), i32(3, -1)], None),
        "dynamic_update_slice_per_sample": ("DYNAMIC_UPDATE_SLICE", [_act_more(6, 4), _act_more(1, 4), In(np.array([[0, 0], [5, 0], [2, 1]], np.int32))], None),
        "one_hot": ("ONE_HOT", [In(np.array([[0, 3, 1], [2, -1, 4], [3, 3, 0]], np.int32)), np.array(4, np.int32), np.array(1.0, F32), np.array(0.0, F32)], {"axis": -1}),
        "one_hot_axis0": ("ONE_HOT", [In(np.array([[0, 3], [2, 1], [1, 1]], np.int32)), np.array(3, np.int32), np.array(2.5, F32), np.array(-1.0, F32)], {"axis": 0}),
        "topk_v2_ties": ("TOPK_V2", [In(_rng_more.integers(0, 3, (N, 2, 9)).astype(F32)), np.array(4, np.int32)], None, (np.float32, np.int32)),
    }
)


def _materialize(case: tuple) -> tuple[ModuleOp, list[np.ndarray]]:
    builtin, operands, options = case[:3]
    out = case[3] if len(case) > 3 else (np.float32,)
    variables = case[4] if len(case) > 4 else {}
    if not variables:
        return op_model(builtin, operands, options, out)
    # ops with variable (state) tensors: build, then swap the placeholders for tfl.variable
    ops = [np.zeros(variables[o], F32) if isinstance(o, str) else o for o in operands]
    module, inputs = op_model(builtin, ops, options, out)
    f = next(iter(module.ops))
    assert isinstance(f, func.FuncOp)
    consts = [op for op in f.body.block.ops if isinstance(op, tfl.ConstOp)]
    for c in consts:
        if c.numpy().shape in set(variables.values()) and not c.numpy().any():
            v = tfl.VariableOp.create(result_types=[c.result.type], attributes={"names": c.attributes["names"]})
            f.body.block.insert_op_before(v, c)
            c.result.replace_all_uses_with(v.result)
            c.detach()
            c.erase()
    module.verify()
    return module, inputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_single_op_matches_litert(name: str) -> None:
    module, inputs = _materialize(CASES[name])
    compare_with_litert(module, inputs, int_tol=1 if name == "quantize" else 0)


THREADED_CASES = [
    "conv_batch2", "conv_dilated_rows", "depthwise_flat_s1", "depthwise_flat_s2_m2", "depthwise_batch2",
    "transpose_conv_batch2", "resize_bilinear_batch2", "avg_pool_batch2", "add_relu6",
]  # fmt: skip


@pytest.mark.parametrize("name", THREADED_CASES)
def test_kernels_split_over_threads_match_one_thread_and_litert(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tflquant.reference import float_kernels as fk

    module, inputs = _materialize(CASES[name])
    old = fk.set_threads(1)
    try:
        single = Interpreter(module).run(inputs)
        fk.set_threads(2)
        monkeypatch.setattr(fk, "_PARALLEL_MIN_WORK", 0)  # split even these small batches
        split = Interpreter(module).run(inputs)
        for a, b in zip(single, split):
            np.testing.assert_array_equal(a, b)
        compare_with_litert(module, inputs)
    finally:
        fk.set_threads(old)


def test_parallel_part_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    from tflquant.reference import float_kernels as fk

    monkeypatch.setattr(fk, "_PARALLEL_MIN_WORK", 0)
    old = fk.set_threads(2)
    try:
        seen = []

        def part(s0: int, s1: int) -> None:
            seen.append((s0, s1))
            if s0 > 0:
                raise ValueError("second part failed")

        with pytest.raises(ValueError, match="second part"):
            fk.split_samples(4, 1, part)
        assert sorted(seen) == [(0, 2), (2, 4)]
    finally:
        fk.set_threads(old)


def test_resize_bilinear_keeps_inf_local_like_litert() -> None:
    x = rng.standard_normal((N, 1, 5, 6, 2)).astype(F32)
    x[1, 0, 2, 3, 1] = np.inf
    module, inputs = op_model("RESIZE_BILINEAR", [In(x), i32(9, 11)], {"half_pixel_centers": True})
    from tflquant.tflite.writer import write_flatbuffer

    ours = Interpreter(module).run(inputs)[0]
    ref = np.stack([r[0] for r in litert_run(write_flatbuffer(module), inputs)["BUILTIN_WITHOUT_DEFAULT_DELEGATES"]])
    fin = np.isfinite(ref)
    assert not fin.all() and fin.sum() > fin.size // 2  # the Inf reaches a few outputs only
    np.testing.assert_array_equal(np.isfinite(ours), fin)
    assert rel_err(ours[fin], ref[fin]) <= RTOL


def test_every_modelled_op_has_a_kernel_and_a_litert_case() -> None:
    from tflquant.reference.float_kernels import KERNELS

    covered = {c[0] for c in CASES.values()}
    for builtin in tfl.BUILTIN_CLASSES:
        assert builtin in KERNELS, builtin
        if builtin != "DENSIFY":  # sparse constants: tested below on the densified values
            assert builtin in covered, f"no LiteRT comparison for {builtin}"


# ----------------------------------------------------------------------------------------
# the reference models
# ----------------------------------------------------------------------------------------


def test_shared_model_matches_litert(shared_model) -> None:
    from tflquant.tflite.reader import load_model

    module = load_model(shared_model / "float.tflite")
    ev = np.load(shared_model / "eval.npz")
    model = (shared_model / "float.tflite").read_bytes()
    from ai_edge_litert.interpreter import Interpreter as LiteRT

    li = LiteRT(model_content=model)
    names = [d["name"] for d in li.get_input_details()]
    xs = [ev[n][:4] for n in names]  # samples are rows of a batch-1 input
    ours = Interpreter(module).run(xs)
    ref = litert_run(model, [x[:, None] for x in xs])["AUTO"]
    worst = 0.0
    for k, per_sample in enumerate(ref):
        for j, r in enumerate(per_sample):
            assert ours[j][k].shape == r.shape
            worst = max(worst, rel_err(ours[j][k], r))
    assert worst <= RTOL, f"{shared_model.name}: max relative error {worst:.3g}"


def test_shared_model_intermediates_match_litert(shared_model) -> None:
    """Every tensor the observer sees (what calibration records) equals LiteRT's."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType

    from tflquant.ir import value_name
    from tflquant.tflite.reader import load_model

    path = shared_model / "float.tflite"
    li = LiteRT(model_path=str(path), experimental_preserve_all_tensors=True, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    li.allocate_tensors()
    ev = np.load(shared_model / "eval.npz")
    xs = [ev[d["name"]][:1] for d in li.get_input_details()]
    seen: dict[str | None, np.ndarray] = {}
    Interpreter(load_model(path)).run(xs, observer=lambda v, a: seen.__setitem__(value_name(v), a[0]))
    for d, x in zip(li.get_input_details(), xs):
        li.set_tensor(d["index"], x)
    li.invoke()
    compared = 0
    for t in li.get_tensor_details():
        if t["name"] not in seen:
            continue
        ref = li.get_tensor(t["index"])
        ours = seen[t["name"]].reshape(ref.shape)
        if ref.dtype.kind == "f":
            assert rel_err(ours, ref) <= RTOL, t["name"]
        else:
            np.testing.assert_array_equal(ours, ref, err_msg=t["name"])
        compared += 1
    assert compared == len(seen)


# ----------------------------------------------------------------------------------------
# batching, observer, fake quantization, errors
# ----------------------------------------------------------------------------------------

SMALL = """
builtin.module {
  func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
    %w = "tfl.const"() <{value = dense<[[1.0, 0.0, -1.0, 0.5], [0.25, 0.25, 0.25, 0.25]]> : tensor<2x4xf32>}> {names = ["w"]} : () -> tensor<2x4xf32>
    %n = "tfl.no_value"() : () -> none
    %s = "tfl.shape"(%x) <{out_type = "INT32"}> {names = ["s"]} : (tensor<1x4xf32>) -> tensor<2xi32>
    %y = "tfl.fully_connected"(%x, %w, %n) <{fused_activation_function = "RELU"}> {names = ["y"]} : (tensor<1x4xf32>, tensor<2x4xf32>, none) -> tensor<1x2xf32>
    %r = "tfl.reshape"(%y, %s2) {names = ["r"]} : (tensor<1x2xf32>, tensor<2xi32>) -> tensor<1x2xf32>
    %s2 = "tfl.shape"(%y) <{out_type = "INT32"}> {names = ["s2"]} : (tensor<1x2xf32>) -> tensor<2xi32>
    func.return %r : tensor<1x2xf32>
  }
}
"""


def _small() -> ModuleOp:
    text = SMALL.replace(
        '    %r = "tfl.reshape"(%y, %s2) {names = ["r"]} : (tensor<1x2xf32>, tensor<2xi32>) -> tensor<1x2xf32>\n'
        '    %s2 = "tfl.shape"(%y) <{out_type = "INT32"}> {names = ["s2"]} : (tensor<1x2xf32>) -> tensor<2xi32>\n',
        '    %s2 = "tfl.shape"(%y) <{out_type = "INT32"}> {names = ["s2"]} : (tensor<1x2xf32>) -> tensor<2xi32>\n'
        '    %r = "tfl.reshape"(%y, %s2) {names = ["r"]} : (tensor<1x2xf32>, tensor<2xi32>) -> tensor<1x2xf32>\n',
    )
    return parse_module(text)


def test_batched_run_equals_per_sample_runs_and_observer_sees_everything() -> None:
    m = _small()
    x = rng.standard_normal((5, 1, 4)).astype(F32)
    seen: dict[str, tuple] = {}
    from tflquant.ir import value_name

    def observer(v, a):
        seen[value_name(v)] = a.shape

    interp = Interpreter(m)
    (batched,) = interp.run([x], observer=observer)
    assert batched.shape == (5, 1, 2)
    for k in range(5):
        (one,) = interp.run([x[k : k + 1]])
        np.testing.assert_allclose(one[0], batched[k], rtol=1e-6)  # BLAS blocking may differ in the last bit
    wm = np.array([[1.0, 0.0, -1.0, 0.5], [0.25, 0.25, 0.25, 0.25]], F32)
    np.testing.assert_allclose(batched[:, 0], np.maximum(x[:, 0] @ wm.T, 0), rtol=1e-6)
    # every argument and op result but constants, always with the sample axis
    assert seen == {"x": (5, 1, 4), "s": (5, 2), "y": (5, 1, 2), "s2": (5, 2), "r": (5, 1, 2)}
    # samples may also be given as rows of the batch-1 input
    (rows,) = interp.run([x[:, 0]])
    np.testing.assert_array_equal(rows, batched)


def test_large_batches_run_as_parallel_sample_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    from tflquant.reference import float_kernels as fk
    from tflquant.reference import interpreter as interp_mod

    m = _small()
    x = rng.standard_normal((40, 1, 4)).astype(F32)
    old = fk.set_threads(1)
    try:
        (single,) = Interpreter(m).run([x])
        fk.set_threads(2)
        monkeypatch.setattr(interp_mod, "PARALLEL_MIN_ELEMS", 0)
        seen: dict[str, list[int]] = {}
        busy = []

        def observer(v, a):
            assert not busy, "observer called concurrently"
            busy.append(1)
            seen.setdefault(value_name(v), []).append(a.shape[0])
            busy.pop()

        from tflquant.ir import value_name

        (split,) = Interpreter(m).run([x], observer=observer)
    finally:
        fk.set_threads(old)
    np.testing.assert_allclose(split, single, rtol=1e-6)
    assert split.shape == single.shape
    assert seen["x"] == [40]  # arguments: once, whole
    ranges = 40 // interp_mod.PARALLEL_RANGE_SAMPLES
    assert all(sorted(v) == [40 // ranges] * ranges for k, v in seen.items() if k != "x"), seen


def test_fake_quant_rounds_to_the_grid_per_tensor_and_per_axis() -> None:
    text = """
    builtin.module {
      func.func @main(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
        %q = quant.qcast %x : tensor<2x3xf32> -> tensor<2x3x!quant.uniform<i8:f32, 0.1:-3>>
        %d = quant.dcast %q : tensor<2x3x!quant.uniform<i8:f32, 0.1:-3>> -> tensor<2x3xf32>
        %s = quant.stats %d, <-1.0, 1.0> : tensor<2x3xf32>
        %qa = quant.qcast %x : tensor<2x3xf32> -> tensor<2x3x!quant.uniform<i8<-127:127>:f32:1, {0.5, 0.01, 0.02}>>
        %da = quant.dcast %qa : tensor<2x3x!quant.uniform<i8<-127:127>:f32:1, {0.5, 0.01, 0.02}>> -> tensor<2x3xf32>
        func.return %s, %da : tensor<2x3xf32>, tensor<2x3xf32>
      }
    }
    """
    x = np.array([[[0.04, 0.05, -0.26], [100.0, -100.0, 12.8]]] * 2, F32)
    d, da = Interpreter(parse_module(text)).run([x])
    np.testing.assert_allclose(d[0], [[0.0, 0.1, -0.3], [13.0, -12.5, 12.8]], atol=1e-6)  # zp -3: [-12.5, 13.0]
    np.testing.assert_allclose(da[0], [[0.0, 0.05, -0.26], [63.5, -1.27, 2.54]], atol=1e-6)


def test_quantized_constant_feeds_float_kernel_dequantized() -> None:
    qt = UniformQuantizedType.make(I8, [0.5, 0.25], 0, axis=0, narrow=True)
    wq = np.array([[2, -4, 6], [8, 10, -127]], np.int8)
    m, inputs = op_model("FULLY_CONNECTED", [act(1, 3), QConst(wq, qt), None], None)
    (y,) = Interpreter(m).run(inputs)
    wf = wq.astype(F32) * np.array([[0.5], [0.25]], F32)
    np.testing.assert_allclose(y[:, 0], inputs[0][:, 0] @ wf.T, rtol=1e-6)


def test_sparse_constant_densifies() -> None:
    from xdsl.dialects.builtin import DenseArrayBase, DictionaryAttr, IntegerAttr, i32 as I32

    from tflquant.reference.interpreter import _sparse_to_dense

    dense = np.array([[0, 1.5, 0, 0], [0, 0, 0, 0], [2.0, 0, 0, -3.0]], F32)
    md0 = DictionaryAttr({"format": IntegerAttr(0, I32), "dense_size": IntegerAttr(3, I32)})
    md1 = DictionaryAttr(
        {
            "format": IntegerAttr(1, I32),
            "dense_size": IntegerAttr(0, I32),
            "array_segments": DenseArrayBase.from_list(I32, [0, 1, 1, 3]),
            "array_indices": DenseArrayBase.from_list(I32, [1, 0, 3]),
        }
    )
    sparsity = DictionaryAttr(
        {"traversal_order": DenseArrayBase.from_list(I32, [0, 1]), "block_map": DenseArrayBase.from_list(I32, []), "dim_metadata": ArrayAttr([md0, md1])}
    )
    op = tfl.SparseConstOp.create(
        properties={"value": dense_from_numpy(np.array([1.5, 2.0, -3.0], F32)), "sparsity": sparsity},
        result_types=[TensorType(element_type_of_dtype(F32), [3, 4])],
    )
    np.testing.assert_array_equal(_sparse_to_dense(op), dense)


def test_strided_slice_index_matches_numpy_semantics() -> None:
    masks = dict(begin_mask=0, end_mask=0b10, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0b01)
    assert strided_slice_index([4, 5], [2, 1], [3, 0], [1, 2], masks, False) == (2, slice(1, 5, 2))
    # begin_mask picks the first element of a shrunk axis; offset ends count from the clamped start
    masks = dict(masks, begin_mask=0b01, end_mask=0)
    assert strided_slice_index([4, 5], [3, -9], [0, 2], [1, 1], masks, True) == (0, slice(0, 2, 1))


def test_unsupported_op_and_bad_inputs_raise_one_clear_error() -> None:
    text = """
    builtin.module {
      func.func @main(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
        %y = "tfl.opaque"(%x) <{code = 200 : i32, version = 1 : i32, custom_code = "MyOp"}> {names = ["mine"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
        func.return %y : tensor<1x4xf32>
      }
    }
    """
    with pytest.raises(TflquantError, match="MyOp 'mine' has no reference kernel"):
        Interpreter(parse_module(text)).run([np.zeros((2, 1, 4), F32)])
    m = _small()
    with pytest.raises(TflquantError, match=r"input 0 \('x'\) of @main must have shape \(N, 1, 4\)"):
        Interpreter(m).run([np.zeros((2, 1, 5), F32)])
    with pytest.raises(TflquantError, match="takes 1 inputs"):
        Interpreter(m).run([])
    with pytest.raises(TflquantError, match="no function named"):
        Interpreter(m).run([np.zeros((2, 1, 4), F32)], func_name="nope")


def test_fake_quantized_module_runs_in_float() -> None:
    """A qcast/dcast pair around an op: the float result equals the op on grid values."""
    m, inputs = op_model("RELU", [act(2, 3)])
    f = next(iter(m.ops))
    relu = next(op for op in f.body.block.ops if op.name == "tfl.relu")
    qt = UniformQuantizedType.make(I8, 0.05, 0)
    q = quant.QuantizeCastOp(relu.operands[0], qt)
    d = quant.DequantizeCastOp(q.result)
    f.body.block.insert_ops_before([q, d], relu)
    relu.operands[0] = d.result
    m.verify()
    (y,) = Interpreter(m).run(inputs)
    grid = np.clip(np.trunc(inputs[0] / F32(0.05) + np.copysign(0.5, inputs[0])), -128, 127) * 0.05
    np.testing.assert_allclose(y, np.maximum(grid, 0), atol=1e-6)


def test_densify_of_sparse_constant_matches_litert() -> None:
    from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, i32 as I32


    md0 = DictionaryAttr({"format": IntegerAttr(0, I32), "dense_size": IntegerAttr(3, I32)})
    md1 = DictionaryAttr(
        {
            "format": IntegerAttr(1, I32),
            "dense_size": IntegerAttr(0, I32),
            "array_segments_type": IntegerAttr(1, I32),
            "array_segments": DenseArrayBase.from_list(I32, [0, 1, 1, 3]),
            "array_indices_type": IntegerAttr(1, I32),
            "array_indices": DenseArrayBase.from_list(I32, [1, 0, 3]),
        }
    )
    sparsity = DictionaryAttr(
        {"traversal_order": DenseArrayBase.from_list(I32, [0, 1]), "block_map": DenseArrayBase.from_list(I32, []), "dim_metadata": ArrayAttr([md0, md1])}
    )
    t = TensorType(element_type_of_dtype(F32), [3, 4])
    block = Block(arg_types=[t])
    sc = tfl.SparseConstOp.create(
        properties={"value": dense_from_numpy(np.array([1.5, 2.0, -3.0], F32)), "sparsity": sparsity},
        result_types=[t],
        attributes={"names": ArrayAttr([StringAttr("sparse")])},
    )
    dn = tfl.BUILTIN_CLASSES["DENSIFY"]([sc.result], [t], names=["dense"])
    add = tfl.AddOp([block.args[0], dn.results[0]], [t], names=["sum"])
    block.add_ops([sc, dn, add, func.ReturnOp(add.results[0])])
    f = func.FuncOp("main", ([t], [t]), Region(block), arg_attrs=ArrayAttr([DictionaryAttr({"tfl.name": StringAttr("x")})]))
    m = ModuleOp([f])
    x = rng.standard_normal((N, 3, 4)).astype(F32)
    (y,) = Interpreter(m).run([x])
    np.testing.assert_allclose(y - x, np.broadcast_to([[0, 1.5, 0, 0], [0, 0, 0, 0], [2.0, 0, 0, -3.0]], (N, 3, 4)), atol=1e-6)
    compare_with_litert(m, [x])


def test_opaque_reduce_prod_matches_litert() -> None:
    text = """
    builtin.module {
      func.func @main(%x: tensor<2x3xf32> {tfl.name = "x"}) -> tensor<2x1xf32> {
        %a = "tfl.const"() <{value = dense<1> : tensor<1xi32>}> {names = ["axis"]} : () -> tensor<1xi32>
        %y = "tfl.opaque"(%x, %a) <{code = 81 : i32, version = 1 : i32, options_type = 27 : i32, options = {keep_dims = true}}> {names = ["prod"]} : (tensor<2x3xf32>, tensor<1xi32>) -> tensor<2x1xf32>
        func.return %y : tensor<2x1xf32>
      }
    }
    """
    m = parse_module(text)
    x = rng.uniform(0.5, 1.5, (N, 2, 3)).astype(F32)
    compare_with_litert(m, [x])


def test_functions_and_signatures() -> None:
    text = """
    builtin.module attributes {tfl.signatures = [
        {key = "double", function = "twice", inputs = ["b", "a"], input_indices = array<i32: 1, 0>, outputs = ["o"], output_indices = array<i32: 0>}]} {
      func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
        %y = "tfl.neg"(%x) : (tensor<2xf32>) -> tensor<2xf32>
        func.return %y : tensor<2xf32>
      }
      func.func @twice(%a: tensor<2xf32>, %b: tensor<2xf32>) -> tensor<2xf32> {
        %y = "tfl.sub"(%a, %b) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
        func.return %y : tensor<2xf32>
      }
    }
    """
    it = Interpreter(parse_module(text))
    a, b = np.ones((1, 2), F32), np.full((1, 2), 3.0, F32)
    np.testing.assert_array_equal(it.run([a])[0], -a)
    np.testing.assert_array_equal(it.run([a, b], func_name="twice")[0], a - b)
    # signature order: inputs ["b", "a"] are arguments 1 and 0
    np.testing.assert_array_equal(it.run([b, a], signature="double")[0], a - b)
    with pytest.raises(TflquantError, match="no signature 'nope'"):
        it.run([a], signature="nope")


def test_control_flow_without_subgraph_options_is_reported_by_name() -> None:
    """A WHILE that names no cond/body subgraph cannot run; the error names it (the loops
    themselves: tests/test_control_flow.py)."""
    text = """
    builtin.module {
      func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
        %y = "tfl.opaque"(%x) <{code = 119 : i32, version = 1 : i32}> {names = ["loop"]} : (tensor<2xf32>) -> tensor<2xf32>
        func.return %y : tensor<2xf32>
      }
    }
    """
    with pytest.raises(TflquantError, match=r"^WHILE 'loop': no option cond_subgraph_index \(the subgraph to run\)$"):
        Interpreter(parse_module(text)).run([np.zeros((1, 2), F32)])


def test_fp16_weight_models_match_litert(shared_model) -> None:
    """fp16 weights feeding DEQUANTIZE run in float like LiteRT runs them."""
    from tflquant.tflite.reader import load_model

    path = shared_model / "tf_float16.tflite"
    module = load_model(path)
    ev = np.load(shared_model / "eval.npz")
    from ai_edge_litert.interpreter import Interpreter as LiteRT

    names = [d["name"] for d in LiteRT(model_path=str(path)).get_input_details()]
    xs = [ev[n][:2] for n in names]
    ours = Interpreter(module).run(xs)
    ref = litert_run(path.read_bytes(), [x[:, None] for x in xs])["AUTO"]
    worst = max(rel_err(ours[j][k], r) for k, per in enumerate(ref) for j, r in enumerate(per))
    assert worst <= RTOL, f"{shared_model.name}: max relative error {worst:.3g}"


# ----------------------------------------------------------------------------------------
# property tests: random configurations of the kernels with the most corner cases
# ----------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _litert_accepts(module: ModuleOp) -> bool:
    """Whether LiteRT's builtin kernels prepare the model (they refuse some configurations)."""
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType

    from tflquant.tflite.writer import write_flatbuffer

    try:
        li = LiteRT(model_content=write_flatbuffer(module), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        li.allocate_tensors()
        return True
    except (RuntimeError, ValueError):
        return False


def _check_case(case: tuple) -> None:
    from hypothesis import assume

    try:
        module, inputs = _materialize(case)
    except TflquantError as e:
        # shrinking an axis at an index outside it: TF rejects it, LiteRT reads out of bounds
        assume("outside its size" not in str(e))
        # otherwise, when we refuse, LiteRT must refuse too
        builtin, operands, options = case[:3]
        probe = build(builtin, operands, options, [(element_type_of_dtype(F32), [])])
        assert not _litert_accepts(probe), f"reference refused a configuration LiteRT accepts: {case}"
        assume(False)
        return
    # empty results: XNNPACK and the builtin kernels disagree on their shapes
    assume(all(0 not in t.get_shape() for t in next(iter(module.ops)).function_type.outputs))  # type: ignore[attr-defined]
    assume(_litert_accepts(module))
    compare_with_litert(module, inputs)


@PROPS
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    data=st.data(),
)
def test_strided_slice_random(shape: list[int], data: st.DataObject) -> None:
    r = len(shape)
    n = data.draw(st.integers(1, r))
    begin = data.draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n))
    end = data.draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n))
    strides = data.draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=n, max_size=n))
    bits = st.integers(0, (1 << n) - 1)
    masks = {"begin_mask": data.draw(bits), "end_mask": data.draw(bits), "shrink_axis_mask": data.draw(bits)}
    # LiteRT writes nothing for a shrunk axis with a negative stride (undefined output)
    masks["shrink_axis_mask"] &= sum(1 << i for i in range(n) if strides[i] > 0)
    if data.draw(st.booleans()):
        masks["ellipsis_mask"] = 1 << data.draw(st.integers(0, n - 1))
    x = In(rng.standard_normal((N, *shape)).astype(F32))
    _check_case(("STRIDED_SLICE", [x, i32(*begin), i32(*end), i32(*strides)], masks))


@PROPS
@given(
    h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 11), ow=st.integers(1, 11),
    ac=st.booleans(), hp=st.booleans(), nearest=st.booleans(),
)  # fmt: skip
def test_resize_random(h: int, w: int, oh: int, ow: int, ac: bool, hp: bool, nearest: bool) -> None:
    kind = "RESIZE_NEAREST_NEIGHBOR" if nearest else "RESIZE_BILINEAR"
    x = In(rng.standard_normal((N, 1, h, w, 2)).astype(F32))
    _check_case((kind, [x, i32(oh, ow)], {"align_corners": ac, "half_pixel_centers": hp}))


@PROPS
@given(
    h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID"]), kind=st.sampled_from(["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"]),
)  # fmt: skip
def test_window_ops_random(h: int, w: int, k: int, s: int, d: int, padding: str, kind: str) -> None:
    x = In(rng.standard_normal((N, 2, h, w, 3)).astype(F32))
    o: dict[str, Any] = {"padding": padding, "stride_h": s, "stride_w": s}
    if kind == "CONV_2D":
        o.update(dilation_h_factor=d, dilation_w_factor=d)
        ops: list[Any] = [x, w_(4, k, k, 3), w_(4)]
    elif kind == "DEPTHWISE_CONV_2D":
        o.update(dilation_h_factor=d, dilation_w_factor=d, depth_multiplier=2)
        ops = [x, w_(1, k, k, 6), w_(6)]
    else:
        o.update(filter_height=k, filter_width=max(1, k - d + 1))
        ops = [x]
    _check_case((kind, ops, o))


@PROPS
@given(h=st.integers(1, 6), w=st.integers(1, 6), k=st.integers(1, 4), s=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]))
def test_transpose_conv_random(h: int, w: int, k: int, s: int, padding: str) -> None:
    if padding == "SAME":
        oh, ow = h * s, w * s
    else:
        oh, ow = (h - 1) * s + k, (w - 1) * s + k
    x = In(rng.standard_normal((N, 1, h, w, 3)).astype(F32))
    _check_case(("TRANSPOSE_CONV", [i32(1, oh, ow, 2), w_(2, k, k, 3), x, w_(2)], {"padding": padding, "stride_h": s, "stride_w": s}))


def w_(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(F32)


def _bcast_shapes(draw_shape: list[int], data: st.DataObject) -> list[int]:
    """A shape that broadcasts with `draw_shape` (right-aligned; some dims 1, rank may differ)."""
    r = data.draw(st.integers(0, len(draw_shape) + 1))
    out = []
    for i in range(r):
        j = len(draw_shape) - r + i
        d = draw_shape[j] if 0 <= j < len(draw_shape) else data.draw(st.integers(1, 3))
        out.append(1 if data.draw(st.booleans()) else d)
    return out


@PROPS
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=4), data=st.data())
def test_broadcasting_binary_random(shape: list[int], data: st.DataObject) -> None:
    other = _bcast_shapes(shape, data)
    builtin = data.draw(st.sampled_from(["ADD", "SUB", "MUL", "MAXIMUM", "SQUARED_DIFFERENCE", "LESS", "SELECT_V2"]))
    a = In(rng.standard_normal((N, *shape)).astype(F32))
    b = In(rng.standard_normal((N, *other)).astype(F32)) if data.draw(st.booleans()) else w_(*other)
    if builtin == "SELECT_V2":
        cond = In(rng.random((N, *_bcast_shapes(shape, data))) > 0.5)
        _check_case((builtin, [cond, a, b], None))
    else:
        _check_case((builtin, [b, a] if data.draw(st.booleans()) else [a, b], None, (np.bool_,) if builtin == "LESS" else (np.float32,)))


@PROPS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_axis_ops_random(shape: list[int], data: st.DataObject) -> None:
    r = len(shape)
    x = In(rng.standard_normal((N, *shape)).astype(F32))
    kind = data.draw(st.sampled_from(["reduce", "transpose", "gather", "pad", "mirror_pad", "concat", "split_v", "cumsum", "softmax", "tile", "slice"]))
    axis = data.draw(st.integers(-r, r - 1))
    if kind == "reduce":
        builtin = data.draw(st.sampled_from(["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"]))
        axes = data.draw(st.lists(st.integers(-r, r - 1), min_size=1, max_size=r, unique=True))
        case: tuple = (builtin, [x, i32(*axes)], {"keep_dims": data.draw(st.booleans())})
    elif kind == "transpose":
        case = ("TRANSPOSE", [x, i32(*data.draw(st.permutations(range(r))))], None)
    elif kind == "gather":
        bd = data.draw(st.integers(0, (axis % r)))
        ishape = shape[:bd] + data.draw(st.lists(st.integers(1, 3), max_size=2))
        idx = In(rng.integers(0, shape[axis], (N, *ishape)).astype(np.int32)) if bd or data.draw(st.booleans()) else rng.integers(0, shape[axis], ishape).astype(np.int32)
        case = ("GATHER", [x, idx], {"axis": axis, "batch_dims": bd})
    elif kind in ("pad", "mirror_pad"):
        hi = (lambda d: d - 1) if kind == "mirror_pad" else (lambda d: 3)
        pads = [data.draw(st.integers(0, max(hi(d), 0))) for d in shape for _ in range(2)]
        if kind == "pad":
            case = ("PAD", [x, i32(*pads).reshape(r, 2)], None)
        else:
            case = ("MIRROR_PAD", [x, i32(*pads).reshape(r, 2)], {"mode": data.draw(st.sampled_from(["REFLECT", "SYMMETRIC"]))})
    elif kind == "concat":
        other = list(shape)
        other[axis] = data.draw(st.integers(1, 3))
        case = ("CONCATENATION", [x, w_(*other), In(rng.standard_normal((N, *other)).astype(F32))], {"axis": axis})
    elif kind == "split_v":
        d = shape[axis]
        cut = sorted(data.draw(st.lists(st.integers(0, d), min_size=1, max_size=2)))
        sizes = [b - a for a, b in zip([0, *cut], [*cut, d])]
        sizes[data.draw(st.integers(0, len(sizes) - 1))] = -1
        case = ("SPLIT_V", [x, i32(*sizes), i32(axis)], {"num_splits": len(sizes)}, (np.float32,) * len(sizes))
    elif kind == "cumsum":
        case = ("CUMSUM", [x, i32(axis)], {"exclusive": data.draw(st.booleans()), "reverse": data.draw(st.booleans())})
    elif kind == "softmax":
        case = (data.draw(st.sampled_from(["SOFTMAX", "LOG_SOFTMAX"])), [x], {"beta": 0.7} if data.draw(st.booleans()) else None)
        if case[0] == "LOG_SOFTMAX":
            case = ("LOG_SOFTMAX", [x], None)
    elif kind == "tile":
        case = ("TILE", [x, i32(*data.draw(st.lists(st.integers(1, 3), min_size=r, max_size=r)))], None)
    else:
        begin = [data.draw(st.integers(0, d - 1)) for d in shape]
        size = [data.draw(st.sampled_from([-1, d - b])) for d, b in zip(shape, begin)]
        case = ("SLICE", [x, i32(*begin), i32(*size)], None)
    _check_case(case)


@PROPS
@given(h=st.integers(1, 4), w=st.integers(1, 4), b0=st.integers(1, 3), b1=st.integers(1, 3), data=st.data())
def test_space_batch_random(h: int, w: int, b0: int, b1: int, data: st.DataObject) -> None:
    pads = [data.draw(st.integers(0, 2)) for _ in range(4)]
    ph, pw = h + pads[0] + pads[1], w + pads[2] + pads[3]
    ph, pw = ph + (-ph) % b0, pw + (-pw) % b1
    pads[1] += ph - (h + pads[0] + pads[1])
    pads[3] += pw - (w + pads[2] + pads[3])
    x = In(rng.standard_normal((N, 2, h, w, 3)).astype(F32))
    _check_case(("SPACE_TO_BATCH_ND", [x, i32(b0, b1), i32(*pads).reshape(2, 2)], None))
    crops = [data.draw(st.integers(0, 1)) for _ in range(4)]
    y = In(rng.standard_normal((N, 2 * b0 * b1, h + crops[0] + crops[1], w + crops[2] + crops[3], 3)).astype(F32))
    _check_case(("BATCH_TO_SPACE_ND", [y, i32(b0, b1), i32(*crops).reshape(2, 2)], None))


def test_constant_subgraphs_are_computed_once_and_observed_every_run() -> None:
    text = """
    builtin.module {
      func.func @main(%x: tensor<2x3xf32> {tfl.name = "x"}) -> tensor<2x3xf32> {
        %h = "tfl.const"() <{value = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf16>}> {names = ["w16"]} : () -> tensor<2x3xf16>
        %w = "tfl.dequantize"(%h) {names = ["w"]} : (tensor<2x3xf16>) -> tensor<2x3xf32>
        %y = "tfl.add"(%x, %w) {names = ["y"]} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
        func.return %y : tensor<2x3xf32>
      }
    }
    """
    from tflquant.ir import value_name

    it = Interpreter(parse_module(text))
    w = np.arange(1, 7, dtype=F32).reshape(2, 3)
    for n in (1, 4):
        seen: dict = {}
        x = rng.standard_normal((n, 2, 3)).astype(F32)
        (y,) = it.run([x], observer=lambda v, a: seen.__setitem__(value_name(v), a.shape))
        np.testing.assert_array_equal(y, x + w)
        assert seen == {"x": (n, 2, 3), "w": (n, 2, 3), "y": (n, 2, 3)}


_F = "tensor<2x4xf32>"
_I = "tensor<2x4xi32>"
_B = "tensor<2x4xi1>"
OPAQUE_CASES = {
    "FLOOR_DIV_f32": ("FLOOR_DIV", [_F, _F], _F),
    "FLOOR_DIV_i32": ("FLOOR_DIV", [_I, _I], _I),
    "FLOOR_MOD_f32": ("FLOOR_MOD", [_F, _F], _F),
    "FLOOR_MOD_i32": ("FLOOR_MOD", [_I, _I], _I),
    "POW": ("POW", [_F, _F], _F),
    **{u: (u, [_F], _F) for u in ("FLOOR", "CEIL", "ROUND", "SIN", "COS", "SIGN", "ZEROS_LIKE")},
    "LOGICAL_AND": ("LOGICAL_AND", [_B, _B], _B),
    "LOGICAL_OR": ("LOGICAL_OR", [_B, _B], _B),
    "LOGICAL_NOT": ("LOGICAL_NOT", [_B], _B),
}


@pytest.mark.parametrize("name", sorted(OPAQUE_CASES))
def test_unmodelled_builtins_with_kernels_match_litert(name: str) -> None:
    """Builtins the dialect keeps opaque but the interpreter can still run."""
    from tflquant.tflite import schema

    builtin, types, out = OPAQUE_CASES[name]
    args = ", ".join(f'%a{i}: {t} {{tfl.name = "a{i}"}}' for i, t in enumerate(types))
    ops = ", ".join(f"%a{i}" for i in range(len(types)))
    text = f"""builtin.module {{ func.func @main({args}) -> {out} {{
      %y = "tfl.opaque"({ops}) <{{code = {schema.BUILTIN_CODES[builtin]} : i32, version = 1 : i32}}> {{names = ["y"]}} : ({", ".join(types)}) -> {out}
      func.return %y : {out} }} }}"""
    inputs = []
    for k, t in enumerate(types):
        if t == _B:
            inputs.append(rng.random((N, 2, 4)) > 0.5)
        elif t == _I:
            inputs.append(rng.integers(-9, 9, (N, 2, 4)).astype(np.int32) if k == 0 else rng.integers(1, 5, (N, 2, 4)).astype(np.int32))
        else:
            x = rng.standard_normal((N, 2, 4)).astype(F32) * 3
            x[0, 0, :2] = [0.5, 2.5]  # ties for ROUND
            inputs.append(np.abs(x) + F32(0.5) if k == 1 or builtin == "POW" else x)
    compare_with_litert(parse_module(text), inputs)


def test_parallel_ranges_observe_in_order_and_report_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tflquant.ir import value_name
    from tflquant.reference import float_kernels as fk
    from tflquant.reference import interpreter as interp_mod

    m = _small()
    x = rng.standard_normal((64, 1, 4)).astype(F32)
    monkeypatch.setattr(interp_mod, "PARALLEL_MIN_ELEMS", 0)
    old = fk.set_threads(2)
    try:
        order: dict[str, list[float]] = {}

        def observer(v, a):  # the first sample of each range, per value, in call order
            order.setdefault(value_name(v), []).append(float(a.reshape(a.shape[0], -1)[0, 0]))

        Interpreter(m).run([x], observer=observer)
        (ref_y,) = Interpreter(m).run([x])
        ranges = 64 // interp_mod.PARALLEL_RANGE_SAMPLES
        assert len(order["r"]) == ranges
        step = interp_mod.PARALLEL_RANGE_SAMPLES
        assert order["r"] == [float(ref_y[k * step].reshape(-1)[0]) for k in range(ranges)]

        calls = []

        def failing(v, a):  # calls for a value come range by range: the last is the last range
            if value_name(v) == "y":
                calls.append(1)
                if len(calls) == ranges:
                    raise ValueError("observer refused the last range")

        with pytest.raises(ValueError, match="last range"):
            Interpreter(m).run([x], observer=failing)
    finally:
        fk.set_threads(old)


def test_plain_op_classes_are_none_of_the_special_ones() -> None:
    """Planning (and calibrate's resource-variable scan) skips its isinstance checks for the
    classes in PLAIN_OP_CLASSES: none of them may be a class those checks look for."""
    from tflquant.reference.interpreter import PLAIN_OP_CLASSES

    special = (tfl.OpaqueOp, tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp, func.ReturnOp)
    assert isinstance(PLAIN_OP_CLASSES, frozenset) and tfl.BUILTIN_CLASSES["SOFTMAX"] in PLAIN_OP_CLASSES
    assert not [c.__name__ for c in PLAIN_OP_CLASSES if issubclass(c, special)]


def test_plan_is_reused_until_the_function_changes() -> None:
    """A function's plan is kept for the next interpreter of the same function (calibrate()
    builds one per call); any change planning reads makes a new plan: an option, a constant's
    payload, an operand, an op inserted, the order of the ops; stateful and plain plans are
    apart."""
    from tflquant.ir import dense_from_numpy

    m = _small()
    f = next(op for op in m.ops if isinstance(op, func.FuncOp))
    ops = list(f.body.block.ops)
    wop, fc = ops[0], ops[3]
    x = rng.standard_normal((6, 1, 4)).astype(F32)
    wts = np.array([[1.0, 0.0, -1.0, 0.5], [0.25, 0.25, 0.25, 0.25]], F32)

    def run() -> np.ndarray:
        return Interpreter(m).run([x])[0]

    np.testing.assert_allclose(run(), np.maximum(x @ wts.T, 0), rtol=1e-5, atol=1e-6)
    assert Interpreter(m)._plan(f) is Interpreter(m)._plan(f)
    assert Interpreter(m, stateful=True)._plan(f) is not Interpreter(m)._plan(f)
    fc.set_option("fused_activation_function", "NONE")
    np.testing.assert_allclose(run(), x @ wts.T, rtol=1e-5, atol=1e-6)
    wts = wts * 3
    wop.properties["value"] = dense_from_numpy(wts)
    np.testing.assert_allclose(run(), x @ wts.T, rtol=1e-5, atol=1e-6)
    w2 = tfl.ConstOp(dense_from_numpy(-wts))
    f.body.block.insert_op_before(w2, fc)
    fc.operands = [fc.operands[0], w2.result, fc.operands[2]]
    np.testing.assert_allclose(run(), -x @ wts.T, rtol=1e-5, atol=1e-6)
    before = Interpreter(m)._plan(f)
    assert Interpreter(m)._plan(f) is before  # unchanged since: kept again
    nv = ops[1]
    nv.detach()
    f.body.block.insert_op_before(nv, fc)  # the ops in another (valid) order: a new plan
    assert Interpreter(m)._plan(f) is not before
    np.testing.assert_allclose(run(), -x @ wts.T, rtol=1e-5, atol=1e-6)


def test_row_max_equals_numpy_max() -> None:
    """SOFTMAX's row maximum (columns folded for many short rows) is x.max(axis=-1)."""
    from tflquant.reference.float_kernels import row_max

    r = np.random.default_rng(11)
    for shape in [(64, 1, 2, 16, 16), (40, 16), (3, 4), (600, 2), (700, 17), (2, 1)]:
        x = (r.standard_normal(shape) * 10).astype(F32)
        x.reshape(-1)[:: 97] = -0.0
        x.reshape(-1)[1:: 89] = np.inf
        x.reshape(-1)[2:: 83] = -np.inf
        x.reshape(-1)[3:: 211] = np.nan
        got, want = row_max(x), x.max(axis=-1, keepdims=True)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)  # (NaN where numpy's has NaN)


def test_kept_plan_counts_what_it_computes_once_from_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan is kept only while its constants plus the results it computes once from them (a
    float16 weight's float32 DEQUANTIZE, twice the weight's bytes) fit PLAN_CACHE_CONST_BYTES;
    a stale plan dropped by two threads at once is no error."""
    import threading

    from tflquant.reference import interpreter as interp_mod

    text = """
func.func @main(%x: tensor<1x64xf32>) -> tensor<1x32xf32> {
  %w = "tfl.const"() <{value = dense<0.5> : tensor<32x64xf16>}> : () -> tensor<32x64xf16>
  %d = "tfl.dequantize"(%w) : (tensor<32x64xf16>) -> tensor<32x64xf32>
  %n = "tfl.no_value"() <{value}> : () -> none
  %y = "tfl.fully_connected"(%x, %d, %n) : (tensor<1x64xf32>, tensor<32x64xf32>, none) -> tensor<1x32xf32>
  func.return %y : tensor<1x32xf32>
}"""
    m = parse_module(text)
    f = next(op for op in m.ops if isinstance(op, func.FuncOp))
    x = np.ones((2, 1, 64), F32)
    weight = 32 * 64 * 2  # the fp16 payload; its DEQUANTIZE result is twice that
    monkeypatch.setattr(interp_mod, "PLAN_CACHE_CONST_BYTES", weight * 2)
    np.testing.assert_allclose(Interpreter(m).run([x])[0], np.full((2, 1, 32), 32.0, F32))
    assert interp_mod._PLANS not in f.__dict__  # 3x the weight: not kept
    monkeypatch.setattr(interp_mod, "PLAN_CACHE_CONST_BYTES", weight * 3)
    assert Interpreter(m)._plan(f) is Interpreter(m)._plan(f)
    f.body.block.first_op.properties["value"] = f.body.block.first_op.properties["value"]  # same attribute: still kept
    assert Interpreter(m)._plan(f) is Interpreter(m)._plan(f)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(20):
                Interpreter(m).run([x])
                fc = list(f.body.block.ops)[3]
                fc.set_option("fused_activation_function", "NONE" if fc.option("fused_activation_function") == "RELU" else "RELU")
        except BaseException as e:  # noqa: BLE001 (collected, asserted below)
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
