"""The `quant` dialect: uniform quantized types, calibration statistics, and Q/DQ ops.

Syntax follows MLIR's quant dialect:

    !quant.uniform<i8:f32, 0.0123:-5>                 per tensor
    !quant.uniform<i8<-127:127>:f32:3, {0.1, 0.2}>    per axis (dimension 3), narrow range
    #quant.stats<-1.5, 6.0>                           calibrated min/max of a tensor
    #quant.stats<3, [-1.0, -2.0], [1.0, 2.0]>         per axis (dimension 3)
    #quant.moments<mean = [0.5, 1.25], mean_sq = [0.75, 2.5]>
                                                      per-channel input moments of a layer

Where calibration facts live after `annotate-calibration` (the IR carries every statistic a
pass reads, so a dumped module replays the rest of the pipeline on its own):
- a float activation's range: a `quant.stats` op after the value (`#quant.stats`);
- a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED input's per-channel mean and mean of
  squares (what correct-bias and clip-weights read): the layer's attribute
  `input_moments = #quant.moments<...>` (INPUT_MOMENTS), on the layer because
  insert-fake-quant replaces the input's `quant.stats` op with a qcast/dcast pair;
- an LSTM's cell state range: its attribute `cell_stats = #quant.stats<min, max>`.
Statistics keyed '@function/name' (tensor names several functions share) are resolved to
the value of that function when they are attached.

Ops:
    %s = quant.stats %x, <-1.5, 6.0> : tensor<..>   marks a float value with its range
    %q = quant.qcast %x : tensor<..xf32> -> tensor<..x!quant.uniform<..>>
    %f = quant.dcast %q : tensor<..x!quant.uniform<..>> -> tensor<..xf32>
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, get_args

import numpy as np
from xdsl.dialects.builtin import (
    AnyFloat,
    ArrayAttr,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    FloatData,
    IntAttr,
    IntegerType,
    Signedness,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    VarConstraint,
    base,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from tflquant.dialects._unchecked import _NO_ENCODING
from tflquant.dialects._unchecked import built as _built
from tflquant.dialects._unchecked import dense

STORAGE_BITS = (2, 4, 8, 16, 32, 64)


def f32(x: float) -> float:
    """The float32 value nearest to x, as a Python float (scales are float32 in TFLite)."""
    return float(np.float32(x))


def _fmt(x: float) -> str:
    """Shortest text that reads back as the same float32 value."""
    s = str(np.float32(x))
    if s in ("inf", "-inf", "nan"):
        raise ValueError(f"non-finite value {s} cannot be printed in a quant attribute")
    if "." not in s and "e" not in s:
        s += ".0"
    return s


def storage_range(storage: IntegerType) -> tuple[int, int]:
    bits = storage.width.data
    if storage.signedness.data == Signedness.UNSIGNED:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _dense(values: np.ndarray, element: Attribute) -> DenseIntOrFPElementsAttr:
    """A rank-1 dense attribute over `values`' little-endian bytes (no Python number per value)."""
    return DenseIntOrFPElementsAttr(TensorType(element, [values.size]), BytesAttr(values.tobytes()))


_F32 = Float32Type()
_LE_F32 = np.dtype("<f4")
_ANY_FLOAT = get_args(AnyFloat)  # the classes the expressed type may have


def _dense_rank1(values: np.ndarray, element: Attribute) -> DenseIntOrFPElementsAttr:
    """_dense for a numeric element, unchecked (equal to the checked attribute)."""
    return dense(element, (int(values.size),), _built(BytesAttr, data=values.tobytes()))


@irdl_attr_definition
class UniformQuantizedType(ParametrizedAttribute, TypeAttribute):
    """A uniform (affine) quantized element type: real = (q - zero_point) * scale.

    `axis` is -1 for per-tensor quantization, otherwise the quantized dimension, with one
    (scale, zero point) pair per slice along it. `storage_min`/`storage_max` narrow the
    storage range (weights use [-127, 127]). Scales (float32) and zero points (int64) are
    held as dense byte payloads, never one Python number each: a blockwise weight read through
    DEQUANTIZE carries one scale per block (millions on a large language model).
    """

    name = "quant.uniform"

    storage_type: IntegerType
    expressed_type: AnyFloat
    axis: IntAttr
    scales: DenseIntOrFPElementsAttr
    zero_points: DenseIntOrFPElementsAttr
    storage_min: IntAttr
    storage_max: IntAttr

    @staticmethod
    def make(
        storage: IntegerType,
        scales: Sequence[float] | np.ndarray | float,
        zero_points: Sequence[int] | np.ndarray | int = 0,
        axis: int = -1,
        narrow: bool = False,
        expressed: AnyFloat | None = None,
    ) -> UniformQuantizedType:
        """Build a type; scales are rounded to float32 as TFLite stores them."""
        if type(scales) is np.ndarray and scales.dtype == _LE_F32:  # already float32 (the passes' scales): as they are
            s = scales.reshape(-1)
        else:  # (through float64: one rounding to float32 of any number)
            s = np.asarray(scales, np.float64).astype("<f4").reshape(-1)
        if type(zero_points) is int and zero_points == 0:  # symmetric (weights): no array to convert
            z = np.zeros(s.size, "<i8")
        else:
            z = np.asarray(zero_points).astype("<i8").reshape(-1)
            if z.size == 1 and s.size != 1:
                z = np.repeat(z, s.size)
        lo, hi = storage_range(storage)
        if narrow:
            lo += 1
        if type(storage) is not IntegerType or not (expressed is None or isinstance(expressed, _ANY_FLOAT)) or type(axis) is not int:
            return UniformQuantizedType(
                storage,
                expressed if expressed is not None else Float32Type(),
                IntAttr(axis),
                _dense(s, Float32Type()),
                _dense(z, i64),
                IntAttr(lo),
                IntAttr(hi),
            )
        # every parameter is of its declared class: skip xDSL's generic checks of that (most of
        # the cost of a type), keep this type's own verify (the same errors as the constructor)
        t = _built(
            UniformQuantizedType,
            storage_type=storage,
            expressed_type=expressed if expressed is not None else _F32,
            axis=_built(IntAttr, data=axis),
            scales=_dense_rank1(s, _F32),
            zero_points=_dense_rank1(z, i64),
            storage_min=_built(IntAttr, data=lo),
            storage_max=_built(IntAttr, data=hi),
        )
        t.verify()
        return t

    # typed accessors -------------------------------------------------------------
    @property
    def per_axis(self) -> bool:
        return self.axis.data >= 0

    @property
    def scale(self) -> float:
        """The scale of a per-tensor type."""
        assert not self.per_axis, "per-axis type has no single scale"
        return float(np.frombuffer(self.scales.data.data, "<f4", 1)[0])

    @property
    def zero_point(self) -> int:
        assert not self.per_axis, "per-axis type has no single zero point"
        return int(np.frombuffer(self.zero_points.data.data, "<i8", 1)[0])

    @property
    def num_scales(self) -> int:
        return len(self.scales.data.data) // 4

    def scale_array(self) -> np.ndarray:
        return np.frombuffer(self.scales.data.data, "<f4").astype(np.float64)

    def zero_point_array(self) -> np.ndarray:
        return np.frombuffer(self.zero_points.data.data, "<i8").astype(np.int64)

    @property
    def bits(self) -> int:
        return self.storage_type.width.data

    @property
    def is_signed(self) -> bool:
        return self.storage_type.signedness.data != Signedness.UNSIGNED

    @property
    def qmin(self) -> int:
        return self.storage_min.data

    @property
    def qmax(self) -> int:
        return self.storage_max.data

    def real_range(self) -> tuple[float, float]:
        """The real values a per-tensor type can represent: [(qmin - zp) s, (qmax - zp) s]."""
        return (self.qmin - self.zero_point) * self.scale, (self.qmax - self.zero_point) * self.scale

    def numpy_dtype(self) -> np.dtype:
        """The dtype of the storage values in the IR: i4 and i2 are held one value per int8
        byte (the flatbuffer writer packs two or four per byte)."""
        return np.dtype(f"{'i' if self.is_signed else 'u'}{max(self.bits, 8) // 8}")

    def verify(self) -> None:
        if self.storage_type.width.data not in STORAGE_BITS:
            raise VerifyException(f"quant storage type must be 2, 4, 8, 16, 32 or 64 bits, got {self.storage_type}")
        if self.storage_type.signedness.data == Signedness.SIGNED:
            raise VerifyException("quant storage type must be signless (i8) or unsigned (ui8)")
        if not (isinstance(self.scales.type.element_type, Float32Type) and self.zero_points.type.element_type == i64):
            raise VerifyException("quant type scales must be a dense f32 tensor and zero points a dense i64 tensor")
        s, z = np.frombuffer(self.scales.data.data, "<f4"), np.frombuffer(self.zero_points.data.data, "<i8")
        n = s.size
        if n == 0 or n != z.size:
            raise VerifyException(f"quant type needs as many zero points as scales ({n} scales, {z.size} zero points)")
        if self.axis.data < 0 and n != 1:
            raise VerifyException(f"per-tensor quant type must have exactly one scale, got {n}")
        lo, hi = storage_range(self.storage_type)
        if not lo <= self.storage_min.data <= self.storage_max.data <= hi:
            raise VerifyException(f"storage range [{self.storage_min.data}, {self.storage_max.data}] does not fit {self.storage_type}")
        # positive finite float32 values are the bit patterns 0x00000001..0x7F7FFFFF: minus one
        # (0 wraps around), all below 0x7F7FFFFF (one subtraction and one integer reduction;
        # negative values, infinities and NaNs all fail); the first bad one named
        if (np.frombuffer(self.scales.data.data, "<u4") - np.uint32(1)).max() >= 0x7F7FFFFF:
            s = self.scale_array()
            bad = ~(np.isfinite(s) & (s > 0))
            raise VerifyException(f"quant scale must be positive and finite, got {s[bad][0]}")
        if z.any() and (z.min() < lo or z.max() > hi):  # (zero is in every storage range)
            z = self.zero_point_array()
            out = (z < lo) | (z > hi)
            raise VerifyException(f"zero point {z[out][0]} out of storage range [{lo}, {hi}]")

    # syntax ---------------------------------------------------------------------
    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        def scale_zp() -> tuple[float, int]:
            s = parser.parse_float()
            z = parser.parse_integer() if parser.parse_optional_punctuation(":") is not None else 0
            return f32(s), z

        with parser.in_angle_brackets():
            storage = parser.parse_type()
            if not isinstance(storage, IntegerType):
                parser.raise_error("quant storage type must be an integer type")
            lo, hi = storage_range(storage)
            if parser.parse_optional_punctuation("<") is not None:
                lo = parser.parse_integer()
                parser.parse_punctuation(":")
                hi = parser.parse_integer()
                parser.parse_punctuation(">")
            parser.parse_punctuation(":")
            expressed = parser.parse_type()
            axis = -1
            if parser.parse_optional_punctuation(":") is not None:
                axis = parser.parse_integer(allow_negative=False)
            parser.parse_punctuation(",")
            if axis >= 0:
                pairs = parser.parse_comma_separated_list(parser.Delimiter.BRACES, scale_zp)
            else:
                pairs = [scale_zp()]
        return (
            storage,
            expressed,
            IntAttr(axis),
            _dense(np.array([s for s, _ in pairs], "<f4"), Float32Type()),
            _dense(np.array([z for _, z in pairs], "<i8"), i64),
            IntAttr(lo),
            IntAttr(hi),
        )

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<")
        printer.print_attribute(self.storage_type)
        if (self.qmin, self.qmax) != storage_range(self.storage_type):
            printer.print_string(f"<{self.qmin}:{self.qmax}>")
        printer.print_string(":")
        printer.print_attribute(self.expressed_type)
        pairs = [_fmt(s) + (f":{z}" if z != 0 else "") for s, z in zip(self.scale_array().tolist(), self.zero_point_array().tolist())]
        if self.per_axis:
            printer.print_string(f":{self.axis.data}, {{{', '.join(pairs)}}}>")
        else:
            printer.print_string(f", {pairs[0]}>")


@irdl_attr_definition
class BlockwiseQuantizedType(ParametrizedAttribute, TypeAttribute):
    """Symmetric blockwise quantization along the last dimension (LiteRT's
    BlockwiseQuantization): real[..., j] = q[..., j] * scales[..., j // block_size], zero
    points 0. `scales` is an fp16 tensor of shape (*shape[:-1], shape[-1] // block_size); the
    writer stores it as its own tensor, which the weight's quantization details name.

        !quant.blockwise<i4:f32, 32, dense<...> : tensor<64x4xf16>>
    """

    name = "quant.blockwise"

    storage_type: IntegerType
    expressed_type: AnyFloat
    block_size: IntAttr
    scales: DenseIntOrFPElementsAttr

    @staticmethod
    def make(storage: IntegerType, block_size: int, scales: np.ndarray) -> BlockwiseQuantizedType:
        """Build a type; scales are rounded to fp16 as LiteRT reads them."""
        from tflquant.ir import dense_from_numpy

        s = dense_from_numpy(np.asarray(scales, np.float16))
        if type(storage) is not IntegerType or type(block_size) is not int or type(s.type) is not TensorType:
            return BlockwiseQuantizedType(storage, Float32Type(), IntAttr(block_size), s)
        # every parameter is of its declared class: skip xDSL's generic checks (~40 us of a
        # type's ~55), keep this type's own verify (UniformQuantizedType.make likewise)
        t = _built(BlockwiseQuantizedType, storage_type=storage, expressed_type=_F32, block_size=_built(IntAttr, data=block_size), scales=s)
        t.verify()
        return t

    @property
    def bits(self) -> int:
        return self.storage_type.width.data

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) + 1

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def numpy_dtype(self) -> np.dtype:
        return np.dtype("i1")

    def scale_array(self) -> np.ndarray:
        """The block scales as float32, shape (*shape[:-1], number of blocks)."""
        from tflquant.ir import dense_to_numpy

        return dense_to_numpy(self.scales).astype(np.float32)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Storage values (shape (*lead, *tensor shape)) to float32, block by block."""
        s = self.scale_array()
        bs = self.block_size.data
        x = q.astype(np.float32).reshape(*q.shape[:-1], q.shape[-1] // bs, bs)
        lead = x.ndim - 1 - s.ndim  # a leading sample axis, if any
        return (x * s.reshape((1,) * lead + s.shape + (1,))).reshape(q.shape)

    def verify(self) -> None:
        if self.storage_type.width.data not in (4, 8) or self.storage_type.signedness.data != Signedness.SIGNLESS:
            raise VerifyException(f"blockwise storage must be i4 or i8, got {self.storage_type}")
        if self.block_size.data <= 0:
            raise VerifyException(f"block size must be positive, got {self.block_size.data}")
        if not isinstance(self.scales.type.element_type, Float16Type):
            raise VerifyException("blockwise scales must be an f16 tensor")
        # positive finite fp16 values are the bit patterns 0x0001..0x7BFF (two integer
        # reductions on the stored bytes; numpy's fp16 arithmetic is slow); anything else,
        # a payload of another size included, takes the float checks
        data = self.scales.data.data
        u = np.frombuffer(data, "<u2") if len(data) == 2 * math.prod(self.scales.type.get_shape()) else None
        if u is None or (u.size and not (u.min() >= 1 and u.max() <= 0x7BFF)):
            s = self.scale_array()
            if not (np.all(np.isfinite(s)) and np.all(s > 0)):
                raise VerifyException("blockwise scales must be positive and finite (fp16 normals)")

    def check_shape(self, shape: Sequence[int]) -> str | None:
        """Why a tensor of `shape` cannot carry this type, or None."""
        bs = self.block_size.data
        want = (*shape[:-1], shape[-1] // bs) if shape else None
        if not shape or shape[-1] % bs:
            return f"last dimension of shape {list(shape)} is not a multiple of block size {bs}"
        if tuple(self.scales.type.get_shape()) != want:
            return f"block scales have shape {list(self.scales.type.get_shape())}, expected {list(want)}"
        return None

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            storage = parser.parse_type()
            parser.parse_punctuation(":")
            expressed = parser.parse_type()
            parser.parse_punctuation(",")
            bs = parser.parse_integer(allow_negative=False)
            parser.parse_punctuation(",")
            scales = parser.parse_attribute()
        if not isinstance(scales, DenseIntOrFPElementsAttr):
            parser.raise_error("blockwise scales must be a dense f16 tensor attribute")
        return (storage, expressed, IntAttr(bs), scales)

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<")
        printer.print_attribute(self.storage_type)
        printer.print_string(":")
        printer.print_attribute(self.expressed_type)
        printer.print_string(f", {self.block_size.data}, ")
        printer.print_attribute(self.scales)
        printer.print_string(">")


def blockwise_element(t: Attribute) -> BlockwiseQuantizedType | None:
    """The blockwise quantized element type of a tensor type, or None."""
    if isinstance(t, TensorType) and isinstance(t.element_type, BlockwiseQuantizedType):
        return t.element_type
    return None


# Discardable attributes that carry calibration facts on an op (see the module docstring).
INPUT_MOMENTS = "input_moments"  # on a weighted layer: #quant.moments of its input


def _fmt64(x: float) -> str:
    """Text that reads back as the same float64 value (moments keep full precision)."""
    s = repr(float(x))
    if s in ("inf", "-inf", "nan"):
        raise ValueError(f"non-finite value {s} cannot be printed in a quant attribute")
    mantissa, e, exponent = s.partition("e")
    if "." not in mantissa:  # MLIR's float literals need the dot: 1e-07 -> 1.0e-07
        mantissa += ".0"
    return mantissa + e + exponent


@irdl_attr_definition
class CalibrationStatsAttr(ParametrizedAttribute):
    """Observed min/max of a float tensor; per axis when `axis` >= 0."""

    name = "quant.stats"

    axis: IntAttr
    mins: ArrayAttr[FloatData]
    maxs: ArrayAttr[FloatData]

    @staticmethod
    def make(mins: Sequence[float] | float, maxs: Sequence[float] | float, axis: int = -1) -> CalibrationStatsAttr:
        if axis < 0:
            mins, maxs = [mins], [maxs]  # type: ignore[list-item]
        return CalibrationStatsAttr(
            IntAttr(axis),
            ArrayAttr(FloatData(f32(v)) for v in mins),  # type: ignore[union-attr]
            ArrayAttr(FloatData(f32(v)) for v in maxs),  # type: ignore[union-attr]
        )

    @property
    def min(self) -> float:
        return min(v.data for v in self.mins.data)

    @property
    def max(self) -> float:
        return max(v.data for v in self.maxs.data)

    def min_array(self) -> np.ndarray:
        return np.array([v.data for v in self.mins.data], dtype=np.float64)

    def max_array(self) -> np.ndarray:
        return np.array([v.data for v in self.maxs.data], dtype=np.float64)

    def verify(self) -> None:
        n = len(self.mins.data)
        if n == 0 or n != len(self.maxs.data):
            raise VerifyException("quant.stats needs as many max values as min values")
        if self.axis.data < 0 and n != 1:
            raise VerifyException("per-tensor quant.stats has exactly one min and one max")
        for lo, hi in zip(self.mins.data, self.maxs.data):
            if not (np.isfinite(lo.data) and np.isfinite(hi.data)):
                raise VerifyException(f"quant.stats range must be finite, got [{lo.data}, {hi.data}]")
            if lo.data > hi.data:
                raise VerifyException(f"quant.stats min {lo.data} is greater than max {hi.data}")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        def rest_of_list() -> list[float]:  # after '[' has been read
            vals = [float(parser.parse_number())]
            while parser.parse_optional_punctuation(",") is not None:
                vals.append(float(parser.parse_number()))
            parser.parse_punctuation("]")
            return vals

        with parser.in_angle_brackets():
            first = parser.parse_number()
            parser.parse_punctuation(",")
            if parser.parse_optional_punctuation("[") is not None:
                axis = int(first)
                mins = rest_of_list()
                parser.parse_punctuation(",")
                parser.parse_punctuation("[")
                maxs = rest_of_list()
            else:
                axis = -1
                mins = [float(first)]
                maxs = [float(parser.parse_number())]
        return (
            IntAttr(axis),
            ArrayAttr(FloatData(f32(v)) for v in mins),
            ArrayAttr(FloatData(f32(v)) for v in maxs),
        )

    def print_parameters(self, printer: Printer) -> None:
        if self.axis.data < 0:
            printer.print_string(f"<{_fmt(self.mins.data[0].data)}, {_fmt(self.maxs.data[0].data)}>")
        else:
            lo = ", ".join(_fmt(v.data) for v in self.mins.data)
            hi = ", ".join(_fmt(v.data) for v in self.maxs.data)
            printer.print_string(f"<{self.axis.data}, [{lo}], [{hi}]>")


@irdl_attr_definition
class ChannelMomentsAttr(ParametrizedAttribute):
    """Per-channel moments of a float tensor over the calibration data: the mean, and
    optionally the mean of squares, of each index of the last axis (over every other axis).
    Values keep float64 precision (printed so that they read back exactly)."""

    name = "quant.moments"

    means: ArrayAttr[FloatData]
    mean_squares: ArrayAttr[FloatData]  # empty when not recorded

    @staticmethod
    def make(mean: Sequence[float], mean_sq: Sequence[float] | None = None) -> ChannelMomentsAttr:
        return ChannelMomentsAttr(
            ArrayAttr(FloatData(float(v)) for v in mean),
            ArrayAttr(FloatData(float(v)) for v in (mean_sq if mean_sq is not None else ())),
        )

    def mean_array(self) -> np.ndarray:
        return np.array([v.data for v in self.means.data], dtype=np.float64)

    def mean_sq_array(self) -> np.ndarray | None:
        """The per-channel mean of squares, or None when it was not recorded."""
        if not self.mean_squares.data:
            return None
        return np.array([v.data for v in self.mean_squares.data], dtype=np.float64)

    def verify(self) -> None:
        n = len(self.means.data)
        if n == 0:
            raise VerifyException("quant.moments needs at least one channel mean")
        if not all(np.isfinite(v.data) for v in self.means.data):
            raise VerifyException("quant.moments means must be finite")
        q = self.mean_squares.data
        if q and len(q) != n:
            raise VerifyException(f"quant.moments has {n} means but {len(q)} mean squares")
        if not all(np.isfinite(v.data) and v.data >= 0 for v in q):
            raise VerifyException("quant.moments mean squares must be finite and non-negative")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        def numbers() -> list[float]:
            return parser.parse_comma_separated_list(parser.Delimiter.SQUARE, lambda: float(parser.parse_number()))

        with parser.in_angle_brackets():
            parser.parse_keyword("mean")
            parser.parse_punctuation("=")
            mean = numbers()
            mean_sq: list[float] = []
            if parser.parse_optional_punctuation(",") is not None:
                parser.parse_keyword("mean_sq")
                parser.parse_punctuation("=")
                mean_sq = numbers()
        return (ArrayAttr(FloatData(v) for v in mean), ArrayAttr(FloatData(v) for v in mean_sq))

    def print_parameters(self, printer: Printer) -> None:
        text = "mean = [" + ", ".join(_fmt64(v.data) for v in self.means.data) + "]"
        if self.mean_squares.data:
            text += ", mean_sq = [" + ", ".join(_fmt64(v.data) for v in self.mean_squares.data) + "]"
        printer.print_string(f"<{text}>")


def quantized_element(t: Attribute) -> UniformQuantizedType | None:
    """The quantized element type of a tensor type, or None."""
    if isinstance(t, TensorType) and isinstance(t.element_type, UniformQuantizedType):
        return t.element_type
    return None


def with_element(t: TensorType, element: Attribute) -> TensorType:
    """The same tensor type (shape kept, dynamic dims included) with another element type."""
    if type(t) is TensorType and isinstance(element, Attribute):  # its shape attribute reused, unchecked
        return _built(TensorType, shape=t.shape, element_type=element, encoding=_NO_ENCODING)
    return TensorType(element, t.get_shape())


@irdl_op_definition
class StatsOp(IRDLOperation):
    """Identity on a float tensor that records its calibrated range (MLIR's quantfork.stats)."""

    name = "quant.stats"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    result = result_def(T)
    stats = prop_def(CalibrationStatsAttr)
    traits = traits_def(Pure())
    assembly_format = "$input `,` $stats attr-dict `:` type($input)"

    def __init__(self, value: SSAValue, stats: CalibrationStatsAttr):
        super().__init__(operands=[value], result_types=[value.type], properties={"stats": stats})


@irdl_op_definition
class QuantizeCastOp(IRDLOperation):
    """Float tensor to a quantized tensor of the same shape (fake-quant, first half)."""

    name = "quant.qcast"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, qtype: UniformQuantizedType):
        assert isinstance(value.type, TensorType)
        super().__init__(operands=[value], result_types=[with_element(value.type, qtype)])

    def verify_(self) -> None:
        assert isinstance(self.input.type, TensorType) and isinstance(self.result.type, TensorType)
        if quantized_element(self.result.type) is None:
            raise VerifyException("quant.qcast must produce a quantized tensor")
        if self.input.type.get_shape() != self.result.type.get_shape():
            raise VerifyException("quant.qcast must keep the shape")


@irdl_op_definition
class DequantizeCastOp(IRDLOperation):
    """Quantized tensor back to float (fake-quant, second half)."""

    name = "quant.dcast"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue):
        assert isinstance(value.type, TensorType)
        q = quantized_element(value.type)
        assert q is not None
        super().__init__(operands=[value], result_types=[with_element(value.type, q.expressed_type)])

    def verify_(self) -> None:
        assert isinstance(self.input.type, TensorType) and isinstance(self.result.type, TensorType)
        if (q := quantized_element(self.input.type)) is None:
            raise VerifyException("quant.dcast must take a quantized tensor")
        if self.result.type.element_type != q.expressed_type:
            raise VerifyException("quant.dcast result element type must be the expressed type")
        if self.input.type.get_shape() != self.result.type.get_shape():
            raise VerifyException("quant.dcast must keep the shape")


Quant = Dialect(
    "quant",
    [StatsOp, QuantizeCastOp, DequantizeCastOp],
    [UniformQuantizedType, BlockwiseQuantizedType, CalibrationStatsAttr, ChannelMomentsAttr],
)
