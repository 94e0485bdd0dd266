"""legalize-float-fallback: ops left in float read DEQUANTIZE and feed QUANTIZE.

Afterwards no `quant.qcast`/`quant.dcast` is left, nor a QUANTIZE or DEQUANTIZE whose result
nothing reads. An op that rewrite-integer did not turn
integer (no LiteRT integer kernel for its type, see passes/_quant_ops.py, or inputs without
calibration) keeps computing in float: it reads quantized values through a DEQUANTIZE and
its results reach integer readers through a QUANTIZE; between two float ops the value stays
float (no needless round trip). With `strict=true` (integer-only mode) the pass instead
raises one TflquantError that lists every op still computing in float, by tensor name and
op type, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import erase_if_unused, kept_float, set_io_attr, value_name
from tflquant.passes._quant_ops import is_f32, op_info
from tflquant.passes._fake_quant import IO_QUANT_TYPE, storage_suffix

_NOT_OPS = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp, func.ReturnOp, func.FuncOp)




def float_ops(module: ModuleOp) -> list[Operation]:
    """Ops that still compute in float (the model I/O QUANTIZE/DEQUANTIZE excepted)."""
    found: list[Operation] = []
    for o in module.walk():
        if isinstance(o, _NOT_OPS) or isinstance(o, ModuleOp):
            continue
        if isinstance(o, tfl.QuantizeOp) and isinstance(o.inputs[0], BlockArgument):
            continue
        if isinstance(o, tfl.DequantizeOp) and all(isinstance(u.operation, func.ReturnOp) for u in o.outputs[0].uses):
            continue
        info = op_info(o)
        bias = info.bias if info is not None else None
        floats = [r for r in o.results if is_f32(r.type)]
        floats += [v for i, v in enumerate(o.operands) if is_f32(v.type) and i != bias]
        if not floats:
            continue
        found.append(o)
    return found


def _erase_dead_conversions(f: func.FuncOp) -> None:
    """QUANTIZE / DEQUANTIZE whose results nothing reads (the fake quantization of a
    subgraph argument the subgraph does not use) would run for nothing: erase them."""
    for o in reversed(list(f.walk())):
        if isinstance(o, tfl.QuantizeOp | tfl.DequantizeOp) and not any(r.uses for r in o.results):
            o.detach()
            o.erase()


def describe_op(o: Operation) -> str:
    name = value_name(o.results[0]) if o.results else None
    kept = ", kept float on request" if kept_float(o) else ""
    return f"'{name}' ({tfl.op_type(o)}{kept})" if name else f"{tfl.op_type(o)}{kept}"


@dataclass(frozen=True)
class LegalizeFloatFallback(ModulePass):
    """No qcast/dcast remains: float ops sit between DEQUANTIZE and QUANTIZE; strict mode
    rejects any float op with one error that lists them all."""

    name = "legalize-float-fallback"

    strict: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.strict:
            bad = [o for o in float_ops(op) if not isinstance(o, quant.QuantizeCastOp | quant.DequantizeCastOp)]
            if bad:
                listing = ", ".join(describe_op(o) for o in bad)
                raise TflquantError(
                    f"integer-only quantization is impossible: {len(bad)} op(s) have no integer kernel "
                    f"or no calibration data and would stay float: {listing}. "
                    "Allow float fallback (float I/O, or --allow-float / allow_float=True) or change the model."
                )
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            self._legalize(f)
            _erase_dead_conversions(f)

    def _legalize(self, f: func.FuncOp) -> None:
        # float -> float: drop the fake quantization round trip (a model output keeps its
        # calibrated type as a result attribute, for set-io-types)
        ret = f.body.blocks[0].last_op if f.body.blocks else None
        for d in [o for o in f.walk() if isinstance(o, quant.DequantizeCastOp)]:
            q = d.input.owner
            if isinstance(q, quant.QuantizeCastOp):
                if isinstance(ret, func.ReturnOp):
                    for i, v in enumerate(ret.operands):
                        if v is d.result:
                            set_io_attr(f, i, IO_QUANT_TYPE, q.result.type, result=True)
                d.result.replace_all_uses_with(q.input)
                d.detach()
                d.erase()
                erase_if_unused(q)
        for o in list(f.walk()):
            if isinstance(o, quant.QuantizeCastOp):
                qt = quant.quantized_element(o.result.type)
                assert qt is not None
                base = value_name(o.input) or "tensor"
                new = tfl.QuantizeOp([o.input], [o.result.type], names=[f"{base}_{storage_suffix(qt)}"])
            elif isinstance(o, quant.DequantizeCastOp):
                existing = [u.operation for u in o.input.uses if isinstance(u.operation, tfl.DequantizeOp)]
                if existing:  # e.g. the model output's DEQUANTIZE: share it
                    o.result.replace_all_uses_with(existing[0].outputs[0])
                    o.detach()
                    o.erase()
                    continue
                base = value_name(o.input) or "tensor"
                new = tfl.DequantizeOp([o.input], [o.result.type], names=[f"{base}_dequantized"])
            else:
                continue
            Rewriter.insert_op(new, InsertPoint.before(o))
            o.results[0].replace_all_uses_with(new.outputs[0])
            o.detach()
            o.erase()
