"""rewrite-integer: fold fake quantization into integer ops and integer constants.

Afterwards every op with an integer kernel for its activation type (int8, or int16 in 16x8)
whose float inputs all come from `quant.dcast` (biases excepted) and whose float results
all go to `quant.qcast` computes on the quantized types directly: its inputs are the
quantized values and its results carry the qcast types (ADD/SUB on int16 get
`pot_scale_int16 = false`). Fake-quantized float constants read by integer ops are integer
`tfl.const`s (storage bytes, `!quant.uniform` result type). A float model input read through
a qcast gets a QUANTIZE, a quantized value returned by the function a DEQUANTIZE (which takes
over the output's tensor name; the integer tensor is renamed `<name>_int8`/`_int16`), and
`qcast(dcast(x))` becomes `x` (same parameters) or a requantizing QUANTIZE. The only
qcast/dcast left border ops that stay float (see legalize-float-fallback).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import BlockArgument, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, describe, erase_if_unused, set_io_attr, set_name, value_name
from tflquant.passes._quant_ops import bits_of, float_const, has_kernel, is_f32, op_info, same_inputs
from tflquant.passes._fake_quant import IO_QUANT_TYPE, dcast_source, op_bits, qcast_users, quantize_const_values, storage_suffix


@dataclass(frozen=True)
class RewriteInteger(ModulePass):
    """Integer-capable ops between dcast and qcast compute on quantized types; constants become
    integer payloads; model inputs/outputs get QUANTIZE/DEQUANTIZE (float I/O)."""

    name = "rewrite-integer"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            for o in list(f.walk()):
                if self._foldable(o):
                    self._fold(o)
            self._constants(f)
            self._boundaries(f)

    # folding ------------------------------------------------------------------------
    def _foldable(self, o: Operation) -> bool:
        info = op_info(o)
        if info is None:
            return False
        bits = op_bits(o)
        if bits is None or not has_kernel(o, bits):
            return False
        for i, v in enumerate(o.operands):
            if not is_f32(v.type):
                if (t := quant.quantized_element(v.type)) is not None and i not in info.weights and bits_of(t) != bits:
                    return False
                continue
            if i == info.bias:
                if float_const(v) is None:
                    return False
                continue
            d = dcast_source(v)
            if d is None:
                return False
            t = quant.quantized_element(d.input.type)
            assert t is not None
            if i in info.weights and not info.int16_weight:
                # filters must be symmetric int8 constants (zero point 0)
                src = d.input.owner
                if not isinstance(src, quant.QuantizeCastOp) or float_const(src.input) is None:
                    return False
                if np.any(t.zero_point_array()) or bits_of(t) != 8:
                    return False
            elif t.per_axis or bits_of(t) != bits:
                return False
        for r in o.results:
            if not is_f32(r.type):
                continue
            users = [u.operation for u in r.uses]
            if not users:
                if not same_inputs(o, info):
                    return False
                continue
            if not all(isinstance(u, quant.QuantizeCastOp) for u in users):
                return False
            types = {u.result.type for u in users}  # type: ignore[attr-defined]
            if len(types) != 1:
                return False
        return True

    def _fold(self, o: Operation) -> None:
        info = op_info(o)
        assert info is not None
        first_in: UniformQuantizedType | None = None
        for i, v in enumerate(list(o.operands)):
            d = dcast_source(v)
            if d is None or not is_f32(v.type):
                continue
            o.operands[i] = d.input
            if first_in is None and i not in info.weights:
                first_in = quant.quantized_element(d.input.type)
            erase_if_unused(d)
        for r in list(o.results):
            if not is_f32(r.type):
                continue
            assert isinstance(r.type, TensorType)
            users = qcast_users(r)
            qt = quant.quantized_element(users[0].result.type) if users else first_in
            assert qt is not None
            nr = Rewriter.replace_value_with_new_type(r, with_element(r.type, qt))
            for q in qcast_users(nr):
                q.result.replace_all_uses_with(nr)
                q.detach()
                q.erase()
        kind = o.BUILTIN  # type: ignore[attr-defined]
        if kind in ("ADD", "SUB") and first_in is not None and bits_of(first_in) == 16:
            o.set_option("pot_scale_int16", False)  # type: ignore[attr-defined]
        if "asymmetric_quantize_inputs" in o.properties:  # a hybrid op (dynamic-range model) made fully integer
            del o.properties["asymmetric_quantize_inputs"]

    # constants ----------------------------------------------------------------------
    def _constants(self, f: func.FuncOp) -> None:
        for q in [o for o in f.walk() if isinstance(o, quant.QuantizeCastOp)]:
            c = float_const(q.input)
            if c is None:
                continue
            # float readers (dcast) take the float constant back directly
            for u in list(q.result.uses):
                if isinstance(u.operation, quant.DequantizeCastOp):
                    dc = u.operation
                    dc.result.replace_all_uses_with(q.input)
                    dc.detach()
                    dc.erase()
            if q.result.uses:
                qt = quant.quantized_element(q.result.type)
                assert qt is not None and isinstance(q.result.type, TensorType)
                values = c.numpy()
                if not np.all(np.isfinite(values)):
                    raise TflquantError(
                        f"rewrite-integer: constant {describe(c.result)} holds NaN or infinite values; "
                        f"it cannot become an integer constant of type {q.result.type}"
                    )
                payload = quantize_const_values(values, qt)
                name = value_name(c.result)
                qc = tfl.ConstOp(dense_from_numpy(payload), q.result.type, name=name)
                Rewriter.insert_op(qc, _before(q))
                q.result.replace_all_uses_with(qc.result)
            q.detach()
            q.erase()
            erase_if_unused(c)

    # boundaries ----------------------------------------------------------------------
    def _boundaries(self, f: func.FuncOp) -> None:
        for q in [o for o in f.walk() if isinstance(o, quant.QuantizeCastOp)]:
            x = q.input
            qt = quant.quantized_element(q.result.type)
            assert qt is not None
            if isinstance(x, BlockArgument):
                float_read = False
                for u in list(q.result.uses):  # float readers take the argument itself
                    if isinstance(u.operation, quant.DequantizeCastOp):
                        # (a requantize to the other precision stays: integer I/O, mixed precision)
                        d = u.operation
                        float_read |= any(not _other_bits(use.operation, qt) for use in d.result.uses)
                        d.result.replace_uses_with_if(x, lambda use: not _other_bits(use.operation, qt))
                        erase_if_unused(d)
                if float_read and x.block.parent_op() is f:  # set-io-types may still want it integer
                    set_io_attr(f, x.index, IO_QUANT_TYPE, q.result.type)
                if not q.result.uses:
                    q.detach()
                    q.erase()
                    continue
                name = f"{value_name(x) or 'input'}_{storage_suffix(qt)}"
                new = tfl.QuantizeOp([x], [q.result.type], names=[name])
                Rewriter.insert_op(new, _before(q))
                q.result.replace_all_uses_with(new.outputs[0])
                q.detach()
                q.erase()
                continue
            d = dcast_source(x)
            if d is None or isinstance(d.input.owner, quant.QuantizeCastOp):
                continue  # around a float op: legalize-float-fallback
            y = d.input
            if y.type == q.result.type:
                q.result.replace_all_uses_with(y)
            else:
                base = value_name(y) or "tensor"
                new = tfl.QuantizeOp([y], [q.result.type], names=[f"{base}_requantized"])
                Rewriter.insert_op(new, _before(q))
                q.result.replace_all_uses_with(new.outputs[0])
            q.detach()
            q.erase()
            erase_if_unused(d)
        ret = f.body.blocks[0].last_op
        if not isinstance(ret, func.ReturnOp):
            return
        done: dict[SSAValue, SSAValue] = {}
        for i, v in enumerate(list(ret.operands)):
            d = dcast_source(v)
            if d is None or isinstance(d.input.owner, quant.QuantizeCastOp):
                continue
            y = d.input
            if y not in done:
                qt = quant.quantized_element(y.type)
                assert qt is not None
                name = value_name(y) or f"output_{i}"
                new = tfl.DequantizeOp([y], [d.result.type], names=[name])
                if isinstance(y.owner, Operation):
                    set_name(y.owner, y.index, f"{name}_{storage_suffix(qt)}")  # type: ignore[attr-defined]
                if isinstance(y.owner, Operation):
                    Rewriter.insert_op(new, InsertPoint.after(y.owner))
                else:
                    Rewriter.insert_op(new, _before(ret))
                done[y] = new.outputs[0]
            ret.operands[i] = done[y]
            erase_if_unused(d)


def _other_bits(o: Operation, qt: UniformQuantizedType) -> bool:
    """o is a qcast to another storage width than qt's (int8 <-> int16)."""
    if not isinstance(o, quant.QuantizeCastOp):
        return False
    t = quant.quantized_element(o.result.type)
    return t is not None and bits_of(t) != bits_of(qt)


def _before(o: Operation):
    from xdsl.rewriter import InsertPoint

    return InsertPoint.before(o)
