"""Calibration statistics files: JSON keyed by TFLite tensor name.

    {
      "format": "tflquant-calibration-stats",
      "version": 1,
      "tensors": {
        "conv1": {"min": -1.5, "max": 6.0},
        "dense": {"axis": 1, "min": [-1.0, -2.0], "max": [1.0, 2.0]},
        "pool": {"min": 0.0, "max": 4.0, "mean": [0.5, 1.25]}
      }
    }

The reader also takes the bare mapping (`{"conv1": {"min": .., "max": ..}}`) and
`[min, max]` pairs, so a hand-written file for a test stays short. The optional "mean" is the
tensor's per-channel mean over the calibration data (mean over every axis but the last, one
value per last-axis index); calibration records it for the inputs of CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED, with "mean_sq" (per-channel mean of squares).
`annotate-calibration{stats-file=PATH}` reads these files and attaches every statistic to
the IR (ranges as quant.stats ops, the moments as the layers' `input_moments` that
`correct-bias` and `clip-weights` read); the driver writes one with `--save-stats` and
hands the same statistics over in memory (`run_pipeline(..., stats=...)`). Nothing here
is process-wide state: statistics travel as values.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tflquant.errors import TflquantError

FORMAT = "tflquant-calibration-stats"


@dataclass(frozen=True)
class Range:
    """A calibrated range: per tensor (axis -1, one min and max) or per axis; `mean`, when
    recorded, is the per-channel (last axis) mean of the tensor over the calibration data."""

    mins: tuple[float, ...]
    maxs: tuple[float, ...]
    axis: int = -1
    mean: tuple[float, ...] | None = None
    mean_sq: tuple[float, ...] | None = None  # per-channel mean of squares, with `mean`

    @staticmethod
    def of(lo: float, hi: float) -> Range:
        return Range((float(lo),), (float(hi),))

    def to_json(self) -> dict[str, Any]:
        if self.axis < 0:
            out: dict[str, Any] = {"min": self.mins[0], "max": self.maxs[0]}
        else:
            out = {"axis": self.axis, "min": list(self.mins), "max": list(self.maxs)}
        if self.mean is not None:
            out["mean"] = list(self.mean)
        if self.mean_sq is not None:
            out["mean_sq"] = list(self.mean_sq)
        return out


Stats = dict[str, Range]


def qualified_name(function: str, name: str) -> str:
    """The statistics key of tensor `name` in `function` when several functions (signatures)
    have a tensor of that name: '@function/name'. Calibration records such tensors under
    this key only, so one signature's ranges never quantize another signature's tensor."""
    return f"@{function}/{name}"


def function_of(v: Any) -> str | None:
    """The name of the func.func a value (SSA value) belongs to."""
    from xdsl.dialects import func
    from xdsl.ir import Block

    owner = v.owner
    op = owner.parent_op() if isinstance(owner, Block) else owner
    while op is not None and not isinstance(op, func.FuncOp):
        op = op.parent_op()
    return op.sym_name.data if op is not None else None


def lookup(stats: Mapping[str, Range], v: Any, name: str) -> Range | None:
    """The range of value `v` (TFLite tensor `name`): its function-qualified entry, else
    the plain one."""
    fn = function_of(v)
    if fn is not None and (r := stats.get(qualified_name(fn, name))) is not None:
        return r
    return stats.get(name)


def as_stats(data: Mapping[str, Any]) -> Stats:
    """Normalize an in-memory mapping (name -> Range | (min, max) | {"min","max"[,"axis"]})."""
    return {str(k): _range(str(k), v, "stats") for k, v in data.items()}


def _range(name: str, v: Any, where: str) -> Range:
    if isinstance(v, Range):
        r = v
    elif isinstance(v, Mapping):
        if "min" not in v or "max" not in v:
            raise TflquantError(f"{where}: tensor '{name}' needs both 'min' and 'max'")
        axis = int(v.get("axis", -1))
        lo, hi = v["min"], v["max"]
        if axis >= 0:
            if not isinstance(lo, list) or not isinstance(hi, list) or len(lo) != len(hi) or not lo:
                raise TflquantError(f"{where}: tensor '{name}' has axis {axis}, so 'min' and 'max' must be lists of equal length")
            r = Range(tuple(map(float, lo)), tuple(map(float, hi)), axis)
        else:
            r = Range.of(_num(lo, name, where), _num(hi, name, where))
        if "mean" in v:
            m = v["mean"]
            if not isinstance(m, list) or not m:
                raise TflquantError(f"{where}: tensor '{name}': 'mean' must be a non-empty list of numbers (one per channel)")
            mean = tuple(_num(x, name, where) for x in m)
            if not all(math.isfinite(x) for x in mean):
                raise TflquantError(f"{where}: tensor '{name}' has a non-finite mean")
            mean_sq = None
            if "mean_sq" in v:
                q = v["mean_sq"]
                if not isinstance(q, list) or len(q) != len(mean):
                    raise TflquantError(f"{where}: tensor '{name}': 'mean_sq' must be a list as long as 'mean'")
                mean_sq = tuple(_num(x, name, where) for x in q)
                if not all(math.isfinite(x) and x >= 0 for x in mean_sq):
                    raise TflquantError(f"{where}: tensor '{name}' has a negative or non-finite mean_sq")
            r = Range(r.mins, r.maxs, r.axis, mean, mean_sq)
    elif isinstance(v, (list, tuple)) and len(v) == 2:
        r = Range.of(_num(v[0], name, where), _num(v[1], name, where))
    else:
        raise TflquantError(f"{where}: tensor '{name}': expected {{\"min\": .., \"max\": ..}} or [min, max], got {v!r}")
    for lo, hi in zip(r.mins, r.maxs):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise TflquantError(f"{where}: tensor '{name}' has a non-finite range [{lo}, {hi}]")
        if lo > hi:
            raise TflquantError(f"{where}: tensor '{name}' has min {lo} greater than max {hi}")
    return r


def _num(x: Any, name: str, where: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TflquantError(f"{where}: tensor '{name}': {x!r} is not a number") from None


def stats_to_json(stats: Mapping[str, Range]) -> str:
    body = {"format": FORMAT, "version": 1, "tensors": {k: stats[k].to_json() for k in sorted(stats)}}
    return json.dumps(body, indent=1) + "\n"


def write_stats(path: str | os.PathLike[str], stats: Mapping[str, Range]) -> None:
    from tflquant.fileio import atomic_write

    atomic_write(path, stats_to_json(stats))


def read_stats(path: str | os.PathLike[str]) -> Stats:
    from tflquant.fileio import read_bytes

    where = os.fspath(path)
    text = read_bytes(path, "calibration stats file")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TflquantError(f"{where}: not a JSON calibration stats file: {e}") from None
    if not isinstance(data, dict):
        raise TflquantError(f"{where}: expected a JSON object keyed by tensor name")
    if "tensors" in data and isinstance(data["tensors"], dict):
        if data.get("format", FORMAT) != FORMAT:
            raise TflquantError(f"{where}: unknown stats format {data.get('format')!r}")
        data = data["tensors"]
    return {str(k): _range(str(k), v, where) for k, v in data.items()}
