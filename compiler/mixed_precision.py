"""Automatic mixed precision: the fastest int8 / int16 / float mix that meets an accuracy target.

    result = tflquant.quantize("model.tflite", representative_dataset="calib.npz", target_sqnr=45)
    for step in result.report.search:
        print(step)                     # the path: op(s) promoted, SQNR, size, latency estimate

The search (`quantize(..., target_sqnr=DB)` or `accuracy_fn=..., max_drop=...`; CLI
`--target-sqnr`). The target is the mean of per-sample SQNRs of the worst output
(`output_sqnr`: per output, each measured sample's SQNR against the float model, averaged
over the samples; the lowest over the outputs), as tflquant.calibration.auto scores: an SQNR
pooled over the samples (signal and error energy summed first) is decided by the few samples
of largest error, which made the search chase outliers (the detection benchmark: auto +
target 25 measured pooled gave 28.1 / 20.6 dB on its evaluation crops; measured per sample,
35.2 / 34.2 dB).

1. Samples: the first VALIDATION_SAMPLES of `validation_dataset` measure the model output.
   Without one, the first min(SEARCH_SAMPLES, a quarter) calibration samples are held out:
   the search measures on them and its candidates take their ranges from a second
   calibration run over the other samples; the model returned is calibrated on all of them.
   (Data that cannot be read twice, a one-shot iterator, or fewer than 4*MIN_HELD_OUT
   samples: it measures on the first calibration samples, the ones the ranges came from,
   which flatters every candidate.) Step 0 of the path says which. The float reference is
   computed once by the reference interpreter.
2. Units: a unit takes one tensor out of int8: its producer and its integer readers compute
   in int16 (an op LiteRT has no int16 kernel for goes float), or, the other variant, all
   float; a tensor's producer and readers together, so no requantizing island appears.
3. A round: every unit that changes the current mix is measured on top of it (output_sqnr
   with LiteRT's integer kernels, or accuracy_fn's score: it must be deterministic, as each
   mix is measured once and its score reused), in worker processes. The gain of
   a unit is the output noise power it removes (or the score it adds); gains of separate
   error sources add up, so the units are sorted by gain per cost (cost: the ops it adds
   plus the estimated latency it adds, in the int8 model's mean op) and the prefixes of that
   order, up to three times the gap by the sum of their gains (at most MAX_PREFIXES), are
   measured together. The cheapest prefix that meets the target ends the search; else the
   one that gained the most is taken and another round starts (at most MAX_ROUNDS).
   Candidates come back in candidate order, so the path does not depend on the worker count.
4. Pruning (reverse greedy): take back to int8 the promoted units the target does not need,
   the ones whose removal leaves the fewest promoted ops first, then single promoted ops the
   same way (at most PRUNE_TRIES tries each), keeping a removal only if the target still
   holds, on the measured samples and on each half of them (the even ones, the odd ones;
   target_sqnr), and neither the op count nor the estimated latency grows (trimmed against
   the whole set alone, a mix lands just above the target on these very samples).

Cost model (estimated LiteRT latency, arbitrary units: int8 multiply-accumulates): per op,
OP_OVERHEAD x OVERHEAD_FACTORS[precision] (the fixed cost of dispatching an op; a
QUANTIZE / DEQUANTIZE at a precision boundary pays it too) plus work x LATENCY_FACTORS[precision].
Work: multiply-accumulates for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, BATCH_MATMUL,
TRANSPOSE_CONV, else output elements; QUANTIZE / DEQUANTIZE: elements. Factors from LiteRT 2.3
single-thread on x86-64, small_unet / tiny_transformer, whole models: int16x8 ran 70x / 13x
the int8 time (int16 kernels are LiteRT's reference kernels; XNNPACK takes int8 and float),
float 3.1x / 0.43x. The overhead (about 0.34 us per int8 op, 20000 int8 MACs at small_unet's
rate; a float op about half, XNNPACK running float graphs as one delegate) is what makes a
71-op model of tiny tensors run float faster than int8. No LiteRT is needed at run time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import AnyFloat, ModuleOp, TensorType
from xdsl.ir import Operation

from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError

SEARCH_SAMPLES = 32  # calibration samples the output SQNR is measured on (no validation_dataset)
VALIDATION_SAMPLES = 512  # validation_dataset samples it is measured on (at most)
MIN_HELD_OUT = 4  # fewer calibration samples to hold out than this: measure on the calibration samples
MAX_ROUNDS = 6  # rounds of measuring every unit on top of the current mix
MAX_PREFIXES = 24  # groups (best units by gain per cost, 1, 2, 3, ...) tried together per round
PRUNE_TRIES = 24  # promoted units (then ops) the pruning tries to take back
LATENCY_FACTORS = {"int8": 1.0, "int16": 40.0, "float": 3.0, "convert": 1.0}
OP_OVERHEAD = 20000.0  # fixed cost of running one int8 op (dispatch, tensor set-up), in int8 MACs
OVERHEAD_FACTORS = {"int8": 1.0, "int16": 1.0, "float": 0.5, "convert": 1.0}
_MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV"}


@dataclass(frozen=True)
class Step:
    """One step of the search path: what it promoted and the model after it."""

    step: int
    promoted: tuple[str, ...]  # "tensor=precision" of the ops it changed
    sqnr_db: float  # SQNR against the float model: mean of per-sample SQNRs, worst output (output_sqnr)
    size: int  # bytes of the model
    latency: float  # estimated LiteRT latency (cost-model units; see module docstring)
    score: float | None = None  # accuracy_fn's score, when searching to a score
    promoted_ops: int = 0  # ops not int8 after this step
    measured: str = ""  # (step 0) the samples the search measured on

    def __str__(self) -> str:
        what = ", ".join(self.promoted) if self.promoted else "(int8 start; dB: mean of per-sample SQNRs, worst output" + (f"; measured on {self.measured})" if self.measured else ")")
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
            total += op_work(o) * LATENCY_FACTORS[k] + OP_OVERHEAD * OVERHEAD_FACTORS[k]
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
    model: bytes  # the candidate's bytes (b"" once measured: the search keeps only its size)
    sqnr_db: float
    latency: float
    promoted_ops: int
    halves: tuple[float, float] = (-np.inf, -np.inf)  # output_sqnr on the even / the odd measured samples
    size: int = 0  # bytes of the model (0: it did not quantize)


def _sample_dbs(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per output, each sample's SQNR (dB; 99 where exact; within [-99, 99])."""
    from tflquant.calibration.auto import per_sample_sqnr

    return [per_sample_sqnr(r, g) for r, g in zip(reference, got)]


def _worst_mean(dbs: Sequence[np.ndarray], pick: slice = slice(None)) -> float:
    return min((float(np.mean(d[pick])) if len(d[pick]) else 99.0 for d in dbs), default=99.0)


def output_sqnr(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> float:
    """The search's score (dB): per output, the mean over the samples of each sample's SQNR
    (99 where a sample is exact, within [-99, 99]); the lowest over the outputs. A mean of
    per-sample SQNRs, as tflquant.calibration.auto scores, so that a few samples of large
    error (a pooled SQNR is decided by them) do not decide the mix."""
    return _worst_mean(_sample_dbs(reference, got))


def _run_quantized(module: ModuleOp, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The quantized model's float outputs on float inputs: integer model inputs (io_type
    int8 / uint8 / int16) take the samples quantized with their scale and zero point, integer
    outputs are dequantized the same way."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    fn = next(o for o in module.ops if isinstance(o, func.FuncOp))
    fed = []
    for a, x in zip(fn.body.block.args, inputs):
        t = quant.quantized_element(a.type)
        if t is not None and not t.per_axis:
            x = np.clip(np.round(np.asarray(x, np.float64) / t.scale) + t.zero_point, t.qmin, t.qmax).astype(t.numpy_dtype())
        fed.append(x)
    outs = IntegerInterpreter(fn).run(fed)
    ret = next(o for o in fn.body.block.ops if isinstance(o, func.ReturnOp))
    got = []
    for v, y in zip(ret.operands, outs):
        t = quant.quantized_element(v.type)
        got.append((np.asarray(y, np.float64) - t.zero_point) * t.scale if t is not None and not t.per_axis else y)
    return got


def _evaluate(job: _Job) -> _Outcome:
    from tflquant.api import quantize

    try:
        r = quantize(job.model, representative_dataset=job.samples, op_precision=dict(job.precision), _calibration=job.calibration, **job.options)
    except TflquantError:  # a mix the options do not allow (a float op with allow_float off)
        return _Outcome(b"", -np.inf, np.inf, 1 << 30)
    assert r.module is not None
    dbs = _sample_dbs(job.reference, _run_quantized(r.module, job.measured))
    counts = precision_counts(r.module)
    return _Outcome(r.model, _worst_mean(dbs), estimated_latency(r.module), counts.get("int16", 0) + counts.get("float", 0),
                    (_worst_mean(dbs, slice(0, None, 2)), _worst_mean(dbs, slice(1, None, 2))), len(r.model))


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


_RANK = {"int8": 0, "int16": 1, "float": 2}


def _merge(state: Mapping[str, str], units: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The mix with the units promoted on top: an op takes the highest precision asked for it."""
    out = dict(state)
    for u in units:
        for k, v in u.items():
            if _RANK[v] > _RANK[out.get(k, "int8")]:
                out[k] = v
    return out


def _promotable_ops(module: ModuleOp) -> int:
    """Ops of the float model a precision could change (the cost model's op count)."""
    from tflquant.passes._quant_ops import has_kernel

    fn = next(o for o in module.ops if isinstance(o, func.FuncOp))
    return sum(1 for o in fn.walk() if isinstance(o, tfl.TflOp) and not isinstance(o, tfl.ConstOp | tfl.NoValueOp) and has_kernel(o, 8))


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
    holds the path (Step per step).

    accuracy_fn must be deterministic: the same model bytes, the same score. The search
    measures each mix once and reuses that score whenever it comes back to the mix (a
    pruning trial equal to an earlier candidate, units adding the same ops), so a score
    that varies between calls (random evaluation subsets, a model with dropout) makes the
    path depend on which call was kept: seed or fix the evaluation data."""
    from tflquant.api import _keeping_first, _main_samples, check_options, op_precision_entries, quantize
    from tflquant.calibration.driver import calibrate
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
    search_calib = calib  # the statistics the search's candidates are quantized with
    auto = calibration_method == "auto"
    if auto:  # ranges picked once (tflquant.calibration.auto); every candidate keeps them
        calib.stats = _auto_stats(data, mode, representative_dataset, batch_size, max_samples, bias_correction, options)
        calibration_method = "minmax"
    samples = _main_samples(module, source if kept is None else kept, SEARCH_SAMPLES)
    if samples is None:
        raise TflquantError(f"{where}: no samples for the model's first subgraph to measure the output on")
    if validation_dataset is not None:  # held-out data to measure on
        vsource, vkept = _keeping_first(validation_dataset, VALIDATION_SAMPLES)
        measured = _main_samples(module, vsource if vkept is None else vkept, VALIDATION_SAMPLES)
        if measured is None:
            raise TflquantError("validation_dataset: no samples for the model's first subgraph (give one array per input, samples first)")
        measured_on = f"{len(measured[0])} validation_dataset samples"
    else:
        # hold out the first calibration samples: the search measures on them, its candidates'
        # ranges come from the rest (the model returned is calibrated on all of them)
        split = _held_out(representative_dataset, source)
        if split is None:
            measured = samples
            measured_on = (f"the first {len(samples[0])} calibration samples, the ones the ranges came from "
                           "(optimistic: give validation_dataset)")
        else:
            held, rest, n_rest = split
            measured = [a[:held] for a in samples]
            search_calib = calibrate(module, rest, where=where, batch_size=batch_size, max_samples=max_samples,
                                     threads=calibration_threads, channel_means=True, histograms=calibration_method != "minmax" or auto)
            if auto:
                search_calib.stats = _auto_stats(data, mode, rest, batch_size, max_samples, bias_correction, options)
            measured_on = (f"the first {held} calibration samples, held out: the search's ranges came from the other "
                           + (f"{n_rest}" if n_rest is not None else "ones"))
    fn = next(o for o in module.ops if isinstance(o, func.FuncOp))
    names = [_arg_name(fn, i) for i in range(len(fn.body.block.args))]
    by_name = dict(zip(names, samples))
    reference = Interpreter(fn).run(list(measured))
    opts = {"mode": mode, "bias_correction": True if bias_correction is None else bias_correction,
            "calibration_method": calibration_method, "batch_size": batch_size, **options}
    fixed = parse_entries(op_precision_entries(op_precision))  # the user's own choices stay

    def precision(c: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({**c, **fixed}.items()))

    float_score = accuracy_fn(data) if accuracy_fn is not None else None

    def meets(o: _Outcome, score: float | None) -> bool:
        if float_score is not None:
            return score is not None and score >= float_score - max_drop  # type: ignore[operator]
        return o.sqnr_db >= target_sqnr  # type: ignore[operator]

    def keeps(o: _Outcome, score: float | None) -> bool:
        """A demotion the pruning may take: the target still holds, and (target_sqnr) on
        each half of the measured samples too, so the mix is not trimmed to just above the
        target on these samples (on held-out ones it then fell short)."""
        return meets(o, score) and (float_score is not None or min(o.halves) >= target_sqnr)  # type: ignore[operator]

    def measure(o: _Outcome) -> float | None:
        if accuracy_fn is None:
            return None
        return float(accuracy_fn(o.model)) if o.model else -np.inf

    with _Pool(workers) as pool:
        producer, readers = _graph(module)
        # every mix measured once: a mix the search comes back to (units that add the same
        # ops to the current mix, a pruning trial equal to an earlier one) is looked up
        seen: dict[tuple[tuple[str, str], ...], tuple[_Outcome, float | None]] = {}

        def evaluate(states: list[dict[str, str]]) -> list[tuple[_Outcome, float | None]]:
            keys = [precision(c) for c in states]
            new = list(dict.fromkeys(k for k in keys if k not in seen))
            outs = pool.map([_Job(data, by_name, list(measured), reference, search_calib, opts, k) for k in new])
            for k, o in zip(new, outs):
                seen[k] = (replace(o, model=b""), measure(o))  # the bytes are not kept (a model's worth per mix)
            return [seen[k] for k in keys]

        state: dict[str, str] = {}
        cur, cur_score = evaluate([state])[0]
        if not cur.size:  # the int8 start does not quantize: its error, raised here
            quantize(data, representative_dataset=by_name, op_precision=dict(fixed), _calibration=search_calib, **opts)
        path = [Step(0, (), cur.sqnr_db, cur.size, cur.latency, cur_score, cur.promoted_ops, measured=measured_on)]
        n_ops = max(_promotable_ops(module), 1)
        op_latency = max(path[0].latency / n_ops, 1e-9)  # the int8 model's mean op: the cost unit

        def value(o: _Outcome, score: float | None) -> float:
            """What promotions add up: minus the output's noise power relative to the
            signal (SQNR), or the score (accuracy_fn)."""
            return float(score) if float_score is not None else -(10.0 ** (-o.sqnr_db / 10.0))

        goal = (float_score - max_drop) if float_score is not None else -(10.0 ** (-target_sqnr / 10.0))  # type: ignore[operator]

        def cost(o: _Outcome, base: _Outcome) -> float:
            """Added ops plus added estimated latency in int8 mean ops (at least a small part of an op)."""
            return max(o.promoted_ops - base.promoted_ops, 0) + max(o.latency - base.latency, 0.0) / op_latency + 0.05

        # units: one tensor out of int8 (its producer and integer readers), int16 where LiteRT
        # has the kernel, or all float
        units: list[dict[str, str]] = []
        for float_cheaper in (False, True):
            for name in producer:
                u = _unit(name, producer, readers, float_cheaper)
                if u and u not in units:
                    units.append(u)
        accepted: list[dict[str, str]] = []
        for _ in range(MAX_ROUNDS):
            if meets(cur, cur_score):
                break
            # 1. every unit that changes the current mix, measured alone on top of it
            cands = [u for u in units if _merge(state, [u]) != state]
            if not cands:
                break
            res1 = evaluate([_merge(state, [u]) for u in cands])
            v0 = value(cur, cur_score)
            gains = [value(o, sc) - v0 for o, sc in res1]
            good = sorted((i for i in range(len(cands)) if gains[i] > 0), key=lambda i: (-gains[i] / cost(res1[i][0], cur), i))
            if not good:
                break  # nothing gains any more
            # 2. gains add up (noise powers of independent errors do): prefixes of the units
            # in order of gain per cost, up to three times the gap by that sum, measured together
            need = goal - v0
            prefixes: list[list[int]] = []
            total = 0.0
            for i in good:
                total += gains[i]
                prefixes.append((prefixes[-1] if prefixes else []) + [i])
                if total >= 3 * need or len(prefixes) >= MAX_PREFIXES:
                    break
            res_p = [res1[p[0]] for p in prefixes[:1]] + evaluate([_merge(state, [cands[i] for i in p]) for p in prefixes[1:]])
            ok = [k for k, (o, sc) in enumerate(res_p) if meets(o, sc)]
            if ok:
                k = min(ok, key=lambda k: (cost(res_p[k][0], cur), k))
            else:  # the group that gained the most, then again from there (pruning takes back what is not needed)
                k = max(range(len(prefixes)), key=lambda k: (value(*res_p[k]), -cost(res_p[k][0], cur), -k))
                if value(*res_p[k]) <= v0:
                    break
            chosen = [cands[i] for i in prefixes[k]]
            new_state = _merge(state, chosen)
            accepted += chosen
            promoted = tuple(f"{n}={p}" for n, p in new_state.items() if state.get(n) != p)
            state, (cur, cur_score) = new_state, res_p[k]
            path.append(Step(len(path), promoted, cur.sqnr_db, cur.size, cur.latency, cur_score, cur.promoted_ops))

        # 3. pruning: take back the promoted units the target does not need (those whose
        # removal saves the most first), then single promoted ops the same way
        if meets(cur, cur_score) and len(accepted) > 1:
            before = dict(state)
            pieces = [dict(u) for u in accepted]
            for level in ("units", "ops"):
                if level == "ops":
                    pieces = [{n: p} for n, p in state.items() if n not in fixed]
                if len(pieces) < 2:
                    continue

                def without(drop: set[int], pieces: list[dict[str, str]] = pieces) -> dict[str, str]:
                    return _merge({}, [u for i, u in enumerate(pieces) if i not in drop])

                single = evaluate([without({i}) for i in range(len(pieces))])
                order = sorted((i for i, (o, sc) in enumerate(single) if keeps(o, sc) and without({i}) != state),
                               key=lambda i: (single[i][0].promoted_ops, single[i][0].latency, i))
                dropped: set[int] = set()
                for i in order[:PRUNE_TRIES]:
                    trial = dropped | {i}
                    if without(trial) == without(dropped):
                        continue
                    o, sc = single[i] if not dropped else evaluate([without(trial)])[0]
                    if keeps(o, sc) and (o.promoted_ops, o.latency) <= (cur.promoted_ops, cur.latency * (1 + 1e-9)):
                        dropped, cur, cur_score = trial, o, sc
                if dropped:
                    state = without(dropped)
                    pieces = [u for i, u in enumerate(pieces) if i not in dropped]
            if state != before:
                gone = tuple(f"{n}={state.get(n, 'int8')}" for n in before if state.get(n) != before[n])
                path.append(Step(len(path), gone, cur.sqnr_db, cur.size, cur.latency, cur_score, cur.promoted_ops))
    result = quantize(data, representative_dataset=by_name, op_precision={**state, **fixed}, _calibration=calib, **opts)
    result.report.search = path
    if not meets(cur, cur_score):
        want = f"{target_sqnr} dB (mean of per-sample SQNRs, worst output)" if target_sqnr is not None else f"a score of {float_score - max_drop:.4f}"  # type: ignore[operator]
        result.report.warnings.append(f"mixed-precision search: no mix reached {want}; the best found is returned ({path[-1]})")
    return result


def _auto_stats(data: bytes, mode: str, dataset: Any, batch_size: int, max_samples: int | None, bias_correction: bool | None,
                options: Mapping[str, Any]) -> Any:
    from tflquant.api import quantize

    return quantize(data, mode=mode, representative_dataset=dataset, calibration_method="auto", batch_size=batch_size,
                    max_samples=max_samples, bias_correction=True if bias_correction is None else bias_correction, **options).stats


def _held_out(dataset: Any, source: Any) -> tuple[int, Any, int | None] | None:
    """(samples held out, the calibration data without them, how many that is (None: not
    known)) for data that can be read again (a .npz path, arrays, a list, a function
    returning an iterable), holding out the first min(SEARCH_SAMPLES, a quarter); None for
    a one-shot iterable or too few samples (the search then measures on the first ones)."""
    import itertools

    if isinstance(source, Mapping):
        arrays = list(source.values())
        if not arrays or not all(isinstance(a, np.ndarray) and a.ndim >= 1 for a in arrays):
            return None
        n = min(len(a) for a in arrays)
        held = min(SEARCH_SAMPLES, n // 4)
        return (held, {k: v[held:] for k, v in source.items()}, n - held) if held >= MIN_HELD_OUT else None
    if isinstance(dataset, list | tuple):
        held = min(SEARCH_SAMPLES, len(dataset) // 4)
        return (held, list(dataset[held:]), len(dataset) - held) if held >= MIN_HELD_OUT else None
    if callable(dataset):
        return SEARCH_SAMPLES, (lambda: itertools.islice(dataset(), SEARCH_SAMPLES, None)), None
    return None


def _arg_name(fn: func.FuncOp, i: int) -> str:
    from tflquant.ir import value_name

    return value_name(fn.body.block.args[i]) or f"input_{i}"
