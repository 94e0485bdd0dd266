"""`freeze-batch-size`: model inputs with a dynamic batch get a static one, and static shapes flow forward.

Every argument of an entry function (each function a signature def names; the first
function when there are none) whose leading dim is dynamic (`?`, -1 in the shape
signature) gets the static `size` (default 1). Then, in program order, every op whose
result type still has dynamic dims gets them re-inferred from its operands:

- elementwise ops (unary, and binary/ternary with TFLite broadcasting) propagate each dim
  that is known, even when other dims stay dynamic;
- every other op with a reference kernel (conv, pooling, FULLY_CONNECTED, BATCH_MATMUL,
  RESHAPE / TRANSPOSE / GATHER / CONCATENATION / MEAN / STRIDED_SLICE / ...) is run once
  by its numpy reference kernel on zeros shaped like its operands, once all of them are
  static and every shape-like parameter (RESHAPE's shape, TRANSPOSE's perm, MEAN's axes,
  ...) is a `tfl.const`; the result shapes are read off. Ops whose result shape depends
  on non-constant operand values (WHERE, RANGE, TOPK_V2, ...) are never inferred this way.

A result whose shape cannot be inferred (a RESHAPE whose shape is computed at run time, an
op without a reference kernel, a custom op) keeps its dynamic dims; `fold-constants`
evaluates SHAPE chains once the shapes they read are static and refines what follows.
Function types follow the new argument and result types. Other functions (control-flow
bodies) are left alone.

Guarantees: values computed by the module for inputs of the frozen batch size are
unchanged; only `?` dims change (to static sizes), element types, ops, tensor names, arg
attributes and signature defs stay as they were. A static dim that contradicts the one
the operands imply is an error naming the op (the model is inconsistent).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.errors import TflquantError
from tflquant.ir import entry_functions, update_function_type
from tflquant.passes._shapes import refine_function


@dataclass(frozen=True)
class FreezeBatchSize(ModulePass):
    """Entry-function inputs with a dynamic batch get batch `size`; shapes propagate forward."""

    name = "freeze-batch-size"

    size: int = 1

    def __post_init__(self) -> None:
        if self.size < 1:
            raise TflquantError(f"freeze-batch-size: size must be at least 1, got {self.size}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in entry_functions(op):
            if not f.body.blocks:
                continue
            block = f.body.blocks[0]
            for arg in list(block.args):
                t = arg.type
                if isinstance(t, TensorType) and t.get_shape() and int(t.get_shape()[0]) < 0:
                    shape = [self.size, *[int(d) for d in t.get_shape()[1:]]]
                    Rewriter.replace_value_with_new_type(arg, TensorType(t.element_type, shape, t.encoding))
            refine_function(f, self.name)
            update_function_type(f)
