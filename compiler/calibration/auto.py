"""`auto` calibration: a range method per tensor, picked by its measured effect on the outputs.

    calib = calibrate_keeping(module, data, ...)      # calibrate() + the samples to measure on
    stats, result = auto_calibrate(module, calib, quantize_with, budget=40)
    result.methods                                    # tensor -> method

Each trial quantizes the model with one assignment of ranges (the driver's `quantize_with`:
the real pass pipeline) and runs it with LiteRT's integer kernels (tflquant.reference) on
MEASURE_SAMPLES calibration samples, evenly spread, against the float model. So a trial sees
what LiteRT will compute, scale constraints and fixed output scales included. The score
is each output's SQNR per sample, averaged over the samples (several outputs: the worst one
plus a tenth of their mean); the report also gives the SQNR over all the samples, as
../shared/tools/score.py computes it. Per sample, because pooled energies let the few
samples with extreme values decide: on the detection benchmark (benchmarks/detection.py)
crops with glare reach logits of -2900 and hold nearly all the energy, so every range that
keeps them scores well pooled while the crops without glare (most photographs) lose to
an int8 step of 11.

The search, deterministic for a given budget (a number of models measured, not seconds:
the same inputs give the same model on any machine):
1. every whole-model method (minmax, percentile at the user's p, mse, entropy,
   moving-average, then percentile 99.9 and 99; a method whose ranges equal an earlier
   one's is not measured again); the best is the start (ties: the earlier in that order);
2. coordinate search over the tensors whose candidate ranges differ (and whose
   quantization parameters differed in the whole-model trials: a range a scale constraint
   overrides is not tried), the widest disagreement first (|log| of the ratio of range
   widths: tensors with rare outliers). Candidates per tensor: each method's range, and
   each method's cut of one tail with min/max at the other end (outliers often sit on one
   side: a detector's background logits); the MAX_ALTERNATIVES narrowest that differ are
   tried. A change is kept when it raises the score by more than MIN_GAIN_DB and loses on
   neither half of the measured samples (a change that helps some samples only is noise,
   not a better range). A trial whose quantized model has the parameters of an earlier one
   (the same scale constraint ties both tensors) is not run again and not counted.

Measured on the calibration samples themselves, not a held-out slice of them. Both were
tried on ../shared/models (int8, eval.npz): holding out a third of the samples let 32
samples decide, which picked mse for tiny_transformer (-1.4 dB against minmax on
eval.npz) and percentile plus one tensor for digits_cnn (-3 dB); a 2-fold split
underestimated every method by 13 dB on tiny_transformer (tokens of one half missing from
the other half's embedding ranges). On the samples themselves the search sees the ranges
the model will have, and the half-split rule above guards the per-tensor changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tflquant.calibration.stats import DEFAULT_PERCENTILE, METHODS, Range, Stats, method_range
from tflquant.errors import TflquantError

ORDER = ("minmax", "percentile", "mse", "entropy", "moving-average")  # trial order = tie preference
assert set(ORDER) == set(METHODS)
# further candidates: the percentile method at these p (a label "percentile 99.9"), when
# they differ from the user's --percentile
EXTRA_PERCENTILES = (99.9, 99.0)


def labels(percentile: float = DEFAULT_PERCENTILE) -> tuple[str, ...]:
    """The candidate methods in trial order: ORDER, then the extra percentiles."""
    return ORDER + tuple(f"percentile {p:g}" for p in EXTRA_PERCENTILES if p != float(percentile))


def method_of(label: str, percentile: float = DEFAULT_PERCENTILE) -> tuple[str, float]:
    """(method, percentile) of a candidate label (a one-sided label: its method's)."""
    label = label.removesuffix(" (low end)").removesuffix(" (high end)")
    if label.startswith("percentile "):
        return "percentile", float(label.split()[1])
    return label, float(percentile)
DEFAULT_BUDGET = 40  # trials (candidate models measured on the held-out samples)
MEASURE_SAMPLES = 32  # calibration samples each candidate model runs (evenly spread)
MAX_ALTERNATIVES = 4  # candidate ranges tried per tensor in the coordinate search
MIN_GAIN_DB = 0.25  # a per-tensor change must raise the score by more than this (0.05 let digits_cnn take a +0.1 dB change that cost 0.4 dB on eval.npz)


def _sums(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signal energy, error energy) of one output, per sample, in float64."""
    r = np.asarray(ref, np.float64).reshape(len(ref), -1)
    e = np.sum((r - np.asarray(got, np.float64).reshape(len(ref), -1)) ** 2, axis=1)
    return np.sum(r**2, axis=1), np.where(np.isfinite(e), e, np.inf)


def _sample_db(signal: np.ndarray, error: np.ndarray) -> float:
    """The mean over samples of each sample's SQNR (dB, within [-99, 99])."""
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(np.maximum(signal, 1e-30) / error)
    db = np.where(error == 0, 99.0, np.where(np.isfinite(error), db, -99.0))
    return float(np.mean(np.clip(db, -99.0, 99.0))) if len(db) else 99.0


def sqnr_db(signal: float, error: float) -> float:
    """10 log10(signal / error) as ../shared/tools/score.py computes it; 99 when exact."""
    if error == 0:
        return 99.0
    if not math.isfinite(error):
        return -99.0
    return float(10 * np.log10(max(signal, 1e-30) / error))


def score(sqnrs: Sequence[float]) -> float:
    """A trial's score from its per-output figures: the worst output first."""
    return min(sqnrs) + 0.1 * float(np.mean(sqnrs))


@dataclass
class Trial:
    label: str  # "mse" (whole model) or "tensor 'x' -> percentile"
    sqnr_db: list[float]  # per float output, over the measured samples (as score.py computes it)
    sample_db: list[float]  # per float output, the mean of each sample's SQNR: what the score reads
    half_scores: list[float] = field(default_factory=list)  # the score on each half of the samples
    kept: bool = False  # the search took it

    @property
    def score(self) -> float:
        return score(self.sample_db)


@dataclass
class AutoResult:
    methods: dict[str, str]  # tensor -> method (every per-tensor range of the statistics)
    start: str  # the best whole-model method
    trials: list[Trial] = field(default_factory=list)
    budget: int = DEFAULT_BUDGET
    samples: int = 0  # calibration samples each trial ran
    seconds: float = 0.0
    measured: int = 0  # trials whose model ran (the others had the parameters of an earlier one)

    @property
    def best(self) -> Trial:
        kept = [t for t in self.trials if t.kept]
        return kept[-1] if kept else self.trials[0]

    def changed(self) -> dict[str, str]:
        """The tensors whose method is not the start method."""
        return {k: m for k, m in sorted(self.methods.items()) if m != self.start}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.methods.values():
            out[m] = out.get(m, 0) + 1
        return {m: out[m] for m in sorted(out, key=lambda m: (m not in ORDER, ORDER.index(m) if m in ORDER else 0, m))}

    def lines(self, limit: int = 12) -> list[str]:
        """The report's text: the start, each whole-model trial, the tensors moved off it."""
        whole = ", ".join(f"{t.label} {_db(t.sample_db)}" for t in self.trials if " -> " not in t.label)
        out = [
            f"auto: {self.measured} of {self.budget} models measured ({len(self.trials)} trials) on {self.samples} calibration samples, {self.seconds:.2f}s; "
            f"whole model (dB per sample): {whole}",
            f"auto: start {self.start}, result {_db(self.best.sample_db)} dB per sample ({_db(self.best.sqnr_db)} dB over all); "
            + ", ".join(f"{m} {n}" for m, n in self.counts().items()) + " tensor(s)",
        ]
        changed = list(self.changed().items())
        for k, m in changed[:limit]:
            out.append(f"  {k}: {m}")
        if len(changed) > limit:
            out.append(f"  ... {len(changed) - limit} more (the report's calibration_methods has every tensor)")
        return out


def _db(v: Sequence[float]) -> str:
    return "/".join(f"{x:.2f}" for x in v)


def candidates(stats: Mapping[str, Range], percentile: float = DEFAULT_PERCENTILE, bits: int = 8) -> dict[str, dict[str, tuple[float, float]]]:
    """tensor -> method -> (lo, hi), for every per-tensor range; a method that lacks what it
    needs (no histogram) gives the minmax range."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for k in sorted(stats):
        r = stats[k]
        if r.axis >= 0:
            continue
        mm = (min(r.mins[0], 0.0), max(r.maxs[0], 0.0))
        c = out[k] = {}
        for label in labels(percentile):
            m, p = method_of(label, percentile)
            c[label] = mm if m == "minmax" else method_range(r, m, p, bits) or mm
        # one-sided: a method's cut of one tail, the other end min/max (outliers are often
        # on one side only: a detector's background logits, a ReLU's positive tail)
        for label in labels(percentile)[1:]:
            c[f"{label} (low end)"] = (c[label][0], mm[1])
            c[f"{label} (high end)"] = (mm[0], c[label][1])
    return out


def with_ranges(stats: Mapping[str, Range], ranges: Mapping[str, tuple[float, float]], methods: Mapping[str, str] | None = None) -> Stats:
    """The statistics with the given per-tensor ranges (recorded in `chosen`)."""
    out: Stats = dict(stats)
    for k, (lo, hi) in ranges.items():
        m = methods.get(k, "minmax") if methods is not None else "minmax"
        out[k] = replace(stats[k], mins=(float(lo),), maxs=(float(hi),), chosen=(m, float(lo), float(hi)))
    return out


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Two ranges give the same quantization, or nearly (within 1e-4 of the wider's width)."""
    w = max(a[1] - a[0], b[1] - b[0], 1e-30)
    return abs(a[0] - b[0]) <= 1e-4 * w and abs(a[1] - b[1]) <= 1e-4 * w


def _spread(cur: tuple[float, float], alt: tuple[float, float]) -> float:
    return abs(math.log(max(alt[1] - alt[0], 1e-30) / max(cur[1] - cur[0], 1e-30)))


def search(
    stats: Mapping[str, Range],
    measure: Callable[[Stats], tuple[Any, Mapping[str, str] | None]],
    reference: Sequence[np.ndarray],
    *,
    budget: int = DEFAULT_BUDGET,
    percentile: float = DEFAULT_PERCENTILE,
    bits: int = 8,
) -> AutoResult:
    """Pick a method per tensor (see the module docstring). `measure(stats)` -> (the
    quantized model's outputs on the measured samples, or a function returning them; a
    fingerprint of its quantization parameters: tensor name -> text); `reference`: the
    float model's outputs there (non-float outputs are not scored). A trial whose model
    has the parameters of an earlier trial's is not run again (its tensor's range is
    overridden by a scale constraint): it scores the same."""
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise TflquantError(f"calibration budget must be a positive number of trials, got {budget!r}")
    t0 = time.perf_counter()
    scored = [i for i, r in enumerate(reference) if np.asarray(r).dtype.kind == "f"]
    if not scored:
        raise TflquantError("calibration method auto scores the model's float outputs, and this model has none: choose a fixed method")
    n = len(reference[scored[0]])
    halves = [slice(0, n // 2), slice(n // 2, n)] if n >= 2 else [slice(0, n)]
    cand = candidates(stats, percentile, bits)
    trials: list[Trial] = []
    seen_params: dict[Any, list[list[tuple[float, float]]]] = {}
    params_of: dict[str, Mapping[str, str]] = {}  # whole-model trial -> tensor -> parameters
    measured, built = [0], [0]  # models run on the samples; models quantized

    def spent() -> bool:
        """The budget counts the models measured; a trial whose model has the parameters of
        an earlier one costs a quantization only (at most 3 x budget of those)."""
        return measured[0] >= budget or built[0] >= 3 * budget

    def run(methods: Mapping[str, str], label: str) -> Trial:
        ranges = {k: cand[k][m] for k, m in methods.items()}
        outs, params = measure(with_ranges(stats, ranges, methods))
        key = tuple(sorted(params.items())) if params is not None else len(trials)
        built[0] += 1
        if key not in seen_params:
            measured[0] += 1
            outs = outs() if callable(outs) else outs
            seen_params[key] = [_sums(reference[i], outs[i]) for i in scored]
        sums = seen_params[key]
        pooled = [round(sqnr_db(float(sig.sum()), float(err.sum())), 4) for sig, err in sums]
        per_sample = [round(_sample_db(sig, err), 4) for sig, err in sums]
        halved = [round(score([_sample_db(sig[h], err[h]) for sig, err in sums]), 4) for h in halves]
        t = Trial(label, pooled, per_sample, halved)
        trials.append(t)
        params_of[label] = params or {}
        return t

    # 1. whole-model methods
    best: tuple[Trial, str] | None = None
    seen: dict[str, dict[str, tuple[float, float]]] = {}
    for m in labels(percentile):
        if spent() and best is not None:
            break
        ranges = {k: c[m] for k, c in cand.items()}
        twin = next((a for a, r in seen.items() if all(_same(ranges[k], r[k]) for k in ranges)), None)
        if twin is not None:
            params_of[m] = params_of.get(twin, {})
            continue
        seen[m] = ranges
        t = run({k: m for k in cand}, m)
        if best is None or t.score > best[0].score:
            best = (t, m)
    assert best is not None
    current, start = best
    current.kept = True
    methods = {k: start for k in cand}

    def differs(k: str, m: str) -> bool:
        """Did tensor k get other parameters under method m than under the start method?"""
        a, b = params_of.get(m), params_of.get(start)
        return not a or not b or a.get(k) != b.get(k)

    # 2. coordinate search, widest disagreement first
    order = []
    for k, c in cand.items():
        alts = [m for m in _alternatives(c, start) if differs(k, m)]
        if alts:
            order.append((-max(_spread(c[start], c[m]) for m in alts), k, alts))
    order.sort()
    for _, k, alts in order:
        if spent():
            break
        best_alt: tuple[Trial, str] | None = None
        for m in alts:
            if spent():
                break
            t = run({**methods, k: m}, f"tensor '{k}' -> {m}")
            if best_alt is None or t.score > best_alt[0].score:
                best_alt = (t, m)
        # kept when the score gains and neither half of the samples loses: a change that
        # helps some samples only is noise, not a better range
        if best_alt is not None and best_alt[0].score > current.score + MIN_GAIN_DB and all(
            a >= b for a, b in zip(best_alt[0].half_scores, current.half_scores)
        ):
            current = best_alt[0]
            current.kept = True
            methods[k] = best_alt[1]
    return AutoResult(methods, start, trials, budget, 0, time.perf_counter() - t0, measured[0])


def _alternatives(c: Mapping[str, tuple[float, float]], current: str) -> list[str]:
    """The candidates whose range for this tensor differs from the current one's and from
    every earlier alternative's, narrowest first (the ones that cut outliers), at most
    MAX_ALTERNATIVES."""
    out: list[str] = []
    for m in c:
        if m != current and not _same(c[m], c[current]) and not any(_same(c[m], c[a]) for a in out):
            out.append(m)
    out.sort(key=lambda m: (c[m][1] - c[m][0], list(c).index(m)))
    return out[:MAX_ALTERNATIVES]


def apply(stats: Mapping[str, Range], methods: Mapping[str, str], percentile: float = DEFAULT_PERCENTILE, bits: int = 8) -> Stats:
    """The statistics with each tensor's range from its method (all samples' statistics)."""
    cand = candidates(stats, percentile, bits)
    picked = {k: cand[k][methods.get(k, "minmax")] for k in cand}
    return with_ranges(stats, picked, {k: methods.get(k, "minmax") for k in cand})


# ---------------------------------------------------------------------------------------
# Calibration with a held-out slice, and the driver's side of a trial
# ---------------------------------------------------------------------------------------


@dataclass
class AutoCalibration:
    """calibrate()'s result plus the samples the search measures on."""

    stats: Stats
    samples: int
    batches: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    per_entry: dict[str, int] = field(default_factory=dict)
    inputs: list[np.ndarray] = field(default_factory=list)  # the measured samples, stacked per input
    func_name: str = ""  # the function they run


def calibrate_keeping(module: Any, data: Any, *, where: str = "calibration data", max_samples: int | None = None, **kwargs: Any) -> AutoCalibration:
    """calibrate() with histograms, keeping MEASURE_SAMPLES of the samples (evenly spread,
    in order) for the search to measure its candidates on."""
    from tflquant.calibration.calibrate import _plan, _resource_op, calibrate

    if any(_resource_op(op) for op in module.walk()):
        raise TflquantError("calibration method auto does not support models with resource variables (state between runs): choose a fixed method")
    plan = _plan(module, data, where)
    if len(plan) != 1:
        raise TflquantError(
            f"{where}: calibration method auto measures one entry point, and the data feeds {len(plan)} signatures: "
            "choose a fixed method (or give data for one signature)"
        )
    entry, _, it = plan[0]
    samples: list[list[np.ndarray]] = []
    for s in it:
        if max_samples is not None and len(samples) >= max_samples:
            break
        samples.append(s)
    kwargs["histograms"] = True
    res = calibrate(module, samples, where=where, **kwargs)
    n = len(samples)
    keep = np.unique(np.linspace(0, n - 1, min(n, MEASURE_SAMPLES)).round().astype(np.int64))
    inputs = [np.stack([samples[k][i] for k in keep]) for i in range(len(entry.specs))]
    return AutoCalibration(res.stats, res.samples, res.batches, res.seconds, res.warnings, res.per_entry, inputs, entry.fn.sym_name.data)


def run_quantized(module: Any, func_name: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A quantized module's outputs (float: integer outputs dequantized) for float inputs
    (quantized for integer inputs), with LiteRT's integer kernels."""
    from xdsl.dialects import func

    from tflquant.dialects.quant import quantized_element
    from tflquant.quant_math import dequantize, quantize
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    fn = next((f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == func_name), None)
    if fn is None:
        raise TflquantError(f"the quantized model has no function '{func_name}'")
    args = []
    for a, x in zip(fn.body.blocks[0].args, inputs):
        q = quantized_element(a.type)
        args.append(quantize(x, q) if q is not None and np.asarray(x).dtype.kind == "f" else x)
    outs = IntegerInterpreter(fn).run(args)
    res = []
    for t, y in zip(fn.function_type.outputs.data, outs):
        q = quantized_element(t)
        res.append(dequantize(y, q) if q is not None else y)
    return res


def _trial(module: Any, func_name: str, inputs: Sequence[np.ndarray]) -> tuple[Callable[[], list[np.ndarray]], dict[str, str]]:
    """(outputs, when asked; each named tensor's quantized type as text)."""
    from tflquant.dialects.quant import quantized_element
    from tflquant.ir import value_name

    params = {}
    for op in module.walk():
        for r in op.results:
            q = quantized_element(r.type)
            name = value_name(r) if q is not None else None
            if name is not None:
                params[name] = str(q)
    return (lambda: run_quantized(module, func_name, inputs)), params


def auto_calibrate(
    module: Any,
    calib: AutoCalibration,
    quantize_with: Callable[[Stats], Any],
    *,
    budget: int | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    bits: int = 8,
) -> tuple[Stats, AutoResult]:
    """The search on a calibration: `quantize_with(stats)` -> the quantized module (a fresh
    copy per call). Returns the statistics with the picked ranges."""
    from tflquant.reference.interpreter import Interpreter

    reference = Interpreter(module, stateful=True).run(calib.inputs, func_name=calib.func_name)
    result = search(
        calib.stats,
        lambda st: _trial(quantize_with(st), calib.func_name, calib.inputs),
        reference,
        budget=DEFAULT_BUDGET if budget is None else budget,
        percentile=percentile,
        bits=bits,
    )
    result.samples = len(calib.inputs[0]) if calib.inputs else 0
    return apply(calib.stats, result.methods, percentile, bits), result
