"""`op-precision`: mixed precision by hand: chosen ops compute in int8, int16 (16x8) or float.

`op-precision{ops="SOFTMAX=int16","attn/out=float"}` gives every op whose output tensor is
called `attn/out`, or whose TFLite op type is `SOFTMAX`, a precision; a tensor name wins over
an op type. `int8` / `int16` set the attribute `tflquant.precision` that insert-fake-quant
reads (an op without it takes the pipeline's `activations`); `float` marks the op like
keep-float does (`tflquant.keep_float`), so it computes in float between DEQUANTIZE and
QUANTIZE. An op asked for int16 that LiteRT has no int16 kernel for stays float, as in the
int16x8 mode. Every value is stored at its producer's precision; an op of another precision
reads it through a requantizing QUANTIZE (int8 <-> int16, which LiteRT's QUANTIZE kernel
runs), so a same-scale op (RESHAPE, CONCATENATION, pools) and everything its scale is tied
to share the one precision, and a fixed-range op (SOFTMAX, LOGISTIC, TANH) gets its
precision's fixed output range. With integer model I/O (the pipeline sets insert-fake-quant's
`requantize-inputs`), a model input read by ops of the other precision is requantized for
them, and a model output computed at the other precision leaves through a requantizing
QUANTIZE to the I/O type (int16 -> int8 with int8 / uint8 I/O; int8 -> int16 with int16 I/O).
A name or type that matches no op, a constant's name or an unknown precision is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, UnitAttr
from xdsl.passes import ModulePass

from tflquant.errors import TflquantError
from tflquant.ir import KEEP_FLOAT
from tflquant.passes._named_ops import named_ops
from tflquant.passes._quant_ops import ACTIVATION_TYPES, PRECISION

PRECISIONS = (*ACTIVATION_TYPES, "float")
REASON = "kept float on request (op-precision)"


def parse_entries(entries: tuple[str, ...] | list[str]) -> dict[str, str]:
    """"NAME=PRECISION" entries as {name: precision} (checked; the last entry for a name wins)."""
    out: dict[str, str] = {}
    for e in entries:
        key, sep, prec = str(e).rpartition("=")
        if not sep or not key:
            raise TflquantError(f"op-precision: {e!r} is not NAME=PRECISION (a tensor name or op type, then {'|'.join(PRECISIONS)})")
        if prec not in PRECISIONS:
            raise TflquantError(f"op-precision: {e!r}: unknown precision {prec!r}; choose one of {', '.join(PRECISIONS)}")
        out[key] = prec
    return out


@dataclass(frozen=True)
class OpPrecision(ModulePass):
    """Every op named (by output tensor or op type) carries its precision: `tflquant.precision`
    (int8, int16) or `tflquant.keep_float` (float)."""

    name = "op-precision"

    ops: tuple[str, ...] = ()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        wanted = parse_entries(self.ops)
        for o, key in named_ops(op, wanted, "op-precision"):
            if wanted[key] == "float":
                o.attributes[KEEP_FLOAT] = UnitAttr()
                o.attributes["tflquant.fallback_reason"] = StringAttr(REASON)
            else:
                o.attributes[PRECISION] = StringAttr(wanted[key])
