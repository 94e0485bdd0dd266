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

The budget (`calibration_budget`): a number of models measured (default 40), seconds
('90s'), or both ('40,90s'). A number of models is deterministic: the same inputs give the
same model on any machine; seconds are not (a faster machine measures more).

The search:
1. every whole-model method (minmax, percentile at the user's p, mse, entropy,
   moving-average, percentile 99.9 and 99, then the sample quantiles 90 and 50: the
   q-quantile of the per-sample maxima and the (100-q)-quantile of the minima, which cut a
   value fewer than 1-q of the samples reach, however many values it has in them; a method
   whose ranges equal an earlier one's is not measured again); the best is the start
   (ties: the earlier in that order);
2. groups of tensors moved from the start to another whole-model method (the runner-up
   first): the tensors whose quantization parameters that method changes, in the model's
   op order, halved (the early and the late layers: all of them together is the whole-model
   trial, already measured); a group that does not win is halved again, its halves tried
   after every group of its size, breadth first while the budget lasts.
   A group is kept when it raises the score by more than MIN_GAIN_DB and loses on neither
   half of the measured samples (a change that helps some samples only is noise, not a
   better range). A trial whose quantized model has the parameters of an earlier one (a
   scale constraint ties the tensors) is not run again and not counted;
3. confirmation: when the search kept per-tensor changes, the start and each kept step are
   scored on up to MEASURE_SAMPLES other calibration samples, in order; the answer is the
   last step of the run of steps that each gain there (a later step was chosen given the
   one that did not confirm). On ../shared/models: tiny_transformer's first step (14
   tensors to mse / entropy, +2.0 dB on the measured samples) scored -1.4 dB on the others
   (the model it led to: -0.05 dB on eval.npz); digits_cnn's (2 tensors to percentile,
   +1.8 dB) +0.6 dB there and +0.27 dB on eval.npz.

What a trial costs: one quantization and the integer kernels on the samples, never the
float model (its outputs are computed once). A trial runs the first half of the samples,
and the second only when the first does not lose to the current model (a trial that loses
on a half cannot be kept; a whole-model method: not by more than WHOLE_MARGIN_DB, as it
could still be the best one). Ops whose parameters and operands equal those of the last or the
current model are not run again (RunCache): a group of late layers reruns the late layers.

Measured on the calibration samples themselves, not a held-out slice of them, for the
choice (step 1 and 2). Both were tried on ../shared/models (int8, eval.npz): holding out a
third of the samples let 32 samples decide, which picked mse for tiny_transformer (-1.4 dB
against minmax on eval.npz) and percentile plus one tensor for digits_cnn (-3 dB); a 2-fold
split underestimated every method by 13 dB on tiny_transformer (tokens of one half missing
from the other half's embedding ranges). On the samples themselves the search sees the
ranges the model will have; other samples only confirm (step 3). The mean of per-sample
SQNRs was kept over their median and 10% / 25% trimmed means: on the detection benchmark
and digits_cnn all four rank the whole-model methods in the same order (the order of
eval.npz), and with trimmed means no per-tensor change wins on the detector either.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from xdsl.ir import BlockArgument

from tflquant.calibration.stats import DEFAULT_PERCENTILE, METHODS, Range, Stats, method_range
from tflquant.dialects import tfl
from tflquant.errors import TflquantError

ORDER = ("minmax", "percentile", "mse", "entropy", "moving-average")  # trial order = tie preference
assert set(ORDER) == set(METHODS)
# further candidates: the percentile method at these p (a label "percentile 99.9"), when
# they differ from the user's --percentile
EXTRA_PERCENTILES = (99.9, 99.0)


# and ranges robust to rare outlier samples: the q-quantile of the per-sample maxima (and
# the (1-q)-quantile of the minima): a value that fewer than 1-q of the samples reach is cut
# whatever its share of the values (a detector's glare crops: 20% of the samples, a few
# anchors each)
SAMPLE_QUANTILES = (90.0, 50.0)


def labels(percentile: float = DEFAULT_PERCENTILE) -> tuple[str, ...]:
    """The candidate methods in trial order: ORDER, the extra percentiles, the sample quantiles."""
    return (ORDER + tuple(f"percentile {p:g}" for p in EXTRA_PERCENTILES if p != float(percentile))
            + tuple(f"sample-quantile {q:g}" for q in SAMPLE_QUANTILES))


def _sample_quantile(r: Range, q: float) -> tuple[float, float] | None:
    """(lo, hi): the (100-q)-th percentile of the per-sample minima, the q-th of the maxima."""
    if r.sample_min is None or r.sample_max is None:
        return None
    lo_s = np.asarray(r.sample_min, np.float64)
    hi_s = np.asarray(r.sample_max, np.float64)
    lo_s, hi_s = lo_s[np.isfinite(lo_s)], hi_s[np.isfinite(hi_s)]
    if not len(lo_s) or not len(hi_s):
        return None
    lo = max(float(np.percentile(lo_s, 100 - q, method="inverted_cdf")), r.mins[0])
    hi = min(float(np.percentile(hi_s, q, method="inverted_cdf")), r.maxs[0])
    return min(lo, 0.0), max(hi, 0.0)


def _halves(n: int) -> list[slice]:
    """The two halves of n samples that trials are measured and confirmed on (one for n < 2):
    search() and _trial() must cut them alike."""
    return [slice(0, n // 2), slice(n // 2, n)] if n >= 2 else [slice(0, n)]


def method_of(label: str, percentile: float = DEFAULT_PERCENTILE) -> tuple[str, float]:
    """(method, percentile) of a candidate label (a one-sided label: its method's)."""
    label = label.removesuffix(" (low end)").removesuffix(" (high end)")
    if label.startswith("percentile "):
        return "percentile", float(label.split()[1])
    return label, float(percentile)
DEFAULT_BUDGET = 40  # trials (candidate models measured on the calibration samples)
MAX_MODELS = 10_000  # a budget in seconds only: at most this many models
MEASURE_SAMPLES = 32  # calibration samples each candidate model runs (evenly spread)
WHOLE_MARGIN_DB = 6.0  # a whole-model method this far below the best on the first half of the samples is not run on the second
MIN_CONFIRM_SAMPLES = 8  # fewer other calibration samples: per-tensor changes are not confirmed
MIN_GAIN_DB = 0.25  # a per-tensor change must raise the score by more than this (0.05 let digits_cnn take a +0.1 dB change that cost 0.4 dB on eval.npz)


def _sums(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signal energy, error energy) of one output, per sample, in float64."""
    r = np.asarray(ref, np.float64).reshape(len(ref), -1)
    e = np.sum((r - np.asarray(got, np.float64).reshape(len(ref), -1)) ** 2, axis=1)
    return np.sum(r**2, axis=1), np.where(np.isfinite(e), e, np.inf)


def _sample_dbs(signal: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Each sample's SQNR (dB, within [-99, 99]; 99 where exact)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(np.maximum(signal, 1e-30) / error)
    db = np.where(error == 0, 99.0, np.where(np.isfinite(error), db, -99.0))
    return np.clip(db, -99.0, 99.0)


def _sample_db(signal: np.ndarray, error: np.ndarray) -> float:
    """The mean over samples of each sample's SQNR (dB, within [-99, 99])."""
    return float(np.mean(_sample_dbs(signal, error))) if len(signal) else 99.0


def per_sample_sqnr(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """One output's SQNR per sample (dB, within [-99, 99]): what auto's scores average."""
    return _sample_dbs(*_sums(ref, got))


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
    partial: bool = False  # measured on the first half of the samples only (it lost there)
    methods: dict[str, str] | None = None  # kept trials: the assignment (tensor -> method)
    confirm_score: float | None = None  # kept trials: the score on the confirmation samples

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
    seconds_budget: float | None = None  # the budget's seconds, when it had some
    reused: tuple[int, int] = (0, 0)  # op results reused from earlier models, of all op runs
    confirm_samples: int = 0  # calibration samples (not among the measured ones) the kept mixes were confirmed on
    picked: Trial | None = None  # the kept trial whose assignment `methods` is (None: the last kept)

    @property
    def kept(self) -> list[Trial]:
        return [t for t in self.trials if t.kept]

    @property
    def best(self) -> Trial:
        if self.picked is not None:
            return self.picked
        kept = self.kept
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
        whole = ", ".join(f"{t.label} {_db(t.sample_db)}{' (first half)' if t.partial else ''}" for t in self.trials if " -> " not in t.label)
        out = [
            f"auto: {self.measured}{'' if self.budget >= MAX_MODELS else f' of {self.budget}'} models measured ({len(self.trials)} trials) on {self.samples} calibration samples, {self.seconds:.2f}s"
            + (f" of {self.seconds_budget:g}s" if self.seconds_budget is not None else "")
            + (f" ({self.reused[0]} of {self.reused[1]} op runs reused)" if self.reused[1] else "") + "; "
            f"whole model (dB per sample): {whole}",
            f"auto: start {self.start}, result {_db(self.best.sample_db)} dB per sample ({_db(self.best.sqnr_db)} dB over all); "
            + ", ".join(f"{m} {n}" for m, n in self.counts().items()) + " tensor(s)",
        ]
        kept = self.kept
        if self.confirm_samples and len(kept) > 1:
            out.append(
                f"auto: steps confirmed on {self.confirm_samples} other calibration samples (score): "
                + ", ".join(f"{'start' if i == 0 else f'step {i}'} {t.confirm_score:.2f}" + (" (picked)" if t is self.best else "")
                            for i, t in enumerate(kept) if t.confirm_score is not None)
            )
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
            if label.startswith("sample-quantile "):
                c[label] = _sample_quantile(r, float(label.split()[1])) or mm
                continue
            m, p = method_of(label, percentile)
            c[label] = mm if m == "minmax" else method_range(r, m, p, bits) or mm
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


def parse_budget(budget: int | str | None) -> tuple[int, float | None]:
    """(models, seconds) of a calibration budget: a number of candidate models (int, or a
    string of digits), seconds ('90s'), or both ('40,90s': whichever runs out first).
    Seconds make the result depend on the machine's speed; a number of models does not."""
    if budget is None:
        return DEFAULT_BUDGET, None
    models: int | None = None
    seconds: float | None = None
    ok = True
    if isinstance(budget, int) and not isinstance(budget, bool):
        models = budget
    elif isinstance(budget, str) and budget.strip():
        for part in budget.replace(" ", "").split(","):
            try:
                if part.endswith("s") and seconds is None:
                    seconds = float(part[:-1])
                    ok = ok and math.isfinite(seconds) and seconds > 0
                elif part.isdigit() and models is None:
                    models = int(part)
                else:
                    ok = False
            except ValueError:
                ok = False
    else:
        ok = False
    if not ok or (models is not None and models < 1) or (models is None and seconds is None):
        raise TflquantError(
            f"calibration budget must be a positive number of trials (candidate models), seconds ('90s') or both ('40,90s'), got {budget!r}"
        )
    return (models if models is not None else MAX_MODELS), seconds


def search(
    stats: Mapping[str, Range],
    measure: Callable[[Stats], tuple[Any, Mapping[str, str] | None]],
    reference: Sequence[np.ndarray],
    *,
    budget: int | str = DEFAULT_BUDGET,
    percentile: float = DEFAULT_PERCENTILE,
    bits: int = 8,
    pin: Callable[[Any], None] | None = None,
    cand: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
) -> AutoResult:
    """Pick a method per tensor (see the module docstring). `measure(stats)` -> (the
    quantized model's outputs on the measured samples, or a function returning them; a
    fingerprint of its quantization parameters: tensor name -> text, in the model's op
    order); `reference`: the float model's outputs there (non-float outputs are not
    scored). A trial whose model has the parameters of an earlier trial's is not run again
    (its tensor's range is overridden by a scale constraint): it scores the same.
    `pin(key)`: told the fingerprint of each model the search keeps (the cache of op
    results keeps that model's); `cand`: candidates(stats, percentile, bits) if known."""
    models, seconds = parse_budget(budget)
    t0 = time.perf_counter()
    scored = [i for i, r in enumerate(reference) if np.asarray(r).dtype.kind == "f"]
    if not scored:
        raise TflquantError("calibration method auto scores the model's float outputs, and this model has none: choose a fixed method")
    n = len(reference[scored[0]])
    halves = _halves(n)
    if cand is None:
        cand = candidates(stats, percentile, bits)
    trials: list[Trial] = []
    seen_params: dict[Any, list[Any]] = {}  # model fingerprint -> per half: per output (signal, error) per sample
    params_of: dict[str, Mapping[str, str]] = {}  # whole-model trial -> tensor -> parameters
    key_of: dict[int, Any] = {}  # id(trial) -> its model's fingerprint
    measured, built = [0], [0]  # models run on the samples; models quantized

    def spent() -> bool:
        """The budget counts the models measured; a trial whose model has the parameters of
        an earlier one costs a quantization only (at most 3 x budget of those)."""
        if seconds is not None and time.perf_counter() - t0 >= seconds:
            return True
        return measured[0] >= models or built[0] >= 3 * models

    def run(methods: Mapping[str, str], label: str, against: Trial | None = None, margin: float = 0.0) -> Trial:
        """Measure one assignment: the first half of the samples, then the second; with
        `against`, the second half only when the first does not lose to `against` there by
        more than `margin` (with 0: such a trial could not be kept, a kept change loses on
        neither half)."""
        ranges = {k: cand[k][m] for k, m in methods.items()}
        outs, params = measure(with_ranges(stats, ranges, methods))
        key = tuple(sorted(params.items())) if params is not None else len(trials)
        built[0] += 1
        if key not in seen_params:
            measured[0] += 1
            seen_params[key] = [None] * len(halves)
        parts = seen_params[key]
        for j, h in enumerate(halves):
            if parts[j] is None:
                o = outs(j) if callable(outs) else [np.asarray(x)[h] for x in outs]
                parts[j] = [_sums(np.asarray(reference[i])[h], o[i]) for i in scored]
            if against is not None and j == 0 and score([_sample_db(*x) for x in parts[0]]) < against.half_scores[0] - margin:
                break
        done = [p for p in parts if p is not None]
        sums = [(np.concatenate([p[i][0] for p in done]), np.concatenate([p[i][1] for p in done])) for i in range(len(scored))]
        pooled = [round(sqnr_db(float(sig.sum()), float(err.sum())), 4) for sig, err in sums]
        per_sample = [round(_sample_db(sig, err), 4) for sig, err in sums]
        halved = [round(score([_sample_db(*x) for x in p]), 4) for p in done]
        t = Trial(label, pooled, per_sample, halved, partial=len(done) < len(halves))
        trials.append(t)
        params_of[label] = params or {}
        key_of[id(t)] = key
        return t

    def keep(t: Trial) -> None:
        t.kept = True
        if pin is not None:
            pin(key_of[id(t)])

    # 1. whole-model methods
    best: tuple[Trial, str] | None = None
    seen: dict[str, dict[str, tuple[float, float]]] = {}
    whole: list[tuple[Trial, str]] = []
    for m in labels(percentile):
        if spent() and best is not None:
            break
        ranges = {k: c[m] for k, c in cand.items()}
        twin = next((a for a, r in seen.items() if all(_same(ranges[k], r[k]) for k in ranges)), None)
        if twin is not None:
            params_of[m] = params_of.get(twin, {})
            continue
        seen[m] = ranges
        t = run({k: m for k in cand}, m, against=best[0] if best is not None else None, margin=WHOLE_MARGIN_DB)
        whole.append((t, m))
        if best is None or (not t.partial and t.score > best[0].score):
            best = (t, m)
            if pin is not None:  # the cache keeps the best model's op results from here on
                pin(key_of[id(t)])
    assert best is not None
    current, start = best
    keep(current)
    methods = {k: start for k in cand}
    current.methods = dict(methods)

    def differs(k: str, m: str) -> bool:
        """Did tensor k get other parameters under method m than under the start method?"""
        a, b = params_of.get(m), params_of.get(start)
        return not a or not b or a.get(k) != b.get(k)

    # 2. groups of tensors moved to another whole-model method, halved when they do not
    # win: first every tensor whose parameters that method changes (the next-best method
    # first), then each half of the group in the model's op order (the early and the late
    # layers), their halves, ... breadth first while the budget lasts. A group is kept when
    # it raises the score by more than MIN_GAIN_DB and loses on neither half of the
    # samples (a change that helps some samples only is noise, not a better range).
    pos = {k: i for i, k in enumerate(params_of.get(start, {}))}
    queue: deque[tuple[str, list[str]]] = deque()
    for t, m in sorted(whole, key=lambda tm: -tm[0].score):
        if m != start:
            group = sorted((k for k in cand if differs(k, m)), key=lambda k: (pos.get(k, len(pos)), k))
            if len(group) > 1:  # every tensor that differs: the whole-model trial, measured (nearly)
                queue.extend([(m, group[: len(group) // 2]), (m, group[len(group) // 2 :])])
    while queue and not spent():
        m, group = queue.popleft()
        moved = [k for k in group if not _same(cand[k][m], cand[k][methods[k]])]
        if not moved:
            continue
        label = f"tensor '{moved[0]}' -> {m}" if len(moved) == 1 else f"{len(moved)} tensors '{moved[0]}'..'{moved[-1]}' -> {m}"
        t = run({**methods, **{k: m for k in moved}}, label, against=current)
        if not t.partial and t.score > current.score + MIN_GAIN_DB and all(a >= b for a, b in zip(t.half_scores, current.half_scores)):
            current = t
            methods.update({k: m for k in moved})
            keep(current)
            current.methods = dict(methods)
        elif len(moved) > 1:
            h = len(moved) // 2
            queue.append((m, moved[:h]))
            queue.append((m, moved[h:]))
    return AutoResult(methods, start, trials, models, 0, time.perf_counter() - t0, measured[0], seconds)


def apply(stats: Mapping[str, Range], methods: Mapping[str, str], percentile: float = DEFAULT_PERCENTILE, bits: int = 8,
          cand: Mapping[str, Mapping[str, tuple[float, float]]] | None = None) -> Stats:
    """The statistics with each tensor's range from its method (all samples' statistics)."""
    if cand is None:
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
    confirm: list[np.ndarray] = field(default_factory=list)  # up to MEASURE_SAMPLES others, the search's per-tensor changes are confirmed on
    func_name: str = ""  # the function they run


def calibrate_keeping(module: Any, data: Any, *, where: str = "calibration data", max_samples: int | None = None, **kwargs: Any) -> AutoCalibration:
    """calibrate() with histograms, keeping MEASURE_SAMPLES of the samples (evenly spread,
    in order) for the search to measure its candidates on."""
    from tflquant.calibration.driver import _plan, _resource_op, calibrate

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
    rest = np.setdiff1d(np.arange(n), keep)
    rest = rest[np.unique(np.linspace(0, len(rest) - 1, min(len(rest), MEASURE_SAMPLES)).round().astype(np.int64))] if len(rest) else rest
    confirm = [np.stack([samples[k][i] for k in rest]) for i in range(len(entry.specs))] if len(rest) >= MIN_CONFIRM_SAMPLES else []
    return AutoCalibration(res.stats, res.samples, res.batches, res.seconds, res.warnings, res.per_entry, inputs, confirm=confirm, func_name=entry.fn.sym_name.data)


def run_quantized(module: Any, func_name: str, inputs: Sequence[np.ndarray], cache: RunCache | None = None, key: Any = None) -> list[np.ndarray]:
    """A quantized module's outputs (float: integer outputs dequantized) for float inputs
    (quantized for integer inputs), with LiteRT's integer kernels. `cache`: reuse the
    results of ops an earlier model computed identically (same op, same parameters, same
    operand values), as models that differ in a few tensors' ranges share every op upstream
    of them."""
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
    outs = (IntegerInterpreter(fn) if cache is None else cache.interpreter(fn, key)).run(args)
    res = []
    for t, y in zip(fn.function_type.outputs.data, outs):
        q = quantized_element(t)
        res.append(dequantize(y, q) if q is not None else y)
    return res


class RunCache:
    """Op results of earlier integer runs on the same inputs, keyed by a digest of the op
    (name, properties, attributes, types) and its operands' digests (constants: their bytes;
    arguments: their index and type): an op whose digest an earlier run computed is not run
    again. Keeps the results of the last run and of the pinned one (the search's current
    model); ops with regions or calls into other functions (WHILE, IF) always run."""

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[list[Any], bool]] = {}
        self.runs: dict[Any, set[bytes]] = {}
        self.pinned: Any = None
        self.last: Any = None
        self.hits = 0
        self.misses = 0

    def interpreter(self, fn: Any, key: Any = None) -> Any:
        from tflquant.reference.integer_interpreter import IntegerInterpreter, call_op

        cache = self
        used: set[bytes] = set()
        key = object() if key is None else key
        cache.runs[key] = used

        class Cached(IntegerInterpreter):  # type: ignore[misc]
            def run(self, inputs: Sequence[np.ndarray], observer: Any = None) -> list[np.ndarray]:
                self._digests: dict[Any, bytes] = {}
                try:
                    return super().run(inputs, observer)
                finally:
                    cache._finish(key)

            def _call(self, op: Any, k: Any, integer: bool, vals: dict, batched: dict) -> tuple[list[Any], bool]:
                d = cache._digest(op, vals, self._digests)
                if d is not None:
                    used.add(d)
                    hit = cache.entries.get(d)
                    if hit is not None:
                        cache.hits += 1
                        return hit
                cache.misses += 1
                out = call_op(op, k, integer, vals, batched)
                if d is not None:
                    cache.entries[d] = out
                return out

        cache.last = key
        return Cached(fn)

    def _digest(self, op: Any, vals: dict, digests: dict[Any, bytes]) -> bytes | None:
        if op.regions or isinstance(op, tfl.OpaqueOp) or op.name in ("tfl.call_once", "tfl.while", "tfl.if"):
            for r in op.results:
                digests[r] = hashlib.blake2b(repr(("uncached", id(op), id(r))).encode(), digest_size=16).digest()
            return None
        parts = [op.name, str(op.properties), str(op.attributes), [str(r.type) for r in op.results]]
        for v in op.operands:
            d = digests.get(v)
            if d is None:
                if isinstance(v, BlockArgument):
                    d = repr(("arg", v.index, str(v.type))).encode()
                elif isinstance(v.owner, tfl.ConstOp):
                    x = vals.get(v)
                    d = hashlib.blake2b(repr(("const", str(v.type))).encode() + (np.ascontiguousarray(x).tobytes() if x is not None else b""),
                                        digest_size=16).digest()
                else:  # no_value, variables: by type
                    d = repr(("value", v.owner.name, str(v.type))).encode()
                digests[v] = d
            parts.append(d)
        h = hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()
        for i, r in enumerate(op.results):
            digests[r] = h + bytes([i % 256])
        return h

    def pin(self, key: Any) -> None:
        """Keep `key`'s run's results (the search's current model) besides the last run's."""
        self.pinned = key
        self._finish(self.last)

    def _finish(self, key: Any) -> None:
        keep = set(self.runs.get(key, ())) | set(self.runs.get(self.pinned, ()))
        self.runs = {k: v for k, v in self.runs.items() if k == key or k == self.pinned}
        self.entries = {d: e for d, e in self.entries.items() if d in keep}


def _trial(module: Any, func_name: str, inputs: Sequence[np.ndarray], caches: Sequence[RunCache] = ()) -> tuple[Callable[[int], list[np.ndarray]], dict[str, str]]:
    """(a function giving the outputs on the first (0) or second (1) half of the samples,
    each half with its cache; each named tensor's quantized type as text, in op order)."""
    from tflquant.dialects.quant import quantized_element
    from tflquant.ir import value_name

    params = {}
    for op in module.walk():
        for r in op.results:
            q = quantized_element(r.type)
            name = value_name(r) if q is not None else None
            if name is not None:
                params[name] = str(q)
    key = tuple(sorted(params.items()))
    n = len(inputs[0]) if inputs else 0
    halves = _halves(n)

    def outs(j: int) -> list[np.ndarray]:
        return run_quantized(module, func_name, [x[halves[j]] for x in inputs], caches[j] if caches else None, key)

    return outs, params


def auto_calibrate(
    module: Any,
    calib: AutoCalibration,
    quantize_with: Callable[[Stats], Any],
    *,
    budget: int | str | None = None,
    percentile: float = DEFAULT_PERCENTILE,
    bits: int = 8,
) -> tuple[Stats, AutoResult]:
    """The search on a calibration: `quantize_with(stats)` -> the quantized module (a fresh
    copy per call). Returns the statistics with the picked ranges. The float model runs
    once (the reference outputs); each candidate model runs with the op results it shares
    with the last and the current model reused (RunCache)."""
    from tflquant.reference.interpreter import Interpreter

    parse_budget(budget)  # a bad budget fails before the float run
    reference = Interpreter(module, stateful=True).run(calib.inputs, func_name=calib.func_name)
    cand = candidates(calib.stats, percentile, bits)
    caches = (RunCache(), RunCache())  # one per half of the samples

    def pin(key: Any) -> None:
        for c in caches:
            c.pin(key)

    result = search(
        calib.stats,
        lambda st: _trial(quantize_with(st), calib.func_name, calib.inputs, caches),
        reference,
        budget=DEFAULT_BUDGET if budget is None else budget,
        percentile=percentile,
        bits=bits,
        pin=pin,
        cand=cand,
    )
    result.samples = len(calib.inputs[0]) if calib.inputs else 0
    result.reused = (sum(c.hits for c in caches), sum(c.hits + c.misses for c in caches))
    kept = result.kept
    if len(kept) > 1 and calib.confirm:
        # the per-tensor changes were judged on the measured samples; the start and each
        # kept step after it are scored on other calibration samples, in order, and the
        # answer is the last step of the run of steps that each gain there (a step chosen
        # after one that did not confirm builds on it)
        t0 = time.perf_counter()
        ref = Interpreter(module, stateful=True).run(calib.confirm, func_name=calib.func_name)
        scored = [i for i, r in enumerate(ref) if np.asarray(r).dtype.kind == "f"]
        confirm_cache = RunCache()
        best = kept[0]
        for t in kept:
            assert t.methods is not None
            outs = run_quantized(quantize_with(apply(calib.stats, t.methods, percentile, bits, cand)), calib.func_name, calib.confirm, confirm_cache)
            t.confirm_score = round(score([_sample_db(*_sums(ref[i], outs[i])) for i in scored]), 4)
            confirm_cache.pin(None)
            if t is not kept[0]:
                if t.confirm_score <= (best.confirm_score or 0.0):
                    break
                best = t
        result.picked = best
        result.methods = dict(best.methods or {})
        result.confirm_samples = len(calib.confirm[0])
        result.seconds += time.perf_counter() - t0
    return apply(calib.stats, result.methods, percentile, bits, cand), result
