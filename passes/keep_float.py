"""`keep-float`: the ops a user names stay float; everything else quantizes as usual.

Selective quantization, for the layer that costs too much accuracy in int8 or that an
accelerator must run in float: `keep-float{ops="name",...}` marks every op whose output
tensor is called `name`, or whose TFLite op type is `name` (`SOFTMAX`, `UNIDIRECTIONAL_SEQUENCE_LSTM`),
with the attribute `tflquant.keep_float`. The quantization passes treat a marked op as one
without an integer kernel (its weights stay float; in dynamic mode no hybrid kernel):
it computes in float between DEQUANTIZE and QUANTIZE, the report lists it with the reason
"kept float on request", and integer-only mode refuses it by name unless float fallback is
allowed. A name that matches no op is an error, so a typo cannot go unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, UnitAttr
from xdsl.passes import ModulePass

from tflquant.dialects import tfl
from tflquant.errors import TflquantError
from tflquant.ir import KEEP_FLOAT

REASON = "kept float on request (keep-float)"



@dataclass(frozen=True)
class KeepFloat(ModulePass):
    """Every op whose output tensor name or op type is listed carries `tflquant.keep_float`
    (and a fallback reason): the quantization passes leave it float."""

    name = "keep-float"

    ops: tuple[str, ...] = ()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        wanted = set(self.ops)
        found: set[str] = set()
        constants: set[str] = set()
        for o in op.walk():
            if isinstance(o, func.FuncOp | func.ReturnOp | ModuleOp) or not o.results:
                continue
            keys = {tfl.op_type(o), *(tfl.tensor_names(o) or ())} & wanted
            if not keys:
                continue
            if _is_constant(o):  # a weight, not an op: nothing to keep float
                constants |= keys
                continue
            found |= keys
            o.attributes[KEEP_FLOAT] = UnitAttr()
            o.attributes["tflquant.fallback_reason"] = StringAttr(REASON)
        named_constants = sorted(constants - found)
        if named_constants:
            raise TflquantError(
                f"keep-float: {', '.join(repr(m) for m in named_constants)} names a constant (a weight), not an op; "
                "name the output tensor of the op that reads it (tflquant inspect lists them)"
            )
        missing = sorted(wanted - found)
        if missing:
            raise TflquantError(
                f"keep-float: no op has the output tensor or op type {', '.join(repr(m) for m in missing)}; "
                "name ops by an output tensor name (tflquant inspect lists them) or a TFLite op type such as SOFTMAX"
            )


def _is_constant(o: object) -> bool:
    """A constant, or a DEQUANTIZE of one (an fp16 or int8 weight)."""
    const = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp)
    if isinstance(o, const):
        return True
    return isinstance(o, tfl.DequantizeOp) and bool(o.operands) and isinstance(o.operands[0].owner, const)
