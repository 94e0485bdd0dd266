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
- GATHER: a table of at most 2^20 elements is per channel along its last (feature)
  dimension and read through a DEQUANTIZE, which LiteRT runs once (constant input) before
  a float GATHER: +2.1 dB on the tiny transformer over the converter's single scale, and
  no slower. A bigger table is one int8 scale, gathered as int8 rows and dequantized
  after the GATHER (the converter's way: no float copy of the table in memory);
- every other reader of a quantized weight gets a shared DEQUANTIZE (weight-only);
- a weight with fewer than `min-elements` elements stays float; an LSTM is quantized
  all or nothing (its hybrid kernel wants every weight int8);
- a weight already stored as fp16 behind a DEQUANTIZE is quantized from its fp16 values,
  and the hybrid op's other fp16 constants (its bias) become float32 again (LiteRT's
  XNNPACK delegate cannot prepare a hybrid op with an fp16-dequantized bias);
- constants also read by opaque ops or returned as model outputs are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Float16Type, Float32Type, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, describe, kept_float, value_name
from tflquant.quant_math import choose_weight_params

# What the ops declare (tfl.DynamicRangeWeights), by builtin name:
_DECLS = {b: (cls, d) for b, cls in tfl.BUILTIN_CLASSES.items() if (d := cls.get_trait(tfl.DynamicRangeWeights)) is not None}
# op -> {input index: (per-channel axis or None, hybrid kernel reads int8 directly)}
WEIGHT_INPUTS: dict[str, dict[int, tuple[int | None, bool]]] = {
    b: {i: (axis, d.hybrid) for i, axis in d.slots(cls)} for b, (cls, d) in _DECLS.items()
}
HYBRID_OPS = {k for k, slots in WEIGHT_INPUTS.items() if any(h for _axis, h in slots.values())}
# GATHER tables up to this size are dequantized once (a float copy stays in memory).
GATHER_DEQUANTIZE_ONCE_MAX = 1 << 20
# Hybrid kernels that only accept per-channel weights (LiteRT depthwise_conv.cc).
PER_CHANNEL_ONLY = {b for b, (_cls, d) in _DECLS.items() if d.per_channel_only}
# Ops whose options carry asymmetric_quantize_inputs.
ASYMMETRIC_INPUTS = {b for b, (_cls, d) in _DECLS.items() if d.asymmetric_inputs}
# LSTM weights whose size decides the all-or-nothing threshold (the matrices).
LSTM_MATRICES = (*range(1, 9), 16)


def quantize_weight(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, UniformQuantizedType]:
    """int8 symmetric narrow-range values and type (scale = max|w| / 127, per slice along
    `axis` or one for the tensor; see quant_math.choose_weight_params). Values round half to
    even in float32 arithmetic, which reproduces the TF converter's int8 weights bit for bit."""
    qtype = choose_weight_params(w, axis)
    s = qtype.scale_array().astype(np.float32)
    if axis is not None:
        s = s.reshape([-1 if d == axis else 1 for d in range(w.ndim)])
    q = np.clip(np.rint(np.asarray(w, dtype=np.float32) / s), qtype.qmin, qtype.qmax)
    return q.astype(np.int8), qtype


def _gather_table_axis(gather: Operation, table: SSAValue) -> int | None:
    """Per-channel axis for a GATHER table that is dequantized once before the gather: its
    last dimension (the embedding features; per-feature scales cut the error more than
    per-row ones). None (one scale, int8 gather) for tables over GATHER_DEQUANTIZE_ONCE_MAX
    elements and rank-1 tables."""
    t = table.type
    assert isinstance(gather, tfl.TflOp) and isinstance(t, TensorType)
    shape = t.get_shape()
    if len(shape) < 2 or int(np.prod(shape)) > GATHER_DEQUANTIZE_ONCE_MAX:
        return None
    return len(shape) - 1


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


def _op_kind(op: Operation) -> str | None:
    return op.BUILTIN if isinstance(op, tfl.TflOp) else None


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
    return all(isinstance(u.operation, tfl.TflOp) for u in v.uses)


@dataclass(frozen=True)
class QuantizeWeights(ModulePass):
    """Weights of hybrid-capable ops to int8 symmetric (per channel where the kernel allows);
    activations stay float. See the module docstring for the exact guarantees."""

    name = "quantize-weights"

    min_elements: int = 1024
    per_channel: bool = True

    def __post_init__(self) -> None:
        if self.min_elements < 0:
            raise TflquantError(f"quantize-weights: min-elements must be >= 0, got {self.min_elements}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in op.walk():
            if isinstance(f, func.FuncOp):
                self._apply_block(f)

    # -------------------------------------------------------------------------------
    def _apply_block(self, f: func.FuncOp) -> None:
        # Plan: source value -> chosen axis (None = per tensor), in program order; readers
        # with a hybrid kernel choose first (a table tied to an output projection keeps the
        # projection hybrid and is dequantized once for the GATHER).
        plans: dict[SSAValue, int | None] = {}
        readers = [(o, k) for o in f.walk() if (k := _op_kind(o)) in WEIGHT_INPUTS and not kept_float(o)]
        readers.sort(key=lambda ok: ok[1] not in HYBRID_OPS)  # stable: program order kept
        for o, kind in readers:
            if kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                self._plan_lstm(o, plans)
                continue
            for idx, (axis, _hybrid) in WEIGHT_INPUTS[kind].items():
                if idx >= len(o.operands):
                    continue
                v = o.operands[idx]
                if v in plans or not self._eligible(v):
                    continue
                if kind == "GATHER":
                    axis = _gather_table_axis(o, v)
                if axis is not None and not self.per_channel:
                    axis = None
                plans[v] = axis
        hybrid_ops: list[Operation] = []
        for v, axis in plans.items():
            self._rewrite(v, axis, hybrid_ops)
        for o in hybrid_ops:
            if o.parent is not None:
                _float32_constant_inputs(o)

    def _eligible(self, v: SSAValue) -> bool:
        w = float_weight(v)
        return w is not None and w.size >= max(self.min_elements, 1) and w.ndim >= 1 and _quantizable_source(v)

    def _plan_lstm(self, o: Operation, plans: dict[SSAValue, int | None]) -> None:
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
            plans.setdefault(v, None)

    # -------------------------------------------------------------------------------
    def _rewrite(self, v: SSAValue, axis: int | None, hybrid_ops: list[Operation]) -> None:
        w = float_weight(v)
        assert w is not None
        if not np.all(np.isfinite(w)):
            readers = ", ".join(sorted({u.operation.name for u in v.uses}))
            raise TflquantError(
                f"quantize-weights: weight {describe(v)} (read by {readers}) holds NaN or infinite values "
                "and cannot be quantized; fix the float model or raise min-elements above its size to keep it float"
            )
        source = v.owner
        assert isinstance(source, Operation) and source.parent is not None
        block = source.parent
        q, qtype = quantize_weight(w, axis)
        ftype = v.type
        assert isinstance(ftype, TensorType)
        named = source.operands[0] if isinstance(source, tfl.DequantizeOp) else v  # fp16 weight: its constant's name
        name = value_name(named)
        qconst = tfl.ConstOp(dense_from_numpy(q), with_element(ftype, qtype), name=name)
        block.insert_op_before(qconst, source)
        qv = qconst.result

        dequant: SSAValue | None = None

        def dequantized() -> SSAValue:
            nonlocal dequant
            if dequant is None:
                dq = tfl.DequantizeOp([qv], [ftype], names=None if name is None else [f"{name}_dequantize"])
                block.insert_op_after(dq, qconst)
                dequant = dq.outputs[0]
            return dequant

        for use in list(v.uses):
            user = use.operation
            if kept_float(user):
                continue  # keep-float: it reads the float weight, which then stays too
            kind = _op_kind(user)
            axis_ok, hybrid = self._hybrid_use(kind, use.index, axis)
            if hybrid and axis_ok:
                user.operands[use.index] = qv
                if kind in ASYMMETRIC_INPUTS:
                    assert isinstance(user, tfl.TflOp)
                    user.set_option("asymmetric_quantize_inputs", True)
                hybrid_ops.append(user)
            elif kind == "GATHER" and use.index == 0 and axis is None:
                self._gather_int8(user, qv)
            else:
                user.operands[use.index] = dequantized()

        self._erase_if_dead(source)

    def _hybrid_use(self, kind: str | None, index: int, axis: int | None) -> tuple[bool, bool]:
        """(weight layout fits the kernel, the op reads int8 weights directly)."""
        spec = WEIGHT_INPUTS.get(kind or "", {}).get(index)
        if spec is None:
            return False, False
        want_axis, hybrid = spec
        if axis is None:
            return kind not in PER_CHANNEL_ONLY, hybrid
        return want_axis == axis, hybrid

    @staticmethod
    def _gather_int8(gather: Operation, qv: SSAValue) -> None:
        """GATHER on the (per-tensor) int8 table, then DEQUANTIZE its output back to float."""
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
            names=None if name is None else [f"{name}_int8"],
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
