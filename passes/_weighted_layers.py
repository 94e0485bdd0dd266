"""The weighted layers (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) as the calibration-driven
passes read them: the layer's fake-quantized input and filter, the tensor name of its input
(the key of its calibration statistics), the per-channel input moments annotate-calibration
attaches, and which filter taps read padding. Shared by annotate-calibration, correct-bias
and clip-weights; not a pass.
"""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from tflquant.dialects import quant, tfl
from tflquant.ir import value_name

# ops whose input moments calibration records and annotate-calibration attaches: the layers
# whose declaration says passes may rewrite their bias (tfl.AffineOp calibrated_bias)
KINDS = tuple(
    b for b, cls in tfl.BUILTIN_CLASSES.items() if (a := cls.get_trait(tfl.AffineOp)) is not None and a.calibrated_bias
)


def is_weighted_layer(o: Operation) -> bool:
    return isinstance(o, tfl.TflOp) and o.BUILTIN in KINDS


def fake_quant_source(v: SSAValue) -> tuple[SSAValue, quant.QuantizeCastOp] | None:
    """For v = dcast(qcast(x)): (x, the qcast)."""
    d = v.owner
    if not isinstance(d, quant.DequantizeCastOp):
        return None
    q = d.input.owner
    if not isinstance(q, quant.QuantizeCastOp):
        return None
    return q.input, q


def input_source(x: SSAValue) -> SSAValue:
    """The value a layer input reads, through a fake-quant pair and a quant.stats op."""
    src = fake_quant_source(x)
    v = src[0] if src else x
    if isinstance(v.owner, quant.StatsOp):
        v = v.owner.input
    return v


def input_name(x: SSAValue) -> str | None:
    """The tensor name of a layer's input (the key of its calibration statistics)."""
    return value_name(input_source(x))


def input_moments(o: Operation) -> quant.ChannelMomentsAttr | None:
    """The calibrated per-channel moments of a layer's input (its `input_moments`)."""
    a = o.attributes.get(quant.INPUT_MOMENTS)
    return a if isinstance(a, quant.ChannelMomentsAttr) else None


def tap_fractions(size: int, k: int, stride: int, dilation: int, padding: str) -> np.ndarray:
    """For each of k kernel taps along one spatial axis: the fraction of output positions
    where the tap reads the input rather than zero padding."""
    if size <= 0:
        return np.ones(k)
    if padding == "SAME":
        out = -(-size // stride)
        pad = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0) // 2
    else:
        out = max((size - (k - 1) * dilation - 1) // stride + 1, 1)
        pad = 0
    pos = np.arange(out)[:, None] * stride + np.arange(k)[None, :] * dilation - pad
    return ((pos >= 0) & (pos < size)).mean(axis=0)


def tap_shares(o: tfl.TflOp, w: np.ndarray) -> np.ndarray | None:
    """Share of output positions where each (h, w) filter tap reads input, not padding
    (None for FULLY_CONNECTED or an input of unknown rank)."""
    if o.BUILTIN not in ("CONV_2D", "DEPTHWISE_CONV_2D") or w.ndim != 4:
        return None
    t = o.inputs[0].type
    if not isinstance(t, TensorType) or len(t.get_shape()) != 4:
        return None
    _, ih, iw, _ = t.get_shape()
    pad = str(o.option("padding"))
    fh = tap_fractions(ih, w.shape[1], int(o.option("stride_h")), int(o.option("dilation_h_factor")), pad)
    fw = tap_fractions(iw, w.shape[2], int(o.option("stride_w")), int(o.option("dilation_w_factor")), pad)
    return np.outer(fh, fw)
