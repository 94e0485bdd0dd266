"""The fake-quant form the static passes build and read: `quant.dcast` in front of an op's
float inputs, `quant.qcast` after its float results, and the integer payloads and
parameters that go with them. Shared by insert-fake-quant, propagate-scales,
rewrite-integer, legalize-float-fallback, quantize-control-flow, quantize-lstm,
set-io-types and correct-bias; not a pass.
"""

from __future__ import annotations

import numpy as np
from xdsl.ir import Operation, SSAValue

from tflquant.dialects import quant
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.passes._quant_ops import bits_of
from tflquant.quant_math import choose_activation_params, quantize

# Argument / result attribute: the type a model input or output read or computed in float
# was calibrated to, for set-io-types (integer I/O around a float op).
IO_QUANT_TYPE = "tflquant.quant_type"


def qcast_users(v: SSAValue) -> list[quant.QuantizeCastOp]:
    """The `quant.qcast`s that read v."""
    return [u.operation for u in v.uses if isinstance(u.operation, quant.QuantizeCastOp)]


def dcast_source(v: SSAValue) -> quant.DequantizeCastOp | None:
    """The `quant.dcast` that produces v, if one does."""
    return v.owner if isinstance(v.owner, quant.DequantizeCastOp) else None


def input_qtype(v: SSAValue) -> UniformQuantizedType | None:
    """The quantized type a float input is dequantized from, if it is."""
    d = dcast_source(v)
    return quant.quantized_element(d.input.type) if d is not None else None


def op_bits(o: Operation) -> int | None:
    """Activation bits of a fake-quantized op: from its output qcasts or input dcasts."""
    for r in o.results:
        for q in qcast_users(r):
            if (t := quant.quantized_element(q.result.type)) is not None:
                return bits_of(t)
    for v in o.operands:
        if (t := input_qtype(v)) is not None and not t.per_axis:
            return bits_of(t)
    return None


def activation_params(lo: float, hi: float, bits: int) -> UniformQuantizedType:
    """int8 asymmetric / int16 symmetric parameters for the range [lo, hi].

    A degenerate range (all zero, or narrower than 1e-6 once it holds 0) is widened to
    +-5e-7, as TF's converter does (MLIR quantization_utils' ExpandVerySmallRange,
    kNearZeroTolerance 1e-6): scale 3.9e-9 (int8), 1.5e-11 (int16). Any scale holds zeros,
    but an op computing such a value rescales its integer result by s_r / s_out, far above
    1 there, and LiteRT's int32 rescale wraps around: propagate-scales raises the output
    scale to the op's floor (propagate_scales.unit_scale)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-6:  # degenerate (all-zero) range: a tiny non-zero one
        lo, hi = min(lo, -5e-7), max(hi, 5e-7)
    return choose_activation_params(lo, hi, bits=bits, symmetric=bits == 16)


def quantize_const_values(w: np.ndarray, qtype: UniformQuantizedType) -> np.ndarray:
    """Integer payload of a constant: symmetric narrow types round half to even in float32
    (bit-identical to the TF converter's weights), others as LiteRT's QUANTIZE."""
    if qtype.qmin == -qtype.qmax and not np.any(qtype.zero_point_array()):
        s = qtype.scale_array().astype(np.float32)
        if qtype.per_axis:
            shape = [1] * w.ndim
            shape[qtype.axis.data] = -1
            s = s.reshape(shape)
        else:
            s = s.reshape(())
        q = np.clip(np.rint(np.asarray(w, np.float32) / s), qtype.qmin, qtype.qmax)
        return q.astype(qtype.numpy_dtype())
    return quantize(w, qtype)


def storage_suffix(t: UniformQuantizedType) -> str:
    """'int8', 'uint8', 'int16', ...: the suffix of an integer tensor's name."""
    return f"{'int' if t.is_signed else 'uint'}{bits_of(t)}"
