"""annotate-calibration: attach the calibration statistics to the IR.

After this pass, every f32 function argument and every f32 result of a non-constant op
whose TFLite tensor name has statistics is followed by one `quant.stats` op carrying that
range, and every former use reads the `quant.stats` result instead:

    %y = "tfl.relu"(%x) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
    %s = quant.stats %y, <0.0, 6.0> : tensor<1x4xf32>
    ... uses of %s ...

Statistics come from `stats-file=PATH` (JSON keyed by tensor name, see
`tflquant.calibration.stats`) or, in the driver, from memory: `AnnotateCalibration.
from_memory(stats)` is a pass instance holding them (`run_pipeline(..., stats=stats)` runs
it in place of the spec's `annotate-calibration`; nothing is shared between calls). With
neither, the pass changes nothing, so a module that already carries its statistics
replays as is. A tensor whose name several functions use is looked up as '@function/name'
first (see `tflquant.calibration.stats.qualified_name`): after this pass every statistic
is attached to its value, so the keys are resolved. Values already annotated, constants
(and DEQUANTIZE of constants: weights), values without a name and values without
statistics are left alone. Running the pass twice is the same as running it once.

`method=minmax|moving-average|percentile|mse|entropy` (default minmax), `percentile=99.99`
and `bits=8|16` (the activation width the range is for: mse minimises the int8 asymmetric
or int16 symmetric error, entropy merges into 2**(bits-1) bins) choose how each tensor's
range comes from its statistics (`tflquant.calibration.stats.select`): the methods other
than minmax need the histograms and per-sample ranges calibration keeps when asked (the
stats files `--save-stats` writes have them), so the method can be picked at replay time:
`annotate-calibration{stats-file="s.json" method=percentile percentile=99.9}`. The range a
method picks contains 0 and lies inside the observed min/max. Statistics handed over in
memory (`run_pipeline(..., stats=...)`: `with_stats`) get the pass's method too.

Every statistic a later pass reads is in the IR afterwards (a module printed after this
pass replays the rest of the pipeline from text):
- ranges: the `quant.stats` ops above;
- a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED whose input has per-channel moments
  (calibration records them with bias correction or weight clipping on) carries them as
  its attribute `input_moments = #quant.moments<mean = [...], mean_sq = [...]>`, which
  correct-bias and clip-weights read (on the layer, because insert-fake-quant replaces the
  input's quant.stats op; moments that are not one per channel of the input's last axis
  are left out);
- a UNIDIRECTIONAL_SEQUENCE_LSTM whose cell state variable has statistics (calibration
  observes the cell state of every step under the variable's name) carries them as its
  attribute `cell_stats = #quant.stats<min, max>`, which quantize-lstm reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from tflquant.calibration.stats import DEFAULT_PERCENTILE, Range, Stats, as_stats, check_method, lookup, read_stats, select
from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import value_name
from tflquant.passes._weighted_layers import input_source, is_weighted_layer

_CONSTANT_OPS = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp)
CELL_STATS = tfl.CELL_STATS  # LSTM attribute: the calibrated range of its cell state


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


def _moments(o: Operation, stats: Stats) -> quant.ChannelMomentsAttr | None:
    """The per-channel moments of a weighted layer's input, checked against its channels."""
    x = input_source(o.operands[0]) if o.operands else None
    name = value_name(x) if x is not None else None
    r = lookup(stats, x, name) if x is not None and name is not None else None
    if r is None or r.mean is None:
        return None
    assert x is not None
    shape = list(x.type.get_shape()) if isinstance(x.type, TensorType) else []
    if not shape or (shape[-1] >= 0 and shape[-1] != len(r.mean)):
        return None  # not one mean per channel of this input: nothing a pass could use
    return quant.ChannelMomentsAttr.make(r.mean, r.mean_sq)


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
    """Attach every statistic (see the module docstring); returns how many were attached."""
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
            if is_weighted_layer(op) and quant.INPUT_MOMENTS not in op.attributes:
                if (moments := _moments(op, stats)) is not None:
                    op.attributes[quant.INPUT_MOMENTS] = moments
                    count += 1
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
    """Attach calibration statistics to the IR: quant.stats after every float activation,
    input moments on weighted layers, cell ranges on LSTMs."""

    name = "annotate-calibration"

    stats_file: str | None = None
    method: str = "minmax"
    percentile: float | int = DEFAULT_PERCENTILE  # int: `percentile=100` parses as one
    bits: int = 8

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        check_method(self.method, self.percentile, self.bits)
        stats = self.statistics()
        if stats is not None:
            annotate_module(op, stats)

    def statistics(self) -> Stats | None:
        if not self.stats_file:
            return None
        stats = read_stats(self.stats_file)
        try:
            return select(stats, self.method, self.percentile, self.bits)
        except TflquantError as e:
            raise TflquantError(f"annotate-calibration: {self.stats_file}: {e}") from None

    def with_stats(self, stats: Mapping[str, Any]) -> AnnotateCalibration:
        """This pass holding `stats` in memory, with the ranges its method picks."""
        check_method(self.method, self.percentile, self.bits)
        return _InMemory(select(as_stats(stats), self.method, self.percentile, self.bits))

    @staticmethod
    def from_memory(stats: Mapping[str, Any]) -> AnnotateCalibration:
        """The pass with statistics in memory (the driver's hand-over; not a spec option)."""
        return _InMemory(stats)


class _InMemory(AnnotateCalibration):
    """annotate-calibration holding its statistics (built by `from_memory`, never by name)."""

    def __init__(self, stats: Mapping[str, Any]):
        super().__init__()
        object.__setattr__(self, "stats", as_stats(stats))

    def statistics(self) -> Stats | None:
        return self.stats  # type: ignore[attr-defined]
