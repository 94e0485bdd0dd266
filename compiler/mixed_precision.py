"""Automatic mixed precision: the fastest int8 / int16 / float mix that meets an accuracy target.

    result = tflquant.quantize("model.tflite", representative_dataset="calib.npz", target_sqnr=45)
    for step in result.report.search:
        print(step)                     # the path: op(s) promoted, SQNR, size, latency estimate

The search (`quantize(..., target_sqnr=DB)` or `accuracy_fn=..., max_drop=...`; CLI
`--target-sqnr`):
1. One calibration run; every candidate reuses its statistics (`_calibration=`). The first
   VALIDATION_SAMPLES samples of `validation_dataset` (default: the first SEARCH_SAMPLES of
   the calibration data, which flatter every candidate alike) measure the model output; the
   float reference is computed once by the reference interpreter.
2. Start from int8. Rank the tensors by the SQNR the op computing them loses
   (`tflquant.compare`'s `layer_loss_db`: its inputs' lowest SQNR minus its own, measured with
   LiteRT's integer kernels in the reference interpreter).
3. A unit promotes one tensor: its producer and its integer readers compute in int16 (no
   requantize at that tensor; an op LiteRT has no int16 kernel for goes float), or, the
   other variant, all of them float. Confirmation: the SINGLES worst units of each variant
   are tried alone and their output SQNR (or accuracy_fn's score, computed in this
   process) measured; the ones that gain are ordered by rate (dB per unit of added
   estimated latency) and the best 2, 4, 8, ... tried together; so are the worst 2, 4, 8,
   ... by layer loss (the jumps a target near 16x8 needs). Candidates are quantized
   and measured in worker processes (spawn, one pool per search); results come back in
   candidate order, so the path does not depend on the worker count.
4. If a candidate meets the target, take the one with the lowest estimated latency (then
   size), a group bisected down to the fewest of its units that still meet it; unless that
   group adds more than twice the latency that closing the gap at the best rate would (were
   the rate to hold). Else step to the candidate short of the target with the best rate.
   Repeat from 2; stop when nothing gains.
5. Pruning: take back (to int8) the promoted units the target does not need, the ones whose
   removal saves the most latency first (at most PRUNE_TRIES tries).

Cost model (estimated LiteRT latency, arbitrary units): per op, work x the factor of its
precision. Work: multiply-accumulates for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
BATCH_MATMUL, TRANSPOSE_CONV, else output elements; QUANTIZE / DEQUANTIZE: elements.
Factors (LATENCY_FACTORS) from LiteRT 2.3 single-thread on x86-64, small_unet /
tiny_transformer, whole models: int16x8 ran 70x / 13x the int8 time (int16 kernels are
LiteRT's reference kernels; XNNPACK takes int8 and float), float 3.1x / 0.5x.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import AnyFloat, ModuleOp, TensorType
from xdsl.ir import Operation

from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError

SEARCH_SAMPLES = 32  # calibration samples the output SQNR is measured on (no validation_dataset)
VALIDATION_SAMPLES = 512  # validation_dataset samples it is measured on (at most)
SINGLES = 8  # worst tensors (by layer loss) tried alone per step, per variant
PRUNE_TRIES = 16  # promoted units the pruning tries to take back
LATENCY_FACTORS = {"int8": 1.0, "int16": 40.0, "float": 3.0, "convert": 1.0}
_MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"}


@dataclass(frozen=True)
class Step:
    """One step of the search path: what it promoted and the model after it."""

    step: int
    promoted: tuple[str, ...]  # "tensor=precision" of the ops it changed
    sqnr_db: float  # model output SQNR against the float model (lowest over the outputs)
    size: int  # bytes of the model
    latency: float  # estimated LiteRT latency (cost-model units; see module docstring)
    score: float | None = None  # accuracy_fn's score, when searching to a score
    promoted_ops: int = 0  # ops not int8 after this step

    def __str__(self) -> str:
        what = ", ".join(self.promoted) if self.promoted else "(int8 start)"
        score = f"  score {self.score:.4f}" if self.score is not None else ""
        return (
            f"step {self.step:2d}: {self.sqnr_db:6.2f} dB{score}  {self.size:8d} B  est. latency {self.latency:10.0f}"
            f"  ({self.promoted_ops} ops promoted)  {what}"
        )


# ---------------------------------------------------------------------------------------
# cost model
# ---------------------------------------------------------------------------------------


def _elements(t: Any) -> int:
    if not isinstance(t, TensorType):
        return 1
    return int(np.prod([max(int(d), 1) for d in t.get_shape()], dtype=np.int64))


def _kind(o: Operation) -> str | None:
    """int8 / int16 / float: what an op computes in (None: no runtime cost to count)."""
    if isinstance(o, tfl.ConstOp | tfl.NoValueOp | tfl.VariableOp | tfl.SparseConstOp) or not isinstance(o, tfl.TflOp):
        return None
    if isinstance(o, tfl.QuantizeOp | tfl.DequantizeOp):
        return "convert"
    bits = None
    for v in (*o.results, *o.operands):
        t = quant.quantized_element(v.type)
        if t is not None and not t.per_axis:
            bits = max(bits or 0, t.storage_type.width.data)
    if bits is None:
        floats = any(isinstance(v.type, TensorType) and isinstance(v.type.element_type, AnyFloat) for v in o.results)
        return "float" if floats else None
    return "int16" if bits == 16 else "int8"


def op_work(o: Operation) -> int:
    """Multiply-accumulates of a MAC op, else output elements (the cost model's work)."""
    out = _elements(o.results[0].type) if o.results else 1
    key = tfl.op_type(o)
    if key not in _MAC_OPS or len(o.operands) < 2:
        return out
    w = o.operands[1].type
    if not isinstance(w, TensorType):
        return out
    shape = [max(int(d), 1) for d in w.get_shape()]
    if key == "CONV_2D":  # [cout, kh, kw, cin]
        return out * int(np.prod(shape[1:]))
    if key == "DEPTHWISE_CONV_2D":  # [1, kh, kw, cout]
        return out * shape[1] * shape[2]
    if key == "FULLY_CONNECTED":  # [cout, cin]
        return out * shape[-1]
    if key == "TRANSPOSE_CONV":  # output shape, filter, input: MACs = input elements x kh x kw x cout
        x = o.operands[2].type if len(o.operands) > 2 else None
        return _elements(x) * int(np.prod(shape[:3]))
    a = o.operands[0].type  # BATCH_MATMUL: output elements x the contracted dimension
    if isinstance(a, TensorType) and len(a.get_shape()) >= 2:
        dims = [max(int(d), 1) for d in a.get_shape()]
        return out * (dims[-2] if o.option("adj_x") else dims[-1])  # type: ignore[attr-defined]
    return out


def estimated_latency(module: ModuleOp) -> float:
    """The cost model over every op of the quantized model (see module docstring)."""
    total = 0.0
    for o in module.walk():
        k = _kind(o)
        if k is not None:
            total += op_work(o) * LATENCY_FACTORS[k]
    return total


def precision_counts(module: ModuleOp) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in module.walk():
        k = _kind(o)
        if k is not None:
            out[k] = out.get(k, 0) + 1
    return out


# ---------------------------------------------------------------------------------------
# candidates (evaluated in worker processes: top-level, picklable)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    model: bytes
    samples: dict[str, np.ndarray]  # input name -> the first calibration samples (the measured fallback's)
    measured: list[np.ndarray]  # the samples the output is measured on (validation_dataset, else those)
    reference: list[np.ndarray]  # float model outputs on them
    calibration: Any
    options: dict[str, Any]
    precision: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Outcome:
    model: bytes
    sqnr_db: float
    latency: float
    promoted_ops: int


def output_sqnr(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> float:
    """Lowest SQNR (dB) over the outputs; 99 when exact."""
    worst = 99.0
    for r, g in zip(reference, got):
        r = np.asarray(r, np.float64)
        err = float(np.sum((r - np.asarray(g, np.float64).reshape(r.shape)) ** 2))
        sig = float(np.sum(r**2))
        worst = min(worst, 99.0 if err == 0 else 10 * np.log10(max(sig, 1e-30) / err))
    return worst


def _run_quantized(module: ModuleOp, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    fn = next(o for o in module.ops if isinstance(o, func.FuncOp))
    return IntegerInterpreter(fn).run(inputs)


def _evaluate(job: _Job) -> _Outcome:
    from tflquant.api import quantize

    r = quantize(job.model, representative_dataset=job.samples, op_precision=dict(job.precision), _calibration=job.calibration, **job.options)
    assert r.module is not None
    got = _run_quantized(r.module, job.measured)
    counts = precision_counts(r.module)
    return _Outcome(r.model, output_sqnr(job.reference, got), estimated_latency(r.module), counts.get("int16", 0) + counts.get("float", 0))


class _Pool:
    """Runs candidate jobs in this process (one worker) or in worker processes (spawn),
    started once for the whole search."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._ex: Any = None

    def map(self, jobs: list[_Job], parallel: bool = True) -> list[_Outcome]:
        if self.workers <= 1 or len(jobs) <= 1 or not parallel:
            return [_evaluate(j) for j in jobs]
        if self._ex is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._ex = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))
        return list(self._ex.map(_evaluate, jobs))

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ex is not None:
            self._ex.shutdown()


# ---------------------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------------------


def _graph(module: ModuleOp) -> tuple[dict[str, Operation], dict[str, list[Operation]]]:
    """Tensor name -> producing op, and -> the ops reading it (the float model's main function)."""
    fn = next(o for o in module.ops if isinstance(o, func.FuncOp))
    producer: dict[str, Operation] = {}
    readers: dict[str, list[Operation]] = {}
    for o in fn.walk():
        names = tfl.tensor_names(o) or []
        for r, n in zip(o.results, names):
            producer[n] = o
            readers[n] = list(dict.fromkeys(u.operation for u in r.uses))
    return producer, readers


def _key(o: Operation) -> str | None:
    names = tfl.tensor_names(o)
    return names[0] if names else None


def _unit(name: str, producer: Mapping[str, Operation], readers: Mapping[str, list[Operation]], float_cheaper: bool) -> dict[str, str]:
    """The precisions that take tensor `name` out of int8: its producer and integer readers
    int16 (float without an int16 kernel), or all float."""
    from tflquant.passes._quant_ops import has_kernel

    out: dict[str, str] = {}
    p = producer.get(name)
    if p is None or not has_kernel(p, 8):
        return out
    for o in [p, *readers.get(name, [])]:
        k = _key(o)
        if k is None or not has_kernel(o, 8) or isinstance(o, tfl.ConstOp):
            continue
        out[k] = "float" if float_cheaper or not has_kernel(o, 16) else "int16"
    return out


def search_quantize(
    model: str | os.PathLike[str] | bytes,
    *,
    mode: str = "int8",
    representative_dataset: Any = None,
    target_sqnr: float | None = None,
    accuracy_fn: Callable[[bytes], float] | None = None,
    max_drop: float | None = None,
    workers: int | None = None,
    validation_dataset: Any = None,
    op_precision: Mapping[str, str] | Sequence[str] | None = None,
    batch_size: int = 32,
    max_samples: int | None = None,
    calibration_threads: int | None = 1,
    calibration_method: str = "minmax",
    bias_correction: bool | None = None,
    **options: Any,
) -> Any:
    """`tflquant.quantize(..., target_sqnr=...)` / `accuracy_fn=, max_drop=`: see the module
    docstring. Returns the QuantizationResult of the model found; `result.report.search`
    holds the path (Step per step)."""
    from tflquant.api import _keeping_first, _main_samples, check_options, op_precision_entries, quantize
    from tflquant.calibration.calibrate import calibrate
    from tflquant.fileio import read_bytes
    from tflquant.passes.op_precision import parse_entries
    from tflquant.reference.interpreter import Interpreter
    from tflquant.tflite.reader import read_flatbuffer

    if mode != "int8":
        raise TflquantError(f"the mixed-precision search starts from int8: give mode int8, not {mode}")
    if (accuracy_fn is None) != (max_drop is None):
        raise TflquantError("accuracy_fn and max_drop go together: the score may drop at most max_drop below the float model's")
    if target_sqnr is not None and accuracy_fn is not None:
        raise TflquantError("give target_sqnr or accuracy_fn with max_drop, not both")
    if target_sqnr is not None and (isinstance(target_sqnr, bool) or not isinstance(target_sqnr, int | float) or not np.isfinite(target_sqnr)):
        raise TflquantError(f"target_sqnr must be a number of dB, got {target_sqnr!r}")
    if accuracy_fn is not None and not callable(accuracy_fn):
        raise TflquantError("accuracy_fn must be a callable taking the model's bytes and returning a score")
    if max_drop is not None and (isinstance(max_drop, bool) or not isinstance(max_drop, int | float) or max_drop < 0):
        raise TflquantError(f"max_drop must be a non-negative number, got {max_drop!r}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if not isinstance(workers, int) or workers < 1:
        raise TflquantError(f"workers must be a positive integer, got {workers!r}")
    check_options(mode, options.get("io_type", "float32"), None, representative_dataset)
    data = bytes(model) if isinstance(model, bytes | bytearray | memoryview) else read_bytes(model, "TFLite model")
    module = read_flatbuffer(data, "the model")

    # one calibration run, and the search samples (the first of the calibration data)
    source, kept = _keeping_first(representative_dataset, SEARCH_SAMPLES)
    where = os.fspath(representative_dataset) if isinstance(representative_dataset, str | os.PathLike) else "calibration data"
    calib = calibrate(module, source, where=where, batch_size=batch_size, max_samples=max_samples, threads=calibration_threads,
                      channel_means=True, histograms=calibration_method != "minmax")
    if calibration_method == "auto":  # ranges picked once (tflquant.calibration.auto); every candidate keeps them
        calib.stats = quantize(data, mode=mode, representative_dataset=representative_dataset, calibration_method="auto",
                               batch_size=batch_size, max_samples=max_samples,
                               bias_correction=True if bias_correction is None else bias_correction, **options).stats
        calibration_method = "minmax"
    samples = _main_samples(module, source if kept is None else kept, SEARCH_SAMPLES)
    if validation_dataset is not None:  # held-out data to measure on
        vsource, vkept = _keeping_first(validation_dataset, VALIDATION_SAMPLES)
        measured = _main_samples(module, vsource if vkept is None else vkept, VALIDATION_SAMPLES)
        if measured is None:
            raise TflquantError("validation_dataset: no samples for the model's first subgraph (give one array per input, samples first)")
    else:
        measured = samples
    if samples is None:
        raise TflquantError(f"{where}: no samples for the model's first subgraph to measure the output on")
    fn = next(o for o in module.ops if isinstance(o, func.FuncOp))
    names = [_arg_name(fn, i) for i in range(len(fn.body.block.args))]
    by_name = dict(zip(names, samples))
    reference = Interpreter(fn).run(list(measured))
    opts = {"mode": mode, "bias_correction": True if bias_correction is None else bias_correction,
            "calibration_method": calibration_method, "batch_size": batch_size, **options}
    fixed = parse_entries(op_precision_entries(op_precision))  # the user's own choices stay

    def jobs(cands: list[dict[str, str]]) -> list[_Job]:
        return [_Job(data, by_name, list(measured), reference, calib, opts, tuple(sorted({**c, **fixed}.items()))) for c in cands]

    float_score = accuracy_fn(data) if accuracy_fn is not None else None

    def meets(o: _Outcome, score: float | None) -> bool:
        if float_score is not None:
            return score is not None and score >= float_score - max_drop  # type: ignore[operator]
        return o.sqnr_db >= target_sqnr  # type: ignore[operator]

    def measure(o: _Outcome) -> float | None:
        return float(accuracy_fn(o.model)) if accuracy_fn is not None else None

    with _Pool(workers) as pool:
        producer, readers = _graph(module)
        state: dict[str, str] = {}
        cur = pool.map(jobs([state]))[0]
        cur_score = measure(cur)
        path = [Step(0, (), cur.sqnr_db, len(cur.model), cur.latency, cur_score, cur.promoted_ops)]
        from tflquant.compare import compare_models

        def gain(o: _Outcome, score: float | None) -> float:
            return (score - cur_score) if score is not None and cur_score is not None else o.sqnr_db - cur.sqnr_db

        accepted: list[dict[str, str]] = []  # the units promoted so far, in order

        def evaluate(states: list[dict[str, str]]) -> list[tuple[_Outcome, float | None]]:
            outs = pool.map(jobs(states))
            return [(o, measure(o)) for o in outs]

        def efficiency(o: _Outcome, sc: float | None) -> float:
            return gain(o, sc) / max(o.latency - cur.latency, 0.01 * path[0].latency)

        while not meets(cur, cur_score):
            rows = compare_models(data, [cur.model], list(measured), max_samples=len(measured[0]), labels=["current"]).rows
            ranked = [r.tensor_name or r.name for r in sorted(rows, key=lambda r: -r.layer_loss_db) if r.kind == "int8" and r.subgraph == 0]
            # per variant (int16 where LiteRT has the kernel, else float; all float), the units in rank order
            variants: list[list[dict[str, str]]] = []
            for float_cheaper in (False, True):
                units: list[dict[str, str]] = []
                for name in dict.fromkeys(ranked):
                    u = {k: v for k, v in _unit(name, producer, readers, float_cheaper).items() if state.get(k) not in (v, "float")}
                    if u and u not in units:
                        units.append(u)
                variants.append(units)
            # confirmation: the SINGLES worst units of each variant, each alone, measured at
            # the output; then the best of them (by dB per added latency) 2, 4, 8, ... together
            # (when none of them gains, the next SINGLES worst, and so on)
            order: list[int] = []
            for first in range(0, max(map(len, variants)), SINGLES):
                singles = [u for v in range(2) for u in variants[v][first : first + SINGLES]]
                res1 = evaluate([{**state, **u} for u in singles])
                rate1 = [efficiency(o, sc) if gain(o, sc) > 0 else -np.inf for o, sc in res1]
                order = sorted((i for i in range(len(singles)) if rate1[i] > -np.inf), key=lambda i: (-rate1[i], i))
                if order:
                    break
            if not order:
                break  # no promotion of any tensor gains any more

            def by_rate(k: int) -> list[dict[str, str]]:
                return [singles[i] for i in order[:k]]

            def by_rank(v: int) -> Callable[[int], list[dict[str, str]]]:
                return lambda k: variants[v][:k]

            def merged(units: list[dict[str, str]]) -> dict[str, str]:
                out = dict(state)
                for u in units:
                    out.update(u)
                return out

            def doubling(n: int) -> list[int]:
                return sorted({min(2**j, n) for j in range(1, 12)} - {0, 1})

            # groups: the best by measured rate, and (for big targets) the worst by layer loss
            groups = [(by_rate, k) for k in doubling(len(order))]
            groups += [(by_rank(v), k) for v in range(2) for k in doubling(len(variants[v]))]
            res = res1 + evaluate([merged(g(k)) for g, k in groups])
            cands = [[u] for u in singles] + [g(k) for g, k in groups]
            ok = [i for i, (o, sc) in enumerate(res) if meets(o, sc)]
            rate = [efficiency(o, sc) if gain(o, sc) > 0 else -np.inf for o, sc in res]
            best = max(rate)
            pick = min(ok, key=lambda i: (res[i][0].latency, len(res[i][0].model), i)) if ok else None
            if pick is not None and best > 0:
                # a group that meets the target at far more latency than closing the gap at the
                # best rate would take (were it to hold): step at that rate instead
                gap = (float_score - max_drop - cur_score) if float_score is not None else target_sqnr - cur.sqnr_db  # type: ignore[operator]
                if pick >= len(singles) and gap / best < 0.5 * (res[pick][0].latency - cur.latency):
                    pick = None
            if pick is not None:
                found = res[pick]
                chosen = cands[pick]
                if pick >= len(singles):  # a group: the fewest of its units that still meet the target
                    g, hi = groups[pick - len(singles)]
                    tried = [(k, r) for (gg, k), r in zip(groups, res[len(singles):]) if gg is g]
                    lo = max([k for k, (o, sc) in tried if k < hi and not meets(o, sc)], default=1 if g is by_rate else 0)
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        o, sc = evaluate([merged(g(mid))])[0]
                        if meets(o, sc):
                            hi, found = mid, (o, sc)
                        else:
                            lo = mid
                    chosen = g(hi)
                o_best, s_best = found
            else:
                if best == -np.inf:
                    break  # no promotion of the worst tensors helps any more
                # step: the best rate among the candidates short of the target (one past the
                # target was judged too dear above)
                short = [i for i in range(len(res)) if i not in ok and rate[i] > -np.inf] or [i for i in ok]
                pick = max(short, key=lambda i: (rate[i], -i))
                chosen, (o_best, s_best) = cands[pick], res[pick]
            new_state = merged(chosen)
            accepted += chosen
            promoted = tuple(f"{k}={v}" for k, v in new_state.items() if state.get(k) != v)
            state, cur, cur_score = new_state, o_best, s_best
            path.append(Step(len(path), promoted, cur.sqnr_db, len(cur.model), cur.latency, cur_score, cur.promoted_ops))

        # pruning: drop the promoted units the target does not need, the costliest first
        if meets(cur, cur_score) and len(accepted) > 1:

            def without(drop: set[int]) -> dict[str, str]:
                merged: dict[str, str] = {}
                for i, u in enumerate(accepted):
                    if i not in drop:
                        merged.update(u)
                return merged

            single = evaluate([without({i}) for i in range(len(accepted))])
            order = sorted((i for i, (o, sc) in enumerate(single) if meets(o, sc)), key=lambda i: (single[i][0].latency, i))
            dropped: set[int] = set()
            for i in order[:PRUNE_TRIES]:
                trial = dropped | {i}
                o, sc = (single[i] if not dropped else evaluate([without(trial)])[0])
                if meets(o, sc) and o.latency <= cur.latency:
                    dropped, cur, cur_score = trial, o, sc
            if dropped:
                state = without(dropped)
                gone = tuple(f"{k}=int8" for i in sorted(dropped) for k in accepted[i] if k not in state)
                path.append(Step(len(path), gone, cur.sqnr_db, len(cur.model), cur.latency, cur_score, cur.promoted_ops))
    result = quantize(data, representative_dataset=by_name, op_precision={**state, **fixed}, _calibration=calib, **opts)
    result.report.search = path
    if not meets(cur, cur_score):
        want = f"{target_sqnr} dB" if target_sqnr is not None else f"a score of {float_score - max_drop:.4f}"  # type: ignore[operator]
        result.report.warnings.append(f"mixed-precision search: no mix reached {want}; the best found is returned ({path[-1]})")
    return result


def _arg_name(fn: func.FuncOp, i: int) -> str:
    from tflquant.ir import value_name

    return value_name(fn.body.block.args[i]) or f"input_{i}"
