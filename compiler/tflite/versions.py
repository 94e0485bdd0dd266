"""Operator versions (OperatorCode.version) and the `min_runtime_version` metadata.

`builtin_version(op)` follows the rules of TFLite's op version logic (research/tflite_quant.md
§4.3): float ops are version 1 unless their options or shapes need a newer kernel; int8
variants are mostly 2; 16x8 (int16 activations) variants higher. The writer gives every
OperatorCode the highest version any of its operators needs, as the TFLite exporter does.

`min_runtime_version(ops)` is the oldest TFLite release that runs every (op, version) pair:
the 16-byte zero-padded ASCII string the exporter stores as metadata.
"""

from __future__ import annotations

import functools

from collections.abc import Callable, Iterable
from typing import Any

from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType, TensorType
from xdsl.ir import SSAValue

from tflquant.dialects import tfl
from tflquant.dialects._unchecked import class_test
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType
from tflquant.ir import element_kind


_PLAIN = (Float32Type, IntegerType, Float16Type)


def _kind(v: SSAValue | None) -> str:
    """A short name of a value's element type: f32 f16 q8 qu8 q16 q32 q64 i8 u8 i16 i32 i64 bool none."""
    if v is None:
        return "none"
    t = v.type
    if type(t) is not TensorType and not isinstance(t, TensorType):
        return "none"
    e = t.element_type
    if type(e) in _PLAIN:  # the common float / integer elements: no quantized-type checks
        return element_kind(e)
    if isinstance(e, BlockwiseQuantizedType):
        return f"q{e.bits}"
    if isinstance(e, UniformQuantizedType):
        if not e.is_signed:
            return "qu8" if e.bits == 8 else f"qu{e.bits}"
        return f"q{e.bits}"
    return element_kind(e)


def _rank(v: SSAValue | None) -> int:
    if v is None or not isinstance(v.type, TensorType):
        return 0
    return len(v.type.get_shape())


def _per_axis(v: SSAValue | None) -> bool:
    if v is None or not isinstance(v.type, TensorType):
        return False
    e = v.type.element_type
    return isinstance(e, UniformQuantizedType) and e.per_axis


def _in(op: tfl.TflOp, i: int) -> SSAValue | None:
    ins = op._operands  # (op.inputs: all its operands)
    if i >= len(ins):
        return None
    v = _item(ins, i)
    return None if _no_value(v.owner) else v


_no_value = class_test(tfl.NoValueOp)
_item = tuple.__getitem__  # (an SSAValues' own __getitem__ is Python code testing for a slice)


def _int8(k: str) -> bool:
    return k in ("q8", "i8")


def _int16(k: str) -> bool:
    return k in ("q16",)


def _broadcast_rank_gt4(op: tfl.TflOp) -> bool:
    a, b = _in(op, 0), _in(op, 1)
    if a is None or b is None or not isinstance(a.type, TensorType) or not isinstance(b.type, TensorType):
        return False
    return tuple(a.type.get_shape()) != tuple(b.type.get_shape()) and max(_rank(a), _rank(b)) > 4


# builtin -> its version rule (ops whose declaration has no tfl.VersionByType)
RULES: dict[str, Callable[..., int]] = {}


def _rule(*names: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    def register(f: Callable[..., int]) -> Callable[..., int]:
        for n in names:
            RULES[n] = f
        return f

    return register


@functools.cache
def _by_type(cls: type) -> Any:
    """An op class's tfl.VersionByType trait, or None."""
    return cls.get_trait(tfl.VersionByType)


def builtin_version(op: tfl.TflOp) -> int:
    """The OperatorCode.version this operator needs: its declaration's tfl.VersionByType,
    else its rule in RULES (tests/test_op_declarations.py: every op has one or the other)."""
    by_type = _by_type(type(op))
    if by_type is not None:
        k = _kind(_in(op, by_type.operand))
        return by_type.int16 if k == "q16" else by_type.int8 if _int8(k) else 1
    rule = RULES.get(op.BUILTIN)
    if rule is None:
        return 1
    out0 = _kind(_item(op.results, 0)) if op.results else "none"
    return rule(op, op.BUILTIN, _kind(_in(op, 0)), _kind(_in(op, 1)), out0, op.option)


@_rule("ADD")
def _add(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 3 if not opt("pot_scale_int16") else 2
    if k0 == "i16":
        return 5
    if k0 == "i64":
        return 4
    if k0 == "f16":
        return 6
    return 2 if _int8(k0) else 1


@_rule("SUB")
def _sub(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 5 if not opt("pot_scale_int16") else 3
    if k0 == "i64":
        return 4
    if _broadcast_rank_gt4(op):
        return 3
    return 2 if _int8(k0) else 1


@_rule("MUL")
def _mul(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 4
    if k0 in ("i16", "u32"):
        return 7
    if k0 == "f16":
        return 8
    if k0 in ("q8", "qu8") and _mul_rescale_ge1(op):
        return 3
    return 2 if _int8(k0) else 1


@_rule("CONV_2D")
def _conv_2d(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if opt("quantized_bias_type") not in ("FLOAT32", 0):
        return 8
    if k0 == "f32" and k1 in ("q8", "qu8"):
        return 5 if _per_axis(_in(op, 1)) else 2
    if k0 in ("q8", "q16") and k1 == "q4":
        return 7
    if _grouped(op):
        return 6
    if k0 in ("q8", "q16"):
        return 3
    return 1


@_rule("DEPTHWISE_CONV_2D")
def _depthwise_conv_2d(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "f32" and k1 in ("q8", "qu8"):
        return 6 if _per_axis(_in(op, 1)) else 4
    if k0 in ("q8", "q16"):
        return 3
    if opt("dilation_w_factor") != 1 or opt("dilation_h_factor") != 1:
        return 2
    return 1


@_rule("FULLY_CONNECTED")
def _fully_connected(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "f32" and k1 in ("q8", "qu8"):
        if _per_axis(_in(op, 1)):
            return 12
        return 9 if opt("asymmetric_quantize_inputs") else 3
    if len(op.inputs) == 2:
        return 6
    if opt("keep_num_dims"):
        return 5
    if opt("quantized_bias_type") not in ("FLOAT32", 0):
        return 11
    if k0 in ("q8", "q16"):
        return 4
    if opt("weights_format") != "DEFAULT":
        return 2
    return 1


@_rule("TRANSPOSE_CONV")
def _transpose_conv(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if opt("quantized_bias_type") not in ("FLOAT32", 0):
        return 5
    if opt("fused_activation_function") != "NONE":
        return 4
    if _in(op, 3) is not None:
        return 3
    k2 = _kind(_in(op, 2))
    if k2 == "q16":
        return 3
    if k2 == "q8" or k1 in ("q8",):
        return 2
    return 1


@_rule("BATCH_MATMUL")
def _batch_matmul(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "f32" and k1 == "q8":
        return 4 if opt("asymmetric_quantize_inputs") else 1
    if k0 == "q16":
        return 3
    return 2 if _int8(k0) else 1


@_rule("SOFTMAX")
def _softmax(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 3
    if k0 == "f16":
        return 4
    return 2 if _int8(k0) else 1


@_rule("CONCATENATION")
def _concatenation(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 3
    if k0 == "u32":
        return 4
    if k0 == "f16":
        return 6
    return 2 if _int8(k0) else 1


@_rule("GELU")
def _gelu(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    return 2 if _int8(k0) or k0 == "qu8" else 1


@_rule("EMBEDDING_LOOKUP")
def _embedding_lookup(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k1 == "q4" or _per_axis(_in(op, 1)):  # op_version.cc: int4 or per-channel table
        return 4
    if k1 in ("q8", "i8"):
        return 3
    if k1 in ("qu8", "u8"):
        return 2
    return 1


@_rule("RESIZE_BILINEAR")
def _resize_bilinear(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 4
    if opt("half_pixel_centers"):
        return 3
    return 2 if _int8(k0) else 1


@_rule("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest_neighbor(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 4
    if opt("half_pixel_centers") or opt("align_corners"):
        return 3
    return 2 if _int8(k0) else 1


@_rule("PAD", "PADV2")
def _pad(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if _rank(_in(op, 0)) > 4:
        return 4
    if k0 == "q16":
        return 3
    return 2 if _int8(k0) else 1


@_rule("GATHER")
def _gather(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q4":
        return 7
    if _kind(_in(op, 1)) == "i16":
        return 6
    if opt("batch_dims") != 0:
        return 5
    if k0 == "q16":
        return 4
    if k0 in ("bool",):
        return 3
    return 2 if _int8(k0) else 1


@_rule("BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND")
def _batch_to_space_nd(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 4
    if _rank(_in(op, 0)) != 4:
        return 3
    return 2 if _int8(k0) else 1


@_rule("TRANSPOSE")
def _transpose(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if _rank(_in(op, 0)) > 5:
        return 6
    if k0 == "q16":
        return 5
    if _rank(_in(op, 0)) > 4:
        return 4
    if k0 == "bool":
        return 3
    return 2 if _int8(k0) else 1


@_rule("MAXIMUM", "MINIMUM")
def _maximum(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 4
    if _broadcast_rank_gt4(op):
        return 3
    return 2 if _int8(k0) else 1


@_rule("SLICE")
def _slice(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if _rank(_in(op, 0)) > 4:
        return 5
    if k0 == "q16":
        return 4
    return 2 if _int8(k0) else 1


@_rule("STRIDED_SLICE")
def _strided_slice(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if opt("offset"):
        return 8
    if opt("ellipsis_mask") or opt("new_axis_mask"):
        return 6
    if _rank(_in(op, 0)) > 4:
        return 4
    if k0 == "q16":
        return 3
    return 2 if _int8(k0) else 1


@_rule("SELECT", "SELECT_V2")
def _select(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    kx = _kind(_in(op, 1))
    if b == "SELECT" and _rank(_in(op, 1)) == 5:
        return 3
    return 2 if _int8(kx) else 1


@_rule("SPLIT")
def _split(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    k = _kind(_in(op, 1))
    if k == "q16":
        return 4
    if k == "i32":
        return 3
    return 2 if _int8(k) else 1


@_rule("UNPACK")
def _unpack(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 4
    if k0 == "bool":
        return 3
    return 2 if _int8(k0) else 1


@_rule("RELU", "RELU6")
def _relu(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 3
    return 2 if _int8(k0) or k0 == "qu8" else 1


@_rule("QUANTIZE")
def _quantize(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if _per_axis(op.results[0]):
        return 3
    return 2 if out0 == "q16" else 1


@_rule("DEQUANTIZE")
def _dequantize(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q4":
        return 6
    if k0 == "q8" and _per_axis(_in(op, 0)):
        return 5
    if k0 in ("q16", "f16"):
        return 3
    return 2 if k0 == "q8" else 1


@_rule("BROADCAST_TO")
def _broadcast_to(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    return 3 if _int8(k0) or k0 == "q16" else 2


@_rule("REVERSE_V2")
def _reverse_v2(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    return 3 if _int8(k0) else 2 if k0 == "bool" else 1


@_rule("TOPK_V2")
def _topk_v2(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16" or _kind(_in(op, 1)) == "i16" or (len(op.results) > 1 and _kind(op.results[1]) == "i16"):
        return 3
    return 2 if _int8(k0) else 1


@_rule("DYNAMIC_UPDATE_SLICE")
def _dynamic_update_slice(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    return 2 if _kind(_in(op, 2)) == "i64" else 1


@_rule("FILL")
def _fill(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    k = _kind(_in(op, 1))
    if _int8(k) or k == "q16":
        return 3
    if k in ("bool", "i64"):
        return 2
    return 1


@_rule("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _unidirectional_sequence_lstm(op: tfl.TflOp, b: str, k0: str, k1: str, out0: str, opt: Callable[[str], Any]) -> int:
    if k0 == "q16":
        return 5
    if opt("diagonal_recurrent_tensors"):
        return 4
    k_w = _kind(_in(op, 2))
    if k0 == "f32" and k_w == "q8":
        return 3 if opt("asymmetric_quantize_inputs") else 2
    if k0 == "q8":  # full integer 8x8_16: what TF's quantizer writes (operator_property.cc)
        return 2
    return 1

def _grouped(op: tfl.TflOp) -> bool:
    x, w = _in(op, 0), _in(op, 1)
    if x is None or w is None or not isinstance(x.type, TensorType) or not isinstance(w.type, TensorType):
        return False
    xs, ws = x.type.get_shape(), w.type.get_shape()
    return len(xs) == 4 and len(ws) == 4 and xs[3] > 0 and ws[3] > 0 and xs[3] != ws[3]


def _mul_rescale_ge1(op: tfl.TflOp) -> bool:
    try:
        a = op.inputs[0].type.element_type  # type: ignore[attr-defined]
        b = op.inputs[1].type.element_type  # type: ignore[attr-defined]
        o = op.results[0].type.element_type  # type: ignore[attr-defined]
        return a.scale * b.scale / o.scale >= 1.0
    except (AttributeError, AssertionError, ZeroDivisionError):
        return False


# ---------------------------------------------------------------------------------------
# min_runtime_version
# ---------------------------------------------------------------------------------------

# First TFLite release whose runtime has each kernel version: "OP v1 v2 ..." ("-" = none).
# Facts from TFLite's runtime_version table (plus CONV_2D v8, FULLY_CONNECTED v12 from
# research/tflite_quant.md §4.3). Pairs not listed are skipped, as TFLite does.
_RUNTIME_TABLE = """
ADD 1.5.0 1.14.0 2.4.0 2.6.0
ADD_N 1.14.0
ABS 1.13.0 2.4.0 2.5.0 2.6.0
ARG_MAX 1.9.0 1.14.0 2.9.0
ARG_MIN 1.9.0 1.14.0 2.9.0
ASSIGN_VARIABLE 2.6.0
ATAN2 2.10.0
AVERAGE_POOL_2D 1.5.0 1.14.0 2.3.0
BATCH_MATMUL 2.3.0 2.3.0 2.4.0 2.5.0
BATCH_TO_SPACE_ND 1.6.0 1.14.0 2.3.0
BIDIRECTIONAL_SEQUENCE_LSTM 1.14.0 1.14.0 1.14.0
BIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
BROADCAST_ARGS 2.6.0
BROADCAST_TO - 2.5.0 2.5.0
BUCKETIZE 2.8.0
CALL_ONCE 2.5.0
CAST 1.5.0 2.7.0 2.8.0 2.9.0
CEIL 1.14.0
COMPLEX_ABS 2.5.0
CONCATENATION 1.5.0 1.14.0 2.3.0
CONV_2D 1.5.0 1.14.0 1.14.0 2.3.0 2.4.0 2.9.0 - 2.15.0
CONV_3D 2.5.0
CONV_3D_TRANSPOSE 2.6.0
COS 1.14.0
CUMSUM 2.4.0
DENSIFY 2.2.0
DEPTH_TO_SPACE 2.1.0 2.5.0
DEPTHWISE_CONV_2D 1.5.0 1.12.0 1.14.0 2.2.0 2.3.0 2.3.0
DEQUANTIZE 1.13.1 1.14.0 1.15.0 2.2.0 2.7.0
DIV 1.6.0 2.3.0
DYNAMIC_UPDATE_SLICE 2.9.0
ELU 1.14.0
EMBEDDING_LOOKUP 1.13.0 1.14.0 1.14.0
EMBEDDING_LOOKUP_SPARSE 1.5.0
EQUAL 1.14.0 1.14.0 2.3.0
EXP 1.7.0
EXPAND_DIMS 1.10.0
FAKE_QUANT 1.5.0 1.10.0
FILL 1.13.0 2.3.0 2.5.0
FLOOR 1.9.0
FLOOR_DIV 1.14.0 1.14.0
FLOOR_MOD 1.13.0
FULLY_CONNECTED 1.5.0 1.10.0 1.14.0 1.14.0 2.0.0 2.1.0 2.3.0 2.3.0 2.3.0 - - 2.17.0
GATHER 1.6.0 1.14.0 1.15.0 2.4.0 2.5.0
GATHER_ND 1.14.0 2.3.0 2.5.0
GELU 2.9.0 2.9.0
GREATER 1.14.0 1.14.0
GREATER_EQUAL 1.14.0 1.14.0
HARD_SWISH 1.15.0
HASHTABLE 2.5.0
HASHTABLE_FIND 2.5.0
HASHTABLE_IMPORT 2.5.0
HASHTABLE_LOOKUP 1.5.0
HASHTABLE_SIZE 2.5.0
IF 1.15.0
IMAG 2.5.0
L2_NORMALIZATION 1.5.0 1.14.0
L2_POOL_2D 1.5.0
LEAKY_RELU 1.13.1 2.3.0
LESS 1.14.0 1.14.0
LESS_EQUAL 1.14.0 1.14.0
LOCAL_RESPONSE_NORMALIZATION 1.5.0
LOG 1.14.0
LOG_SOFTMAX 1.14.0 1.14.0
LOGICAL_AND 1.11.0
LOGICAL_NOT 1.11.0
LOGICAL_OR 1.11.0
LOGISTIC 1.14.0 1.14.0 2.3.0
LSH_PROJECTION 1.5.0
LSTM 1.7.0 1.10.0 1.14.0 2.3.0
MATRIX_DIAG 1.14.0
MATRIX_SET_DIAG 1.14.0
MAX_POOL_2D 1.5.0 1.14.0 2.3.0
MAXIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MEAN 1.6.0 1.14.0 2.4.0
MINIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MIRROR_PAD 1.13.1 2.3.0
MUL 1.5.0 1.14.0 1.15.0 2.3.0 2.6.0
MULTINOMIAL 2.8.0
NEG 1.9.0
NON_MAX_SUPPRESSION_V4 2.1.0
NON_MAX_SUPPRESSION_V5 2.1.0
NOT_EQUAL 1.14.0 1.14.0 2.3.0
ONE_HOT 1.11.0
PACK 1.11.0 1.14.0 2.3.0
PAD 1.5.0 1.14.0 2.4.0 2.6.0
PADV2 1.9.0 1.14.0 2.4.0 2.6.0
POW 1.10.0
PRELU 1.8.0
QUANTIZE 1.14.0 1.15.0 2.7.0
RANDOM_STANDARD_NORMAL 2.8.0
RANDOM_UNIFORM 2.8.0
RANGE 1.13.0
RANK 1.14.0
READ_VARIABLE 2.6.0
REAL 2.5.0
REDUCE_ALL 2.6.0
REDUCE_ANY 1.11.0
REDUCE_MAX 1.11.0 1.14.0 2.5.0
REDUCE_MIN 1.11.0 1.14.0 2.5.0
REDUCE_PROD 1.11.0 2.6.0
RELU 1.5.0 2.1.0 2.5.0
RELU6 1.5.0 1.14.0 2.5.0
RELU_0_TO_1 2.10.0
RELU_N1_TO_1 1.5.0
RESHAPE 1.5.0
RESIZE_BILINEAR 1.7.0 1.14.0 2.2.0 2.5.0
RESIZE_NEAREST_NEIGHBOR 1.13.1 1.14.0 2.3.0 2.4.0
REVERSE_SEQUENCE 1.14.0
REVERSE_V2 1.14.0 2.2.0 2.5.0
RFFT2D 2.5.0
RNN 1.5.0 1.14.0 2.3.0
ROUND 1.14.0
RSQRT 1.10.0 2.5.0
SCATTER_ND 2.1.0
SEGMENT_SUM 2.2.0
SELECT 1.14.0 1.14.0
SELECT_V2 2.2.0
SHAPE 1.10.0
SIN 1.9.0
SKIP_GRAM 1.5.0
SLICE 1.14.0 1.14.0 1.14.0 2.4.0 2.5.0
SOFTMAX 1.5.0 1.14.0 2.3.0
SPACE_TO_BATCH_ND 1.6.0 1.14.0 2.3.0
SPACE_TO_DEPTH 1.5.0 1.14.0
SPARSE_TO_DENSE 1.9.0 1.14.0 1.15.0
SPLIT 1.5.0 1.14.0 1.14.0 2.3.0
SPLIT_V 1.13.1 2.3.0
SQRT 1.10.0
SQUARE 1.12.0
SQUARED_DIFFERENCE 1.13.1 2.5.0
SQUEEZE 1.6.0 2.5.0
STRIDED_SLICE 1.6.0 1.14.0 2.1.0 2.2.0 2.5.0 2.6.0
SUB 1.6.0 1.14.0 2.3.0 2.4.0 2.4.0
SUM 1.10.0 1.15.0
SVDF 1.5.0 1.14.0 2.2.0 2.3.0
TANH 1.14.0 1.14.0 2.3.0
TILE 1.10.1 2.2.0 2.8.0
TOPK_V2 1.7.0 1.14.0
TRANSPOSE 1.6.0 1.14.0 1.15.0 2.3.0 2.4.0
TRANSPOSE_CONV 1.9.0 2.2.0 2.3.0
UNIDIRECTIONAL_SEQUENCE_LSTM 1.13.1 1.14.0 2.3.0
UNIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
UNIQUE 1.14.0
UNPACK 1.11.0 1.14.0 2.2.0 2.3.0
UNSORTED_SEGMENT_MAX 2.10.0
UNSORTED_SEGMENT_MIN 2.11.0
UNSORTED_SEGMENT_PROD 2.10.0
UNSORTED_SEGMENT_SUM 2.10.0
VAR_HANDLE 2.6.0
WHERE 1.14.0 2.8.0
WHILE 1.15.0
ZEROS_LIKE 1.12.0
"""

RUNTIME_VERSIONS: dict[tuple[str, int], str] = {
    (line.split()[0], v): rel
    for line in _RUNTIME_TABLE.strip().splitlines()
    for v, rel in enumerate(line.split()[1:], start=1)
    if rel != "-"
}


def _parse(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def min_runtime_version(ops: Iterable[tuple[str, int]]) -> str:
    """The oldest release that has every (builtin name, version); pairs not in the table are
    skipped, and "" when none is known (TFLite then leaves the metadata zero-filled)."""
    best = ""
    for key in ops:
        v = RUNTIME_VERSIONS.get(key)
        if v is not None and (not best or _parse(v) > _parse(best)):
            best = v
    return best
