"""annotate-calibration: mark every float activation with its calibrated range.

After this pass, every f32 function argument and every f32 result of a non-constant op
whose TFLite tensor name has statistics is followed by one `quant.stats` op carrying that
range, and every former use reads the `quant.stats` result instead:

    %y = "tfl.relu"(%x) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
    %s = quant.stats %y, <0.0, 6.0> : tensor<1x4xf32>
    ... uses of %s ...

Statistics come from `stats-file=PATH` (JSON keyed by tensor name, see
`tflquant.calibration.stats`) or, without that option, from the driver in memory
(`with tflquant.calibration.stats.provide_stats(stats): run_pipeline(...)`). With neither,
the pass changes nothing, so a module that already carries `quant.stats` ops replays as is.
A tensor whose name several functions use is looked up as '@function/name' first (see
`tflquant.calibration.stats.qualified_name`). Values already annotated, constants (and DEQUANTIZE of constants: weights), values without
a name and values without statistics are left alone. Running the pass twice is the same as
running it once.

A UNIDIRECTIONAL_SEQUENCE_LSTM whose cell state variable has statistics (calibration
observes the cell state of every step under the variable's name) carries them as its
attribute `cell_stats = #quant.stats<min, max>`, which quantize-lstm reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from tflquant.calibration.stats import Range, Stats, lookup, pass_stats
from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import value_name

_CONSTANT_OPS = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp)
CELL_STATS = "cell_stats"  # LSTM attribute: the calibrated range of its cell state


def _is_float_tensor(v: SSAValue) -> bool:
    return isinstance(v.type, TensorType) and isinstance(v.type.element_type, Float32Type)


def _is_weight(op: Operation) -> bool:
    if isinstance(op, _CONSTANT_OPS):
        return True
    # DEQUANTIZE of a constant (fp16 or int8 weights) is a weight, not an activation
    if isinstance(op, tfl.DequantizeOp) and op.operands:
        src = op.operands[0].owner
        return isinstance(src, Operation) and isinstance(src, _CONSTANT_OPS)
    return False


def _already_annotated(v: SSAValue) -> bool:
    if isinstance(v.owner, quant.StatsOp):
        return True
    return any(isinstance(u.operation, quant.StatsOp) for u in v.uses)


def _attr(r: Range) -> quant.CalibrationStatsAttr:
    if r.axis < 0:
        return quant.CalibrationStatsAttr.make(r.mins[0], r.maxs[0])
    return quant.CalibrationStatsAttr.make(list(r.mins), list(r.maxs), r.axis)


def _check_axis(v: SSAValue, name: str, r: Range) -> None:
    """Per-axis statistics must name an axis of the tensor and one range per channel."""
    if r.axis < 0:
        return
    assert isinstance(v.type, TensorType)
    shape = list(v.type.get_shape())
    if r.axis >= len(shape) or (shape[r.axis] >= 0 and shape[r.axis] != len(r.mins)):
        raise TflquantError(
            f"annotate-calibration: statistics for tensor '{name}' have {len(r.mins)} per-channel ranges on "
            f"axis {r.axis}, which does not fit its type {v.type}; recalibrate this model"
        )


def _annotate(v: SSAValue, r: Range, after: Operation | None, fn: func.FuncOp) -> Operation:
    op = quant.StatsOp(v, _attr(r))
    block = fn.body.blocks[0]
    if after is None:
        first = block.first_op
        if first is None:
            block.add_op(op)
        else:
            block.insert_op_before(op, first)
    else:
        after.parent_block().insert_op_after(op, after)  # type: ignore[union-attr]
    v.replace_uses_with_if(op.result, lambda use: use.operation is not op)
    return op


def annotate_module(module: ModuleOp, stats: Stats) -> int:
    """Insert quant.stats after every float activation that has statistics; returns how many."""
    count = 0
    for fn in [o for o in module.walk() if isinstance(o, func.FuncOp)]:
        if not fn.body.blocks:
            continue
        last_arg_stats: Operation | None = None
        for arg in fn.body.blocks[0].args:
            if not _is_float_tensor(arg) or _already_annotated(arg):
                continue
            name = value_name(arg)
            r = lookup(stats, arg, name) if name is not None else None
            if name is None or r is None:
                continue
            _check_axis(arg, name, r)
            last_arg_stats = _annotate(arg, r, last_arg_stats, fn)
            count += 1
        for op in list(fn.body.walk()):
            if isinstance(op, quant.StatsOp | quant.QuantizeCastOp | quant.DequantizeCastOp) or _is_weight(op):
                continue
            if isinstance(op, tfl.UnidirectionalSequenceLstmOp) and CELL_STATS not in op.attributes:
                cell = op.operand("cell_state")
                name = value_name(cell) if cell is not None else None
                r = lookup(stats, cell, name) if name is not None else None
                if name is not None and r is not None:
                    op.attributes[CELL_STATS] = _attr(r)
                    count += 1
            for res in op.results:
                if not _is_float_tensor(res) or _already_annotated(res):
                    continue
                name = value_name(res)
                r = lookup(stats, res, name) if name is not None else None
                if name is None or r is None:
                    continue
                _check_axis(res, name, r)
                _annotate(res, r, op, fn)
                count += 1
    return count


@dataclass(frozen=True)
class AnnotateCalibration(ModulePass):
    """Insert quant.stats after every float activation from calibration statistics."""

    name = "annotate-calibration"

    stats_file: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        stats = pass_stats(self.stats_file)
        if stats is None:
            return
        annotate_module(op, stats)
