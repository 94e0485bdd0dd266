"""The `tfl` dialect: TFLite builtin operators, one op per builtin.

Every op takes its TFLite inputs as variadic operands (in TFLite order; an absent optional
input is the result of `tfl.no_value`) and produces its TFLite outputs as variadic results.
Builtin options are typed properties named as in the schema; an option left out has the
schema's default. Enums (padding, fused activation, tensor types, ...) are strings:

    %y = "tfl.conv_2d"(%x, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32,
         fused_activation_function = "RELU6"}> {names = ["conv1"]} : (...) -> tensor<1x8x8x16xf32>

Tensor names travel on the defining op as the discardable attribute `names` (one per
result) and on function arguments as the argument attribute `tfl.name`.

Each builtin has one declaration in `BUILTIN_OPS`: its inputs, option table and xDSL
traits (quantization constraint, int8/int16 support, kernel parameters, shape rule,
version rule; see "Adding an op" in README.md). Passes, calibration, the interpreters,
the writer and `tflquant.testing` read those traits and keep no tables of their own.

`tfl.const` holds constant payloads as raw little-endian bytes; a quantized constant keeps
integer bytes with the quantized type on its result. A builtin or custom op this dialect
does not model is a `tfl.opaque` that carries its code, version and options untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    NoneType,
    Signedness,
    StringAttr,
    TensorType,
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    AnyAttr,
    IRDLOperation,
    OptPropertyDef,
    RangeOf,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import ConstantLike, OpTrait, Pure
from xdsl.utils.exceptions import VerifyException

from tflquant.dialects._unchecked import DENSE_ELEMENTS, _plain_class, class_test, init_op, is_value, string_array
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType, blockwise_element, quantized_element
from tflquant.tflite import schema

# Option fields whose integer value is an enum, printed by name.
ENUM_FIELDS: dict[str, dict[str, int]] = {
    "padding": schema.PADDINGS,
    "fused_activation_function": schema.ACTIVATIONS,
    "weights_format": schema.FC_WEIGHTS_FORMATS,
    "quantized_bias_type": schema.TENSOR_TYPES,
    "output_type": schema.TENSOR_TYPES,
    "out_type": schema.TENSOR_TYPES,
    "in_data_type": schema.TENSOR_TYPES,
    "out_data_type": schema.TENSOR_TYPES,
    "kernel_type": schema.LSTM_KERNEL_TYPES,
}
MIRROR_PAD_MODE_FIELD = ("MirrorPadOptions", "mode")

_SCALAR_ATTR_TYPES = {"i8": i8, "i16": i16, "i32": i32, "i64": i64, "u8": i32, "u16": i32, "u32": i64, "u64": i64}


def enum_of(table: str, field: str) -> dict[str, int] | None:
    if (table, field) == MIRROR_PAD_MODE_FIELD:
        return schema.MIRROR_PAD_MODES
    return ENUM_FIELDS.get(field)


_BOOL_ATTRS = {b: BoolAttr.from_bool(b) for b in (False, True)}  # immutable: shared by every op


def option_to_attr(table: str, field: str, ftype: str, value: Any) -> Attribute:
    """A Python option value (ints for enums) as the property attribute the dialect uses.

    Vectors are never enums (StableHLO's `padding` is an [i64]); byte vectors are bytes,
    float vectors f32/f64 arrays, integer vectors i32/i64 arrays."""
    if ftype.startswith("["):
        elem = ftype[1:-1]
        if elem in ("u8", "i8"):
            return BytesAttr(bytes(np.asarray(value, dtype=np.uint8 if elem == "u8" else np.int8).tobytes()))
        if elem in ("f32", "f64"):
            return DenseArrayBase.from_list(f32 if elem == "f32" else f64, [float(v) for v in value])
        return DenseArrayBase.from_list(i64 if elem in ("i64", "u64", "u32") else i32, [int(v) for v in value])
    if (enum := enum_of(table, field)) is not None:
        names = {v: k for k, v in enum.items()}
        return StringAttr(names.get(int(value), str(int(value))))
    if ftype == "bool":
        return _BOOL_ATTRS[bool(value)]
    if ftype in ("f32", "f64"):
        return FloatAttr(float(value), f32 if ftype == "f32" else f64)
    if ftype == "string":
        return StringAttr(str(value))
    return IntegerAttr(int(value), _SCALAR_ATTR_TYPES[ftype])


def attr_to_option(table: str, field: str, ftype: str, attr: Attribute) -> Any:
    """Inverse of option_to_attr: the Python value the flatbuffer stores. Also takes what
    text IR parses back (a byte vector that is valid UTF-8 reads back as a string)."""
    if ftype.startswith("["):
        elem = ftype[1:-1]
        if isinstance(attr, (BytesAttr, StringAttr)):
            raw = attr.data if isinstance(attr, BytesAttr) else attr.data.encode("utf-8", errors="surrogateescape")
            return list(np.frombuffer(raw, dtype=np.int8 if elem == "i8" else np.uint8))
        assert isinstance(attr, DenseArrayBase)
        conv = float if elem in ("f32", "f64") else int
        return [conv(v) for v in attr.get_values()]
    if (enum := enum_of(table, field)) is not None:
        assert isinstance(attr, StringAttr)
        if attr.data in enum:
            return enum[attr.data]
        return int(attr.data)
    if ftype == "bool":
        assert isinstance(attr, IntegerAttr)
        return bool(attr.value.data)
    if ftype in ("f32", "f64"):
        assert isinstance(attr, FloatAttr)
        return float(attr.value.data)
    if ftype == "string":
        if isinstance(attr, BytesAttr):
            return attr.data.decode("utf-8", errors="surrogateescape")
        assert isinstance(attr, StringAttr)
        return attr.data
    assert isinstance(attr, IntegerAttr)
    return int(attr.value.data)


def _enum_check(table: str, field: str, attr: Attribute) -> None:
    enum = enum_of(table, field)
    if enum is None:
        return
    if not isinstance(attr, StringAttr):
        raise VerifyException(f"option {field} must be a string naming one of {sorted(enum)}")
    if attr.data not in enum and not attr.data.lstrip("-").isdigit():
        raise VerifyException(f"option {field} = {attr.data!r} is not one of {sorted(enum)}")


class TflOp(IRDLOperation):
    """Base of every builtin op: variadic inputs and outputs, options as properties.

    Class facts (set by `_builtin` from the op's declaration in BUILTIN_OPS): BUILTIN
    (schema name), CODE, OPTIONS (option table or None), OPERANDS (input names in TFLite
    order; a name starting with '*' is variadic), FIELDS (option fields: name -> (type,
    default)), and `traits`: what the declaration states about quantization, kernels,
    shapes and versions (`cls.get_trait(tfl.AffineOp)`, `op.has_trait(tfl.Quantizable)`).
    """

    BUILTIN: ClassVar[str]
    CODE: ClassVar[int]
    OPTIONS: ClassVar[str | None]
    OPERANDS: ClassVar[tuple[str, ...]]
    FIELDS: ClassVar[dict[str, tuple[str, Any]]]
    # takes any number of inputs (a '*' operand; ops not declared in BUILTIN_OPS too)
    VARIADIC: ClassVar[bool] = True

    inputs = var_operand_def()
    outputs = var_result_def()

    def __init__(
        self,
        inputs: Sequence[SSAValue | Operation],
        result_types: Sequence[Attribute],
        options: dict[str, Any] | None = None,
        names: Sequence[str] | None = None,
    ):
        """Build from Python option values (enums by name or number); defaults are left out."""
        props: dict[str, Attribute] = {}
        for field, value in (options or {}).items():
            if field not in self.FIELDS:
                raise ValueError(f"{self.name} has no option {field!r}; options: {sorted(self.FIELDS)}")
            if value is not None:
                props[field] = self.option_attr(field, value)
        attrs = {"names": string_array(names)} if names is not None else {}
        inputs = list(inputs)
        if _plain_class(type(self)) and all(map(is_value, inputs)):  # (xDSL's generic argument building, skipped)
            init_op(self, inputs, list(result_types), props, attrs)
        else:
            super().__init__(operands=[inputs], result_types=[list(result_types)], properties=props, attributes=attrs)

    # typed accessors ---------------------------------------------------------------
    def operand(self, name: str) -> SSAValue | None:
        """The input named `name` in TFLite order, or None when absent or `tfl.no_value`."""
        idx = self.OPERANDS.index(name)
        if idx >= len(self.inputs):
            return None
        v = self.inputs[idx]
        if isinstance(v.owner, NoValueOp):
            return None
        return v

    def option(self, field: str) -> Any:
        """The option's value as Python data: enums by name, arrays as lists; defaults filled."""
        ftype, default = self.FIELDS[field]
        attr = self.properties.get(field)
        if attr is None:
            if (enum := enum_of(self.OPTIONS or "", field)) is not None:
                return {v: k for k, v in enum.items()}.get(default, default)
            return [] if ftype.startswith("[") and default is None else default
        if isinstance(attr, StringAttr):
            return attr.data
        return attr_to_option(self.OPTIONS or "", field, ftype, attr)

    def set_option(self, field: str, value: Any) -> None:
        self.properties[field] = self.option_attr(field, value)

    @classmethod
    def option_attr(cls, field: str, value: Any) -> Attribute:
        """The property an option value is stored as (an enum given by name: its name)."""
        if isinstance(value, str) and enum_of(cls.OPTIONS or "", field) is not None:
            return StringAttr(value)
        return option_to_attr(cls.OPTIONS or "", field, cls.FIELDS[field][0], value)

    def verify_(self) -> None:
        for field, attr in self.properties.items():
            if field not in self.FIELDS:
                raise VerifyException(f"{self.name} has no option {field!r}")
            _enum_check(self.OPTIONS or "", field, attr)
        if not self.VARIADIC and len(self._operands) > len(self.OPERANDS):
            raise VerifyException(f"{self.name} takes at most {len(self.OPERANDS)} inputs ({', '.join(self.OPERANDS)}), got {len(self._operands)}")
        if names := self.attributes.get("names"):
            if not isinstance(names, ArrayAttr) or len(names.data) != len(self.results):
                raise VerifyException(f"{self.name}: 'names' must list one name per result")


# Attribute of an UNIDIRECTIONAL_SEQUENCE_LSTM: the calibrated range of its cell state
# (`#quant.stats`), set by annotate-calibration and read by quantize-lstm.
CELL_STATS = "cell_stats"


def tensor_names(op: Operation) -> list[str] | None:
    names = op.attributes.get("names")
    if isinstance(names, ArrayAttr):
        return [n.data for n in names.data]  # type: ignore[attr-defined]
    return None


# ----------------------------------------------------------------------------------------
# What an op declares: xDSL traits on its class (MLIR's op traits: FixedResultScale,
# SameOperandsAndResultsScale, AffineOpCoefficient). Query them with
# `type(op).get_trait(tfl.AffineOp)` / `op.has_trait(...)`; every table that used to restate
# a fact about one op (quantization, kernel parameters, shape rules, versions, random graphs)
# reads these instead. An op without a trait has its default: no Quantizable -> stays float;
# no SameScale / FixedResultScale -> free output scale; no ShapeRule -> shapes by running the
# float kernel on zeros; no VersionByType -> a rule in tflite/versions.py (checked by
# tests/test_op_declarations.py).
# ----------------------------------------------------------------------------------------

ALL = -1  # SameScale marker: every input


@dataclass(frozen=True)
class Quantizable(OpTrait):
    """LiteRT has an integer kernel for the op with int8 (resp. int16, 16x8) activations.

    `no_integer_kernel`: why tflquant's IntegerInterpreter simulates it in float instead of
    having a bit-exact kernel in reference/integer_kernels.py (empty: it has one)."""

    int8: bool = True
    int16: bool = True
    no_integer_kernel: str = ""


@dataclass(frozen=True)
class SameScale(OpTrait):
    """These inputs (ALL: every input) have the results' (scale, zero point). With one
    index the results copy that input's parameters; with several (concatenation, maximum,
    ...) the inputs are requantized to the results'."""

    operands: tuple[int, ...]


@dataclass(frozen=True)
class FixedResultScale(OpTrait):
    """The kernel's fixed (scale, zero point) of the result, per activation bit width
    (None: that width has no fixed range)."""

    int8: tuple[float, int] | None = None
    int16: tuple[float, int] | None = None


@dataclass(frozen=True)
class AffineOp(OpTrait):
    """A layer computing input x weight (+ bias): the weight operand is quantized int8
    symmetric [-127, 127] per slice along `channel_axis` (None: per tensor), the bias
    (int32, int64 for 16x8) with scale input_scale x weight_scale[c]. `calibrated_bias`:
    the bias is a per-output-channel add after the product on input 0, which passes may
    rewrite from calibration (fold-bias-add, correct-bias, clip-weights; the calibration
    records the input's per-channel moments). `needs_bias`: the integer kernel needs a bias
    input (quantize-bias writes zeros when there is none). `int16_weight`: with 16-bit
    activations the weight is quantized like an activation (16-bit), not int8 symmetric.
    `int64_bias`: with 16-bit activations the kernel takes only an int64 bias."""

    input: int
    weight: int
    channel_axis: int | None
    bias: int | None = None
    calibrated_bias: bool = False
    needs_bias: bool = False
    int16_weight: bool = False
    int64_bias: bool = False


@dataclass(frozen=True)
class DynamicRangeWeights(OpTrait):
    """Dynamic-range quantization (quantize-weights) stores these constant inputs as int8:
    `weights` = ((input index, per-channel axis or None), ...); empty means the AffineOp
    weight. `hybrid`: LiteRT's kernel reads the int8 weight directly (else it is
    dequantized); `per_channel_only`: the hybrid kernel needs per-channel weights;
    `asymmetric_inputs`: the op has the `asymmetric_quantize_inputs` option.
    `int4`: the granularities ("tensor", "channel", "block") at which LiteRT's hybrid kernel
    (builtin and XNNPACK) reads int4 weights directly, measured (tests/test_int4_blockwise.py);
    an int4 weight of any other op or granularity is read through DEQUANTIZE, which takes
    int4 per tensor and per channel. Blocks run along the weight's last dimension."""

    weights: tuple[tuple[int, int | None], ...] = ()
    hybrid: bool = True
    per_channel_only: bool = False
    asymmetric_inputs: bool = False
    int4: tuple[str, ...] = ()
    int2: tuple[str, ...] = ()  # likewise for int2 (four per byte); elsewhere DEQUANTIZE reads it

    def slots(self, op_cls: type) -> tuple[tuple[int, int | None], ...]:
        if self.weights:
            return self.weights
        a = op_cls.get_trait(AffineOp)  # type: ignore[attr-defined]
        return ((a.weight, a.channel_axis),) if a is not None else ()


@dataclass(frozen=True)
class OptionalInputs(OpTrait):
    """Inputs LiteRT's kernel lets a model leave out: the last `trailing` ones may be
    missing from the input list, and with `anywhere` any optional input may be -1 (absent)
    between required ones. Without this trait every input is required."""

    trailing: int = 0
    anywhere: bool = False


@dataclass(frozen=True)
class KernelParams(OpTrait):
    """Inputs the reference kernels take as parameters, without a sample axis (weights,
    axes, shapes, paddings: values that must not depend on the sample). `integer`: more
    inputs the integer kernel takes that way."""

    names: tuple[str, ...]
    integer: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnbatchedResult(OpTrait):
    """The result does not depend on the sample (SHAPE): no sample axis."""


@dataclass(frozen=True)
class Stateful(OpTrait):
    """The op updates variable tensors as it runs; its float kernel takes `carry` (state kept
    between runs) and reports the values of `side_values` (operand names) for calibration."""

    side_values: tuple[str, ...] = ()


ELEMENTWISE = "elementwise"  # result shape = the shape of input `operand`
BROADCAST = "broadcast"  # result shape = broadcast of every tensor input's shape
VALUE_DEPENDENT = "value-dependent"  # result shape depends on input values: never inferred by running it


@dataclass(frozen=True)
class ShapeRule(OpTrait):
    """How static shape inference gets the result shape (without this trait: by running the
    float kernel once on zeros shaped like the inputs)."""

    kind: str
    operand: int = 0


@dataclass(frozen=True)
class VersionByType(OpTrait):
    """The OperatorCode version: `int16` when input `operand` is 16-bit quantized, `int8`
    when it is int8 (quantized or not), else 1. Ops whose version depends on more (options,
    ranks, hybrid weights) have a rule in tflite/versions.py instead."""

    int8: int = 1
    int16: int = 1
    operand: int = 0


@dataclass(frozen=True)
class ErrorBound(OpTrait):
    """How far half a step of each quantized input can move the op's output: the analytic
    worst case by which the measured fallback (tflquant.compare.suspicious_ops) picks the
    ops to run alone against their float form. `kind`:
    - "sum": slope 1 per input (ADD, SUB);
    - "product": each input's step times the other's largest magnitude (MUL);
      "squared-difference": the same with |a| + |b| for each;
    - "power": x ** `power`, steepest at the smallest input (power 0: log; RSQRT -0.5, SQRT 0.5);
    - "exponential": steepest at the largest input (EXP);
    - "division": steepest at the smallest divisor (DIV; LiteRT's int8 kernel also breaks
      beyond a 31-bit shift).
    The last three are measured unless the calibrated ranges show them benign."""

    kind: str
    power: float = 0.0


@dataclass(frozen=True)
class NotInRandomGraphs(OpTrait):
    """tflquant.testing's random graphs never draw this op, for this reason."""

    reason: str


class Op(NamedTuple):
    """One op's declaration: schema name, option table, input names (TFLite order; '*' =
    variadic) and its traits."""

    builtin: str
    options: str | None
    operands: tuple[str, ...]
    traits: tuple[OpTrait, ...]


def declare(builtin: str, options: str | None, operands: tuple[str, ...], *traits: OpTrait) -> Op:
    return Op(builtin, options, operands, traits)


LSTM_WEIGHTS = (
    "input_to_input_weights", "input_to_forget_weights", "input_to_cell_weights", "input_to_output_weights",
    "recurrent_to_input_weights", "recurrent_to_forget_weights", "recurrent_to_cell_weights", "recurrent_to_output_weights",
    "cell_to_input_weights", "cell_to_forget_weights", "cell_to_output_weights",
    "input_gate_bias", "forget_gate_bias", "cell_gate_bias", "output_gate_bias",
    "projection_weights", "projection_bias",
)  # fmt: skip
LSTM_NORMS = (
    "input_layer_norm_coefficients", "forget_layer_norm_coefficients",
    "cell_layer_norm_coefficients", "output_layer_norm_coefficients",
)  # fmt: skip
LSTM_OPERANDS = ("input", *LSTM_WEIGHTS, "output_state", "cell_state", *LSTM_NORMS)

# One declaration per builtin: schema name, option table, inputs, traits (see above).
BUILTIN_OPS: tuple[Op, ...] = (
    declare("ADD", "AddOptions", ("lhs", "rhs"), Quantizable(), ShapeRule(BROADCAST), ErrorBound("sum")),
    declare("SUB", "SubOptions", ("lhs", "rhs"), Quantizable(), ShapeRule(BROADCAST), ErrorBound("sum")),
    declare("MUL", "MulOptions", ("lhs", "rhs"), Quantizable(), ShapeRule(BROADCAST), ErrorBound("product")),
    declare("DIV", "DivOptions", ("lhs", "rhs"), Quantizable(), ShapeRule(BROADCAST), VersionByType(int8=2), ErrorBound("division")),
    declare(
        "CONV_2D", "Conv2DOptions", ("input", "filter", "bias"),
        Quantizable(),
        AffineOp(input=0, weight=1, channel_axis=0, bias=2, calibrated_bias=True, needs_bias=True),
        OptionalInputs(trailing=1),
        DynamicRangeWeights(int4=("tensor", "channel")),
        KernelParams(("filter", "bias")),
    ),
    declare(
        "DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions", ("input", "filter", "bias"),
        Quantizable(),
        AffineOp(input=0, weight=1, channel_axis=3, bias=2, calibrated_bias=True, needs_bias=True, int64_bias=True),
        OptionalInputs(trailing=1),
        DynamicRangeWeights(per_channel_only=True),
        KernelParams(("filter", "bias")),
    ),
    declare(
        "TRANSPOSE_CONV", "TransposeConvOptions", ("output_shape", "filter", "input", "bias"),
        Quantizable(),
        AffineOp(input=2, weight=1, channel_axis=0, bias=3),
        OptionalInputs(trailing=1),
        DynamicRangeWeights(),
        KernelParams(("output_shape", "filter", "bias")),
        NotInRandomGraphs("its output_shape input must agree with strides and padding; tests/test_reference_float.py and the e2e models cover it"),
    ),
    declare(
        "FULLY_CONNECTED", "FullyConnectedOptions", ("input", "filter", "bias"),
        Quantizable(),
        AffineOp(input=0, weight=1, channel_axis=0, bias=2, calibrated_bias=True),
        OptionalInputs(trailing=1),
        DynamicRangeWeights(asymmetric_inputs=True, int4=("tensor", "channel", "block"), int2=("tensor", "channel")),
        KernelParams((), integer=("filter", "bias")),
    ),
    declare(
        "BATCH_MATMUL", "BatchMatMulOptions", ("x", "y"),
        Quantizable(),
        AffineOp(input=0, weight=1, channel_axis=None, int16_weight=True),
        DynamicRangeWeights(asymmetric_inputs=True),
    ),
    declare(
        "AVERAGE_POOL_2D", "Pool2DOptions", ("input",),
        Quantizable(),
        SameScale((0,)),
        VersionByType(int8=2, int16=3),
    ),
    declare("MAX_POOL_2D", "Pool2DOptions", ("input",), Quantizable(), SameScale((0,)), VersionByType(int8=2, int16=3)),
    declare(
        "MEAN", "ReducerOptions", ("input", "axis"),
        Quantizable(),
        KernelParams(("axis",)),
        VersionByType(int8=2, int16=3),
    ),
    declare(
        "SUM", "ReducerOptions", ("input", "axis"),
        Quantizable(),
        KernelParams(("axis",)),
        VersionByType(int8=2, int16=2),
    ),
    declare(
        "REDUCE_MAX", "ReducerOptions", ("input", "axis"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("axis",)),
        VersionByType(int8=2, int16=3),
    ),
    declare(
        "REDUCE_MIN", "ReducerOptions", ("input", "axis"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("axis",)),
        VersionByType(int8=2, int16=3),
    ),
    declare(
        "REDUCE_PROD", "ReducerOptions", ("input", "axis"),
        Quantizable(),
        KernelParams(("axis",)),
        VersionByType(int8=2, int16=2),
    ),
    declare(
        "SOFTMAX", "SoftmaxOptions", ("input",),
        Quantizable(),
        FixedResultScale(int8=(1/256, -128), int16=(1/32768, 0)),
        ShapeRule(ELEMENTWISE),
    ),
    declare(
        "LOG_SOFTMAX", "LogSoftmaxOptions", ("input",),
        Quantizable(int16=False, no_integer_kernel="LiteRT's int8 LOG_SOFTMAX (exp table, fixed-point log) is not reproduced yet: simulated in float"),
        FixedResultScale(int8=(1/16, 127)),
        ShapeRule(ELEMENTWISE),
        VersionByType(int8=2),
    ),
    declare(
        "LOGISTIC", None, ("input",),
        Quantizable(),
        FixedResultScale(int8=(1/256, -128), int16=(1/32768, 0)),
        ShapeRule(ELEMENTWISE),
        VersionByType(int8=2, int16=3),
    ),
    declare(
        "TANH", None, ("input",),
        Quantizable(),
        FixedResultScale(int8=(1/128, 0), int16=(1/32768, 0)),
        ShapeRule(ELEMENTWISE),
        VersionByType(int8=2, int16=3),
    ),
    declare("RELU", None, ("input",), Quantizable(), ShapeRule(ELEMENTWISE)),
    declare("RELU6", None, ("input",), Quantizable(), ShapeRule(ELEMENTWISE)),
    declare("RELU_N1_TO_1", None, ("input",), Quantizable(int16=False), ShapeRule(ELEMENTWISE), VersionByType()),
    declare("RELU_0_TO_1", None, ("input",), Quantizable(int16=False), ShapeRule(ELEMENTWISE), VersionByType()),
    declare("LEAKY_RELU", "LeakyReluOptions", ("input",), Quantizable(), ShapeRule(ELEMENTWISE), VersionByType(int16=2)),
    declare("PRELU", None, ("input", "alpha"), Quantizable(int16=False), ShapeRule(BROADCAST), VersionByType()),
    declare(
        "HARD_SWISH", "HardSwishOptions", ("input",),
        Quantizable(int16=False),
        ShapeRule(ELEMENTWISE),
        VersionByType(),
    ),
    declare("GELU", "GeluOptions", ("input",), Quantizable(), ShapeRule(ELEMENTWISE)),
    declare("EXP", "ExpOptions", ("input",), Quantizable(), ShapeRule(ELEMENTWISE), VersionByType(int8=2, int16=2), ErrorBound("exponential")),
    declare("LOG", None, ("input",), Quantizable(), ShapeRule(ELEMENTWISE), VersionByType(int8=2, int16=2), ErrorBound("power", 0.0)),
    declare(
        "SQRT", None, ("input",),
        Quantizable(no_integer_kernel="LiteRT's int8 SQRT formulation is not reproduced yet: simulated in float"),
        ShapeRule(ELEMENTWISE),
        VersionByType(int8=2, int16=2),
        ErrorBound("power", 0.5),
    ),
    declare("RSQRT", None, ("input",), Quantizable(), ShapeRule(ELEMENTWISE), VersionByType(int8=2, int16=3), ErrorBound("power", -0.5)),
    declare("SQUARE", "SquareOptions", ("input",), ShapeRule(ELEMENTWISE), VersionByType()),
    declare(
        "SQUARED_DIFFERENCE", "SquaredDifferenceOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2),
        ErrorBound("squared-difference"),
    ),
    declare("ABS", "AbsOptions", ("input",), Quantizable(), ShapeRule(ELEMENTWISE), VersionByType(int8=2, int16=3)),
    declare("NEG", "NegOptions", ("input",), ShapeRule(ELEMENTWISE), VersionByType(int8=2)),
    declare("MAXIMUM", "MaximumMinimumOptions", ("lhs", "rhs"), Quantizable(), SameScale((0, 1)), ShapeRule(BROADCAST)),
    declare("MINIMUM", "MaximumMinimumOptions", ("lhs", "rhs"), Quantizable(), SameScale((0, 1)), ShapeRule(BROADCAST)),
    declare(
        "RESHAPE", "ReshapeOptions", ("input", "shape"),
        OptionalInputs(trailing=1),  # shape: then the new_shape option
        Quantizable(),
        SameScale((0,)),
        KernelParams(("shape",)),
        VersionByType(),
    ),
    declare("SQUEEZE", "SqueezeOptions", ("input",), Quantizable(), SameScale((0,)), VersionByType()),
    declare(
        "EXPAND_DIMS", "ExpandDimsOptions", ("input", "axis"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("axis",)),
        VersionByType(),
    ),
    declare("TRANSPOSE", "TransposeOptions", ("input", "perm"), Quantizable(), SameScale((0,)), KernelParams(("perm",))),
    declare("CONCATENATION", "ConcatenationOptions", ("*values",), Quantizable(), SameScale((ALL,))),
    declare(
        "SPLIT", "SplitOptions", ("axis", "input"),
        Quantizable(),
        SameScale((1,)),
        KernelParams(("axis",)),
        NotInRandomGraphs("several results: the graphs chain single-result ops"),
    ),
    declare(
        "SPLIT_V", "SplitVOptions", ("input", "size_splits", "axis"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("size_splits", "axis")),
        VersionByType(int8=2, int16=3),
        NotInRandomGraphs("several results: the graphs chain single-result ops"),
    ),
    declare(
        "SLICE", "SliceOptions", ("input", "begin", "size"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("begin", "size")),
    ),
    declare(
        "STRIDED_SLICE", "StridedSliceOptions", ("input", "begin", "end", "strides"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("begin", "end", "strides")),
    ),
    declare("PACK", "PackOptions", ("*values",), Quantizable(), SameScale((ALL,)), VersionByType(int8=2, int16=3)),
    declare(
        "UNPACK", "UnpackOptions", ("input",),
        Quantizable(),
        SameScale((0,)),
        NotInRandomGraphs("several results: the graphs chain single-result ops"),
    ),
    declare("PAD", "PadOptions", ("input", "paddings"), Quantizable(), SameScale((0,)), KernelParams(("paddings",))),
    declare(
        "PADV2", "PadV2Options", ("input", "paddings", "constant_values"),
        OptionalInputs(trailing=1),
        Quantizable(),
        SameScale((0, 2)),
        KernelParams(("paddings",)),
    ),
    declare(
        "MIRROR_PAD", "MirrorPadOptions", ("input", "paddings"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("paddings",)),
        VersionByType(int8=2, int16=3),
    ),
    declare(
        "GATHER", "GatherOptions", ("params", "indices"),
        Quantizable(),
        SameScale((0,)),
        DynamicRangeWeights(weights=((0, None),), hybrid=False, int4=("tensor",)),
    ),
    declare(
        "GATHER_ND", "GatherNdOptions", ("params", "indices"),
        Quantizable(),
        SameScale((0,)),
        VersionByType(int8=2, int16=3),
        NotInRandomGraphs("its index tuples address the params' leading axes, the batch axis first"),
    ),
    declare(
        "EMBEDDING_LOOKUP", None, ("ids", "value"),
        Quantizable(),
        SameScale((1,)),
        DynamicRangeWeights(weights=((1, 0),), int4=("tensor", "channel", "block")),
        NotInRandomGraphs("its data input is integer ids (its table a weight): the graphs are float32 chains"),
    ),
    declare(
        "RESIZE_BILINEAR", "ResizeBilinearOptions", ("input", "size"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("size",)),
    ),
    declare(
        "RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions", ("input", "size"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("size",)),
    ),
    declare(
        "SPACE_TO_DEPTH", "SpaceToDepthOptions", ("input",),
        Quantizable(int16=False),
        SameScale((0,)),
        VersionByType(int8=2),
    ),
    declare(
        "DEPTH_TO_SPACE", "DepthToSpaceOptions", ("input",),
        Quantizable(int16=False),
        SameScale((0,)),
        VersionByType(int8=2),
    ),
    declare(
        "BATCH_TO_SPACE_ND", "BatchToSpaceNDOptions", ("input", "block_shape", "crops"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("block_shape", "crops")),
        NotInRandomGraphs("moves data into or out of the batch axis: the graphs keep batch 1"),
    ),
    declare(
        "SPACE_TO_BATCH_ND", "SpaceToBatchNDOptions", ("input", "block_shape", "paddings"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("block_shape", "paddings")),
        NotInRandomGraphs("moves data into or out of the batch axis: the graphs keep batch 1"),
    ),
    declare(
        "QUANTIZE", "QuantizeOptions", ("input",),
        ShapeRule(ELEMENTWISE),
        NotInRandomGraphs("converts float to quantized types: quantization makes it, float graphs do not draw it"),
    ),
    declare(
        "DEQUANTIZE", "DequantizeOptions", ("input",),
        ShapeRule(ELEMENTWISE),
        NotInRandomGraphs("converts quantized to float types: quantization makes it, float graphs do not draw it"),
    ),
    declare(
        "CAST", "CastOptions", ("input",),
        ShapeRule(ELEMENTWISE),
        VersionByType(),
        NotInRandomGraphs("changes the element type: the graphs are float32 chains"),
    ),
    declare(
        "SHAPE", "ShapeOptions", ("input",),
        Quantizable(),
        UnbatchedResult(),
        VersionByType(),
        NotInRandomGraphs("its result is an int32 shape, not a float tensor the chain continues from"),
    ),
    declare(
        "FILL", "FillOptions", ("dims", "value"),
        Quantizable(),
        SameScale((1,)),
        KernelParams(("dims",)),
        NotInRandomGraphs("reads no tensor the chain computes: its result depends only on constants"),
    ),
    declare(
        "BROADCAST_TO", "BroadcastToOptions", ("input", "shape"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("shape",)),
    ),
    declare(
        "TILE", "TileOptions", ("input", "multiples"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("multiples",)),
        VersionByType(int8=3, int16=3),
    ),
    declare(
        "SELECT", "SelectOptions", ("condition", "x", "y"),
        Quantizable(),
        SameScale((1, 2)),
        ShapeRule(ELEMENTWISE, operand=1),
    ),
    declare(
        "SELECT_V2", "SelectV2Options", ("condition", "x", "y"),
        Quantizable(),
        SameScale((1, 2)),
        ShapeRule(BROADCAST),
    ),
    declare(
        "EQUAL", "EqualOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2, int16=4),
        NotInRandomGraphs("bool result: the graphs are float32 chains"),
    ),
    declare(
        "NOT_EQUAL", "NotEqualOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2, int16=4),
        NotInRandomGraphs("bool result: the graphs are float32 chains"),
    ),
    declare(
        "LESS", "LessOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2, int16=3),
        NotInRandomGraphs("bool result: the graphs are float32 chains"),
    ),
    declare(
        "LESS_EQUAL", "LessEqualOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2),
        NotInRandomGraphs("bool result: the graphs are float32 chains"),
    ),
    declare(
        "GREATER", "GreaterOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2),
        NotInRandomGraphs("bool result: the graphs are float32 chains"),
    ),
    declare(
        "GREATER_EQUAL", "GreaterEqualOptions", ("lhs", "rhs"),
        Quantizable(int16=False),
        ShapeRule(BROADCAST),
        VersionByType(int8=2, int16=3),
        NotInRandomGraphs("bool result: the graphs are float32 chains"),
    ),
    declare(
        "ARG_MAX", "ArgMaxOptions", ("input", "dim"),
        Quantizable(int16=False),
        KernelParams(("dim",)),
        VersionByType(int8=2),
        NotInRandomGraphs("integer result (indices): the graphs are float32 chains"),
    ),
    declare(
        "ARG_MIN", "ArgMinOptions", ("input", "dim"),
        Quantizable(int16=False),
        KernelParams(("dim",)),
        VersionByType(int8=2),
        NotInRandomGraphs("integer result (indices): the graphs are float32 chains"),
    ),
    declare(
        "L2_NORMALIZATION", "L2NormOptions", ("input",),
        Quantizable(int16=False),
        FixedResultScale(int8=(1/128, 0)),
        ShapeRule(ELEMENTWISE),
        VersionByType(int8=2),
    ),
    declare(
        "DENSIFY", "DensifyOptions", ("input",),
        ShapeRule(VALUE_DEPENDENT),
        VersionByType(),
        NotInRandomGraphs("reads a sparse constant (tfl.sparse_const), not an activation"),
    ),
    declare(
        "CUMSUM", "CumsumOptions", ("input", "axis"),
        KernelParams(("axis",)),
        ShapeRule(ELEMENTWISE),
        VersionByType(),
    ),
    declare("ELU", None, ("input",), Quantizable(int16=False), ShapeRule(ELEMENTWISE), VersionByType()),
    declare(
        "REVERSE_V2", "ReverseV2Options", ("input", "axis"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("axis",)),
        ShapeRule(ELEMENTWISE),
    ),
    declare(
        "TOPK_V2", "TopKV2Options", ("input", "k"),
        Quantizable(),
        SameScale((0,)),
        KernelParams(("k",)),
        ShapeRule(VALUE_DEPENDENT),
        NotInRandomGraphs("several results: the graphs chain single-result ops"),
    ),
    declare(
        "DYNAMIC_UPDATE_SLICE", "DynamicUpdateSliceOptions", ("operand", "update", "start_indices"),
        Quantizable(),
        SameScale((0, 1)),
    ),
    declare(
        "ONE_HOT", "OneHotOptions", ("indices", "depth", "on_value", "off_value"),
        Quantizable(int16=False),
        SameScale((2, 3)),
        KernelParams(("depth",)),
        ShapeRule(VALUE_DEPENDENT),
        VersionByType(),
        NotInRandomGraphs("its data input is integer indices: the graphs are float32 chains"),
    ),
    declare(
        "UNIDIRECTIONAL_SEQUENCE_LSTM", "UnidirectionalSequenceLSTMOptions", LSTM_OPERANDS,
        OptionalInputs(trailing=4, anywhere=True),  # the layer norm coefficients; peepholes, projection
        DynamicRangeWeights(weights=tuple((i, None) for i in (*range(1, 12), 16)), asymmetric_inputs=True),
        KernelParams((*LSTM_WEIGHTS, *LSTM_NORMS)),
        Stateful(side_values=("cell_state",)),
        ShapeRule(VALUE_DEPENDENT),
        NotInRandomGraphs("a sequence op with 24 inputs and variable state; tests/test_lstm.py builds LSTMs"),
    ),
)  # fmt: skip


def _camel(builtin: str) -> str:
    return "".join(p.capitalize() for p in builtin.split("_")) + "Op"


def _builtin(builtin: str, table: str | None, operands: tuple[str, ...], traits: tuple[OpTrait, ...]) -> type[TflOp]:
    fields = {f: (t, d) for f, _slot, t, d in schema.OPTION_TABLES.get(table, ())} if table else {}
    body: dict[str, Any] = {
        "name": f"tfl.{builtin.lower()}",
        "BUILTIN": builtin,
        "CODE": schema.BUILTIN_CODES[builtin],
        "OPTIONS": table,
        "OPERANDS": operands,
        "FIELDS": fields,
        "VARIADIC": any(n.startswith("*") for n in operands),
        "__module__": __name__,
        "__annotations__": {k: ClassVar for k in ("BUILTIN", "CODE", "OPTIONS", "OPERANDS", "FIELDS", "VARIADIC")},
        "__doc__": f"TFLite builtin {builtin} (inputs: {', '.join(operands)}; options: {table or 'none'}).",
        "traits": traits_def(*traits),
    }
    for f in fields:
        body[f] = opt_prop_def(Attribute)
    cls = type(_camel(builtin), (TflOp,), body)
    cls = irdl_op_definition(cls)
    _fast_io(cls)
    _fast_verify(cls)
    return cls


def _fast_verify(cls: type[TflOp]) -> None:
    """xDSL's generic verification of a builtin op checks what its definition declares: one
    variadic operand group and one variadic result group of any types (which no op can fail),
    options as optional properties of any attribute, no regions, successors or attributes, then
    the traits. Where the op has no region, no successor and only declared options, that leaves
    the traits: verify those and TflOp.verify_; otherwise run xDSL's full verification, which
    raises its usual error. The same ops fail, with the same messages."""
    op_def = cls.get_irdl_definition()
    trivially_valid = (
        [(n, d.constr) for n, d in op_def.operands] == [("inputs", RangeOf(AnyAttr()))]
        and [(n, d.constr) for n, d in op_def.results] == [("outputs", RangeOf(AnyAttr()))]
        and not op_def.regions and not op_def.successors and not op_def.attributes and not op_def.options
        and all(isinstance(d, OptPropertyDef) and d.constr == AnyAttr() for d in op_def.properties.values())
    )
    assert trivially_valid, f"{cls.__name__}: its definition changed, update _fast_verify"
    fields = frozenset(op_def.properties)
    traits = tuple(t for t in op_def.traits if type(t).verify is not OpTrait.verify)  # (the others check nothing)
    custom = TflOp.verify_

    def verify_(self: TflOp) -> None:
        if self.regions or self._successors or not fields.issuperset(self.properties):
            op_def.verify(self)  # raises xDSL's error for it
        for trait in traits:
            trait.verify(self)
        custom(self)

    cls.verify_ = verify_  # type: ignore[method-assign]


def _fast_io(cls: type[IRDLOperation]) -> None:
    """`inputs` / `outputs` are the op's only variadic operand and result groups, so they are
    all its operands and all its results: read them straight from the operation (the same
    SSAValues tuples xDSL's variadic accessors slice out of them, ~10x faster). The IRDL
    definition, and so verification, is unchanged."""
    op_def = cls.get_irdl_definition()
    assert [n for n, _ in op_def.operands] == ["inputs"] and [n for n, _ in op_def.results] == ["outputs"], cls
    cls.inputs = property(lambda self: self._operands, doc="All the op's operands (TFLite inputs).")  # type: ignore[assignment]
    cls.outputs = property(lambda self: self.results, doc="All the op's results (TFLite outputs).")  # type: ignore[assignment]


BUILTIN_CLASSES: dict[str, type[TflOp]] = {d.builtin: _builtin(*d) for d in BUILTIN_OPS}
BY_CODE: dict[int, type[TflOp]] = {cls.CODE: cls for cls in BUILTIN_CLASSES.values()}
globals().update({cls.__name__: cls for cls in BUILTIN_CLASSES.values()})

# Names for the classes a pass author reaches for most (others: BUILTIN_CLASSES["X"]).
AddOp = BUILTIN_CLASSES["ADD"]
SubOp = BUILTIN_CLASSES["SUB"]
MulOp = BUILTIN_CLASSES["MUL"]
Conv2DOp = BUILTIN_CLASSES["CONV_2D"]
DepthwiseConv2DOp = BUILTIN_CLASSES["DEPTHWISE_CONV_2D"]
TransposeConvOp = BUILTIN_CLASSES["TRANSPOSE_CONV"]
FullyConnectedOp = BUILTIN_CLASSES["FULLY_CONNECTED"]
BatchMatmulOp = BUILTIN_CLASSES["BATCH_MATMUL"]
ConcatenationOp = BUILTIN_CLASSES["CONCATENATION"]
SoftmaxOp = BUILTIN_CLASSES["SOFTMAX"]
LogisticOp = BUILTIN_CLASSES["LOGISTIC"]
TanhOp = BUILTIN_CLASSES["TANH"]
ReshapeOp = BUILTIN_CLASSES["RESHAPE"]
QuantizeOp = BUILTIN_CLASSES["QUANTIZE"]
DequantizeOp = BUILTIN_CLASSES["DEQUANTIZE"]
GatherOp = BUILTIN_CLASSES["GATHER"]
EmbeddingLookupOp = BUILTIN_CLASSES["EMBEDDING_LOOKUP"]
UnidirectionalSequenceLstmOp = BUILTIN_CLASSES["UNIDIRECTIONAL_SEQUENCE_LSTM"]


# ----------------------------------------------------------------------------------------
# Constants, absent inputs, variables and opaque ops
# ----------------------------------------------------------------------------------------


@irdl_attr_definition
class StringType(ParametrizedAttribute, TypeAttribute):
    """TFLite STRING elements: `tensor<3x!tfl.string>`. A string constant's payload is the
    raw TFLite string buffer (count, offsets, bytes) held as a 1-D ui8 dense attribute."""

    name = "tfl.string"


@irdl_attr_definition
class ResourceType(ParametrizedAttribute, TypeAttribute):
    """TFLite RESOURCE elements (handles of VAR_HANDLE / hash tables)."""

    name = "tfl.resource"


@irdl_attr_definition
class VariantType(ParametrizedAttribute, TypeAttribute):
    """TFLite VARIANT elements (tensor lists)."""

    name = "tfl.variant"


# Element types with no numeric payload: constants of them hold raw TFLite buffer bytes.
OPAQUE_ELEMENT_TYPES = (StringType, ResourceType, VariantType)


@irdl_op_definition
class ConstOp(IRDLOperation):
    """A constant tensor. `value` holds raw bytes; for a quantized result it holds the
    integer storage values and the result type carries the quantization."""

    name = "tfl.const"
    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure(), ConstantLike())

    def __init__(self, value: DenseIntOrFPElementsAttr, result_type: Attribute | None = None, name: str | None = None):
        attrs = {"names": string_array([name])} if name is not None else {}
        if _plain_class(type(self)):  # (xDSL's generic argument building, skipped)
            init_op(self, (), [result_type or value.type], {"value": value}, attrs)
        else:
            super().__init__(properties={"value": value}, result_types=[result_type or value.type], attributes=attrs)

    def numpy(self) -> np.ndarray:
        """The payload as a read-only numpy view (integer storage for quantized constants)."""
        from tflquant.ir import dense_to_numpy

        return dense_to_numpy(self.value)

    def verify_(self) -> None:
        _check_const_payload(self)


def _check_const_payload(self: ConstOp) -> None:
    value = self.properties["value"]  # (self.value and self.result, without xDSL's accessors)
    vt, rt = value.type, self.results[0].type
    if vt is rt and type(rt.element_type) in DENSE_ELEMENTS:  # (the reader's float constants: one type object)
        size = math.prod(vt.get_shape()) * _itemsize(vt.element_type)
        if len(value.data.data) != size:
            raise VerifyException(f"tfl.const payload has {len(value.data.data)} bytes, expected {size}")
        return
    assert isinstance(rt, TensorType)
    elem = rt.element_type
    vshape = vt.get_shape()
    if isinstance(elem, OPAQUE_ELEMENT_TYPES):
        if vt.element_type != IntegerType(8, Signedness.UNSIGNED) or len(vshape) != 1:
            raise VerifyException(f"tfl.const of {elem} holds the raw TFLite buffer as a 1-D ui8 payload")
        return
    rshape = rt.get_shape()
    if tuple(vshape) != tuple(rshape):
        raise VerifyException(f"tfl.const payload shape {tuple(vshape)} differs from result shape {tuple(rshape)}")
    got = vt.element_type
    if isinstance(elem, (UniformQuantizedType, BlockwiseQuantizedType)):
        q = quantized_element(rt)
        blocks = blockwise_element(rt)
        expected = q.storage_type if q is not None else (blocks.storage_type if blocks is not None else elem)
        if blocks is not None and (why := blocks.check_shape(tuple(rshape))):
            raise VerifyException(f"tfl.const of {rt}: {why}")
        if (q is not None or blocks is not None) and isinstance(got, IntegerType) and isinstance(expected, IntegerType):
            # i4 storage is held one value per byte (i8 payload); the writer packs it
            if got.width.data != max(expected.width.data, 8):
                raise VerifyException(f"tfl.const payload {got} does not match quantized storage {expected}")
        elif got != expected:
            raise VerifyException(f"tfl.const payload element {got} does not match result element {expected}")
    elif got != elem:  # (quantized_element / blockwise_element of any other element: None)
        raise VerifyException(f"tfl.const payload element {got} does not match result element {elem}")
    size = math.prod(vshape) * _itemsize(got)
    if len(value.data.data) != size:
        raise VerifyException(f"tfl.const payload has {len(value.data.data)} bytes, expected {size}")


# element classes whose payload is the result's element type itself (no quantized storage, no raw buffer)
_ITEMSIZES: dict[Attribute, int] = {}


def _itemsize(elem: Attribute) -> int:
    """numpy_dtype_of_element(elem).itemsize, once per element type."""
    n = _ITEMSIZES.get(elem)
    if n is None:
        from tflquant.ir import numpy_dtype_of_element

        n = numpy_dtype_of_element(elem).itemsize
        _ITEMSIZES[elem] = n
    return n


def _fast_const_verify(cls: type[ConstOp]) -> None:
    """xDSL's generic verification of a constant checks what ConstOp declares: no operands,
    one TensorType result, a DenseIntOrFPElementsAttr `value` and no other property, no
    regions, successors or declared attributes, and traits that check nothing. A constant of
    exactly that form cannot fail it: check its payload only; any other form takes the full
    verification, which raises xDSL's usual error (the same constants fail, with the same
    messages; most of a model's ops are constants)."""
    op_def = cls.get_irdl_definition()
    assert (
        not op_def.operands and [n for n, _ in op_def.results] == ["result"] and list(op_def.properties) == ["value"]
        and not op_def.regions and not op_def.successors and not op_def.attributes and not op_def.options
        and all(type(t).verify is OpTrait.verify for t in op_def.traits)
    ), "ConstOp's definition changed: update _fast_const_verify"

    def verify_(self: ConstOp) -> None:
        results = self.results
        if (self._operands or len(results) != 1 or not isinstance(results[0].type, TensorType) or self.regions
                or self._successors or len(self.properties) != 1 or not isinstance(self.properties.get("value"), DenseIntOrFPElementsAttr)):
            op_def.verify(self)  # raises xDSL's error for it
        _check_const_payload(self)

    cls.verify_ = verify_  # type: ignore[method-assign]


_fast_const_verify(ConstOp)


@irdl_op_definition
class SparseConstOp(IRDLOperation):
    """A sparse constant: `value` is the compressed payload (1-D), `sparsity` the TFLite
    SparsityParameters, and the result the dense tensor type it stands for."""

    name = "tfl.sparse_const"
    value = prop_def(DenseIntOrFPElementsAttr)
    sparsity = prop_def(DictionaryAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure(), ConstantLike())


@irdl_op_definition
class NoValueOp(IRDLOperation):
    """An absent optional input (TFLite index -1)."""

    name = "tfl.no_value"
    result = result_def(NoneType)
    traits = traits_def(Pure(), ConstantLike())
    assembly_format = "attr-dict"

    def __init__(self):
        super().__init__(result_types=[NoneType()])


@irdl_op_definition
class VariableOp(IRDLOperation):
    """A TFLite variable tensor (is_variable), with its initial value when it has one."""

    name = "tfl.variable"
    value = opt_prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)

    def initial_value(self) -> np.ndarray:
        """Its value before the first invoke: `value`, else what LiteRT resets a variable to
        (zeros; an int8 quantized one its zero point, the real value 0)."""
        from tflquant.ir import dense_to_numpy, numpy_dtype_of_element

        if self.value is not None:
            return dense_to_numpy(self.value)
        t = self.result.type
        assert isinstance(t, TensorType)
        q = quantized_element(t)
        fill = q.zero_point if q is not None and not q.per_axis and q.numpy_dtype() == np.int8 else 0
        return np.full([max(int(d), 1) for d in t.get_shape()], fill, numpy_dtype_of_element(t.element_type))


@irdl_op_definition
class OpaqueOp(IRDLOperation):
    """A builtin or custom op tflquant does not model; it round-trips untouched and stays float.

    `code` is the BuiltinOperator value; `custom_code` names a custom op; `options_type`
    is the BuiltinOptions (or BuiltinOptions2 when `options2` is set) union index and
    `options` its decoded fields; `custom_options` the raw custom bytes.
    """

    name = "tfl.opaque"
    inputs = var_operand_def()
    outputs = var_result_def()
    code = prop_def(IntegerAttr)
    version = prop_def(IntegerAttr)
    custom_code = opt_prop_def(StringAttr)
    options_type = opt_prop_def(IntegerAttr)
    options2 = opt_prop_def(BoolAttr)
    options = opt_prop_def(DictionaryAttr)
    custom_options = opt_prop_def(BytesAttr | StringAttr)  # text IR parses valid UTF-8 bytes as a string
    extra = opt_prop_def(DictionaryAttr)

    @property
    def op_name(self) -> str:
        if (cc := self.custom_code) is not None:
            return cc.data
        names = {v: k for k, v in schema.BUILTIN_CODES.items()}
        return names.get(self.code.value.data, f"BUILTIN_{self.code.value.data}")


_fast_io(OpaqueOp)


def op_type(op: Operation) -> str:
    """The TFLite op type users know an op by: the builtin name (CONV_2D), an opaque op's
    builtin or custom name, else the IR op name (quant.qcast, func.return, ...)."""
    if isinstance(op, TflOp):
        return op.BUILTIN
    if isinstance(op, OpaqueOp):
        return op.op_name
    return op.name


# control-flow builtins -> the options naming the subgraphs they run
CONTROL_FLOW_SUBGRAPHS = {"WHILE": ("cond_subgraph_index", "body_subgraph_index"), "IF": ("then_subgraph_index", "else_subgraph_index")}


def subgraph_index(op: Operation, option: str) -> int | None:
    """The subgraph (function) index a WHILE / IF option names, or None when it is absent."""
    opts = getattr(op, "options", None)
    v = opts.data.get(option) if isinstance(opts, DictionaryAttr) else None
    return int(v.value.data) if isinstance(v, IntegerAttr) else None


def is_float_tensor(t: Attribute) -> bool:
    """A tensor of a float element type (not integer, bool or quantized)."""
    if type(t) is not TensorType and not isinstance(t, TensorType):
        return False
    return not _not_float_element(t.element_type)


_NOT_FLOAT_ELEMENTS = (IntegerType, UniformQuantizedType, *OPAQUE_ELEMENT_TYPES)
_not_float_element = class_test(_NOT_FLOAT_ELEMENTS)


TFL = Dialect(
    "tfl",
    [*BUILTIN_CLASSES.values(), ConstOp, SparseConstOp, NoValueOp, VariableOp, OpaqueOp],
    [StringType, ResourceType, VariantType],
)
