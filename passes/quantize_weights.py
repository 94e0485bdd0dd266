"""`quantize-weights`: dynamic-range (hybrid) quantization, weights only, no calibration.

The weights of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL
(constant right-hand side), EMBEDDING_LOOKUP, GATHER (constant table) and
UNIDIRECTIONAL_SEQUENCE_LSTM become int8 symmetric constants ([-127, 127], zero point 0,
scale = max|w| / 127), per channel along the op's channel axis where its hybrid kernel takes
that (conv 0, depthwise 3, FC 0, transpose conv 0, embedding rows 0, small gather tables
along their features), per tensor otherwise.
Activations stay float32. Mirrors what the TF converter writes (checked on its
`tf_dynamic.tflite` files):

- ops with a hybrid kernel read the int8 weight directly (LiteRT quantizes their float input
  on the fly); FULLY_CONNECTED, BATCH_MATMUL and the LSTM get `asymmetric_quantize_inputs`;
- GATHER: a table of at most 2^20 elements is per channel along its rows or its last
  (feature) dimension (the higher SQNR) and read through a DEQUANTIZE, which LiteRT runs
  once (constant input) before a float GATHER: +2.1 dB on the tiny transformer over the
  converter's single scale, and no slower. A bigger 2-D table gathered along axis 0 by
  int32 ids (an LM's embedding) becomes an EMBEDDING_LOOKUP of per-row (or blockwise)
  integer rows, whose hybrid kernel dequantizes only the rows it reads (ids flattened by a
  RESHAPE, the result reshaped back); any other big table is one scale, gathered as integer
  rows and dequantized after the GATHER (the converter's way). Neither keeps a float copy
  of the table in memory. Under a global 8-bit setting (no op-bits entry for it) a table is
  int16 with one scale instead (EMBEDDING_BITS), read through a DEQUANTIZE in weight-only
  mode and gathered as int16 rows then dequantized in dynamic mode; under a global 4- or
  2-bit setting it is int8 as above (LOW_BITS_EMBEDDING_BITS), int16 where it would be one
  scale;
- every other reader of a quantized weight gets a shared DEQUANTIZE (weight-only);
- a weight with fewer than `min-elements` elements stays float; an LSTM is quantized
  all or nothing (its hybrid kernel wants every weight int8);
- a weight already stored as fp16 behind a DEQUANTIZE is quantized from its fp16 values,
  and the hybrid op's other fp16 constants (its bias) become float32 again (LiteRT's
  XNNPACK delegate cannot prepare a hybrid op with an fp16-dequantized bias);
- constants also read by opaque ops or returned as model outputs are left alone.

Bits and granularity (`bits=8|4|2`, `granularity=channel|tensor|block`, `block-size`,
`op-bits` overrides "NAME=BITS[/GRANULARITY[/BLOCK]]" by output tensor name or op type):
- int4 weights are read directly by the hybrid kernels whose declaration lists the
  granularity in `DynamicRangeWeights.int4` (FULLY_CONNECTED and EMBEDDING_LOOKUP: tensor,
  channel, block; CONV_2D: tensor, channel; GATHER's integer path: tensor); elsewhere an
  int4 weight is read through DEQUANTIZE (per tensor or channel: LiteRT's DEQUANTIZE takes
  int4 but ignores blockwise details);
- int2 weights (narrow range [-1, 1]: ternary) likewise by `DynamicRangeWeights.int2`
  (FULLY_CONNECTED: tensor, channel), elsewhere through DEQUANTIZE (LiteRT 2.3 runs both,
  measured); no blockwise int2 (LiteRT's blockwise kernels read int4);
- block granularity (blocks of `block-size` along the last dimension, fp16 scales clamped
  to the smallest fp16 normal so that none underflows) is written as LiteRT's
  BlockwiseQuantization where the hybrid kernel takes it; read through DEQUANTIZE, the
  weight is stored as (elements / block, block) int values with one float32 scale per row,
  dequantized and RESHAPEd back (every runtime runs it);
- a global setting an op cannot take falls back (block -> channel, int8 where nothing
  takes int4: the LSTM; a GATHER table dequantized once is per channel under a global
  block setting: its blocks would cost a RESHAPE of the whole table per invoke); an
  override naming an op it cannot apply to is an error;
- `weight-only`: every weight is read through DEQUANTIZE (float compute; runs on every
  runtime and delegate), nothing is hybrid.
The scale of each tensor, channel or block is chosen by `choose_scales` (absmax / qmax)
with `weight-rounding=nearest` (the default); `mse` / `gptq` / `auto` take codes and scales
from tflquant.calibration.weight_rounding: MSE-clipped scales, GPTQ for FULLY_CONNECTED
filters whose input statistics (X^T X) the driver handed over (`with_weight_statistics`),
`auto` = GPTQ where a 4-bit layer has them, MSE clipping where not (see
weight_rounding.resolve_method); gptq without any statistics is an error. Without
statistics the MSE clipping searches of the weights of at most SEARCH_AHEAD_MAX elements
are batched (_Searches: one search for many weights, the same scales); with them the
filters that layers of one input read (query, key, value) are rounded by one GPTQ run with
their rows stacked (_Stacks: the same codes and scales as one run per filter).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, Float32Type, IntegerType, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.dialects import tfl
from tflquant.dialects._unchecked import class_test, float64_attr

from tflquant.calibration.hessian import InputHessians, layer_key, round_layer_weight, round_layer_weights
from tflquant.calibration.weight_rounding import ROUNDINGS, abs_row_max, all_finite, qrange, resolve_method, round_tensor, search_scales_many, tensor_groups
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType, with_element
from tflquant import parallel as _parallel
from tflquant.errors import TflquantError
from tflquant.tflite.int4 import Slab
from tflquant.ir import RELEASE_MIN_FILE, dense_from_buffer, dense_from_numpy, describe, element_type_of_dtype, kept_float, release_payload, value_name

# What the ops declare (tfl.DynamicRangeWeights), by builtin name:
_DECLS = {b: (cls, d) for b, cls in tfl.BUILTIN_CLASSES.items() if (d := cls.get_trait(tfl.DynamicRangeWeights)) is not None}
# op -> {input index: (per-channel axis or None, hybrid kernel reads int8 directly)}
WEIGHT_INPUTS: dict[str, dict[int, tuple[int | None, bool]]] = {
    b: {i: (axis, d.hybrid) for i, axis in d.slots(cls)} for b, (cls, d) in _DECLS.items()
}
HYBRID_OPS = {k for k, slots in WEIGHT_INPUTS.items() if any(h for _axis, h in slots.values())}
# GATHER tables up to this size are dequantized once (a float copy stays in memory).
GATHER_DEQUANTIZE_ONCE_MAX = 1 << 20
# A constant GATHER table (an embedding) under a global 8-bit setting is stored as int16
# with one scale (LiteRT's DEQUANTIZE takes int16 per tensor only): its rows enter the
# activations as they are. Every other int8 weight is AEQ's to the bit, and AEQ leaves the
# table float: the int8 table cost logits SQNR in LiteRT (decoder_tiny dynamic / weight-only
# 32.1 / 32.9 dB against AEQ's 32.3 / 33.2; a 256-wide generated decoder, whose 2M-element
# table was one int8 scale in weight-only mode, 21.2 against 25.2), the int16 one is AEQ's
# to +-0.02 dB at 0.65-0.70x its size. op-bits GATHER=8 keeps int8 (per row / lookup).
EMBEDDING_BITS = 16
# Under a global 4- or 2-bit setting a table is 8-bit instead: per row (or per feature)
# where it is dequantized once or read by EMBEDDING_LOOKUP, else int16 with one scale (a big
# table in weight-only mode). AEQ leaves the table float; an int4 table cost more logits
# SQNR than the int4 layers' rounding gains over AEQ's (LiteRT, with calibration data, int4
# block 32: decoder_tiny 17.3 -> 19.3 dB, a 64-wide generated decoder 8.3 -> 9.3 against
# AEQ's 5.7; a 256-wide one's weight-only channel, one int4 scale for its 2M-element table,
# 5.2 -> 9.5 against 2.8), at 0.40-0.78x AEQ's size. At 4 bits an int8 table per row is
# within 0.06 dB of an int16 one (decoder_tiny: 0.72x the file); one int8 scale for a big
# table was 0.07-0.4 dB below int16's (benchmarks/README.md, issue 12 embedding tables).
LOW_BITS_EMBEDDING_BITS = 8
# Hybrid kernels that only accept per-channel weights (LiteRT depthwise_conv.cc).
PER_CHANNEL_ONLY = {b for b, (_cls, d) in _DECLS.items() if d.per_channel_only}
# Ops whose options carry asymmetric_quantize_inputs.
ASYMMETRIC_INPUTS = {b for b, (_cls, d) in _DECLS.items() if d.asymmetric_inputs}
# LSTM weights whose size decides the all-or-nothing threshold (the matrices).
LSTM_MATRICES = (*range(1, 9), 16)


GRANULARITIES = ("channel", "tensor", "block")
BLOCK_SIZES = (32, 64, 128, 256)
WEIGHT_BITS = (8, 4, 2)
FP16_TINY = float(np.finfo(np.float16).tiny)  # smallest fp16 normal: block scales never underflow
TINY16 = np.float16(FP16_TINY)


# Big weights are processed this many elements at a time, so the temporaries of each
# elementwise step stay in cache (the 3 GB decoder: 2x faster than whole-tensor steps).
_CHUNK = 1 << 16
# elements _quantize_rows / _quantize_blocks / _round take in one pass (several slices of _CHUNK: the
# SQNR's sums still run slice by slice). Fewer numpy calls: on 2 threads they share the GIL between
# fewer calls (measured: 8192 x 2048 per channel, 2^16 -> 2^18: serial 21.9 -> 18.0 ms, 2 threads
# 20.1 -> 10.5 ms, load 1.1)
_PASS = 1 << 18
# a weight of at least this many elements is rounded a range of its slices at a time on the
# process's kernel threads (tflquant.parallel; the same values: each slice's own outputs and
# work buffers, per-slice SQNR sums added in slice order)
PARALLEL_MIN = 1 << 21  # (decoder_tiny's weights, m512's 512 x 2048 ones below it: measured no gain at 2^20 elements)


_STORAGE = {b: IntegerType(b) for b in WEIGHT_BITS}  # immutable attributes, built once (xDSL checks each construction)


def _storage(bits: int) -> IntegerType:
    """The signless storage type of `bits` bits."""
    t = _STORAGE.get(bits)
    return t if t is not None else IntegerType(bits)


# Rounding with scales s = fl(max|w| / qmax) needs no clip when every scale is a normal
# float32 (>= _F32_TINY; an all-zero row's 1.0 included): |w| <= max|w|, and
# fl(max|w| / s) <= qmax (1 + u) / (1 - u) (u = 2**-24, both divisions correctly rounded,
# no underflow), below qmax + 0.5 for the weight bits here, so rint(w / s) lies in
# [-qmax, qmax]. A subnormal scale (max|w| below qmax * _F32_TINY) loses that precision:
# those slices are clipped.
_F32_TINY = np.float32(np.finfo(np.float32).tiny)


def _row_chunks(n_rows: int, row_size: int):
    step = max(1, _CHUNK // max(row_size, 1))
    return (slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step))


def _tensor_absmax(flat: np.ndarray) -> np.float32:
    """max |w| of a 1-D array, a slice at a time in one reused work buffer: the maximum of
    the float32 magnitudes' bit patterns (abs_row_max's way: NaN, above an infinity,
    propagates)."""
    count = -(-flat.size // _CHUNK)
    maxima = np.zeros(max(count, 1), np.uint32)

    def run(c0: int, c1: int) -> None:
        work = np.empty(min(flat.size, _CHUNK), np.float32)
        for c in range(c0, c1):
            i = c * _CHUNK
            t = work[: min(_CHUNK, flat.size - i)]
            np.abs(flat[i : i + _CHUNK], out=t)
            maxima[c] = t.view(np.uint32).max()

    _parallel.over_slices(count, run, flat.size >= PARALLEL_MIN)
    return np.uint32(maxima.max()).view(np.float32)


def _quantize_tensor(w: np.ndarray, qmax: int) -> tuple[np.ndarray, np.ndarray] | None:
    """quantize_weight(w, None, bits)'s codes and (1,) scale, or None when w holds a NaN or
    infinity (found from its maximum, no separate pass)."""
    w = np.asarray(w, np.float32)
    amax = _tensor_absmax(w.reshape(-1))
    if not np.isfinite(amax):
        return None
    s = _scales_of_maxima(np.array([amax], np.float32), qmax)
    return _round(w, s[0], qmax, absmax=True), s


def _scales_of_maxima(amax: np.ndarray, qmax: int) -> np.ndarray:
    """Round to nearest's scales from the rows' max|w|: max|w| / qmax in float32, an
    all-zero row 1.0. The one rule (choose_scales, and the one-pass roundings that find
    the maxima themselves: _quantize_tensor, _quantize_rows, _quantize_blocks)."""
    s = np.asarray(amax, np.float32) / np.float32(qmax)
    s[~(s > 0)] = 1.0
    return s


def choose_scales(groups: np.ndarray, qmax: int) -> np.ndarray:
    """One scale per row of `groups` (rows = the tensor, its channels or its blocks):
    _scales_of_maxima of the rows' max|w|."""
    n, k = groups.shape
    if k == 0:
        absmax = np.zeros(n, np.float32)
    elif n == 1:  # one row (per tensor): the max of the maxima of its slices
        absmax = np.array([_tensor_absmax(groups.reshape(-1))], np.float32)
    else:
        absmax = np.empty(n, np.result_type(groups.dtype, np.float32))
        for rows in _row_chunks(n, k):
            absmax[rows] = abs_row_max(groups[rows])
    return _scales_of_maxima(absmax, qmax)


def _round(w: np.ndarray, s: np.ndarray, qmax: int, absmax: bool = False) -> np.ndarray:
    """rint(w / s) clipped to [-qmax, qmax], as int8 (int16 for qmax > 127; float32
    arithmetic), slice by slice in one reused work buffer. `absmax`: s are choose_scales'
    max|w| / qmax, so the clip is left out where every scale is normal (see _F32_TINY)."""
    w = np.asarray(w, dtype=np.float32)
    s = np.asarray(s, dtype=np.float32)
    dtype = np.int8 if qmax < 128 else np.int16  # int16: GATHER tables (EMBEDDING_BITS)
    clip = not absmax or bool((s < _F32_TINY).any())
    if w.ndim == 0 or w.shape[0] < 2 or w.size <= _CHUNK:
        t = np.rint(w / s)
        return (np.clip(t, -qmax, qmax, out=t) if clip else t).astype(dtype)
    out = np.empty(w.shape, dtype)
    n = w.shape[0]
    step = max(1, _PASS // max(w.size // n, 1))  # (rows of a pass: elementwise, any slices give these codes)
    one = s.reshape(()) if s.size == 1 else None  # one scale: a scalar divisor (numpy's fast loop)
    sb = None if one is not None else np.broadcast_to(s, w.shape)  # a view: each slice of rows takes its scales

    def run(c0: int, c1: int) -> None:
        work = np.empty(min(step, n) * (w.size // n), np.float32)
        for i in range(c0 * step, min(c1 * step, n), step):
            j = min(i + step, n)
            t = work[: (j - i) * (w.size // n)].reshape((j - i, *w.shape[1:]))
            np.divide(w[i:j], one if one is not None else sb[i:j], out=t)
            np.rint(t, out=t)
            if clip:
                np.clip(t, -qmax, qmax, out=t)
            out[i:j] = t

    _parallel.over_slices(-(-n // step), run, w.size >= PARALLEL_MIN)
    return out


def _round_on(w: np.ndarray, axis: int | None, bits: int, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """round_tensor(w, axis, bits, "channel" (axis) or "tensor" (None), group_scales=scales)
    of a finite weight: (codes, float32 scales, shape (channels,) or (1,)), the codes rint(w /
    s) in the narrow range by _round, a slice of rows at a time while it is in cache (the
    same divisions: the same codes)."""
    s = np.asarray(scales, np.float32).reshape(-1)
    qmax = (1 << (bits - 1)) - 1
    if axis is None:
        return _round(w, s[0], qmax), s
    return _round(w, s.reshape([-1 if d == axis else 1 for d in range(w.ndim)]), qmax), s


def _row_maxima(t: np.ndarray) -> np.ndarray:
    """The maxima of the rows of t (float32 |w|, C-contiguous 2-D) as floats, from their
    bit patterns (abs_row_max's way: NaN propagates, above an infinity). Short rows (blocks)
    as reduceat segments of the flat array: numpy reduces a row of 32 at a time 1.7x
    slower (its per-row loop)."""
    n, k = t.shape
    u = t.view(np.uint32)
    if k > 64 or n < 2:
        return u.max(axis=1).view(np.float32)
    return np.maximum.reduceat(u.reshape(-1), np.arange(0, n * k, k)).view(np.float32)


def _quantize_rows(w2: np.ndarray, qmax: int, measure: bool = False, slab: Slab | None = None,
                   fp16: bool = False) -> tuple[np.ndarray, np.ndarray, float | None] | None:
    """choose_scales and _round of the rows of w2 [C, K] (per channel along axis 0) in one
    pass over the weight: a slice of rows at a time, its max|w|, scales and codes while it
    is in cache (the same values; the weight is read from memory once, not twice, and its
    finiteness comes from the maxima: None when a value is NaN or infinite).
    (codes, scales, SQNR): `measure` also takes the weight's SQNR against its codes while
    each slice is in cache (sqnr_db's value; else None).
    Two work buffers of one slice serve every slice: |w| then w / s, its codes and their
    error; and the slice's scales spread along its rows (numpy divides and multiplies by
    a whole array about 1.7x as fast as by a column broadcast along the rows).
    `fp16`: the scales as LiteRT reads a block's (float16, at least the smallest fp16
    normal), the codes rounded with them and clipped (an fp16 scale may round below
    max|w| / qmax); scales returned as float16."""
    w2 = np.asarray(w2, np.float32)
    n, k = w2.shape
    q = np.empty((n, k), np.int8) if slab is None else slab.take((n, k), np.int8)
    scales = np.empty(n, np.float16 if fp16 else np.float32)
    step = max(1, _CHUNK // max(k, 1))  # rows of a slice (the SQNR's sums: sqnr_db's, slice by slice)
    big = step * max(1, _PASS // (step * max(k, 1)))  # rows of a pass (whole slices)
    size = min(big, n) * k
    count = -(-n // step)
    errs, sigs = [0.0] * count, [0.0] * count  # each slice's SQNR terms (summed below in slice order: sqnr_db's sums)
    bad: list[int] = []

    def run(p0: int, p1: int) -> None:
        work, spread = np.empty(size, np.float32), np.empty(size, np.float32)
        for p in range(p0, p1):
            if bad:
                return
            i = p * big
            j = min(i + big, n)
            blk = w2[i:j]
            m = (j - i) * k
            t, ss = work[:m].reshape(j - i, k), spread[:m].reshape(j - i, k)
            np.abs(blk, out=t)
            # max |w| per row: the maxima of t's bit patterns (abs_row_max's way, the sign bits
            # already cleared); NaN propagates, an infinity stays
            amax = _row_maxima(t)
            if not np.isfinite(amax).all():
                bad.append(p)
                return
            s = _scales_of_maxima(amax, qmax)
            if fp16:
                h = np.maximum(np.maximum(s, FP16_TINY).astype(np.float16), TINY16)
                scales[i:j] = h
                s = h.astype(np.float32)
            else:
                scales[i:j] = s
            np.copyto(ss, s[:, None])
            np.divide(blk, ss, out=t)
            np.rint(t, out=t)
            if fp16 or s.min() < _F32_TINY:  # else no code is past qmax (see _F32_TINY): no clip pass
                np.clip(t, -qmax, qmax, out=t)
            q[i:j] = t
            if measure:  # _error_terms and _signal_terms of each slice, the products for the pass at once
                t *= ss
                np.subtract(blk, t, out=t)
                for c in range(i // step, -(-j // step)):
                    a, b = c * step - i, min(c * step + step, n) - i
                    errs[c] = _signal_terms(t[a:b], 0.0)
                    sigs[c] = _signal_terms(blk[a:b], 0.0)

    _parallel.over_slices(-(-n // big), run, n * k >= PARALLEL_MIN)
    if bad:
        return None
    e = sig = 0.0
    for c in range(count if measure else 0):
        e += errs[c]
        sig += sigs[c]
    return q, scales, (_db(e, sig) if measure else None)


def _codes_attr(q: np.ndarray, own: bool = True):
    """dense_from_numpy(q) for integer codes this module's rounding just made (`own`: a fresh
    array, or a Slab's (tflquant.tflite.int4), that nothing else holds or writes), without copying them: the
    attribute holds a read-only view of q (which is frozen) where q is C-contiguous and
    little-endian; else (and for codes from elsewhere) a copy. (The copy of m512's 21 MB
    of int8 codes cost 3 ms of a 70 ms quantize.)"""
    if not own or not q.flags.c_contiguous or (q.dtype.itemsize > 1 and q.dtype.str[0] != "<"):
        return dense_from_numpy(q)
    q.flags.writeable = False
    return dense_from_buffer(memoryview(q).cast("B"), q.shape, element_type_of_dtype(q.dtype))


def _error_terms(w: np.ndarray, codes: np.ndarray, s: np.ndarray, e: float) -> float:
    """e + |w - codes * s|^2 of one slice of rows; `codes` (float32, the slice's codes) is
    overwritten. The terms and their order are sqnr_db's (a slice of rows at a time, float32
    dots), so a measure taken while rounding equals it exactly."""
    codes *= s
    np.subtract(w, codes, out=codes)
    flat = codes.ravel()
    return e + float(np.dot(flat, flat))


def _signal_terms(w: np.ndarray, sig: float) -> float:
    """sig + |w|^2 of one slice of rows (sqnr_db's signal, summed as _error_terms sums)."""
    flat = w.ravel()
    return sig + float(np.dot(flat, flat))


def _db(e: float, sig: float) -> float:
    return 99.0 if e == 0 else float(10 * np.log10(max(sig, 1e-30) / e))


def sqnr_db(w: np.ndarray, q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | float = 0.0) -> float:
    """SQNR (dB) of float weights `w` against integer values `q` dequantized as (q - zero_point)
    * scale (both broadcast against w), in float32 with BLAS dots, slice by slice along the
    first axis so the temporaries stay in cache (99.0 when exact). What the pass records
    on each weight it measures (SQNR_ATTR) and what the driver's check and report compute
    for the others."""
    w = np.asarray(w, np.float32)
    q = np.asarray(q)
    sb = np.broadcast_to(np.asarray(scale, np.float32), w.shape)
    z = np.asarray(zero_point, np.float32)
    zb = np.broadcast_to(z, w.shape) if z.any() else None  # (q - 0 is q: no pass for symmetric weights)
    chunks = list(_row_chunks(w.shape[0], w.size // max(w.shape[0], 1))) if w.ndim and w.shape[0] > 1 else [slice(None)]
    errs, sigs = [0.0] * len(chunks), [0.0] * len(chunks)  # each slice's terms, summed below in slice order
    row = w.size // max(w.shape[0], 1) if w.ndim else 1
    per = max(1, _PASS // max(_CHUNK, row)) if len(chunks) > 1 else 1  # slices of a pass (the products for several at once)

    def run(p0: int, p1: int) -> None:
        for p in range(p0, p1):
            part = chunks[p * per : (p + 1) * per]
            rows = slice(part[0].start, part[-1].stop) if len(part) > 1 else part[0]
            wc = w[rows]
            err = q[rows].astype(np.float32)
            if zb is not None:
                err -= zb[rows]
            err *= sb[rows]  # (_error_terms' products, elementwise)
            np.subtract(wc, err, out=err)
            for c, r in enumerate(part, p * per):
                if len(part) > 1:
                    a, b = r.start - rows.start, r.stop - rows.start
                    errs[c], sigs[c] = _signal_terms(err[a:b], 0.0), _signal_terms(wc[a:b], 0.0)
                else:
                    errs[c], sigs[c] = _signal_terms(err, 0.0), _signal_terms(wc, 0.0)

    _parallel.over_slices(-(-len(chunks) // per), run, w.size >= PARALLEL_MIN)
    e = sig = 0.0
    for c in range(len(chunks)):
        e += errs[c]
        sig += sigs[c]
    return _db(e, sig)


def blockwise_sqnr_db(w: np.ndarray, q: np.ndarray, scales: np.ndarray, block: int) -> float:
    """sqnr_db(w, q dequantized, 1.0, 0.0) of blockwise codes q (blocks of `block` along the
    last dimension, float32 scales of shape (*q.shape[:-1], blocks)): sqnr_db of the weight
    and codes viewed as [.., blocks, block] against the scales broadcast along each block,
    so each slice of rows is dequantized as BlockwiseQuantizedType.dequantize does (the same
    products) while it is in cache, without a dequantized copy of the whole weight; the same
    terms in the same order, the same value."""
    w = np.asarray(w, np.float32)
    blocks = (*w.shape[:-1], -1, block)
    return sqnr_db(w.reshape(blocks), np.asarray(q).reshape(blocks), np.asarray(scales, np.float32)[..., None])


def quantize_weight(w: np.ndarray, axis: int | None, bits: int = 8, rounded: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, UniformQuantizedType]:
    """Symmetric narrow-range values and type (scale = max|w| / qmax, per slice along `axis`
    or one for the tensor). Values round half to even in float32 arithmetic, which
    reproduces the TF converter's int8 weights bit for bit. `rounded`: (codes, scales) from
    data-aware weight rounding, taken as they are."""
    qmax = (1 << (bits - 1)) - 1
    w = np.asarray(w, dtype=np.float32)
    if axis is None:
        s = choose_scales(w.reshape(1, -1), qmax) if rounded is None else rounded[1].reshape(1)
        qtype = UniformQuantizedType.make(_storage(bits), float(s[0]), 0, narrow=True)
        return (_round(w, s[0], qmax, absmax=True) if rounded is None else rounded[0]), qtype
    if axis == 0 and rounded is None and w.size and w.ndim >= 2 and w.flags.c_contiguous:
        done = _quantize_rows(w.reshape(w.shape[0], -1), qmax)
        if done is not None:
            return done[0].reshape(w.shape), UniformQuantizedType.make(_storage(bits), done[1], 0, axis=axis, narrow=True)
    s = choose_scales(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1), qmax) if rounded is None else rounded[1]
    qtype = UniformQuantizedType.make(_storage(bits), s, 0, axis=axis, narrow=True)
    return (_round(w, s.reshape([-1 if d == axis else 1 for d in range(w.ndim)]), qmax, absmax=rounded is None) if rounded is None else rounded[0]), qtype


def _quantize_blocks(w: np.ndarray, block: int, qmax: int, slab: Slab | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """quantize_blockwise's rounding to nearest of a finite weight in one pass: the blocks
    as the rows of _quantize_rows with fp16 scales (codes shaped as w, float16 scales, one
    a block), or None when w holds a NaN or infinity (from the blocks' maxima). The scales
    are choose_scales' at least the smallest fp16 normal in fp16, the codes rint(w / scale)
    clipped: the same values as the whole-tensor steps."""
    w = np.asarray(w, dtype=np.float32)
    done = _quantize_rows(w.reshape(-1, block), qmax, slab=slab, fp16=True)
    return None if done is None else (done[0].reshape(w.shape), done[1])


def quantize_blockwise(w: np.ndarray, block: int, bits: int = 4, rounded: tuple[np.ndarray, np.ndarray] | None = None,
                       slab: Slab | None = None) -> tuple[np.ndarray, BlockwiseQuantizedType]:
    """Blocks of `block` values along the last dimension, one fp16 scale each (at least the
    smallest fp16 normal); values rounded with the fp16 scale LiteRT reads. `rounded`:
    (codes, fp16-exact scales) from data-aware weight rounding."""
    qmax = (1 << (bits - 1)) - 1
    w = np.asarray(w, dtype=np.float32)
    groups = w.reshape(-1, block)
    if rounded is not None:
        q, s16 = rounded[0], np.maximum(rounded[1].reshape(-1), FP16_TINY).astype(np.float16)
        return q, BlockwiseQuantizedType.make(_storage(bits), block, s16.reshape(*w.shape[:-1], w.shape[-1] // block))
    done = _quantize_blocks(w, block, qmax, slab) if w.size else None
    if done is not None:
        q, s16 = done
    else:  # (empty, or not finite: the caller checks finiteness where it matters)
        s16 = np.maximum(choose_scales(groups, qmax), FP16_TINY).astype(np.float16)
        s16 = np.maximum(s16, np.float16(FP16_TINY))
        q = _round(groups, s16.astype(np.float32)[:, None], qmax).reshape(w.shape)
    return q, BlockwiseQuantizedType.make(_storage(bits), block, s16.reshape(*w.shape[:-1], w.shape[-1] // block))


@dataclass(frozen=True)
class WeightFormat:
    """How one weight is stored: bits, granularity ("tensor", "channel", "block"), block size."""

    bits: int = 8
    granularity: str = "channel"
    block_size: int = 32

    def __str__(self) -> str:
        return f"int{self.bits} " + (f"block {self.block_size}" if self.granularity == "block" else self.granularity)


# Data-free MSE clipping searches of small weights are batched (_Searches): a weight of at
# most SEARCH_AHEAD_MAX elements joins a batch of at most SEARCH_BATCH_MAX elements (its
# weights stay read from the search until each is rewritten: 16 MB of a mapped model at
# most); a bigger weight searches alone.
SEARCH_AHEAD_MAX = 1 << 20
SEARCH_BATCH_MAX = 1 << 22


class _Searches:
    """The data-free MSE clipping searches of one function's small weights, batched: the
    weights whose groups have one (bits, scale type, length) are searched together, a batch
    of them in plan order when _rewrite asks for the first one's scales
    (weight_rounding.search_scales_many: the same scales as a search per weight, with the
    numpy calls of a few slices of groups instead of at least one slice per weight).
    Built per function by QuantizeWeights._searches (no state on the pass)."""

    def __init__(self) -> None:
        self.batch: dict[tuple[SSAValue, bool | None], list] = {}  # (weight, fp16_scales) -> its batch [(weight, axis, format, fp16_scales)], until searched
        self.found: dict[tuple[SSAValue, bool | None], np.ndarray] = {}  # scales in tensor_groups' order, until taken
        self.finite: set[SSAValue] = set()  # weights a batch found finite when it was searched (their rewrites need not check again)
        self._filling: dict[tuple[int, bool, int], list] = {}  # (bits, fp16, group length) -> [the batch being filled, its elements]

    def plan(self, v: SSAValue, axis: int | None, fmt: WeightFormat, fp16_scales: bool | None, shape: tuple[int, ...]) -> None:
        """v's search (round_tensor's with these arguments) joins a batch."""
        size = math.prod(shape)
        n = fmt.block_size if fmt.granularity == "block" else size if fmt.granularity == "tensor" else size // max(shape[axis or 0], 1)
        kind = (fmt.bits, self._fp16(fmt, fp16_scales), n)
        filling = self._filling.get(kind)
        if filling is None or filling[1] + size > SEARCH_BATCH_MAX:
            filling = self._filling[kind] = [[], 0]
        filling[0].append((v, axis, fmt, fp16_scales))
        filling[1] += size
        self.batch[(v, fp16_scales)] = filling[0]

    def take(self, v: SSAValue, w: np.ndarray, fp16_scales: bool | None) -> np.ndarray | None:
        """v's scales (its float values `w`), searching its batch first if need be; None
        where v's search was not planned so (or its values are not finite: its rewrite
        says so)."""
        members = self.batch.pop((v, fp16_scales), None)
        if members is not None:
            parts, keys = [], []
            for u, axis, fmt, fp16 in members:
                self.batch.pop((u, fp16), None)
                wu = w if u is v else float_weight(u)
                if wu is not None and all_finite(wu):
                    parts.append(tensor_groups(wu, axis, fmt.granularity, fmt.block_size))
                    keys.append((u, fp16))
                    self.finite.add(u)
            _, _, fmt, fp16 = members[0]  # what every member shares
            qmin, qmax = qrange(fmt.bits)
            self.found.update(zip(keys, search_scales_many(parts, qmin, qmax, fp16=self._fp16(fmt, fp16))))
        return self.found.pop((v, fp16_scales), None)

    @staticmethod
    def _fp16(fmt: WeightFormat, fp16_scales: bool | None) -> bool:
        """The search's fp16 rounding of the scales, as round_tensor chooses it."""
        return fmt.granularity == "block" if fp16_scales is None else bool(fp16_scales)


class _Stacks:
    """GPTQ rounding of the weights that layers of one input read (the query, key and value
    projections of an attention block; statistics.round_layer_weights): the weights with one
    statistics key, format, axis, scale type and input width are rounded with their rows
    stacked when _rewrite asks for the first one, the others' codes and scales kept until
    their rewrites ask (each then takes the statistics, as its own rounding would: the
    store frees them after the last). The same codes and scales as one rounding per weight.
    Built per function by QuantizeWeights._stacks (no state on the pass)."""

    def __init__(self, store: InputHessians) -> None:
        self.store = store
        self.group: dict[tuple[SSAValue, int | None, WeightFormat, bool | None], tuple[str, list[SSAValue]]] = {}  # request -> (statistics key, its group), until rounded
        self.found: dict[tuple[SSAValue, int | None, WeightFormat, bool | None], tuple[str, tuple[np.ndarray, np.ndarray]]] = {}  # (key, result), until taken

    def take(self, v: SSAValue, w: np.ndarray, axis: int | None, fmt: WeightFormat, fp16_scales: bool | None,
             method: str) -> tuple[np.ndarray, np.ndarray] | None:
        """v's (codes, scales) for round_layer_weight's arguments, rounding its group first
        if need be; None where v was not planned in a group of these arguments (or the
        group could not be stacked, or v's values are not finite)."""
        req = (v, axis, fmt, fp16_scales)
        planned = self.group.pop(req, None)
        if planned is not None:
            k, members = planned
            weights = []
            for u in members:
                self.group.pop((u, axis, fmt, fp16_scales), None)
                wu = w if u is v else float_weight(u)
                if wu is not None and all_finite(wu):
                    weights.append((u, wu))
            if v in (u for u, _w in weights):  # (the caller checked v's values)
                got = round_layer_weights(self.store, weights, axis, fmt.bits, fmt.granularity, fmt.block_size, method, fp16_scales)
                if got is not None:
                    for (u, _w), r in zip(weights, got):
                        self.found[(u, axis, fmt, fp16_scales)] = (k, r)
                    return self.found.pop(req)[1]  # (its statistics taken by round_layer_weights)
        kr = self.found.pop(req, None)
        if kr is None:
            return None
        self.store.take(kr[0])  # as its own rounding would
        return kr[1]


def parse_op_bits(entries: tuple[str, ...] | list[str]) -> dict[str, tuple[int, str | None, int | None]]:
    """"NAME=BITS[/GRANULARITY[/BLOCK]]" entries -> {NAME: (bits, granularity or None, block or None)}."""
    out: dict[str, tuple[int, str | None, int | None]] = {}
    for e in entries:
        key, sep, val = str(e).rpartition("=")
        parts = val.split("/")
        try:
            if not sep or not key or not 1 <= len(parts) <= 3:
                raise ValueError
            bits = int(parts[0])
            gran = parts[1] if len(parts) > 1 else None
            block = int(parts[2]) if len(parts) > 2 else None
        except ValueError:
            raise TflquantError(f"op-bits entry {e!r}: write NAME=BITS, NAME=BITS/GRANULARITY or NAME=BITS/block/SIZE (NAME: output tensor name or op type)") from None
        check_format(bits, gran or "channel", block or 32, f"op-bits entry {e!r}")
        out[key] = (bits, gran, block)
    return out


def check_format(bits: int, granularity: str, block_size: int, what: str = "quantize-weights") -> None:
    if bits not in WEIGHT_BITS:
        raise TflquantError(f"{what}: weight bits must be 8, 4 or 2, got {bits}")
    if granularity not in GRANULARITIES:
        raise TflquantError(f"{what}: granularity must be channel, tensor or block, got {granularity!r}")
    if block_size not in BLOCK_SIZES:
        raise TflquantError(f"{what}: block size must be 32, 64, 128 or 256, got {block_size}")
    if granularity == "block" and bits != 4:
        raise TflquantError(f"{what}: block granularity takes 4-bit weights (LiteRT's blockwise kernels read int4 only), got {bits} bits")


ROUNDING_ATTR = "tflquant.rounding"  # on a quantized weight constant: the data-aware method that rounded it (the report's `rounding`)


# on a quantized weight constant rounded to nearest per channel (axis 0) or as a GATHER
# table: its SQNR (dB, sqnr_db) against the float weight it replaced, measured while it was
# rounded (the driver's dynamic-mode check and the report read it instead of reading the
# float weight again)
SQNR_ATTR = "tflquant.sqnr"


def _label_rounding(c: tfl.ConstOp, chosen: list[str]) -> None:
    if chosen:
        c.attributes[ROUNDING_ATTR] = StringAttr(chosen[-1])


def _dequantized_blocks(w: np.ndarray, fmt: WeightFormat, ftype: TensorType, name: str | None, before: Operation, rounded: tuple[np.ndarray, np.ndarray] | None = None,
                        chosen: list[str] | None = None, slab: Slab | None = None, not_finite: Callable[[], Exception] | None = None) -> SSAValue:
    """A blockwise weight read through DEQUANTIZE (which ignores blockwise details): the
    values as (elements / block, block) with one float32 scale per row (per channel on
    axis 0), dequantized, then RESHAPEd to the weight's shape; inserted before `before`.
    Rounded to nearest (`rounded` None) by _quantize_rows (quantize_weight's codes), whose
    maxima find a NaN or infinity: `not_finite()` is raised then."""
    w2 = np.asarray(w, np.float32).reshape(-1, fmt.block_size)
    done = _quantize_rows(w2, (1 << (fmt.bits - 1)) - 1, slab=slab) if rounded is None and w2.size else None
    if done is not None:
        q, qtype = done[0], UniformQuantizedType.make(_storage(fmt.bits), done[1], 0, axis=0, narrow=True)
    elif rounded is None and w2.size and not_finite is not None:
        raise not_finite()
    else:
        rows_rounded = None if rounded is None else (rounded[0].reshape(-1, fmt.block_size), rounded[1].reshape(-1))
        q, qtype = quantize_weight(w2, 0, fmt.bits, rows_rounded)
    release_payload(w, RELEASE_MIN_FILE)  # read once: a big mapped model's pages of it may go
    rows = TensorType(Float32Type(), q.shape)
    block = before.parent
    assert block is not None
    c = tfl.ConstOp(_codes_attr(q, own=rounded is None), with_element(rows, qtype), name=name)
    _label_rounding(c, chosen or [])
    dq = tfl.DequantizeOp([c.result], [rows], names=None if name is None else [f"{name}_dequantize"])
    shape = tfl.ConstOp(dense_from_numpy(np.array(ftype.get_shape(), np.int32)), name=None if name is None else f"{name}_shape")
    rs = tfl.ReshapeOp([dq.outputs[0], shape.result], [ftype], names=None if name is None else [f"{name}_blocks"])
    block.insert_ops_before([c, dq, shape, rs], before)
    return rs.outputs[0]


def _as_lookup(gather: Operation, table: SSAValue) -> bool:
    """A big GATHER that an EMBEDDING_LOOKUP can do: 2-D table over GATHER_DEQUANTIZE_ONCE_MAX
    elements, axis 0, batch_dims 0, int32 ids with at most one dynamic dimension."""
    assert isinstance(gather, tfl.TflOp)
    t, ids = table.type, gather.operands[1].type
    if not (isinstance(t, TensorType) and isinstance(ids, TensorType)) or len(t.get_shape()) != 2:
        return False
    if int(np.prod(t.get_shape())) <= GATHER_DEQUANTIZE_ONCE_MAX or gather.option("axis") != 0 or gather.option("batch_dims") != 0:
        return False
    from xdsl.dialects.builtin import i32

    return ids.element_type == i32 and sum(1 for d in ids.get_shape() if d < 0) <= 1


def _gather_as_lookup(gather: Operation, qv: SSAValue) -> None:
    """GATHER(table, ids) -> RESHAPE(EMBEDDING_LOOKUP(RESHAPE(ids, [-1]), table), ids.shape + [D])."""
    from xdsl.dialects.builtin import i32

    assert isinstance(gather, tfl.TflOp) and gather.parent is not None
    ids = gather.operands[1]
    out = gather.outputs[0]
    ftype, itype, ttype = out.type, ids.type, qv.type
    assert isinstance(ftype, TensorType) and isinstance(itype, TensorType) and isinstance(ttype, TensorType)
    name = value_name(out)
    n = int(np.prod(itype.get_shape())) if all(d >= 0 for d in itype.get_shape()) else -1
    dim = ttype.get_shape()[1]
    flat_shape = tfl.ConstOp(dense_from_numpy(np.array([-1], np.int32)), name=None if name is None else f"{name}_ids_shape")
    flat = tfl.ReshapeOp([ids, flat_shape.result], [TensorType(i32, [n])], names=None if name is None else [f"{name}_ids"])
    look = tfl.EmbeddingLookupOp([flat.outputs[0], qv], [TensorType(Float32Type(), [n, dim])], names=None if name is None else [f"{name}_rows"])
    out_shape = tfl.ConstOp(dense_from_numpy(np.array([d if d >= 0 else -1 for d in ftype.get_shape()], np.int32)), name=None if name is None else f"{name}_shape")
    back = tfl.ReshapeOp([look.outputs[0], out_shape.result], [ftype], names=None if name is None else [name])
    gather.parent.insert_ops_before([flat_shape, flat, look, out_shape, back], gather)
    out.replace_all_uses_with(back.outputs[0])
    Rewriter.erase_op(gather)


def _gather_table_axis(gather: Operation, table: SSAValue, bits: int = 8,
                       rounded: dict[SSAValue, tuple[int, int, np.ndarray, UniformQuantizedType, float]] | None = None) -> int | None:
    """Per-channel axis for a GATHER table that is dequantized once before the gather: its
    rows (axis 0) or its last dimension (the embedding features), whichever gives the table
    the higher SQNR at `bits` (per-feature scales won on the tiny transformer's int8 table,
    per-row ones on the heavy-tailed decoder_tiny's: 14.3 against 7.2 dB at int4). None
    (one scale, integer gather) for tables over GATHER_DEQUANTIZE_ONCE_MAX elements and
    rank-1 tables. `rounded[table]` gets (axis, bits, codes, type, SQNR) of the winner,
    rounded to nearest (quantize_weight's codes and scales), for the rewrite to reuse (only
    when the table is finite). Both candidates are rounded and measured in one sweep over
    the table's rows after one for the maxima (each slice of rows while it is in cache)."""
    t = table.type
    assert isinstance(gather, tfl.TflOp) and isinstance(t, TensorType)
    shape = t.get_shape()
    if len(shape) < 2 or int(np.prod(shape)) > GATHER_DEQUANTIZE_ONCE_MAX:
        return None
    w = float_weight(table)
    last = len(shape) - 1
    if w is None:
        return last
    best = _table_candidates(w, (1 << (bits - 1)) - 1)
    release_payload(w, RELEASE_MIN_FILE)  # read once: a big mapped model's pages of it may go
    if best is None:  # NaN or infinite values: the rewrite says so
        return last
    axis, q, s, db = best
    if rounded is not None:
        rounded[table] = (axis, bits, q, UniformQuantizedType.make(_storage(bits), s, 0, axis=axis, narrow=True), db)
    return axis


def _table_candidates(w: np.ndarray, qmax: int) -> tuple[int, np.ndarray, np.ndarray, float] | None:
    """(axis, codes, scales, SQNR) of the better of per-feature (last axis; first on a tie)
    and per-row (axis 0) scales for table w, rounded to nearest as quantize_weight rounds;
    None when w holds NaN or infinite values. The errors are summed slice by slice of rows
    (sqnr_db's order), the winner's SQNR is sqnr_db's value."""
    w = np.ascontiguousarray(w, np.float32)
    n, d = w.shape[0], w.shape[-1]
    w2 = w.reshape(n, -1)
    k = w2.shape[1]
    # the maxima of |w| as bit patterns (uint32: they order as the magnitudes, a NaN's above
    # an infinity's; abs_row_max's way, on the |w| already taken for both maxima)
    row_max = np.empty(n, np.uint32)
    col_max = np.zeros(d, np.uint32)
    for rows in _row_chunks(n, k):
        a = np.abs(w2[rows]).view(np.uint32)
        a.max(axis=1, out=row_max[rows])
        np.maximum(col_max, a.reshape(-1, d).max(axis=0), out=col_max)
    col_f, row_f = col_max.view(np.float32), row_max.view(np.float32)
    if not (np.isfinite(row_f).all() and np.isfinite(col_f).all()):
        return None
    scales = [_scales_of_maxima(amax, qmax) for amax in (col_f, row_f)]
    cols = np.tile(scales[0], k // d)[None, :]  # the per-feature scales along a row of w2
    clip = [s.min() < _F32_TINY for s in scales]  # (see _F32_TINY)
    codes = (np.empty((n, k), np.int8), np.empty((n, k), np.int8))
    err = [0.0, 0.0]
    sig = 0.0
    for rows in _row_chunks(n, k):
        blk = w2[rows]
        for i, s in enumerate((cols, scales[1][rows, None])):
            u = np.divide(blk, s)
            np.rint(u, out=u)
            if clip[i]:
                np.clip(u, -qmax, qmax, out=u)
            codes[i][rows] = u
            err[i] = _error_terms(blk, u, s, err[i])
        sig = _signal_terms(blk, sig)  # (once for both candidates)
    i = 0 if err[0] <= err[1] else 1
    return (w.ndim - 1, 0)[i], codes[i].reshape(w.shape), scales[i], _db(err[i], sig)


def _float32_constant_inputs(op: Operation) -> None:
    """Give a hybrid op float32 constants where it read DEQUANTIZE(fp16 constant) (biases of an
    fp16 model): LiteRT's XNNPACK delegate fails to prepare a hybrid conv or fully connected
    op whose bias comes from an fp16 DEQUANTIZE."""
    for i, v in enumerate(op.operands):
        dq = v.owner
        if not (isinstance(dq, tfl.DequantizeOp) and float_weight(v) is not None):
            continue
        half = dq.inputs[0].owner
        assert isinstance(half, tfl.ConstOp) and dq.parent is not None
        f32 = tfl.ConstOp(dense_from_numpy(half.numpy().astype(np.float32)), name=value_name(half.result))
        dq.parent.insert_op_before(f32, dq)
        op.operands[i] = f32.result
        QuantizeWeights._erase_if_dead(dq)


def _reads_directly(kind: str, fmt: WeightFormat) -> bool:
    """LiteRT's kernel for `kind` reads weights of fmt's bits at its granularity itself (int8:
    always; int4 / int2: the granularities its DynamicRangeWeights declaration lists)."""
    if fmt.bits >= 8:
        return True
    d = _DECLS[kind][1]
    return fmt.granularity in (d.int4 if fmt.bits == 4 else d.int2)


def _functions(op: Operation):
    """The func.func ops under `op` (a module's subgraphs), in order, without walking their
    bodies (op.walk() would visit every op of the model)."""
    for region in op.regions:
        for block in region.blocks:
            for o in block.ops:
                if isinstance(o, func.FuncOp):
                    yield o
                elif o.regions:
                    yield from _functions(o)


def nested_ops(op: Operation):
    """The ops inside `op`, in op.walk()'s order (op itself excluded), read block by block
    (in 0.4x the time of xDSL's walk; the driver's report walks with it too)."""
    for region in op.regions:
        for block in region.blocks:
            for o in block.ops:
                yield o
                if o.regions:
                    yield from nested_ops(o)


_is_tfl = class_test(tfl.TflOp)  # (judged once per op class: xDSL's op classes are ABCs)


def _op_kind(op: Operation) -> str | None:
    return op.BUILTIN if _is_tfl(op) else None


def float_weight(v: SSAValue) -> np.ndarray | None:
    """The float values behind `v` if it is a float32 constant or DEQUANTIZE(fp16 constant)."""
    owner = v.owner
    if isinstance(owner, tfl.ConstOp):
        t = owner.result.type
        if isinstance(t, TensorType) and isinstance(t.element_type, Float32Type):
            return owner.numpy()
        return None
    if isinstance(owner, tfl.DequantizeOp) and len(owner.inputs) == 1:
        src = owner.inputs[0].owner
        if isinstance(src, tfl.ConstOp):
            t = src.result.type
            if isinstance(t, TensorType) and isinstance(t.element_type, Float16Type):
                return src.numpy().astype(np.float32)
    return None


def _quantizable_source(v: SSAValue) -> bool:
    """A weight we may rewrite: every reader is a modelled tfl op (no opaque op, no return)."""
    return all(_is_tfl(u.operation) for u in v.uses)


@dataclass(frozen=True)
class QuantizeWeights(ModulePass):
    """Weights of hybrid-capable ops to int8 or int4 symmetric (per tensor, channel or block
    where the kernel allows); activations stay float. See the module docstring for the
    exact guarantees."""

    name = "quantize-weights"

    min_elements: int = 1024
    per_channel: bool = True
    bits: int = 8
    granularity: str = "channel"
    block_size: int = 32
    weight_only: bool = False
    op_bits: tuple[str, ...] = ()
    weight_rounding: str = "nearest"

    def __post_init__(self) -> None:
        if self.min_elements < 0:
            raise TflquantError(f"quantize-weights: min-elements must be >= 0, got {self.min_elements}")
        if self.weight_rounding not in ROUNDINGS:
            raise TflquantError(f"quantize-weights: weight-rounding must be one of {', '.join(ROUNDINGS)}, got {self.weight_rounding!r}")
        check_format(self.bits, self.granularity, self.block_size)
        parse_op_bits(self.op_bits)

    def with_weight_statistics(self, statistics: InputHessians | None) -> QuantizeWeights:
        """This pass holding the layers' input statistics (calibration.hessian; the driver's
        hand-over, not a spec option) for weight-rounding gptq / auto / mse."""
        p = replace(self)
        object.__setattr__(p, "statistics", statistics)
        return p

    def _nearest(self, fmt: WeightFormat) -> bool:
        """`weight-rounding` leaves every weight of this format to round to nearest."""
        return self.weight_rounding == "nearest" or (
            getattr(self, "statistics", None) is None and resolve_method(self.weight_rounding, fmt.bits, False) is None
        )

    def _rounded(self, v: SSAValue, w: np.ndarray, axis: int | None, fmt: WeightFormat, fp16_scales: bool | None = None,
                 chosen: list[str] | None = None, searches: _Searches | None = None, stacks: _Stacks | None = None,
                 own: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Data-aware (codes, scales) of weight v by `weight-rounding` (None: round to nearest;
        `chosen` gets the method that rounded it; `own` gets True when the codes are a fresh
        array of this module's rounding (_round_on), False when weight_rounding's). `searches`: the function's batched
        MSE clipping searches, which may hold v's scales; `stacks`: its GPTQ roundings of
        weights sharing an input, which may hold v's codes and scales."""
        if self.weight_rounding == "nearest":
            return None
        if own is not None:
            own.append(False)  # (until _round_on makes them)
        if stacks is not None and (got := stacks.take(v, w, axis, fmt, fp16_scales, self.weight_rounding)) is not None:
            if chosen is not None:
                chosen.append("gptq")
            return got
        found = None if searches is None else searches.take(v, w, fp16_scales)
        if found is not None:
            if chosen is not None:
                chosen.append("mse")
            if fmt.granularity != "block":
                if own is not None:
                    own[-1] = True
                return _round_on(w, axis if fmt.granularity == "channel" else None, fmt.bits, found)
            return round_tensor(w, axis, fmt.bits, fmt.granularity, fmt.block_size, fp16_scales=fp16_scales, group_scales=found, finite=True)
        return round_layer_weight(getattr(self, "statistics", None), v, w, axis, fmt.bits, fmt.granularity, fmt.block_size, self.weight_rounding, fp16_scales, chosen)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.weight_rounding == "gptq" and getattr(self, "statistics", None) is None:
            raise TflquantError(
                "quantize-weights: weight-rounding=gptq needs calibration data (the layers' input statistics): give "
                "representative data (--calibration DATA.npz), or use weight-rounding auto or mse"
            )
        overrides = parse_op_bits(self.op_bits)
        used: set[str] = set()
        for f in _functions(op):
            self._apply_block(f, overrides, used)
        unknown = sorted(set(overrides) - used)
        if unknown:
            raise TflquantError(
                f"quantize-weights: op-bits names {', '.join(map(repr, unknown))}, which is no op with a quantizable weight "
                "(by output tensor name or op type, e.g. FULLY_CONNECTED) in the model"
            )

    # -------------------------------------------------------------------------------
    def _format_for(self, o: Operation, kind: str, overrides: dict, used: set[str]) -> tuple[WeightFormat, str | None]:
        """The weight format for reader `o` and the override key that set it (None: global)."""
        name = value_name(o.results[0]) if o.results else None
        for key in (name, kind):
            if key is not None and key in overrides:
                used.add(key)
                bits, gran, block = overrides[key]
                return WeightFormat(bits, gran or self._gran_default(bits), block or self.block_size), key
        return WeightFormat(self.bits, self.granularity if self.per_channel or self.granularity != "channel" else "tensor", self.block_size), None

    def _gran_default(self, bits: int) -> str:
        g = self.granularity if self.per_channel or self.granularity != "channel" else "tensor"
        return "channel" if g == "block" and bits != 4 else g

    def _resolve(self, o: Operation, kind: str, v: SSAValue, axis: int | None, fmt: WeightFormat, key: str | None) -> WeightFormat:
        """The format this weight gets from this reader: what was asked where LiteRT takes
        it; a global setting it cannot take falls back; an override it cannot take fails."""
        shape = v.type.get_shape() if isinstance(v.type, TensorType) else ()
        where = f"{kind} '{value_name(o.results[0]) if o.results else '?'}'"

        def refuse(why: str) -> None:
            if key is not None:
                raise TflquantError(f"quantize-weights: op-bits {key}={fmt.bits}/{fmt.granularity}: {where}: {why}")

        if kind == "UNIDIRECTIONAL_SEQUENCE_LSTM" and fmt.bits != 8:
            refuse("LiteRT's hybrid LSTM takes int8 weights only")
            return WeightFormat(8, "tensor")
        gran = fmt.granularity
        if gran == "channel" and axis is None:
            gran = "tensor"
        if gran == "block" and (not shape or shape[-1] % fmt.block_size):
            raise TflquantError(
                f"quantize-weights: block size {fmt.block_size} does not divide the last dimension ({shape[-1] if shape else 0}) "
                f"of weight {describe(v)} of {where}: choose a block size that divides it, or give that op another "
                "granularity (op-bits NAME=4/channel)"
            )
        return WeightFormat(fmt.bits, gran, fmt.block_size)

    def _apply_block(self, f: func.FuncOp, overrides: dict, used: set[str]) -> None:
        # Plan: source value -> (chosen axis (None = per tensor), format), in program order;
        # readers with a hybrid kernel choose first (a table tied to an output projection
        # keeps the projection hybrid and is dequantized once for the GATHER).
        plans: dict[SSAValue, tuple[int | None, WeightFormat]] = {}
        tables: dict[SSAValue, tuple[int, int, np.ndarray, UniformQuantizedType, float]] = {}  # GATHER tables rounded to choose their axis
        readers = [(o, k) for o in nested_ops(f) if (k := _op_kind(o)) in WEIGHT_INPUTS and not kept_float(o)]
        readers.sort(key=lambda ok: ok[1] not in HYBRID_OPS)  # stable: program order kept
        for o, kind in readers:
            fmt, key = self._format_for(o, kind, overrides, used)
            if kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                if fmt.bits != 8:
                    self._resolve(o, kind, o.results[0], None, fmt, key)
                self._plan_lstm(o, plans)
                continue
            for idx, (axis, _hybrid) in WEIGHT_INPUTS[kind].items():
                if idx >= len(o.operands):
                    continue
                v = o.operands[idx]
                if v in plans or not self._eligible(v):
                    continue
                wfmt = fmt
                if kind == "GATHER":
                    axis, wfmt = self._table_format(o, v, fmt, key, tables)
                final = self._resolve(o, kind, v, axis, wfmt, key)
                plans[v] = (axis if final.granularity == "channel" else None, final)
        hybrid_ops: list[Operation] = []
        searches = self._searches(plans)
        stacks = self._stacks(plans)
        slab = Slab(sum(math.prod(v.type.get_shape()) + 64 for v in plans))  # the codes rounding to nearest makes (int8: a byte a weight)
        for v, (axis, fmt) in plans.items():
            self._rewrite(v, axis, fmt, hybrid_ops, tables.get(v), searches, stacks, slab)
        for o in hybrid_ops:
            if o.parent is not None:
                _float32_constant_inputs(o)

    def _table_format(self, gather: Operation, v: SSAValue, fmt: WeightFormat, key: str | None,
                      tables: dict[SSAValue, tuple[int, int, np.ndarray, UniformQuantizedType, float]]) -> tuple[int | None, WeightFormat]:
        """(per-channel axis or None, format) of GATHER's constant table v, asked `fmt` by the
        op-bits entry `key` (None: the global setting, under which a table gets more bits
        than the layers: EMBEDDING_BITS / LOW_BITS_EMBEDDING_BITS)."""
        if key is None and fmt.bits == 8:
            return None, WeightFormat(EMBEDDING_BITS, "tensor", fmt.block_size)  # int16, one scale
        if key is None:  # under a global 4 / 2-bit setting (block included: a table dequantized
            # once is per channel, no per-invoke RESHAPE of the whole table; decoder_tiny
            # dynamic block 32 in LiteRT: 0.98 -> 0.63 ms)
            fmt = WeightFormat(LOW_BITS_EMBEDDING_BITS, "channel", fmt.block_size)
        axis = _gather_table_axis(gather, v, fmt.bits, tables)  # dequantized once: the better axis
        if axis is not None:
            return axis, fmt
        # a big (or rank-1) table
        if fmt.granularity != "tensor" and not self.weight_only and _as_lookup(gather, v) and _reads_directly("EMBEDDING_LOOKUP", fmt):
            return 0, fmt  # per row, read by EMBEDDING_LOOKUP
        if key is None:  # one scale only: int16, as under an 8-bit setting
            return None, WeightFormat(EMBEDDING_BITS, "tensor", fmt.block_size)
        return None, fmt

    def _eligible(self, v: SSAValue) -> bool:
        w = float_weight(v)
        return w is not None and w.size >= max(self.min_elements, 1) and w.ndim >= 1 and _quantizable_source(v)

    def _plan_lstm(self, o: Operation, plans: dict[SSAValue, tuple[int | None, WeightFormat]]) -> None:
        present = {
            i: o.operands[i]
            for i in WEIGHT_INPUTS["UNIDIRECTIONAL_SEQUENCE_LSTM"]
            if i < len(o.operands) and not isinstance(o.operands[i].owner, tfl.NoValueOp)
        }
        if not present:
            return
        weights = {i: float_weight(v) for i, v in present.items()}
        if any(w is None for w in weights.values()) or not all(_quantizable_source(v) for v in present.values()):
            return
        matrices = [weights[i] for i in LSTM_MATRICES if i in weights]
        if not matrices or any(w.size < self.min_elements for w in matrices):  # type: ignore[union-attr]
            return
        for v in present.values():
            plans.setdefault(v, (None, WeightFormat(8, "tensor")))

    # -------------------------------------------------------------------------------
    def _rewrite(self, v: SSAValue, axis: int | None, fmt: WeightFormat, hybrid_ops: list[Operation],
                 table: tuple[int, int, np.ndarray, UniformQuantizedType, float] | None = None, searches: _Searches | None = None,
                 stacks: _Stacks | None = None, slab: Slab | None = None) -> None:
        """`table`: (axis, bits, codes, type, SQNR) of a GATHER table rounded to nearest when its
        axis was chosen (_gather_table_axis), used as they are where this rewrite rounds the
        same way. Where rounding to nearest measured the weight's SQNR (per channel along
        axis 0, GATHER tables) the constant carries it (SQNR_ATTR). `searches`: see _searches;
        `stacks`: see _stacks."""
        w = float_weight(v)
        assert w is not None

        def not_finite() -> TflquantError:
            readers = ", ".join(sorted({u.operation.name for u in v.uses}))
            return TflquantError(
                f"quantize-weights: weight {describe(v)} (read by {readers}) holds NaN or infinite values "
                "and cannot be quantized; fix the float model or raise min-elements above its size to keep it float"
            )

        # round to nearest per channel along axis 0 finds a NaN / infinity from the channel
        # maxima it computes anyway (quantize_weight's one pass over the weight); every
        # other path checks first
        rows_path = fmt.granularity == "channel" and axis == 0 and w.ndim >= 2 and w.size > 0 and w.flags.c_contiguous and self._nearest(fmt)
        # blocks rounded to nearest likewise (_quantize_blocks, or _quantize_rows of the blocks
        # read through DEQUANTIZE)
        blocks_path = fmt.granularity == "block" and w.size > 0 and self._nearest(fmt)
        tensor_path = axis is None and fmt.granularity == "tensor" and w.size > 0 and self._nearest(fmt)  # (_quantize_tensor)
        checked = searches is not None and v in searches.finite  # (by its batch's search, searched for an earlier weight)
        if not rows_path and not blocks_path and not tensor_path and not checked and not all_finite(w):
            raise not_finite()
        source = v.owner
        assert isinstance(source, Operation) and source.parent is not None
        block = source.parent
        ftype = v.type
        assert isinstance(ftype, TensorType)
        named = source.operands[0] if isinstance(source, tfl.DequantizeOp) else v  # fp16 weight: its constant's name
        name = value_name(named)
        qv: SSAValue | None = None  # the weight hybrid kernels read (None: blocks read through DEQUANTIZE only)
        chosen: list[str] = []  # the data-aware method that rounded it (none: round to nearest)
        if fmt.granularity == "block" and self._blocks_read_directly(v, fmt):
            got = self._rounded(v, w, None, fmt, fp16_scales=True, chosen=chosen, searches=searches, stacks=stacks)
            if blocks_path and (done := _quantize_blocks(w, fmt.block_size, (1 << (fmt.bits - 1)) - 1, slab)) is None:
                raise not_finite()
            q, btype = quantize_blockwise(w, fmt.block_size, fmt.bits, got) if not blocks_path else (
                done[0], BlockwiseQuantizedType.make(_storage(fmt.bits), fmt.block_size, done[1].reshape(*w.shape[:-1], w.shape[-1] // fmt.block_size)))
            qconst = tfl.ConstOp(_codes_attr(q, own=got is None), with_element(ftype, btype), name=name)
            _label_rounding(qconst, chosen)
            block.insert_op_before(qconst, source)
            qv = qconst.result
        elif fmt.granularity == "block":
            qconst = None  # blocks read through DEQUANTIZE only: built by _dequantized_blocks
        else:
            db = None  # the weight's SQNR, where rounding measured it
            own: list[bool] = []  # [True]: codes of this module's rounding (data-aware rounding's are copied)
            if table is not None and table[:2] == (axis, fmt.bits) and fmt.granularity == "channel" and self._nearest(fmt):
                q, qtype, db = table[2], table[3], table[4]  # what quantize_weight(w, axis, bits) rounds to nearest
            elif tensor_path:
                one = _quantize_tensor(w, (1 << (fmt.bits - 1)) - 1)
                if one is None:
                    raise not_finite()
                q, qtype = one[0], UniformQuantizedType.make(_storage(fmt.bits), float(one[1][0]), 0, narrow=True)
            elif rows_path:
                done = _quantize_rows(w.reshape(w.shape[0], -1), (1 << (fmt.bits - 1)) - 1, measure=True, slab=slab)
                if done is None:
                    raise not_finite()
                q, qtype, db = done[0].reshape(w.shape), UniformQuantizedType.make(_storage(fmt.bits), done[1], 0, axis=0, narrow=True), done[2]
            else:
                got = self._rounded(v, w, axis, fmt, chosen=chosen, searches=searches, stacks=stacks, own=own)
                own = [got is None or own == [True]]
                q, qtype = quantize_weight(w, axis, fmt.bits, got)
            release_payload(w, RELEASE_MIN_FILE)  # read once: a big mapped model's pages of it may go
            qconst = tfl.ConstOp(_codes_attr(q, own=own != [False]), with_element(ftype, qtype), name=name)
            _label_rounding(qconst, chosen)
            if db is not None and math.isfinite(db):
                qconst.attributes[SQNR_ATTR] = float64_attr(db)
            block.insert_op_before(qconst, source)
            qv = qconst.result

        dequant: SSAValue | None = None

        def dequantized() -> SSAValue:
            nonlocal dequant
            if dequant is None:
                dname = None if name is None else f"{name}_dequantize"
                if fmt.granularity == "block":
                    mine: list[str] = []
                    dequant = _dequantized_blocks(w, fmt, ftype, name, source, self._rounded(v, w, None, fmt, fp16_scales=False, chosen=mine, searches=searches, stacks=stacks), mine,
                                                  slab, not_finite if blocks_path else None)
                else:
                    assert qv is not None and qconst is not None
                    dq = tfl.DequantizeOp([qv], [ftype], names=None if dname is None else [dname])
                    block.insert_op_after(dq, qconst)
                    dequant = dq.outputs[0]
            return dequant

        for use in list(v.uses):
            user = use.operation
            if kept_float(user):
                continue  # keep-float: it reads the float weight, which then stays too
            kind = _op_kind(user)
            axis_ok, hybrid = self._hybrid_use(kind, use.index, axis, fmt)
            if hybrid and axis_ok and not self.weight_only and qv is not None:
                user.operands[use.index] = qv
                if kind in ASYMMETRIC_INPUTS:
                    assert isinstance(user, tfl.TflOp)
                    user.set_option("asymmetric_quantize_inputs", True)
                hybrid_ops.append(user)
            elif (table := self._table_read(kind, use.index, user, v, qv, axis, fmt)) == "lookup":
                assert qv is not None
                _gather_as_lookup(user, qv)
            elif table == "integer":
                assert qv is not None
                self._gather_integer(user, qv)
            else:
                user.operands[use.index] = dequantized()

        if qconst is not None and qv is not None and not qv.uses:
            Rewriter.erase_op(qconst)
        if fmt.granularity == "block":  # (its uses may have read it again for a DEQUANTIZE's blocks)
            release_payload(w, RELEASE_MIN_FILE)  # read once: a big mapped model's pages of it may go
        self._erase_if_dead(source)

    def _table_read(self, kind: str | None, index: int, gather: Operation, v: SSAValue, qv: SSAValue | None, axis: int | None, fmt: WeightFormat) -> str | None:
        """How a GATHER reading the quantized table qv (from v) as its input `index` reads
        the integer rows itself: "lookup" (an EMBEDDING_LOOKUP of per-row or blockwise rows,
        for a big table), "integer" (a GATHER of the one-scale table, dequantized after), or
        None (anything else: through DEQUANTIZE)."""
        if kind != "GATHER" or index != 0 or qv is None or self.weight_only:
            return None
        rows = axis == 0 or isinstance(qv.type.element_type, BlockwiseQuantizedType)  # type: ignore[attr-defined]
        if rows and _as_lookup(gather, v) and _reads_directly("EMBEDDING_LOOKUP", fmt):
            return "lookup"
        if axis is None and fmt.granularity == "tensor" and _reads_directly("GATHER", fmt):
            return "integer"
        return None

    def _blocks_read_directly(self, v: SSAValue, fmt: WeightFormat) -> bool:
        """A blockwise weight v is stored as LiteRT's BlockwiseQuantization (fp16 scales): a
        hybrid kernel or an EMBEDDING_LOOKUP reads it (else it is read through DEQUANTIZE)."""
        return not self.weight_only and (
            any(_op_kind(u.operation) == "GATHER" and u.index == 0 and _as_lookup(u.operation, v) for u in v.uses)
            or any(self._hybrid_use(_op_kind(u.operation), u.index, None, fmt) == (True, True) for u in v.uses)
        )

    def _searches(self, plans: dict[SSAValue, tuple[int | None, WeightFormat]]) -> _Searches | None:
        """The data-free MSE clipping searches _rewrite will make (no statistics; weights of at
        most SEARCH_AHEAD_MAX elements), batched (None: none to batch)."""
        if getattr(self, "statistics", None) is not None or self.weight_rounding == "nearest":
            return None
        searches = _Searches()
        for v, (axis, fmt) in plans.items():
            if resolve_method(self.weight_rounding, fmt.bits, False) != "mse":
                continue
            shape = tuple(v.type.get_shape())  # type: ignore[attr-defined]
            if math.prod(shape) > SEARCH_AHEAD_MAX:
                continue
            if fmt.granularity == "block":  # the scales _rewrite's first search takes: fp16 where LiteRT reads the blocks
                searches.plan(v, None, fmt, self._blocks_read_directly(v, fmt), shape)
            else:
                searches.plan(v, axis, fmt, None, shape)
        return searches if searches.batch else None

    def _stacks(self, plans: dict[SSAValue, tuple[int | None, WeightFormat]]) -> _Stacks | None:
        """The GPTQ roundings _rewrite will make of 2-D weights that layers of one input read,
        grouped to be stacked (_Stacks; None: no group of two)."""
        store = getattr(self, "statistics", None)
        if store is None or self.weight_rounding not in ("gptq", "auto"):
            return None
        groups: dict[tuple[str, int | None, WeightFormat, bool | None, int], list[SSAValue]] = {}
        for v, (axis, fmt) in plans.items():
            if fmt.granularity not in ("channel", "block") or resolve_method(self.weight_rounding, fmt.bits, True) != "gptq":
                continue
            shape = tuple(v.type.get_shape()) if isinstance(v.type, TensorType) else ()
            if len(shape) != 2 or (fmt.granularity == "channel" and axis != 0):
                continue
            key, adj, fit = layer_key(store, v)
            if key is None or adj is not None or not fit or key not in store.xtx:
                continue
            # the arguments _rewrite's _rounded call will take: blocks without an axis, fp16
            # scales where LiteRT reads the blocks (through DEQUANTIZE: float32)
            a = None if fmt.granularity == "block" else axis
            fp16 = self._blocks_read_directly(v, fmt) if fmt.granularity == "block" else None
            groups.setdefault((key, a, fmt, fp16, shape[1]), []).append(v)
        stacks = _Stacks(store)
        for (key, a, fmt, fp16, _n), vs in groups.items():
            if len(vs) > 1:
                for v in vs:
                    stacks.group[(v, a, fmt, fp16)] = (key, vs)
        return stacks if stacks.group else None

    def _hybrid_use(self, kind: str | None, index: int, axis: int | None, fmt: WeightFormat) -> tuple[bool, bool]:
        """(weight layout fits the kernel, the op reads the integer weight directly)."""
        spec = WEIGHT_INPUTS.get(kind or "", {}).get(index)
        if spec is None:
            return False, False
        want_axis, hybrid = spec
        if not _reads_directly(kind, fmt):  # type: ignore[arg-type]
            return False, hybrid
        if fmt.granularity == "block":
            return True, hybrid
        if axis is None:
            return kind not in PER_CHANNEL_ONLY, hybrid
        return want_axis == axis, hybrid

    @staticmethod
    def _gather_integer(gather: Operation, qv: SSAValue) -> None:
        """GATHER on the (per-tensor) integer table (int4 / int8 / int16), then DEQUANTIZE its output
        back to float; the integer rows are named `<name>_int<bits>`."""
        assert isinstance(gather, tfl.TflOp) and gather.parent is not None
        out = gather.outputs[0]
        ftype = out.type
        assert isinstance(ftype, TensorType) and isinstance(qv.type, TensorType)
        qelem = qv.type.element_type
        assert isinstance(qelem, UniformQuantizedType) and not qelem.per_axis
        name = value_name(out)
        new_gather = type(gather)(
            [qv, *gather.operands[1:]],
            [with_element(ftype, qelem)],
            names=None if name is None else [f"{name}_int{qelem.bits}"],
        )
        new_gather.properties.update(gather.properties)
        dq = tfl.DequantizeOp([new_gather.outputs[0]], [ftype], names=None if name is None else [name])
        block = gather.parent
        block.insert_op_before(new_gather, gather)
        block.insert_op_after(dq, new_gather)
        out.replace_all_uses_with(dq.outputs[0])
        Rewriter.erase_op(gather)

    @staticmethod
    def _erase_if_dead(source: Operation) -> None:
        if any(r.uses for r in source.results):
            return
        inputs = list(source.operands)
        Rewriter.erase_op(source)
        for v in inputs:  # DEQUANTIZE(fp16 const): drop the fp16 constant too
            if isinstance(v.owner, tfl.ConstOp) and not v.uses:
                Rewriter.erase_op(v.owner)
