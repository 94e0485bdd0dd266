"""`fold-reshape-chain`: a RESHAPE of a RESHAPE becomes one RESHAPE; identity reshapes go.

A RESHAPE only reinterprets the shape, so RESHAPE(RESHAPE(x, s1), s2) == RESHAPE(x, s2):
the outer reshape reads `x` directly and the inner one is erased once nothing else reads
it (its shape constant too, when unused). With `remove-identity` (default true), a RESHAPE
whose result type equals its input type is replaced by its input, unless its result is a
model output (model outputs keep their tensor names).

Guarantees: values computed by the module are unchanged (bit for bit, float or quantized);
no RESHAPE reads another RESHAPE's result afterwards, except where folding would change a
quantized type (the element types along the chain differ: a requantization, kept);
surviving ops keep their results, types and tensor names.

This pass is the worked example of README.md, section "Adding a pass".
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from tflquant.dialects import tfl
from tflquant.errors import TflquantError


def _element(v) -> object:  # noqa: ANN001
    t = v.type
    return t.element_type if isinstance(t, TensorType) else None


def _check_shape_operand(op: tfl.ReshapeOp) -> None:
    """A constant `shape` operand must agree with the static result type."""
    shape = op.operand("shape")
    if shape is None or not isinstance(shape.owner, tfl.ConstOp):
        return
    want = [int(d) for d in op.outputs[0].type.get_shape()]  # type: ignore[union-attr]
    got = [int(d) for d in shape.owner.numpy().ravel()]
    if -1 in want or -1 in got:  # dynamic: checked at run time
        return
    if got != want:
        names = tfl.tensor_names(op)
        label = f"tfl.reshape '{names[0]}'" if names else "tfl.reshape"
        raise TflquantError(f"{label}: shape operand {got} does not match its result type {op.outputs[0].type}")


class FoldReshapeOfReshape(RewritePattern):
    """RESHAPE(RESHAPE(x, s1), s2) -> RESHAPE(x, s2)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tfl.ReshapeOp, rewriter: PatternRewriter) -> None:
        inner = op.inputs[0].owner
        if not isinstance(inner, tfl.ReshapeOp):
            return
        x = inner.inputs[0]
        if not (_element(x) == _element(inner.outputs[0]) == _element(op.outputs[0])):
            return  # the quantized type changes along the chain: not a pure reshape
        _check_shape_operand(op)
        rewriter.replace_uses_with_if(inner.outputs[0], x, lambda use: use.operation is op)
        if not inner.outputs[0].uses:
            shape = inner.inputs[1] if len(inner.inputs) > 1 else None
            rewriter.erase(inner)
            if shape is not None and isinstance(shape.owner, tfl.ConstOp) and not shape.uses:
                rewriter.erase(shape.owner)


class RemoveIdentityReshape(RewritePattern):
    """RESHAPE(x, s) -> x when the result type equals x's type (and is not a model output)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tfl.ReshapeOp, rewriter: PatternRewriter) -> None:
        x, y = op.inputs[0], op.outputs[0]
        if x.type != y.type or any(isinstance(u.operation, func.ReturnOp) for u in y.uses):
            return
        shape = op.inputs[1] if len(op.inputs) > 1 else None
        rewriter.replace(op, [], [x])
        if shape is not None and isinstance(shape.owner, tfl.ConstOp) and not shape.uses:
            rewriter.erase(shape.owner)


@dataclass(frozen=True)
class FoldReshapeChain(ModulePass):
    """Collapses RESHAPE chains into one RESHAPE and removes identity reshapes; values unchanged."""

    name = "fold-reshape-chain"

    remove_identity: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns: list[RewritePattern] = [FoldReshapeOfReshape()]
        if self.remove_identity:
            patterns.append(RemoveIdentityReshape())
        # dce_enabled=False: erase only what this pass made dead, never other unused ops.
        walker = PatternRewriteWalker(GreedyRewritePatternApplier(patterns, dce_enabled=False))
        walker.rewrite_module(op)
