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

MODES = ("int8", "int16x8", "dynamic", "float16")
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
    keep_float: Sequence[str] = (),
    target: str = "litert",
) -> str:
    """The pass pipeline spec for a mode and its options.

    bias_correction: (int8, int16x8) run `correct-bias` after insert-fake-quant, which
    subtracts each output channel's mean weight-rounding error from conv/FC biases using the
    calibrated input means. Default (None): on for int16x8, off for int8 (see
    passes/correct_bias.py for what it measured).
    clip_weights: (int8, int16x8) run `clip-weights` first: per-channel weight scales chosen
    by expected output error on the calibration data instead of absmax.
    keep_float: (int8, int16x8, dynamic) output tensor names or op types of ops to leave
    float (`keep-float`, first in the pipeline).
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
        why = "hybrid ops (float activations, int8 weights)" if mode == "dynamic" else "float16 weights read through DEQUANTIZE"
        raise TflquantError(
            f"mode {mode} writes {why}, which TFLite Micro has no kernels for: "
            "for TFLite Micro use mode int8 (integer only with io_type int8) or int16x8"
        )
    keep = _keep_float(keep_float, mode)
    if mode == "float16":
        return "cast-weights-f16"
    if mode == "dynamic":
        # fold-bias-add: one float ADD fewer after each hybrid layer (the same values)
        return f"{keep}fold-bias-add,quantize-weights{{min-elements={min_weight_elements} per-channel={_b(per_channel)}}}"
    act = "int8" if mode == "int8" else "int16"
    if bias_correction is None:
        bias_correction = mode == "int16x8"
    bias = bias_type or ("int32" if mode == "int8" else "int64")
    calib = f"annotate-calibration{{stats-file=\"{stats_file}\"}}" if stats_file else "annotate-calibration"
    # TFLite Micro needs static shapes and has no run-time shape arithmetic (SHAPE -> ... ->
    # REDUCE_PROD -> PACK -> RESHAPE). LiteRT models keep their dynamic batch, as the TF
    # converter's do. Calibration ran on the original module: names of the tensors these
    # passes keep are unchanged, so the ranges still apply.
    micro = target == "micro"
    static = ["freeze-batch-size", "fold-constants"] if micro else []
    passes = [
        *([keep[:-1]] if keep else []),
        *static,
        calib,
        "fold-bias-add",
        f"insert-fake-quant{{activations={act} per-channel={_b(per_channel)}}}",
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
        raise TflquantError("keep_float applies to the int8, int16x8 and dynamic modes (float16 casts every weight)")
    for n in names:
        if not isinstance(n, str) or not n:
            raise TflquantError(f"keep_float: {n!r} is not a tensor name or op type (a non-empty string)")
    quoted = ",".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return f"keep-float{{ops={quoted}}},"


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def parse_pipeline(spec: str, callback: Callable[[ModulePass, ModuleOp, ModulePass], None] | None = None) -> PassPipeline:
    from xdsl.utils.exceptions import ArgSpecParseError

    try:
        return PassPipeline.parse_spec(get_all_passes(), spec, callback)
    except (Exception, ArgSpecParseError) as e:  # ValueError, PassFailedException; ArgSpecParseError is a BaseException
        raise TflquantError(f"bad pipeline {spec!r}: {e}") from None


def run_pipeline(ctx: Context, module: ModuleOp, spec: str, verify: bool = True, stats: Mapping[str, Any] | None = None) -> None:
    """Run a pipeline, verifying the module after every pass (as mlir-opt does).

    stats: calibration statistics in memory (tensor name -> Range): the spec's
    `annotate-calibration` passes without a stats-file attach these (for this run only).
    """

    def check(prev: ModulePass, mod: ModuleOp, _next: ModulePass) -> None:
        if not verify:
            return
        try:
            mod.verify()
        except VerifyException as e:
            raise TflquantError(f"IR is invalid after pass '{prev.name}': {e}") from None

    pipeline = parse_pipeline(spec, check)
    if stats is not None:
        from tflquant.passes.annotate_calibration import AnnotateCalibration

        given = AnnotateCalibration.from_memory(stats)
        passes = (given if isinstance(p, AnnotateCalibration) and not p.stats_file else p for p in pipeline.passes)
        pipeline = PassPipeline(tuple(passes), pipeline.callback)
    pipeline.apply(ctx, module)
    if verify and pipeline.passes:
        check(pipeline.passes[-1], module, pipeline.passes[-1])
