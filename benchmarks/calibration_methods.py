"""Calibration methods on the shared models (issue 13): int8 output SQNR of each method
and of `auto` (a method per tensor) against minmax, scored like ../shared/tools/score.py
with LiteRT (tflquant.scoring: the float model's outputs on eval.npz against the quantized
model's), auto's time, and the calibration time that collecting histograms and per-sample
ranges adds (calibrate() with histograms off and on, interleaved, best of --reps).

    python benchmarks/calibration_methods.py [--models digits_cnn,...] [--reps 3] [--percentile 99.99]
        [--budget 40] [--no-times] [--times-only] [--fixed-only]

`--fixed-only`: the fixed methods' SQNRs only (no auto, no timing), from one calibration run
per model (what a change to the statistics must not lower: about a minute for all models).

Checks what issue 13 asks of auto on every model: at least the minmax figure and at least
the best fixed method minus 0.2 dB (first output), printed as ok / MISS.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("TFLQUANT_SHARED_MODELS", ROOT.parent / "shared" / "models"))
NAMES = ("digits_cnn", "mobilenet_v2_035_96", "small_unet", "tiny_transformer", "decoder_tiny")
METHODS = ("minmax", "moving-average", "percentile", "mse", "entropy")
COLUMNS = METHODS + ("auto",)


def _sqnrs(float_model: Path, quant: bytes, inputs: list[np.ndarray]) -> list[float]:
    from tflquant.scoring import litert_run, sqnr_db

    ref = litert_run(str(float_model), inputs)
    got = litert_run(quant, inputs)
    return [sqnr_db(r, g) for r, g in zip(ref, got)]


def _calibration_times(model: Path, calib: Path, reps: int, cpu: bool = False) -> tuple[float, float]:
    """Best-of-reps calibrate() time with histograms off and on, interleaved; `cpu`: process
    CPU time (calibration runs on one BLAS thread; steadier than wall time on a loaded machine)."""
    from tflquant.api import _load
    from tflquant.calibration.driver import calibrate

    clock = time.process_time if cpu else time.perf_counter
    module, _, _ = _load(str(model))
    calibrate(module, str(calib), histograms=True)  # warm: imports, kernels, page cache
    off, on = [], []
    for _ in range(reps):
        for hist, out in ((False, off), (True, on)):
            t = clock()
            calibrate(module, str(calib), histograms=hist)
            out.append(clock() - t)
    return min(off), min(on)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(NAMES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--percentile", type=float, default=99.99)
    ap.add_argument("--eval-samples", type=int, default=None, help="score on the first N eval samples (default all)")
    ap.add_argument("--budget", type=int, default=None, help="auto's trials (default: the API's)")
    ap.add_argument("--no-times", action="store_true", help="skip the histogram overhead timing")
    ap.add_argument("--times-only", action="store_true", help="only the histogram overhead timing")
    ap.add_argument("--fixed-only", action="store_true", help="only the fixed methods' SQNRs, from one calibration run per model")
    a = ap.parse_args(argv)
    if a.times_only:
        return _times_only(a)
    if a.fixed_only:
        return _fixed_only(a)

    import tflquant
    from tflquant.scoring import load_eval

    rows = []
    print(f"int8 output SQNR (dB, LiteRT, eval.npz; several outputs: each) per calibration method; percentile={a.percentile}")
    print(f"{'model':22s}" + "".join(f"{m:>16s}" for m in COLUMNS) + "   auto (s)   calib off / on (s)   overhead")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            d = MODELS / name
            if not (d / "float.tflite").exists():
                print(f"{name}: not present, skipped")
                continue
            inputs, _ = load_eval(d / "eval.npz", a.eval_samples)
            stats = Path(tmp) / f"{name}.json"
            scores = {}
            auto_s = 0.0
            for m in COLUMNS:
                if m == "minmax":
                    r = tflquant.quantize(str(d / "float.tflite"), mode="int8", representative_dataset=str(d / "calib.npz"), save_stats=str(stats))
                else:
                    r = tflquant.quantize(str(d / "float.tflite"), mode="int8", representative_dataset=str(d / "calib.npz"),
                                          calibration_method=m, percentile=a.percentile, calibration_budget=a.budget)
                if m == "auto":
                    auto_s = r.report.seconds.get("auto", 0.0)
                    changed = {k: v for k, v in r.report.calibration_methods.items()}
                scores[m] = _sqnrs(d / "float.tflite", r.model, inputs)
            off, on = (float("nan"), float("nan")) if a.no_times else _calibration_times(d / "float.tflite", d / "calib.npz", a.reps)
            cells = "".join(f"{'/'.join(f'{s:.2f}' for s in scores[m]):>16s}" for m in COLUMNS)
            print(f"{name:22s}{cells}   {auto_s:7.1f}   {off:7.3f} / {on:7.3f}     {100 * (on / off - 1):+5.1f}%", flush=True)
            counts: dict[str, int] = {}
            for v in changed.values():
                counts[v] = counts.get(v, 0) + 1
            print(f"{'':22s}auto's methods: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())), flush=True)
            rows.append((name, scores, off, on))
    if rows:
        print("\ndelta vs minmax (dB, first output); auto: ok when >= minmax and >= best fixed - 0.2 dB:")
        for name, scores, _, _ in rows:
            base = scores["minmax"][0]
            best = max(scores[m][0] for m in METHODS)
            ok = scores["auto"][0] >= base and scores["auto"][0] >= best - 0.2
            print(f"{name:22s}" + "".join(f"{scores[m][0] - base:+16.2f}" for m in COLUMNS) + ("   ok" if ok else "   MISS"))
        if not a.no_times:
            _print_totals([(r[0], r[2], r[3]) for r in rows])
    return 0


def _print_totals(rows: list[tuple[str, float, float]]) -> None:
    tot_off, tot_on = sum(r[1] for r in rows), sum(r[2] for r in rows)
    worst = max(rows, key=lambda r: r[2] / r[1])
    print(f"\ncalibration time, all models: {tot_off:.3f} s min/max only, {tot_on:.3f} s with histograms "
          f"({100 * (tot_on / tot_off - 1):+.1f}%); largest ratio {worst[2] / worst[1]:.2f}x ({worst[0]}; target <= 1.3x)")


def _fixed_only(a: argparse.Namespace) -> int:
    """Each fixed method's int8 SQNR, every model calibrated once (histograms on) and
    quantized from those statistics (the API's `_calibration` hand-over, as the
    mixed-precision search does): the same models as quantize(calibration_method=...)."""
    import tflquant
    from tflquant.api import _load
    from tflquant.calibration.driver import calibrate
    from tflquant.scoring import load_eval

    print(f"int8 output SQNR (dB, LiteRT, eval.npz) per fixed calibration method; percentile={a.percentile}")
    print(f"{'model':22s}" + "".join(f"{m:>16s}" for m in METHODS))
    for name in a.models.split(","):
        d = MODELS / name
        if not (d / "float.tflite").exists():
            continue
        inputs, _ = load_eval(d / "eval.npz", a.eval_samples)
        module, _, _ = _load(str(d / "float.tflite"))
        calib = calibrate(module, str(d / "calib.npz"), histograms=True, channel_means=False)  # as quantize() int8 does
        cells = ""
        for m in METHODS:
            r = tflquant.quantize(str(d / "float.tflite"), mode="int8", representative_dataset=str(d / "calib.npz"),
                                  calibration_method=m, percentile=a.percentile, _calibration=calib)
            cells += f"{'/'.join(f'{s:.2f}' for s in _sqnrs(d / 'float.tflite', r.model, inputs)):>16s}"
        print(f"{name:22s}{cells}", flush=True)
    return 0


def _times_only(a: argparse.Namespace) -> int:
    rows = []
    print(f"calibration time, histograms off / on (best of {a.reps}, interleaved): wall, then process CPU")
    for name in a.models.split(","):
        d = MODELS / name
        if not (d / "float.tflite").exists():
            continue
        off, on = _calibration_times(d / "float.tflite", d / "calib.npz", a.reps)
        coff, con = _calibration_times(d / "float.tflite", d / "calib.npz", a.reps, cpu=True)
        print(f"{name:22s}{off:8.3f} / {on:8.3f} s   {on / off:5.2f}x     CPU {coff:8.3f} / {con:8.3f} s   {con / coff:5.2f}x", flush=True)
        rows.append((name, off, on))
    if rows:
        _print_totals(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
