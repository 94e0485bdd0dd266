"""`quantize-lstm`: UNIDIRECTIONAL_SEQUENCE_LSTM computes in int8, on LiteRT's 8x8_16 kernel.

Runs after propagate-scales, before rewrite-integer, in the int8 pipeline. An LSTM whose
input comes from a `quant.dcast` of an int8 value and whose output goes only to int8
`quant.qcast`s is rewritten into the form LiteRT's integer kernel requires
(unidirectional_sequence_lstm.cc, PopulateQuantizedLstmParams8x8_16):

- input and output int8 asymmetric, the output state variable int8 with the output's
  (scale, zero point) (the kernel copies the hidden state into it);
- the eight gate weights int8 symmetric [-127, 127] per tensor;
- the four gate biases int32, scale input_scale x input_to_<gate>_weight_scale (the kernel
  adds them to the input product), zero point 0;
- the cell state variable int16 symmetric with a power-of-two scale 2^(k-15), where
  2^k >= cell_headroom x max|cell| over calibration, k in [0, 6] (LiteRT's integer tanh
  of the cell state handles 0 to 6 integer bits; beyond 2^6 the cell saturates);
- five intermediates (`tfl.intermediates`): four int16 at 2^-12 (the Q3.12 gate scale the
  kernel uses without layer norm) and the hidden state, int8 with the output's parameters.

The cell state range comes from the op's `cell_stats` attribute (annotate-calibration).
An LSTM this pass cannot quantize (layer norm, projection, peephole or diagonal recurrent
weights, an activation other than tanh, weights that are not float constants, state
tensors that are not its own variables, no cell statistics, or float neighbours) keeps
computing in float and carries `tflquant.fallback_reason`, which the report shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, erase_if_unused, kept_float, value_name
from tflquant.passes._quant_ops import bits_of, float_const
from tflquant.passes._fake_quant import dcast_source, qcast_users, quantize_const_values
from tflquant.quant_math import choose_weight_params, quantize_bias, storage_type

GATES = ("input", "forget", "cell", "output")
WEIGHTS = tuple(f"{k}_to_{g}_weights" for k in ("input", "recurrent") for g in GATES)
UNSUPPORTED = {
    "input_layer_norm_coefficients": "layer-norm LSTM",
    "forget_layer_norm_coefficients": "layer-norm LSTM",
    "cell_layer_norm_coefficients": "layer-norm LSTM",
    "output_layer_norm_coefficients": "layer-norm LSTM",
    "projection_weights": "LSTM with projection",
    "projection_bias": "LSTM with projection",
    "cell_to_input_weights": "peephole LSTM",
    "cell_to_forget_weights": "peephole LSTM",
    "cell_to_output_weights": "peephole LSTM",
}
GATE_SCALE = 2.0**-12  # Q3.12: the kernel's gate pre-activation scale without layer norm
FALLBACK = "tflquant.fallback_reason"


def cell_scale_exponent(absmax: float, headroom: float = 1.0) -> int:
    """k of the cell state's scale 2^(k-15): the smallest power of two 2^k >= headroom x
    absmax, within [0, 6]."""
    r = absmax * headroom
    k = math.ceil(math.log2(r)) if r > 0 else 0
    return min(max(k, 0), 6)


def _int8(t: UniformQuantizedType | None) -> bool:
    return t is not None and bits_of(t) == 8 and t.is_signed and not t.per_axis


@dataclass(frozen=True)
class QuantizeLstm(ModulePass):
    """Every UNIDIRECTIONAL_SEQUENCE_LSTM between int8 values, with a calibrated cell state and
    no layer norm, projection or peephole, computes in int8 with the tensors LiteRT's integer
    kernel requires; any other LSTM stays float with a `tflquant.fallback_reason`."""

    name = "quantize-lstm"

    cell_headroom: float = 1.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.cell_headroom <= 64.0:
            raise TflquantError(f"quantize-lstm: cell-headroom must be in [1, 64], got {self.cell_headroom}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            for o in [o for o in f.walk() if isinstance(o, tfl.UnidirectionalSequenceLstmOp)]:
                if quant.quantized_element(o.outputs[0].type) is not None or kept_float(o):
                    continue  # already integer, or to stay float
                reason = self._why_not(o)
                if reason is None:
                    self._rewrite(o)
                else:
                    o.attributes[FALLBACK] = StringAttr(reason)

    # -----------------------------------------------------------------------------------
    def _why_not(self, o: tfl.UnidirectionalSequenceLstmOp) -> str | None:
        for n, what in UNSUPPORTED.items():
            if o.operand(n) is not None:
                return f"{what}: tflquant quantizes LSTMs without layer norm, projection or peephole"
        if o.option("diagonal_recurrent_tensors"):
            return "LSTM with diagonal recurrent weights: LiteRT has no integer kernel for it"
        act = o.option("fused_activation_function")
        if act != "TANH":
            return f"LiteRT's integer LSTM computes tanh, this one {act}"
        for n in WEIGHTS + tuple(f"{g}_gate_bias" for g in GATES):
            v = o.operand(n)
            if v is None and n not in ("input_to_input_weights", "recurrent_to_input_weights", "input_gate_bias"):
                return f"{n} is missing"
            if v is not None and float_const(v) is None:
                return f"{n} is not a float32 constant"
        if (o.operand("input_to_input_weights") is None) != (o.operand("input_gate_bias") is None):
            return "input gate weights and bias must be both present or both absent (CIFG)"
        for n in ("output_state", "cell_state"):
            v = o.operand(n)
            if v is None or not isinstance(v.owner, tfl.VariableOp) or len(list(v.uses)) != 1:
                return f"its {n} is not a variable of its own"
        if not isinstance(o.attributes.get(tfl.CELL_STATS), quant.CalibrationStatsAttr):
            return "its cell state has no calibrated range"
        d = dcast_source(o.inputs[0])
        if d is None or not _int8(quant.quantized_element(d.input.type)):
            return "its input is not int8 (no calibrated range, or a float producer)"
        y = o.outputs[0]
        users = qcast_users(y)
        if not users or len(users) != len(list(y.uses)):
            return "its output is not read as int8 only (no calibrated range, or a float reader)"
        types = {quant.quantized_element(q.result.type) for q in users}
        if len(types) != 1 or not _int8(next(iter(types))):
            return "its output has no single int8 type"
        return None

    def _rewrite(self, o: tfl.UnidirectionalSequenceLstmOp) -> None:
        d = dcast_source(o.inputs[0])
        assert d is not None
        in_q = quant.quantized_element(d.input.type)
        users = qcast_users(o.outputs[0])
        out_q = quant.quantized_element(users[0].result.type)
        assert in_q is not None and out_q is not None
        new_ops: list[Operation] = []
        operands: list[SSAValue] = list(o.inputs)
        names = list(o.OPERANDS)

        def replace(name: str, new: Operation) -> None:
            new_ops.append(new)
            operands[names.index(name)] = new.results[0]

        weight_types: dict[str, UniformQuantizedType] = {}
        for n in WEIGHTS:
            v = o.operand(n)
            if v is None:
                continue
            w = float_const(v).numpy()  # type: ignore[union-attr]
            wt = choose_weight_params(w, axis=None)
            weight_types[n] = wt
            replace(n, _const(quantize_const_values(w, wt), wt, value_name(v)))
        for g in GATES:
            v = o.operand(f"{g}_gate_bias")
            if v is None:
                continue
            b, bt = quantize_bias(float_const(v).numpy(), in_q.scale, weight_types[f"input_to_{g}_weights"], 32)  # type: ignore[union-attr]
            replace(f"{g}_gate_bias", _const(b, bt, value_name(v)))
        cs = o.attributes[tfl.CELL_STATS]
        assert isinstance(cs, quant.CalibrationStatsAttr)
        k = cell_scale_exponent(max(abs(cs.min), abs(cs.max)), self.cell_headroom)
        cell_q = UniformQuantizedType.make(storage_type(16), 2.0 ** (k - 15), 0)
        for n, qt in (("output_state", out_q), ("cell_state", cell_q)):
            v = o.operand(n)
            assert v is not None and isinstance(v.type, TensorType)
            replace(n, tfl.VariableOp.create(result_types=[with_element(v.type, qt)], attributes=dict(v.owner.attributes)))  # type: ignore[union-attr]
        operands[0] = d.input

        t = o.outputs[0].type
        assert isinstance(t, TensorType)
        attrs = {k_: a for k_, a in o.attributes.items() if k_ not in (tfl.CELL_STATS, FALLBACK)}
        base = value_name(o.outputs[0]) or "lstm"
        gate_q = UniformQuantizedType.make(storage_type(16), GATE_SCALE, 0)
        inter = [(f"{base}/{g}_gate", gate_q) for g in GATES] + [(f"{base}/hidden", out_q)]
        attrs["tfl.intermediates"] = ArrayAttr(
            DictionaryAttr({"name": StringAttr(nm), "type": TensorType(qt, [0])}) for nm, qt in inter
        )
        new = type(o).create(
            operands=operands,
            result_types=[with_element(t, out_q)],
            properties=dict(o.properties),
            attributes=attrs,
        )
        for n_op in new_ops:
            Rewriter.insert_op(n_op, InsertPoint.before(o))
        Rewriter.insert_op(new, InsertPoint.before(o))
        for q in users:
            q.result.replace_all_uses_with(new.outputs[0])
            q.detach()
            q.erase()
        old_inputs = [v.owner for v in o.inputs]
        o.detach()
        o.erase()
        for owner in old_inputs:
            if isinstance(owner, Operation):
                erase_if_unused(owner)


def _const(values: np.ndarray, qt: UniformQuantizedType, name: str | None) -> tfl.ConstOp:
    """An integer constant with a quantized result type."""
    payload = dense_from_numpy(np.ascontiguousarray(values))
    return tfl.ConstOp(payload, with_element(payload.type, qt), name=name)  # type: ignore[arg-type]
