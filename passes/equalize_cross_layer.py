"""equalize-cross-layer: balance per-channel weight ranges between consecutive layers
(Nagel et al. 2019, Data-Free Quantization, section 4.1).

Per-channel int8 weights cope with channels of very different ranges in a layer's output
channels, but the activation between two layers is quantized per tensor, and the next
layer's input channels share one scale per output channel. For a pair

    %y = L1(%x, W1, b1) {act}          CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
    [%y = RELU(%y)] [%y = RESHAPE(%y)]  (each read only by the next)
    %z = L2(%y, W2, ...)               CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED

where %y is read by L2 only, output channel i of L1 (weights and bias) is divided by s_i
and the weights of L2 that read channel i are multiplied by s_i, with
s_i = sqrt(r1_i * r2_i) / r2_i (r1_i: max |W1| of output channel i, r2_i: max |W2| over
input channel i), after which both ranges equal sqrt(r1_i * r2_i). The float function is
unchanged because the activation between is positively homogeneous: act(v / s) =
act(v) / s for s > 0 holds for NONE and RELU. RELU6 (and RELU_N1_TO_1, TANH, ...) clips at
a fixed value, which a per-channel scale would move (min(v/s, 6) != min(v, 6)/s): such
pairs are skipped; the paper replaces RELU6 by RELU, which changes the float function
whenever an activation exceeds 6, so this pass does not. L2's zero padding stays zero,
so SAME/VALID padding keeps the function exact. Chains (conv -> conv -> conv) are
equalized pair by pair until no scale moves by more than `tolerance` (relative) or after
`max-iterations` sweeps, in float64, then stored as float32.

Run it on float IR before calibration (the driver calibrates the equalized model: the
activations between the layers change range). A pair whose activation already carries a
quant.stats op is not a pair here. Touched layers are marked `tflquant.equalized`; a
marked layer is never equalized again, so the pass is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from tflquant.dialects import tfl
from tflquant.passes._quant_ops import is_f32
from tflquant.passes._rescale import const_array, in_groups, in_ranges, is_layer, out_ranges, scale_inputs, scale_outputs, set_const_operand

MARK = "tflquant.equalized"
LAYERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
HOMOGENEOUS = ("NONE", "RELU")  # act(v / s) == act(v) / s for every s > 0


@dataclass
class _Layer:
    op: tfl.TflOp
    w: np.ndarray  # float64 working copy
    b: np.ndarray | None

    @property
    def kind(self) -> str:
        return self.op.BUILTIN


def _only_user(v: SSAValue) -> Operation | None:
    uses = list(v.uses)
    return uses[0].operation if len(uses) == 1 else None


def _load(op: Operation, layers: dict[Operation, _Layer]) -> _Layer | None:
    if op in layers:
        return layers[op]
    if not is_layer(op, LAYERS) or MARK in op.attributes:
        return None
    affine = type(op).get_trait(tfl.AffineOp)
    assert affine is not None and affine.bias is not None
    w = const_array(op, affine.weight)
    bias = op.operand("bias")  # type: ignore[attr-defined]
    b = const_array(op, affine.bias) if bias is not None else None
    if w is None or (bias is not None and b is None) or not is_f32(op.results[0].type):
        return None
    layers[op] = _Layer(op, w, b)  # type: ignore[arg-type]
    return layers[op]


def _next_layer(op: Operation) -> Operation | None:
    """The layer reading op's output through at most one RELU and RESHAPEs, each value
    read by the next op only."""
    v = op.results[0]
    relu_seen = False
    while (user := _only_user(v)) is not None:
        if isinstance(user, tfl.BUILTIN_CLASSES["RELU"]) and not relu_seen and is_f32(user.results[0].type):
            relu_seen = True
        elif isinstance(user, tfl.ReshapeOp) and is_f32(user.results[0].type):
            pass
        elif is_layer(user, LAYERS):
            affine = type(user).get_trait(tfl.AffineOp)
            return user if affine is not None and user.operands[affine.input] is v else None
        else:
            return None
        v = user.results[0]
    return None


def _pairs(f: func.FuncOp, layers: dict[Operation, _Layer]) -> list[tuple[_Layer, _Layer]]:
    out = []
    for op in f.walk():
        if not is_layer(op, LAYERS) or str(op.option("fused_activation_function")) not in HOMOGENEOUS:  # type: ignore[attr-defined]
            continue
        nxt = _next_layer(op)
        if nxt is None or (l1 := _load(op, layers)) is None or (l2 := _load(nxt, layers)) is None:
            continue
        t = op.results[0].type
        channels = l1.w.shape[3 if l1.kind == "DEPTHWISE_CONV_2D" else 0]
        if not isinstance(t, TensorType) or t.get_shape()[-1] != channels or in_groups(l2.kind, l2.w, channels) is None:
            continue
        if l2.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and not _reads_channels_last(nxt, channels):
            continue
        out.append((l1, l2))
    return out


def equalizable_pairs(module: ModuleOp) -> list[tuple[str, str]]:
    """The (first, second) layer output names of every pair the pass would equalize."""
    from tflquant.ir import value_name

    out = []
    for f in [o for o in module.walk() if isinstance(o, func.FuncOp)]:
        out += [(value_name(a.op.results[0]) or "", value_name(b.op.results[0]) or "") for a, b in _pairs(f, {})]
    return out


def _reads_channels_last(op: Operation, channels: int) -> bool:
    """A convolution reads input channel i as channel i of L1's output only without a
    reshape that changes the last dimension."""
    t = op.operands[0].type
    return isinstance(t, TensorType) and t.get_num_dims() == 4 and t.get_shape()[-1] == channels


def equalize(pairs: list[tuple[_Layer, _Layer]], tolerance: float, max_iterations: int) -> None:
    """Balance every pair in place (the working float64 copies), sweeping until no scale
    moves by more than `tolerance` or after `max_iterations` sweeps."""
    for _ in range(max_iterations):
        worst = 0.0
        for l1, l2 in pairs:
            r1 = out_ranges(l1.kind, l1.w)
            r2 = in_ranges(l2.kind, l2.w, r1.size)
            ok = (r1 > 0) & (r2 > 0) & np.isfinite(r1) & np.isfinite(r2)
            s = np.ones_like(r1)
            s[ok] = np.sqrt(r1[ok] / r2[ok])  # sqrt(r1 * r2) / r2
            l1.w = scale_outputs(l1.kind, l1.w, 1.0 / s)
            if l1.b is not None:
                l1.b = l1.b / s
            l2.w = scale_inputs(l2.kind, l2.w, s)
            worst = max(worst, float(np.max(np.abs(s - 1.0))) if s.size else 0.0)
        if worst <= tolerance:
            break


@dataclass(frozen=True)
class EqualizeCrossLayer(ModulePass):
    """Conv/FC layer pairs joined by a NONE or RELU activation have equal weight ranges per
    channel between them (Nagel et al. 2019); float outputs unchanged."""

    name = "equalize-cross-layer"

    tolerance: float = 1e-4
    max_iterations: int = 50

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            layers: dict[Operation, _Layer] = {}
            pairs = _pairs(f, layers)
            if not pairs:
                continue
            equalize(pairs, self.tolerance, self.max_iterations)
            touched = {id(l.op) for pair in pairs for l in pair}
            for layer in [layers[o] for o in f.walk() if id(o) in touched]:
                affine = type(layer.op).get_trait(tfl.AffineOp)
                assert affine is not None and affine.bias is not None
                set_const_operand(layer.op, affine.weight, layer.w)
                if layer.b is not None:
                    set_const_operand(layer.op, affine.bias, layer.b)
                layer.op.attributes[MARK] = UnitAttr()
