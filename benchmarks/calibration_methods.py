"""Calibration methods on the shared models (issue 13): int8 output SQNR of each method
against minmax, scored like ../shared/tools/score.py with LiteRT (tflquant.scoring: the
float model's outputs on eval.npz against the quantized model's), and the calibration time
that collecting histograms and per-sample ranges adds (calibrate() with histograms off and
on, interleaved, best of --reps).

    python benchmarks/calibration_methods.py [--models digits_cnn,...] [--reps 3] [--percentile 99.99]

One calibration per model (histograms on, saved with --save-stats) serves every method:
each method's model is quantized from the same statistics file.
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
NAMES = ("digits_cnn", "mobilenet_v2_035_96", "small_unet", "tiny_transformer")
METHODS = ("minmax", "moving-average", "percentile", "mse", "entropy")


def _sqnrs(float_model: Path, quant: bytes, inputs: list[np.ndarray]) -> list[float]:
    from tflquant.scoring import litert_run, sqnr_db

    ref = litert_run(str(float_model), inputs)
    got = litert_run(quant, inputs)
    return [sqnr_db(r, g) for r, g in zip(ref, got)]


def _calibration_times(model: Path, calib: Path, reps: int) -> tuple[float, float]:
    from tflquant.api import _load
    from tflquant.calibration.calibrate import calibrate

    module, _, _ = _load(str(model))
    calibrate(module, str(calib), histograms=True)  # warm: imports, kernels, page cache
    off, on = [], []
    for _ in range(reps):
        for hist, out in ((False, off), (True, on)):
            t = time.perf_counter()
            calibrate(module, str(calib), histograms=hist)
            out.append(time.perf_counter() - t)
    return min(off), min(on)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(NAMES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--percentile", type=float, default=99.99)
    ap.add_argument("--eval-samples", type=int, default=None, help="score on the first N eval samples (default all)")
    a = ap.parse_args(argv)

    import tflquant
    from tflquant.scoring import load_eval

    rows = []
    print(f"int8 output SQNR (dB, LiteRT, eval.npz; several outputs: each) per calibration method; percentile={a.percentile}")
    print(f"{'model':22s}" + "".join(f"{m:>16s}" for m in METHODS) + "   calib off / on (s)   overhead")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            d = MODELS / name
            if not (d / "float.tflite").exists():
                print(f"{name}: not present, skipped")
                continue
            inputs, _ = load_eval(d / "eval.npz", a.eval_samples)
            stats = Path(tmp) / f"{name}.json"
            scores = {}
            for m in METHODS:
                if m == "minmax":
                    r = tflquant.quantize(str(d / "float.tflite"), mode="int8", representative_dataset=str(d / "calib.npz"), save_stats=str(stats))
                else:
                    r = tflquant.quantize(str(d / "float.tflite"), mode="int8", representative_dataset=str(d / "calib.npz"),
                                          calibration_method=m, percentile=a.percentile)
                scores[m] = _sqnrs(d / "float.tflite", r.model, inputs)
            off, on = _calibration_times(d / "float.tflite", d / "calib.npz", a.reps)
            cells = "".join(f"{'/'.join(f'{s:.2f}' for s in scores[m]):>16s}" for m in METHODS)
            print(f"{name:22s}{cells}   {off:7.3f} / {on:7.3f}     {100 * (on / off - 1):+5.1f}%", flush=True)
            rows.append((name, scores, off, on))
    if rows:
        print("\ndelta vs minmax (dB, first output):")
        for name, scores, _, _ in rows:
            base = scores["minmax"][0]
            print(f"{name:22s}" + "".join(f"{scores[m][0] - base:+16.2f}" for m in METHODS))
        tot_off, tot_on = sum(r[2] for r in rows), sum(r[3] for r in rows)
        print(f"\ncalibration time, all models: {tot_off:.3f} s min/max only, {tot_on:.3f} s with histograms ({100 * (tot_on / tot_off - 1):+.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
