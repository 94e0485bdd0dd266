"""smooth-quant: move activation outliers of a normalized tensor into the weights that
read it (Xiao et al. 2023, SmoothQuant).

A few channels of the output of a layer norm often range far wider than the others; the
activation is quantized per tensor, so those channels set the scale and the others lose
their resolution, while the weights that read it are quantized per output channel and
have headroom along the input channel. For a float tensor Y (C channels, the last axis)
that

- only FULLY_CONNECTED layers (input operand) and BATCH_MATMULs (left operand, constant
  right side, no adjoints) read, directly or through RESHAPEs and MEANs over other axes
  (SHAPE reads no values), all with constant weights, and
- is made by elementwise MUL/ADD/SUB ops (no fused activation) from constants that can
  carry a per-channel factor: the layer norm's gamma and beta. A TFLite layer norm is a
  decomposition (Keras: MEAN, SQUARED_DIFFERENCE, MEAN, ADD eps, RSQRT, MUL gamma, MUL,
  NEG/MUL, ADD beta, MUL, ADD): Y = x*g - mean*g + beta with g = rsqrt(var + eps)*gamma,
  so dividing gamma and beta by s divides Y by s and no op is added,

the pass divides channel j of Y by s_j = max|Y_j|^alpha / max|W_j|^(1 - alpha) (max|W_j|
over every reader's weights of input channel j: Q, K and V share one factor) and
multiplies those weights by s_j. The float function is unchanged up to float rounding.
A value used by anything else on the way (a residual connection reading Y, a post-norm
block) makes the pass skip that tensor: every consumer must be rescaled consistently.

max|Y_j| comes from calibration: the attribute `smooth_range = #quant.stats<axis,
[min...], [max...]>` on Y's defining op (per channel of the last axis), attached by the
driver from a first calibration run (`channel_ranges`), or read here from `stats-file`
(a calibration statistics JSON with per-axis entries keyed by tensor name: the driver's
`--save-stats S.json` writes them to S.smooth.json). A tensor
without it is left alone. Run it on float IR before calibration: the driver calibrates the
smoothed model. Touched tensors' defining ops lose `smooth_range` and are marked
`tflquant.smoothed`; the pass is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from tflquant.calibration.observers import MinMaxObserver
from tflquant.calibration.stats import Range, lookup, read_stats
from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import value_name
from tflquant.passes._quant_ops import float_const, is_f32
from tflquant.passes._rescale import const_array, in_groups, in_ranges, scale_inputs, set_const_operand

RANGE = "smooth_range"
MARK = "tflquant.smoothed"
MAX_DEPTH = 8  # ops walked back from Y to the constants that carry the factor
S_LIMIT = 1e4  # |log s| bound: a channel that is zero in X or W keeps s = 1 anyway


def _ops(*names: str) -> tuple[type, ...]:
    return tuple(tfl.BUILTIN_CLASSES[n] for n in names)


# ---------------------------------------------------------------------------------------
# readers: where the scale goes
# ---------------------------------------------------------------------------------------


@dataclass
class _Reader:
    op: Operation
    index: int  # weight operand
    kind: str


def _last_dim(v: SSAValue) -> int | None:
    t = v.type
    if not isinstance(t, TensorType) or t.get_num_dims() == 0:
        return None
    d = t.get_shape()[-1]
    return d if d >= 0 else None


def _mean_keeps_last(op: Operation) -> bool:
    """A MEAN whose constant axes leave the last axis alone."""
    t, axes = op.operands[0].type, op.operands[1].owner if len(op.operands) > 1 else None
    if not isinstance(t, TensorType) or not isinstance(axes, tfl.ConstOp) or t.get_num_dims() == 0:
        return False
    rank = t.get_num_dims()
    return all(int(a) % rank != rank - 1 for a in np.asarray(axes.numpy()).reshape(-1))


def readers(y: SSAValue, channels: int) -> list[_Reader] | None:
    """The weighted layers that read Y (see the module docstring), or None when anything
    else reads it. A value's channel is its flat index mod `channels` (RESHAPE keeps flat
    order), so a value whose last dimension is not a multiple of it may only be read by a
    FULLY_CONNECTED."""
    out: list[_Reader] = []
    todo = [y]
    while todo:
        v = todo.pop()
        last = _last_dim(v)
        for use in v.uses:
            op = use.operation
            if isinstance(op, tfl.BUILTIN_CLASSES["SHAPE"]):
                continue
            if not isinstance(op, tfl.TflOp) or not op.results or not is_f32(op.results[0].type):
                return None
            if isinstance(op, tfl.ReshapeOp) and use.index == 0:
                todo.append(op.results[0])
                continue
            if isinstance(op, tfl.BUILTIN_CLASSES["MEAN"]) and use.index == 0 and _mean_keeps_last(op) and last is not None and last % channels == 0:
                todo.append(op.results[0])
                continue
            kind = op.BUILTIN
            fc = kind == "FULLY_CONNECTED"
            bmm = kind == "BATCH_MATMUL" and last == channels and not op.option("adj_x") and not op.option("adj_y")
            w = const_array(op, 1) if use.index == 0 and (fc or bmm) else None
            if w is None or in_groups(kind, w, channels) is None:
                return None
            out.append(_Reader(op, 1, kind))
    return out or None


# ---------------------------------------------------------------------------------------
# producers: which constants carry 1/s
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    values: frozenset[SSAValue] = frozenset()  # non-constant values divided by s
    consts: tuple[tuple[Operation, int], ...] = ()  # constant operands divided by s

    def scaled(self, op: Operation, i: int) -> bool:
        return op.operands[i] in self.values or (op, i) in self.consts


def _scale_value(v: SSAValue, channels: int, plan: _Plan, depth: int) -> Iterator[_Plan]:
    if v in plan.values:
        yield plan
        return
    op = v.owner
    if depth == 0 or not is_f32(v.type) or _last_dim(v) != channels or not isinstance(op, _ops("MUL", "ADD", "SUB")):
        return
    if str(op.option("fused_activation_function")) != "NONE" or MARK in op.attributes:
        return
    p = _Plan(plan.values | {v}, plan.consts)
    if isinstance(op, _ops("MUL")):
        # scale one factor: one already scaled, else a constant, else the other
        order = sorted(range(2), key=lambda i: (op.operands[i] not in p.values, float_const(op.operands[i]) is None, i))
        for i in order:
            yield from _scale_operand(op, i, channels, p, depth - 1)
    else:
        for p1 in _scale_operand(op, 0, channels, p, depth - 1):
            yield from _scale_operand(op, 1, channels, p1, depth - 1)


def _scale_operand(op: Operation, i: int, channels: int, plan: _Plan, depth: int) -> Iterator[_Plan]:
    v = op.operands[i]
    c = float_const(v)
    if c is None:
        yield from _scale_value(v, channels, plan, depth)
        return
    shape = c.numpy().shape
    if len(shape) <= len(op.results[0].type.get_shape()) and (not shape or shape[-1] in (1, channels)):  # type: ignore[attr-defined]
        yield _Plan(plan.values, (*plan.consts, (op, i)))


def _consistent(y: SSAValue, plan: _Plan) -> bool:
    """Every scaled op scales its result exactly once (MUL: one factor, ADD/SUB: both
    terms), and every scaled value but Y is read only by scaled ops."""
    for v in plan.values:
        op = v.owner
        n = sum(plan.scaled(op, i) for i in range(2))  # type: ignore[arg-type]
        if n != (1 if isinstance(op, _ops("MUL")) else 2):
            return False
        if v is not y and any(not u.operation.results or u.operation.results[0] not in plan.values for u in v.uses):
            return False
    return True


def producer_plan(y: SSAValue, channels: int) -> _Plan | None:
    """How to divide Y by a per-channel factor through constants only, or None."""
    for plan in _scale_value(y, channels, _Plan(), MAX_DEPTH):
        if _consistent(y, plan):
            return plan
    return None


# ---------------------------------------------------------------------------------------
# the pass
# ---------------------------------------------------------------------------------------


@dataclass
class Site:
    """A tensor the pass can smooth: Y, its readers and how to divide it."""

    y: SSAValue
    channels: int
    readers: list[_Reader]
    plan: _Plan


def sites(module: ModuleOp) -> list[Site]:
    """Every tensor the pass can smooth (ranges aside), in program order."""
    out = []
    for op in module.walk():
        if not isinstance(op, _ops("MUL", "ADD", "SUB")) or MARK in op.attributes or len(op.results) != 1:
            continue
        y = op.results[0]
        c = _last_dim(y)
        if c is None or c < 2 or (rs := readers(y, c)) is None or (plan := producer_plan(y, c)) is None:
            continue
        out.append(Site(y, c, rs, plan))
    return out


def smoothing_factors(absmax_x: np.ndarray, absmax_w: np.ndarray, alpha: float) -> np.ndarray:
    """s_j = max|X_j|^alpha / max|W_j|^(1 - alpha); 1 where either is zero or not finite."""
    ok = (absmax_x > 0) & (absmax_w > 0) & np.isfinite(absmax_x) & np.isfinite(absmax_w)
    s = np.ones_like(absmax_x, dtype=np.float64)
    s[ok] = absmax_x[ok] ** alpha / absmax_w[ok] ** (1.0 - alpha)
    return np.clip(s, 1.0 / S_LIMIT, S_LIMIT)


def smooth(site: Site, absmax_x: np.ndarray, alpha: float) -> None:
    """Divide Y by s through its plan's constants and multiply the readers' weights by s."""
    ws = [const_array(r.op, r.index) for r in site.readers]
    absmax_w = np.max([in_ranges(r.kind, w, site.channels) for r, w in zip(site.readers, ws)], axis=0)
    s = smoothing_factors(absmax_x, absmax_w, alpha)
    for r, w in zip(site.readers, ws):
        set_const_operand(r.op, r.index, scale_inputs(r.kind, w, s))  # type: ignore[arg-type]
    for op, i in site.plan.consts:
        c = const_array(op, i)
        assert c is not None
        set_const_operand(op, i, c / s if c.ndim else np.full(site.channels, float(c)) / s)
    owner = site.y.owner
    owner.attributes.pop(RANGE, None)  # type: ignore[union-attr]
    owner.attributes[MARK] = UnitAttr()  # type: ignore[union-attr]


def _absmax(attr: quant.CalibrationStatsAttr, channels: int, where: str) -> np.ndarray:
    lo, hi = attr.min_array(), attr.max_array()
    if attr.axis.data < 0 or lo.size != channels:
        raise TflquantError(f"smooth-quant: {where}: smooth_range needs one range per channel of the last axis ({channels}), got {lo.size}")
    return np.maximum(np.abs(lo), np.abs(hi))


@dataclass(frozen=True)
class SmoothQuant(ModulePass):
    """A calibrated layer-norm output read only by FC / BATCH_MATMUL weights is divided per
    channel by max|X|^alpha / max|W|^(1-alpha), the weights multiplied (SmoothQuant); float
    outputs unchanged."""

    name = "smooth-quant"

    alpha: float = 0.5
    stats_file: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise TflquantError(f"smooth-quant: alpha must be in [0, 1], got {self.alpha}")
        if self.stats_file:
            attach_ranges(op, read_stats(self.stats_file))
        for site in sites(op):
            attr = site.y.owner.attributes.get(RANGE)  # type: ignore[union-attr]
            if isinstance(attr, quant.CalibrationStatsAttr):
                smooth(site, _absmax(attr, site.channels, f"tensor '{value_name(site.y)}'"), self.alpha)


# ---------------------------------------------------------------------------------------
# per-channel ranges from calibration (the driver's first run)
# ---------------------------------------------------------------------------------------


@dataclass
class ChannelRangeObserver(MinMaxObserver):
    """Per-channel (last axis) min and max of the named tensors only; everything else is
    ignored. `stats()` gives per-axis Ranges."""

    names: frozenset[str] = frozenset()
    channel: dict[str, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)

    def reduce(self, name: str, array: np.ndarray):  # type: ignore[override]
        a = np.asarray(array)
        if name not in self.names or a.dtype.kind != "f" or a.size == 0 or a.ndim < 2:
            return None
        flat = a.reshape(-1, a.shape[-1])
        finite = np.isfinite(flat)
        lo = np.min(np.where(finite, flat, np.inf), axis=0)
        hi = np.max(np.where(finite, flat, -np.inf), axis=0)
        return lo, hi, a.ndim - 2  # the tensor's last axis (the array has a sample axis)

    def merge(self, name: str, part) -> None:  # type: ignore[override]
        old = self.channel.get(name)
        if old is not None and old[0].shape == part[0].shape:
            part = (np.minimum(old[0], part[0]), np.maximum(old[1], part[1]), part[2])
        self.channel[name] = part

    def stats(self) -> dict[str, Range]:
        out = {}
        for n, (lo, hi, axis) in sorted(self.channel.items()):
            bad = ~(np.isfinite(lo) & np.isfinite(hi))
            lo, hi = np.where(bad, 0.0, lo), np.where(bad, 0.0, hi)
            out[n] = Range(tuple(float(v) for v in lo), tuple(float(v) for v in hi), axis)
        return out

    def warnings(self) -> list[str]:
        return []


def attach_ranges(module: ModuleOp, ranges: Mapping[str, Range]) -> int:
    """Attach per-channel ranges (tensor name -> per-axis Range) to the defining ops of the
    tensors smooth-quant can smooth; returns how many got one."""
    n = 0
    for site in sites(module):
        name = value_name(site.y)
        r = lookup(ranges, site.y, name) if name else None
        if r is None or r.axis < 0 or len(r.mins) != site.channels:
            continue
        site.y.owner.attributes[RANGE] = quant.CalibrationStatsAttr.make(r.mins, r.maxs, r.axis)  # type: ignore[union-attr]
        n += 1
    return n


def channel_ranges(module: ModuleOp, data: object, **calibrate_options: object) -> dict[str, Range]:
    """Per-channel ranges of the tensors smooth-quant can smooth, over the calibration data
    (one float run of the model; the tensors' names as calibration keys them)."""
    from tflquant.calibration.driver import calibrate, shared_names
    from tflquant.calibration.stats import qualified_name

    names = {n for site in sites(module) if (n := value_name(site.y)) is not None}
    if not names:
        return {}
    functions = [f.sym_name.data for f in module.ops if isinstance(f, func.FuncOp)]
    names |= {qualified_name(fn, n) for n in names & shared_names(module) for fn in functions}
    obs = ChannelRangeObserver(names=frozenset(names))
    return calibrate(module, data, observer=obs, channel_means=False, histograms=False, **calibrate_options).stats  # type: ignore[arg-type]
