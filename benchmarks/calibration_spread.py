#!/usr/bin/env python3
"""How much of an int8 result is the calibration draw? Quantize each model with bootstrap
resamples of its calib.npz and print the spread of SQNR, top-1 agreement and labelled
accuracy, beside the TF converter's file (which saw the full calib.npz once):

    python benchmarks/calibration_spread.py                      # 20 resamples, int8
    python benchmarks/calibration_spread.py --models tiny_transformer --resamples 50 --io-type int8

Resample 0 is calib.npz itself (what run.py measures); resample k draws as many samples
with replacement (seeded, so the run is repeatable). The last column counts the resamples
that reach TF's value: a difference of one eval sample that most resamples cross either
way is a coin flip, not a property of the quantizer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import tflquant
from tflquant.scoring import accuracy, litert_run, load_eval, sqnr_db, top1

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
TF_FILE = {"float32": "tf_int8.tflite", "int8": "tf_int8only.tflite"}


def scores(model: bytes | Path, inputs: list[np.ndarray], ref: list[np.ndarray], labels: np.ndarray | None) -> tuple[float, float, float | None]:
    out = litert_run(model if isinstance(model, bytes) else str(model), inputs)
    return sqnr_db(ref[0], out[0]), top1(ref[0], out[0]), accuracy(out[0], labels) if labels is not None else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated folders of ../shared/models (default: all)")
    ap.add_argument("--resamples", type=int, default=20)
    ap.add_argument("--io-type", default="float32", choices=sorted(TF_FILE))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"calibration_spread: {SHARED} not found", file=sys.stderr)
        return 2
    names = a.models.split(",") if a.models else sorted(p.name for p in SHARED.iterdir() if (p / "float.tflite").exists())
    for name in names:
        d = SHARED / name
        inputs, labels = load_eval(d / "eval.npz")
        ref = litert_run(str(d / "float.tflite"), inputs)
        with np.load(d / "calib.npz") as z:
            calib = {k: z[k] for k in z.files}
        n = len(next(iter(calib.values())))
        rng = np.random.default_rng(a.seed)
        rows = []
        for k in range(a.resamples):
            idx = np.arange(n) if k == 0 else rng.choice(n, n, replace=True)
            res = tflquant.quantize(d / "float.tflite", mode="int8", io_type=a.io_type,
                                    representative_dataset={key: v[idx] for key, v in calib.items()})
            rows.append(scores(res.model, inputs, ref, labels))
        tf = scores(d / TF_FILE[a.io_type], inputs, ref, labels)
        print(f"== {name} (int8, {a.io_type} I/O; {a.resamples} calibration resamples, {len(ref[0])} eval samples)")
        print(f"  {'':<10}{'SQNR dB':>9}{'top1':>8}{'acc':>8}")
        for label, col in (("resample 0", rows[0]), ("TF", tf)):
            print(f"  {label:<10}{col[0]:>9.2f}{col[1]:>8.4f}{'-' if col[2] is None else format(col[2], '.4f'):>8}")
        for j, metric in enumerate(("SQNR dB", "top1", "acc")):
            vals = [r[j] for r in rows]
            if vals[0] is None:
                continue
            reach = sum(v >= tf[j] for v in vals)
            print(f"  {metric:<8} min {min(vals):.4f}  median {float(np.median(vals)):.4f}  max {max(vals):.4f}"
                  f"   >= TF in {reach}/{len(vals)}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
