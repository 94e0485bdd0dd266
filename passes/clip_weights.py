"""clip-weights: per-channel int8 weight scales that minimize the layer's output error.

insert-fake-quant gives each output channel of a CONV_2D, DEPTHWISE_CONV_2D or
FULLY_CONNECTED filter the scale absmax/127. A smaller scale clips the few largest
weights but rounds all others more finely; which is better depends on what the channel's
output sees. This pass picks, per output channel o, the scale s = r * absmax/127 (r in
[0.5, 1], 51 steps, r = 1 kept on ties) that minimizes the expected squared output error
on the calibration data under a diagonal input covariance:

    err(s) = sum_k e_k(s)^2 * Var[x_k] * t_k   (+ (sum_k e_k(s) * E[x_k] * t_k)^2 unless corrected)

with e(s) = Q_s(W[o]) - W[o], x_k the input channel that weight k reads, Var and E from
the calibrated per-channel mean and mean square of the layer's input (the layer's
`input_moments` attribute, attached by annotate-calibration; the pass reads only the IR), and t_k the share of
output positions where a convolution tap reads input rather than padding. With
`corrected=true` (the default; run correct-bias afterwards) the mean term is left out,
because correct-bias cancels it. Run it right after insert-fake-quant: it replaces the
filter's fake-quant type. Only per-channel filters of layers with a fake-quantized input
are touched; layers without input moments (mean and mean_sq) keep absmax. A touched layer is marked
`tflquant.weights_clipped`, so running the pass twice is the same as running it once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.passes._quant_ops import float_const, is_f32
from tflquant.passes._weighted_layers import KINDS, fake_quant_source, input_moments, tap_shares

MARK = "tflquant.weights_clipped"
RATIOS = np.linspace(1.0, 0.5, 51)


def rows(kind: str, w: np.ndarray, mean: np.ndarray, var: np.ndarray, taps: np.ndarray | None):
    """(W as [O, K], E[x] per weight [O, K], Var[x] * tap share per weight, tap share) or None."""
    if kind == "FULLY_CONNECTED":
        if w.ndim != 2 or mean.size != w.shape[1]:
            return None
        o = w.shape[0]
        t = np.ones_like(w, dtype=np.float64)
        return w, np.broadcast_to(mean, w.shape), np.broadcast_to(var, w.shape), t
    if w.ndim != 4:
        return None
    tp = taps if taps is not None else np.ones(w.shape[1:3])
    if kind == "CONV_2D":  # [O, H, W, I]
        if mean.size != w.shape[3]:
            return None
        o = w.shape[0]
        m = np.broadcast_to(mean[None, None, None, :], w.shape).reshape(o, -1)
        v = np.broadcast_to(var[None, None, None, :], w.shape).reshape(o, -1)
        t = np.broadcast_to(tp[None, :, :, None], w.shape).reshape(o, -1)
        return w.reshape(o, -1), m, v, t
    # DEPTHWISE_CONV_2D [1, H, W, C*mult]: output channel o reads input channel o // mult
    if w.shape[3] % mean.size:
        return None
    mult = w.shape[3] // mean.size
    wr = np.moveaxis(w, 3, 0).reshape(w.shape[3], -1)
    m = np.broadcast_to(np.repeat(mean, mult)[:, None], wr.shape)
    v = np.broadcast_to(np.repeat(var, mult)[:, None], wr.shape)
    t = np.broadcast_to(tp.reshape(1, -1), wr.shape)
    return wr, m, v, t


def best_scales(w: np.ndarray, m: np.ndarray, v: np.ndarray, t: np.ndarray, base: np.ndarray, corrected: bool) -> np.ndarray:
    """Per row of w: the scale r * base[o] with the least expected output error."""
    w = w.astype(np.float64)
    best = base.astype(np.float64).copy()
    best_err = np.full(base.shape, np.inf)
    for r in RATIOS:
        s = base * r
        e = np.clip(np.rint(w / s[:, None]), -127, 127) * s[:, None] - w
        err = np.sum(e * e * v * t, axis=1)
        if not corrected:
            err = err + np.sum(e * m * t, axis=1) ** 2
        better = err < best_err * (1 - 1e-9)
        best_err[better] = err[better]
        best[better] = s[better]
    return best


@dataclass(frozen=True)
class ClipWeights(ModulePass):
    """Per-channel weight scales chosen by expected output error (see module docstring)."""

    name = "clip-weights"

    corrected: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            for o in list(f.walk()):
                if isinstance(o, tfl.TflOp) and o.BUILTIN in KINDS and MARK not in o.attributes:
                    clip_layer(o, self.corrected)


def clip_layer(o: tfl.TflOp, corrected: bool = True) -> bool:
    affine = type(o).get_trait(tfl.AffineOp)  # the layer's input and weight operands
    if affine is None:
        return False
    xi, wi = affine.input, affine.weight
    if len(o.inputs) <= max(xi, wi) or not is_f32(o.outputs[0].type) or fake_quant_source(o.inputs[xi]) is None:
        return False
    src = fake_quant_source(o.inputs[wi])
    if src is None:
        return False
    wsrc, qcast = src
    c = float_const(wsrc)
    qt = quant.quantized_element(qcast.result.type)
    if c is None or qt is None or not qt.per_axis:
        return False
    moments = input_moments(o)
    mean_sq = moments.mean_sq_array() if moments is not None else None
    if moments is None or mean_sq is None:
        return False
    mean = moments.mean_array()
    var = np.maximum(mean_sq - mean * mean, 0.0)
    w = c.numpy().astype(np.float32)
    parts = rows(o.BUILTIN, w, mean, var, tap_shares(o, w))
    if parts is None:
        return False
    wr, m, v, t = parts
    base = qt.scale_array().astype(np.float64)
    if base.size != wr.shape[0]:
        return False
    scales = best_scales(wr, m, v, t, base, corrected)
    o.attributes[MARK] = UnitAttr()
    if np.array_equal(scales, base):
        return False
    new_t = UniformQuantizedType.make(qt.storage_type, [float(s) for s in scales], 0, axis=qt.axis.data, narrow=True)
    q = quant.QuantizeCastOp(wsrc, new_t)
    d = quant.DequantizeCastOp(q.result)
    old_d = o.inputs[wi].owner
    Rewriter.insert_op([q, d], InsertPoint.before(qcast))
    o.operands[wi] = d.result
    if isinstance(old_d, quant.DequantizeCastOp) and not old_d.result.uses:
        old_d.detach()
        old_d.erase()
        if not qcast.result.uses:
            qcast.detach()
            qcast.erase()
    return True
