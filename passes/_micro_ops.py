"""What TFLite Micro has kernels for: op types, tensor types, ranks and Prepare checks, as data.

Read by `check-micro` (which refuses a model listing every op TFLM cannot run) and by
`legalize-for-micro` (which rewrites some of those ops first). One entry per op type TFLM
registers (`Register_<OP>` in tflite-micro's kernels/; the Python interpreter
`tflite_micro.python.tflite_micro.runtime` registers all of them); an op type without an
entry has no TFLM kernel at all (GELU, TILE, SELECT, REDUCE_PROD, RELU_0_TO_1,
RELU_N1_TO_1, TOPK_V2, ONE_HOT, ...).

`types` lists the element kinds of the deciding tensor (`on`: input index, default 0)
the kernel accepts; kinds are "f32", "f16", "i8", "u8", "i16", "i32", "i64", "bool"
(quantized tensors by their storage type). `max_rank` is the largest input rank Prepare
accepts. `check` returns why an op fails the kernel's other checks (None when it passes).

Sources: tflite-micro tensorflow/lite/micro/kernels/ (elementwise.cc: SQRT, LOG, SQUARE,
SIN, COS are float only, RSQRT float/int8, ABS float/int8/int16; exp.cc float only;
transpose_common.cc: "only supports 1D-5D", transpose.cc float32/int8/int16;
select.cc: SELECT_V2 only, int8/int16/float32, broadcasting through
BroadcastSelect5DSlow; conv_common.cc ConvPrepare: input type == output type, input/filter
float32/float32, int16/int8 or int8/int8 ("Hybrid models are not supported"), filter
scales 1 or one per output channel (dim 0); conv.cc: int16 bias int32 or int64;
strided_slice_common.cc "input dim should not exceed 4", pad_common.cc and slice.cc up to
5 dims, broadcast_to.cc "only supports 1-5D"; gather.cc float32/int8 data and int32
positions; dequantize_common.cc: int8, int16, uint8 only), each verified on the installed TFLM Python interpreter with one-op models
(tests/test_micro_target.py keeps a sample of those probes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute, Operation, SSAValue

from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.ir import element_kind


def kind(t: Attribute) -> str:
    """The element kind of a tensor type ("i8" for int8 storage, quantized or not)."""
    e = t.element_type if isinstance(t, TensorType) else t
    if isinstance(e, UniformQuantizedType):
        e = e.storage_type
    return element_kind(e)


def rank(v: SSAValue) -> int | None:
    t = v.type
    return len(t.get_shape()) if isinstance(t, TensorType) else None


def _shape(v: SSAValue) -> list[int]:
    t = v.type
    return [int(d) for d in t.get_shape()] if isinstance(t, TensorType) else []


@dataclass(frozen=True)
class Kernel:
    types: tuple[str, ...] | None  # None: any type (data movement) or not characterised
    on: int = 0
    max_rank: int | None = None
    check: Callable[[Operation], str | None] | None = None


def _names(kinds: tuple[str, ...]) -> str:
    full = {"f32": "float32", "f16": "float16", "i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32", "i64": "int64", "bool": "bool"}
    return ", ".join(full.get(k, k) for k in kinds)


def _weighted(op: Operation) -> str | None:
    """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV Prepare checks; the
    input, weight, channel axis and bias come from the op's tfl.AffineOp declaration."""
    affine = type(op).get_trait(tfl.AffineOp)
    assert affine is not None
    filter_axis, bias_index = affine.channel_axis or 0, affine.bias
    x = op.operands[affine.input]
    w = op.operands[affine.weight]
    xk, wk, yk = kind(x.type), kind(w.type), kind(op.results[0].type)
    if xk != yk:
        return f"input {_names((xk,))} and output {_names((yk,))} differ (TFLite Micro needs them equal)"
    if (xk, wk) not in (("f32", "f32"), ("i8", "i8"), ("i16", "i8")):
        hybrid = " (a hybrid op: TFLite Micro has no hybrid kernels)" if xk == "f32" else ""
        return f"input {_names((xk,))} with weights {_names((wk,))}: TFLite Micro takes float32/float32, int8/int8 or int16/int8{hybrid}"
    q = w.type.element_type if isinstance(w.type, TensorType) else None
    if isinstance(q, UniformQuantizedType) and q.per_axis:
        n = _shape(w)[filter_axis] if len(_shape(w)) > filter_axis else -1
        if q.axis.data != filter_axis % max(len(_shape(w)), 1) or q.num_scales != n:
            return f"weights quantized per channel on axis {q.axis.data} ({q.num_scales} scales); TFLite Micro needs one scale per output channel (axis {filter_axis})"
    if bias_index is not None and len(op.operands) > bias_index:
        b = op.operands[bias_index]
        if isinstance(b.type, TensorType):
            bk = kind(b.type)
            ok = {"f32": ("f32",), "i8": ("i32",), "i16": ("i32", "i64")}[xk]
            if bk not in ok:
                return f"bias {_names((bk,))} with {_names((xk,))} input: TFLite Micro takes {_names(ok)}"
    return None


def _select(op: Operation) -> str | None:
    if kind(op.operands[0].type) != "bool":
        return f"condition is {_names((kind(op.operands[0].type),))}: TFLite Micro's SELECT_V2 takes bool"
    shapes = [_shape(v) for v in op.operands[:3]]
    if any(s != shapes[1] for s in shapes) and max(len(s) for s in shapes) > 5:
        return f"broadcasting over {max(len(s) for s in shapes)} dims: TFLite Micro's SELECT_V2 broadcasts up to 5 (BroadcastSelect5DSlow)"
    return None


def _gather(op: Operation) -> str | None:
    k = kind(op.operands[1].type)
    return None if k == "i32" else f"indices are {_names((k,))}: TFLite Micro's GATHER takes int32 indices"


def _fill(op: Operation) -> str | None:
    return None if isinstance(op.operands[0].owner, tfl.ConstOp) else "its dims are computed at run time: TFLite Micro's FILL takes constant dims only"


# (input kind, output kind) pairs measured on TFLM
_CAST_IN = ("f32", "i8", "i16", "i32", "bool")
_CAST_OUT = ("f32", "i8", "i16", "i32", "bool")
_QUANTIZE = {"f32": ("i8", "i16"), "i8": ("i8", "i16", "u8"), "i16": ("i8", "i16"), "u8": ("i8",)}


def _cast(op: Operation) -> str | None:
    k = kind(op.results[0].type)
    return None if k in _CAST_OUT else f"output is {_names((k,))}: TFLite Micro's CAST writes {_names(_CAST_OUT)}"


def _quantize(op: Operation) -> str | None:
    a, b = kind(op.operands[0].type), kind(op.results[0].type)
    ok = _QUANTIZE.get(a, ())
    pairs = ", ".join(f"{_names((i,))} -> {'/'.join(_names((x,)) for x in o)}" for i, o in _QUANTIZE.items())
    return None if b in ok else f"{_names((a,))} -> {_names((b,))}: TFLite Micro's QUANTIZE converts {pairs}"


F32 = ("f32",)
Q = ("f32", "i8", "i16")  # float and the two quantized activation types
Q8 = ("f32", "i8")
ARITH = ("f32", "i8", "i16", "i32")
ANY = None

KERNELS: dict[str, Kernel] = {
    # elementwise
    "ABS": Kernel(Q),
    "ADD": Kernel(ARITH, max_rank=6),
    "SUB": Kernel(ARITH, max_rank=6),
    "MUL": Kernel(ARITH, max_rank=6),
    "DIV": Kernel(("f32", "i8", "i32")),
    "SQUARED_DIFFERENCE": Kernel(ARITH),
    "MAXIMUM": Kernel(ARITH + ("i64",)),
    "MINIMUM": Kernel(ARITH + ("i64",)),
    "EQUAL": Kernel(("f32", "i8", "i32", "i64", "bool")),
    "NOT_EQUAL": Kernel(("f32", "i8", "i32", "i64", "bool")),
    "LESS": Kernel(("f32", "i8", "i32", "i64")),
    "LESS_EQUAL": Kernel(("f32", "i8", "i32", "i64")),
    "GREATER": Kernel(("f32", "i8", "i16", "i32", "i64")),
    "GREATER_EQUAL": Kernel(("f32", "i8", "i32", "i64")),
    "LOGICAL_AND": Kernel(("bool",)),
    "LOGICAL_OR": Kernel(("bool",)),
    "LOGICAL_NOT": Kernel(("bool",)),
    "RELU": Kernel(Q),
    "RELU6": Kernel(Q),
    "LEAKY_RELU": Kernel(Q),
    "PRELU": Kernel(Q8),
    "HARD_SWISH": Kernel(Q8),
    "LOGISTIC": Kernel(Q),
    "TANH": Kernel(Q),
    "ELU": Kernel(Q8),
    "EXP": Kernel(F32),
    "LOG": Kernel(F32),
    "SQRT": Kernel(F32),
    "RSQRT": Kernel(Q),
    "SQUARE": Kernel(F32),
    "SIN": Kernel(F32),
    "COS": Kernel(F32),
    "NEG": Kernel(F32),
    "FLOOR": Kernel(F32),
    "CEIL": Kernel(F32),
    "ROUND": Kernel(F32),
    "FLOOR_DIV": Kernel(("f32", "i32")),
    "FLOOR_MOD": Kernel(("f32", "i32")),
    "SOFTMAX": Kernel(Q),
    "LOG_SOFTMAX": Kernel(Q8),
    "L2_NORMALIZATION": Kernel(Q8),
    "CAST": Kernel(_CAST_IN, check=_cast),
    "QUANTIZE": Kernel(tuple(_QUANTIZE), check=_quantize),
    "DEQUANTIZE": Kernel(("i8", "i16", "u8")),
    # weighted
    "CONV_2D": Kernel(Q, check=_weighted),
    "DEPTHWISE_CONV_2D": Kernel(Q, check=_weighted),
    "FULLY_CONNECTED": Kernel(Q, check=_weighted),
    "TRANSPOSE_CONV": Kernel(Q, on=2, check=_weighted),
    "BATCH_MATMUL": Kernel(Q),
    "SVDF": Kernel(("f32", "i8")),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Kernel(("f32", "i8", "i16")),
    # pooling, resizing, reductions
    "AVERAGE_POOL_2D": Kernel(Q),
    "MAX_POOL_2D": Kernel(Q),
    "L2_POOL_2D": Kernel(F32),
    "RESIZE_BILINEAR": Kernel(Q8),
    "RESIZE_NEAREST_NEIGHBOR": Kernel(Q),
    "MEAN": Kernel(Q),
    "SUM": Kernel(Q),
    "REDUCE_MAX": Kernel(Q8),
    "REDUCE_MIN": Kernel(Q8),
    "ARG_MAX": Kernel(("f32", "i8", "u8")),
    "ARG_MIN": Kernel(("f32", "i8", "u8")),
    "CUMSUM": Kernel(Q8),
    # data movement
    "RESHAPE": Kernel(ANY),
    "SQUEEZE": Kernel(ANY),
    "EXPAND_DIMS": Kernel(Q),
    "BROADCAST_TO": Kernel(ANY, max_rank=5),
    "BROADCAST_ARGS": Kernel(ANY),
    "SHAPE": Kernel(ANY),
    "TRANSPOSE": Kernel(Q, max_rank=5),
    "SELECT_V2": Kernel(Q, on=1, check=_select),
    "CONCATENATION": Kernel(("f32", "i8", "i16", "i32", "i64", "bool")),
    "PACK": Kernel(("f32", "i8", "i16", "i32", "i64")),
    "UNPACK": Kernel(ARITH),
    "SPLIT": Kernel(ARITH, on=1),
    "SPLIT_V": Kernel(ARITH),
    "GATHER": Kernel(("f32", "i8"), check=_gather),
    "GATHER_ND": Kernel(Q8),
    "STRIDED_SLICE": Kernel(("f32", "i8", "i16", "i32", "bool"), max_rank=4),
    "SLICE": Kernel(ANY, max_rank=5),
    "PAD": Kernel(ARITH, max_rank=5),
    "PADV2": Kernel(ARITH, max_rank=5),
    "MIRROR_PAD": Kernel(Q8),
    "REVERSE_V2": Kernel(ANY),
    "DYNAMIC_UPDATE_SLICE": Kernel(ARITH),
    "EMBEDDING_LOOKUP": Kernel(Q8, on=1),
    "FILL": Kernel(ANY, on=1, check=_fill),
    "ZEROS_LIKE": Kernel(ANY),
    "BATCH_TO_SPACE_ND": Kernel(Q8),
    "SPACE_TO_BATCH_ND": Kernel(Q8),
    "SPACE_TO_DEPTH": Kernel(Q8),
    "DEPTH_TO_SPACE": Kernel(Q8),
    "DETECTION_POSTPROCESS": Kernel(ANY),
    # control flow and resource variables
    "WHILE": Kernel(ANY),
    "IF": Kernel(ANY),
    "CALL_ONCE": Kernel(ANY),
    "VAR_HANDLE": Kernel(ANY),
    "READ_VARIABLE": Kernel(ANY),
    "ASSIGN_VARIABLE": Kernel(ANY),
}

# ops without an operand whose type could be checked (e.g. VAR_HANDLE) are skipped
_NO_DATA = {"VAR_HANDLE", "WHILE", "IF", "CALL_ONCE"}


def micro_problem(op: Operation) -> str | None:
    """Why TFLite Micro cannot run `op` (None when it can). Custom ops are not judged
    (a TFLM application may register its own kernel for them)."""
    if isinstance(op, tfl.OpaqueOp) and op.custom_code is not None:
        return None
    name = tfl.op_type(op)
    if name in ("tfl.const", "tfl.no_value", "tfl.variable", "tfl.sparse_const", "tfl.pseudo_const", "func.return") or name.startswith("quant."):
        return None
    k = KERNELS.get(name)
    if k is None:
        return "TFLite Micro has no kernel for this op type"
    for r in op.results:
        if isinstance(r.type, TensorType) and any(int(d) < 0 for d in r.type.get_shape()):
            dims = "x".join("?" if int(d) < 0 else str(int(d)) for d in r.type.get_shape())
            return f"output shape {dims} is dynamic: TFLite Micro runs static shapes only"
    if name in _NO_DATA:
        return None
    ops = list(op.operands)
    if k.types is not None and k.on < len(ops):
        t = kind(ops[k.on].type)
        if t not in k.types:
            what = "input" if len(ops) == 1 or k.on == 0 else f"input {k.on}"
            return f"{what} is {_names((t,))}: TFLite Micro's {name} takes {_names(k.types)}"
    if k.max_rank is not None:
        r = max((rank(v) or 0) for v in ops[:1] + list(op.results)) if name not in ("ADD", "SUB", "MUL") else max((rank(v) or 0) for v in ops)
        if r > k.max_rank:
            return f"rank {r}: TFLite Micro's {name} takes at most {k.max_rank} dims"
    if k.check is not None:
        return k.check(op)
    return None
