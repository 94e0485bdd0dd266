"""Static shape inference for freeze-batch-size and fold-constants; not a pass.

`refine_function(f, who)` re-infers, in program order, every dynamic result dim of f's ops
from their operands: elementwise ops by (broadcast) shape rules, every other op with a
reference kernel by running that kernel once on zeros shaped like its operands (shape
parameters must be constants). A static dim that contradicts the inferred one is an error
naming the op and `who` (the pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, NoneType, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import Rewriter

from tflquant.dialects import tfl
from tflquant.dialects.quant import quantized_element
from tflquant.errors import TflquantError
from tflquant.ir import op_label, update_function_type
from tflquant.reference import float_result_dtype, has_float_kernel, is_parameter, run_float_op

# Shape rules of the unmodelled builtins (tfl.opaque) and quant ops; a tfl op declares its
# own (tfl.ShapeRule; without one: its float kernel runs on zeros).
# Result shape == shape of operand 0.
_UNARY = frozenset(
    {
        "CEIL", "COS", "FLOOR", "LOCAL_RESPONSE_NORMALIZATION", "LOGICAL_NOT", "ROUND", "SIGN", "SIN",
        "ZEROS_LIKE", "quant.qcast", "quant.dcast", "quant.stats",
    }
)  # fmt: skip
# Result shape == broadcast of all tensor operands' shapes.
_BROADCAST = frozenset({"ADD_N", "ATAN2", "FLOOR_DIV", "FLOOR_MOD", "LOGICAL_AND", "LOGICAL_OR", "POW"})
# Ops never run on zeros to infer shapes: ones whose result shape depends on operand
# *values* that are not constant parameters (if they ever get a reference kernel).
_NO_ZERO_EVAL = frozenset(
    {
        "WHERE", "UNIQUE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "RANGE", "SPARSE_TO_DENSE",
        "SEGMENT_SUM", "UNSORTED_SEGMENT_SUM", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX",
        "UNSORTED_SEGMENT_MIN", "SCATTER_ND", "BROADCAST_ARGS", "RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL",
        "MULTINOMIAL",
    }
)  # fmt: skip


def shape_rule(op: Operation) -> tuple[str, int] | None:
    """(tfl.ShapeRule kind, operand) of an op: its declaration's, or the tables' above."""
    if isinstance(op, tfl.TflOp):
        r = type(op).get_trait(tfl.ShapeRule)
        return (r.kind, r.operand) if r is not None else None
    key = tfl.op_type(op)
    if key in _UNARY:
        return tfl.ELEMENTWISE, 0
    if key in _BROADCAST:
        return tfl.BROADCAST, 0
    if key in _NO_ZERO_EVAL:
        return tfl.VALUE_DEPENDENT, 0
    return None


_CONSTANT_OPS = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp)




def shape_of(v: SSAValue) -> list[int] | None:
    """The dims of a ranked tensor value (-1 for dynamic), None for anything else."""
    t = v.type
    if not isinstance(t, TensorType):
        return None
    return [max(int(d), -1) for d in t.get_shape()]  # xDSL's DYNAMIC_INDEX is not -1


def is_static(shape: Sequence[int] | None) -> bool:
    return shape is not None and all(d >= 0 for d in shape)


def _broadcast(shapes: list[list[int]]) -> list[int] | None:
    rank = max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        dims = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]
        known = {d for d in dims if d >= 0 and d != 1}
        if len(known) > 1:
            return None  # incompatible: leave it to the verifier / runtime
        if known:
            out.append(known.pop())
        elif -1 in dims:
            out.append(-1)
        else:
            out.append(1)
    return out








def _zeros_like_type(t: Any) -> np.ndarray:
    return np.zeros([int(d) for d in t.get_shape()], float_result_dtype(t))


def infer_result_shapes(op: Operation) -> list[list[int] | None] | None:
    """The result shapes `op` computes from its operand types (and constant parameters):
    one list per result, with -1 where a dim stays unknown; None when nothing is known."""
    if isinstance(op, (*_CONSTANT_OPS, func.ReturnOp)) or not op.results:
        return None
    if isinstance(op, tfl.OpaqueOp) and op.custom_code is not None:
        return None
    shapes = [shape_of(v) for v in op.operands]
    kind, at = shape_rule(op) or ("", 0)
    if kind == tfl.ELEMENTWISE and len(op.results) == 1 and len(shapes) > at and shapes[at] is not None:
        return [shapes[at]]
    if kind == tfl.BROADCAST and len(op.results) == 1:
        tensors = [s for s in shapes if s is not None]
        return [_broadcast(tensors)] if tensors else None
    if not has_float_kernel(op) or kind == tfl.VALUE_DEPENDENT:
        return None
    arrays: list[np.ndarray | None] = []
    for i, v in enumerate(op.operands):
        if isinstance(v.type, NoneType):
            arrays.append(None)
            continue
        owner = v.owner
        if isinstance(owner, tfl.ConstOp):
            if quantized_element(v.type) is not None:
                arrays.append(_zeros_like_type(v.type))
            else:
                arrays.append(owner.numpy())
            continue
        if is_parameter(op, i) or not is_static(shapes[i]):
            return None  # a run-time shape parameter, or a dynamic operand
        arrays.append(_zeros_like_type(v.type))
    try:
        outs = run_float_op(op, arrays)
    except Exception:  # noqa: BLE001 - a kernel that cannot run on these shapes: nothing inferred
        return None
    return [list(o.shape) for o in outs]


def refine_op(op: Operation, who: str) -> bool:
    """Replace dynamic dims of op's result types by inferred ones; True if any changed."""
    if not any(isinstance(r.type, TensorType) and not is_static(shape_of(r)) for r in op.results):
        return False
    inferred = infer_result_shapes(op)
    if inferred is None:
        return False
    changed = False
    for r, new in zip(list(op.results), inferred):
        t = r.type
        if new is None or not isinstance(t, TensorType):
            continue
        old = shape_of(r)
        assert old is not None
        if len(old) != len(new):
            raise TflquantError(
                f"{who}: {op_label(op)} computes a rank-{len(new)} result {new} but its type is {t}: the model is inconsistent"
            )
        merged = []
        for o, n in zip(old, new):
            if o >= 0 and n >= 0 and o != n:
                raise TflquantError(
                    f"{who}: {op_label(op)} computes a result of shape {new} from its operands "
                    f"but its type is {t}: the model is inconsistent"
                )
            merged.append(o if o >= 0 else n)
        if merged != old:
            dims = [d if d >= 0 else DYNAMIC_INDEX for d in merged]
            Rewriter.replace_value_with_new_type(r, TensorType(t.element_type, dims, t.encoding))
            changed = True
    return changed




def refine_function(f: func.FuncOp, who: str) -> bool:
    """Re-infer dynamic result dims of every op of `f`, in program order."""
    changed = False
    for op in list(f.body.blocks[0].ops):
        changed |= refine_op(op, who)
    if changed:
        update_function_type(f)
    return changed
