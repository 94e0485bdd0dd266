"""`fold-constants`: every float or integer op computed only from constants becomes a `tfl.const`.

In program order, an op whose operands are all `tfl.const` (or absent, `tfl.no_value`) is
evaluated with its numpy reference kernel (tflquant.reference.float_kernels, under the
reference interpreter's convention: constants carry no sample axis) and replaced by one
`tfl.const` per result, which keeps the result's tensor name. A SHAPE of a tensor whose
type is static folds too, so run-time shape computations (SHAPE -> STRIDED_SLICE / GATHER
-> REDUCE_PROD -> PACK -> RESHAPE) disappear once `freeze-batch-size` made the shapes
static. After each fold, dynamic result dims that the new constants determine (a RESHAPE
whose shape just became constant, and what follows it) are re-inferred as in
`freeze-batch-size`. Constants left unused by folding are erased.

Not folded: ops with a quantized operand or result, QUANTIZE / DEQUANTIZE (float16 and
quantized weights stay compact) and the quant dialect ops, DENSIFY (sparse weights stay
sparse), tfl.opaque / custom ops without a reference kernel, ops producing a model output,
and ops whose result would take more than `max-bytes` bytes and more than their constant
inputs together (FILL, BROADCAST_TO, TILE of small constants stay computed at run time).

Guarantees: values computed by the module are unchanged (the constants hold what the
reference kernels compute, which is what LiteRT's float kernels compute); surviving ops
keep their tensor names; no foldable op remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, NoneType, TensorType
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import tfl
from tflquant.dialects.quant import quantized_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, numpy_dtype_of_element, op_label, update_function_type
from tflquant.passes._shapes import is_static, refine_op, shape_of
from tflquant.reference import has_float_kernel, run_float_op

# Never folded: (de)quantization keeps weights small; DENSIFY keeps them sparse.
_KEEP = frozenset({"QUANTIZE", "DEQUANTIZE", "DENSIFY", "UNIDIRECTIONAL_SEQUENCE_LSTM", "quant.qcast", "quant.dcast", "quant.stats"})


def _nbytes(t: TensorType) -> int | None:
    shape = shape_of_type(t)
    if shape is None or not is_static(shape):
        return None
    try:
        item = numpy_dtype_of_element(t.element_type).itemsize
    except TflquantError:
        return None
    return int(np.prod(shape, dtype=np.int64)) * item


def shape_of_type(t: TensorType) -> list[int] | None:
    return [max(int(d), -1) for d in t.get_shape()]


@dataclass(frozen=True)
class FoldConstants(ModulePass):
    """Ops computed only from constants (and SHAPE of static tensors) become constants."""

    name = "fold-constants"

    max_bytes: int = 65536

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            raise TflquantError(f"fold-constants: max-bytes must be at least 0, got {self.max_bytes}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            if f.body.blocks:
                self._fold_function(f)

    def _foldable(self, op: Operation) -> bool:
        if isinstance(op, (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp, func.ReturnOp)):
            return False
        if not op.results or op.regions or not has_float_kernel(op) or tfl.op_type(op) in _KEEP:
            return False
        for v in (*op.operands, *op.results):
            if isinstance(v.type, NoneType):
                continue
            if not isinstance(v.type, TensorType) or quantized_element(v.type) is not None:
                return False
            try:
                numpy_dtype_of_element(v.type.element_type)
            except TflquantError:
                return False  # strings, resources, ...
        if any(isinstance(u.operation, func.ReturnOp) for r in op.results for u in r.uses):
            return False  # a model output stays computed (and keeps its place in the I/O)
        if tfl.op_type(op) == "SHAPE":
            return is_static(shape_of(op.operands[0]))
        return all(isinstance(v.owner, (tfl.ConstOp, tfl.NoValueOp)) for v in op.operands)

    def _evaluate(self, op: Operation) -> list[np.ndarray] | None:
        key = tfl.op_type(op)
        rtypes = [r.type for r in op.results]
        if key == "SHAPE":
            shape = shape_of(op.operands[0])
            return [np.array(shape, dtype=numpy_dtype_of_element(rtypes[0].element_type))]  # type: ignore[union-attr]
        arrays = [v.owner.numpy() if isinstance(v.owner, tfl.ConstOp) else None for v in op.operands]
        in_bytes = sum(a.nbytes for a in arrays if a is not None)
        sizes = [_nbytes(t) for t in rtypes]  # type: ignore[arg-type]
        if all(s is not None for s in sizes):
            total = sum(s for s in sizes if s is not None)
            if total > self.max_bytes and total > in_bytes:
                return None
        try:
            outs = run_float_op(op, arrays)
        except TflquantError as e:
            raise TflquantError(f"fold-constants: {op_label(op)} fails on its constant inputs: {e}") from None
        except (ValueError, IndexError, TypeError, ZeroDivisionError) as e:
            raise TflquantError(
                f"fold-constants: {op_label(op)} fails on its constant inputs ({type(e).__name__}: {e})"
            ) from None
        total = sum(o.nbytes for o in outs)
        if total > self.max_bytes and total > in_bytes:
            return None
        return outs

    def _fold_function(self, f: func.FuncOp) -> None:
        block = f.body.blocks[0]
        maybe_dead: list[tfl.ConstOp] = []
        changed = False
        for op in list(block.ops):
            changed |= refine_op(op, self.name)
            if not self._foldable(op):
                continue
            outs = self._evaluate(op)
            if outs is None:
                continue
            names = tfl.tensor_names(op)
            new_ops = []
            for i, (r, arr) in enumerate(zip(op.results, outs)):
                t = r.type
                assert isinstance(t, TensorType)
                want = shape_of_type(t)
                assert want is not None
                if len(want) != arr.ndim or any(w >= 0 and w != g for w, g in zip(want, arr.shape)):
                    raise TflquantError(
                        f"fold-constants: {op_label(op)} computes a result of shape {list(arr.shape)} "
                        f"from its constant inputs but its type is {t}: the model is inconsistent"
                    )
                arr = arr.astype(numpy_dtype_of_element(t.element_type), copy=False)  # dense_from_numpy keeps 0-d
                const = tfl.ConstOp(
                    dense_from_numpy(arr, t.element_type),
                    TensorType(t.element_type, list(arr.shape), t.encoding),
                    name=names[i] if names else None,
                )
                new_ops.append(const)
            Rewriter.insert_op(new_ops, InsertPoint.before(op))
            maybe_dead += [v.owner for v in op.operands if isinstance(v.owner, tfl.ConstOp)]
            for r, c in zip(list(op.results), new_ops):
                r.replace_all_uses_with(c.result)
            maybe_dead += new_ops
            Rewriter.erase_op(op)
            changed = True
        seen: set[int] = set()
        for c in maybe_dead:
            if id(c) in seen or c.parent is None:
                continue
            seen.add(id(c))
            if not c.result.uses:
                Rewriter.erase_op(c)
        if changed:
            update_function_type(f)
