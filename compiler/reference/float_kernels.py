"""numpy kernels for the float semantics of the `tfl` ops (what LiteRT's float kernels compute).

Each kernel is built once per op by a *factory*: `factory(op) -> kernel`, reading the op's
options up front; the kernel then maps numpy arrays to numpy arrays on every run.

Batched convention (see interpreter.py): a *data* input always carries a leading sample axis
(size N, or 1 for a sample-independent value the interpreter lifted); a *parameter* input
(weights, axes, shapes, paddings, ...; listed in PARAMS) never does. A kernel returns its
results with the sample axis (a tuple for several results), except the ops in
UNBATCHED_RESULTS, whose result does not depend on the sample (SHAPE).

Numerics follow LiteRT's reference kernels: float32 arithmetic, TFLite's SAME padding
(before = total // 2), pooling averages over the valid window only, bilinear resize with
TFLite's interpolation formula, round half away from zero when quantizing.

Speed (the float kernels are the calibration engine): the heavy kernels work on a few
samples at a time through reused per-thread scratch buffers (no fresh large arrays, data in
cache), apply bias and fused activation per chunk, and split a batch's samples over
`set_threads(n)` threads (default 2, or 1 on a single core; numpy releases the GIL). CONV_2D
is a chunked im2col with one product per filter row (large 3x3 stride-1 convolutions of many
channels: Winograd's F(2x2, 3x3), 16 products where the direct form has 36), DEPTHWISE_CONV_2D flat multiply-adds or
an einsum, RESIZE_BILINEAR two small interpolation-matrix products. Summation order differs
from LiteRT's; results stay within 1e-6 relative (tests/test_reference_float.py: 1e-4).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation

from tflquant.dialects import tfl
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType, blockwise_element, quantized_element
from tflquant import parallel as _parallel
from tflquant.errors import TflquantError

Kernel = Callable[..., Any]
Factory = Callable[[Operation], Kernel]

F32 = np.float32

# builtin -> operand names that are parameters (no sample axis; must not depend on the sample):
# what each op declares (tfl.KernelParams), plus the unmodelled builtins' (below).
PARAMS: dict[str, frozenset[str]] = {
    b: frozenset(p.names)
    for b, cls in tfl.BUILTIN_CLASSES.items()
    if (p := cls.get_trait(tfl.KernelParams)) is not None and p.names
}

# Input names of the unmodelled builtins (tfl.opaque) that have a kernel and parameters.
OPAQUE_OPERANDS: dict[str, tuple[str, ...]] = {
    "REDUCE_PROD": ("input", "axis"),
    "REDUCE_ANY": ("input", "axis"),
    "REDUCE_ALL": ("input", "axis"),
}

# Ops whose result has no sample axis even when the input has one (tfl.UnbatchedResult).
UNBATCHED_RESULTS = frozenset(b for b, cls in tfl.BUILTIN_CLASSES.items() if cls.has_trait(tfl.UnbatchedResult))

# Ops whose kernel also reports values of tensors it updates internally, for calibration:
# builtin -> operand names. The kernel takes a keyword `side` (a list, or None when nobody
# observes) and appends one array per name, with the sample axis first.
SIDE_VALUES: dict[str, tuple[str, ...]] = {
    b: s.side_values for b, cls in tfl.BUILTIN_CLASSES.items() if (s := cls.get_trait(tfl.Stateful)) is not None and s.side_values
}
# Ops that update variable tensors (their state) as they run. Their kernel takes a keyword
# `carry` (a list the interpreter keeps between runs, or None): with it, samples run in order
# and each starts from the state the previous one left, as successive LiteRT invokes do.
STATEFUL = frozenset(b for b, cls in tfl.BUILTIN_CLASSES.items() if cls.has_trait(tfl.Stateful))  # tfl.Stateful

# Ops that handle quantized operands/results themselves (no automatic dequantize/quantize).
# CAST copies raw values, quantized storage included, as LiteRT's CAST does (the GELU
# table lookup of legalize-for-micro casts int8 storage to int32 indices).
QUANT_AWARE = frozenset({"QUANTIZE", "DEQUANTIZE", "SHAPE", "CAST", "quant.qcast", "quant.dcast", "quant.stats"})

KERNELS: dict[str, Factory] = {}


def kernel(*names: str) -> Callable[[Factory], Factory]:
    def register(f: Factory) -> Factory:
        for n in names:
            KERNELS[n] = f
        return f

    return register


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def opt(op: Operation, field: str, default: Any = None) -> Any:
    """An option of a tfl op (modelled or opaque), with a default."""
    if hasattr(op, "FIELDS"):
        if field in op.FIELDS:  # type: ignore[attr-defined]
            return op.option(field)  # type: ignore[attr-defined]
        return default
    opts = op.properties.get("options")
    if opts is None:
        return default
    a = opts.data.get(field)  # type: ignore[attr-defined]
    if a is None:
        return default
    for attr in ("value", "data"):
        v = getattr(a, attr, None)
        if v is not None:
            v = getattr(v, "data", v)
            return v
    return default


def operand_index(op: Operation, name: str) -> int:
    return op.OPERANDS.index(name)  # type: ignore[attr-defined]


def result_type(op: Operation, i: int = 0) -> TensorType:
    t = op.results[i].type
    assert isinstance(t, TensorType)
    return t


def static_shape(t: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in t.get_shape())


def ints(a: np.ndarray | None) -> list[int]:
    return [] if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def check_result(shape: Sequence[int], itemsize: int = 4) -> None:
    """Before allocating a result whose shape comes from operand values (FILL's dims, TILE's
    multiples, paddings, ...): a negative or implausibly large shape is an error, never an
    allocation of terabytes."""
    from tflquant.fileio import check_fits

    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise TflquantError(f"its operands give a result of negative shape {dims[1:]}: check the model")
    check_fits(math.prod(dims) * itemsize, f"its result of shape {dims[1:]} for {dims[0] if dims else 0} sample(s)",
               "check the shape operands in the model (or lower the batch size)")


def activation(name: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """In-place fused activation on a freshly computed float array (None for NONE)."""
    if name in ("NONE", "0", None):
        return None
    if name == "RELU":
        return relu_inplace
    if name == "RELU6":
        return lambda x: np.clip(x, 0, 6, out=x)
    if name == "RELU_N1_TO_1":
        return lambda x: np.clip(x, -1, 1, out=x)
    if name == "TANH":
        return lambda x: np.tanh(x, out=x)
    if name == "SIGN_BIT":
        return lambda x: np.signbit(x).astype(x.dtype)
    raise TflquantError(f"unknown fused activation function {name!r}")


def with_act(op: Operation) -> Callable[[np.ndarray], np.ndarray]:
    """The fused activation as LiteRT's float kernels apply it: they clamp to the range of
    RELU / RELU6 / RELU_N1_TO_1 and ignore TANH and SIGN_BIT (CalculateActivationRange)."""
    act = fused_act(op)
    if act is None:
        return lambda x: x
    return act


def fused_act(op: Operation) -> Callable[[np.ndarray], np.ndarray] | None:
    """with_act's in-place clamp, or None when the op applies none."""
    name = opt(op, "fused_activation_function", "NONE")
    return None if name in ("TANH", "SIGN_BIT") else activation(name)


def align(*arrs: np.ndarray) -> list[np.ndarray]:
    """Give batched arrays equal rank by inserting unit dims right after the sample axis
    (TFLite broadcasting aligns per-sample shapes on the right)."""
    r = max(a.ndim for a in arrs)
    return [a if a.ndim == r else a.reshape(a.shape[:1] + (1,) * (r - a.ndim) + a.shape[1:]) for a in arrs]


def as_f32(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == F32 else a.astype(F32)


def merge_batch(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(S, B, ...) -> (S*B, ...) and the (S, B) to split back."""
    s, b = x.shape[0], x.shape[1]
    return x.reshape((s * b,) + x.shape[2:]), (s, b)


def split_batch(y: np.ndarray, sb: tuple[int, int]) -> np.ndarray:
    return y.reshape(sb + y.shape[1:])


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.trunc(x + np.copysign(np.asarray(0.5, x.dtype), x))


def axis_norm(axis: int, rank: int, what: str = "axis") -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < max(rank, 1):
        raise TflquantError(f"{what} {axis} is out of range for rank {rank}")
    return a


# ----------------------------------------------------------------------------------------
# quantization (used by QUANTIZE/DEQUANTIZE, qcast/dcast and the interpreter's conversions)
# ----------------------------------------------------------------------------------------


def _qparams(q: UniformQuantizedType, ndim: int, axis_shift: int) -> tuple[np.ndarray, np.ndarray]:
    scale = q.scale_array()
    zp = q.zero_point_array()
    if q.per_axis:
        shape = [1] * ndim
        shape[q.axis.data + axis_shift] = len(scale)
        return scale.reshape(shape), zp.reshape(shape)
    return scale.reshape(()), zp.reshape(())


def quantize(x: np.ndarray, q: UniformQuantizedType, axis_shift: int = 0) -> np.ndarray:
    """Float -> integer storage: round(x / scale) + zp, clamped to the storage range."""
    scale, zp = _qparams(q, x.ndim, axis_shift)
    v = round_half_away(as_f32(x) / scale.astype(F32)) + zp
    return np.clip(v, q.qmin, q.qmax).astype(q.numpy_dtype())


def dequantize(x: np.ndarray, q: UniformQuantizedType | BlockwiseQuantizedType, axis_shift: int = 0) -> np.ndarray:
    """Integer storage -> float32: (q - zp) * scale (computed in double like TFLite); a
    blockwise type: each block times its fp16 scale (what LiteRT's hybrid kernels read)."""
    if isinstance(q, BlockwiseQuantizedType):
        return q.dequantize(x)
    scale, zp = _qparams(q, x.ndim, axis_shift)
    return (scale * (x.astype(np.int64) - zp)).astype(F32)


def float_dtype(t: Any) -> np.dtype:
    """The numpy dtype a float kernel produces for tensor type t (quantized -> float32)."""
    from tflquant.ir import numpy_dtype_of_element

    e = t.element_type
    if isinstance(e, UniformQuantizedType):
        return np.dtype(F32)
    return numpy_dtype_of_element(e).newbyteorder("=")


@kernel("QUANTIZE")
def _quantize(op: Operation) -> Kernel:
    q = quantized_element(result_type(op))
    src = quantized_element(op.operands[0].type)
    if q is None:
        raise TflquantError(f"tfl.quantize result {result_type(op)} is not a quantized type")
    if src is not None:  # requantize
        return lambda x: quantize(dequantize(x, src, 1), q, 1)
    return lambda x: quantize(x, q, 1)


@kernel("DEQUANTIZE")
def _dequantize(op: Operation) -> Kernel:
    src = quantized_element(op.operands[0].type) or blockwise_element(op.operands[0].type)
    if src is None:  # fp16 (or other float) weights
        return lambda x: x.astype(F32)
    return lambda x: dequantize(x, src, 1)


@kernel("quant.qcast")
def _qcast(op: Operation) -> Kernel:
    q = quantized_element(result_type(op))
    assert q is not None
    return lambda x: quantize(x, q, 1)


@kernel("quant.dcast")
def _dcast(op: Operation) -> Kernel:
    q = quantized_element(op.operands[0].type)
    assert q is not None
    return lambda x: dequantize(x, q, 1)


@kernel("quant.stats")
def _stats(op: Operation) -> Kernel:
    return lambda x: x


# ----------------------------------------------------------------------------------------
# elementwise
# ----------------------------------------------------------------------------------------


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], fused: bool = False) -> Factory:
    def factory(op: Operation) -> Kernel:
        act = with_act(op) if fused else (lambda x: x)
        clamp = fused_act(op) if fused else None
        is_div = op.name == "tfl.div"
        swish = op.name == "tfl.mul" and any(
            isinstance(v.owner, Operation) and v.owner.name == "tfl.logistic" and _is_swish_mul(op, v.owner) for v in op.operands
        )

        def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            if swish and (p := _swish_product(a, b)) is not None:
                return p
            a, b = align(a, b)
            if is_div and a.dtype.kind in "iu":
                return _int_div(a, b)
            if clamp is not None and a.shape == b.shape and a.dtype == b.dtype == F32 and a.size > _ELEMWISE_CHUNK:
                # op and activation chunk by chunk while the chunk is in cache
                y = np.empty(a.shape, F32)
                af, bf, yf = a.reshape(-1), b.reshape(-1), y.reshape(-1)
                for i in range(0, yf.size, _ELEMWISE_CHUNK):
                    ys = yf[i : i + _ELEMWISE_CHUNK]
                    fn(af[i : i + _ELEMWISE_CHUNK], bf[i : i + _ELEMWISE_CHUNK], out=ys)
                    clamp(ys)
                return y
            return act(fn(a, b))

        return run

    return factory


KERNELS["ADD"] = _binary(np.add, True)
KERNELS["SUB"] = _binary(np.subtract, True)
KERNELS["MUL"] = _binary(np.multiply, True)
KERNELS["DIV"] = _binary(np.divide, True)
KERNELS["MAXIMUM"] = _binary(np.maximum)
KERNELS["MINIMUM"] = _binary(np.minimum)
KERNELS["SQUARED_DIFFERENCE"] = _binary(lambda a, b: np.square(a - b))
KERNELS["EQUAL"] = _binary(np.equal)
KERNELS["NOT_EQUAL"] = _binary(np.not_equal)
KERNELS["LESS"] = _binary(np.less)
KERNELS["LESS_EQUAL"] = _binary(np.less_equal)
KERNELS["GREATER"] = _binary(np.greater)
KERNELS["GREATER_EQUAL"] = _binary(np.greater_equal)
# opaque builtins that are cheap to support
KERNELS["FLOOR_DIV"] = _binary(lambda a, b: np.floor_divide(a, b) if a.dtype.kind in "iu" else np.floor(a / b))
KERNELS["FLOOR_MOD"] = _binary(np.mod)
KERNELS["POW"] = _binary(np.power)
KERNELS["LOGICAL_AND"] = _binary(np.logical_and)
KERNELS["LOGICAL_OR"] = _binary(np.logical_or)


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Factory:
    return lambda op: per_sample_parts(fn)


def per_sample_parts(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """An elementwise fn that, on a large batch, runs on sample ranges in parallel."""

    def run(x: np.ndarray) -> np.ndarray:
        if _parallel.get_threads() == 1 or x.ndim == 0 or x.shape[0] < 2 or x.size < (1 << 20):
            return fn(x)
        probe = np.asarray(fn(x[:1]))
        if probe.shape != x[:1].shape:
            return fn(x)
        y = np.empty(x.shape, probe.dtype)

        def part(s0: int, s1: int) -> None:
            y[s0:s1] = fn(x[s0:s1])

        split_samples(x.shape[0], x.size * 4, part)
        return y

    return run


# erfc in float64, numpy only: W. J. Cody's rational Chebyshev approximations ("Rational
# Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-638; the
# coefficients of his CALERF routine), on three intervals of y = |z|:
#   y <= 0.46875:        erfc(z) = 1 - z A(z^2) / B(z^2)
#   0.46875 < y <= 4:    erfc(y) = exp(-y^2) C(y) / D(y)
#   y > 4:               erfc(y) = exp(-y^2) / y (1/sqrt(pi) - s P(s) / Q(s)),  s = 1 / y^2
# and erfc(-y) = 2 - erfc(y). exp(-y^2) is exp(-a^2) exp(-(y - a)(y + a)) with a = y truncated
# to a multiple of 1/16 (a^2 exact), which keeps the relative error of y^2 out of the result.
# Measured against math.erfc on a 2e6-point grid over [-30, 30]: at most 9.6e-16 relative
# (4.3 ulp; scipy.special.erfc: 5.7e-14) where erfc(z) is a normal number (tests/test_erfc.py).
# NaN stays NaN; erfc(+-inf) = 0 / 2; y >= 28 gives exactly 0 (erfc(28) < 1e-342) or 2.
_ERFC_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
           1.85777706184603153e-1)
_ERFC_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
           8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
           2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
           3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
           6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
           2.33520497626869185e-3)
_ERFC_SMALL = 0.46875
_INV_SQRT_PI = 0.56418958354775628695


def _cody_terms(t: np.ndarray, num_c: Sequence[float], den_c: Sequence[float], num: np.ndarray, den: np.ndarray) -> None:
    """Cody's numerator and denominator at t, into num and den (k = len(den_c)):
    num = ((c[k] t + c[0]) t + ... + c[k-2]) t + c[k-1],  den = ((t + d[0]) t + ... + d[k-2]) t + d[k-1]."""
    k = len(den_c)
    np.multiply(t, num_c[k], out=num)
    np.copyto(den, t)
    for c, d in zip(num_c[: k - 1], den_c[: k - 1]):
        num += c
        num *= t
        den += d
        den *= t
    num += num_c[k - 1]
    den += den_c[k - 1]


def _erfc_chunk(z: np.ndarray, out: np.ndarray, buf: np.ndarray, mask: np.ndarray) -> None:
    """out = erfc(z) for a 1-D float64 chunk; buf: (7, >= z.size) float64 scratch (rows 5 and
    6 untouched), mask: bool scratch. Every value takes the first interval's formula (z clipped
    to it); the values past it (about half of a GELU's inputs) are gathered, take the other
    intervals' formulas (y clipped to 28: finite everywhere) and are scattered back."""
    n = z.size
    y, t, u, v, _ = (b[:n] for b in buf[:5])
    np.clip(z, -_ERFC_SMALL, _ERFC_SMALL, out=t)
    np.multiply(t, t, out=y)
    _cody_terms(y, _ERFC_A, _ERFC_B, u, v)
    u /= v
    u *= t
    np.subtract(1.0, u, out=out)  # NaN stays NaN here (and is not gathered below)
    np.abs(z, out=y)
    m = mask[:n]
    np.greater(y, _ERFC_SMALL, out=m)
    idx = np.flatnonzero(m)
    k = idx.size
    if not k:
        return
    y, t, u, v, w = (b[:k] for b in buf[:5])
    np.take(z, idx, out=w)
    np.abs(w, out=y)
    np.minimum(y, 28.0, out=y)
    np.minimum(y, 4.0, out=t)
    _cody_terms(t, _ERFC_C, _ERFC_D, u, v)
    u /= v  # C(y) / D(y), right up to y = 4
    far = np.flatnonzero(y > 4.0)
    if far.size:
        yf = y[far]
        s = 1.0 / (yf * yf)
        num, den = np.empty_like(s), np.empty_like(s)
        _cody_terms(s, _ERFC_P, _ERFC_Q, num, den)
        num *= s
        num /= den
        u[far] = (_INV_SQRT_PI - num) / yf
    np.multiply(y, 16.0, out=t)  # a = trunc(16 y) / 16
    np.trunc(t, out=t)
    t *= 0.0625
    np.add(y, t, out=v)
    y -= t
    v *= y  # (y - a)(y + a)
    np.negative(v, out=v)
    np.exp(v, out=v)
    t *= t
    np.negative(t, out=t)
    np.exp(t, out=t)
    u *= t
    u *= v  # erfc(|z|)
    np.copysign(u, w, out=u)  # z < 0: 2 - erfc(|z|), as 2 + (-erfc(|z|)); z > 0: 0 + erfc(z)
    np.less(w, 0.0, out=y)
    y += y
    u += y
    out[idx] = u


# values per chunk of erfc / GELU: some 70 numpy calls a chunk, so fewer chunks pay more than
# staying in L2 (7 float64 rows of 64K values: 3.7 MB; tiny_transformer's GELU over its
# calibration 1.47 -> 1.38 ms against 32K values a chunk, 8K: 2.0 ms)
_ERFC_CHUNK = 1 << 16


def _erfc_scratch(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-thread scratch for _erfc_chunk on n values: (7, n) float64 (rows 5 and 6 free for
    the caller) and an n-value bool mask."""
    return scratch("erfc", 14 * n).view(np.float64).reshape(7, n), scratch("erfc-mask", n // 4 + 1).view(np.bool_)


def erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function of a float array, in float64 (see _erfc_chunk)."""
    x = np.asarray(x, np.float64)
    zf = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(x.shape, np.float64)
    of = out.reshape(-1)
    n = max(1, min(_ERFC_CHUNK, zf.size))
    buf, mask = _erfc_scratch(n)
    with np.errstate(under="ignore"):
        for i in range(0, zf.size, n):
            _erfc_chunk(zf[i : i + n], of[i : i + n], buf, mask)
    return out


def _gelu_cody(x: np.ndarray) -> np.ndarray:
    """The float32 GELU through Cody's erfc (see _gelu_exact): half = 0.5 x in float32, times
    erfc(-x / sqrt(2)) in float64, rounded once to float32. float32 in cache-sized chunks."""
    xf = np.ascontiguousarray(x).reshape(-1)
    y = np.empty(x.shape, F32)
    yf = y.reshape(-1)
    n = max(1, min(_ERFC_CHUNK, xf.size))
    buf, mask = _erfc_scratch(n)
    z, e = buf[5], buf[6]
    half = scratch("gelu-half", n)
    with np.errstate(under="ignore"):
        for i in range(0, xf.size, n):
            xs = xf[i : i + n]
            k = xs.size
            np.multiply(xs, -math.sqrt(0.5), out=z[:k], dtype=np.float64)
            _erfc_chunk(z[:k], e[:k], buf, mask)
            np.multiply(xs, F32(0.5), out=half[:k])
            np.multiply(half[:k], e[:k], out=e[:k])  # float64 product
            yf[i : i + k] = e[:k]
    return y


# The float32 GELU through a table, bit-identical to _gelu_cody on all 2^32 float32 inputs
# (checked exhaustively) and 2x faster on decoder_tiny's GELU inputs (CPU 29 vs 57 ms).
# P(x) = erfc(-x / sqrt(2)) / 2 on [-_PHI_RANGE, _PHI_RANGE] is a cubic in t = 512 x - j on
# each interval |t| <= 1/2 around j / 512, interpolated at Chebyshev nodes of Cody's erfc. E
# is 4x the largest relative difference of the cubics from 0.5 erfc on 17 points per interval
# (7.6e-11, at the ends of the table; at least 1e-14). Where x P (1 - E) and x P (1 + E) round
# to the same float32, so does _gelu_cody's product 0.5 x erfc (rounding is monotonic, and it is
# within E of x P; for |x| < 2^-125, where _gelu_cody rounds 0.5 x first, x P is within E of
# a boundary whenever that rounding matters). The other elements (a float32 rounding boundary
# within E: 0.18% of decoder_tiny's GELU inputs) take _gelu_cody, and so do the inputs outside
# the table (row index clipped to its NaN end rows: |x| > 8, inf, NaN), except x >= 8 (GELU is
# x) and x <= -15 (-0.0; -inf: NaN). The row: s + 1.5 * 2^52 holds round(s) in its low bits.
_PHI_SCALE = 512
_PHI_RANGE = 8
_ROUND_MAGIC = 6755399441055744.0  # 1.5 * 2^52
_ROUND_MAGIC_BITS = int(np.array(_ROUND_MAGIC).view(np.int64))


@functools.cache
def _phi_table() -> tuple[np.ndarray, float]:
    """((rows, 4) float64 c0..c3 of the cubics, E), built on first use."""
    centers = np.arange(-_PHI_SCALE * _PHI_RANGE, _PHI_SCALE * _PHI_RANGE + 1) / _PHI_SCALE
    nodes = 0.5 * np.cos((2 * np.arange(4) + 1) * math.pi / 8)  # Chebyshev nodes in [-1/2, 1/2]
    vals = 0.5 * erfc((centers[:, None] + nodes / _PHI_SCALE) * -math.sqrt(0.5))
    coef = np.linalg.solve(nodes[:, None] ** np.arange(4), vals.T).T
    t = np.linspace(-0.5, 0.5, 17)
    approx = ((coef[:, 3:4] * t + coef[:, 2:3]) * t + coef[:, 1:2]) * t + coef[:, 0:1]
    want = 0.5 * erfc((centers[:, None] + t / _PHI_SCALE) * -math.sqrt(0.5))
    eps = max(4.0 * float((np.abs(approx - want) / want).max()), 1e-14)
    nan_row = np.full((1, 4), np.nan)  # rows 0 and -1: where take(mode="clip") puts indices off the table
    table = np.ascontiguousarray(np.concatenate([nan_row, coef, nan_row]))
    table.flags.writeable = False
    return table, eps


def _gelu_exact(x: np.ndarray) -> np.ndarray:
    """0.5 x erfc(-x / sqrt(2)), erfc in float64, rounded once to x's type (LiteRT's float
    GELU; GELU(-inf) is NaN there too). float32: through the table, in cache-sized chunks."""
    if x.dtype != F32:
        return (0.5 * x * erfc(-x.astype(np.float64) * math.sqrt(0.5))).astype(x.dtype)
    table, eps = _phi_table()
    xf = np.ascontiguousarray(x).reshape(-1)
    y = np.empty(x.shape, F32)
    yf = y.reshape(-1)
    n = max(1, min(_ERFC_CHUNK, xf.size))
    buf = scratch("gelu-table", 12 * n).view(np.float64)
    s, v, cols = buf[:n], buf[n : 2 * n], buf[2 * n : 6 * n].reshape(n, 4)
    j = scratch("gelu-index", 2 * n).view(np.int64)
    hi = scratch("gelu-hi", n)
    bad = scratch("gelu-bad", n // 4 + 1).view(np.bool_)
    redo: list[np.ndarray] = []  # indices in xf of the values for Cody's path, not yet done

    def flush() -> None:  # in few calls (Cody's path costs some 80 us a call on a few values)
        r = np.concatenate(redo) if len(redo) > 1 else redo[0]
        redo.clear()
        xr = xf[r]
        yr = np.where(xr >= 8.0, xr, xr * F32(0.0))
        mid = np.flatnonzero((xr > -15.0) & (xr < 8.0))
        yr[mid] = _gelu_cody(xr[mid])
        yf[r] = yr

    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        pending = 0
        for i in range(0, xf.size, n):
            xs, ys = xf[i : i + n], yf[i : i + n]
            k = xs.size
            sk, vk, jk, ck = s[:k], v[:k], j[:k], cols[:k]
            np.multiply(xs, float(_PHI_SCALE), out=sk, dtype=np.float64)  # exact
            np.add(sk, _ROUND_MAGIC, out=vk)
            np.subtract(vk.view(np.int64), _ROUND_MAGIC_BITS - _PHI_SCALE * _PHI_RANGE - 1, out=jk)  # row
            vk -= _ROUND_MAGIC  # round(s)
            sk -= vk  # t, exact
            np.take(table, jk, axis=0, out=ck, mode="clip")
            np.multiply(ck[:, 3], sk, out=vk)
            vk += ck[:, 2]
            vk *= sk
            vk += ck[:, 1]
            vk *= sk
            vk += ck[:, 0]  # P(x)
            np.multiply(vk, xs, out=vk)  # x P(x)
            np.multiply(vk, 1.0 - eps, out=ys)  # float32 roundings of x P (1 -+ E)
            np.multiply(vk, 1.0 + eps, out=hi[:k])
            np.not_equal(ys, hi[:k], out=bad[:k])  # NaN (off the table) included
            r = np.flatnonzero(bad[:k])
            if r.size:
                redo.append(r + i if i else r)
                pending += r.size
                if pending >= n:
                    flush()
                    pending = 0
        if redo:
            flush()
    return y


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1 + np.tanh(F32(math.sqrt(2 / math.pi)) * (x + F32(0.044715) * x * x * x)))).astype(x.dtype)


_ELEMWISE_CHUNK = 1 << 15  # elements per chunk of a multi-pass elementwise kernel (fits in L2)
_ZEROS = np.zeros(_ELEMWISE_CHUNK, F32)
_ZEROS.flags.writeable = False


def relu_inplace(x: np.ndarray) -> np.ndarray:
    """max(x, 0) in place. numpy's maximum against a scalar takes a slow loop (numpy 2.4,
    measured: 37-43 us per 32K float32 values, 4-5x an add); against an array of zeros of
    the same shape it runs at the speed of an add (7-9 us). Same values: NaN stays NaN,
    -0.0 becomes +0.0 either way (tests/test_conv_fast_paths.py)."""
    if x.dtype == F32 and x.flags.c_contiguous and x.size >= 1024:
        f = x.reshape(-1)
        for i in range(0, f.size, _ELEMWISE_CHUNK):
            c = f[i : i + _ELEMWISE_CHUNK]
            np.maximum(c, _ZEROS[: c.size], out=c)
        return x
    return np.maximum(x, 0, out=x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|) (stable: exp of a
    non-positive number only), written as max(e, [x >= 0]) / (1 + e): the same numbers,
    computed in float32 in cache-sized chunks without masks or temporaries (one exp)."""
    if x.dtype.kind != "f":
        x = x.astype(F32)
    y = np.empty(x.shape, x.dtype)
    _sigmoid_into(x, y)
    return y


def _sigmoid_into(x: np.ndarray, y: np.ndarray, prod: np.ndarray | None = None) -> None:
    """y = sigmoid(x) (see _sigmoid), and prod = x * y when given, chunk by chunk; y and prod
    contiguous, of x's shape and dtype."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    pf = None if prod is None else prod.reshape(-1)
    n = max(1, min(_ELEMWISE_CHUNK, xf.size))
    den = np.empty(n, x.dtype)
    for i in range(0, xf.size, n):
        xs, ys = xf[i : i + n], yf[i : i + n]
        d = den[: xs.size]
        np.abs(xs, out=d)
        np.negative(d, out=d)
        np.exp(d, out=d)
        np.greater_equal(xs, 0, out=ys)  # 1.0 / 0.0
        np.maximum(ys, d, out=ys)  # 1 where x >= 0, else e
        d += 1
        np.divide(ys, d, out=ys)
        if pf is not None:
            np.multiply(xs, ys, out=pf[i : i + n])


# Swish (x * sigmoid(x), written by the TF converter as LOGISTIC then MUL): the LOGISTIC
# kernel also computes the product while each chunk is in cache and leaves it here, per
# thread, for its MUL, which takes it when its operands are the very arrays it was made of
# (anything else, e.g. an op run alone: the MUL computes as usual). Same numbers either way.
_SWISH = threading.local()


def _is_swish_mul(mul: Operation, logistic: Operation) -> bool:
    """`mul` multiplies `logistic`'s input by `logistic`'s result, with no fused activation."""
    if mul.name != "tfl.mul" or len(mul.operands) != 2 or opt(mul, "fused_activation_function", "NONE") not in ("NONE", None):
        return False
    x, s = logistic.operands[0], logistic.results[0]
    return {id(v) for v in mul.operands} == {id(x), id(s)} and x is not s


def _swish_logistic(op: Operation) -> Callable[[np.ndarray], np.ndarray]:
    plain = per_sample_parts(_sigmoid)
    if not any(_is_swish_mul(u.operation, op) for u in op.results[0].uses):
        return plain

    def run(x: np.ndarray) -> np.ndarray:
        if x.dtype != F32 or x.ndim == 0 or x.size < _ELEMWISE_CHUNK:
            return plain(x)
        y, prod = np.empty(x.shape, F32), np.empty(x.shape, F32)

        def part(s0: int, s1: int) -> None:
            _sigmoid_into(x[s0:s1], y[s0:s1], prod[s0:s1])

        if _parallel.get_threads() == 1 or x.shape[0] < 2 or x.size < (1 << 20):
            part(0, x.shape[0])
        else:
            split_samples(x.shape[0], x.size * 4, part)
        _SWISH.last = (x, y, prod)
        return y

    return run


def _swish_product(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The product the swish LOGISTIC left for exactly these operands (taken once), or None."""
    last = getattr(_SWISH, "last", None)
    if last is None:
        return None
    x, y, prod = last
    if (a is x and b is y) or (a is y and b is x):
        _SWISH.last = None
        return prod
    return None


KERNELS.update(
    {
        "TANH": _unary(np.tanh),
        "RELU": _unary(lambda x: np.maximum(x, 0)),
        "RELU6": _unary(lambda x: np.clip(x, 0, 6)),
        "RELU_N1_TO_1": _unary(lambda x: np.clip(x, -1, 1)),
        "RELU_0_TO_1": _unary(lambda x: np.clip(x, 0, 1)),
        "HARD_SWISH": _unary(lambda x: x * np.clip(x + 3, 0, 6) / F32(6)),
        "EXP": _unary(np.exp),
        "LOG": _unary(np.log),
        "SQRT": _unary(np.sqrt),
        "RSQRT": _unary(lambda x: F32(1) / np.sqrt(x)),
        "SQUARE": _unary(np.square),
        "ABS": _unary(np.abs),
        "NEG": _unary(np.negative),
        "FLOOR": _unary(np.floor),
        "CEIL": _unary(np.ceil),
        "ROUND": _unary(np.round),  # TFLite ROUND rounds half to even
        "SIN": _unary(np.sin),
        "COS": _unary(np.cos),
        "SIGN": _unary(np.sign),
        "LOGICAL_NOT": _unary(np.logical_not),
        "ZEROS_LIKE": _unary(np.zeros_like),
        # LiteRT's float ELU: x for x >= 0, expm1(x) below
        "ELU": _unary(lambda x: np.where(x < 0, np.expm1(np.minimum(x, 0)), x).astype(x.dtype)),
    }
)


KERNELS["LOGISTIC"] = _swish_logistic


@kernel("DENSIFY")
def _densify(op: Operation) -> Kernel:
    return lambda x: x  # the interpreter densifies tfl.sparse_const when it plans the function


@kernel("GELU")
def _gelu(op: Operation) -> Kernel:
    return _gelu_tanh if opt(op, "approximate", False) else _gelu_exact


@kernel("LEAKY_RELU")
def _leaky(op: Operation) -> Kernel:
    alpha = F32(opt(op, "alpha", 0.0))
    return lambda x: np.where(x >= 0, x, x * alpha)


@kernel("PRELU")
def _prelu(op: Operation) -> Kernel:
    def run(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        x, alpha = align(x, alpha)
        return np.where(x >= 0, x, x * alpha)

    return run


# ----------------------------------------------------------------------------------------
# convolution and pooling (NHWC; the sample axis is merged into the batch)
# ----------------------------------------------------------------------------------------


def out_size_and_pad(size: int, k: int, stride: int, dilation: int, padding: str) -> tuple[int, int, int]:
    """TFLite's output size and (before, after) padding for one spatial dim."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        out = (size + stride - 1) // stride
    elif padding == "VALID":
        out = (size + stride - eff) // stride
    else:
        raise TflquantError(f"unsupported padding {padding!r}")
    total = max((out - 1) * stride + eff - size, 0)
    before = total // 2
    return out, before, total - before


def _pad_spatial(x: np.ndarray, pads: Sequence[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    if not any(p for pair in pads for p in pair):
        return x
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _windows(xp: np.ndarray, oh: int, ow: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> np.ndarray:
    """View (N, OH, OW, KH, KW, C) of the windows of a padded NHWC array."""
    n, _, _, c = xp.shape
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False
    )


# Scratch memory reused by every kernel run (kernels run one at a time per thread): fresh
# large arrays cost page faults on every run, which on this kind of workload is as much as
# the arithmetic; a small reused buffer stays in cache.
_SCRATCH = threading.local()
_CHUNK_BYTES = 512 << 10  # im2col chunk: fits in L2 next to the filter and the output rows


def scratch(key: str, n: int) -> np.ndarray:
    """A reused float32 buffer of n elements (contents undefined), one per key and thread."""
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    b = bufs.get(key)
    if b is None or b.size < n:
        b = bufs[key] = np.empty(max(n, 1024), F32)
    return b[:n]


# Worker threads for the heavy kernels (CONV_2D, DEPTHWISE_CONV_2D): the samples of a batch
# are split between threads (numpy releases the GIL in matrix products, copies and ufuncs;
# each thread has its own scratch). Measured on 2 shared cores: 1.6x on calibration.
# The threads and their pool are tflquant.parallel's (shared with quantize-weights).
_PARALLEL_MIN_WORK = 1 << 22  # multiply-adds below which a batch is not split


def set_threads(n: int) -> int:
    """Use at most n threads in the heavy kernels (1: never split); returns the old value.
    Process-wide (the quantize path only reads it): set it before quantizing, not during."""
    return _parallel.set_threads(n)


def get_threads() -> int:
    return _parallel.get_threads()


def split_samples(n: int, work: int, fn: Callable[[int, int], None], serial_parts: bool = False, ranges: int = 0) -> None:
    """fn(s0, s1) over sample ranges covering [0, n): in parallel when the work (about
    multiply-adds) is worth it. The calling thread and the pool's workers take the ranges
    (`ranges` of them, default one per thread) in order from a shared counter, so a thread
    slowed by other processes takes fewer. With serial_parts, kernels called inside fn do
    not split again (whole-plan parallelism). (tflquant.parallel.run_ranges.)"""
    _parallel.run_ranges(n, fn, None if work >= _PARALLEL_MIN_WORK else 1, serial_parts, ranges)


def _padded_sample_buffer(h: int, w: int, c: int, pads: Sequence[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """A (H+pt+pb, W+pl+pr, C) scratch buffer whose border holds `value`; copy a sample into
    its interior with `buf[pt:pt+h, pl:pl+w] = x`."""
    (pt, pb), (pl, pr) = pads
    hp, wp = h + pt + pb, w + pl + pr
    buf = scratch("pad", hp * wp * c).reshape(hp, wp, c)
    if pt:
        buf[:pt] = value
    if pb:
        buf[hp - pb :] = value
    if pl:
        buf[pt : hp - pb, :pl] = value
    if pr:
        buf[pt : hp - pb, wp - pr :] = value
    return buf


def conv2d_nhwc(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    dil: tuple[int, int],
    padding: str,
    act: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Float CONV_2D: x (N,H,W,C), w (O,KH,KW,C/groups), b (O,) -> (N,OH,OW,O), float32.

    `act` (in place, e.g. activation("RELU")) is applied to each output chunk while it is in
    cache. A 1x1 convolution is one matrix product (of the pixels its stride picks); small
    images go through one im2col product for several samples. Otherwise each sample is padded
    into a scratch buffer and processed a few output rows at a time: with stride 1 the
    chunk's im2col holds only the KW taps of each input row and the KH filter rows are KH
    accumulated products over row-shifted (contiguous) slices of it; with a larger stride
    the chunk holds the full KH*KW windows and needs one product. A large 3x3 stride-1
    convolution of many channels takes Winograd's F(2x2, 3x3) (`winograd_3x3`).
    """
    n, h, wd, c = x.shape
    o, kh, kw, ci = w.shape
    sh, sw = strides
    dh, dw = dil
    oh, pt, pb = out_size_and_pad(h, kh, sh, dh, padding)
    ow, pl, pr = out_size_and_pad(wd, kw, sw, dw, padding)
    if oh <= 0 or ow <= 0:
        return np.zeros((n, max(oh, 0), max(ow, 0), o), F32)
    if ci == 0 or c % ci or o % (c // ci):
        raise TflquantError(f"CONV_2D input has {c} channels, filter expects {ci} per group")
    x = as_f32(x)
    w = as_f32(w)
    b = None if b is None else as_f32(b)
    groups = c // ci
    if kh == kw == 1 and groups == 1 and pt == pb == pl == pr == 0:
        # one matrix product, in row chunks so bias and activation find the rows in cache
        # (strided: of the pixels the stride picks, copied once)
        if sh > 1 or sw > 1:
            x = np.ascontiguousarray(x[:, ::sh, ::sw][:, :oh, :ow])
        xf = x.reshape(-1, c)
        wmat = _filter_matrix(w.reshape(o, c))
        y = np.empty((n, oh, ow, o), F32)
        yf = y.reshape(-1, o)
        big = n * oh * ow >= _POINTWISE_BIG_ROWS and c + o >= 64
        step = max(256, (_POINTWISE_CHUNK_BYTES if big else _CHUNK_BYTES) // (4 * (c + o)))
        if not big and c * o >= _POINTWISE_WIDE:
            step = max(step, _POINTWISE_WIDE_ROWS)
        per_sample = oh * ow

        def rows(s0: int, s1: int) -> None:
            for r0 in range(s0 * per_sample, s1 * per_sample, step):
                r1 = min(r0 + step, s1 * per_sample)
                out = yf[r0:r1]
                np.matmul(xf[r0:r1], wmat, out=out)
                if b is not None:
                    out += b
                if act is not None:
                    act(out)

        split_samples(n, n * per_sample * c * o, rows)
        return y
    y = np.empty((n, oh, ow, o), F32)
    if (kh, kw, sh, sw, dh, dw, groups) == (3, 3, 1, 1, 1, 1, 1) and min(c, o) >= _WINOGRAD_MIN_CHANNELS \
            and n * oh * ow * o * 9 * c >= _WINOGRAD_MIN_WORK and 64 * c * o <= _WINOGRAD_FILTER_BYTES:
        u = winograd_filter(w)
        split_samples(n, n * oh * ow * o * 4 * c, lambda s0, s1: winograd_3x3(x[s0:s1], u, b, y[s0:s1], (pt, pl), act))
        return y
    og = o // groups

    def part(s0: int, s1: int) -> None:
        for g in range(groups):
            xg = x[s0:s1, ..., g * ci : (g + 1) * ci] if groups > 1 else x[s0:s1]
            yg = y[s0:s1, ..., g * og : (g + 1) * og] if groups > 1 else y[s0:s1]
            bg = None if b is None else b[g * og : (g + 1) * og]
            _conv_group(xg, w[g * og : (g + 1) * og], bg, yg, (sh, sw), (dh, dw), (pt, pb, pl, pr), act if groups == 1 else None)
        if act is not None and groups > 1:
            act(y[s0:s1])

    split_samples(n, n * oh * ow * o * kh * kw * ci, part)
    return y


def _filter_matrix(wm: np.ndarray) -> np.ndarray:
    """The (K, O) right operand of a convolution's product from its (O, K) filter rows: a
    wide filter (>= _POINTWISE_WIDE weights) as a transposed view, which BLAS reads in place
    (copying a 1024x2048 filter on every call took a third of the time of its product);
    a smaller one as a contiguous copy, as before (OpenBLAS's kernels for few output
    channels round differently on the view: the shared test models keep their bytes)."""
    return wm.T if wm.size >= _POINTWISE_WIDE else np.ascontiguousarray(wm.T)


def _conv_group(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    y: np.ndarray,
    strides: tuple[int, int],
    dil: tuple[int, int],
    pads: tuple[int, int, int, int],
    act: Callable[[np.ndarray], np.ndarray] | None,
) -> None:
    """One group of conv2d_nhwc, written into y (N,OH,OW,O) (a view when grouped)."""
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    _, oh, ow, _ = y.shape
    sh, sw = strides
    dh, dw = dil
    pt, pb, pl, pr = pads
    contiguous = y.flags.c_contiguous
    k = kh * kw * c
    if contiguous and n > 1 and oh * ow <= 256 and oh * ow * k * 4 <= _CONV_GEMM_BYTES and n * oh * ow * k * o >= _CONV_GEMM_MIN_WORK:
        _conv_group_samples(x, w, b, y, strides, dil, pads, act)
        return
    xp = _padded_sample_buffer(h, wd, c, [(pt, pb), (pl, pr)])
    s0, s1, s2 = xp.strides
    if sh == 1:
        kwc = kw * c
        wrows = [_filter_matrix(w[:, i].reshape(o, kwc)) for i in range(kh)]
        rows = max(1, min(oh, _CHUNK_BYTES // (ow * kwc * 4)))
        span = rows + (kh - 1) * dh
        cols = scratch("cols", span * ow * kwc)
        tmp = scratch("acc", rows * ow * o) if kh > 1 else None
    else:
        k = kh * kw * c
        wmat = _filter_matrix(w.reshape(o, k))
        rows = max(1, min(oh, _CHUNK_BYTES // (ow * k * 4)))
        cols = scratch("cols", rows * ow * k)
    out_tmp = None if contiguous else scratch("out", rows * ow * o)
    # the padded buffer is the same memory for every sample: build the chunks' window views
    # (as_strided is slow to call) and im2col views once
    chunks = []
    for r0 in range(0, oh, rows):
        r = min(rows, oh - r0)
        if sh == 1:
            rr = r + (kh - 1) * dh
            win = np.lib.stride_tricks.as_strided(xp[r0:], (rr, ow, kw, c), (s0, s1 * sw, s1 * dw, s2), writeable=False)
            cb = cols[: rr * ow * kwc]
            chunks.append((r0, r, win, cb.reshape(rr, ow, kw, c), cb.reshape(rr * ow, kwc)))
        else:
            win = np.lib.stride_tricks.as_strided(
                xp[r0 * sh :], (r, ow, kh, kw, c), (s0 * sh, s1 * sw, s0 * dh, s1 * dw, s2), writeable=False
            )
            cb = cols[: r * ow * k]
            chunks.append((r0, r, win, cb.reshape(r, ow, kh, kw, c), cb.reshape(r * ow, k)))
    for s in range(n):
        xp[pt : pt + h, pl : pl + wd] = x[s]
        for r0, r, win, cb_win, cb in chunks:
            m = r * ow
            out = y[s, r0 : r0 + r].reshape(m, o) if contiguous else out_tmp[: m * o].reshape(m, o)  # type: ignore[index]
            np.copyto(cb_win, win)
            if sh == 1:
                np.matmul(cb[:m], wrows[0], out=out)
                if kh > 1:
                    t = tmp[: m * o].reshape(m, o)  # type: ignore[index]
                    for i in range(1, kh):
                        np.matmul(cb[i * dh * ow : (i * dh + r) * ow], wrows[i], out=t)
                        out += t
            else:
                np.matmul(cb, wmat, out=out)
            if b is not None:
                out += b
            if act is not None:
                act(out)
            if not contiguous:
                y[s, r0 : r0 + r] = out.reshape(r, ow, o)


def _conv_group_samples(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    y: np.ndarray,
    strides: tuple[int, int],
    dil: tuple[int, int],
    pads: tuple[int, int, int, int],
    act: Callable[[np.ndarray], np.ndarray] | None,
) -> None:
    """_conv_group for small images (a sample's im2col fits in a chunk): the im2col of several
    samples at once (a strided window view of their padded copies, one copy) and one matrix
    product for all of them, so the product has enough rows to run at full speed."""
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    _, oh, ow, _ = y.shape
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    k = kh * kw * c
    g = max(1, min(n, _CONV_GEMM_BYTES // (oh * ow * k * 4)))
    xp = scratch("pad", g * hp * wp * c).reshape(g, hp, wp, c)
    if pt or pb or pl or pr:
        xp[...] = 0
    wmat = _filter_matrix(w.reshape(o, k))
    cols = scratch("cols", g * oh * ow * k)
    for s0 in range(0, n, g):
        gg = min(g, n - s0)
        xp[:gg, pt : pt + h, pl : pl + wd] = x[s0 : s0 + gg]
        cb = cols[: gg * oh * ow * k]
        np.copyto(cb.reshape(gg, oh, ow, kh, kw, c), _windows(xp[:gg], oh, ow, kh, kw, *strides, *dil))
        out = y[s0 : s0 + gg].reshape(gg * oh * ow, o)
        np.matmul(cb.reshape(gg * oh * ow, k), wmat, out=out)
        if b is not None:
            out += b
        if act is not None:
            act(out)


# Winograd F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
# 2016): each 2x2 output tile is A^T [(G g G^T) * (B^T d B)] A for the 4x4 input tile d,
# 16 products per tile and channel pair where the direct form has 36. The transforms' entries
# are 0, +-1 and +-1/2 (exact in float32); the results differ from the direct products by
# float32 rounding only (tests/test_fast_kernels.py: 2e-6 of the largest output against a
# float64 reference, like the direct path).
_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
_WINOGRAD_GG = np.kron(_WINOGRAD_G, _WINOGRAD_G).astype(F32)  # (16, 9): G g G^T of a flattened 3x3 g
# Only convolutions of at least this many input and output channels (the transforms cost a
# few passes over the data per output, which fewer channels do not pay for) and this many
# multiply-adds per call (ResNet50's 3x3 layers: 8 samples, 925M). Measured on one core, 8
# samples, direct -> Winograd: 56x56x64 21.8 -> 16-18 ms, 28x28x128 19.9 -> 12-13,
# 14x14x256 19.4 -> 11-12. The shared test models (at most 64 channels in, 32 or fewer out
# or in at the others) keep the direct products and their calibration bit for bit.
_WINOGRAD_MIN_CHANNELS = 64
_WINOGRAD_MIN_WORK = 1 << 27
# ... and at most this size of transformed filter (64 bytes per input x output channel),
# computed on every call: ResNet50's 512-channel layers (7x7 pixels, 16.8 MB) stay direct.
# With them: calibration peak RSS +50 MB (the filter and the larger scratch of both threads)
# for 3% less CPU.
_WINOGRAD_FILTER_BYTES = 8 << 20
_WINOGRAD_TILES = 128  # tiles per product at least (the products want rows) ...
_WINOGRAD_BYTES = 1 << 20  # ... or as many samples (or tile rows of one) as keep the transformed input this size


def winograd_filter(w: np.ndarray) -> np.ndarray:
    """G g G^T of a (O,3,3,C) filter as 16 (C, O) matrices: a (16, C, O) view of one small
    float32 product per output channel (computed on every call: 2.5 ms for 512x3x3x512, where
    keeping it would hold 16/9 of the 3x3 filters in memory)."""
    o, _, _, c = w.shape
    return np.matmul(_WINOGRAD_GG, w.reshape(o, 9, c)).transpose(1, 2, 0)


def winograd_3x3(
    x: np.ndarray,
    u: np.ndarray,
    b: np.ndarray | None,
    y: np.ndarray,
    pads: tuple[int, int],
    act: Callable[[np.ndarray], np.ndarray] | None,
) -> None:
    """A 3x3 stride-1 convolution x (N,H,W,C) -> y (N,OH,OW,O) (written in place), u the
    transformed filter (winograd_filter), pads the (top, left) padding. Samples go a few at a
    time through a zero-padded scratch copy whose size is a whole number of 2x2 output tiles
    (outputs past OH, OW are computed and dropped); per group: the input transform as
    strided row then column differences, 16 matrix products, the output transform (with
    the bias added once to the one product every output takes with coefficient 1)."""
    n, h, wd, c = x.shape
    _, oh, ow, o = y.shape
    pt, pl = pads
    th, tw = -(-oh // 2), -(-ow // 2)
    hp, wp = 2 * th + 2, 2 * tw + 2
    per_row = 64 * tw * c  # bytes of transformed input per tile row
    g = max(1, min(n, max(-(-_WINOGRAD_TILES // (th * tw)), _WINOGRAD_BYTES // (per_row * th))))
    rb = th if g > 1 else max(1, min(th, max(-(-_WINOGRAD_TILES // tw), _WINOGRAD_BYTES // per_row)))  # tile rows per product
    xp = scratch("pad", g * hp * wp * c).reshape(g, hp, wp, c)
    xp[...] = 0
    for s0 in range(0, n, g):
        gg = min(g, n - s0)
        xp[:gg, pt : pt + h, pl : pl + wd] = x[s0 : s0 + gg]
        for i0 in range(0, th, rb):
            _winograd_tiles(xp[:gg, 2 * i0 : 2 * min(th, i0 + rb) + 2], u, b, y[s0 : s0 + gg, 2 * i0 : 2 * (i0 + rb)])
        if act is not None:  # on the group's (contiguous) outputs: the tiles' are strided
            act(y[s0 : s0 + gg])


def _winograd_tiles(p: np.ndarray, u: np.ndarray, b: np.ndarray | None, y: np.ndarray) -> None:
    """winograd_3x3 on one block: p (G, 2*TH+2, 2*TW+2, C) padded input -> y (G, <=2*TH, <=2*TW, O)."""
    gg, hp, wp, c = p.shape
    th, tw, o = (hp - 2) // 2, (wp - 2) // 2, u.shape[2]
    t = gg * th * tw
    # B^T d B: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3), then the same over columns
    r = scratch("wino_rows", 4 * gg * th * wp * c).reshape(4, gg, th, wp, c)
    e = [p[:, k : k + 2 * th : 2] for k in range(4)]
    np.subtract(e[0], e[2], out=r[0])
    np.add(e[1], e[2], out=r[1])
    np.subtract(e[2], e[1], out=r[2])
    np.subtract(e[1], e[3], out=r[3])
    v = scratch("cols", 16 * t * c).reshape(4, 4, gg, th, tw, c)
    f = [r[:, :, :, k : k + 2 * tw : 2] for k in range(4)]
    np.subtract(f[0], f[2], out=v[:, 0])
    np.add(f[1], f[2], out=v[:, 1])
    np.subtract(f[2], f[1], out=v[:, 2])
    np.subtract(f[1], f[3], out=v[:, 3])
    m = scratch("acc", 16 * t * o).reshape(16, t, o)
    np.matmul(v.reshape(16, t, c), u, out=m)
    if b is not None:
        m[5] += b  # product (1, 1) enters every output of the tile with coefficient 1
    # A^T m A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: rows first (for the 4 columns at once)
    mm = m.reshape(4, 4, t, o)
    sr = scratch("tmp", 8 * t * o).reshape(2, 4, t, o)
    np.add(mm[0], mm[1], out=sr[0])
    sr[0] += mm[2]
    np.subtract(mm[1], mm[2], out=sr[1])
    sr[1] -= mm[3]
    whole = y.shape[1] == 2 * th and y.shape[2] == 2 * tw
    out = None if whole else scratch("out", t * o).reshape(gg, th, tw, o)
    for a in range(2):
        for bb in range(2):
            dst = y[:, a::2, bb::2]
            q = dst if whole else out
            q0, q1, q2 = (sr[a, k].reshape(gg, th, tw, o) for k in ((0, 1, 2) if bb == 0 else (1, 2, 3)))
            if bb == 0:
                np.add(q0, q1, out=q)
                q += q2
            else:
                np.subtract(q0, q1, out=q)
                q -= q2
            if not whole:
                dst[...] = q[:, : dst.shape[1], : dst.shape[2]]


_CONV_GEMM_BYTES = 4 << 20
# Output rows per product of a 1x1 convolution: 8 MB of rows when the call has many rows
# (larger products run faster), else 512 KB. Row blocks and sample groups change the last
# bits of OpenBLAS's products, so the thresholds keep small models (the shared test models:
# at most 18432 rows, 38M multiply-adds for a small-image convolution) on the blocking they
# had, and their calibration bit for bit.
_POINTWISE_CHUNK_BYTES = 8 << 20
_POINTWISE_BIG_ROWS = 20000
# A wide filter (at least 2^18 weights: 1 MB, which BLAS packs anew on every product) takes
# 2048 output rows per product when the call has fewer than _POINTWISE_BIG_ROWS: measured
# on one core, 8 samples, 256-row products -> 2048: ResNet50's 14x14x256 -> 1024 80 -> 88
# GFLOPS, 14x14x1024 -> 256 82 -> 90, 7x7x512 -> 2048 78 -> 87. (The shared test models'
# one such filter, 320x1280 at 3x3 pixels, gets at most 256 rows a call: same blocking.)
_POINTWISE_WIDE = 1 << 18
_POINTWISE_WIDE_ROWS = 2048
_CONV_GEMM_MIN_WORK = 1 << 27  # multiply-adds for _conv_group_samples (ResNet50's 14x14 and 7x7 layers: 925M)  # im2col rows of several small samples multiplied at once


def depthwise_nhwc(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    dil: tuple[int, int],
    padding: str,
    act: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Float DEPTHWISE_CONV_2D: x (N,H,W,C), w (1,KH,KW,C*M) -> (N,OH,OW,C*M), float32.

    Samples are processed a few at a time through a padded scratch buffer, bias and `act`
    applied per chunk. Few channels and large images: a multiply-add per tap over flat
    row-major slices of the padded (for strides, polyphase-split) input, so every numpy
    loop is long and contiguous. Otherwise one einsum over the windows, whose per-pixel
    loop is efficient once there are enough channels.
    """
    n, h, wd, c = x.shape
    _, kh, kw, oc = w.shape
    if oc % c:
        raise TflquantError(f"DEPTHWISE_CONV_2D filter has {oc} channels, not a multiple of the input's {c}")
    m = oc // c
    x = as_f32(x)
    w = as_f32(w)
    if m > 1:
        x = np.repeat(x, m, axis=3)
    sh, sw = strides
    dh, dw = dil
    oh, pt, pb = out_size_and_pad(h, kh, sh, dh, padding)
    ow, pl, pr = out_size_and_pad(wd, kw, sw, dw, padding)
    if oh <= 0 or ow <= 0 or n == 0:
        return np.zeros((n, max(oh, 0), max(ow, 0), oc), F32)
    y = np.empty((n, oh, ow, oc), F32)
    pads = (pt, pb, pl, pr)
    flat = oc <= 32 and oh * ow >= 100

    def part(s0: int, s1: int) -> None:
        if flat:
            _depthwise_flat(x[s0:s1], w[0], y[s0:s1], strides, dil, pads)
            chunk = max(1, _CHUNK_BYTES // (oh * ow * oc * 4))
            for c0 in range(s0, s1, chunk):
                ys = y[c0 : min(c0 + chunk, s1)]
                if b is not None:
                    ys += b
                if act is not None:
                    act(ys)
        else:
            _depthwise_einsum(x[s0:s1], w[0], b, y[s0:s1], strides, dil, pads, act)

    split_samples(n, n * oh * ow * oc * kh * kw * 4, part)  # x4: a tap costs more than a MAC
    return y


def _depthwise_einsum(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    y: np.ndarray,
    strides: tuple[int, int],
    dil: tuple[int, int],
    pads: tuple[int, int, int, int],
    act: Callable[[np.ndarray], np.ndarray] | None,
) -> None:
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    _, oh, ow, _ = y.shape
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    k = max(1, min(n, _CHUNK_BYTES // (hp * wp * c * 4)))
    xp = scratch("pad", k * hp * wp * c).reshape(k, hp, wp, c)
    if pt or pb or pl or pr:
        xp[...] = 0
    for s0 in range(0, n, k):
        kk = min(k, n - s0)
        xp[:kk, pt : pt + h, pl : pl + wd] = x[s0 : s0 + kk]
        ys = y[s0 : s0 + kk]
        np.einsum("nhwijc,ijc->nhwc", _windows(xp[:kk], oh, ow, kh, kw, *strides, *dil), w, out=ys)
        if b is not None:
            ys += b
        if act is not None:
            act(ys)


def _depthwise_flat(
    x: np.ndarray, w: np.ndarray, y: np.ndarray, strides: tuple[int, int], dil: tuple[int, int], pads: tuple[int, int, int, int]
) -> None:
    """y = depthwise(x, w) without bias. The padded input is split into its sh*sw stride
    phases (rows a::sh, columns b::sw), each a (HQ, WQ, C) grid; tap (i, j) reads phase
    (i*dh % sh, j*dw % sw) shifted by (i*dh // sh, j*dw // sw), which in a flat row-major
    buffer is one contiguous slice. Outputs are computed for the whole (HQ, WQ) grid of
    each sample (the extra rows/columns are discarded; they read zeros or the next sample)."""
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    _, oh, ow, _ = y.shape
    sh, sw = strides
    dh, dw = dil
    pt, pb, pl, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    hq, wq = -(-hp // sh), -(-wp // sw)
    rowlen = wq * c
    per = hq * rowlen
    taps = [((i * dh % sh) * sw + j * dw % sw, (i * dh // sh) * rowlen + (j * dw // sw) * c, i, j) for i in range(kh) for j in range(kw)]
    slack = max(t[1] for t in taps)
    k = max(1, min(n, _CHUNK_BYTES // (per * 4)))
    nph = sh * sw
    phases = scratch("phases", nph * (k * per + slack)).reshape(nph, k * per + slack)
    phases[...] = 0
    grid = phases[:, : k * per].reshape(nph, k, hq, wq, c)
    padded = None
    if nph > 1:
        padded = scratch("pad", k * hq * sh * wq * sw * c).reshape(k, hq * sh, wq * sw, c)
        padded[...] = 0
    wt = np.tile(w.reshape(kh, kw, 1, c), (1, 1, wq, 1)).reshape(kh, kw, rowlen)
    acc = scratch("acc", k * per)
    tmp = scratch("tmp", k * per)
    for s0 in range(0, n, k):
        kk = min(k, n - s0)
        if padded is None:
            grid[0, :kk, pt : pt + h, pl : pl + wd] = x[s0 : s0 + kk]
        else:
            padded[:kk, pt : pt + h, pl : pl + wd] = x[s0 : s0 + kk]
            for a in range(sh):
                for bb in range(sw):
                    grid[a * sw + bb, :kk] = padded[:kk, a::sh, bb::sw]
        rows = kk * hq
        total = rows * rowlen
        out = acc[:total].reshape(rows, rowlen)
        t = tmp[:total].reshape(rows, rowlen)
        for q, (p, off, i, j) in enumerate(taps):
            src = phases[p, off : off + total].reshape(rows, rowlen)
            if q == 0:
                np.multiply(src, wt[i, j], out=out)
            else:
                np.multiply(src, wt[i, j], out=t)
                out += t
        y[s0 : s0 + kk] = out.reshape(kk, hq, wq, c)[:, :oh, :ow]


def _conv_like(op: Operation, fn: Callable[..., np.ndarray]) -> Kernel:
    strides = (max(1, opt(op, "stride_h", 1)), max(1, opt(op, "stride_w", 1)))
    dil = (max(1, opt(op, "dilation_h_factor", 1)), max(1, opt(op, "dilation_w_factor", 1)))
    padding = opt(op, "padding", "SAME")
    act = fused_act(op)

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        xm, sb = merge_batch(as_f32(x))
        y = fn(xm, as_f32(w), None if b is None else as_f32(b), strides, dil, padding, act)
        return split_batch(y, sb)

    return run


@kernel("CONV_2D")
def _conv2d(op: Operation) -> Kernel:
    return _conv_like(op, conv2d_nhwc)


@kernel("DEPTHWISE_CONV_2D")
def _depthwise(op: Operation) -> Kernel:
    return _conv_like(op, depthwise_nhwc)


@kernel("TRANSPOSE_CONV")
def _transpose_conv(op: Operation) -> Kernel:
    sh, sw = max(1, opt(op, "stride_h", 1)), max(1, opt(op, "stride_w", 1))
    padding = opt(op, "padding", "SAME")
    act = fused_act(op)

    def run(output_shape: np.ndarray, w: np.ndarray, x: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        xm, sb = merge_batch(as_f32(x))
        w = as_f32(w)
        n, h, wd, c = xm.shape
        o, kh, kw, ci = w.shape
        if ci != c:
            raise TflquantError(f"TRANSPOSE_CONV input has {c} channels, filter expects {ci}")
        _, out_h, out_w, out_c = ints(output_shape)
        # TFLite pads as for the forward conv from the output size
        _, pt, _ = out_size_and_pad(out_h, kh, sh, 1, padding)
        _, pl, _ = out_size_and_pad(out_w, kw, sw, 1, padding)
        y = transpose_conv_nhwc(xm, w, None if b is None else as_f32(b), (sh, sw), (pt, pl), (out_h, out_w), act)
        return split_batch(y, sb)

    return run


def transpose_conv_nhwc(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: tuple[int, int],
    pads: tuple[int, int],
    out_hw: tuple[int, int],
    act: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Float TRANSPOSE_CONV: x (N,H,W,C), w (O,KH,KW,C) -> (N,OUT_H,OUT_W,O): every input
    pixel scatters x @ w[:, i, j, :].T to output (h*sh + i - pt, w*sw + j - pl). One matrix
    product gives all KH*KW taps of a chunk of samples, scattered into a scratch canvas."""
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    sh, sw = strides
    pt, pl = pads
    out_h, out_w = out_hw
    full_h = max((h - 1) * sh + kh, pt + out_h)
    full_w = max((wd - 1) * sw + kw, pl + out_w)
    y = np.empty((n, out_h, out_w, o), F32)
    if n == 0 or y.size == 0:
        return y
    wall = np.ascontiguousarray(w.transpose(3, 1, 2, 0).reshape(c, kh * kw * o))
    per = max(full_h * full_w * o, h * wd * kh * kw * o)
    k = max(1, _CHUNK_BYTES // (4 * per))

    def part(s0: int, s1: int) -> None:
        taps = scratch("taps", min(k, s1 - s0) * h * wd * kh * kw * o)
        canvas = scratch("canvas", min(k, s1 - s0) * full_h * full_w * o)
        for c0 in range(s0, s1, k):
            kk = min(k, s1 - c0)
            t = taps[: kk * h * wd * kh * kw * o].reshape(kk * h * wd, kh * kw * o)
            np.matmul(x[c0 : c0 + kk].reshape(-1, c), wall, out=t)
            t6 = t.reshape(kk, h, wd, kh, kw, o)
            full = canvas[: kk * full_h * full_w * o].reshape(kk, full_h, full_w, o)
            full[...] = 0
            for i in range(kh):
                for j in range(kw):
                    full[:, i : i + (h - 1) * sh + 1 : sh, j : j + (wd - 1) * sw + 1 : sw, :] += t6[:, :, :, i, j, :]
            ys = y[c0 : c0 + kk]
            ys[...] = full[:, pt : pt + out_h, pl : pl + out_w, :]
            if b is not None:
                ys += b
            if act is not None:
                act(ys)

    split_samples(n, n * h * wd * c * kh * kw * o, part)
    return y


def _pool(op: Operation, is_max: bool) -> Kernel:
    sh, sw = max(1, opt(op, "stride_h", 1)), max(1, opt(op, "stride_w", 1))
    kh, kw = opt(op, "filter_height", 1), opt(op, "filter_width", 1)
    padding = opt(op, "padding", "VALID")
    act = with_act(op)

    def window_op(xm: np.ndarray, oh: int, ow: int, pads: tuple[int, int, int, int]) -> np.ndarray:
        pt, pb, pl, pr = pads
        h, wd = xm.shape[1], xm.shape[2]
        fill = -np.inf if is_max else 0.0
        if xm.dtype.kind in "iu" and is_max:
            fill = np.iinfo(xm.dtype).min
        xp = _pad_spatial(xm, [(pt, pb), (pl, pr)], fill)
        y: np.ndarray | None = None
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
                if y is None:
                    y = patch.astype(F32 if not is_max else xm.dtype, copy=True)
                elif is_max:
                    np.maximum(y, patch, out=y)
                else:
                    y += patch
        assert y is not None
        if not is_max:
            ones = _pad_spatial(np.ones((1, h, wd, 1), F32), [(pt, pb), (pl, pr)])
            cnt = np.zeros((1, oh, ow, 1), F32)
            for i in range(kh):
                for j in range(kw):
                    cnt += ones[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
            y /= cnt
        return act(y)

    def run(x: np.ndarray) -> np.ndarray:
        xm, sb = merge_batch(x)
        n, h, wd, c = xm.shape
        oh, pt, pb = out_size_and_pad(h, kh, sh, 1, padding)
        ow, pl, pr = out_size_and_pad(wd, kw, sw, 1, padding)
        if oh <= 0 or ow <= 0:
            return split_batch(np.zeros((n, max(oh, 0), max(ow, 0), c), xm.dtype), sb)
        pads = (pt, pb, pl, pr)
        if n < 2 or n * oh * ow * c * kh * kw < _PARALLEL_MIN_WORK:
            return split_batch(window_op(xm, oh, ow, pads), sb)
        y = np.empty((n, oh, ow, c), xm.dtype if is_max else F32)

        def part(s0: int, s1: int) -> None:
            y[s0:s1] = window_op(xm[s0:s1], oh, ow, pads)

        split_samples(n, n * oh * ow * c * kh * kw, part)
        return split_batch(y, sb)

    return run


KERNELS["AVERAGE_POOL_2D"] = lambda op: _pool(op, False)
KERNELS["MAX_POOL_2D"] = lambda op: _pool(op, True)


# ----------------------------------------------------------------------------------------
# matrix products
# ----------------------------------------------------------------------------------------


@kernel("FULLY_CONNECTED")
def _fully_connected(op: Operation) -> Kernel:
    keep = bool(opt(op, "keep_num_dims", False))
    fmt = opt(op, "weights_format", "DEFAULT")
    if fmt not in ("DEFAULT", 0, "0"):
        raise TflquantError(f"FULLY_CONNECTED weights_format {fmt} has no float reference kernel")
    act = with_act(op)

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        x, w = as_f32(x), as_f32(w)
        k = w.shape[-1]
        s = x.shape[0]
        xf = x.reshape(s, -1, k)
        if w.shape[0] == 1:  # constant (lifted) weights
            y = (xf.reshape(-1, k) @ w[0].T).reshape(s, -1, w.shape[1])
        else:
            y = np.matmul(xf, np.swapaxes(w, -1, -2))
        if b is not None:
            y += as_f32(b).reshape(b.shape[0], 1, -1)
        if keep:
            y = y.reshape(x.shape[:-1] + (y.shape[-1],))
        return act(y)

    return run


@kernel("BATCH_MATMUL")
def _batch_matmul(op: Operation) -> Kernel:
    adj_x, adj_y = bool(opt(op, "adj_x", False)), bool(opt(op, "adj_y", False))

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            x, y = as_f32(x), as_f32(y)
        x, y = align(x, y)
        if adj_x:
            x = np.swapaxes(x, -1, -2)
        if adj_y:
            y = np.swapaxes(y, -1, -2)
        return np.matmul(x, y)

    return run


# ----------------------------------------------------------------------------------------
# reductions, softmax, normalization
# ----------------------------------------------------------------------------------------


def _reducer(fn: Callable[..., np.ndarray]) -> Factory:
    def factory(op: Operation) -> Kernel:
        keep = bool(opt(op, "keep_dims", False))

        def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
            r = x.ndim - 1
            axes = tuple(sorted({axis_norm(a, r) + 1 for a in ints(axis)}))
            if not axes:
                return x.copy()
            if x.dtype.kind in "iu" and fn is np.mean:
                y = np.mean(x, axis=axes, keepdims=keep, dtype=np.float64)
                return np.trunc(y).astype(x.dtype)  # integer mean truncates like TFLite
            return fn(x, axis=axes, keepdims=keep)

        return run

    return factory


KERNELS["MEAN"] = _reducer(np.mean)
KERNELS["SUM"] = _reducer(np.sum)
KERNELS["REDUCE_MAX"] = _reducer(np.max)
KERNELS["REDUCE_MIN"] = _reducer(np.min)
KERNELS["REDUCE_PROD"] = _reducer(np.prod)
KERNELS["REDUCE_ANY"] = _reducer(np.any)
KERNELS["REDUCE_ALL"] = _reducer(np.all)
PARAMS.update({k: frozenset({"axis"}) for k in ("REDUCE_ANY", "REDUCE_ALL")})


@kernel("SOFTMAX")
def _softmax(op: Operation) -> Kernel:
    beta = F32(opt(op, "beta", 1.0))

    def run(x: np.ndarray) -> np.ndarray:
        e = np.exp((x - row_max(x)) * beta)
        e /= e.sum(axis=-1, keepdims=True)
        return e

    return run


def row_max(x: np.ndarray) -> np.ndarray:
    """x.max(axis=-1, keepdims=True). Many short rows (attention scores: 16 a row) fold
    their columns with elementwise maxima instead: numpy's reduction over a short last axis
    runs its loop once per row (2048 rows of 16: 106 -> 51 us). The same values (a maximum
    does not depend on the order; NaN propagates either way)."""
    k = x.shape[-1] if x.ndim else 0
    if not (2 <= k <= 16 and x.size >= 512 * k and x.dtype.kind == "f"):
        return x.max(axis=-1, keepdims=True)
    m = x[..., 0:1].copy()
    for j in range(1, k):
        np.maximum(m, x[..., j : j + 1], out=m)
    return m


@kernel("LOG_SOFTMAX")
def _log_softmax(op: Operation) -> Kernel:
    def run(x: np.ndarray) -> np.ndarray:
        d = x - x.max(axis=-1, keepdims=True)
        return d - np.log(np.exp(d).sum(axis=-1, keepdims=True))

    return run


@kernel("L2_NORMALIZATION")
def _l2norm(op: Operation) -> Kernel:
    act = with_act(op)

    def run(x: np.ndarray) -> np.ndarray:
        n = np.sqrt(np.sum(np.square(x), axis=-1, keepdims=True))
        return act(x / np.maximum(n, F32(1e-6)))

    return run


@kernel("CUMSUM")
def _cumsum(op: Operation) -> Kernel:
    exclusive, reverse = bool(opt(op, "exclusive", False)), bool(opt(op, "reverse", False))

    def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
        a = axis_norm(ints(axis)[0], x.ndim - 1) + 1
        if reverse:
            x = np.flip(x, a)
        y = np.cumsum(x, axis=a, dtype=x.dtype)
        if exclusive:
            y = np.concatenate([np.zeros_like(np.take(y, [0], axis=a)), np.take(y, range(y.shape[a] - 1), axis=a)], axis=a)
        if reverse:
            y = np.flip(y, a)
        return np.ascontiguousarray(y)

    return run


# ----------------------------------------------------------------------------------------
# shape manipulation
# ----------------------------------------------------------------------------------------


@kernel("RESHAPE")
def _reshape(op: Operation) -> Kernel:
    option = opt(op, "new_shape", None)
    has_option = option is not None
    new_shape = [] if option is None or list(option) == [0] else list(option)  # LiteRT: legacy [0] means a scalar
    typed = static_shape(result_type(op))

    def run(x: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
        target = ints(shape) if shape is not None and shape.size > 0 else (new_shape if has_option else list(typed))
        if shape is not None and shape.size == 0 and shape.ndim == 1 and shape.dtype == np.int32:
            target = []  # LiteRT: an empty int32 shape vector reshapes to a scalar; any other empty shape, the option
        try:
            return x.reshape((x.shape[0], *target))
        except ValueError:
            raise TflquantError(f"RESHAPE of per-sample shape {x.shape[1:]} to {target} is impossible") from None

    return run


@kernel("SQUEEZE")
def _squeeze(op: Operation) -> Kernel:
    dims = list(opt(op, "squeeze_dims", []) or [])

    def run(x: np.ndarray) -> np.ndarray:
        r = x.ndim - 1
        if dims:
            axes = tuple(axis_norm(d, r) + 1 for d in dims)
        else:
            axes = tuple(i + 1 for i, d in enumerate(x.shape[1:]) if d == 1)
        return np.squeeze(x, axis=axes)

    return run


@kernel("EXPAND_DIMS")
def _expand_dims(op: Operation) -> Kernel:
    def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
        a = ints(axis)[0]
        r = x.ndim - 1
        if a < 0:
            a += r + 1
        return np.expand_dims(x, a + 1)

    return run


@kernel("TRANSPOSE")
def _transpose(op: Operation) -> Kernel:
    def run(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
        r = x.ndim - 1
        return np.transpose(x, (0, *(axis_norm(p, r) + 1 for p in ints(perm))))

    return run


def _common_samples(arrs: Sequence[np.ndarray]) -> list[np.ndarray]:
    s = max(a.shape[0] for a in arrs)
    return [a if a.shape[0] == s else np.broadcast_to(a, (s,) + a.shape[1:]) for a in arrs]


@kernel("CONCATENATION")
def _concat(op: Operation) -> Kernel:
    axis = opt(op, "axis", 0)
    act = with_act(op)

    def run(*xs: np.ndarray) -> np.ndarray:
        xs2 = _common_samples(xs)
        a = axis_norm(axis, xs2[0].ndim - 1) + 1
        dt = np.result_type(*xs2)
        n = xs2[0].shape[0]
        if n < 2 or any(x.shape[:a] != xs2[0].shape[:a] or x.shape[a + 1 :] != xs2[0].shape[a + 1 :] for x in xs2):
            return act(np.concatenate(xs2, axis=a))  # (let numpy report mismatched shapes)
        shape = list(xs2[0].shape)
        shape[a] = sum(x.shape[a] for x in xs2)
        y = np.empty(shape, dt)

        def part(s0: int, s1: int) -> None:  # a memory-bound copy: two threads move more bytes
            np.concatenate([x[s0:s1] for x in xs2], axis=a, out=y[s0:s1])
            act(y[s0:s1])

        split_samples(n, y.size * 4, part)
        return y

    return run


@kernel("PACK")
def _pack(op: Operation) -> Kernel:
    axis = opt(op, "axis", 0)

    def run(*xs: np.ndarray) -> np.ndarray:
        xs2 = _common_samples(xs)
        return np.stack(xs2, axis=axis_norm(axis, xs2[0].ndim) + 1)

    return run


@kernel("UNPACK")
def _unpack(op: Operation) -> Kernel:
    axis = opt(op, "axis", 0)

    def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
        a = axis_norm(axis, x.ndim - 1) + 1
        return tuple(np.take(x, i, axis=a) for i in range(x.shape[a]))

    return run


@kernel("SPLIT")
def _split(op: Operation) -> Kernel:
    n = len(op.results)

    def run(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.split(x, n, axis=axis_norm(ints(axis)[0], x.ndim - 1) + 1))

    return run


@kernel("SPLIT_V")
def _split_v(op: Operation) -> Kernel:
    def run(x: np.ndarray, size_splits: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, ...]:
        a = axis_norm(ints(axis)[0], x.ndim - 1) + 1
        sizes = ints(size_splits)
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[a] - (sum(sizes) + 1)
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=a))

    return run


@kernel("SLICE")
def _slice(op: Operation) -> Kernel:
    def run(x: np.ndarray, begin: np.ndarray, size: np.ndarray) -> np.ndarray:
        idx = [slice(None)]
        for d, (b, s) in enumerate(zip(ints(begin), ints(size))):
            idx.append(slice(b, x.shape[d + 1] if s == -1 else b + s))
        return x[tuple(idx)]

    return run


def _ss_start(b: int, size: int, stride: int, masked: bool) -> int:
    """TFLite's StridedSliceStartForAxis."""
    if b < 0:
        b += size
    b = min(max(b, 0), size) if stride > 0 else min(max(b, -1), size - 1)
    if masked:
        b = 0 if stride > 0 else size - 1
    return b


def _ss_end(e: int, start: int, size: int, stride: int, masked: bool, offset: bool) -> int:
    """TFLite's StridedSliceEndForAxis (not for shrunk axes)."""
    if offset:
        e += start
    if e < 0:
        e += size
    e = min(max(e, 0), size) if stride > 0 else min(max(e, -1), size - 1)
    if masked:
        e = size if stride > 0 else -1
    return e


def strided_slice_index(
    shape: Sequence[int], begin: Sequence[int], end: Sequence[int], strides: Sequence[int], masks: dict[str, int], offset: bool
) -> tuple[Any, ...]:
    """A numpy index computing TFLite STRIDED_SLICE on a tensor of `shape` (all masks)."""
    n = len(begin)
    ell = masks["ellipsis_mask"]
    new_axis = masks["new_axis_mask"]
    # input axes an ellipsis stands for: those not named by the other (non-new-axis) entries
    first_ell = next((i for i in range(n) if ell & (1 << i)), None)
    named = sum(1 for i in range(n) if not (new_axis & (1 << i)) and i != first_ell)
    idx: list[Any] = []
    axis = 0
    for i in range(n):
        bit = 1 << i
        if i == first_ell:
            cover = max(len(shape) - named, 0)
            idx.extend([slice(None)] * cover)
            axis += cover
            continue
        if new_axis & bit:
            idx.append(None)
            continue
        if axis >= len(shape):
            raise TflquantError(f"STRIDED_SLICE has more index entries than the input has dimensions {tuple(shape)}")
        size = shape[axis]
        st = int(strides[i]) if i < len(strides) else 1
        if st == 0:
            raise TflquantError("STRIDED_SLICE stride must not be 0")
        b = _ss_start(int(begin[i]), size, st, bool(masks["begin_mask"] & bit))
        if masks["shrink_axis_mask"] & bit:
            if not 0 <= b < size:
                raise TflquantError(f"STRIDED_SLICE shrinks axis {axis} at index {int(begin[i])}, outside its size {size}")
            idx.append(b)
        else:
            e = _ss_end(int(end[i]), b, size, st, bool(masks["end_mask"] & bit), offset)
            # numpy reads a negative start as counted from the end; TFLite's -1 means empty
            idx.append(slice(0, 0) if b < 0 else slice(b, e if e >= 0 else None, st))
        axis += 1
    return tuple(idx)


@kernel("STRIDED_SLICE")
def _strided_slice(op: Operation) -> Kernel:
    masks = {m: int(opt(op, m, 0)) for m in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    offset = bool(opt(op, "offset", False))

    def run(x: np.ndarray, begin: np.ndarray, end: np.ndarray, strides: np.ndarray | None = None) -> np.ndarray:
        b = ints(begin)
        st = ints(strides) if strides is not None else [1] * len(b)
        idx = strided_slice_index(x.shape[1:], b, ints(end), st, masks, offset)
        return x[(slice(None), *idx)]

    return run


def _paddings(p: np.ndarray) -> list[tuple[int, int]]:
    v = ints(p)
    return [(0, 0)] + [(v[2 * i], v[2 * i + 1]) for i in range(len(v) // 2)]


def _checked_paddings(x: np.ndarray, p: np.ndarray) -> list[tuple[int, int]]:
    pads = _paddings(p)
    check_result([d + a + b for d, (a, b) in zip(x.shape, pads)] + list(x.shape[len(pads):]), x.dtype.itemsize)
    return pads


@kernel("PAD")
def _pad(op: Operation) -> Kernel:
    return lambda x, paddings: np.pad(x, _checked_paddings(x, paddings))


@kernel("PADV2")
def _padv2(op: Operation) -> Kernel:
    def run(x: np.ndarray, paddings: np.ndarray, value: np.ndarray | None = None) -> np.ndarray:
        cv = 0 if value is None else value.reshape(-1)[0]
        return np.pad(x, _checked_paddings(x, paddings), constant_values=cv)

    return run


@kernel("MIRROR_PAD")
def _mirror_pad(op: Operation) -> Kernel:
    mode = {"REFLECT": "reflect", "SYMMETRIC": "symmetric"}.get(opt(op, "mode", "REFLECT"), "reflect")
    return lambda x, paddings: np.pad(x, _checked_paddings(x, paddings), mode=mode)  # type: ignore[call-overload]


def _batched_gather(p: np.ndarray, idx: np.ndarray, axis: int, batch_dims: int) -> np.ndarray:
    """GATHER with `batch_dims` leading batch dims shared by params and indices (numpy arrays)."""
    bshape = p.shape[:batch_dims]
    mshape = p.shape[batch_dims:axis]
    rshape = p.shape[axis + 1 :]
    ishape = idx.shape[batch_dims:]
    bp, mp, rp = int(np.prod(bshape)), int(np.prod(mshape)), int(np.prod(rshape))
    p2 = p.reshape(bp, mp, p.shape[axis], rp)
    i2 = idx.reshape(bp, 1, -1)
    out = p2[np.arange(bp)[:, None, None], np.arange(mp)[None, :, None], i2]
    return out.reshape(bshape + mshape + ishape + rshape)


def gather(p: np.ndarray, idx: np.ndarray, axis: int, batch_dims: int) -> np.ndarray:
    """Batched GATHER: p (Sp, ...), idx (Si, ...), per-sample axis and batch_dims."""
    r = p.ndim - 1
    axis = axis_norm(axis, r)
    if batch_dims < 0:
        batch_dims += idx.ndim - 1
    idx = idx.astype(np.int64, copy=False)
    if batch_dims == 0 and p.shape[0] == 1:
        out = np.take(p[0], idx, axis=axis)
        return np.moveaxis(out, axis, 0) if axis else out
    if batch_dims == 0 and idx.shape[0] == 1:
        return np.take(p, idx[0], axis=axis + 1)
    p, idx = _common_samples([p, idx])
    return _batched_gather(p, idx, axis + 1, batch_dims + 1)


@kernel("GATHER")
def _gather(op: Operation) -> Kernel:
    axis, bd = opt(op, "axis", 0), opt(op, "batch_dims", 0)
    return lambda p, idx: gather(p, idx, axis, bd)


@kernel("EMBEDDING_LOOKUP")
def _embedding_lookup(op: Operation) -> Kernel:
    return lambda ids, value: gather(value, ids, 0, 0)


@kernel("GATHER_ND")
def _gather_nd(op: Operation) -> Kernel:
    def run(p: np.ndarray, idx: np.ndarray) -> np.ndarray:
        idx = idx.astype(np.int64, copy=False)
        k = idx.shape[-1]
        cols = tuple(idx[..., j] for j in range(k))
        if p.shape[0] == 1:
            return p[0][tuple(c for c in cols)]
        if idx.shape[0] == 1:
            return p[(slice(None), *(c[0] for c in cols))]
        s = p.shape[0]
        samples = np.arange(s).reshape((s,) + (1,) * (idx.ndim - 2))
        return p[(samples, *cols)]

    return run


# ----------------------------------------------------------------------------------------
# resizing and space/depth/batch rearrangements
# ----------------------------------------------------------------------------------------


def _bilinear_coords(out: int, inp: int, align_corners: bool, half_pixel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = F32(inp - 1) / F32(out - 1) if align_corners and out > 1 else F32(inp) / F32(out)
    v = np.arange(out, dtype=F32)
    src = (v + F32(0.5)) * scale - F32(0.5) if half_pixel else v * scale
    lo = np.maximum(np.floor(src).astype(np.int64), 0)
    hi = np.minimum(np.ceil(src).astype(np.int64), inp - 1)
    return src - lo.astype(F32), lo, hi


def _bilinear_matrix(out: int, inp: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """(out, inp) float32 matrix of TFLite's 1-D bilinear weights: row o holds 1-f at its
    lower source index and f at its upper one (summed when they coincide)."""
    f, lo, hi = _bilinear_coords(out, inp, align_corners, half_pixel)
    a = np.zeros((out, inp), F32)
    rows = np.arange(out)
    a[rows, lo] = F32(1) - f
    a[rows, hi] += f
    return a


@kernel("RESIZE_BILINEAR")
def _resize_bilinear(op: Operation) -> Kernel:
    ac, hp = bool(opt(op, "align_corners", False)), bool(opt(op, "half_pixel_centers", False))
    mats: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def gathered(xm: np.ndarray, oh: int, ow: int) -> np.ndarray:
        """The four-neighbour formula, for data with NaN/Inf (kept local, as in LiteRT)."""
        _, h, w, _ = xm.shape
        fy, y0, y1 = _bilinear_coords(oh, h, ac, hp)
        fx, x0, x1 = _bilinear_coords(ow, w, ac, hp)
        fy = fy[None, :, None, None]
        fx = fx[None, None, :, None]
        top = xm[:, y0]
        bot = xm[:, y1]
        tl, tr = top[:, :, x0], top[:, :, x1]
        bl, br = bot[:, :, x0], bot[:, :, x1]
        one = F32(1)
        return tl * (one - fy) * (one - fx) + bl * fy * (one - fx) + tr * (one - fy) * fx + br * fy * fx

    def run(x: np.ndarray, size: np.ndarray) -> np.ndarray:
        xm, sb = merge_batch(as_f32(x))
        n, h, w, c = xm.shape
        oh, ow = ints(size)
        if n == 0 or h == 0 or w == 0 or c == 0 or oh <= 0 or ow <= 0 or not np.isfinite(np.add.reduce(xm, axis=None)):
            y = gathered(xm, oh, ow)  # a sum that is not finite: NaN/Inf (or overflow) somewhere
        else:
            # separable: rows then columns, each a small matrix product (the four-neighbour
            # gathers cost 10x more); zero weights only ever multiply finite values here
            key = (h, w, oh, ow)
            if key not in mats:
                mats[key] = (_bilinear_matrix(oh, h, ac, hp), _bilinear_matrix(ow, w, ac, hp))
            ah, aw = mats[key]
            y = np.empty((n, oh, ow, c), F32)
            xr = xm.reshape(n, h, w * c)
            k = max(1, _CHUNK_BYTES // (4 * oh * w * c))

            def part(s0: int, s1: int) -> None:
                buf = scratch("resize", min(k, s1 - s0) * oh * w * c)
                for c0 in range(s0, s1, k):
                    kk = min(k, s1 - c0)
                    t = buf[: kk * oh * w * c].reshape(kk, oh, w * c)
                    np.matmul(ah, xr[c0 : c0 + kk], out=t)
                    np.matmul(aw, t.reshape(kk * oh, w, c), out=y[c0 : c0 + kk].reshape(kk * oh, ow, c))

            split_samples(n, y.size * (h + w), part)
        return split_batch(y.astype(x.dtype if x.dtype.kind == "f" else F32, copy=False), sb)

    return run


def _nearest_index(out: int, inp: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    scale = F32(inp - 1) / F32(out - 1) if align_corners and out > 1 else F32(inp) / F32(out)
    off = F32(0.5) if half_pixel else F32(0)
    v = (np.arange(out, dtype=F32) + off) * scale
    idx = round_half_away(v) if align_corners else np.floor(v)
    idx = np.minimum(idx.astype(np.int64), inp - 1)
    if half_pixel:
        idx = np.maximum(idx, 0)
    return idx


@kernel("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(op: Operation) -> Kernel:
    ac, hp = bool(opt(op, "align_corners", False)), bool(opt(op, "half_pixel_centers", False))

    def run(x: np.ndarray, size: np.ndarray) -> np.ndarray:
        xm, sb = merge_batch(x)
        oh, ow = ints(size)
        iy = _nearest_index(oh, xm.shape[1], ac, hp)
        ix = _nearest_index(ow, xm.shape[2], ac, hp)
        return split_batch(xm[:, iy][:, :, ix], sb)

    return run


@kernel("SPACE_TO_DEPTH")
def _space_to_depth(op: Operation) -> Kernel:
    bs = opt(op, "block_size", 1)

    def run(x: np.ndarray) -> np.ndarray:
        s, b, h, w, c = x.shape
        y = x.reshape(s * b, h // bs, bs, w // bs, bs, c).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(s, b, h // bs, w // bs, bs * bs * c)

    return run


@kernel("DEPTH_TO_SPACE")
def _depth_to_space(op: Operation) -> Kernel:
    bs = opt(op, "block_size", 1)

    def run(x: np.ndarray) -> np.ndarray:
        s, b, h, w, c = x.shape
        oc = c // (bs * bs)
        y = x.reshape(s * b, h, w, bs, bs, oc).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(s, b, h * bs, w * bs, oc)

    return run


@kernel("SPACE_TO_BATCH_ND")
def _space_to_batch(op: Operation) -> Kernel:
    def run(x: np.ndarray, block_shape: np.ndarray, paddings: np.ndarray) -> np.ndarray:
        bsh = ints(block_shape)
        m = len(bsh)
        pads = _paddings(paddings)  # sample axis first
        pads = [(0, 0), *pads[1 : m + 1]]
        pads = [pads[0], (0, 0), *pads[1:]] + [(0, 0)] * (x.ndim - 2 - m)
        xp = np.pad(x, pads)
        s, b = xp.shape[:2]
        spatial = xp.shape[2 : 2 + m]
        rest = xp.shape[2 + m :]
        shape = [s, b]
        for d, k in zip(spatial, bsh):
            shape += [d // k, k]
        y = xp.reshape(shape + list(rest))
        # (s, b, d0/k0, k0, d1/k1, k1, rest) -> (s, k0, k1, b, d0/k0, d1/k1, rest)
        perm = [0] + [3 + 2 * i for i in range(m)] + [1] + [2 + 2 * i for i in range(m)]
        perm += list(range(2 + 2 * m, y.ndim))
        y = y.transpose(perm)
        return y.reshape([s, b * int(np.prod(bsh))] + [d // k for d, k in zip(spatial, bsh)] + list(rest))

    return run


@kernel("BATCH_TO_SPACE_ND")
def _batch_to_space(op: Operation) -> Kernel:
    def run(x: np.ndarray, block_shape: np.ndarray, crops: np.ndarray) -> np.ndarray:
        bsh = ints(block_shape)
        m = len(bsh)
        cr = ints(crops)
        s, bb = x.shape[:2]
        spatial = x.shape[2 : 2 + m]
        rest = x.shape[2 + m :]
        b = bb // int(np.prod(bsh))
        y = x.reshape([s, *bsh, b, *spatial, *rest])
        # (s, k0, k1, b, d0, d1, rest) -> (s, b, d0, k0, d1, k1, rest)
        perm = [0, 1 + m]
        for i in range(m):
            perm += [2 + m + i, 1 + i]
        perm += list(range(2 + 2 * m, y.ndim))
        y = y.transpose(perm).reshape([s, b, *(d * k for d, k in zip(spatial, bsh)), *rest])
        idx = [slice(None), slice(None)]
        for i in range(m):
            idx.append(slice(cr[2 * i], y.shape[2 + i] - cr[2 * i + 1]))
        return y[tuple(idx)]

    return run


# ----------------------------------------------------------------------------------------
# types, shapes, constants and selection
# ----------------------------------------------------------------------------------------


@kernel("CAST")
def _cast(op: Operation) -> Kernel:
    dt = float_dtype(result_type(op))
    if dt == np.bool_:
        return lambda x: x != 0
    return lambda x: x.astype(dt)


@kernel("SHAPE")
def _shape(op: Operation) -> Kernel:
    dt = float_dtype(result_type(op))
    return lambda x: np.array(x.shape[1:], dtype=dt)


@kernel("FILL")
def _fill(op: Operation) -> Kernel:
    def run(dims: np.ndarray, value: np.ndarray) -> np.ndarray:
        d = tuple(ints(dims))
        s = value.shape[0]
        check_result((s, *d), value.dtype.itemsize)
        return np.ascontiguousarray(np.broadcast_to(value.reshape((s,) + (1,) * len(d)), (s, *d)))

    return run


@kernel("BROADCAST_TO")
def _broadcast_to(op: Operation) -> Kernel:
    def run(x: np.ndarray, shape: np.ndarray) -> np.ndarray:
        d = tuple(ints(shape))
        check_result((x.shape[0], *d), x.dtype.itemsize)
        (x,) = align(x, np.empty((1, *d), np.bool_))[:1] if x.ndim - 1 < len(d) else (x,)
        return np.ascontiguousarray(np.broadcast_to(x, (x.shape[0], *d)))

    return run


@kernel("TILE")
def _tile(op: Operation) -> Kernel:
    def run(x: np.ndarray, multiples: np.ndarray) -> np.ndarray:
        reps = [1, *ints(multiples)]
        nd = max(x.ndim, len(reps))  # np.tile aligns shape and reps on the right
        dims = [1] * (nd - x.ndim) + list(x.shape)
        check_result([d * k for d, k in zip(dims, [1] * (nd - len(reps)) + reps)], x.dtype.itemsize)
        return np.tile(x, reps)

    return run


@kernel("SELECT", "SELECT_V2")
def _select(op: Operation) -> Kernel:
    v1 = op.name == "tfl.select"

    def run(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if v1 and c.ndim == 2 and x.ndim > 2:  # rank-1 condition picks rows
            c = c.reshape(c.shape + (1,) * (x.ndim - 2))
        c, x, y = align(c, x, y)
        return np.where(c, x, y)

    return run


def _arg(fn: Callable[..., np.ndarray]) -> Factory:
    def factory(op: Operation) -> Kernel:
        dt = float_dtype(result_type(op))

        def run(x: np.ndarray, dim: np.ndarray) -> np.ndarray:
            return fn(x, axis=axis_norm(ints(dim)[0], x.ndim - 1) + 1).astype(dt)

        return run

    return factory


KERNELS["ARG_MAX"] = _arg(np.argmax)
KERNELS["ARG_MIN"] = _arg(np.argmin)


@kernel("REVERSE_V2")
def _reverse_v2(op: Operation) -> Kernel:
    def run(x: np.ndarray, axis: np.ndarray) -> np.ndarray:
        axes = sorted({axis_norm(a, x.ndim - 1) + 1 for a in ints(axis)})
        return np.flip(x, axis=tuple(axes)) if axes else x

    return run


@kernel("DYNAMIC_UPDATE_SLICE")
def _dynamic_update_slice(op: Operation) -> Kernel:
    """`operand` with `update` written at `start_indices`, each start clamped to
    [0, operand dim - update dim] (LiteRT's semantics); the start may differ per sample."""

    def run(x: np.ndarray, upd: np.ndarray, start: np.ndarray) -> np.ndarray:
        r = x.ndim - 1
        if upd.ndim - 1 != r or start.shape[1:] != (r,):
            raise TflquantError(f"DYNAMIC_UPDATE_SLICE: update of rank {upd.ndim - 1} and {start.shape[1:]} start indices for an operand of rank {r}")
        n = max(x.shape[0], upd.shape[0], start.shape[0])
        out = np.array(np.broadcast_to(x, (n, *x.shape[1:])))
        hi = np.array(x.shape[1:]) - np.array(upd.shape[1:])
        if (hi < 0).any():
            raise TflquantError(f"DYNAMIC_UPDATE_SLICE: update {upd.shape[1:]} is larger than the operand {x.shape[1:]}")
        starts = np.clip(start.astype(np.int64), 0, hi)
        if starts.shape[0] == 1:
            out[(slice(None), *(slice(b, b + u) for b, u in zip(starts[0], upd.shape[1:])))] = upd
        else:
            for s in range(n):
                out[(s, *(slice(b, b + u) for b, u in zip(starts[s], upd.shape[1:])))] = upd[s if upd.shape[0] > 1 else 0]
        return out

    return run


@kernel("ONE_HOT")
def _one_hot(op: Operation) -> Kernel:
    """on_value where the new axis' position equals the index, off_value elsewhere (an index
    outside [0, depth) gives a row of off_value)."""
    axis = int(opt(op, "axis", -1))

    def run(idx: np.ndarray, depth: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
        d = int(ints(depth)[0])
        check_result((*idx.shape, max(d, 0)), on.dtype.itemsize)
        r = idx.ndim  # output rank without the sample axis: idx rank (without it) + 1
        ax = axis_norm(axis, r) + 1
        pos = np.arange(d).reshape((d,) + (1,) * (r - ax))
        hot = np.expand_dims(idx, ax) == pos
        n = max(idx.shape[0], on.shape[0], off.shape[0])
        on_b = on.reshape((on.shape[0],) + (1,) * r)
        off_b = off.reshape((off.shape[0],) + (1,) * r)
        y = np.where(hot, on_b, off_b)
        return np.ascontiguousarray(np.broadcast_to(y, (n,) + y.shape[1:]))

    return run


@kernel("TOPK_V2")
def _topk_v2(op: Operation) -> Kernel:
    """The k largest values along the last axis, largest first (equal values: lower index
    first), and their int32 indices."""
    idt = float_dtype(result_type(op, 1))

    def run(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = int(ints(k)[0])
        if x.ndim < 2 or not 0 <= n <= x.shape[-1]:
            raise TflquantError(f"TOPK_V2: k = {n} must be in [0, {x.shape[-1] if x.ndim >= 2 else 0}] (last dimension)")
        key = -x.astype(np.float64) if x.dtype.kind == "f" else -x.astype(np.int64)
        idx = np.argsort(key, axis=-1, kind="stable")[..., :n]
        return np.take_along_axis(x, idx, axis=-1), idx.astype(idt)

    return run


# ----------------------------------------------------------------------------------------
# recurrent
# ----------------------------------------------------------------------------------------


@kernel("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _lstm(op: Operation) -> Kernel:
    names = op.OPERANDS  # type: ignore[attr-defined]
    act = activation(opt(op, "fused_activation_function", "TANH")) or (lambda v: v)
    cell_clip = float(opt(op, "cell_clip", 0.0))
    proj_clip = float(opt(op, "proj_clip", 0.0))
    time_major = bool(opt(op, "time_major", False))
    diagonal = bool(opt(op, "diagonal_recurrent_tensors", False))

    def gate_act(v: np.ndarray) -> np.ndarray:
        return act(v.copy())

    def run(*args: np.ndarray | None, side: list[np.ndarray] | None = None, carry: list[Any] | None = None) -> np.ndarray:
        """`side`: receives the cell state of every step, (S, B, T, cells) (SIDE_VALUES).
        `carry` (STATEFUL): samples run one after the other, each starting from the state the
        previous one ended in (carry holds it between calls), as LiteRT's variable tensors do
        over successive invokes; without it every sample starts from the state inputs."""
        a = dict(zip(names, args))
        x = as_f32(a["input"])  # (S, B, T, I) or (S, T, B, I)
        if time_major:
            x = np.swapaxes(x, 1, 2)
        s, b, t, _ = x.shape
        h0, c0 = a["output_state"], a["cell_state"]
        cifg = a["input_to_input_weights"] is None
        n_out = a["recurrent_to_output_weights"].shape[-1]  # type: ignore[union-attr]
        if h0[0].size != b * n_out:
            raise TflquantError(
                f"its state tensors hold {h0[0].size // max(n_out, 1)} batch row(s) of {n_out} but the input has "
                f"batch {b}: LiteRT's LSTM keeps a state per batch row; give the model a static batch"
            )

        def w(n: str) -> np.ndarray | None:
            v = a.get(n)
            return None if v is None else as_f32(v)

        gates = {
            g: (w(f"input_to_{g}_weights"), w(f"recurrent_to_{g}_weights"), w(f"{g}_gate_bias"), w(f"{g}_layer_norm_coefficients"))
            for g in ("input", "forget", "cell", "output")
        }
        peep = {g: w(f"cell_to_{g}_weights") for g in ("input", "forget", "output")}
        proj_w, proj_b = w("projection_weights"), w("projection_bias")

        def gate(g: str, xt: np.ndarray, h: np.ndarray, cell: np.ndarray) -> np.ndarray:
            """Pre-activation of gate g: input and recurrent products, peephole on `cell`,
            then layer norm (coefficients) and bias, in the order of LiteRT's lstm_eval."""
            wi, wr, bias, ln = gates[g]
            assert wi is not None
            v = xt @ wi.T
            if wr is not None:
                v += h * wr if diagonal and wr.ndim == 1 else h @ wr.T
            if (p := peep.get(g)) is not None:
                v += cell * p
            if ln is not None:
                mean = v.mean(axis=-1, keepdims=True)
                var = np.square(v - mean).mean(axis=-1, keepdims=True)
                v = (v - mean) / np.sqrt(var + F32(1e-8)) * ln
            if bias is not None:
                v += bias
            return v

        def sequence(xs: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
            """All steps of xs (rows, T, I) from state (h, c): outputs and cells per step."""
            outs, cells = [], []
            for step in range(t):
                xt = xs[:, step]
                f = _sigmoid(gate("forget", xt, h, c))
                i = 1 - f if cifg else _sigmoid(gate("input", xt, h, c))
                g = gate_act(gate("cell", xt, h, c))
                c = f * c + i * g
                if cell_clip > 0:
                    c = np.clip(c, -cell_clip, cell_clip)
                cells.append(c.astype(F32))
                o = _sigmoid(gate("output", xt, h, c))
                h = o * gate_act(c)
                if proj_w is not None:
                    h = h @ proj_w.T
                    if proj_b is not None:
                        h = h + proj_b
                    if proj_clip > 0:
                        h = np.clip(h, -proj_clip, proj_clip)
                outs.append(h.astype(F32))
            return outs, cells, h, c

        if carry is None:
            h = np.broadcast_to(as_f32(h0), (s,) + h0.shape[1:]).reshape(s * b, -1).copy()
            c = np.broadcast_to(as_f32(c0), (s,) + c0.shape[1:]).reshape(s * b, -1).copy()
            outs, cells, _, _ = sequence(x.reshape(s * b, t, -1), h, c)
        else:
            if carry and carry[0][0].shape[0] == b:
                h, c = carry[0]
            else:  # the first run, or the batch size changed: the state inputs
                h, c = as_f32(h0)[0].reshape(b, -1).copy(), as_f32(c0)[0].reshape(b, -1).copy()
            per_sample = []
            for k in range(s):
                o_k, c_k, h, c = sequence(x[k], h, c)
                per_sample.append((o_k, c_k))
            carry[:] = [(h, c)]
            outs = [np.concatenate([o[st] for o, _ in per_sample]) for st in range(t)]
            cells = [np.concatenate([cc[st] for _, cc in per_sample]) for st in range(t)]
        y = np.stack(outs, axis=1).reshape(s, b, t, -1)
        if time_major:
            y = np.swapaxes(y, 1, 2)
        if side is not None:
            side.append(np.stack(cells, axis=1).reshape(s, b, t, -1))
        return np.ascontiguousarray(y)

    return run
