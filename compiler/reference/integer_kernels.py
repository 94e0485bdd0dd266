"""Integer reference kernels: what LiteRT's int8 and 16x8 kernels compute, bit for bit.

Each kernel is built per op by a factory `factory(op) -> kernel`, which reads the op's
quantization parameters and precomputes TFLite's multipliers (tflquant.quant_math); the
kernel then maps integer storage arrays to integer storage arrays.

Conventions are those of the float kernels (tflquant.reference.float_kernels): a data
operand carries a leading sample axis, a parameter operand (weights, bias, shapes, axes)
does not; results carry the sample axis.

Arithmetic follows LiteRT's kernels (facts read from `tflite/kernels/*.cc` and
`kernels/internal/reference/...`), in the default "double rounding" build:

- CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV / BATCH_MATMUL: exact
  int32 (int8) or int64 (16x8 with int64 bias) accumulation of (x - zp_x) * w, bias added,
  MultiplyByQuantizedMultiplier with multiplier s_in * s_w[c] / s_out, + zp_out, clamped to
  the fused activation's quantized range (int8 CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV
  use the GEMM rounding of LiteRT's x86 build, 16x8 FULLY_CONNECTED a single rounding);
- ADD / SUB: the general path (inputs shifted left by 20 for int8, 15 for int16, each
  rescaled by s_i / (2 max s), summed, rescaled to the output); int16 with
  pot_scale_int16 and power-of-two scales uses the POT path (rounding shifts, saturating);
- MUL: (x1 - zp1) * (x2 - zp2) rescaled by s1 s2 / s_out;
- AVERAGE_POOL_2D: sum over the valid window, divided rounding half away from zero;
  MAX_POOL_2D: max over the valid window;
- MEAN / SUM: reference_ops::QuantizedMeanOrSum (1/n folded into the multiplier);
  REDUCE_PROD: reference_ops::QuantizedReduceProd (every partial product rescaled);
- LOGISTIC / TANH / ELU / GELU / LOG / EXP int8: the 256-entry table LUTPopulate builds
  from float32 math;
  int16: LiteRT's fixed-point interpolation of a sigmoid(i/24) table (derived, bit-exact);
- SOFTMAX int8: the float32 exp table of the optimized kernel (`PopulateSoftmaxLookupTable`,
  sequential float32 sum, round half away); int16: LUT-based reference (exp and 1/(1+x)
  tables with 9-bit interpolation);
- QUANTIZE: float -> int by round(x / s) + zp (float32 division); int -> int by
  MultiplyByQuantizedMultiplier(x - zp_in, s_in / s_out) + zp_out;
- RESIZE_BILINEAR: ResizeBilinearInteger (10-bit fixed-point coordinates);
- RELU / RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 / LEAKY_RELU: requantizing ReluX / leaky relu;
- HARD_SWISH int8: LiteRT's 16-bit fixed-point formulation; RSQRT: fixed-point
  Newton-Raphson inverse square root; SQUARED_DIFFERENCE: inputs shifted left by 7;
  DIV int8: fixed-point reciprocal of the divisor, with the x86 build's shifts beyond 31;
- data movement (RESHAPE, TRANSPOSE, GATHER, PAD with zp, CONCATENATION, REVERSE_V2, FILL,
  DYNAMIC_UPDATE_SLICE, ONE_HOT, ...):
  copies; TOPK_V2: the k largest stored values, equal values in index order.

Ops without an integer kernel here are simulated in float by the integer interpreter
(dequantize, float kernel, quantize); see integer_interpreter.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.ir import Operation, SSAValue

from tflquant import quant_math as qm
from tflquant.dialects.quant import UniformQuantizedType, quantized_element
from tflquant.errors import TflquantError
from tflquant.reference import float_kernels as fk

Kernel = Callable[..., Any]
Factory = Callable[[Operation], Kernel]

KERNELS: dict[str, Factory] = {}


def kernel(*names: str) -> Callable[[Factory], Factory]:
    def register(f: Factory) -> Factory:
        for n in names:
            KERNELS[n] = f
        return f

    return register


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def qtype(v: SSAValue, what: str) -> UniformQuantizedType:
    q = quantized_element(v.type)
    if q is None:
        raise TflquantError(f"{what} must be quantized, got {v.type}")
    return q


def in_q(op: Operation, i: int) -> UniformQuantizedType:
    return qtype(op.operands[i], f"operand #{i}")


def out_q(op: Operation, i: int = 0) -> UniformQuantizedType:
    return qtype(op.results[i], f"result #{i}")


def f32(x: float) -> float:
    return float(np.float32(x))


def act_range(op: Operation, q: UniformQuantizedType, name: str | None = None) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation's range in the output's integers."""
    act = name if name is not None else (fk.opt(op, "fused_activation_function", "NONE") or "NONE")
    lo, hi = q.qmin, q.qmax
    if q.per_axis:
        return lo, hi
    s, z = np.float32(q.scale), q.zero_point

    def quant(f: float) -> int:
        return z + int(qm.round_half_away(np.float32(f) / s))

    if act == "RELU":
        return max(lo, quant(0.0)), hi
    if act == "RELU6":
        return max(lo, quant(0.0)), min(hi, quant(6.0))
    if act == "RELU_N1_TO_1":
        return max(lo, quant(-1.0)), min(hi, quant(1.0))
    if act in ("NONE", None):
        return lo, hi
    raise TflquantError(f"fused activation {act} has no quantized kernel")


def per_channel_multipliers(s_in: float, w: UniformQuantizedType, s_out: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams: one (multiplier, shift) per output channel."""
    ws = w.scale_array()
    if ws.size == 1:
        ws = np.repeat(ws, n)
    reals = [float(np.float64(f32(s_in)) * np.float64(f32(s)) / np.float64(f32(s_out))) for s in ws]
    return qm.quantize_multiplier_array(reals)


def mbqm(acc: np.ndarray, m: Any, s: Any, wide: bool = False, gemm: bool = False) -> np.ndarray:
    if wide:
        return qm.multiply_by_quantized_multiplier_64(acc, m, s)
    if gemm and GEMM_ROUNDING:
        return qm.multiply_by_quantized_multiplier_gemm(acc, m, s)
    return qm.multiply_by_quantized_multiplier(acc, m, s)


# LiteRT's x86 build runs int8 CONV_2D / FULLY_CONNECTED through ruy's GEMM, whose final
# rounding shift rounds ties toward +inf; set False to get the portable reference kernels.
GEMM_ROUNDING = True


def store(x: np.ndarray, q: UniformQuantizedType) -> np.ndarray:
    return x.astype(q.numpy_dtype())


def merge(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(samples, batch, ...) -> (samples*batch, ...)."""
    s, b = x.shape[0], x.shape[1]
    return x.reshape((s * b,) + x.shape[2:]), (s, b)


def split(y: np.ndarray, sb: tuple[int, int]) -> np.ndarray:
    return y.reshape(sb + y.shape[1:])


def _abs_max(x: np.ndarray) -> int:
    """Largest |value| of an integer array, as a Python int (no int64 copy, no int8 wrap)."""
    return max(abs(int(x.min(initial=0))), abs(int(x.max(initial=0))))


def exact_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer matrix product, exact: float64 BLAS when sums stay below 2^53, else int64.
    The operands are converted once, straight to the type the product runs in (the im2col
    matrices of convolutions are large: an int64 copy first cost as much as the product)."""
    bound = float(_abs_max(a)) * float(_abs_max(b)) * a.shape[-1]
    if bound < 2.0**52:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64, copy=False) @ b.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------
# QUANTIZE / DEQUANTIZE
# ---------------------------------------------------------------------------------------


@kernel("QUANTIZE")
def _quantize(op: Operation) -> Kernel:
    qo = out_q(op)
    qi = quantized_element(op.operands[0].type)
    if qi is None:
        # LiteRT's optimized float->int QUANTIZE rounds ties to even (measured on x86-64).
        return lambda x: qm.quantize(x, qo, rounding="even")
    if qi.per_axis or qo.per_axis:
        raise TflquantError("per-axis requantization has no kernel")
    m, s = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale))))
    zi, zo = qi.zero_point, qo.zero_point
    # int8 -> int8: LiteRT's optimized Requantize handles 16 values at a time with vector
    # rounding (ties toward +inf on the final shift, as the GEMM path) and the remaining
    # flat_size % 16 values with the scalar double-rounding multiply (measured on x86-64).
    simd = qi.bits == 8 and qo.bits == 8 and qi.is_signed and qo.is_signed

    def run(x: np.ndarray) -> np.ndarray:
        d = x.astype(np.int64) - zi
        if simd:
            flat = d.reshape(d.shape[0], -1)
            cut = (flat.shape[1] // 16) * 16
            y = np.empty(flat.shape, np.int64)
            y[:, :cut] = qm.multiply_by_quantized_multiplier_gemm(flat[:, :cut], m, s)
            y[:, cut:] = qm.multiply_by_quantized_multiplier(flat[:, cut:], m, s)
            y = y.reshape(d.shape) + zo
        else:
            y = mbqm(d, m, s) + zo
        return store(np.clip(y, qo.qmin, qo.qmax), qo)

    return run


@kernel("DEQUANTIZE")
def _dequantize(op: Operation) -> Kernel:
    """int8: LiteRT's optimized kernel works 8 values at a time as float32(q) * s + float32(-zp s)
    (two float32 roundings) and the last flat_size % 8 values as float32(double(s) (q - zp));
    other types: the reference float32(double(s) (q - zp))."""
    qi = in_q(op, 0)
    if qi.per_axis:

        def run_axis(x: np.ndarray) -> np.ndarray:
            s, z = qm.broadcast_params(qi, x.ndim - 1)
            return (s.astype(np.float64) * (x.astype(np.int64) - z)).astype(np.float32)

        return run_axis
    if not (qi.bits == 8 and qi.is_signed):
        return lambda x: qm.dequantize(x, qi)
    s32 = np.float32(qi.scale)
    bias = np.float32(-qi.zero_point * np.float64(s32))

    def run(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(x.shape[0], -1)
        simd = (flat.shape[1] // 8) * 8
        out = np.empty(flat.shape, np.float32)
        out[:, :simd] = (flat[:, :simd].astype(np.float32) * s32).astype(np.float32) + bias
        out[:, simd:] = (np.float64(s32) * (flat[:, simd:].astype(np.int64) - qi.zero_point)).astype(np.float32)
        return out.reshape(x.shape)

    return run


# ---------------------------------------------------------------------------------------
# Convolutions and matrix products
# ---------------------------------------------------------------------------------------


def _conv_common(op: Operation, w_axis: int) -> tuple:
    qi, qw, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    wshape = op.operands[1].type.get_shape()  # type: ignore[union-attr]
    n_out = int(wshape[w_axis])
    m, s = per_channel_multipliers(qi.scale, qw, qo.scale, n_out)
    lo, hi = act_range(op, qo)
    bias_v = op.operands[2] if len(op.operands) > 2 else None
    wide = False
    if bias_v is not None and quantized_element(bias_v.type) is not None:
        wide = quantized_element(bias_v.type).bits == 64  # type: ignore[union-attr]
    elif qi.bits == 16:
        wide = True
    return qi, qw, qo, m, s, lo, hi, wide


def _finish(
    acc: np.ndarray, m: np.ndarray, s: np.ndarray, wide: bool, qo: UniformQuantizedType, lo: int, hi: int, gemm: bool = False
) -> np.ndarray:
    y = mbqm(acc, m, s, wide, gemm) + qo.zero_point
    return store(np.clip(y, lo, hi), qo)


@kernel("CONV_2D")
def _conv2d(op: Operation) -> Kernel:
    qi, qw, qo, m, s, lo, hi, wide = _conv_common(op, 0)
    sh, sw = int(fk.opt(op, "stride_h", 1)), int(fk.opt(op, "stride_w", 1))
    dh, dw = int(fk.opt(op, "dilation_h_factor", 1)), int(fk.opt(op, "dilation_w_factor", 1))
    padding = fk.opt(op, "padding", "SAME")
    zi = qi.zero_point if not qi.per_axis else 0

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        xm, sb = merge(x)
        n, h, wd, c = xm.shape
        o, kh, kw, ci = w.shape
        groups = c // ci
        oh, pt, pb = fk.out_size_and_pad(h, kh, sh, dh, padding)
        ow, pl, pr = fk.out_size_and_pad(wd, kw, sw, dw, padding)
        xo = xm.astype(np.int64) - zi
        xp = np.pad(xo, [(0, 0), (pt, pb), (pl, pr), (0, 0)])
        win = fk._windows(xp, oh, ow, kh, kw, sh, sw, dh, dw)  # (n, oh, ow, kh, kw, c)
        acc = np.empty((n, oh, ow, o), np.int64)
        og = o // groups
        for g in range(groups):
            cols = win[..., g * ci : (g + 1) * ci].reshape(n * oh * ow, kh * kw * ci)
            wg = w[g * og : (g + 1) * og].reshape(og, kh * kw * ci)
            acc[..., g * og : (g + 1) * og] = exact_dot(cols, wg.T).reshape(n, oh, ow, og)
        if b is not None:
            acc += b.astype(np.int64)
        return split(_finish(acc, m, s, wide, qo, lo, hi, gemm=True), sb)

    return run


@kernel("DEPTHWISE_CONV_2D")
def _depthwise(op: Operation) -> Kernel:
    qi, qw, qo, m, s, lo, hi, wide = _conv_common(op, 3)
    sh, sw = int(fk.opt(op, "stride_h", 1)), int(fk.opt(op, "stride_w", 1))
    dh, dw = int(fk.opt(op, "dilation_h_factor", 1)), int(fk.opt(op, "dilation_w_factor", 1))
    padding = fk.opt(op, "padding", "SAME")
    zi = qi.zero_point

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        xm, sb = merge(x)
        n, h, wd, c = xm.shape
        _, kh, kw, oc = w.shape
        mult = oc // c
        xo = xm.astype(np.int64) - zi
        if mult > 1:
            xo = np.repeat(xo, mult, axis=3)
        oh, pt, pb = fk.out_size_and_pad(h, kh, sh, dh, padding)
        ow, pl, pr = fk.out_size_and_pad(wd, kw, sw, dw, padding)
        xp = np.pad(xo, [(0, 0), (pt, pb), (pl, pr), (0, 0)])
        win = fk._windows(xp, oh, ow, kh, kw, sh, sw, dh, dw)
        acc = np.einsum("nhwijc,ijc->nhwc", win.astype(np.float64), w[0].astype(np.float64))
        acc = np.rint(acc).astype(np.int64)
        if b is not None:
            acc += b.astype(np.int64)
        return split(_finish(acc, m, s, wide, qo, lo, hi), sb)

    return run


@kernel("FULLY_CONNECTED")
def _fully_connected(op: Operation) -> Kernel:
    qi, qw, qo, m, s, lo, hi, wide = _conv_common(op, 0)
    keep = bool(fk.opt(op, "keep_num_dims", False))
    zi = qi.zero_point
    zw = 0 if qw.per_axis else qw.zero_point

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        k = w.shape[-1]
        smp = x.shape[0]
        xf = x.reshape(-1, k).astype(np.int64) - zi
        acc = exact_dot(xf, (w.astype(np.int64) - zw).T)
        if b is not None:
            acc += b.astype(np.int64)
        if qi.bits == 16:
            # LiteRT's 16x8 FULLY_CONNECTED rescales with one rounding (measured exact).
            y = store(np.clip(qm.multiply_by_quantized_multiplier_single(acc, m, s) + qo.zero_point, lo, hi), qo)
        else:
            y = _finish(acc, m, s, wide, qo, lo, hi, gemm=True)
        if keep:
            return y.reshape(x.shape[:-1] + (w.shape[0],))
        return y.reshape(smp, -1, w.shape[0]) if x.ndim > 2 else y.reshape(smp, -1)

    return run


@kernel("TRANSPOSE_CONV")
def _transpose_conv(op: Operation) -> Kernel:
    qi, qw, qo = in_q(op, 2), in_q(op, 1), out_q(op)
    wshape = op.operands[1].type.get_shape()  # type: ignore[union-attr]
    m, s = per_channel_multipliers(qi.scale, qw, qo.scale, int(wshape[0]))
    lo, hi = act_range(op, qo)
    sh, sw = int(fk.opt(op, "stride_h", 1)), int(fk.opt(op, "stride_w", 1))
    padding = fk.opt(op, "padding", "SAME")
    bias_v = op.operands[3] if len(op.operands) > 3 else None
    bq = quantized_element(bias_v.type) if bias_v is not None else None
    wide = (bq is not None and bq.bits == 64) or (bq is None and qi.bits == 16)
    out_shape = [int(d) for d in op.results[0].type.get_shape()]  # type: ignore[union-attr]

    def run(output_shape: np.ndarray, w: np.ndarray, x: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        xm, sb = merge(x)
        n, h, wd, c = xm.shape
        o, kh, kw, _ = w.shape
        oh, ow = int(output_shape[1]), int(output_shape[2])
        _, pt, _ = fk.out_size_and_pad(oh, kh, sh, 1, padding)
        _, pl, _ = fk.out_size_and_pad(ow, kw, sw, 1, padding)
        xo = xm.astype(np.int64) - qi.zero_point
        # full (unpadded) output, then crop
        fh, fw = (h - 1) * sh + kh, (wd - 1) * sw + kw
        full = np.zeros((n, max(fh, oh + pt), max(fw, ow + pl), o), np.int64)
        contrib = exact_dot(xo.reshape(-1, c), w.reshape(o * kh * kw, c).T).reshape(n, h, wd, o, kh, kw)
        for i in range(kh):
            for j in range(kw):
                full[:, i : i + (h - 1) * sh + 1 : sh, j : j + (wd - 1) * sw + 1 : sw, :] += contrib[:, :, :, :, i, j]
        acc = full[:, pt : pt + oh, pl : pl + ow, :]
        if b is not None:
            acc = acc + b.astype(np.int64)
        return split(_finish(acc, m, s, wide, qo, lo, hi, gemm=True), sb)

    del out_shape
    return run


@kernel("BATCH_MATMUL")
def _batch_matmul(op: Operation) -> Kernel:
    qx, qy, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    m, s = qm.quantize_multiplier(float(np.float64(f32(qx.scale)) * np.float64(f32(qy.scale)) / np.float64(f32(qo.scale))))
    adj_x, adj_y = bool(fk.opt(op, "adj_x", False)), bool(fk.opt(op, "adj_y", False))
    wide = qx.bits == 16

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = fk.align(x, y)
        xo = x.astype(np.int64) - qx.zero_point
        yo = y.astype(np.int64) - qy.zero_point
        if adj_x:
            xo = np.swapaxes(xo, -1, -2)
        if adj_y:
            yo = np.swapaxes(yo, -1, -2)
        acc = np.rint(np.matmul(xo.astype(np.float64), yo.astype(np.float64))).astype(np.int64)
        y_ = mbqm(acc, m, s, wide) + qo.zero_point
        return store(np.clip(y_, qo.qmin, qo.qmax), qo)

    return run


# ---------------------------------------------------------------------------------------
# Elementwise binary ops
# ---------------------------------------------------------------------------------------


def _is_pot(scale: float) -> tuple[bool, int]:
    lg = np.log(np.float32(scale)) * (np.float32(1.0) / np.log(np.float32(2.0)))
    r = qm.round_half_away(lg)
    return bool(abs(float(lg) - float(r)) < 1e-3), int(r)


def _add_sub(op: Operation, sign: int) -> Kernel:
    q1, q2, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    lo, hi = act_range(op, qo)
    if qo.bits == 16 and q1.bits == 16:
        pot = bool(fk.opt(op, "pot_scale_int16", True))
        p1, l1 = _is_pot(q1.scale)
        p2, l2 = _is_pot(q2.scale)
        po, lo_ = _is_pot(qo.scale)
        if pot and p1 and p2 and po and q1.zero_point == q2.zero_point == qo.zero_point == 0:
            s1, s2 = l1 - lo_, l2 - lo_

            def run_pot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                a, b = fk.align(a, b)
                x1 = qm.rounding_divide_by_pot(a.astype(np.int64), -s1) if s1 < 0 else a.astype(np.int64) << s1
                x2 = qm.rounding_divide_by_pot(b.astype(np.int64), -s2) if s2 < 0 else b.astype(np.int64) << s2
                r = np.clip(x1 + sign * x2, -32768, 32767)
                return store(np.clip(r, lo, hi), qo)

            return run_pot
        left = 15
    else:
        left = 20
    twice = 2.0 * float(max(np.float32(q1.scale), np.float32(q2.scale)))
    m1, sh1 = qm.quantize_multiplier(f32(q1.scale) / twice)
    m2, sh2 = qm.quantize_multiplier(f32(q2.scale) / twice)
    mo, sho = qm.quantize_multiplier(twice / (float(1 << left) * f32(qo.scale)))
    # int16 (general path): LiteRT's optimized kernel rescales the inputs with one rounding
    # and the sum with the double-rounding multiply (measured bit-exact on x86-64).
    in_mul = qm.multiply_by_quantized_multiplier_single if left == 15 else qm.multiply_by_quantized_multiplier

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = fk.align(a, b)
        x1 = (a.astype(np.int64) - q1.zero_point) << left
        x2 = (b.astype(np.int64) - q2.zero_point) << left
        y1 = in_mul(x1, m1, sh1)
        y2 = in_mul(x2, m2, sh2)
        r = mbqm(y1 + sign * y2, mo, sho) + qo.zero_point
        return store(np.clip(r, lo, hi), qo)

    return run


KERNELS["ADD"] = lambda op: _add_sub(op, 1)
KERNELS["SUB"] = lambda op: _add_sub(op, -1)


@kernel("MUL")
def _mul(op: Operation) -> Kernel:
    q1, q2, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    lo, hi = act_range(op, qo)
    m, s = qm.quantize_multiplier(float(np.float64(f32(q1.scale)) * np.float64(f32(q2.scale)) / np.float64(f32(qo.scale))))

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = fk.align(a, b)
        p = (a.astype(np.int64) - q1.zero_point) * (b.astype(np.int64) - q2.zero_point)
        r = mbqm(p, m, s) + qo.zero_point
        return store(np.clip(r, lo, hi), qo)

    return run


@kernel("SQUARED_DIFFERENCE")
def _squared_difference(op: Operation) -> Kernel:
    """int8 SQUARED_DIFFERENCE: inputs shifted left by 7, rescaled by s_i / (2 max s), the
    difference squared and rescaled by (2 max s)^2 / (2^14 s_out)."""
    q1, q2, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    left = 7
    twice = 2.0 * float(max(np.float32(q1.scale), np.float32(q2.scale)))
    m1, sh1 = qm.quantize_multiplier(f32(q1.scale) / twice)
    m2, sh2 = qm.quantize_multiplier(f32(q2.scale) / twice)
    mo, sho = qm.quantize_multiplier(twice * twice / (float(1 << (2 * left)) * f32(qo.scale)))
    lo, hi = act_range(op, qo)

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = fk.align(a, b)
        d = mbqm((a.astype(np.int64) - q1.zero_point) << left, m1, sh1) - mbqm((b.astype(np.int64) - q2.zero_point) << left, m2, sh2)
        r = mbqm(qm._wrap32(d * d), mo, sho) + qo.zero_point
        return store(np.clip(r, lo, hi), qo)

    return run


def _same_params_binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Factory:
    def factory(op: Operation) -> Kernel:
        q1, q2, qo = in_q(op, 0), in_q(op, 1), out_q(op)
        if (q1.scale, q1.zero_point) != (qo.scale, qo.zero_point) or (q2.scale, q2.zero_point) != (qo.scale, qo.zero_point):
            raise TflquantError("MAXIMUM/MINIMUM need inputs and output with the same quantization")

        def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            a, b = fk.align(a, b)
            return store(fn(a, b), qo)

        return run

    return factory


KERNELS["MAXIMUM"] = _same_params_binary(np.maximum)
KERNELS["MINIMUM"] = _same_params_binary(np.minimum)


# ---------------------------------------------------------------------------------------
# Pools and reductions
# ---------------------------------------------------------------------------------------


def _pool(op: Operation, is_max: bool) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    lo, hi = act_range(op, qo)
    sh, sw = int(fk.opt(op, "stride_h", 1)), int(fk.opt(op, "stride_w", 1))
    kh, kw = int(fk.opt(op, "filter_height", 1)), int(fk.opt(op, "filter_width", 1))
    padding = fk.opt(op, "padding", "SAME")
    del qi

    def run(x: np.ndarray) -> np.ndarray:
        xm, sb = merge(x)
        n, h, wd, c = xm.shape
        oh, pt, pb = fk.out_size_and_pad(h, kh, sh, 1, padding)
        ow, pl, pr = fk.out_size_and_pad(wd, kw, sw, 1, padding)
        if is_max:
            xp = np.pad(xm.astype(np.int64), [(0, 0), (pt, pb), (pl, pr), (0, 0)], constant_values=-(1 << 40))
            y = fk._windows(xp, oh, ow, kh, kw, sh, sw, 1, 1).max(axis=(3, 4))
        else:
            xp = np.pad(xm.astype(np.int64), [(0, 0), (pt, pb), (pl, pr), (0, 0)])
            ones = np.pad(np.ones((1, h, wd, 1), np.int64), [(0, 0), (pt, pb), (pl, pr), (0, 0)])
            total = fk._windows(xp, oh, ow, kh, kw, sh, sw, 1, 1).sum(axis=(3, 4))
            count = fk._windows(ones, oh, ow, kh, kw, sh, sw, 1, 1).sum(axis=(3, 4))
            half = count // 2
            num = np.where(total > 0, total + half, total - half)
            y = np.sign(num) * (np.abs(num) // count)  # C division truncates toward zero
        return split(store(np.clip(y, lo, hi), qo), sb)

    return run


KERNELS["MAX_POOL_2D"] = lambda op: _pool(op, True)
KERNELS["AVERAGE_POOL_2D"] = lambda op: _pool(op, False)


def _mean_sum(op: Operation, compute_sum: bool) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    keep = bool(fk.opt(op, "keep_dims", False))
    m0, s0 = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale))))

    def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
        r = x.ndim - 1
        axes = tuple(sorted({fk.axis_norm(int(a), r) + 1 for a in np.ravel(axis)}))
        total = x.astype(np.int64).sum(axis=axes, keepdims=keep)
        n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        if not compute_sum and keep and r == 4 and axes == (2, 3) and qi.bits == 8 and qi.is_signed:
            # LiteRT's optimized int8 Mean (4-D, keep_dims, over H and W): float32 bias and
            # scale, the raw sum rescaled once.
            f = np.float32
            temp = f(f(qi.zero_point) * f(qi.scale) / f(qo.scale))
            temp = f(temp + f(0.5)) if temp > 0 else f(temp - f(0.5))
            bias = qo.zero_point - int(temp)
            real = f(f(qi.scale) / (f(n) * f(qo.scale)))
            mm, ss = qm.quantize_multiplier(float(real))
            y = mbqm(total, mm, ss) + bias
            return store(np.clip(y, -128, 127), qo)
        m, s = m0, s0
        if not compute_sum:
            shift = min(n.bit_length() - 1, 32, 31 + s)
            m = int((m << shift) // n)
            s = s - shift
        shifted = qm._wrap32(total - qi.zero_point * n)
        y = mbqm(shifted, m, s) + qo.zero_point
        return store(np.clip(y, qo.qmin, qo.qmax), qo)

    return run


KERNELS["MEAN"] = lambda op: _mean_sum(op, False)
KERNELS["SUM"] = lambda op: _mean_sum(op, True)


def _reduce_same(fn: Callable[..., np.ndarray]) -> Factory:
    def factory(op: Operation) -> Kernel:
        qo = out_q(op)
        keep = bool(fk.opt(op, "keep_dims", False))

        def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
            r = x.ndim - 1
            axes = tuple(sorted({fk.axis_norm(int(a), r) + 1 for a in np.ravel(axis)}))
            return store(fn(x, axis=axes, keepdims=keep), qo)

        return run

    return factory


KERNELS["REDUCE_MAX"] = _reduce_same(np.max)
KERNELS["REDUCE_MIN"] = _reduce_same(np.min)


@kernel("REDUCE_PROD")
def _reduce_prod(op: Operation) -> Kernel:
    """reference_ops::QuantizedReduceProd: the reduced values (x - zp_in), in row-major order,
    multiplied one at a time in int64, each partial product rescaled to int32 by
    MultiplyByQuantizedMultiplier(int64) with s_in / s_out^(1/n) (n = reduced values); the
    product is rescaled once more, + zp_out, clamped. int16: zero points 0. A reduction over
    size-1 axes only is LiteRT's no-op: the stored values are copied."""
    qi, qo = in_q(op, 0), out_q(op)
    keep = bool(fk.opt(op, "keep_dims", False))

    def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
        r = x.ndim - 1
        axes = sorted({fk.axis_norm(int(a), r) + 1 for a in np.ravel(axis)})
        kept = [a for a in range(x.ndim) if a not in axes]
        n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        out_shape = [1 if a in axes else x.shape[a] for a in range(x.ndim)] if keep else [x.shape[a] for a in kept]
        if n == 0 or x.size == 0:
            return np.zeros(out_shape, qo.numpy_dtype())
        if n == 1:  # LiteRT's no-op reduction copies the stored values, whatever the scales
            return store(x.reshape(out_shape), qo)
        scaling = float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale)) ** (1.0 / n))
        m, s = qm.quantize_multiplier(scaling)
        vals = np.transpose(x, kept + axes).reshape(*[x.shape[a] for a in kept], n).astype(np.int64) - qi.zero_point
        prod = vals[..., 0]
        for i in range(1, n):
            prod = qm.multiply_by_quantized_multiplier_64(prod * vals[..., i], m, s)
        y = qm.multiply_by_quantized_multiplier_64(prod, m, s) + qo.zero_point
        return store(np.clip(y, qo.qmin, qo.qmax).reshape(out_shape), qo)

    return run


# ---------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------


def _lut8(qi: UniformQuantizedType, qo: UniformQuantizedType, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """LUTPopulate<int8/uint8>: float32 dequantize, transform, round(y / s_out) + zp, clamp."""
    lo, hi = (-128, 127) if qi.is_signed else (0, 255)
    vals = np.arange(lo, hi + 1)
    deq = np.float32(qi.scale) * (vals - qi.zero_point).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = fn(deq.astype(np.float32)).astype(np.float32)
        inv = np.float32(1.0) / np.float32(qo.scale)
        r = qm.round_half_away(t * inv) + qo.zero_point
    # float -> int32 as x86 converts: NaN, +-inf and out-of-range values become INT32_MIN
    bad = ~np.isfinite(r) | (r < qm.INT32_MIN) | (r > qm.INT32_MAX)
    r = np.where(bad, qm.INT32_MIN, np.nan_to_num(r))
    return np.clip(r.astype(np.int64), lo, hi)


def _sigmoid32(x: np.ndarray) -> np.ndarray:
    one = np.float32(1.0)
    return one / (one + np.exp(-x))


def _lut_kernel(fn: Callable[[np.ndarray], np.ndarray]) -> Factory:
    def factory(op: Operation) -> Kernel:
        qi, qo = in_q(op, 0), out_q(op)
        if qi.bits == 8:
            table = _lut8(qi, qo, fn)
            base = -128 if qi.is_signed else 0

            def run(x: np.ndarray) -> np.ndarray:
                return store(table[x.astype(np.int64) - base], qo)

            return run

        def run16(x: np.ndarray) -> np.ndarray:
            y = fn(qm.dequantize(x, qi).astype(np.float32))
            return qm.quantize(y, qo)

        return run16

    return factory


# LiteRT's int16 LOGISTIC/TANH interpolate a 256-entry table of 65536 * sigmoid(i/24).
# Its entries are not plain roundings: they equal the least-squares fit of the
# piecewise-linear interpolant to 65536 * sigmoid at the knots and midpoints, rounded,
# with the last entry saturated to 65535 (we derive the table that way; checked equal to
# the one the runtime uses by running LiteRT's int16 LOGISTIC/TANH kernels).
@functools.cache
def _sigmoid_table() -> np.ndarray:
    """(Built on first use: the least-squares fit costs ~0.1-0.3 s, which int8 models never need.)"""
    n = 256
    j = np.arange(2 * (n - 1) + 1)
    k = np.minimum(j // 2, n - 2)
    frac = (j - 2 * k) / 2.0
    a = np.zeros((j.size, n))
    a[np.arange(j.size), k] = 1.0 - frac
    a[np.arange(j.size), k + 1] += frac
    y = 65536.0 / (1.0 + np.exp(-(k + frac) / 24.0))
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    table = np.minimum(np.round(coef), 65535).astype(np.int64)
    table[-1] = 65535
    return table


def _int16_sigmoid_tanh_params(scale: float, tanh: bool) -> tuple[int, int]:
    """(input_multiplier, input_left_shift) as LiteRT's Sigmoid/TanhPrepare choose them for int16."""
    pot, lg = _is_pot(scale)
    left = 12 + lg
    pot = pot and (left in (0, 1) if tanh else left == 0)
    if pot:
        return 3 << left, 0
    mult = float(np.float64(f32(scale))) * 4096.0 * 3.0
    left = 0
    while mult <= 32767.0 / 2.0 and left <= 30:
        left += 1
        mult *= 2.0
    return int(mult), left


def _int16_table_op(op: Operation, tanh: bool, fallback: Factory) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    if qi.bits != 16:
        return fallback(op)
    mult, left = _int16_sigmoid_tanh_params(qi.scale, tanh)
    rnd = (1 << (left - 1)) if left > 0 else 0
    t = _sigmoid_table()
    bits = 8 if tanh else 9

    def run(x: np.ndarray) -> np.ndarray:
        v = (x.astype(np.int64) * mult + rnd) >> left
        a = np.abs(v)
        uh = a >> bits
        sat = uh >= 255
        uhc = np.minimum(uh, 254)
        ua, ub = t[uhc], t[uhc + 1]
        ut = a & ((1 << bits) - 1)
        res = (ua << bits) + ut * (ub - ua)
        if tanh:
            res = np.where(sat, 0xFFFF << 8, res)
            res = np.where(v >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
            out = res >> 8
        else:
            res = np.where(sat, 0x7FFF << 10, res)
            res = np.where(v >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
            out = res >> 10
        return store(np.clip(out, -32768, 32767), qo)

    return run


_logistic8 = _lut_kernel(_sigmoid32)
_tanh8 = _lut_kernel(lambda x: np.tanh(x))
KERNELS["LOGISTIC"] = lambda op: _int16_table_op(op, False, _logistic8)
KERNELS["TANH"] = lambda op: _int16_table_op(op, True, _tanh8)


@kernel("GELU")
def _gelu(op: Operation) -> Kernel:
    approx = bool(fk.opt(op, "approximate", False))
    from math import erf

    verf = np.vectorize(lambda v: np.float32(erf(float(v))), otypes=[np.float32])

    def gelu(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        if approx:
            c = np.float32(np.sqrt(2.0 / np.pi))
            return (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))).astype(np.float32)
        return (np.float32(0.5) * x * (np.float32(1.0) + verf(x * np.float32(np.sqrt(0.5))))).astype(np.float32)

    return _lut_kernel(gelu)(op)


def _relu_x(op: Operation, act: str) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    m, s = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale))))
    sc, z = np.float32(qo.scale), qo.zero_point
    bounds = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0)}[act]
    lo = max(qo.qmin if qo.bits != 8 else (-128 if qo.is_signed else 0), z + int(qm.round_half_away(np.float32(bounds[0]) / sc)))
    hi = qo.qmax if bounds[1] is None else min(qo.qmax, z + int(qm.round_half_away(np.float32(bounds[1]) / sc)))

    def run(x: np.ndarray) -> np.ndarray:
        y = mbqm(x.astype(np.int64) - qi.zero_point, m, s) + z
        return store(np.clip(y, lo, hi), qo)

    return run


KERNELS["RELU"] = lambda op: _relu_x(op, "RELU")
KERNELS["RELU6"] = lambda op: _relu_x(op, "RELU6")
KERNELS["RELU_N1_TO_1"] = lambda op: _relu_x(op, "RELU_N1_TO_1")
KERNELS["RELU_0_TO_1"] = lambda op: _relu_x(op, "RELU_0_TO_1")


@kernel("LEAKY_RELU")
def _leaky(op: Operation) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    alpha = f32(fk.opt(op, "alpha", 0.2))
    ma, sa = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) * alpha / np.float64(f32(qo.scale))))
    mi, si = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale))))

    def run(x: np.ndarray) -> np.ndarray:
        d = x.astype(np.int64) - qi.zero_point
        y = np.where(d >= 0, mbqm(d, mi, si), mbqm(d, ma, sa)) + qo.zero_point
        return store(np.clip(y, qo.qmin, qo.qmax), qo)

    return run


@kernel("SOFTMAX")
def _softmax(op: Operation) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    beta = f32(fk.opt(op, "beta", 1.0))
    if qi.bits == 8:
        scale = np.float32(-np.float32(qi.scale) * np.float32(beta))
        vals = np.arange(256, dtype=np.float32)
        table = np.empty(256, np.float32)
        table[255 - np.arange(256)] = np.exp(scale * vals).astype(np.float32)
        lo, hi = (-128, 127) if qo.is_signed else (0, 255)

        def run(x: np.ndarray) -> np.ndarray:
            xi = x.astype(np.int64)
            mx = xi.max(axis=-1, keepdims=True)
            e = table[255 - mx + xi]  # exp(-s * beta * (max - x))
            total = np.zeros(e.shape[:-1], np.float32)
            for j in range(e.shape[-1]):  # float32, summed in order like the kernel
                total = (total + e[..., j]).astype(np.float32)
            inv = (np.float32(1.0) / (total * np.float32(qo.scale))).astype(np.float32)
            p = (e * inv[..., None]).astype(np.float32)
            q = qm.round_half_away(p) + qo.zero_point
            return store(np.clip(q, lo, hi), qo)

        return run
    return _softmax16(op, qi, qo, beta)


def _lut16_populate(input_scale: float, input_zp: int, output_scale: float, output_zp: int, fn: Callable[[float], float]) -> np.ndarray:
    """LUTPopulate<int16> (double flavour): 513 entries, 9-bit index, midpoint bias correction."""
    input_min = input_scale * (-32768 - input_zp)
    input_max = input_scale * (32767 - input_zp)
    output_min = output_scale * (-32768 - output_zp)
    output_max = output_scale * (32767 - output_zp)
    steps = 512
    step = (input_max - input_min) / steps
    half = step / 2
    inv = 65536.0 / (output_max - output_min)
    lut = np.empty(513, np.int64)
    r = lambda v: float(qm.round_half_away(v))  # noqa: E731
    for i in range(steps):
        val = fn(input_min + i * step)
        mid = fn(input_min + i * step + half)
        nxt = fn(input_min + (i + 1) * step)
        sample = r(val * inv)
        mid_interp = r((nxt * inv + r(val * inv)) / 2)
        mid_val = r(mid * inv)
        bias = r((mid_interp - mid_val) / 2)
        lut[i] = int(min(max(sample - bias, -32768.0), 32767.0))
    lut[steps] = int(min(max(r(fn(input_max) * inv), -32768.0), 32767.0))
    return lut


def _lut16_lookup(value: np.ndarray, lut: np.ndarray) -> np.ndarray:
    v = value.astype(np.int64)
    index = 256 + (v >> 7)
    offset = v & 0x7F
    base = lut[index]
    slope = lut[index + 1] - lut[index]
    delta = (slope * offset + 64) >> 7
    return base + delta


def _softmax16(op: Operation, qi: UniformQuantizedType, qo: UniformQuantizedType, beta: float) -> Kernel:
    rng = 65535
    exp_lut = _lut16_populate(10.0 / rng, 32767, 2.0 / rng, 0, lambda v: float(np.exp(v)))
    inv_lut = _lut16_populate(1.0 / rng, -32768, 2.0 / rng, 0, lambda v: 1.0 / (1.0 + v))
    m, s = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) * beta / (10.0 / 65535.0)))

    def run(x: np.ndarray) -> np.ndarray:
        xi = x.astype(np.int64)
        mx = xi.max(axis=-1, keepdims=True)
        scaled = mbqm(xi - mx, m, s)  # [-65535, 0] <-> [-10, 0]
        e = _lut16_lookup(np.clip(scaled + 32767, -32768, 32767), exp_lut)  # Q0.15
        total = e.sum(axis=-1, keepdims=True)  # Q16.15
        h = np.vectorize(lambda t: 32 - int(t).bit_length())(total)  # CountLeadingZeros(uint32)
        shifted = ((total << (h - 1)) + (1 << 13)) >> 14
        sym = np.clip(shifted - ((1 << 15) + (1 << 16)), -32768, 32767)
        recip = _lut16_lookup(sym, inv_lut)
        rs = 31 - h
        out = (e * recip + (np.int64(1) << (rs - 1))) >> rs
        return store(np.clip(out, 0, 32767), qo)

    return run


def _srdhm16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    t = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    high = np.where(t >= 0, t >> 15, -((-t) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, high)


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SaturatingDoublingHighMul on int16 (no rounding: C division by 2^15)."""
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    high = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((np.asarray(a) == -32768) & (np.asarray(b) == -32768), 32767, high)


def _sat_left_shift16(v: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(np.asarray(v, np.int64) << amount, -32768, 32767)


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier, then DownScaleInt32ToInt16Multiplier (round to 16 bits)."""
    m, e = qm.quantize_multiplier(real)
    m16 = 32767 if m >= (1 << 31) - 1 - (1 << 15) else (m + (1 << 15)) >> 16
    return m16, e


@kernel("HARD_SWISH")
def _hard_swish(op: Operation) -> Kernel:
    """int8 HARD_SWISH in LiteRT's 16-bit fixed point: x * relu6(x + 3) / 6."""
    qi, qo = in_q(op, 0), out_q(op)
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(qi.scale))
    out_m, out_e = _int16_multiplier(float(np.float32(hires / np.float32(qo.scale))))
    rel_m, rel_e = _int16_multiplier(float(np.float32(hires / np.float32(3.0 / 32768.0))))
    lo, hi = (-128, 127) if qo.is_signed else (0, 255)

    def run(x: np.ndarray) -> np.ndarray:
        v = x.astype(np.int64) - qi.zero_point
        v_hires = v * (1 << 7)
        v_out = _srdhm16(v_hires, out_m)
        r = v_hires
        if rel_e > 0:
            r = _sat_left_shift16(r, rel_e - 1)
        r = _srdhm16(r, rel_m)
        if rel_e > 0:
            r = _sat_left_shift16(r, 1)
        if rel_e < 0:
            r = qm.rounding_divide_by_pot(r, -rel_e)
        r = (r + (1 << 15)) >> 1
        pre = _sdhm16(r, v_out)
        y = qm.rounding_divide_by_pot(pre, -out_e) + qo.zero_point
        return store(np.clip(y, lo, hi), qo)

    return run


def _sat_mul_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT on int32 raw values."""
    x = np.asarray(x, np.int64)
    if exponent > 0:
        return np.clip(x << exponent, qm.INT32_MIN, qm.INT32_MAX)
    if exponent < 0:
        return qm.rounding_divide_by_pot(x, -exponent)
    return x


def inv_sqrt_multiplier(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GetInvSqrtQuantizedMultiplierExp (reverse shift): 1/sqrt(value) as (multiplier, left shift).

    Newton-Raphson in gemmlowp fixed point (3 integer bits, 5 iterations), vectorised;
    value <= 1 gives (INT32_MAX, 0).
    """
    v = np.asarray(value, np.int64).copy()
    small = v <= 1
    v = np.where(small, 4, v)
    shift = np.full(v.shape, 11, np.int64)
    while np.any(v >= (1 << 29)):
        big = v >= (1 << 29)
        v = np.where(big, v // 4, v)
        shift = shift + big
    clz = 32 - np.vectorize(lambda t: int(t).bit_length())(v)
    pairs = (clz - 1) // 2 - 1
    shift = shift - pairs
    v = v << (2 * pairs)
    srdhm = qm.saturating_rounding_doubling_high_mul
    x_in = v >> 1  # F3 raw
    half_in = _sat_mul_pot(x_in, -1)
    half_three = (1 << 28) + (1 << 27)
    x = np.full(v.shape, 1 << 28, np.int64)  # F3 one
    for _ in range(5):
        x3 = _sat_mul_pot(srdhm(srdhm(x, x), x), 6)  # F9 -> F3
        t = qm._wrap32(srdhm(np.int64(half_three), x) - srdhm(half_in, x3))  # F6
        x = _sat_mul_pot(t, 3)  # F6 -> F3
    x = srdhm(x, 1518500250)  # * sqrt(2)/2
    neg = shift < 0
    x = np.where(neg, x << np.where(neg, -shift, 0), x)
    shift = np.where(neg, 0, shift)
    mult = np.where(small, qm.INT32_MAX, x)
    return mult, np.where(small, 0, -shift)


def _rsqrt16(qi: UniformQuantizedType, qo: UniformQuantizedType) -> Kernel:
    """int16 RSQRT: LiteRT's 513-entry LUTPopulate table of 1/sqrt(x), with x <= 0 mapped to
    the largest output (32767 steps); negative inputs fail the invoke, as in LiteRT."""
    top = np.float32(32767) * np.float32(qo.scale)

    def fn(v: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v <= 0, top, np.float32(1) / np.sqrt(v.astype(np.float32))).astype(np.float32)

    lut = _lut16_populate_f32(qi, qo, fn)

    def run(x: np.ndarray) -> np.ndarray:
        if np.any(x.astype(np.int64) < qi.zero_point):
            raise TflquantError("RSQRT of a negative value (LiteRT fails the invoke: only defined for positive values)")
        return store(np.clip(_lut16_lookup(x, lut), -32768, 32767), qo)

    return run


@kernel("RSQRT")
def _rsqrt(op: Operation) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    if qi.bits != 8:
        return _rsqrt16(qi, qo)
    m, s = qm.quantize_multiplier(1.0 / (float(np.sqrt(np.float64(f32(qi.scale)))) * float(np.float64(f32(qo.scale)))))
    lo, hi = (-128, 127) if qo.bits == 8 else (-32768, 32767)
    k_shift = 20

    def run(x: np.ndarray) -> np.ndarray:
        v = x.astype(np.int64) - qi.zero_point
        im, ish = inv_sqrt_multiplier(np.maximum(v, 1))
        data = mbqm(np.ones_like(v), im, ish + k_shift)
        out = mbqm(data, m, s - k_shift) + qo.zero_point
        out = np.where(v == 0, hi, out)
        return store(np.clip(out, lo, hi), qo)

    return run


def _clz32(x: np.ndarray) -> np.ndarray:
    """Leading zero bits of x as an unsigned 32-bit value (32 for 0)."""
    v = np.asarray(x, np.int64) & 0xFFFFFFFF
    length = np.zeros(v.shape, np.int64)
    for bits in (16, 8, 4, 2, 1):
        big = v >= (1 << bits)
        length += np.where(big, bits, 0)
        v = np.where(big, v >> bits, v)
    return 32 - (length + (v > 0))


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 on raw Q0.31 values: Newton-Raphson on half
    the denominator in Q2.29 (start 48/17 - 32/17 d, three steps), result back in Q0.31."""
    srdhm = qm.saturating_rounding_doubling_high_mul
    s = np.asarray(a, np.int64) + qm.INT32_MAX
    half = np.where(s >= 0, (s + 1) // 2, -((1 - s) // 2))  # RoundingHalfSum(a, one)
    x = 1515870810 + srdhm(half, -1010580540)
    for _ in range(3):
        err = (1 << 29) - srdhm(half, x)
        x = x + np.clip(srdhm(x, err) << 2, qm.INT32_MIN, qm.INT32_MAX)
    return np.clip(x << 1, qm.INT32_MIN, qm.INT32_MAX)


def _rounding_shift_x86(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """RoundingDivideByPOT as LiteRT's x86-64 build computes it, exponents above 31 included
    (C leaves them undefined): the mask is (2^e - 1) truncated to 32 bits, the shift count
    is taken mod 32. Measured bit-exact against ai-edge-litert's int8 DIV."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = qm._wrap32((np.int64(1) << np.minimum(e, 62)) - 1)
    remainder = qm._wrap32(x & mask)
    threshold = (mask >> 1) + (x < 0)
    return qm._wrap32((x >> (e & 31)) + (remainder > threshold))


@kernel("DIV")
def _div(op: Operation) -> Kernel:
    """int8 DIV (reference_ops::DivElementwise): the divisor's reciprocal in fixed point
    (GetReciprocal), the dividend shifted by its leading sign bits, rescaled by
    s1 / (s2 s_out) with a total right shift that exceeds 31 for small dividends and wide
    divisor ranges: there LiteRT's result is garbage (reproduced). A divisor equal to its
    zero point fails the invoke in LiteRT, and here."""
    q1, q2, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    if qo.bits != 8:
        raise NotImplementedError("int16 DIV is simulated in float")
    lo, hi = act_range(op, qo)
    m, s = qm.quantize_multiplier(f32(q1.scale) / (f32(q2.scale) * f32(qo.scale)))
    srdhm = qm.saturating_rounding_doubling_high_mul

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = fk.align(a, b)
        v1 = a.astype(np.int64) - q1.zero_point
        v2 = b.astype(np.int64) - q2.zero_point
        if np.any(v2 == 0):
            raise TflquantError("DIV: a divisor equals its zero point (LiteRT fails the invoke: division by zero)")
        v1, v2 = np.broadcast_arrays(np.where(v2 < 0, -v1, v1), np.abs(v2))
        lead = _clz32(v2)
        recip_shift = 31 - lead
        inv = _one_over_one_plus_x(qm._wrap32(((v2 << lead) & 0xFFFFFFFF) - (1 << 31)))
        headroom = np.where(v1 >= 0, _clz32(v1) - 1, _clz32(2 * -v1 - 1))
        quotient = srdhm(qm._wrap32(v1 << headroom), inv)
        r = qo.zero_point + _rounding_shift_x86(srdhm(quotient, m), recip_shift + headroom - s)
        return store(np.clip(r, lo, hi), qo)

    return run


@kernel("ABS")
def _abs(op: Operation) -> Kernel:
    """|x - zp_in|, rescaled by s_in / s_out when the parameters differ, + zp_out."""
    qi, qo = in_q(op, 0), out_q(op)
    rescale = (f32(qi.scale), qi.zero_point) != (f32(qo.scale), qo.zero_point)
    m, s = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale))))
    lo, hi = qo.qmin, qo.qmax

    wide = qi.bits == 16

    def run(x: np.ndarray) -> np.ndarray:
        v = np.abs(x.astype(np.int64) - qi.zero_point)
        if rescale and wide:
            # int16 with rescaling: LiteRT's result matches float32 dequantize-abs-quantize
            # (measured: 1 element in 21846 differs by one), not the integer multiplier.
            deq = (v.astype(np.float32) * np.float32(qi.scale)).astype(np.float32)
            y = qm.round_half_away(deq / np.float32(qo.scale)) + qo.zero_point
        else:
            y = mbqm(v, m, s) + qo.zero_point if rescale else v + qo.zero_point
        return store(np.clip(y, lo, hi), qo)

    return run


@kernel("PRELU")
def _prelu(op: Operation) -> Kernel:
    """x >= zp: (x - zp) * s_in / s_out; else (x - zp)(a - zp_a) * s_in s_a / s_out."""
    qi, qa, qo = in_q(op, 0), in_q(op, 1), out_q(op)
    m1, s1 = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) / np.float64(f32(qo.scale))))
    m2, s2 = qm.quantize_multiplier(float(np.float64(f32(qi.scale)) * np.float64(f32(qa.scale)) / np.float64(f32(qo.scale))))

    def run(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        x, alpha = fk.align(x, alpha)
        d = x.astype(np.int64) - qi.zero_point
        a = alpha.astype(np.int64) - qa.zero_point
        y = np.where(d >= 0, mbqm(d, m1, s1), mbqm(d * a, m2, s2)) + qo.zero_point
        return store(np.clip(y, qo.qmin, qo.qmax), qo)

    return run


@kernel("L2_NORMALIZATION")
def _l2norm(op: Operation) -> Kernel:
    """int8: x / sqrt(sum (x - zp)^2) in units of 1/128, via the fixed-point inverse sqrt."""
    qi, qo = in_q(op, 0), out_q(op)

    def run(x: np.ndarray) -> np.ndarray:
        d = x.astype(np.int64) - qi.zero_point
        acc = (d * d).sum(axis=-1, keepdims=True)
        im, ish = inv_sqrt_multiplier(acc)
        y = mbqm(d, im, ish + 7)
        return store(np.clip(y, -128, 127), qo)

    return run


def _lut16_populate_f32(qi: UniformQuantizedType, qo: UniformQuantizedType, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """LUTPopulate<int16> (float flavour): the same 513-entry table in float32 arithmetic."""
    f = np.float32
    s_in, s_out = f(qi.scale), f(qo.scale)
    input_min = f(s_in * f(-32768 - qi.zero_point))
    input_max = f(s_in * f(32767 - qi.zero_point))
    output_min = f(s_out * f(-32768 - qo.zero_point))
    output_max = f(s_out * f(32767 - qo.zero_point))
    step = f(f(input_max - input_min) / f(512))
    half = f(step / f(2))
    inv = f(f(65536) / f(output_max - output_min))
    i = np.arange(512, dtype=np.float32)
    x0 = (input_min + (i * step).astype(np.float32)).astype(np.float32)
    x1 = (input_min + (f(1) * (i + f(1)) * step).astype(np.float32)).astype(np.float32)
    xm = (x0 + half).astype(np.float32)
    val, mid, nxt = (fn(v).astype(np.float32) for v in (x0, xm, x1))
    r = qm.round_half_away
    sample = r((val * inv).astype(np.float32))
    mid_interp = r(((nxt * inv).astype(np.float32) + r((val * inv).astype(np.float32)).astype(np.float32)) / f(2))
    mid_val = r((mid * inv).astype(np.float32))
    with np.errstate(invalid="ignore"):
        bias = r((mid_interp - mid_val) / 2)
        entries = np.append(sample - bias, r((fn(np.array([input_max], np.float32)).astype(np.float32) * inv).astype(np.float32)))
    # clamp to int16; a NaN entry (inf - inf) converts as x86 does: int32 0x80000000 -> int16 0
    return np.where(np.isnan(entries), 0, np.clip(np.nan_to_num(entries, nan=0.0), -32768, 32767)).astype(np.int64)


def _exp(op: Operation) -> Kernel:
    qi, qo = in_q(op, 0), out_q(op)
    fn = lambda v: np.exp(v).astype(np.float32)  # noqa: E731
    if qi.bits == 8:
        return _lut_kernel(fn)(op)
    lut = _lut16_populate_f32(qi, qo, fn)
    return lambda x: store(_lut16_lookup(x, lut), qo)


KERNELS["EXP"] = _exp


def _lut8_op(fn: Callable[[np.ndarray], np.ndarray]) -> Factory:
    """A unary op LiteRT evaluates through the int8 LUTPopulate table (int16: float-simulated)."""

    def factory(op: Operation) -> Kernel:
        if in_q(op, 0).bits != 8:
            raise NotImplementedError("int16 variant is simulated in float")
        return _lut_kernel(fn)(op)

    return factory


def _log32(v: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(v.astype(np.float32)).astype(np.float32)


# int8 LOG is LiteRT's LUT (bit-exact); SQRT uses another formulation and stays float-simulated.
def _log(op: Operation) -> Kernel:
    """LOG: LiteRT's LUTPopulate table of log(x), x <= 0 mapped to the output's lowest value
    (int8: 256 entries, bit-exact; int16: 513 entries, interpolated, within 1 step: numpy's
    float32 log and the C library's differ in the last bit for some table entries)."""
    qi, qo = in_q(op, 0), out_q(op)
    if qi.bits == 8:
        return _lut_kernel(_log32)(op)
    lowest = np.float32(qo.qmin - qo.zero_point) * np.float32(qo.scale)

    def fn(v: np.ndarray) -> np.ndarray:
        return np.where(v <= 0, lowest, _log32(np.maximum(v, np.float32(1e-38)))).astype(np.float32)

    lut = _lut16_populate_f32(qi, qo, fn)
    return lambda x: store(np.clip(_lut16_lookup(x, lut), -32768, 32767), qo)


KERNELS["LOG"] = _log
# ELU int8: LiteRT's table of exp(x) - 1 (float32) for x < 0, x above (not expm1)
KERNELS["ELU"] = _lut8_op(lambda x: np.where(x < 0, np.exp(np.minimum(x, 0)) - np.float32(1), x).astype(np.float32))


# ---------------------------------------------------------------------------------------
# Data movement
# ---------------------------------------------------------------------------------------


@kernel("CONCATENATION")
def _concat(op: Operation) -> Kernel:
    qo = out_q(op)
    axis = int(fk.opt(op, "axis", 0))
    qis = [in_q(op, i) for i in range(len(op.operands))]
    rank = len(op.results[0].type.get_shape())  # type: ignore[union-attr]
    lo, hi = act_range(op, qo)

    def requant(x: np.ndarray, q: UniformQuantizedType) -> np.ndarray:
        if (q.scale, q.zero_point) == (qo.scale, qo.zero_point):
            return x
        sc = np.float32(np.float32(q.scale) * (np.float32(1.0) / np.float32(qo.scale)))
        bias = np.float32(-q.zero_point * sc)
        y = qm.round_half_away((x.astype(np.float32) * sc + bias).astype(np.float32)) + qo.zero_point
        return np.clip(y, qo.qmin, qo.qmax)

    def run(*xs: np.ndarray) -> np.ndarray:
        xs = fk.align(*xs) if len(xs) > 1 else list(xs)
        n = max(x.shape[0] for x in xs)
        xs = [np.broadcast_to(x, (n,) + x.shape[1:]) for x in xs]
        ax = fk.axis_norm(axis, rank) + 1
        y = np.concatenate([requant(x, q) for x, q in zip(xs, qis)], axis=ax)
        return store(np.clip(y, lo, hi), qo)

    return run


def _float_passthrough(name: str) -> Factory:
    """Ops that only move values (no arithmetic): the float kernel on the integer arrays."""

    def factory(op: Operation) -> Kernel:
        inner = fk.KERNELS[name](op)
        qo = out_q(op)

        def run(*args: Any) -> Any:
            r = inner(*args)
            if isinstance(r, (tuple, list)):
                return type(r)(store(np.asarray(v), qo) for v in r)
            return store(np.asarray(r), qo)

        return run

    return factory


for _name in (
    "MIRROR_PAD",
    "EMBEDDING_LOOKUP",
    "SELECT",
    "SELECT_V2",
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "TRANSPOSE",
    "GATHER",
    "GATHER_ND",
    "STRIDED_SLICE",
    "SLICE",
    "PACK",
    "UNPACK",
    "SPLIT",
    "SPLIT_V",
    "SPACE_TO_DEPTH",
    "DEPTH_TO_SPACE",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TILE",
    "BROADCAST_TO",
    "RESIZE_NEAREST_NEIGHBOR",
    "REVERSE_V2",
    "FILL",
    "DYNAMIC_UPDATE_SLICE",
    "ONE_HOT",
):
    if _name in fk.KERNELS:
        KERNELS[_name] = _float_passthrough(_name)


@kernel("TOPK_V2")
def _topk_v2(op: Operation) -> Kernel:
    """The k largest stored values (same parameters in and out), largest first, equal values
    by lower index as LiteRT's TopContainer orders them, and their int32 indices."""
    inner = fk.KERNELS["TOPK_V2"](op)
    qo = out_q(op)

    def run(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, idx = inner(x, k)
        return store(values, qo), idx

    return run


def _raw_passthrough(name: str) -> Factory:
    """Ops whose non-quantized result depends only on the order of the values (ARG_MAX)."""

    def factory(op: Operation) -> Kernel:
        return fk.KERNELS[name](op)

    return factory


for _name in ("ARG_MAX", "ARG_MIN"):
    KERNELS[_name] = _raw_passthrough(_name)


def _comparison(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Factory:
    """int8 comparisons: both inputs shifted left by 8 and rescaled by their own scale."""

    def factory(op: Operation) -> Kernel:
        q1, q2 = in_q(op, 0), in_q(op, 1)
        if q1.bits != 8 or q2.bits != 8:
            raise NotImplementedError("int16 comparisons are simulated in float")
        m1, s1 = qm.quantize_multiplier(f32(q1.scale))
        m2, s2 = qm.quantize_multiplier(f32(q2.scale))

        def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            a, b = fk.align(a, b)
            x1 = mbqm((a.astype(np.int64) - q1.zero_point) << 8, m1, s1)
            x2 = mbqm((b.astype(np.int64) - q2.zero_point) << 8, m2, s2)
            return fn(x1, x2)

        return run

    return factory


for _name, _fn in (
    ("EQUAL", np.equal),
    ("NOT_EQUAL", np.not_equal),
    ("LESS", np.less),
    ("LESS_EQUAL", np.less_equal),
    ("GREATER", np.greater),
    ("GREATER_EQUAL", np.greater_equal),
):
    KERNELS[_name] = _comparison(_fn)


@kernel("PAD", "PADV2")
def _pad(op: Operation) -> Kernel:
    qo = out_q(op)

    def run(x: np.ndarray, paddings: np.ndarray, value: np.ndarray | None = None) -> np.ndarray:
        p = np.asarray(paddings, dtype=np.int64).reshape(-1, 2)
        fill = qo.zero_point if value is None else int(np.ravel(value)[0])
        return store(np.pad(x, [(0, 0)] + [tuple(r) for r in p], constant_values=fill), qo)

    return run


@kernel("RESIZE_BILINEAR")
def _resize_bilinear(op: Operation) -> Kernel:
    qo = out_q(op)
    align = bool(fk.opt(op, "align_corners", False))
    half = bool(fk.opt(op, "half_pixel_centers", False))

    def scale10(in_size: int, out_size: int) -> int:
        if align and out_size > 1:
            return ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
        return ((1 << 10) * in_size + out_size // 2) // out_size

    def coords(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sc = scale10(in_size, out_size)
        v = np.arange(out_size, dtype=np.int64)
        scaled = v * sc + sc // 2 - (1 << 9) if half else v * sc
        # C division truncates toward zero
        low = np.maximum(np.sign(scaled) * (np.abs(scaled) >> 10), 0)
        up = np.minimum((scaled + (1 << 10) - 1 + 0) // 1, np.int64(1) << 62)
        up = np.sign(scaled + 1023) * (np.abs(scaled + 1023) >> 10)
        up = np.minimum(up, in_size - 1)
        return scaled, low, up

    def run(x: np.ndarray, size: np.ndarray) -> np.ndarray:
        xm, sb = merge(x)
        n, h, w, c = xm.shape
        oh, ow = int(size[0]), int(size[1])
        ys, y0, y1 = coords(oh, h)
        xs, x0, x1 = coords(ow, w)
        xi = xm.astype(np.int64)
        one = 1 << 10
        fy = (ys - one * y0)[None, :, None, None]
        fx = (xs - one * x0)[None, None, :, None]
        g = lambda yy, xx: xi[:, yy][:, :, xx]  # noqa: E731
        out20 = (
            g(y0, x0) * (one - fy) * (one - fx)
            + g(y1, x0) * fy * (one - fx)
            + g(y0, x1) * (one - fy) * fx
            + g(y1, x1) * fy * fx
        )
        rnd = np.where(out20 > 0, 1 << 19, -(1 << 19))
        t = out20 + rnd
        y = np.sign(t) * (np.abs(t) >> 20)
        return split(store(y, qo), sb)

    return run


# ---------------------------------------------------------------------------------------
# UNIDIRECTIONAL_SEQUENCE_LSTM, int8 "8x8_16" (lstm_eval EvalInteger8x8_16)
# ---------------------------------------------------------------------------------------
#
# LiteRT's integer LSTM, as its x86 build runs it (every tensor_utils routine it calls is
# the portable one there): per gate, int8 x int8 products accumulated in int32 with an
# effective bias (bias - zp * row sum of the weights, precomputed in Prepare), rescaled by
# MultiplyByQuantizedMultiplier to the Q3.12 gate scale and added, saturating to int16,
# into the gate (input part first, then the recurrent part); sigmoid / tanh in gemmlowp's
# 16-bit fixed point (Q3.12 in, Q0.15 out); cell = (f * c) >> 15 + (i * g) >> (30 + cell
# exponent) (rounding shifts, int16 saturating sum, optional clip); hidden = tanh of the
# cell (its power-of-two scale as integer bits) times the output gate, rescaled by
# 2^-30 / hidden scale and offset by the hidden zero point, clamped to int8; the hidden
# vector becomes the output state and the step's output. No projection, peephole or layer
# norm; CIFG (no input gate: 1 - forget) is supported.


def _wrap16(x: np.ndarray | int) -> np.ndarray:
    """Two's complement truncation to int16 (what storing an int into int16_t does)."""
    return ((np.asarray(x, np.int64) + 32768) & 0xFFFF) - 32768


def _const16(raw32: int) -> int:
    """A gemmlowp int16 fixed-point constant given as its int32 raw value: rounding >> 16."""
    return int(qm.rounding_divide_by_pot(np.int64(raw32), 16))


def _sat_shl16(x: np.ndarray, e: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<e> on int16 for e >= 0."""
    if e == 0:
        return x
    thr = (1 << (15 - e)) - 1
    return np.where(x > thr, 32767, np.where(x < -thr, -32768, _wrap16(x << e)))


def _exp_quarter16(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.15 in and out (Taylor series around -1/8)."""
    c_term = _const16(1895147668)
    c_third = _const16(715827883)
    x = _wrap16(a + (1 << 12))
    x2 = _srdhm16(x, x)
    x3 = _srdhm16(x2, x)
    x4 = _srdhm16(x2, x2)
    x4_4 = qm.rounding_divide_by_pot(x4, 2)
    poly = qm.rounding_divide_by_pot(_wrap16(_srdhm16(_wrap16(x4_4 + x3), c_third) + x2), 1)
    return np.clip(c_term + _srdhm16(c_term, _wrap16(x + poly)), -32768, 32767)


# exp(-2^k) for the barrel shifter of exp_on_negative_values, as int32 Q0.31 raw values.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def _exp_neg16(a: np.ndarray, ibits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a <= 0 raw int16 with `ibits` integer bits -> Q0.15."""
    frac = 15 - ibits
    quarter = 1 << (frac - 2)
    a_mod = _wrap16((a & (quarter - 1)) - quarter)
    r = _exp_quarter16(_sat_shl16(a_mod, ibits))
    rem = _wrap16(a_mod - a)
    for k, raw in _EXP_BARREL:
        if ibits > k:
            r = np.where((rem & (1 << (frac + k))) != 0, _srdhm16(r, _const16(raw)), r)
    if ibits > 5:
        r = np.where(a < _const16(-(1 << (36 - ibits))), 0, r)
    return np.where(a == 0, 32767, r)


def _newton_recip16(a: np.ndarray) -> np.ndarray:
    """The Q2.13 Newton-Raphson estimate of 1 / ((1 + a) / 2) for a in Q0.15 (3 iterations)."""
    s = a + 32767
    half = _wrap16(np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2)))  # RoundingHalfSum
    x = _wrap16(_const16(1515870810) + _srdhm16(half, _const16(-1010580540)))
    for _ in range(3):
        err = _wrap16((1 << 13) - _srdhm16(half, x))
        x = _wrap16(x + _sat_shl16(_srdhm16(x, err), 2))
    return x


def _sigmoid_q3_12(a: np.ndarray) -> np.ndarray:
    """gemmlowp logistic on FixedPoint<int16, 3> -> FixedPoint<int16, 0>."""
    pos = a > 0
    mag = np.where(pos, a, _wrap16(-a))
    r_pos = _sat_shl16(_newton_recip16(_exp_neg16(_wrap16(-mag), 3)), 1)
    r_neg = _wrap16(32767 - r_pos)
    return np.where(a == 0, 16384, np.where(pos, r_pos, r_neg))


def _tanh16(a: np.ndarray, ibits: int) -> np.ndarray:
    """gemmlowp tanh on FixedPoint<int16, ibits> -> FixedPoint<int16, 0>."""
    neg = a < 0
    n = np.where(neg, a, _wrap16(-a))
    t = _sat_shl16(_wrap16(_newton_recip16(_exp_neg16(n, ibits + 1)) - (1 << 13)), 2)
    return np.where(a == 0, 0, np.where(neg, _wrap16(-t), t))


def _checked_log2(x: float) -> int | None:
    """TFLite CheckedLog2 (float32 arithmetic): the exponent of a power-of-two scale."""
    lg = np.float32(np.log(np.float32(x))) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    r = np.round(lg)
    return int(r) if abs(float(lg - r)) < 1e-3 else None


def _lstm_scalar_type(op: Operation, v: SSAValue | None, name: str, bits: int) -> UniformQuantizedType:
    if v is None:
        raise TflquantError(f"integer LSTM needs the operand {name}")
    q = qtype(v, name)
    if q.per_axis or q.bits != bits or not q.is_signed:
        raise TflquantError(f"integer LSTM needs {name} quantized per tensor to int{bits}, got {v.type}")
    return q


@kernel("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _lstm(op: Operation) -> Kernel:
    names = op.OPERANDS  # type: ignore[attr-defined]
    get = op.operand  # type: ignore[attr-defined]
    label = "UNIDIRECTIONAL_SEQUENCE_LSTM"
    for n in ("projection_weights", "projection_bias", "cell_to_input_weights", "cell_to_forget_weights",
              "cell_to_output_weights", "input_layer_norm_coefficients", "forget_layer_norm_coefficients",
              "cell_layer_norm_coefficients", "output_layer_norm_coefficients"):
        if n in names and get(n) is not None:
            raise TflquantError(f"{label} with {n} has no integer kernel (only plain and CIFG LSTMs)")
    if bool(fk.opt(op, "diagonal_recurrent_tensors", False)):
        raise TflquantError(f"{label} with diagonal recurrent weights has no integer kernel")
    qx = _lstm_scalar_type(op, get("input"), "input", 8)
    qh = _lstm_scalar_type(op, get("output_state"), "output_state", 8)
    qc = _lstm_scalar_type(op, get("cell_state"), "cell_state", 16)
    _lstm_scalar_type(op, op.results[0], "the output", 8)
    inter = op.attributes.get("tfl.intermediates")
    entries = list(getattr(inter, "data", ()))
    if len(entries) != 5:
        raise TflquantError(f"{label} needs 5 intermediate tensors (tfl.intermediates), got {len(entries)}")
    hidden_t = entries[4].data.get("type")  # type: ignore[union-attr]
    qhid = quantized_element(hidden_t) if hidden_t is not None else None
    if qhid is None or qhid.per_axis:
        raise TflquantError(f"{label}: intermediate 4 (hidden) must be quantized per tensor, got {hidden_t}")
    cell_exp = _checked_log2(f32(qc.scale))
    if cell_exp is None:
        raise TflquantError(f"{label}: the cell state scale {qc.scale} must be a power of two")
    if not 0 <= 15 + cell_exp <= 6:
        raise TflquantError(f"{label}: the cell state scale 2^{cell_exp} must be within [2^-15, 2^-9] (LiteRT's tanh)")
    cifg = get("input_to_input_weights") is None
    gate_names = ("forget", "cell", "output") if cifg else ("input", "forget", "cell", "output")
    q12 = np.float32(2.0**-12)
    sx, sh = np.float32(qx.scale), np.float32(qh.scale)
    mults: dict[str, tuple[int, int, int, int]] = {}
    for g in gate_names:
        wi = _lstm_scalar_type(op, get(f"input_to_{g}_weights"), f"input_to_{g}_weights", 8)
        wr = _lstm_scalar_type(op, get(f"recurrent_to_{g}_weights"), f"recurrent_to_{g}_weights", 8)
        if get(f"{g}_gate_bias") is None:
            raise TflquantError(f"{label} needs {g}_gate_bias")
        mi, ei = qm.quantize_multiplier(float(np.float32(np.float32(wi.scale) * sx) / q12))
        mr, er = qm.quantize_multiplier(float(np.float32(np.float32(wr.scale) * sh) / q12))
        mults[g] = (mi, ei, mr, er)
    mhid, ehid = qm.quantize_multiplier(float(np.float32(2.0**-15 / float(np.float32(qhid.scale)) * 2.0**-15)))
    clip = float(fk.opt(op, "cell_clip", 0.0) or 0.0)
    qclip = int(np.clip(np.float32(clip) / np.float32(qc.scale), -32768.0, 32767.0)) if clip > 0 else 0
    time_major = bool(fk.opt(op, "time_major", False))
    zx, zh, zhid = qx.zero_point, qh.zero_point, qhid.zero_point
    tanh_bits = 15 + cell_exp
    cell_shift = 30 + cell_exp

    def matmul(v: np.ndarray, w: np.ndarray, bias: np.ndarray, m: int, e: int) -> np.ndarray:
        acc = qm._wrap32(exact_dot(v, w.T) + bias)
        return qm.multiply_by_quantized_multiplier(acc, m, e)

    def run(*args: np.ndarray | None) -> np.ndarray:
        a = dict(zip(names, args))
        x = np.asarray(a["input"])
        if x.ndim != 4:
            raise TflquantError(f"{label}: the integer kernel needs a 3-D input, got {x.shape[1:]}")
        if time_major:
            x = np.swapaxes(x, 1, 2)
        s, b, t, _ = x.shape
        xs = x.reshape(s * b, t, -1).astype(np.int64)
        gates = {}
        for g in gate_names:
            wi = np.asarray(a[f"input_to_{g}_weights"]).astype(np.int64)
            wr = np.asarray(a[f"recurrent_to_{g}_weights"]).astype(np.int64)
            bias = np.asarray(a[f"{g}_gate_bias"]).astype(np.int64)
            # PrecomputeZeroPointTimesWeightWithBias: int32 bias - zp * row sums
            bi = qm._wrap32(bias - zx * wi.sum(axis=1))
            br = qm._wrap32(-zh * wr.sum(axis=1))
            gates[g] = (wi, bi, wr, br)
        h0, c0 = np.asarray(a["output_state"]), np.asarray(a["cell_state"])
        h = np.broadcast_to(h0.reshape(h0.shape[0], -1), (s, h0[0].size)).reshape(s * b, -1).astype(np.int64)
        c = np.broadcast_to(c0.reshape(c0.shape[0], -1), (s, c0[0].size)).reshape(s * b, -1).astype(np.int64)

        def gate(g: str, xt: np.ndarray, act: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
            wi, bi, wr, br = gates[g]
            mi, ei, mr, er = mults[g]
            v = np.clip(matmul(xt, wi, bi, mi, ei), -32768, 32767)
            v = np.clip(matmul(h, wr, br, mr, er) + v, -32768, 32767)
            return act(v)

        outs = []
        for step in range(t):
            xt = xs[:, step]
            i = None if cifg else gate("input", xt, _sigmoid_q3_12)
            f = gate("forget", xt, _sigmoid_q3_12)
            gg = gate("cell", xt, lambda v: _tanh16(v, 3))
            c = _wrap16(qm.rounding_divide_by_pot(f * c, 15))
            if i is None:
                i = _wrap16(32767 - f)
            c = np.clip(c + _wrap16(qm.rounding_divide_by_pot(i * gg, cell_shift)), -32768, 32767)
            if qclip > 0:
                c = np.clip(c, -qclip, qclip)
            o = gate("output", xt, _sigmoid_q3_12)
            hid = qm.multiply_by_quantized_multiplier(o * _tanh16(c, tanh_bits), mhid, ehid) + zhid
            h = np.clip(hid, -128, 127)
            outs.append(h)
        y = np.stack(outs, axis=1).reshape(s, b, t, -1).astype(np.int8)
        if time_major:
            y = np.swapaxes(y, 1, 2)
        return np.ascontiguousarray(y)

    return run


# SHAPE reads only the shape: exact whatever the element type.
KERNELS["SHAPE"] = fk.KERNELS["SHAPE"]

INTEGER_OPS = frozenset(KERNELS)


# ---------------------------------------------------------------------------------------
# Hybrid kernels (dynamic-range models: float activations, integer weights)
# ---------------------------------------------------------------------------------------
# LiteRT's hybrid kernels quantize their float input to int8 at run time: per row
# (FULLY_CONNECTED, BATCH_MATMUL) or per batch element (CONV_2D, DEPTHWISE_CONV_2D);
# asymmetrically where the op asks (asymmetric_quantize_inputs) and for per-channel
# convolutions, else symmetric [-127, 127] (and always for int4 per tensor / channel
# weights, measured against LiteRT) (tensor_utils SymmetricQuantizeFloats /
# AsymmetricQuantizeFloats). Their int8 x int8 (or int4, or per-block) sums are exact and
# then scaled in float, so the float kernel on the dequantized input and weights computes the
# same values up to float rounding: hybrid ops run that way (the interpreter lists them in
# float_ops). Other hybrid-capable ops (EMBEDDING_LOOKUP, LSTM, ...) take dequantized weights.
HYBRID_PER_ROW = frozenset({"FULLY_CONNECTED", "BATCH_MATMUL"})
HYBRID_PER_BATCH = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})


def symmetric_input_rows(x: np.ndarray) -> np.ndarray:
    """Rows of x as SymmetricQuantizeFloats quantizes them, dequantized (scale max|x| / 127)."""
    x = np.asarray(x, np.float32)
    rng = np.max(np.abs(x), axis=1, keepdims=True) if x.shape[1] else np.zeros((len(x), 1), np.float32)
    safe = np.where(rng > 0, rng, np.float32(1)).astype(np.float32)
    q = np.clip(qm.round_half_away(x * (np.float32(127) / safe)), -127, 127)
    return np.where(rng > 0, q * (safe / np.float32(127)), 0).astype(np.float32)


def asymmetric_input_rows(x: np.ndarray) -> np.ndarray:
    """Rows of x as AsymmetricQuantizeFloats quantizes them, dequantized: range widened to
    hold 0, scale range / 255 (double), zero point from the end whose error
    |qmin| + |rmin / s| or |qmax| + |rmax / s| is smaller, nudged into [-128, 127]."""
    x = np.asarray(x, np.float32)
    empty_row = np.zeros((len(x), 1))
    lo = np.minimum(np.min(x, axis=1, keepdims=True), 0).astype(np.float64) if x.shape[1] else empty_row
    hi = np.maximum(np.max(x, axis=1, keepdims=True), 0).astype(np.float64) if x.shape[1] else empty_row
    empty = lo == hi
    scale = np.where(empty, 1.0, (hi - lo) / 255.0)
    from_min, from_max = -128.0 - lo / scale, 127.0 - hi / scale
    zp = np.where(128.0 + np.abs(lo / scale) < 127.0 + np.abs(hi / scale), from_min, from_max)
    zp = np.clip(qm.round_half_away(zp), -128, 127)
    s32 = scale.astype(np.float32)
    q = np.clip(qm.round_half_away(x * (np.float32(1) / s32)) + zp, -128, 127)
    return np.where(empty, 0, (q - zp) * s32).astype(np.float32)


def hybrid_input(op: Operation) -> Callable[[np.ndarray], np.ndarray] | None:
    """How op's hybrid kernel sees its float input (None: op is not hybrid): a function of
    the batched input array returning it quantized and dequantized as LiteRT does."""
    from xdsl.dialects.builtin import Float32Type, TensorType

    from tflquant.dialects import tfl
    from tflquant.dialects.quant import BlockwiseQuantizedType

    d = type(op).get_trait(tfl.DynamicRangeWeights) if isinstance(op, tfl.TflOp) else None
    key = tfl.op_type(op)
    if d is None or not d.hybrid or key not in HYBRID_PER_ROW | HYBRID_PER_BATCH or not op.operands:
        return None
    x = op.operands[0].type
    if not (isinstance(x, TensorType) and isinstance(x.element_type, Float32Type)) or isinstance(op.operands[0].owner, tfl.ConstOp):
        return None
    w = op.operands[1].type if len(op.operands) > 1 else None
    we = w.element_type if isinstance(w, TensorType) else None
    if not isinstance(we, UniformQuantizedType | BlockwiseQuantizedType):
        return None
    if isinstance(we, UniformQuantizedType) and we.bits == 4:
        asymmetric = False  # LiteRT's 4-bit hybrid path quantizes its input symmetrically (measured)
    else:
        asymmetric = bool(op.option("asymmetric_quantize_inputs")) if key in HYBRID_PER_ROW else (isinstance(we, UniformQuantizedType) and we.per_axis)
    rows = asymmetric_input_rows if asymmetric else symmetric_input_rows

    def quantized(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float32)
        flat = a.reshape(-1, a.shape[-1]) if key in HYBRID_PER_ROW else a.reshape(a.shape[0] * (a.shape[1] if key in HYBRID_PER_BATCH and a.ndim > 1 else 1), -1)
        return rows(flat).reshape(a.shape)

    return quantized
