"""`fold-bias-add`: a constant added per output channel after a conv or fully-connected layer
becomes that layer's bias.

Keras' Dense on a 3-D input converts to FULLY_CONNECTED -> RESHAPE -> ADD(bias) (the
Tensordot form; attention projections reshape to heads in between). Quantized, the ADD is
one more int8 kernel and one more rounding of the activation, and its constant is an int8
tensor; as the layer's bias it is int32 at scale input x weight and costs nothing. So:

    %y = FULLY_CONNECTED(%x, %w, %b or none)        (no fused activation)
    %r = RESHAPE(%y, ...)                           (zero or more, each read only here)
    %z = ADD(%r, %c)  {act}                         (or ADD(%c, %r), or SUB(%r, %c))

becomes, when `%c` broadcast to `%z` depends only on the layer's output channel,

    %y' = FULLY_CONNECTED(%x, %w, %b + %c) {act}    (%c as one value per channel)
    %z  = RESHAPE(%y', ...)

The same holds for CONV_2D and DEPTHWISE_CONV_2D (channels last). A fused activation of the
ADD moves to the layer (it is elementwise: it commutes with the reshapes); ADDs that read
a layer with a fused activation, a non-constant or non-float bias, or any value another op
also reads, are left alone. Values are unchanged up to float rounding of the bias sum.

Calibration: the pass runs on annotated IR (after `annotate-calibration`). Each value of
the chain now holds the ADD's values in another shape, so its `quant.stats` takes the ADD's
range; the ADD's own `quant.stats` stays on the last value, which takes the ADD's tensor
name (model outputs keep theirs); the other values of the chain get `/with_bias` appended
to their names, as they no longer hold what the float model calls by those names.
Unannotated IR folds the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.ir import dense_from_numpy, erase_if_unused, kept_float, set_name, value_name
from tflquant.passes._quant_ops import float_const, is_f32



def _layer(o: Operation) -> tfl.AffineOp | None:
    """The declaration of a layer whose bias is a per-channel add after its product
    (tfl.AffineOp calibrated_bias: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)."""
    return _layer_of_class(type(o))


@functools.cache
def _layer_of_class(cls: type) -> tfl.AffineOp | None:
    """_layer, judged once per op class (its declaration)."""
    a = cls.get_trait(tfl.AffineOp) if issubclass(cls, tfl.TflOp) else None
    return a if a is not None and a.calibrated_bias and a.bias is not None else None

# activations the layers fuse like ADD does
FUSABLE = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _only_reader(v: SSAValue) -> tuple[Operation | None, quant.StatsOp | None]:
    """The one op reading `v` (looking through one quant.stats), and that stats op."""
    stats = None
    uses = list(v.uses)
    if len(uses) == 1 and isinstance(uses[0].operation, quant.StatsOp):
        stats = uses[0].operation
        uses = list(stats.result.uses)
    return (uses[0].operation if len(uses) == 1 else None), stats


def per_channel_row(c: np.ndarray, out_shape: list[int], channels: int) -> np.ndarray | None:
    """`c`, broadcast to `out_shape`, as one value per layer output channel, or None when it
    varies along anything else. The layer's flat output index f has channel f mod channels;
    reshapes keep f, so the trailing dims of `out_shape` whose product is `channels` are the
    channel; `c` must be constant (size 1) along every dim before them."""
    rank = len(out_shape)
    if c.ndim > rank:
        return None
    k, prod = 0, 1
    while prod < channels and k < rank:
        k += 1
        d = out_shape[rank - k]
        if d < 0:
            return None
        prod *= d
    if prod != channels:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for d in full.shape[: rank - k]):
        return None
    try:
        tail = np.broadcast_to(full.reshape(full.shape[rank - k :]), out_shape[rank - k :])
    except ValueError:
        return None
    return np.ascontiguousarray(tail, dtype=np.float32).reshape(channels)


def _fold(layer: Operation) -> bool:
    y = layer.results[0]
    # walk y -> (stats) -> RESHAPE -> (stats) -> ... -> ADD/SUB (first: most layers have none)
    chain: list[tuple[SSAValue, quant.StatsOp | None]] = []
    v = y
    while True:
        reader, stats = _only_reader(v)
        chain.append((v, stats))
        if isinstance(reader, tfl.ReshapeOp) and reader.inputs[0] is (stats.result if stats else v) and is_f32(reader.results[0].type):
            v = reader.results[0]
            continue
        break
    add = reader
    if not isinstance(add, tfl.BUILTIN_CLASSES["ADD"] | tfl.BUILTIN_CLASSES["SUB"]) or len(add.inputs) != 2 or kept_float(add):
        return False
    if not is_f32(y.type) or str(layer.option("fused_activation_function")) != "NONE":
        return False
    assert isinstance(y.type, TensorType)
    if y.type.get_num_dims() == 0:  # a corrupt model's scalar layer output: nothing to fold into
        return False
    channels = int(y.type.get_shape()[-1])
    affine = _layer(layer)
    assert affine is not None and affine.bias is not None
    bias_at = affine.bias
    old_bias = layer.inputs[bias_at] if len(layer.inputs) > bias_at else None
    bias = layer.operand("bias")
    if channels < 1 or (bias is not None and float_const(bias) is None) or float_const(layer.inputs[affine.weight]) is None:
        return False
    last = chain[-1][1].result if chain[-1][1] else v
    lhs, rhs = add.inputs
    const_v = rhs if lhs is last else lhs if (rhs is last and isinstance(add, tfl.BUILTIN_CLASSES["ADD"])) else None
    act = str(add.option("fused_activation_function"))
    if const_v is None or (c := float_const(const_v)) is None or act not in FUSABLE:
        return False
    z = add.results[0]
    if not is_f32(z.type) or z.type != v.type:  # the constant must not broadcast the activation
        return False
    row = per_channel_row(np.asarray(c.numpy(), np.float32), [int(d) for d in z.type.get_shape()], channels)  # type: ignore[union-attr]
    if row is None:
        return False
    if isinstance(add, tfl.BUILTIN_CLASSES["SUB"]):
        row = -row
    base = np.zeros(channels, np.float32) if bias is None else np.asarray(float_const(bias).numpy(), np.float32).reshape(channels)  # type: ignore[union-attr]
    new_bias = tfl.ConstOp(dense_from_numpy((base + row).astype(np.float32)), name=value_name(const_v) or f"{value_name(z)}/bias")
    inputs = list(layer.inputs)
    inputs[bias_at : bias_at + 1] = [new_bias.result]  # replaces the bias, or appends it
    Rewriter.insert_op(new_bias, InsertPoint.before(layer))
    layer.operands = inputs  # type: ignore[assignment]
    layer.set_option("fused_activation_function", act)  # type: ignore[attr-defined]
    erase_if_unused(old_bias.owner if old_bias is not None and isinstance(old_bias.owner, Operation) else None)

    # calibration: every value of the chain now ranges like z; z's stats move to the last value
    z_stats = [u.operation for u in z.uses if isinstance(u.operation, quant.StatsOp)]
    for value, stats in chain:
        if stats is None:
            continue
        if z_stats and value is not v:
            stats.properties["stats"] = _per_tensor(z_stats[0].stats)
        else:
            stats.result.replace_all_uses_with(value)
            Rewriter.erase_op(stats)
    z.replace_all_uses_with(v)
    names = tfl.tensor_names(add)
    Rewriter.erase_op(add)
    erase_if_unused(c)
    if names:
        set_name(v.owner, 0, names[0])  # type: ignore[arg-type]
    # the chain's other values hold layer + bias now: their old names would claim the values
    # without it (tflquant compare would score them against those)
    for value, _ in chain:
        if value is not v and isinstance(value.owner, Operation) and (name := value_name(value)) is not None:
            set_name(value.owner, value.index, f"{name}/with_bias")  # type: ignore[attr-defined]
    return True


def _per_tensor(s: quant.CalibrationStatsAttr) -> quant.CalibrationStatsAttr:
    return quant.CalibrationStatsAttr.make(float(np.min(s.min_array())), float(np.max(s.max_array())))


@dataclass(frozen=True)
class FoldBiasAdd(ModulePass):
    """No constant per-channel ADD/SUB follows a float conv or fully-connected layer (through
    reshapes): it is in the layer's bias, with its fused activation; values unchanged."""

    name = "fold-bias-add"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for layer in [o for o in op.walk() if _layer(o) is not None and not kept_float(o)]:
            while _fold(layer):  # ADD(ADD(layer, c1), c2): both fold; each fold erases an op
                pass
