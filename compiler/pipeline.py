"""One place that maps each quantization mode to its pass pipeline, and runs pipelines.

A pipeline is an xDSL spec string (`pass-a,pass-b{opt=1}`): `tflquant quantize
--print-pipeline` prints it and `tflquant-opt -p '<spec>'` replays it pass by pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.exceptions import VerifyException

from tflquant.errors import TflquantError
from tflquant.passes import get_all_passes

MODES = ("int8", "int16x8", "dynamic", "weight-only", "float16")
WEIGHT_MODES = ("dynamic", "weight-only")  # the modes that take weight_bits / granularity / op_bits
TARGETS = ("litert", "micro")


def pipeline_spec(
    mode: str,
    *,
    io_type: str = "float32",
    per_channel: bool = True,
    allow_float: bool = True,
    bias_type: str | None = None,
    stats_file: str | None = None,
    min_weight_elements: int = 1024,
    bias_correction: bool | None = None,
    clip_weights: bool = False,
    cross_layer_equalization: bool = False,
    smooth_quant: float | None = None,
    keep_float: Sequence[str] = (),
    target: str = "litert",
    weight_bits: int = 8,
    granularity: str = "channel",
    block_size: int = 32,
    op_bits: Sequence[str] = (),
    calibration_method: str = "minmax",
    percentile: float = 99.99,
    weight_rounding: str = "auto",
    op_precision: Sequence[str] = (),
) -> str:
    """The pass pipeline spec for a mode and its options.

    bias_correction: (int8, int16x8) run `correct-bias` after insert-fake-quant, which
    subtracts each output channel's mean weight-rounding error from conv/FC biases using the
    calibrated input means. Default (None): on for int16x8, off for int8 (see
    passes/correct_bias.py for what it measured).
    clip_weights: (int8, int16x8) run `clip-weights` first: per-channel weight scales chosen
    by expected output error on the calibration data instead of absmax.
    cross_layer_equalization, smooth_quant: (int8, int16x8) outlier transforms of the float
    model before calibration, off by default (benchmarks/README.md has the measurements):
    `equalize-cross-layer` balances weight ranges of conv/FC pairs, `smooth-quant{alpha=A}`
    (smooth_quant = A, the migration strength in [0, 1], 0.5 in the paper) moves per-channel
    activation outliers after layer norms into the weights that read them. The driver
    calibrates the transformed model; smooth-quant takes its per-channel ranges from a first
    calibration run (see passes/smooth_quant.py).
    keep_float: (int8, int16x8, dynamic) output tensor names or op types of ops to leave
    float (`keep-float`, first in the pipeline).
    weight_bits, granularity, block_size, op_bits: (dynamic, weight-only) how weights are
    stored: 8 or 4 bits, per channel, per tensor or in blocks of block_size along the last
    dimension; op_bits: "NAME=BITS[/GRANULARITY[/BLOCK]]" overrides by output tensor name or
    op type (see passes/quantize_weights.py). weight-only: integer weights read through
    DEQUANTIZE, float compute (every runtime and delegate runs it).
    op_precision: (int8, int16x8) mixed precision by hand: "NAME=PRECISION" entries (output
    tensor name or op type, then int8, int16 or float) for `op-precision`, first in the
    pipeline (see passes/op_precision.py); the mode gives the other ops' precision. With an
    int16 entry, biases of int16 ops default to int64 and bias correction to on, as in 16x8.
    weight_rounding: (dynamic, weight-only) how weights are rounded (quantize-weights'
    weight-rounding): "nearest", "mse" (MSE-clipped scales), "gptq" (GPTQ where the driver
    hands over the layers' input statistics: run_pipeline(weight_statistics=...)) or "auto"
    (default: GPTQ where a layer has statistics, else MSE clipping for 4-bit weights and
    round to nearest for 8-bit ones; tflquant.calibration.weight_rounding.resolve_method).
    calibration_method, percentile: (int8, int16x8) how annotate-calibration picks each
    tensor's range from the statistics (minmax, moving-average, percentile, mse, entropy;
    see tflquant.calibration.stats.select); the spec carries them so tflquant-opt replays
    them from a stats file.
    target: the runtime the model is for. "litert" (default): LiteRT, no Micro lowering,
    dynamic batch sizes kept. "micro": TFLite Micro, in the static modes only (it has no
    hybrid kernels for `dynamic` and cannot dequantize the float16 weights of `float16`):
    static shapes (`freeze-batch-size`, `fold-constants`), ops Micro lacks rewritten into
    ops it has (`legalize-for-micro`), then `check-micro` refuses, in one error, every op
    left that Micro has no kernel for (type, rank, Prepare check). That holds for every op
    of the model: integer ops, the QUANTIZE/DEQUANTIZE of float I/O and float fallback
    ops alike (those need Micro's float kernels).
    """
    if mode not in MODES:
        raise TflquantError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if target not in TARGETS:
        raise TflquantError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    if target == "micro" and mode not in ("int8", "int16x8"):
        why = {"dynamic": "hybrid ops (float activations, int8 weights)", "weight-only": "integer weights read through DEQUANTIZE into float ops"}.get(mode, "float16 weights read through DEQUANTIZE")
        raise TflquantError(
            f"mode {mode} writes {why}, which TFLite Micro has no kernels for: "
            "for TFLite Micro use mode int8 (integer only with io_type int8) or int16x8"
        )
    outlier = outlier_passes(mode, cross_layer_equalization, smooth_quant)
    if mode not in WEIGHT_MODES and (weight_bits != 8 or granularity != "channel" or op_bits):
        raise TflquantError(f"weight_bits, granularity and op_bits apply to the dynamic and weight-only modes, not to mode {mode}")
    from tflquant.calibration.weight_rounding import ROUNDINGS

    if weight_rounding not in ROUNDINGS:
        raise TflquantError(f"unknown weight rounding {weight_rounding!r}: choose one of {', '.join(ROUNDINGS)}")
    if mode not in WEIGHT_MODES and weight_rounding != "auto":
        raise TflquantError(f"weight_rounding applies to the dynamic and weight-only modes, not to mode {mode}")
    keep = _keep_float(keep_float, mode)
    op_precision = [op_precision] if isinstance(op_precision, str) else list(op_precision or ())
    precision = _op_precision(op_precision, mode)
    if mode == "float16":
        return "cast-weights-f16"
    if mode in WEIGHT_MODES:
        from tflquant.passes.quantize_weights import check_format, parse_op_bits

        check_format(weight_bits, granularity, block_size, "weight options")
        op_bits = [op_bits] if isinstance(op_bits, str) else list(op_bits or ())
        parse_op_bits(op_bits)
        extra = ""
        if weight_bits != 8 or granularity != "channel":
            extra += f" bits={weight_bits} granularity={granularity}"
        if granularity == "block" or any("/block" in e for e in op_bits):
            extra += f" block-size={block_size}"
        if mode == "weight-only":
            extra += " weight-only=true"
        if weight_rounding != "nearest":
            extra += f" weight-rounding={weight_rounding}"
        if op_bits:
            extra += " op-bits=" + ",".join(_quote(e) for e in op_bits)
        # fold-bias-add: one float ADD fewer after each hybrid layer (the same values)
        return f"{keep}fold-bias-add,quantize-weights{{min-elements={min_weight_elements} per-channel={_b(per_channel)}{extra}}}"
    act = "int8" if mode == "int8" else "int16"
    has16 = mode == "int16x8" or any(e.endswith("=int16") for e in op_precision)
    if bias_correction is None:
        bias_correction = has16
    bias = bias_type or ("int64" if has16 else "int32")  # int8 ops take int32 whatever it says
    from tflquant.calibration.stats import check_method

    check_method(calibration_method, percentile)
    calib_opts = [f'stats-file="{stats_file}"'] if stats_file else []
    if calibration_method != "minmax":
        calib_opts.append(f"method={calibration_method}")
        if calibration_method == "percentile":
            calib_opts.append(f"percentile={float(percentile)!r}")
        if act == "int16" and calibration_method in ("mse", "entropy"):
            calib_opts.append("bits=16")
    calib = f"annotate-calibration{{{' '.join(calib_opts)}}}" if calib_opts else "annotate-calibration"
    # TFLite Micro needs static shapes and has no run-time shape arithmetic (SHAPE -> ... ->
    # REDUCE_PROD -> PACK -> RESHAPE). LiteRT models keep their dynamic batch, as the TF
    # converter's do. Calibration ran on the original module: names of the tensors these
    # passes keep are unchanged, so the ranges still apply.
    micro = target == "micro"
    static = ["freeze-batch-size", "fold-constants"] if micro else []
    passes = [
        *([keep[:-1]] if keep else []),
        *([precision] if precision else []),
        *static,
        *outlier,
        calib,
        "fold-bias-add",
        f"insert-fake-quant{{activations={act} per-channel={_b(per_channel)}"
        + (" requantize-inputs=true" if precision and io_type != "float32" else "") + "}",
        *([f"clip-weights{{corrected={_b(bias_correction)}}}"] if clip_weights else []),
        *(["correct-bias"] if bias_correction else []),
        "propagate-scales",
        f"quantize-control-flow{{activations={act}}}",
        *(["quantize-lstm"] if mode == "int8" else []),  # LiteRT's integer LSTM has int8 activations only
        "rewrite-integer",
        f"legalize-float-fallback{{strict={_b(not allow_float)}}}",
        f"quantize-bias{{bias-type={bias}}}",
    ]
    if io_type != "float32":
        passes.append(f"set-io-types{{type={io_type}}}")
    if micro:
        # ops TFLite Micro lacks as ops it has (same bytes, int8 SQRT within a step), then
        # refuse, in one error, every op it still cannot run
        passes += ["legalize-for-micro", "check-micro"]
    return ",".join(passes)


def _keep_float(names: Sequence[str], mode: str) -> str:
    """`keep-float{ops=...},` for the names, or "" without any."""
    if names is None:
        return ""
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    if not names:
        return ""
    if mode == "float16":
        raise TflquantError("keep_float applies to the int8, int16x8 and dynamic modes and to weight-only (float16 casts every weight)")
    for n in names:
        if not isinstance(n, str) or not n:
            raise TflquantError(f"keep_float: {n!r} is not a tensor name or op type (a non-empty string)")
    quoted = ",".join(_quote(n) for n in names)
    return f"keep-float{{ops={quoted}}},"


def _op_precision(entries: Sequence[str], mode: str) -> str:
    """`op-precision{ops=...}` for "NAME=PRECISION" entries (checked), or "" without any."""
    if not entries:
        return ""
    if mode not in ("int8", "int16x8"):
        raise TflquantError(f"op_precision (mixed int8 / int16 / float) applies to the int8 and int16x8 modes, not to mode {mode}")
    from tflquant.passes.op_precision import parse_entries

    parse_entries(entries)
    return f"op-precision{{ops={','.join(_quote(e) for e in entries)}}}"


def _quote(n: str) -> str:
    return '"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def outlier_passes(mode: str, equalize: bool, smooth_quant: float | None) -> list[str]:
    """The outlier transforms asked for (float to float, before calibration)."""
    if not equalize and smooth_quant is None:
        return []
    if mode not in ("int8", "int16x8"):
        raise TflquantError(f"cross_layer_equalization and smooth_quant apply to the int8 and int16x8 modes, not to mode {mode}")
    if smooth_quant is not None and (isinstance(smooth_quant, bool) or not 0.0 <= float(smooth_quant) <= 1.0):
        raise TflquantError(f"smooth_quant is the migration strength alpha in [0, 1] (0.5 in the paper), got {smooth_quant!r}")
    return (["equalize-cross-layer"] if equalize else []) + ([f"smooth-quant{{alpha={float(smooth_quant)!r}}}"] if smooth_quant is not None else [])


# spec and the pass registry's entries -> its passes, when every one is immutable (below)
_PARSED: dict[tuple[str, tuple[tuple[str, Callable[[], type[ModulePass]]], ...]], tuple[ModulePass, ...]] = {}


def parse_pipeline(spec: str, callback: Callable[[ModulePass, ModuleOp, ModulePass], None] | None = None) -> PassPipeline:
    """The pipeline of a spec. Its passes are made once per spec (and registry) when each is a
    frozen dataclass, as every tflquant pass is: such a pass cannot change, so every run may
    share it (making them converts each option from text: ~0.15 ms of a small model's quantize)."""
    from xdsl.utils.exceptions import ArgSpecParseError

    available = get_all_passes()
    key = (spec, tuple(available.items()))
    passes = _PARSED.get(key)
    if passes is None:
        try:
            passes = PassPipeline.parse_spec(available, spec).passes
        except (Exception, ArgSpecParseError) as e:  # ValueError, PassFailedException; ArgSpecParseError is a BaseException
            raise TflquantError(f"bad pipeline {spec!r}: {e}") from None
        if len(_PARSED) < 256 and all(_immutable(type(p)) for p in passes):
            _PARSED[key] = passes
    return PassPipeline(passes, callback)


def _immutable(cls: type) -> bool:
    params = cls.__dict__.get("__dataclass_params__")  # (the class's own @dataclass, not one it inherits)
    return params is not None and params.frozen


def run_pipeline(ctx: Context, module: ModuleOp, spec: str, verify: bool = True, stats: Mapping[str, Any] | None = None, weight_statistics: Any = None) -> None:
    """Run a pipeline, verifying the module after every pass (as mlir-opt does).

    stats: calibration statistics in memory (tensor name -> Range): the spec's
    `annotate-calibration` passes without a stats-file attach these (for this run only),
    with the range each pass's `method` picks.
    weight_statistics: the layers' input statistics (tflquant.calibration.hessian.InputHessians)
    for the passes that round weights from data (quantize-weights: `with_weight_statistics`).
    """

    from tflquant.dialects._unchecked import verify_module

    def check(prev: ModulePass, mod: ModuleOp, _next: ModulePass) -> None:
        if not verify:
            return
        try:
            verify_module(mod)
        except VerifyException as e:
            raise TflquantError(f"IR is invalid after pass '{prev.name}': {e}") from None

    pipeline = parse_pipeline(spec, check)
    if stats is not None:
        from tflquant.passes.annotate_calibration import AnnotateCalibration

        passes = (p.with_stats(stats) if isinstance(p, AnnotateCalibration) and not p.stats_file else p for p in pipeline.passes)
        pipeline = PassPipeline(tuple(passes), pipeline.callback)
    if weight_statistics is not None:
        passes = (p.with_weight_statistics(weight_statistics) if hasattr(p, "with_weight_statistics") else p for p in pipeline.passes)
        pipeline = PassPipeline(tuple(passes), pipeline.callback)
    pipeline.apply(ctx, module)
    if verify and pipeline.passes:
        check(pipeline.passes[-1], module, pipeline.passes[-1])
