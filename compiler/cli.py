"""The `tflquant` command: quantize, inspect, import, export.

Every failure the user can act on prints one line `tflquant: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from tflquant.calibration import DEFAULT_BATCH_SIZE
from tflquant.errors import TflquantError


def _cmd_inspect(a: argparse.Namespace) -> None:
    from tflquant.tflite.inspect import inspect_model

    print(inspect_model(a.model), end="")


def _driver(module: str) -> None:
    """The driver module imported the quick way (tflquant.dialects._startup; importing that
    package first imports xDSL's core so)."""
    from tflquant.dialects._startup import import_quietly

    import_quietly(module)


def _cmd_import(a: argparse.Namespace) -> None:
    from tflquant.fileio import atomic_write
    from tflquant.ir import print_module
    from tflquant.tflite.reader import load_model

    text = print_module(load_model(a.model))
    if a.output:
        atomic_write(a.output, text)
    else:
        sys.stdout.write(text)


def _cmd_export(a: argparse.Namespace) -> None:
    from tflquant.fileio import read_bytes
    from tflquant.ir import parse_module
    from tflquant.tflite.writer import write_model

    text = read_bytes(a.input, "IR file").decode("utf-8", errors="replace")
    module = parse_module(text, name=a.input)
    try:
        module.verify()
    except Exception as e:
        raise TflquantError(f"{a.input}: invalid IR: {e}") from None
    write_model(module, a.output)  # a model past 2 GB is streamed, never joined in memory


def _own_process() -> None:
    """Process-wide tuning the library leaves to whoever owns the process (the command does):
    calibration's activation arrays served from the heap (tflquant.calibration.heap), and the
    objects made so far (the imported modules and classes: they live as long as the process)
    moved out of the garbage collector's sight with gc.freeze(), so its full collections
    during the run and at exit do not walk them again (decoder_tiny dynamic int4: ~20 ms of
    a collection during the run, ~30 ms at exit). `main` given its arguments (called from
    another program) unfreezes them before it returns; a program that freezes objects itself
    is left alone."""
    from tflquant.calibration.heap import keep_arrays_on_heap

    keep_arrays_on_heap()
    if gc.get_freeze_count() == 0:
        gc.freeze()


def _apply_recipe(a: argparse.Namespace) -> None:
    """Fill the options the command line left out from --recipe (the command line wins)."""
    if a.recipe is not None:
        from tflquant.api import load_recipe, op_bits_entries, op_precision_entries

        r = load_recipe(a.recipe)
        for key in ("mode", "weight_bits", "granularity", "block_size", "min_weight_elements", "weight_rounding"):
            if getattr(a, key) is None and key in r:
                setattr(a, key, r[key])
        a.keep_float = (a.keep_float or []) + [n for n in r.get("keep_float", []) if n not in (a.keep_float or [])]
        a.op_bits = op_bits_entries(r.get("op_bits")) + (a.op_bits or [])
        a.op_precision = op_precision_entries(r.get("op_precision")) + (a.op_precision or [])  # later entries win
    defaults = {"mode": "int8", "weight_bits": 8, "granularity": "channel", "block_size": 32, "min_weight_elements": 1024, "weight_rounding": "auto"}
    for key, value in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)


def _weight_options(a: argparse.Namespace) -> dict:
    if a.mode not in ("dynamic", "weight-only"):
        if a.weight_bits != 8 or a.granularity != "channel" or a.op_bits:
            raise TflquantError(f"--weight-bits, --granularity and --op-bits apply to --mode dynamic and weight-only, not {a.mode}")
        if a.weight_rounding != "auto":
            raise TflquantError(f"--weight-rounding applies to --mode dynamic and weight-only, not {a.mode}")
        return {}
    return {"weight_bits": a.weight_bits, "granularity": a.granularity, "block_size": a.block_size, "op_bits": a.op_bits or (), "weight_rounding": a.weight_rounding}


def _cmd_quantize(a: argparse.Namespace) -> None:
    import warnings

    _driver("tflquant.api")
    from tflquant.api import default_allow_float, quantize
    from tflquant.pipeline import pipeline_spec

    allow_float = False if a.strict else (True if a.allow_float else None)
    _apply_recipe(a)
    _own_process()
    if a.print_pipeline:
        print(
            pipeline_spec(
                a.mode,
                io_type=a.io_type,
                per_channel=not a.per_tensor,
                allow_float=default_allow_float(a.mode, a.io_type, allow_float),
                bias_type=a.bias_type,
                min_weight_elements=a.min_weight_elements,
                bias_correction=a.bias_correction,
                clip_weights=a.clip_weights,
                cross_layer_equalization=a.equalize,
                smooth_quant=a.smooth_quant,
                keep_float=a.keep_float or (),
                target=a.target,
                op_precision=a.op_precision or (),
            calibration_method="minmax" if a.calibration_method == "auto" else a.calibration_method,
            percentile=a.percentile,
                **_weight_options(a),
            )
        )
        if a.output is None:
            return
    if a.output is None:
        raise TflquantError("quantize needs -o OUT.tflite (or --print-pipeline alone)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = quantize(
            a.model,
            mode=a.mode,
            representative_dataset=a.calibration,
            io_type=a.io_type,
            per_channel=not a.per_tensor,
            allow_float=allow_float,
            bias_type=a.bias_type,
            progress=not a.quiet,
            batch_size=a.batch_size,
            max_samples=a.max_samples,
            min_weight_elements=a.min_weight_elements,
            save_stats=a.save_stats,
            bias_correction=a.bias_correction,
            clip_weights=a.clip_weights,
            cross_layer_equalization=a.equalize,
            smooth_quant=a.smooth_quant,
            keep_float=a.keep_float or (),
            target=a.target,
            calibration_method=a.calibration_method,
            calibration_budget=a.calibration_budget,
            percentile=a.percentile,
            op_precision=a.op_precision or None,
            target_sqnr=a.target_sqnr,
            workers=a.workers,
            **_weight_options(a),
        )
    for w in caught:
        if not a.quiet:
            print(f"tflquant: warning: {w.message}", file=sys.stderr)
    result.save(a.output)
    if not a.quiet:
        print(result.report)
        print(f"wrote {a.output}")


def _cmd_compare(a: argparse.Namespace) -> None:
    _driver("tflquant.compare")
    from tflquant.compare import compare_models

    if a.max_samples < 1 or (a.worst is not None and a.worst < 1):
        raise TflquantError("--max-samples and --worst take a positive number")
    if a.label and len(a.label) != len(a.quantized_models):
        raise TflquantError(f"--label given {len(a.label)} times for {len(a.quantized_models)} quantized models: give one per model, in order")
    _own_process()
    import warnings

    with warnings.catch_warnings():  # numpy's notes on the reference run (empty means, overflow) are no user's concern
        warnings.simplefilter("ignore", RuntimeWarning)
        c = compare_models(a.float_model, a.quantized_models, a.data, max_samples=a.max_samples, labels=a.label or None)
    print(c.table(a.worst), end="")
    if a.csv:
        c.to_csv(a.csv)
        print(f"wrote {a.csv}")
    if a.html:
        c.to_html(a.html)
        print(f"wrote {a.html}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tflquant", description="Post-training quantization compiler for TFLite models.")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="quantize a float .tflite model")
    q.add_argument("model", help="float .tflite model")
    q.add_argument("-o", "--output", help="where to write the quantized .tflite")
    q.add_argument(
        "--mode",
        choices=["int8", "int16x8", "dynamic", "weight-only", "float16"],
        help="quantization mode (default int8); weight-only: integer weights read through DEQUANTIZE, float compute (every runtime and delegate)",
    )
    q.add_argument("--calibration", metavar="DATA.npz", help="representative dataset (int8, int16x8): one array per input, samples first, keyed by input tensor name or in input order")
    q.add_argument("--io-type", default="float32", choices=["float32", "int8", "uint8", "int16"], help="model input/output type (integer = integer only)")
    q.add_argument("--per-tensor", action="store_true", help="per-tensor weights instead of per-channel")
    q.add_argument(
        "--target",
        default="litert",
        choices=["litert", "micro"],
        help="runtime the model is for (default litert); micro: static shapes, ops TFLite Micro lacks rewritten, "
        "and an error listing any op it still cannot run (int8 and int16x8 modes)",
    )
    fallback = q.add_mutually_exclusive_group()
    fallback.add_argument("--strict", action="store_true", help="fail if any op would stay float (no float fallback; the default with --io-type int8/uint8)")
    fallback.add_argument("--allow-float", action="store_true", help="with --io-type int8/uint8: let ops without an integer kernel stay float inside")
    q.add_argument("--bias-type", choices=["int32", "int64"], help="bias storage type (default: int32 for int8, int64 for int16x8)")
    q.add_argument("--print-pipeline", action="store_true", help="print the pass pipeline spec for these options")
    q.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help=f"calibration samples run at once (default {DEFAULT_BATCH_SIZE})")
    q.add_argument("--max-samples", type=int, metavar="N", help="use at most N calibration samples")
    q.add_argument("--min-weight-elements", type=int, metavar="N", help="dynamic / weight-only: weights with fewer elements stay float (default 1024)")
    q.add_argument("--weight-bits", type=int, choices=[8, 4, 2], help="dynamic / weight-only: weight bits (default 8; 2: ternary, FULLY_CONNECTED reads it, other ops through DEQUANTIZE)")
    q.add_argument(
        "--granularity",
        choices=["channel", "tensor", "block"],
        help="dynamic / weight-only: one scale per output channel (default), per tensor, or per block of --block-size along the input dimension (4-bit)",
    )
    q.add_argument("--block-size", type=int, choices=[32, 64, 128, 256], help="block granularity: values per block (default 32)")
    q.add_argument(
        "--op-bits",
        action="append",
        metavar="NAME=BITS[/GRAN[/BLOCK]]",
        help="other weight bits for one op (output tensor name) or op type, e.g. lm_head=8 or FULLY_CONNECTED=4/block/64 (repeatable)",
    )
    q.add_argument(
        "--weight-rounding",
        choices=["nearest", "mse", "gptq", "auto"],
        help="dynamic / weight-only: nearest, mse (MSE-clipped scales), gptq (second-order rounding of FULLY_CONNECTED weights from "
        "the --calibration data) or auto (default: gptq where a layer has data, else mse for 4-bit and nearest for 8-bit weights)",
    )
    q.add_argument("--recipe", metavar="RECIPE.json", help="options from a JSON file: mode, weight_bits, granularity, block_size, keep_float, op_bits, op_precision, min_weight_elements, weight_rounding (the command line wins)")
    q.add_argument(
        "--op-precision",
        action="append",
        metavar="NAME=PRECISION",
        help="int8 / int16x8: mixed precision by hand: this op (output tensor name) or op type computes in int8, int16 or float, e.g. SOFTMAX=int16 or attn/out=float (repeatable)",
    )
    q.add_argument(
        "--target-sqnr",
        type=float,
        metavar="DB",
        help="int8: automatic mixed precision: promote the ops that cost the most to int16 or float until the output SQNR reaches DB, at the least estimated LiteRT latency (prints the path)",
    )
    q.add_argument("--workers", type=int, metavar="N", help="--target-sqnr: candidate models evaluated in N processes (default: CPUs, at most 4)")
    q.add_argument(
        "--bias-correction",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="correct conv/FC biases for the mean weight-rounding error (default: on for int16x8, off for int8)",
    )
    q.add_argument("--clip-weights", action="store_true", help="per-channel weight scales chosen by expected output error instead of absmax")
    q.add_argument("--equalize", action="store_true", help="int8 / int16x8: cross-layer equalization of conv/FC pairs before calibration (equalize-cross-layer)")
    q.add_argument(
        "--smooth-quant", nargs="?", const=0.5, type=float, metavar="ALPHA",
        help="int8 / int16x8: SmoothQuant, activation outliers after layer norms moved into the weights (alpha in [0, 1], default 0.5)",
    )
    q.add_argument(
        "--keep-float",
        action="append",
        metavar="NAME",
        help="leave this op float: an output tensor name or an op type such as SOFTMAX (repeatable)",
    )
    q.add_argument("--save-stats", metavar="STATS.json", help="also write the calibrated ranges (JSON keyed by tensor name)")
    q.add_argument(
        "--calibration-method",
        default="minmax",
        metavar="METHOD",
        help="int8 / int16x8: how each activation's range comes from the calibration data: minmax (default), "
        "moving-average (AEQ's), percentile (see --percentile), mse or entropy (TensorRT's), or auto "
        "(a method per tensor, by measured effect on the model output; the report lists them)",
    )
    q.add_argument("--calibration-budget", metavar="N|Ss|N,Ss", help="auto: candidate models to measure (default 40; each costs one quantization and a run of at most 32 calibration samples), seconds ('90s': the result then depends on the machine's speed), or both ('40,90s')")
    q.add_argument("--percentile", type=float, default=99.99, metavar="P", help="percentile method: keep the (100-P)..P percentiles, P in (50, 100] (default 99.99)")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report")
    q.set_defaults(func=_cmd_quantize)

    c = sub.add_parser("compare", help="per-tensor SQNR of a quantized model against its float original")
    c.add_argument("float_model", help="the float .tflite")
    c.add_argument("quantized_models", nargs="+", metavar="QUANT", help="quantized .tflite made from it (several: int8, 16x8, mixed... overlaid)")
    c.add_argument("data", metavar="DATA.npz", help="samples: one array per input, samples first (labels ignored); several signatures: '<signature>/<input>' keys")
    c.add_argument("--max-samples", type=int, default=64, metavar="N", help="use at most N samples (default 64)")
    c.add_argument("--worst", type=int, metavar="N", help="only the N tensors with the lowest SQNR, worst first")
    c.add_argument("--csv", metavar="FILE", help="write the TF QuantizationDebugger's per-layer CSV (its columns first, then tflquant's)")
    c.add_argument("--html", metavar="FILE", help="write one self-contained HTML page: per-tensor SQNR plot of every model, worst layers marked")
    c.add_argument("--label", action="append", metavar="NAME", help="name of each quantized model in the table, CSV and plot (repeat, in order; default: file names)")
    c.set_defaults(func=_cmd_compare)

    i = sub.add_parser("inspect", help="print a model's ops, tensors, types, quantization and sizes")
    i.add_argument("model")
    i.set_defaults(func=_cmd_inspect)

    im = sub.add_parser("import", help="lower a .tflite model to textual IR")
    im.add_argument("model")
    im.add_argument("-o", "--output", help="write the IR here instead of stdout")
    im.set_defaults(func=_cmd_import)

    ex = sub.add_parser("export", help="write textual IR back as a .tflite model")
    ex.add_argument("input", help="IR file (.mlir)")
    ex.add_argument("-o", "--output", required=True)
    ex.set_defaults(func=_cmd_export)
    return p


# OpenBLAS worker threads spin this many CPU cycles (2**n) for new work before they sleep;
# its default, 2**28 (~0.1 s), is spent right after numpy loads it and after every threaded
# product. 2**24 (~5 ms): decoder_tiny dynamic int4 command 0.31 -> 0.25 s CPU, the same
# wall time; GPTQ on an 80 MB decoder 2.36 -> 2.29 s wall.
OPENBLAS_THREAD_TIMEOUT = "24"


def main(argv: list[str] | None = None) -> int:
    if argv is None and "numpy" not in sys.modules:  # the command owns its process, numpy is not loaded yet
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_THREAD_TIMEOUT)  # the user's own setting wins
    args = build_parser().parse_args(argv)
    frozen = gc.get_freeze_count()
    try:
        return _run(args)
    finally:
        if argv is not None and frozen == 0:  # called by another program, which goes on: its objects back in the collector's sight
            gc.unfreeze()


def _run(args: argparse.Namespace) -> int:
    try:
        args.func(args)
    except TflquantError as e:
        print(f"tflquant: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tflquant: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`tflquant inspect m.tflite | head`): the work is done
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
