"""How a TFLite builtin quantizes, as the static-quantization passes read it; not a pass.

The facts live on the op's declaration in the tfl dialect (`dialects/tfl.py`, traits
`Quantizable`, `SameScale`, `FixedResultScale`, `AffineOp`); `op_info(op)` gathers them for
insert-fake-quant, propagate-scales, rewrite-integer, legalize-float-fallback and
quantize-bias:
- `int8` / `int16`: LiteRT has an integer kernel for int8 (resp. int16, 16x8) activations.
- `weights`: input index -> per-channel axis (None = per tensor) of a constant weight,
  quantized int8 symmetric [-127, 127] (the AffineOp weight); `int16_weight`: with 16-bit
  activations it is quantized like an activation instead (BATCH_MATMUL).
- `bias`: input index of the bias (int32/int64, quantized by quantize-bias).
- `same`: input indices whose (scale, zero point) must equal the outputs' (every output).
  With one index the output copies the input's parameters; with several (concatenation,
  pack, maximum, ...) the inputs are requantized to the output's.
- `fixed8` / `fixed16`: fixed (scale, zero point) of the output.
Any other float constant input of a quantized op is quantized like an activation
(int8 asymmetric, int16 symmetric), as OPPROP's `quantize_input_as_activations`.
Sources: LiteRT `register.cc` and the kernels (which types each kernel accepts),
`operator_property.cc` (OPPROP) and the quantization spec; ../shared/research/tflite_quant.md §1-4.

The int8/int16 flags were checked op by op in LiteRT (a one-op model quantized by this
chain must prepare, run and match the float model): no integer kernel for SQUARE, CUMSUM,
NEG (insert-fake-quant rewrites NEG as MUL by -1), SIGN, ZEROS_LIKE, FLOOR, CEIL, ROUND,
SIN, COS, POW, ADD_N, SEGMENT_SUM, UNSORTED_SEGMENT_*, REVERSE_SEQUENCE,
LOCAL_RESPONSE_NORMALIZATION (FLOOR_DIV / FLOOR_MOD accept int8 but compute on the stored
integers); int16 is refused by SQUARED_DIFFERENCE,
HARD_SWISH, RELU_N1_TO_1, RELU_0_TO_1, ELU, ONE_HOT, LOG_SOFTMAX, L2_NORMALIZATION,
SPACE_TO_DEPTH, ARG_MAX/ARG_MIN, and PRELU runs on int16 but computes wrong results, as do
the comparisons (EQUAL, LESS, ...: int16 operands are compared as raw integers, whatever
their scales, where int8 ones are rescaled first).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType, TensorType
from xdsl.ir import Attribute, Operation, SSAValue

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.ir import kept_float

# Activation storage types a static mode can ask for, and their bits.
ACTIVATION_TYPES = {"int8": 8, "int16": 16}

# Discardable op attribute set by `op-precision`: "int8" or "int16", the activation type the
# op computes in when it differs from the pipeline's (insert-fake-quant's `activations`).
PRECISION = "tflquant.precision"


@dataclass(frozen=True)
class OpQuant:
    int8: bool = True
    int16: bool = True
    weights: dict[int, int | None] = field(default_factory=dict)
    bias: int | None = None
    same: tuple[int, ...] = ()
    fixed8: tuple[float, int] | None = None
    fixed16: tuple[float, int] | None = None
    int16_weight: bool = False


ALL = tfl.ALL  # `same` marker: every input


@functools.cache
def declared_quant(cls: type[tfl.TflOp]) -> OpQuant | None:
    """The quantization facts a builtin's declaration states (None: it stays float)."""
    q = cls.get_trait(tfl.Quantizable)
    if q is None:
        return None
    same = cls.get_trait(tfl.SameScale)
    fixed = cls.get_trait(tfl.FixedResultScale)
    affine = cls.get_trait(tfl.AffineOp)
    return OpQuant(
        int8=q.int8,
        int16=q.int16,
        weights={affine.weight: affine.channel_axis} if affine is not None else {},
        bias=affine.bias if affine is not None else None,
        same=same.operands if same is not None else (),
        fixed8=fixed.int8 if fixed is not None else None,
        fixed16=fixed.int16 if fixed is not None else None,
        int16_weight=affine is not None and affine.int16_weight,
    )


def op_kind(op: Operation) -> str | None:
    """The TFLite builtin name of a modelled tfl op (None for const, opaque, quant ops...)."""
    return op.BUILTIN if isinstance(op, tfl.TflOp) else None


def op_info(op: Operation) -> OpQuant | None:
    return declared_quant(type(op)) if isinstance(op, tfl.TflOp) else None


def has_kernel(op: Operation, bits: int) -> bool:
    """LiteRT has an integer kernel for the op at these bits, and keep-float did not mark it."""
    if kept_float(op):
        return False
    info = op_info(op)
    if info is None:
        return False
    return info.int8 if bits == 8 else info.int16 if bits == 16 else False


def op_precision(op: Operation, default: int) -> int:
    """Activation bits op computes in: its `op-precision` attribute, else the default."""
    a = op.attributes.get(PRECISION)
    return ACTIVATION_TYPES[a.data] if a is not None else default  # type: ignore[attr-defined]


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
