"""`check-micro`: refuse, in one error, a model with ops TFLite Micro has no kernel for.

The last pass of the `target="micro"` pipeline. Every op of every function is judged by
the rules in `passes/_micro_ops.py` (op types TFLM registers, the tensor types and ranks
its kernels take, its Prepare checks); when any fails, one TflquantError lists each of
them: op type, output tensor name and why. The module is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from tflquant.dialects import tfl
from tflquant.errors import TflquantError
from tflquant.ir import value_name
from tflquant.passes._micro_ops import micro_problem


def micro_problems(module: ModuleOp) -> list[str]:
    """One line per op TFLite Micro cannot run: `OP 'output tensor': why`."""
    out = []
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        for op in fn.body.walk():
            why = micro_problem(op)
            if why is not None:
                name = (value_name(op.results[0]) if op.results else None) or "?"
                out.append(f"{tfl.op_type(op)} '{name}': {why}")
    return out


@dataclass(frozen=True)
class CheckMicro(ModulePass):
    """Fail listing every op TFLite Micro has no kernel for (type, rank, Prepare check)."""

    name = "check-micro"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        problems = micro_problems(op)
        if problems:
            n = len(problems)
            raise TflquantError(
                f"TFLite Micro cannot run {n} op{'s' if n > 1 else ''} of this model (target micro): "
                + "; ".join(problems)
                + ". Quantize for LiteRT (target litert) or change these ops in the float model."
            )
