"""Per-channel rescaling of weighted layers, shared by equalize-cross-layer and smooth-quant
(not a pass).

Both passes move a positive per-channel factor s across an activation: the activation's
channel i is divided by s_i and the layer that reads it multiplies the weights of input
channel i by s_i, so the float function is unchanged up to float rounding. Here: which
weights hold input channel i of a layer (`in_ranges` / `scale_inputs`), which hold output
channel o (`out_ranges` / `scale_outputs`), and how a constant operand gets new values.
"""

from __future__ import annotations

import numpy as np
from xdsl.ir import Operation
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import tfl
from tflquant.ir import dense_from_numpy, erase_if_unused, value_name
from tflquant.passes._quant_ops import float_const


def in_groups(kind: str, w: np.ndarray, channels: int) -> int | None:
    """How many weight slices along the input axis belong to each of `channels` input
    channels (None: the layer cannot read an activation of that many channels).
    FULLY_CONNECTED [O, K] reads its input as rows of K values: column k is channel
    k mod channels (a flattened or reshaped activation keeps that order), so K must be a
    multiple; DEPTHWISE_CONV_2D [1, H, W, C*M]: output channel k reads input channel k // M;
    CONV_2D [O, H, W, I]: I == channels; BATCH_MATMUL with a constant [..., K, N] right side:
    K == channels."""
    if channels < 1:
        return None
    if kind == "CONV_2D" and w.ndim == 4 and w.shape[3] == channels:
        return 1
    if kind == "DEPTHWISE_CONV_2D" and w.ndim == 4 and w.shape[3] % channels == 0 and w.shape[3]:
        return w.shape[3] // channels
    if kind == "FULLY_CONNECTED" and w.ndim == 2 and w.shape[1] % channels == 0 and w.shape[1]:
        return w.shape[1] // channels
    if kind == "BATCH_MATMUL" and w.ndim >= 2 and w.shape[-2] == channels:
        return 1
    return None


def in_ranges(kind: str, w: np.ndarray, channels: int) -> np.ndarray:
    """max |w| over the weights that read each input channel."""
    a = np.abs(w)
    if kind == "CONV_2D":
        return a.max(axis=(0, 1, 2))
    if kind == "DEPTHWISE_CONV_2D":
        return a.reshape(-1, channels, w.shape[3] // channels).max(axis=(0, 2))
    if kind == "FULLY_CONNECTED":
        return a.reshape(w.shape[0], -1, channels).max(axis=(0, 1))
    return np.moveaxis(a, -2, -1).reshape(-1, channels).max(axis=0)  # BATCH_MATMUL


def scale_inputs(kind: str, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """w with the weights of input channel i multiplied by s[i]."""
    c = s.size
    if kind == "CONV_2D":
        return w * s
    if kind == "DEPTHWISE_CONV_2D":
        return w * np.repeat(s, w.shape[3] // c)
    if kind == "FULLY_CONNECTED":
        return w * np.tile(s, w.shape[1] // c)
    return w * s[:, None]  # BATCH_MATMUL [..., K, N]


def out_axis(kind: str) -> int:
    """The weight axis of the layer's output channels (CONV_2D / FULLY_CONNECTED 0,
    DEPTHWISE_CONV_2D 3)."""
    return 3 if kind == "DEPTHWISE_CONV_2D" else 0


def out_ranges(kind: str, w: np.ndarray) -> np.ndarray:
    """max |w| per output channel."""
    ax = out_axis(kind)
    return np.abs(w).max(axis=tuple(d for d in range(w.ndim) if d != ax))


def scale_outputs(kind: str, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """w with output channel o multiplied by s[o]."""
    shape = [1] * w.ndim
    shape[out_axis(kind)] = s.size
    return w * s.reshape(shape)


def set_const_operand(op: Operation, index: int, values: np.ndarray) -> None:
    """Operand `index` of op becomes a new float32 constant holding `values` (inserted just
    before op). It keeps the old constant's tensor name when nothing else reads the old one
    (which is then erased); a constant other ops share stays and the new one is named
    '<name>/rescaled_for/<op's output name>'."""
    old = op.operands[index]
    old_const = float_const(old)
    name = (value_name(old) if old_const is not None else None) or f"{value_name(op.results[0]) or 'tensor'}/scale"
    shared = any(u.operation is not op or u.index != index for u in old.uses)
    new = tfl.ConstOp(dense_from_numpy(np.ascontiguousarray(values, dtype=np.float32)), name=f"{name}/rescaled_for/{value_name(op.results[0])}" if shared else name)
    Rewriter.insert_op(new, InsertPoint.before(op))
    op.operands[index] = new.result
    erase_if_unused(old.owner if isinstance(old.owner, Operation) else None)


def const_array(op: Operation, index: int) -> np.ndarray | None:
    """The float32 constant at operand `index` as float64, or None (absent, not constant)."""
    if index >= len(op.operands):
        return None
    c = float_const(op.operands[index])
    return None if c is None else np.asarray(c.numpy(), dtype=np.float64)


def is_layer(op: Operation, kinds: tuple[str, ...]) -> bool:
    return isinstance(op, tfl.TflOp) and op.BUILTIN in kinds
