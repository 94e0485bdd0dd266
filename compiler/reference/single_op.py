"""One op alone, outside an interpreter run: what passes use of the reference kernels.

Passes never reach into the kernel tables; they call these (re-exported by
`tflquant.reference`):

- `has_float_kernel(op)`: the float reference interpreter can run `op`.
- `run_float_op(op, arrays)`: `op` evaluated by its float kernel on sample-independent
  operand arrays (None for an absent optional input); one array per result, no sample axis.
- `run_integer_op(op, arrays)`: the same with the integer kernel LiteRT's builtin kernel
  computes (operands and results are storage integers of their quantized types).
- `float_result_dtype(t)`: the numpy dtype a float kernel produces for tensor type `t`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.ir import Operation

from tflquant.dialects import tfl
from tflquant.errors import TflquantError
from tflquant.ir import op_label
from tflquant.reference import float_kernels as fk
from tflquant.reference import integer_kernels as ik


def has_float_kernel(op: Operation) -> bool:
    if isinstance(op, tfl.OpaqueOp) and op.custom_code is not None:
        return False
    return tfl.op_type(op) in fk.KERNELS


def is_parameter(op: Operation, index: int) -> bool:
    """Whether operand `index` is a parameter of the kernel (no sample axis: a shape, axes,
    weights) rather than data."""
    key = tfl.op_type(op)
    names = getattr(op, "OPERANDS", None) or fk.OPAQUE_OPERANDS.get(key, ())
    name = names[index] if index < len(names) else (names[-1] if names else "")
    return name in fk.PARAMS.get(key, frozenset()) and not name.startswith("*")


def run_float_op(op: Operation, arrays: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """Evaluate `op` on sample-independent operand arrays (None: absent optional input)
    with its float reference kernel; one array per result, without a sample axis."""
    key = tfl.op_type(op)
    kern = fk.KERNELS[key](op)
    args = [a if a is None or is_parameter(op, i) else np.asarray(a)[None] for i, a in enumerate(arrays)]
    with np.errstate(all="ignore"):
        r = kern(*args)
    outs = list(r) if isinstance(r, (tuple, list)) else [r]
    if len(outs) != len(op.results):
        raise TflquantError(f"{op_label(op)}: its kernel produced {len(outs)} results, the op declares {len(op.results)}")
    if key not in fk.UNBATCHED_RESULTS:
        outs = [np.asarray(o)[0] for o in outs]
    return [np.asarray(o) for o in outs]


def run_integer_op(op: Operation, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Evaluate a quantized `op` with its integer kernel on storage-integer arrays (the
    data operands without a sample axis); one array per result."""
    key = tfl.op_type(op)
    if key not in ik.KERNELS:
        raise TflquantError(f"{op_label(op)} has no integer reference kernel")
    r = ik.KERNELS[key](op)(*[np.asarray(a)[None] for a in arrays])
    outs = list(r) if isinstance(r, (tuple, list)) else [r]
    return [np.asarray(o)[0] for o in outs]


def float_result_dtype(t: object) -> np.dtype:
    return fk.float_dtype(t)
