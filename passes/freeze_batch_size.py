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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, ArrayAttr, DictionaryAttr, FunctionType, ModuleOp, NoneType, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.dialects import tfl
from tflquant.errors import TflquantError
from tflquant.reference import float_kernels as fk
from tflquant.reference.interpreter import op_label

# Result shape == shape of operand 0.
_UNARY = frozenset(
    {
        "ABS", "CAST", "CEIL", "COS", "CUMSUM", "DEQUANTIZE", "ELU", "EXP", "FLOOR", "GELU", "HARD_SWISH",
        "L2_NORMALIZATION", "LEAKY_RELU", "LOCAL_RESPONSE_NORMALIZATION", "LOG", "LOGICAL_NOT", "LOGISTIC",
        "LOG_SOFTMAX", "NEG", "QUANTIZE", "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "REVERSE_V2", "ROUND",
        "RSQRT", "SIGN", "SIN", "SOFTMAX", "SQRT", "SQUARE", "TANH", "ZEROS_LIKE",
        "quant.qcast", "quant.dcast", "quant.stats",
    }
)  # fmt: skip
# Result shape == broadcast of all tensor operands' shapes.
_BROADCAST = frozenset(
    {
        "ADD", "ADD_N", "ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LESS",
        "LESS_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "MAXIMUM", "MINIMUM", "MUL", "NOT_EQUAL", "POW", "PRELU",
        "SELECT_V2", "SQUARED_DIFFERENCE", "SUB",
    }
)  # fmt: skip
# Ops never run on zeros to infer shapes: stateful ones, and ones whose result shape depends
# on operand *values* that are not constant parameters (if they ever get a reference kernel).
_NO_ZERO_EVAL = frozenset(
    {
        "UNIDIRECTIONAL_SEQUENCE_LSTM", "DENSIFY", "WHERE", "UNIQUE", "NON_MAX_SUPPRESSION_V4",
        "NON_MAX_SUPPRESSION_V5", "RANGE", "TOPK_V2", "ONE_HOT", "SPARSE_TO_DENSE", "SEGMENT_SUM",
        "UNSORTED_SEGMENT_SUM", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_MIN",
        "SCATTER_ND", "BROADCAST_ARGS", "RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL",
    }
)  # fmt: skip

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


def _operand_kind(op: Operation, key: str, i: int) -> str:
    """'param' (no sample axis in the reference kernels) or 'data'."""
    names = getattr(op, "OPERANDS", None) or fk.OPAQUE_OPERANDS.get(key, ())
    name = names[i] if i < len(names) else (names[-1] if names else "")
    return "param" if name in fk.PARAMS.get(key, frozenset()) and not name.startswith("*") else "data"


def has_kernel(op: Operation) -> bool:
    if isinstance(op, tfl.OpaqueOp) and op.custom_code is not None:
        return False
    return tfl.op_type(op) in fk.KERNELS


def run_kernel(op: Operation, arrays: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """Evaluate `op` on sample-independent operand arrays (None: absent optional input),
    with its float reference kernel; returns one array per result, without a sample axis
    (constants have none, see tflquant.reference.interpreter)."""
    key = tfl.op_type(op)
    kern = fk.KERNELS[key](op)
    args = []
    for i, a in enumerate(arrays):
        if a is None or _operand_kind(op, key, i) == "param":
            args.append(a)
        else:
            args.append(np.asarray(a)[None])
    with np.errstate(all="ignore"):
        r = kern(*args)
    outs = list(r) if isinstance(r, (tuple, list)) else [r]
    if len(outs) != len(op.results):
        raise TflquantError(f"{op_label(op)}: its kernel produced {len(outs)} results, the op declares {len(op.results)}")
    if key not in fk.UNBATCHED_RESULTS:
        outs = [np.asarray(o)[0] for o in outs]
    return [np.asarray(o) for o in outs]


def _zeros_like_type(t: Any) -> np.ndarray:
    return np.zeros([int(d) for d in t.get_shape()], fk.float_dtype(t))


def infer_result_shapes(op: Operation) -> list[list[int] | None] | None:
    """The result shapes `op` computes from its operand types (and constant parameters):
    one list per result, with -1 where a dim stays unknown; None when nothing is known."""
    if isinstance(op, (*_CONSTANT_OPS, func.ReturnOp)) or not op.results:
        return None
    key = tfl.op_type(op)
    if isinstance(op, tfl.OpaqueOp) and op.custom_code is not None:
        return None
    shapes = [shape_of(v) for v in op.operands]
    if key in _UNARY and len(op.results) == 1 and shapes and shapes[0] is not None:
        return [shapes[0]]
    if key in _BROADCAST and len(op.results) == 1:
        tensors = [s for s in shapes if s is not None]
        return [_broadcast(tensors)] if tensors else None
    if key == "SELECT" and len(shapes) == 3 and shapes[1] is not None:
        return [shapes[1]]
    if key not in fk.KERNELS or key in _NO_ZERO_EVAL:
        return None
    arrays: list[np.ndarray | None] = []
    for i, v in enumerate(op.operands):
        if isinstance(v.type, NoneType):
            arrays.append(None)
            continue
        owner = v.owner
        if isinstance(owner, tfl.ConstOp):
            if fk.quantized_element(v.type) is not None:
                arrays.append(_zeros_like_type(v.type))
            else:
                arrays.append(owner.numpy())
            continue
        if _operand_kind(op, key, i) == "param" or not is_static(shapes[i]):
            return None  # a run-time shape parameter, or a dynamic operand
        arrays.append(_zeros_like_type(v.type))
    try:
        outs = run_kernel(op, arrays)
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


def update_function_type(f: func.FuncOp) -> None:
    block = f.body.blocks[0]
    ret = block.last_op
    outs = [v.type for v in ret.operands] if isinstance(ret, func.ReturnOp) else list(f.function_type.outputs)
    f.function_type = FunctionType.from_lists([a.type for a in block.args], outs)


def refine_function(f: func.FuncOp, who: str) -> bool:
    """Re-infer dynamic result dims of every op of `f`, in program order."""
    changed = False
    for op in list(f.body.blocks[0].ops):
        changed |= refine_op(op, who)
    if changed:
        update_function_type(f)
    return changed


def entry_functions(module: ModuleOp) -> list[func.FuncOp]:
    """Functions a signature def names, or the first function when there are none."""
    funcs = [o for o in module.ops if isinstance(o, func.FuncOp)]
    names: list[str] = []
    sigs = module.attributes.get("tfl.signatures")
    if isinstance(sigs, ArrayAttr):
        for e in sigs.data:
            if isinstance(e, DictionaryAttr) and isinstance(fn := e.data.get("function"), StringAttr):
                names.append(fn.data)
    if not names:
        return funcs[:1]
    return [f for f in funcs if f.sym_name.data in names] or funcs[:1]


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
