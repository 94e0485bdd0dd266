"""The ops a user names by output tensor or TFLite op type (keep-float, op-precision).

One rule for both passes: an op matches by one of its output tensor names, else by its op
type (`SOFTMAX`); a name that only matches a constant (a weight, or the DEQUANTIZE of one)
or matches nothing is an error that says how to name ops instead, so a typo never goes
unnoticed.
"""

from __future__ import annotations

from collections.abc import Collection

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from tflquant.dialects import tfl
from tflquant.errors import TflquantError

_CONSTANTS = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp)


def _is_constant(o: Operation) -> bool:
    """A constant, or a DEQUANTIZE of one (an fp16 or int8 weight)."""
    if isinstance(o, _CONSTANTS):
        return True
    return isinstance(o, tfl.DequantizeOp) and bool(o.operands) and isinstance(o.operands[0].owner, _CONSTANTS)


def named_ops(module: ModuleOp, wanted: Collection[str], what: str) -> list[tuple[Operation, str]]:
    """Every op `wanted` names, with the name that selected it (its first matching output
    tensor name, else its op type). `what` (the pass name) prefixes the errors."""
    found: set[str] = set()
    constants: set[str] = set()
    out: list[tuple[Operation, str]] = []
    for o in module.walk():
        if isinstance(o, func.FuncOp | func.ReturnOp | ModuleOp) or not o.results:
            continue
        kind = tfl.op_type(o)
        names = [n for n in (tfl.tensor_names(o) or ()) if n in wanted]
        keys = {*names, kind} & set(wanted)
        if not keys:
            continue
        if _is_constant(o):
            constants |= keys
            continue
        found |= keys
        out.append((o, names[0] if names else kind))
    if bad := sorted(constants - found):
        raise TflquantError(
            f"{what}: {', '.join(map(repr, bad))} names a constant (a weight), not an op; "
            "name the output tensor of the op that reads it (tflquant inspect lists them)"
        )
    if missing := sorted(set(wanted) - found - constants):
        raise TflquantError(
            f"{what}: no op has the output tensor or op type {', '.join(map(repr, missing))}; "
            "name ops by an output tensor name (tflquant inspect lists them) or a TFLite op type such as SOFTMAX"
        )
    return out
