"""The Python API: `tflquant.quantize(model, mode=..., representative_dataset=..., ...)`.

    import tflquant
    result = tflquant.quantize("model.tflite", mode="int8", representative_dataset="calib.npz")
    print(result.report)          # what was quantized, what stayed float and why, sizes, times
    result.save("model_int8.tflite")

The flow: read the flatbuffer into the IR -> (int8, int16x8) run the representative data
through the float model in the reference interpreter and record every float tensor's range
-> run the mode's pass pipeline (`tflquant.pipeline.pipeline_spec`), with the ranges handed
to `annotate-calibration` in memory -> write the flatbuffer -> build the report.

Inputs are never modified; `save` writes atomically; every problem the user can fix is a
TflquantError with one clear message. The same inputs give the same bytes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tflquant.dialects._startup import import_xdsl

import_xdsl()  # xDSL's core before the imports below, the quick way (dialects/_startup.py)

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation

from tflquant.calibration import DEFAULT_BATCH_SIZE
from tflquant.dialects import tfl
from tflquant.dialects._unchecked import class_test
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.pipeline import MODES

IO_TYPES = ("float32", "int8", "uint8", "int16")
STATIC_MODES = ("int8", "int16x8")

# (mode, io_type) pairs that make sense: integer I/O types must match the activation type.
_IO_FOR_MODE = {
    "int8": ("float32", "int8", "uint8"),
    "int16x8": ("float32", "int16"),
    "dynamic": ("float32",),
    "weight-only": ("float32",),
    "float16": ("float32",),
}
_BIAS_FOR_MODE = {"int8": ("int32",), "int16x8": ("int32", "int64")}


# ---------------------------------------------------------------------------------------
# Result and report
# ---------------------------------------------------------------------------------------


@dataclass
class OpInfo:
    """One operator of the output model as the report lists it."""

    op_type: str
    name: str  # first output tensor name
    kind: str  # "int8", "int16", "hybrid", "float", "integer" (non-float data), "quantize", "dequantize"
    reason: str | None = None  # why a float op stayed float


@dataclass
class WeightInfo:
    """One quantized weight of a dynamic / weight-only model: the op reading it, how it is
    stored and its SQNR (dB) against the float weight."""

    op_type: str
    name: str  # the op's first output tensor name
    weight: str  # the weight tensor name
    bits: int
    granularity: str  # "tensor", "channel" or "block"
    block_size: int | None
    sqnr_db: float
    read: str  # "hybrid" (the kernel reads the integer weight) or "dequantize"
    rounding: str = "nearest"  # "nearest", "mse" (clipped scales) or "gptq" (weight_rounding; quantize-weights' tflquant.rounding)


@dataclass
class QuantizationReport:
    """What `quantize` did. `str(report)` is the text the CLI prints."""

    model: str
    mode: str
    io_type: str
    pipeline: str
    size_before: int
    size_after: int
    seconds: dict[str, float] = field(default_factory=dict)
    ops: list[OpInfo] = field(default_factory=list)
    calibration_samples: int = 0
    calibration_batches: int = 0
    warnings: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # "name: type"
    outputs: list[str] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)  # constant bytes by element type
    weight_formats: list[WeightInfo] = field(default_factory=list)  # dynamic / weight-only: per op
    search: list[Any] = field(default_factory=list)  # target_sqnr / accuracy_fn: the path (mixed_precision.Step)
    calibration_methods: dict[str, str] = field(default_factory=dict)  # auto: tensor -> method
    calibration_auto: list[str] = field(default_factory=list)  # auto: what the search did

    # summaries ---------------------------------------------------------------------
    @property
    def quantized(self) -> list[OpInfo]:
        return [o for o in self.ops if o.kind in ("int8", "int16", "hybrid")]

    @property
    def float_ops(self) -> list[OpInfo]:
        """Ops that compute in float (fell back, or float by the mode)."""
        return [o for o in self.ops if o.kind == "float"]

    @property
    def fallbacks(self) -> list[OpInfo]:
        """Float ops in a static mode: the ones that fell back (in dynamic mode: the ones the
        weight check kept float)."""
        if self.mode in STATIC_MODES:
            return self.float_ops
        return [o for o in self.float_ops if o.reason]

    @property
    def total_seconds(self) -> float:
        return self.seconds.get("total", sum(self.seconds.values()))

    def counts(self) -> dict[str, Counter[str]]:
        """op type -> Counter of kinds."""
        out: dict[str, Counter[str]] = {}
        for o in self.ops:
            out.setdefault(o.op_type, Counter())[o.kind] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mode": self.mode,
            "io_type": self.io_type,
            "pipeline": self.pipeline,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "seconds": dict(self.seconds),
            "calibration_samples": self.calibration_samples,
            "calibration_methods": dict(self.calibration_methods),
            "ops": [o.__dict__ for o in self.ops],
            "weight_formats": [w.__dict__ for w in self.weight_formats],
            "warnings": list(self.warnings),
        }

    def __str__(self) -> str:
        lines = [f"tflquant: {self.model} -> {self.mode}" + (f" ({self.io_type} I/O)" if self.io_type != "float32" else "")]
        ratio = self.size_after / self.size_before if self.size_before else 0.0
        lines.append(f"  size        {_kb(self.size_before)} -> {_kb(self.size_after)} ({ratio:.1%} of the input model)")
        t = self.seconds
        parts = [f"{k} {v:.2f}s" for k, v in t.items() if k != "total"]
        lines.append(f"  time        {self.total_seconds:.2f}s ({', '.join(parts)})")
        if self.calibration_samples:
            lines.append(f"  calibration {self.calibration_samples} samples in {self.calibration_batches} batches")
            lines.extend(f"              {a}" for a in self.calibration_auto)
        if self.inputs:
            lines.append(f"  inputs      {'; '.join(self.inputs)}")
            lines.append(f"  outputs     {'; '.join(self.outputs)}")
        if self.weights:
            w = ", ".join(f"{k} {_kb(v)}" for k, v in sorted(self.weights.items(), key=lambda kv: -kv[1]))
            lines.append(f"  weights     {w}")
        n_compute = [o for o in self.ops if o.kind not in ("quantize", "dequantize")]
        kinds = Counter(o.kind for o in n_compute)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  ops         {len(n_compute)} ({summary})")
        qd = Counter(o.kind for o in self.ops if o.kind in ("quantize", "dequantize"))
        if qd:
            lines.append(f"              + {qd.get('quantize', 0)} QUANTIZE, {qd.get('dequantize', 0)} DEQUANTIZE")
        lines.append("")
        rows = [(t, c) for t, c in sorted(self.counts().items()) if not set(c) <= {"quantize", "dequantize"}]
        width = max([24] + [len(t) + 2 for t, _ in rows])  # UNIDIRECTIONAL_SEQUENCE_LSTM is 28 long
        lines.append(f"  {'op type':<{width}}{'count':>6}  kinds")
        for op_type, c in rows:
            kinds_text = ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
            lines.append(f"  {op_type:<{width}}{sum(c.values()):>6}  {kinds_text}")
        if self.weight_formats:
            lines.append("")
            lines.append(f"  {'weights by op':<40}{'format':<16}{'read':<12}{'rounding':<10}{'SQNR':>8}")
            for w in self.weight_formats:
                fmt = f"int{w.bits} " + (f"block {w.block_size}" if w.granularity == "block" else w.granularity)
                label = f"{w.op_type} '{w.name}'"
                lines.append(f"  {label[:39]:<40}{fmt:<16}{w.read:<12}{w.rounding:<10}{w.sqnr_db:>6.1f}dB")
        if self.search:
            lines.append("")
            lines.append(f"  mixed-precision search ({len(self.search) - 1} steps):")
            lines.extend(f"    {st}" for st in self.search)
        if self.fallbacks:
            lines.append("")
            lines.append(f"  kept float ({len(self.fallbacks)}):")
            for o in self.fallbacks:
                lines.append(f"    {o.op_type} '{o.name}': {o.reason or 'no integer kernel used'}")
        if self.warnings:
            lines.append("")
            lines.append("  warnings:")
            lines.extend(f"    {w}" for w in self.warnings)
        return "\n".join(lines)


def _kb(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.2f} MB"


# save(): a model of more pieces than one and up to this size is joined and verified in memory
# (then kept as `model`); 0: none, every model's pieces are written as they are and the written
# file verified, mapped. Writing the pieces costs less than joining them: m512 dynamic int8
# (25 MB), the join alone took 14 ms of a 74 ms call (its 25 MB copy to fresh memory).
SAVE_JOIN_MAX = 0


class QuantizationResult:
    """The quantized model (`model`: flatbuffer bytes) and its `report`. The model is held
    as its pieces (`pieces`: builder views and the constants' own payloads): save() streams
    them and verifies the written file, memory mapped; `model` joins and verifies them once,
    on first use
    (for a model past 2 GB, in the large layout, save() it: `model` makes one bytes object
    of the whole file). Such a model reads the constants it passed through from the input
    file until it is saved: save it before overwriting its input.

    The report is built when first read (quantize returns sooner: most callers only save
    the model); reading `module` first settles it, so it always describes the module as
    quantize returned it."""

    def __init__(self, pieces: list, report: QuantizationReport | Callable[[], QuantizationReport],
                 module: ModuleOp | None = None, stats: Any = None) -> None:
        self.pieces = pieces
        self._report = report  # or the function that builds it
        self._module = module  # the quantized IR
        self.stats = stats  # the calibration statistics it used (auto: the ranges it picked)

    @property
    def report(self) -> QuantizationReport:
        r = self._report
        if not isinstance(r, QuantizationReport):
            r = self._report = r()
        return r

    @report.setter
    def report(self, value: QuantizationReport) -> None:
        self._report = value

    @property
    def module(self) -> ModuleOp | None:
        """The quantized IR."""
        self.report  # noqa: B018 - described before the caller can change it
        return self._module

    @module.setter
    def module(self, value: ModuleOp | None) -> None:
        self.report  # noqa: B018
        self._module = value

    def __repr__(self) -> str:
        return f"QuantizationResult(report={self.report!r})"

    @property
    def model(self) -> bytes:
        pieces = self.pieces
        if len(pieces) != 1 or not isinstance(pieces[0], bytes):
            from tflquant.tflite.verify import verify_model

            data = b"".join(pieces)
            verify_model(data)  # (held as the one verified piece only once it passes)
            self.pieces = pieces = [data]
        return pieces[0]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model atomically (a temporary file beside `path`, then a rename). Its
        pieces are written as they are and the written file verified, memory mapped (no
        copy of the model in memory; `model`, once read, is written as it is: verified
        already): a model that fails the checks is never written."""
        from tflquant.fileio import atomic_write_parts
        from tflquant.tflite.verify import verify_model

        pieces = self.pieces
        if len(pieces) != 1 and sum(len(p) for p in pieces) <= SAVE_JOIN_MAX:
            pieces = [self.model]  # (joins and verifies: one write of one buffer)
        atomic_write_parts(path, pieces, check=None if len(pieces) == 1 and isinstance(pieces[0], bytes) else verify_model)

    def __bytes__(self) -> bytes:
        return self.model


# ---------------------------------------------------------------------------------------
# Option checks
# ---------------------------------------------------------------------------------------


def check_options(mode: str, io_type: str, bias_type: str | None, representative_dataset: Any) -> None:
    if mode not in MODES:
        raise TflquantError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if io_type not in IO_TYPES:
        raise TflquantError(f"unknown io_type {io_type!r}: choose one of {', '.join(IO_TYPES)}")
    if io_type not in _IO_FOR_MODE[mode]:
        raise TflquantError(
            f"io_type {io_type} does not go with mode {mode}: "
            f"{mode} takes io_type {' or '.join(_IO_FOR_MODE[mode])}"
            + (" (int16 I/O needs --mode int16x8)" if io_type == "int16" else "")
            + (" (int8/uint8 I/O needs --mode int8)" if io_type in ("int8", "uint8") and mode == "int16x8" else "")
        )
    if bias_type is not None:
        if mode not in _BIAS_FOR_MODE:
            raise TflquantError(f"bias_type applies to int8 and int16x8 only, not to mode {mode}")
        if bias_type not in _BIAS_FOR_MODE[mode]:
            raise TflquantError(f"bias_type {bias_type} does not go with mode {mode}: use {' or '.join(_BIAS_FOR_MODE[mode])}")
    if mode in STATIC_MODES and representative_dataset is None:
        raise TflquantError(
            f"mode {mode} needs representative data to calibrate activation ranges: "
            "give representative_dataset= (on the command line: --calibration DATA.npz)"
        )


def default_allow_float(mode: str, io_type: str, allow_float: bool | None) -> bool:
    """Integer-only int8 (int8/uint8 I/O) means every op integer, unless asked otherwise."""
    if allow_float is not None:
        return allow_float
    return not (mode == "int8" and io_type in ("int8", "uint8"))


def _load(model: Any) -> tuple[ModuleOp, bytes, str]:
    from tflquant.tflite.reader import read_flatbuffer

    import mmap

    if isinstance(model, mmap.mmap):  # a mapped model (the rerun of the measured fallback)
        data, label = model, "<mapped model>"
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        label = "<bytes>"
    elif isinstance(model, (str, os.PathLike)):
        from tflquant.fileio import map_file

        label = os.fspath(model)
        data = map_file(label, "TFLite model")  # memory-mapped: weights are read in place, never copied
    else:
        raise TflquantError(f"model must be a path to a .tflite file or its bytes, got {type(model).__name__}")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TflquantError(f"{label}: not a TFLite model (no 'TFL3' file identifier)")
    return read_flatbuffer(data, name=label), data, label


# ---------------------------------------------------------------------------------------
# quantize
# ---------------------------------------------------------------------------------------


def quantize(
    model: str | os.PathLike[str] | bytes,
    mode: str = "int8",
    representative_dataset: str | os.PathLike[str] | Mapping[str, Any] | Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    io_type: str = "float32",
    per_channel: bool = True,
    allow_float: bool | None = None,
    bias_type: str | None = None,
    progress: bool = False,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_samples: int | None = None,
    min_weight_elements: int = 1024,
    save_stats: str | os.PathLike[str] | None = None,
    calibration_budget: int | str | None = None,
    calibration_threads: int | None = 1,
    verify: str = "end",
    bias_correction: bool | None = None,
    clip_weights: bool = False,
    cross_layer_equalization: bool = False,
    smooth_quant: float | None = None,
    keep_float: Sequence[str] = (),
    target: str = "litert",
    weight_bits: int = 8,
    granularity: str = "channel",
    block_size: int = 32,
    op_bits: Mapping[str, Any] | Sequence[str] | None = None,
    recipe: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    calibration_method: str = "minmax",
    percentile: float = 99.99,
    weight_rounding: str = "auto",
    op_precision: Mapping[str, str] | Sequence[str] | None = None,
    target_sqnr: float | None = None,
    accuracy_fn: Callable[[bytes], float] | None = None,
    max_drop: float | None = None,
    workers: int | None = None,
    validation_dataset: Any = None,
    _calibration: Any = None,
) -> QuantizationResult:
    """Quantize a float TFLite model.

    After the pass pipeline, the measured fallback keeps float the ops that quantizing
    ruins: int8 / int16x8 measure the suspicious ops (division-like, exponential, ...) on 8
    calibration samples against the same op kept float (tflquant.compare.op_losses); dynamic
    measures the hybrid ops' outputs (with data) or their int8 weights. The pipeline then
    reruns with those ops kept float, and the report gives each one's measurement.

    model: path to a .tflite file, or its bytes.
    mode: "int8" (full integer, float fallback), "int16x8", "dynamic", "weight-only"
      (integer weights read through DEQUANTIZE, float compute: every runtime and delegate
      runs it) or "float16".
    representative_dataset: needed by int8 and int16x8; optional for dynamic, where its first
      samples measure the hybrid ops' outputs (else their weights: the measured fallback).
      A path to a .npz (one array per input, samples first, keyed by input tensor name or in
      input order), a dict of such arrays, or an iterable / function returning an iterable
      that yields one sample at a time as a list (input order) or dict (by name) of arrays,
      like TF's `representative_dataset`.
    io_type: "float32" keeps float model I/O; "int8"/"uint8" (mode int8) make the model
      integer only (integer I/O, every op integer: see allow_float); "int16" (mode
      int16x8) gives int16 inputs and outputs.
    per_channel: per-channel weight scales (False: per tensor, for accelerators).
    allow_float: let ops without an integer kernel stay float; False fails listing them.
      Default (None): False for integer-only int8 (io_type int8/uint8), True otherwise.
    bias_type: "int32" or "int64" (int16x8 only); default int32 for int8, int64 for 16x8.
    progress: show a calibration progress bar when stderr is a terminal.
    batch_size: calibration samples run through the reference interpreter at once.
    max_samples: use at most this many calibration samples (per signature).
    min_weight_elements: dynamic mode: weights smaller than this stay float.
    save_stats: also write the calibration statistics (JSON keyed by tensor name) there,
      for `tflquant-opt -p 'annotate-calibration{stats-file="..."},...'`: with histograms
      and per-sample ranges, so any calibration method replays from it, and the range this
      run's method chose for each tensor ("chosen"). With smooth_quant, the per-channel
      ranges it used go next to it (`smooth_ranges_path`: STATS.smooth.json), for
      `smooth-quant{stats-file="..."}`.
    calibration_method: (int8, int16x8) how each activation's range comes from the
      calibration data: "minmax" (default: the global min and max), "moving-average" (AEQ's
      0.95 moving average of each sample's min and max, in sample order), "percentile"
      (the 100 - p and p percentiles), "mse" (least expected quantization error for the
      activation type), "entropy" (TensorRT's KL divergence method). Other than minmax,
      calibration also keeps histograms (see tflquant.calibration.observers).
      "auto": a method per tensor, picked by measured effect on the model output
      (tflquant.calibration.auto: candidate models quantized and run with the integer
      kernels on held-out calibration samples; the report's calibration_methods says which
      method each tensor got).
    percentile: the percentile method's p, in (50, 100].
    calibration_budget: (auto) how many candidate models auto measures (default 40), a
      time in seconds ("90s": the answer then depends on the machine's speed) or both
      ("40,90s"): its time is about that many quantizations plus runs of the samples.
    calibration_threads: BLAS threads while calibrating (1: batches already keep numpy
      busy and threads stall on a loaded machine; None: numpy's default).
    verify: "end" checks the IR once after the whole pipeline; "each" after every pass
      (as tflquant-opt does: slower, names the pass that broke the IR); "none" skips it.
    bias_correction: (int8, int16x8) correct conv/FC biases for the mean error that weight
      rounding causes, from the calibrated per-channel input means (the `correct-bias` pass).
      Default (None): on for int16x8 (+3 to +38 dB on the reference models), off for int8
      (where the fixed 1/256 output scales of softmax/logistic leave it within noise).
    clip_weights: (int8, int16x8) per-channel weight scales chosen by expected output error
      on the calibration data instead of absmax (the `clip-weights` pass).
    cross_layer_equalization: (int8, int16x8) balance the weight ranges of consecutive
      conv / FC layers before calibration (the `equalize-cross-layer` pass; off by default).
    smooth_quant: (int8, int16x8) alpha in [0, 1] (0.5: the paper's): move per-channel
      activation outliers after layer norms into the weights that read them (the
      `smooth-quant` pass, off by default); costs one more float run of the calibration data
      (the per-channel ranges it needs).
    keep_float: (int8, int16x8, dynamic) ops to leave float, by output tensor name or op
      type ("SOFTMAX"): selective quantization (the `keep-float` pass). A name matching no
      op is an error; with integer I/O the ops need allow_float=True.
    weight_bits: (dynamic, weight-only) 8, 4 or 2 (ternary; no blocks).
    granularity: (dynamic, weight-only) "channel", "tensor" or "block" (4-bit only: blocks of
      block_size (32, 64, 128, 256) along the weight's last dimension, fp16 scales; where the
      op has no blockwise kernel, a global setting falls back to channel).
    op_bits: per-op overrides, by output tensor name or op type: {"lm_head": 8} or
      {"FULLY_CONNECTED": "4/block/64"} (bits, or "BITS/GRANULARITY[/BLOCK]"), or a list of
      "NAME=..." strings. A name matching no weighted op, or a format the op cannot take,
      is an error.
    op_precision: (int8, int16x8) mixed precision by hand, by output tensor name or op type:
      {"SOFTMAX": "int16", "attn/out": "float"} or a list of "NAME=PRECISION" strings
      (int8, int16 or float); the mode gives the other ops' precision. Boundaries between
      int8 and int16 ops get requantizing QUANTIZE ops (the `op-precision` pass). With
      integer I/O, a model input or output at the other precision is requantized to the
      I/O type.
    target_sqnr: (int8) automatic mixed precision: starting from int8, promote the ops that
      cost the most output SQNR to int16 (or float) until the model output's SQNR against
      the float model (the mean of per-sample SQNRs of the worst output, on held-out
      samples) reaches this many dB, at the least
      estimated LiteRT latency (tflquant.mixed_precision; the report's `search` lists each
      step). accuracy_fn / max_drop: the same search to a user metric: accuracy_fn(model
      bytes) -> score (higher is better), until it is at most max_drop below the float
      model's score; accuracy_fn must give the same score for the same model bytes (each
      mix is scored once). workers: candidate models evaluated in that many processes (default:
      the CPU count, at most 4); the result does not depend on it. validation_dataset: held-out
      samples (same forms as representative_dataset) the search measures the output on
      (default: the first calibration samples, at most 32 and a quarter of them, held out of
      the search's candidates' calibration; the returned model is calibrated on all; step 0
      of report.search says which samples were measured).
    weight_rounding: (dynamic, weight-only) "auto" (default), "gptq", "mse" or "nearest".
      With representative_dataset, calibration runs the float model once and records each
      FULLY_CONNECTED input's X^T X (tflquant.calibration.hessian); "gptq" rounds those
      layers' weights to the least output error on that data (GPTQ) and needs the data;
      "mse" picks MSE-optimal clipped scales; "auto" is GPTQ where a layer has data, MSE
      clipping for other 4-bit weights and round to nearest for other 8-bit weights.
    recipe: a JSON file (or dict) holding any of mode, weight_bits, granularity,
      block_size, keep_float, op_bits, op_precision, min_weight_elements, weight_rounding: it sets the options left at
      their defaults here (the CLI: the options not on the command line).
    target: "litert" (default) or "micro" (TFLite Micro; int8 and int16x8 modes): static
      shapes, ops Micro lacks rewritten into ops it has, and one TflquantError listing every
      op it still cannot run (type, output tensor, why). Micro also judges the float ops
      (fallbacks, QUANTIZE/DEQUANTIZE of float I/O): they need its float kernels.
    """
    from tflquant.calibration.stats import write_stats
    from tflquant.ir import make_context
    from tflquant.pipeline import pipeline_spec, run_pipeline
    from tflquant.tflite.writer import model_pieces

    if recipe is not None:
        r = load_recipe(recipe)
        given = {"mode": mode, "weight_bits": weight_bits, "granularity": granularity, "block_size": block_size,
                 "keep_float": keep_float, "op_bits": op_bits, "op_precision": op_precision, "min_weight_elements": min_weight_elements,
                 "weight_rounding": weight_rounding}
        defaults = {"mode": "int8", "weight_bits": 8, "granularity": "channel", "block_size": 32, "keep_float": (),
                    "op_bits": None, "op_precision": None, "min_weight_elements": 1024, "weight_rounding": "auto"}
        lists = ("keep_float", "op_bits", "op_precision")
        merged = {k: (r[k] if k in r and (given[k] == defaults[k] or (k in lists and not given[k])) else given[k]) for k in given}
        mode, weight_bits, granularity, block_size = merged["mode"], merged["weight_bits"], merged["granularity"], merged["block_size"]
        keep_float, op_bits, min_weight_elements = merged["keep_float"], merged["op_bits"], merged["min_weight_elements"]
        op_precision, weight_rounding = merged["op_precision"], merged["weight_rounding"]
    if target_sqnr is not None or accuracy_fn is not None or max_drop is not None:
        if cross_layer_equalization or smooth_quant is not None:  # they transform the model before its one calibration
            raise TflquantError("cross_layer_equalization and smooth_quant do not combine with the mixed-precision search "
                                "(target_sqnr / accuracy_fn) yet: quantize without them, or without the search")
        from tflquant.mixed_precision import search_quantize

        return search_quantize(
            model, mode=mode, representative_dataset=representative_dataset, target_sqnr=target_sqnr,
            accuracy_fn=accuracy_fn, max_drop=max_drop, workers=workers, validation_dataset=validation_dataset, io_type=io_type, per_channel=per_channel,
            allow_float=allow_float, bias_type=bias_type, batch_size=batch_size, max_samples=max_samples,
            calibration_threads=calibration_threads, verify=verify, bias_correction=bias_correction,
            clip_weights=clip_weights, keep_float=keep_float, target=target, op_precision=op_precision,
            calibration_method=calibration_method, percentile=percentile, calibration_budget=calibration_budget,
        )
    op_bit_entries = op_bits_entries(op_bits)
    precision_entries = op_precision_entries(op_precision)
    mixed16 = any(e.endswith("=int16") for e in precision_entries)
    if mixed16 and mode == "int8" and bias_type not in (None, "int32", "int64"):
        raise TflquantError(f"bias_type must be int32 or int64, got {bias_type!r}")
    check_options(mode, io_type, None if mixed16 and mode == "int8" else bias_type, representative_dataset)
    from tflquant.pipeline import TARGETS

    if target not in TARGETS:
        raise TflquantError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    allow_float = default_allow_float(mode, io_type, allow_float)
    if bias_correction is None:
        bias_correction = mode == "int16x8" or mixed16
    if verify not in ("end", "each", "none"):
        raise TflquantError(f"verify must be 'end', 'each' or 'none', got {verify!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TflquantError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 1):
        raise TflquantError(f"max_samples must be a positive integer, got {max_samples!r}")
    seconds: dict[str, float] = {}
    t_start = t = time.perf_counter()
    ctx = make_context()
    module, data, label = _load(model)
    seconds["load"] = time.perf_counter() - t

    report_warnings: list[str] = []
    from tflquant.calibration.stats import check_method, select, with_chosen

    check_method(calibration_method, percentile, auto=True)
    auto = calibration_method == "auto"
    if calibration_method != "minmax" and mode not in STATIC_MODES:
        raise TflquantError(f"calibration_method applies to the int8 and int16x8 modes, not to mode {mode}")
    method_bits = 16 if mode == "int16x8" else 8
    stats = None
    smooth_ranges = None
    calib = _calibration
    check_samples = None
    weight_stats = None  # dynamic / weight-only with data: the layers' X^T X (calibration.hessian)
    if mode in STATIC_MODES and calib is not None:  # handed over by the mixed-precision search
        stats = calib.stats
        source, kept_items = _keeping_first(representative_dataset, CHECK_SAMPLES)
        check_samples = _main_samples(module, source if kept_items is None else kept_items, CHECK_SAMPLES)
    elif mode in STATIC_MODES:
        from tflquant.calibration.auto import calibrate_keeping
        from tflquant.calibration.driver import calibrate

        t = time.perf_counter()
        smooth_ranges, representative_dataset = _outlier_transforms(
            ctx, module, mode, representative_dataset, cross_layer_equalization, smooth_quant,
            batch_size=batch_size, max_samples=max_samples, threads=calibration_threads,
        )
        if save_stats is not None and smooth_ranges:  # for smooth-quant{stats-file=...} at replay
            write_stats(smooth_ranges_path(save_stats), smooth_ranges)
        source, kept_items = _keeping_first(representative_dataset, CHECK_SAMPLES)
        calib = (calibrate_keeping if auto else calibrate)(
            module,
            source,
            where=os.fspath(representative_dataset) if isinstance(representative_dataset, str | os.PathLike) else "calibration data",
            batch_size=batch_size,
            progress=progress,
            max_samples=max_samples,
            threads=calibration_threads,
            channel_means=bias_correction or clip_weights,
            histograms=calibration_method != "minmax" or save_stats is not None,
            # one fixed method: only what it reads (auto and save_stats: every method's)
            method=calibration_method if calibration_method != "auto" and save_stats is None else None,
        )
        stats = calib.stats
        report_warnings += calib.warnings
        check_samples = _main_samples(module, source if kept_items is None else kept_items, CHECK_SAMPLES)
        seconds["calibrate"] = time.perf_counter() - t
        if save_stats is not None and not auto:
            used = {"method": calibration_method, **({"percentile": float(percentile)} if calibration_method == "percentile" else {})}
            write_stats(save_stats, with_chosen(stats, calibration_method, percentile, method_bits), used)
    elif representative_dataset is not None and mode in ("dynamic", "weight-only") and weight_rounding != "nearest":
        # the layers' input statistics for weight rounding (one float run); dynamic: 4 samples
        # for the check, which runs the float model
        weight_stats, source, check_samples = _weight_statistics(module, mode, representative_dataset, batch_size, progress, max_samples, calibration_threads, seconds, report_warnings)
    elif representative_dataset is not None and mode == "dynamic":
        # 4 samples: the check runs the float model, the only other cost of this mode
        check_samples = _main_samples(module, _keeping_first(representative_dataset, 4)[0], 4)
    elif representative_dataset is not None:
        report_warnings.append(f"mode {mode} needs no calibration data; the representative dataset was not used")

    def run(module: ModuleOp, keep: Sequence[str]) -> str:
        spec = pipeline_spec(
            mode,
            io_type=io_type,
            per_channel=per_channel,
            allow_float=allow_float,
            bias_type=bias_type,
            min_weight_elements=min_weight_elements,
            bias_correction=bias_correction,
            clip_weights=clip_weights,
            cross_layer_equalization=cross_layer_equalization,
            smooth_quant=smooth_quant,
            keep_float=keep,
            target=target,
            calibration_method=calibration_method,
            percentile=percentile,
            weight_bits=weight_bits,
            granularity=granularity,
            block_size=block_size,
            op_bits=op_bit_entries,
            op_precision=precision_entries,
            weight_rounding=weight_rounding,
        )
        if smooth_ranges:  # what smooth-quant reads, on every copy of the model this runs on
            from tflquant.passes.smooth_quant import attach_ranges

            attach_ranges(module, smooth_ranges)
        # the statistics go to this run's annotate-calibration only (no process-wide state)
        run_pipeline(ctx, module, spec, verify=verify == "each", stats=stats, weight_statistics=weight_stats)
        if verify == "end":
            _verify_output(module, spec)
        return spec

    user_keep = [keep_float] if isinstance(keep_float, str) else list(keep_float or ())
    auto_result = None
    if auto and calib is not None:
        from dataclasses import replace

        def run_with(module: ModuleOp, keep: Sequence[str], st: Any) -> str:
            nonlocal stats
            kept, stats = stats, st
            try:
                return run(module, keep)
            finally:
                stats = kept

        calibration_method = "minmax"  # from here on: the ranges auto picked, as they are
        stats, auto_result = _auto_calibrate(module, data, calib, run_with, user_keep, calibration_budget, percentile, method_bits)
        seconds["auto"] = auto_result.seconds
        if save_stats is not None:
            write_stats(save_stats, {k: replace(calib.stats[k], chosen=r.chosen) for k, r in stats.items()}, {"method": "auto"})
    t = time.perf_counter()
    float_weights = _float_weights(module, min_weight_elements) if mode in ("dynamic", "weight-only") else {}
    weight_db: dict[str, float] = {}  # weight name -> SQNR, measured once for the check and the report
    # the measured fallback judges int8 weights; int4 and blocks are what the user asked for
    measure_weights = mode == "dynamic" and weight_bits == 8 and granularity != "block" and not op_bit_entries
    if weight_stats is not None:
        weight_stats.retain = measure_weights  # the fallback's rerun rounds the same layers again
    spec = run(module, user_keep)
    seconds["passes"] = time.perf_counter() - t

    # The measured fallback: ops that quantizing destroys stay float (the pipeline reruns).
    measured: dict[str, str] = {}  # output tensor name -> why it stays float
    if mode in STATIC_MODES and check_samples is not None:
        t = time.perf_counter()
        try:
            losses = _destroyed_ops(module, data, check_samples, select(stats, calibration_method, percentile, method_bits) if stats is not None else None)
        except TflquantError as e:  # the check must never cost the user the model
            losses = {}
            report_warnings.append(f"the measured fallback was skipped: {e}")
        if losses and allow_float:
            measured = {name: f"kept float: {_measured_text(l)}" for name, l in losses.items()}
        else:
            report_warnings += [
                f"{l.op_type} '{l.name}' loses the signal in {mode} ({_measured_text(l)}); integer-only keeps it integer: "
                "allow float ops (allow_float=True, --allow-float) to keep it float"
                for l in losses.values()
            ]
        seconds["check"] = time.perf_counter() - t
    elif measure_weights:
        t = time.perf_counter()
        try:
            measured = _poor_weights(module, float_weights, weight_db) if check_samples is None else _poor_hybrid_outputs(module, data, check_samples)
        except TflquantError as e:
            report_warnings.append(f"the measured fallback was skipped: {e}")
        seconds["check"] = time.perf_counter() - t
    if measured:
        t = time.perf_counter()
        fresh = _load(data)[0]
        try:
            spec, module = run(fresh, user_keep + list(measured)), fresh
        except TflquantError as e:  # keep the model the pipeline made
            report_warnings.append(f"the measured fallback could not keep {', '.join(map(repr, measured))} float: {e}")
            measured = {}
        seconds["check"] += time.perf_counter() - t

    t = time.perf_counter()
    from tflquant.fileio import release_pages

    release_pages(data)  # the float weights have been read: their mapped pages need not stay resident
    out, _large = model_pieces(module)
    if not _large:  # constants passed through are views of the mapped input: copied, so that
        # overwriting or truncating the input file later cannot change (or crash) save / model
        from tflquant.fileio import mapped_file

        out = [bytes(p) if mapped_file(p) is not None else p for p in out]
    seconds["write"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start

    size_after = sum(len(p) for p in out)

    def report() -> QuantizationReport:  # built when first read (QuantizationResult.report)
        r = QuantizationReport(
            model=label,
            mode=mode,
            io_type=io_type,
            pipeline=spec,
            size_before=len(data),
            size_after=size_after,
            seconds=seconds,
            ops=describe_ops(module, mode),
            calibration_samples=calib.samples if calib else 0,
            calibration_batches=calib.batches if calib else 0,
            warnings=report_warnings,
            calibration_methods=dict(sorted(auto_result.methods.items())) if auto_result else {},
            calibration_auto=auto_result.lines() if auto_result else [],
        )
        for o in r.ops:
            if o.kind == "float" and o.name in measured:
                o.reason = measured[o.name]
        r.inputs, r.outputs = _io_summary(module)
        r.weights = weight_bytes(module)
        if mode in ("dynamic", "weight-only"):
            r.weight_formats = weight_formats(module, float_weights, weight_db)
        return r

    return QuantizationResult(out, report, module, stats)


RECIPE_KEYS = ("mode", "weight_bits", "granularity", "block_size", "keep_float", "op_bits", "op_precision", "min_weight_elements", "weight_rounding")


def _weight_statistics(module: ModuleOp, mode: str, data: Any, batch_size: int, progress: bool, max_samples: int | None,
                       threads: int | None, seconds: dict[str, float], warnings: list[str]) -> tuple[Any, Any, Any]:
    """(the layers' input statistics, the data as read, the dynamic-mode check samples or None)."""
    from tflquant.calibration.hessian import collect

    t = time.perf_counter()
    source, kept = _keeping_first(data, 4)
    where = os.fspath(data) if isinstance(data, str | os.PathLike) else "calibration data"
    store, result = collect(module, source, where=where, batch_size=batch_size, progress=progress, max_samples=max_samples, threads=threads)
    if result is not None:
        warnings += result.warnings
    seconds["statistics"] = time.perf_counter() - t
    # (a model without such layers ran nothing: its samples are still unread)
    check = _main_samples(module, source if kept is None or result is None else kept, 4) if mode == "dynamic" else None
    return store, source, check


def load_recipe(recipe: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A recipe (JSON file or dict) checked: known keys with values of the right kind."""
    import json

    where = "recipe"
    if isinstance(recipe, (str, os.PathLike)):
        from tflquant.fileio import read_bytes

        where = f"recipe {os.fspath(recipe)}"
        try:
            recipe = json.loads(read_bytes(recipe, "recipe").decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise TflquantError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(recipe, Mapping):
        raise TflquantError(f"{where}: must be a JSON object with keys {', '.join(RECIPE_KEYS)}")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise TflquantError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a recipe holds {', '.join(RECIPE_KEYS)}")
    out = dict(recipe)
    for k in ("weight_bits", "block_size", "min_weight_elements"):
        if k in out and (not isinstance(out[k], int) or isinstance(out[k], bool)):
            raise TflquantError(f"{where}: {k} must be an integer, got {out[k]!r}")
    for k in ("mode", "granularity", "weight_rounding"):
        if k in out and not isinstance(out[k], str):
            raise TflquantError(f"{where}: {k} must be a string, got {out[k]!r}")
    if "keep_float" in out:
        kf = out["keep_float"]
        if isinstance(kf, str):
            kf = [kf]
        if not isinstance(kf, list) or not all(isinstance(n, str) for n in kf):
            raise TflquantError(f"{where}: keep_float must be a list of tensor names or op types")
        out["keep_float"] = kf
    for k, check in (("op_bits", op_bits_entries), ("op_precision", op_precision_entries)):
        if k in out:
            try:
                check(out[k])
            except TflquantError as e:
                raise TflquantError(f"{where}: {e}") from None
    return out


def _entries(value: Mapping[str, Any] | Sequence[str] | str | None, format_value: Callable[[str, Any], str], check: Callable[[list[str]], Any]) -> list[str]:
    """Per-op options as "NAME=VALUE" strings: from a string, a list of strings or a mapping
    {name: value} (each value rendered by format_value), checked by `check`."""
    if not value:
        return []
    if isinstance(value, str):
        entries = [value]
    elif isinstance(value, Mapping):
        entries = [f"{k}={format_value(k, v)}" for k, v in value.items()]
    else:
        entries = [str(e) for e in value]
    check(entries)
    return entries


def op_precision_entries(op_precision: Mapping[str, str] | Sequence[str] | None) -> list[str]:
    """Per-op precisions as "NAME=PRECISION" strings (checked: int8, int16 or float)."""
    from tflquant.passes.op_precision import parse_entries

    return _entries(op_precision, lambda _k, v: v, parse_entries)


def _op_bits_value(name: str, v: Any) -> str:
    """One op_bits value: 4, "4/block/32" or {"bits": 4, "granularity": ..., "block_size": ...}."""
    if not isinstance(v, Mapping):
        return str(v)
    unknown = set(v) - {"bits", "granularity", "block_size"}
    if unknown or "bits" not in v:
        raise TflquantError(f"op_bits[{name!r}]: give bits (and optionally granularity, block_size), got {dict(v)}")
    return "/".join(str(x) for x in (v["bits"], v.get("granularity") or ("block" if "block_size" in v else None), v.get("block_size")) if x is not None)


def op_bits_entries(op_bits: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """Per-op overrides as "NAME=BITS[/GRANULARITY[/BLOCK]]" strings (checked)."""
    from tflquant.passes.quantize_weights import parse_op_bits

    return _entries(op_bits, _op_bits_value, parse_op_bits)


def weight_formats(module: ModuleOp, originals: Mapping[str, Any], known: Mapping[str, float] | None = None) -> list[WeightInfo]:
    """Per op reading a quantized weight (directly, or through DEQUANTIZE / the blockwise
    DEQUANTIZE-RESHAPE): its format and SQNR against the float weight `originals[name]`
    (`known`: SQNRs already measured, by weight name)."""
    import numpy as np

    from xdsl.dialects.builtin import FloatAttr

    from tflquant.ir import RELEASE_MIN_FILE, release_payload, value_name
    from tflquant.passes.quantize_weights import SQNR_ATTR, blockwise_sqnr_db, nested_ops

    # (each class judged once: xDSL's op classes are ABCs, whose isinstance is slow)
    is_tfl, is_const, is_dequantize, is_reshape = class_test(tfl.TflOp), class_test(tfl.ConstOp), class_test(tfl.DequantizeOp), class_test(tfl.ReshapeOp)
    is_quantized = class_test((UniformQuantizedType, BlockwiseQuantizedType))

    def source(v: Any) -> tuple[Any, str, int | None] | None:
        """(quantized const op, read, block) behind operand v."""
        o = v.owner
        block = None
        if is_reshape(o) and is_dequantize(o.inputs[0].owner):
            dq = o.inputs[0].owner
            c = dq.inputs[0].owner
            if is_const(c) and isinstance(t := c.result.type, TensorType) and len(t.get_shape()) == 2:
                block = t.get_shape()[1]
            o = dq
        read = "hybrid"
        if is_dequantize(o):
            o, read = o.inputs[0].owner, "dequantize"
        if is_const(o) and isinstance(t := o.result.type, TensorType) and is_quantized(t.element_type):
            return o, read, block
        return None

    out = []
    for op in nested_ops(module):
        if not is_tfl(op) or is_dequantize(op) or is_reshape(op) or not op.results:
            continue
        for v in op.operands:
            src = source(v)
            if src is None:
                continue
            c, read, block = src
            e = c.result.type.element_type
            wname = value_name(c.result) or ""
            w = originals.get(wname)
            q = c.numpy()
            db = float("nan")
            if known and wname in known:
                gran = "block" if isinstance(e, BlockwiseQuantizedType) or block else ("channel" if e.per_axis else "tensor")
                block = e.block_size.data if isinstance(e, BlockwiseQuantizedType) else block
                db = known[wname]
            elif isinstance(e, BlockwiseQuantizedType):
                gran, block = "block", e.block_size.data
                if w is not None and w.size == q.size:
                    db = blockwise_sqnr_db(np.asarray(w, np.float32).reshape(q.shape), q, e.scale_array(), block)
                    release_payload(w, RELEASE_MIN_FILE)  # a big mapped model's pages of it may go
            else:
                s = e.scale_array().astype(np.float32)
                shape = [1] * q.ndim
                if e.per_axis:
                    shape[e.axis.data] = -1
                gran = "block" if block else ("channel" if e.per_axis else "tensor")
                measured = c.attributes.get(SQNR_ATTR)  # quantize-weights measured it while rounding
                if w is not None and w.size == q.size and isinstance(measured, FloatAttr):
                    db = measured.value.data
                elif w is not None and w.size == q.size:
                    db = weight_sqnr_db(np.asarray(w, np.float32).reshape(q.shape), q, s.reshape(shape), 0.0)
                    release_payload(w, RELEASE_MIN_FILE)  # a big mapped model's pages of it may go
            how = c.attributes.get("tflquant.rounding")
            out.append(WeightInfo(tfl.op_type(op), value_name(op.results[0]) or "", wname, e.bits, gran, block, round(db, 2), read, how.data if how is not None else "nearest"))
    return out


# ---------------------------------------------------------------------------------------
# The measured fallback
# ---------------------------------------------------------------------------------------

CHECK_SAMPLES = 8  # calibration samples the measured fallback runs (the model's first function)
_WHY = {
    "DIV": "its output range is set by the smallest divisors, and LiteRT's int8 DIV loses small "
    "dividends when the divisors span a wide range",
    "RSQRT": "its output range is set by the smallest inputs, which the quantized input cannot resolve",
    "LOG": "its output range is set by the smallest inputs, which the quantized input cannot resolve",
    "POW": "its output range is set by the extreme inputs",
    "SQRT": "its slope near 0 is unbounded",
    "EXP": "its output grows exponentially with its input",
}


def _measured_text(loss: Any) -> str:
    q = "fails in LiteRT" if loss.quantized_db == float("-inf") else f"measured {loss.quantized_db:.1f} dB"
    why = f"; {_WHY[loss.op_type]}" if loss.op_type in _WHY else ""
    note = f" ({loss.note})" if loss.note else ""
    return f"quantized it {q} vs float output {loss.float_db:.1f} dB on {loss.samples} calibration samples{note}{why}"


def smooth_ranges_path(save_stats: str | os.PathLike[str]) -> str:
    """Where --save-stats puts smooth-quant's per-channel ranges: STATS.json -> STATS.smooth.json."""
    root, ext = os.path.splitext(os.fspath(save_stats))
    return f"{root}.smooth{ext or '.json'}"


def _outlier_transforms(ctx: Any, module: ModuleOp, mode: str, data: Any, equalize: bool, smooth_quant: float | None,
                        **calibrate_options: Any) -> tuple[Any, Any]:
    """cross_layer_equalization / smooth_quant: transform the float module in place before
    it is calibrated (the pipeline's own runs of these passes then find it done: they mark
    what they touched). Returns the per-channel ranges smooth-quant reads (from a first
    calibration run; attached again to every fresh copy the pipeline runs on) and the
    data, a one-shot iterable read into a list so that it can be read twice."""
    from tflquant.pipeline import outlier_passes, run_pipeline

    passes = outlier_passes(mode, equalize, smooth_quant)
    if not passes:
        return None, data
    ranges = None
    if smooth_quant is not None:
        from tflquant.passes.smooth_quant import attach_ranges, channel_ranges

        if data is not None and not isinstance(data, str | os.PathLike | Mapping) and not callable(data):
            data = list(data)
        ranges = channel_ranges(module, data, **calibrate_options)
        attach_ranges(module, ranges)
    run_pipeline(ctx, module, ",".join(passes))
    return ranges, data


def _keeping_first(data: Any, n: int) -> tuple[Any, list[Any] | None]:
    """(the data as calibration reads it, the list its first n items go to): an iterable or a
    function returning one is read once, so its first items are kept for the measured
    fallback; a .npz path is loaded here once; arrays need nothing (None)."""
    if isinstance(data, str | os.PathLike):
        from tflquant.calibration.dataset import load_npz

        return load_npz(data), None
    if data is None or isinstance(data, Mapping):
        return data, None
    kept: list[Any] = []

    def keep(items: Iterable[Any]) -> Iterable[Any]:
        for item in items:
            if len(kept) < n:
                kept.append(item)
            yield item

    return ((lambda: keep(data())) if callable(data) else keep(data)), kept


def _main_samples(module: ModuleOp, data: Any, n: int) -> list[Any] | None:
    """The first n samples of the model's first function (one array per input, samples
    first), or None (no data for it, or data it cannot read: calibration said what it used)."""
    from tflquant.calibration.driver import _plan
    from tflquant.calibration.dataset import batches

    fns = [o for o in module.ops if isinstance(o, func.FuncOp)]
    if not fns or data is None:
        return None
    if isinstance(data, Mapping):  # checked and read only as far as needed
        data = {k: (v[:n] if getattr(v, "ndim", 0) else v) for k, v in data.items()}
    try:
        for entry, _, samples in _plan(module, data, "calibration data"):
            if entry.fn is fns[0]:
                first = [s for _, s in zip(range(n), samples)]
                return next(iter(batches(first, n)), None) if first else None
    except TflquantError:
        return None
    return None


WEIGHT_FLOOR_DB = 20.0  # dynamic mode: int8 weights below this SQNR stay float


def _float_weights(module: ModuleOp, min_elements: int) -> dict[str, Any]:
    """Name -> float32 values (views, no copy) of the constants quantize-weights may quantize."""
    import math

    from tflquant.ir import value_name

    from xdsl.dialects.builtin import Float32Type

    from tflquant.passes.quantize_weights import nested_ops

    out = {}
    least = min(min_elements, 1024)
    const_op, f32 = class_test(tfl.ConstOp), class_test(Float32Type)
    for op in nested_ops(module):
        # (a float32 constant's payload is float32: its element type says it before any numpy)
        if const_op(op) and _is_tensor(t := op.result.type) and f32(t.element_type):
            shape = t.get_shape()
            if all(d >= 0 for d in shape) and math.prod(shape) < least:
                continue  # too small to be quantized: no payload read
            if (name := value_name(op.result)):
                values = op.numpy()
                if values.size >= least:
                    out[name] = values
    return out


def weight_sqnr_db(w: Any, q: Any, scale: Any, zero_point: Any) -> float:
    """SQNR (dB) of float weights `w` against integer values `q` dequantized as (q - zero_point)
    * scale (both broadcast against w), in float32 with BLAS dots, slice by slice along the
    first axis so the temporaries stay in cache (99.0 when exact): quantize-weights' sqnr_db,
    the measure its weights carry (tflquant.sqnr) where rounding took it."""
    from tflquant.passes.quantize_weights import sqnr_db

    return sqnr_db(w, q, scale, zero_point)


def _poor_weights(module: ModuleOp, originals: dict[str, Any], measured: dict[str, float] | None = None) -> dict[str, str]:
    """Output tensor name -> reason, for every hybrid op with an int8 weight whose SQNR
    against the float weight is below WEIGHT_FLOOR_DB (dynamic mode has no activations to
    measure: the weights are what quantizing changes). Each SQNR goes into `measured`."""
    import numpy as np

    from xdsl.dialects.builtin import FloatAttr

    from tflquant.dialects.quant import quantized_element
    from tflquant.ir import RELEASE_MIN_FILE, release_payload, value_name
    from tflquant.passes.quantize_weights import SQNR_ATTR

    def sqnr(w: Any, q: Any, qt: Any) -> float:
        shape = [1] * q.ndim
        if qt.per_axis:
            shape[qt.axis.data] = -1
        s = qt.scale_array().astype(np.float32).reshape(shape)
        z = qt.zero_point_array().astype(np.float32).reshape(shape)
        return weight_sqnr_db(w, q, s, z)

    out: dict[str, str] = {}
    # op class -> (a TflOp, a ConstOp): each class judged once (xDSL's op classes are ABCs,
    # whose isinstance is slow), not every op and operand of the model
    is_tfl, is_const = class_test(tfl.TflOp), class_test(tfl.ConstOp)

    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        for op in fn.body.walk():
            if not is_tfl(op) or not op.results:
                continue
            # the op's quantized constants with a float original, then (only for those ops) its kind
            weights = [v for v in op.operands if is_const(v.owner) and (value_name(v) or "") in originals
                       and quantized_element(v.type) is not None]
            if not weights or _classify(op) != "hybrid":
                continue
            for v in weights:
                qt = quantized_element(v.type)
                w = originals[value_name(v) or ""]
                known = v.owner.attributes.get(SQNR_ATTR)  # measured while quantize-weights rounded it
                if w.shape != tuple(v.type.get_shape()):
                    continue
                if isinstance(known, FloatAttr):
                    db = known.value.data
                else:
                    db = sqnr(w, v.owner.numpy(), qt)
                    release_payload(w, RELEASE_MIN_FILE)  # a big mapped model's pages of it may go
                if measured is not None and value_name(v):
                    measured[value_name(v) or ""] = round(db, 2)
                name = value_name(op.results[0])
                if db < WEIGHT_FLOOR_DB and name:
                    out[name] = (
                        f"kept float: its int8 weights '{value_name(v)}' measured {db:.1f} dB against the float "
                        f"weights (below {WEIGHT_FLOOR_DB:.0f} dB)"
                    )
    return out


def _poor_hybrid_outputs(module: ModuleOp, float_model: bytes, samples: list[Any]) -> dict[str, str]:
    """Dynamic mode with data: output tensor name -> reason, for every hybrid op whose output
    with the int8 weights measures below WEIGHT_FLOOR_DB against the float output."""
    from tflquant.compare import hybrid_losses

    return {
        l.name: f"kept float: with its int8 weights its output measured {l.quantized_db:.1f} dB against the float "
        f"output on {l.samples} samples (below {WEIGHT_FLOOR_DB:.0f} dB)"
        for l in hybrid_losses(float_model, module, samples, len(samples[0]))
        if l.quantized_db < WEIGHT_FLOOR_DB
    }


def _destroyed_ops(module: ModuleOp, float_model: bytes, samples: list[Any], stats: Any = None) -> dict[str, Any]:
    """Output tensor name -> OpLoss of every integer op that quantizing destroys, measured by
    tflquant.compare.op_losses on the suspicious ops only (none: nothing runs)."""
    from tflquant.compare import destroys, op_losses, suspicious_ops

    ops = suspicious_ops(module, stats)
    if not ops:
        return {}
    losses = op_losses(float_model, module, samples, CHECK_SAMPLES, ops=ops)
    return {l.name: l for l in losses if destroys(l)}


def _auto_calibrate(module: ModuleOp, data: bytes, calib: Any, run: Callable[..., str], keep: list[str],
                    budget: int | None, percentile: float, bits: int) -> tuple[Any, Any]:
    """calibration_method="auto": each trial quantizes a fresh copy of the model with the
    pipeline `run` builds (its annotate-calibration takes the ranges as they are: minmax)."""
    from tflquant.calibration.auto import auto_calibrate

    def quantize_with(st: Any) -> ModuleOp:
        fresh = _load(data)[0]
        run(fresh, keep, st)
        return fresh

    return auto_calibrate(module, calib, quantize_with, budget=budget, percentile=percentile, bits=bits)


def _verify_output(module: ModuleOp, spec: str) -> None:
    from xdsl.utils.exceptions import VerifyException

    from tflquant.dialects._unchecked import verify_module

    try:
        verify_module(module)
    except VerifyException as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TflquantError(
            f"internal error: the IR is invalid after the pipeline '{spec}': {first} "
            "(rerun with verify='each' to find the pass)"
        ) from None


# ---------------------------------------------------------------------------------------
# What the output model holds
# ---------------------------------------------------------------------------------------

_SKIP = ("tfl.const", "tfl.no_value", "tfl.variable", "tfl.sparse_const", "tfl.pseudo_const", "func.return")




# (each class judged once: xDSL's attribute and op classes are ABCs, whose isinstance is slow)
_is_tensor, _is_op = class_test(TensorType), class_test(Operation)
_is_uniform, _is_blockwise = class_test(UniformQuantizedType), class_test(BlockwiseQuantizedType)


def _elem_kind(t: Any) -> str | None:
    """'q8' / 'q16' / 'q' (other quantized), 'f' (float), 'i' (integer/bool), None (not a tensor)."""
    if not _is_tensor(t):
        return None
    e = t.element_type
    if _is_uniform(e):
        return "q8" if e.bits == 8 else "q16" if e.bits == 16 else "q"
    if _is_blockwise(e):
        return "q"
    return "f" if tfl.is_float_tensor(t) else "i"


_CONST_NAMES = frozenset(("tfl.const", "tfl.sparse_const", "tfl.pseudo_const"))


def _is_const(v: Any) -> bool:
    owner = getattr(v, "owner", None)
    return _is_op(owner) and owner.name in _CONST_NAMES


def _classify(op: Operation) -> str:
    """What an op computes in: quantize, dequantize, int16, int8, hybrid, float or integer."""
    name = op.name
    if name == "tfl.quantize":
        k = "quantize"
    elif name == "tfl.dequantize":
        k = "dequantize"
    else:
        # activations: a state variable (the int16 cell state of an int8 LSTM) does not count
        act_kinds: set[str | None] = {_elem_kind(v.type) for v in op.results}
        weight_kinds: set[str | None] = set()
        for v in op.operands:
            owner = v.owner
            owner_name = owner.name if _is_op(owner) else None
            if owner_name in _CONST_NAMES:
                weight_kinds.add(_elem_kind(v.type))
            elif owner_name != "tfl.variable":
                act_kinds.add(_elem_kind(v.type))
        if "q16" in act_kinds:
            k = "int16"
        elif "q8" in act_kinds or "q" in act_kinds:
            k = "int8"
        elif "f" in act_kinds:
            k = "hybrid" if not weight_kinds.isdisjoint(("q8", "q16", "q")) else "float"
        else:
            k = "integer"
    return k


def _reason(op: Operation, kind: str, bits: int) -> str | None:
    """Why an op computes in float in a static mode (None when it does not)."""
    if kind != "float":
        return None
    for key in ("fallback_reason", "tflquant.fallback_reason"):
        if isinstance(a := op.attributes.get(key), StringAttr):
            return a.data
    if op.name == "tfl.opaque" and tfl.op_type(op) in ("WHILE", "IF"):
        return "control flow: the values it passes to its subgraphs stay float; the ops inside them are quantized"
    if op.name == "tfl.opaque":
        return "custom or unmodelled op: tflquant has no integer form of it"
    if any(_elem_kind(v.type) == "i" for v in op.operands if not _is_const(v)):
        return "reads integer data and produces float (kept as in the float model)"
    try:
        from tflquant.passes._quant_ops import has_kernel
    except ImportError:  # pragma: no cover - the static passes are part of the package
        return None
    if tfl.op_type(op) == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        return "tflquant quantizes LSTMs to int8 activations only (LiteRT's 8x8_16 kernel, mode int8)"
    if not has_kernel(op, bits):
        return f"LiteRT has no int{bits} kernel for {tfl.op_type(op)}"
    return "an input or output has no calibrated range, or an input stayed float"


def describe_ops(module: ModuleOp, mode: str = "int8") -> list[OpInfo]:
    from tflquant.ir import value_name

    bits = 16 if mode == "int16x8" else 8

    out = []
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        for op in fn.body.walk():
            if op.name in _SKIP or op.name.startswith("quant."):
                continue
            kind = _classify(op)
            name = (value_name(op.results[0]) if op.results else None) or ""
            out.append(OpInfo(tfl.op_type(op), name, kind, _reason(op, kind, bits) if mode in STATIC_MODES else None))
    return out


def _io_summary(module: ModuleOp) -> tuple[list[str], list[str]]:
    from tflquant.ir import describe, value_name

    fns = [o for o in module.ops if isinstance(o, func.FuncOp)]
    if not fns or not fns[0].body.blocks:
        return [], []
    main = fns[0]
    ins = [f"{value_name(a) or describe(a)} {_type_text(a.type)}" for a in main.body.blocks[0].args]
    ret = main.body.blocks[-1].last_op
    outs = [f"{value_name(v) or describe(v)} {_type_text(v.type)}" for v in (ret.operands if ret else ())]
    return ins, outs


def _elem_name(e: Any) -> str:
    from tflquant.dialects.quant import UniformQuantizedType
    from tflquant.ir import numpy_dtype_of_element

    if isinstance(e, UniformQuantizedType):
        return ("" if e.is_signed else "u") + f"int{e.bits}"
    from tflquant.dialects.quant import BlockwiseQuantizedType

    if isinstance(e, BlockwiseQuantizedType):
        return f"int{e.bits}"
    try:
        return numpy_dtype_of_element(e).name
    except TflquantError:
        return str(e)


def weight_bytes(module: ModuleOp) -> dict[str, int]:
    """Bytes of constant data per element type (int8, float32, ...)."""
    out: dict[str, int] = {}
    for op in module.walk():
        if op.name != "tfl.const" or not op.results:
            continue
        t = op.results[0].type
        value = op.properties.get("value")
        data = getattr(getattr(value, "data", None), "data", None)
        if isinstance(t, TensorType) and isinstance(data, (bytes, memoryview)):
            k = _elem_name(t.element_type)
            n = len(data) if k != "int4" else (len(data) + 1) // 2  # int4: two per byte in the file
            out[k] = out.get(k, 0) + n
            if hasattr(t.element_type, "block_size"):  # blockwise: its fp16 scales tensor
                out["float16"] = out.get("float16", 0) + len(t.element_type.scales.data.data)
    return out


def _type_text(t: Any) -> str:
    from tflquant.dialects.quant import UniformQuantizedType

    if not isinstance(t, TensorType):
        return str(t)
    e = t.element_type
    shape = "x".join("?" if d < 0 else str(d) for d in t.get_shape())
    if isinstance(e, UniformQuantizedType):
        base = ("" if e.is_signed else "u") + f"int{e.bits}"
        if not e.per_axis:
            return f"{base}[{shape}] (scale {e.scale:.6g}, zero point {e.zero_point})"
        return f"{base}[{shape}]"
    return f"{_elem_name(e)}[{shape}]"
