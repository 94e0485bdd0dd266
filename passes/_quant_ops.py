"""Facts about how each TFLite builtin quantizes, shared by the static-quantization passes.

One table, read by insert-fake-quant, propagate-scales, rewrite-integer,
legalize-float-fallback and quantize-bias. Sources: LiteRT `register.cc` and the kernels
(which types each kernel accepts), `operator_property.cc` (OPPROP) and the quantization
spec; see ../shared/research/tflite_quant.md §1-4.

Per op:
- `int8` / `int16`: LiteRT has an integer kernel for int8 (resp. int16, 16x8) activations.
- `weights`: input index -> per-channel axis (None = per tensor) of a constant weight,
  quantized int8 symmetric [-127, 127].
- `bias`: input index of the bias (int32/int64, quantized by quantize-bias).
- `same`: input indices whose (scale, zero point) must equal the outputs' (every output).
  With one index the output copies the input's parameters; with several (concatenation,
  pack, maximum, ...) the inputs are requantized to the output's.
- `fixed8` / `fixed16`: fixed (scale, zero point) of the output.
Any other float constant input of a quantized op is quantized like an activation
(int8 asymmetric, int16 symmetric), as OPPROP's `quantize_input_as_activations`.

The int8/int16 flags were checked op by op in LiteRT (a one-op model quantized by this
chain must prepare, run and match the float model): no integer kernel for SQUARE, CUMSUM,
NEG (insert-fake-quant rewrites NEG as MUL by -1), SIGN, ZEROS_LIKE, FLOOR, CEIL, ROUND,
SIN, COS, POW, ADD_N, SEGMENT_SUM, UNSORTED_SEGMENT_*, REVERSE_SEQUENCE,
LOCAL_RESPONSE_NORMALIZATION (FLOOR_DIV / FLOOR_MOD accept int8 but compute on the stored
integers); REDUCE_PROD runs int8 in LiteRT 2.3 but stays float here (rare on float
activations, no bit-exact integer kernel yet); int16 is refused by SQUARED_DIFFERENCE,
HARD_SWISH, RELU_N1_TO_1, RELU_0_TO_1, ELU, ONE_HOT, LOG_SOFTMAX, L2_NORMALIZATION,
SPACE_TO_DEPTH, ARG_MAX/ARG_MIN, and PRELU runs on int16 but computes wrong results, as do
the comparisons (EQUAL, LESS, ...: int16 operands are compared as raw integers, whatever
their scales, where int8 ones are rescaled first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType, TensorType
from xdsl.ir import Attribute, Operation, SSAValue

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.ir import kept_float


@dataclass(frozen=True)
class OpQuant:
    int8: bool = True
    int16: bool = True
    weights: dict[int, int | None] = field(default_factory=dict)
    bias: int | None = None
    same: tuple[int, ...] = ()
    fixed8: tuple[float, int] | None = None
    fixed16: tuple[float, int] | None = None


_FREE = OpQuant()
_FREE8 = OpQuant(int16=False)


def _same(*idx: int, int16: bool = True) -> OpQuant:
    return OpQuant(int16=int16, same=idx)


ALL = -1  # `same` marker: every input

OPS: dict[str, OpQuant] = {
    # arithmetic with free output scale
    "ADD": _FREE,
    "SUB": _FREE,
    "MUL": _FREE,
    "SQUARED_DIFFERENCE": _FREE8,  # no int16 kernel (LiteRT issue #4383)
    "MEAN": _FREE,
    "SUM": _FREE,
    "RELU": _FREE,
    "RELU6": _FREE,
    "RELU_N1_TO_1": _FREE8,
    "RELU_0_TO_1": _FREE8,  # no int16 kernel
    "LEAKY_RELU": _FREE,
    "PRELU": _FREE8,
    "HARD_SWISH": _FREE8,
    "GELU": _FREE,
    "EXP": _FREE,
    "SQRT": _FREE,
    "DIV": _FREE,
    "LOG": _FREE,
    "RSQRT": _FREE,
    "ABS": _FREE,
    "ELU": _FREE8,  # int8: 256-entry table; no int16 kernel
    # weighted ops
    "CONV_2D": OpQuant(weights={1: 0}, bias=2),
    "DEPTHWISE_CONV_2D": OpQuant(weights={1: 3}, bias=2),
    "FULLY_CONNECTED": OpQuant(weights={1: 0}, bias=2),
    "TRANSPOSE_CONV": OpQuant(weights={1: 0}, bias=3),
    "BATCH_MATMUL": OpQuant(weights={1: None}),
    # fixed output ranges
    "SOFTMAX": OpQuant(fixed8=(1 / 256, -128), fixed16=(1 / 32768, 0)),
    "LOGISTIC": OpQuant(fixed8=(1 / 256, -128), fixed16=(1 / 32768, 0)),
    "TANH": OpQuant(fixed8=(1 / 128, 0), fixed16=(1 / 32768, 0)),
    "LOG_SOFTMAX": OpQuant(int16=False, fixed8=(16 / 256, 127)),
    "L2_NORMALIZATION": OpQuant(int16=False, fixed8=(1 / 128, 0)),
    # same scale in and out
    "RESHAPE": _same(0),
    "SQUEEZE": _same(0),
    "EXPAND_DIMS": _same(0),
    "TRANSPOSE": _same(0),
    "AVERAGE_POOL_2D": _same(0),
    "MAX_POOL_2D": _same(0),
    "PAD": _same(0),
    "PADV2": _same(0, 2),
    "MIRROR_PAD": _same(0),
    "SLICE": _same(0),
    "STRIDED_SLICE": _same(0),
    "GATHER": _same(0),
    "GATHER_ND": _same(0),
    "EMBEDDING_LOOKUP": _same(1),
    "BATCH_TO_SPACE_ND": _same(0),
    "SPACE_TO_BATCH_ND": _same(0),
    "SPACE_TO_DEPTH": _same(0, int16=False),
    "DEPTH_TO_SPACE": _same(0, int16=False),
    "SPLIT": _same(1),
    "SPLIT_V": _same(0),
    "UNPACK": _same(0),
    "REDUCE_MAX": _same(0),
    "REDUCE_MIN": _same(0),
    "RESIZE_BILINEAR": _same(0),
    "RESIZE_NEAREST_NEIGHBOR": _same(0),
    "TILE": _same(0),
    "BROADCAST_TO": _same(0),
    "FILL": _same(1),  # the output has the value's parameters
    "CONCATENATION": _same(ALL),
    "PACK": _same(ALL),
    "MAXIMUM": _same(0, 1),
    "MINIMUM": _same(0, 1),
    "SELECT": _same(1, 2),
    "SELECT_V2": _same(1, 2),
    "REVERSE_V2": _same(0),
    "TOPK_V2": _same(0),  # values: the input's parameters; indices int32
    "DYNAMIC_UPDATE_SLICE": _same(0, 1),
    "ONE_HOT": _same(2, 3, int16=False),  # on/off values stored with the output's parameters
    # integer outputs (no output parameters)
    "SHAPE": _FREE,
    "ARG_MAX": _FREE8,
    "ARG_MIN": _FREE8,
    # comparisons: LiteRT rescales int8 operands to a common scale, but compares int16 ones
    # as raw integers (whatever their scales): int16 stays float
    "EQUAL": _FREE8,
    "NOT_EQUAL": _FREE8,
    "LESS": _FREE8,
    "LESS_EQUAL": _FREE8,
    "GREATER": _FREE8,
    "GREATER_EQUAL": _FREE8,
}


def op_kind(op: Operation) -> str | None:
    """The TFLite builtin name of a modelled tfl op (None for const, opaque, quant ops...)."""
    return op.BUILTIN if isinstance(op, tfl.TflOp) else None


def op_info(op: Operation) -> OpQuant | None:
    kind = op_kind(op)
    return OPS.get(kind) if kind is not None else None


def has_kernel(op: Operation, bits: int) -> bool:
    """LiteRT has an integer kernel for the op at these bits, and keep-float did not mark it."""
    if kept_float(op):
        return False
    info = op_info(op)
    if info is None:
        return False
    return info.int8 if bits == 8 else info.int16 if bits == 16 else False


def same_inputs(op: Operation, info: OpQuant) -> list[int]:
    """Input indices bound to the output scale (expanding ALL)."""
    if info.same == (ALL,):
        return list(range(len(op.operands)))
    return [i for i in info.same if i < len(op.operands)]


def fixed_params(info: OpQuant, bits: int) -> tuple[float, int] | None:
    return info.fixed8 if bits == 8 else info.fixed16


# ---------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------


def is_f32(t: Attribute) -> bool:
    return isinstance(t, TensorType) and isinstance(t.element_type, Float32Type)


def qtype_of(v: SSAValue) -> UniformQuantizedType | None:
    return quant.quantized_element(v.type)


def float_const(v: SSAValue) -> tfl.ConstOp | None:
    """The float32 tfl.const defining v, if any."""
    owner = v.owner
    if isinstance(owner, tfl.ConstOp) and is_f32(owner.result.type):
        return owner
    return None


def fp16_weight(v: SSAValue) -> tuple[np.ndarray, tfl.ConstOp] | None:
    """DEQUANTIZE(fp16 constant): the float32 values and the fp16 constant."""
    owner = v.owner
    if isinstance(owner, tfl.DequantizeOp) and len(owner.inputs) == 1 and is_f32(v.type):
        src = owner.inputs[0].owner
        if isinstance(src, tfl.ConstOp):
            t = src.result.type
            if isinstance(t, TensorType) and isinstance(t.element_type, Float16Type):
                return src.numpy().astype(np.float32), src
    return None


def bits_of(t: UniformQuantizedType) -> int:
    return t.storage_type.width.data


def is_int_storage(t: Attribute) -> bool:
    return isinstance(t, TensorType) and isinstance(t.element_type, IntegerType)
