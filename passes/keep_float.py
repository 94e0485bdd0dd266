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
from xdsl.dialects.builtin import ModuleOp, StringAttr, UnitAttr
from xdsl.passes import ModulePass

from tflquant.ir import KEEP_FLOAT
from tflquant.passes._named_ops import named_ops

REASON = "kept float on request (keep-float)"



@dataclass(frozen=True)
class KeepFloat(ModulePass):
    """Every op whose output tensor name or op type is listed carries `tflquant.keep_float`
    (and a fallback reason): the quantization passes leave it float."""

    name = "keep-float"

    ops: tuple[str, ...] = ()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for o, _ in named_ops(op, set(self.ops), "keep-float"):
            o.attributes[KEEP_FLOAT] = UnitAttr()
            o.attributes["tflquant.fallback_reason"] = StringAttr(REASON)
