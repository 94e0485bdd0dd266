"""Quantization numerics shared by every pass and by the integer reference kernels.

One correct implementation of each formula, matching what TFLite's converter and LiteRT's
kernels compute (facts from LiteRT `kernels/internal/quantization_util.cc`, `common.cc`,
gemmlowp `fixedpoint.h` and TF's `FakeQuantSupport.cc`):

Choosing parameters (all return a `UniformQuantizedType`, scales rounded to float32):

    choose_activation_params(min, max, bits=8)                 # int8 asymmetric activation
    choose_activation_params(min, max, bits=16, symmetric=True) # int16 activation, zp 0
    choose_weight_params(w, axis=0)                            # int8 [-127,127] per channel
    choose_bias_params(input_scale, weight_type, bits=32)      # int32/int64 bias, zp 0

Converting values:

    quantize(x, qtype) -> integer array (storage dtype), as LiteRT's QUANTIZE kernel
    dequantize(q, qtype) -> float32 array, as LiteRT's DEQUANTIZE kernel
    quantize_bias(b, input_scale, weight_type, bits=32) -> (ints, qtype)

Fixed-point arithmetic (vectorised over numpy int arrays, bit-exact with LiteRT's default
"double rounding" build):

    quantize_multiplier(real) -> (int32 multiplier, shift)     # frexp, round half away
    saturating_rounding_doubling_high_mul(a, b)
    rounding_divide_by_pot(x, exponent)
    multiply_by_quantized_multiplier(x, multiplier, shift)     # int32 accumulators
    multiply_by_quantized_multiplier_64(x, multiplier, shift)  # int64 accumulators (16x8)

Rounding: `round_half_away(x)` is TFLite's `TfLiteRound` (std::round), used everywhere
the runtime rounds a float.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import IntegerType, Signedness

from tflquant.dialects.quant import UniformQuantizedType
from tflquant.errors import TflquantError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

__all__ = [
    "round_half_away",
    "storage_type",
    "choose_activation_params",
    "choose_weight_params",
    "choose_bias_params",
    "quantize",
    "dequantize",
    "quantize_bias",
    "broadcast_params",
    "quantize_multiplier",
    "quantize_multiplier_array",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_64",
    "multiply_by_quantized_multiplier_gemm",
    "multiply_by_quantized_multiplier_single",
]


# ---------------------------------------------------------------------------------------
# Rounding and storage types
# ---------------------------------------------------------------------------------------


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """Round to nearest, ties away from zero (C's std::round / TfLiteRound), as float64.

    Computed in float64, so float32 inputs such as 0.49999997 round correctly.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def storage_type(bits: int, signed: bool = True) -> IntegerType:
    """The storage type of a quant type: signless iN (signed) or uiN (unsigned)."""
    if bits not in (8, 16, 32, 64):
        raise TflquantError(f"quantized storage must be 8, 16, 32 or 64 bits, got {bits}")
    return IntegerType(bits) if signed else IntegerType(bits, Signedness.UNSIGNED)


def _range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return (lo + 1 if narrow else lo), hi


# ---------------------------------------------------------------------------------------
# Choosing quantization parameters
# ---------------------------------------------------------------------------------------


def _nudged(qmin: int, qmax: int, rmin: float, rmax: float) -> tuple[float, int]:
    """Scale and zero point for [rmin, rmax] (contains 0), as MLIR's quantizer computes them.

    Double precision; the zero point comes from whichever end (min or max) has the smaller
    rounding error, then is rounded half away from zero and clamped to [qmin, qmax].
    A range narrower than double epsilon (an all-zero tensor) gets scale 1.0, zp qmin.
    """
    if abs(rmax - rmin) < np.finfo(np.float64).eps:
        return 1.0, qmin
    scale = (rmax - rmin) / float(qmax - qmin)
    zp_from_min = qmin - rmin / scale
    zp_from_max = qmax - rmax / scale
    err_min = abs(qmin) + abs(rmin / scale)
    err_max = abs(qmax) + abs(rmax / scale)
    zp = zp_from_min if err_min < err_max else zp_from_max
    if zp < qmin:
        return scale, qmin
    if zp > qmax:
        return scale, qmax
    return scale, int(round_half_away(zp))


def choose_activation_params(
    min_value: float,
    max_value: float,
    bits: int = 8,
    symmetric: bool = False,
    signed: bool = True,
    narrow: bool = False,
) -> UniformQuantizedType:
    """The per-tensor type for an activation observed in [min_value, max_value].

    The range is first widened to contain 0 (so real 0 is exactly representable).
    - asymmetric (int8, uint8): scale = (max - min) / (qmax - qmin), zero point nudged
      to an integer as TFLite's MLIR quantizer does (see `_nudged`);
    - symmetric (int16 activations, 16x8 mode): zero point 0 and
      scale = max(|min|, |max|) / qmax (TFLite's legacy quantizer, half range 32767).
    A range narrower than double epsilon (an all-zero tensor) gets scale 1.0 (zero point
    qmin, or 0 when symmetric).
    """
    lo, hi = float(min_value), float(max_value)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise TflquantError(f"activation range [{lo}, {hi}] is not finite: recalibrate with finite data")
    if lo > hi:
        raise TflquantError(f"activation range min {lo} is greater than max {hi}")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmin, qmax = _range(bits, signed, narrow)
    st = storage_type(bits, signed)
    if symmetric:
        half = np.float32(max(abs(lo), abs(hi)))
        # a range narrower than double epsilon is an all-zero tensor (as for asymmetric)
        scale = float(half / np.float32(qmax)) if half >= np.finfo(np.float64).eps else 1.0
        if not np.isfinite(np.float32(scale)):
            raise TflquantError(f"activation range [{lo}, {hi}] gives a scale {scale} not representable in float32")
        zp = 0 if signed else (qmin + qmax + 1) // 2
        return UniformQuantizedType.make(st, scale, zp, narrow=narrow)
    scale, zp = _nudged(qmin, qmax, lo, hi)
    if np.float32(scale) <= 0 or not np.isfinite(np.float32(scale)):
        # The range is so small (or large) that its float32 scale underflows (overflows).
        raise TflquantError(f"activation range [{lo}, {hi}] gives a scale {scale} not representable in float32")
    return UniformQuantizedType.make(st, scale, zp, narrow=narrow)


def choose_weight_params(
    w: np.ndarray,
    axis: int | None = None,
    bits: int = 8,
    narrow: bool = True,
) -> UniformQuantizedType:
    """Symmetric weight type: zero point 0, scale = max|w| / qmax (per slice along `axis`).

    int8 weights use the narrow range [-127, 127] (TFLite's spec). A slice that is all
    zero gets scale 1.0 (any scale represents it exactly), as the converter does.
    Scales are computed in float32 like TFLite's quantizers.
    """
    w = np.asarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise TflquantError("weights contain NaN or infinity: cannot choose quantization parameters")
    qmin, qmax = _range(bits, True, narrow)
    st = storage_type(bits, True)
    if axis is None:
        absmax = np.array([np.max(np.abs(w)) if w.size else 0.0], dtype=np.float32)
    else:
        if not -w.ndim <= axis < w.ndim:
            raise TflquantError(f"weight of shape {w.shape} has no axis {axis}")
        axis %= w.ndim
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        absmax = np.max(np.abs(moved), axis=1) if moved.shape[1] else np.zeros(w.shape[axis], np.float32)
    scales = (absmax.astype(np.float32) / np.float32(qmax)).astype(np.float32)
    scales[~(scales > 0)] = 1.0
    if axis is None:
        return UniformQuantizedType.make(st, float(scales[0]), 0, narrow=narrow)
    return UniformQuantizedType.make(st, [float(s) for s in scales], 0, axis=axis, narrow=narrow)


def choose_bias_params(input_scale: float, weight_type: UniformQuantizedType, bits: int = 32) -> UniformQuantizedType:
    """Bias type: int32 (int8 mode) or int64 (16x8), zero point 0, scale = s_in * s_w[c].

    Per-axis along dimension 0 when the weight is per-axis, per-tensor otherwise.
    (LiteRT never reads the bias scale; the integers are in units of s_in * s_w[c].)
    """
    st = storage_type(bits, True)
    ws = weight_type.scale_array()
    scales = (np.float32(input_scale) * ws.astype(np.float32)).astype(np.float32)
    if weight_type.per_axis:
        return UniformQuantizedType.make(st, [float(s) for s in scales], 0, axis=0)
    return UniformQuantizedType.make(st, float(scales[0]), 0)


# ---------------------------------------------------------------------------------------
# Converting values
# ---------------------------------------------------------------------------------------


def broadcast_params(qtype: UniformQuantizedType, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero_point) arrays that broadcast against a tensor of rank `ndim`.

    Per-tensor: 0-d arrays. Per-axis: shaped (..., n, ...) along the type's axis. A leading
    sample axis (the reference interpreter's batch of samples) is not counted in `ndim`,
    and broadcasting still works because the params are right-aligned.
    """
    s = qtype.scale_array().astype(np.float32)
    z = qtype.zero_point_array()
    if not qtype.per_axis:
        return s.reshape(()), z.reshape(())
    ax = qtype.axis.data
    if ax >= ndim:
        raise TflquantError(f"per-axis type {qtype} has axis {ax} but the tensor has rank {ndim}")
    shape = [1] * ndim
    shape[ax] = -1
    return s.reshape(shape), z.reshape(shape)


def quantize(x: np.ndarray, qtype: UniformQuantizedType, rounding: str = "away") -> np.ndarray:
    """Float values to the type's storage integers: clamp(round(float32(x) / scale) + zp).

    The division is float32, as in TFLite. `rounding="away"` (ties away from zero) is
    TFLite's reference kernels and its legacy quantizer; `rounding="even"` (ties to even)
    is what LiteRT's optimized x86 QUANTIZE kernel computes (measured) and how the TF
    converter rounds weights. Per-axis types quantize slice by slice along their axis
    (x must then have the type's rank).
    """
    x = np.asarray(x, dtype=np.float32)
    s, z = broadcast_params(qtype, x.ndim)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        y = x / s
        r = round_half_away(y) if rounding == "away" else np.rint(y.astype(np.float64))
    q = np.clip(r + z, qtype.qmin, qtype.qmax)
    q = np.where(np.isnan(x), z, q)  # NaN has no integer; LiteRT's cast is undefined there
    return q.astype(qtype.numpy_dtype())


def dequantize(q: np.ndarray, qtype: UniformQuantizedType) -> np.ndarray:
    """Storage integers to float32, as LiteRT's reference DEQUANTIZE: float32(scale * (q - zp)),
    the product taken in double precision. (LiteRT's optimized int8 kernel differs in the last
    float bit for most elements; see integer_kernels.DEQUANTIZE.)"""
    q = np.asarray(q)
    s, z = broadcast_params(qtype, q.ndim)
    return (s.astype(np.float64) * (q.astype(np.int64) - z)).astype(np.float32)


def quantize_bias(
    b: np.ndarray, input_scale: float, weight_type: UniformQuantizedType, bits: int = 32
) -> tuple[np.ndarray, UniformQuantizedType]:
    """Quantize a float bias to int32/int64 with scale s_in * s_w[c] and zero point 0."""
    qt = choose_bias_params(input_scale, weight_type, bits)
    b = np.asarray(b, dtype=np.float32)
    if qt.per_axis and b.ndim != 1:
        raise TflquantError(f"per-channel bias must be 1-D, got shape {b.shape}")
    return quantize(b, qt), qt


# ---------------------------------------------------------------------------------------
# Fixed-point arithmetic (gemmlowp / TFLite)
# ---------------------------------------------------------------------------------------


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).

    frexp, then round(q * 2^31) half away from zero; 2^31 folds to 2^30 with shift + 1;
    a shift below -31 flushes to (0, 0). `shift` > 0 means a left shift.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    if not np.isfinite(real):
        raise TflquantError(f"cannot quantize the non-finite multiplier {real}")
    q, shift = np.frexp(real)
    q_fixed = int(round_half_away(float(q) * float(1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, int(shift)


def quantize_multiplier_array(reals: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier for each element: (int64 multipliers, int64 shifts)."""
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    m = np.array([p[0] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    s = np.array([p[1] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    return m, s


def _wrap32(x: np.ndarray) -> np.ndarray:
    """Wrap int64 values to int32 (two's complement), kept as int64."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (returned as int64).

    (a * b * 2 + 2^31 rounding) >> 32 with C truncating division; INT32_MIN * INT32_MIN
    saturates to INT32_MAX.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    # C integer division by 2^31 truncates toward zero.
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier for int32 x (double rounding), as int64 values.

    left shift max(shift, 0) (wrapping like the C int32 multiply), high-mul, then
    rounding right shift by max(-shift, 0). `multiplier`/`shift` broadcast (per channel).
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_gemm(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """The multiplier as LiteRT's x86 GEMM path (ruy) applies it to CONV_2D / FULLY_CONNECTED.

    Same as `multiply_by_quantized_multiplier` except the final rounding right shift rounds
    ties toward +infinity ((x + 2^(e-1)) >> e) instead of away from zero. Measured against
    ai-edge-litert 2.3 on x86-64 (builtin kernels): exact on the reference models' convs.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    high = saturating_rounding_doubling_high_mul(_wrap32(x << left), multiplier)
    nudge = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    return (high + nudge) >> right


def multiply_by_quantized_multiplier_single(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """The single-rounding MultiplyByQuantizedMultiplier: (x * m + 2^(30 - shift)) >> (31 - shift).

    Exact product, one rounding (ties toward +inf). LiteRT's 16x8 FULLY_CONNECTED rescales
    this way on x86-64 (measured bit-exact on the reference models). The product is exact
    even where it passes 2^63 (an int64 accumulator of ~2^39, from a huge int64 bias, times
    a 31-bit multiplier): LiteRT does not wrap there (measured: a 16x8 FC whose biases are
    ~-5.5e11 matches exact arithmetic on 240 of 240 outputs, wrapped arithmetic on none).
    """
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    if x.size and m.size and float(np.abs(x).max()) * float(np.abs(m).max()) >= 2.0**62:
        # past int64: Python integers (rare: only with near-constant inputs and huge biases)
        xo, mo, to = np.broadcast_arrays(x.astype(object), m.astype(object), total.astype(object))
        exact = np.frompyfunc(lambda a, b, t: (a * b + (1 << (t - 1))) >> t, 3, 1)(xo, mo, to)
        return _wrap32(np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in np.ravel(exact)], np.uint64).view(np.int64).reshape(np.shape(exact)))
    return _wrap32((x * m + (np.int64(1) << (total - 1))) >> total)


def multiply_by_quantized_multiplier_64(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier for int64 x (16x8 kernels with int64 bias).

    Uses the multiplier reduced to 16 bits: round(m / 2^16) (0x7FFF if m >= 0x7FFF0000),
    then (x * reduced + 2^(14 - shift)) >> (15 - shift), truncated to int32.
    """
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - shift
    r = (x * reduced + (np.int64(1) << (total - 1))) >> total
    return _wrap32(r)
