"""Outlier transforms (issue 13): int8 and int16x8 output SQNR with and without
cross-layer equalization (`--equalize`) and SmoothQuant (`--smooth-quant[=ALPHA]`) on
every ../shared/models model where they apply, plus two models of the cases they are for
(built here from tests/test_outlier_transforms.py):

- conv_spread: a MobileNet-style chain (3x3 conv, depthwise 3x3, 1x1 conv, RELU between,
  stride 2, then depthwise + 1x1 + FC) whose output channels' weight ranges spread over
  e^+-3, as BatchNorm folding leaves them (CLE's case);
- ln_outliers: 4 pre-norm blocks (64 channels, 16 tokens, Q/K/V-like readers) whose layer
  norms have 16 of 64 channels 30x wider than the rest, the readers weighing them down
  (SmoothQuant's case).

Scored as ../shared/tools/score.py does (LiteRT, float model outputs vs quantized model
outputs on eval.npz; the own models on 64 held-out random samples, calibrated on 64
others); "n/a": the transform finds nothing to do in that model (no equalizable pair / no
smoothable layer norm). "calib s": the report's calibration seconds (with smooth-quant, its
extra float run for the per-channel ranges included); "total s": the whole quantize call.
Single runs on a shared machine: the times are indicative, the SQNR figures deterministic.

    nice python benchmarks/outlier_transforms.py [--models ...] [--modes int8,int16x8] [--alphas 0.5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
MODELS = Path(os.environ.get("TFLQUANT_SHARED_MODELS", ROOT.parent / "shared" / "models"))
SHARED = ("digits_cnn", "mobilenet_v2_035_96", "small_unet", "tiny_transformer", "decoder_tiny")
OWN = ("conv_spread", "ln_outliers")


def own_model(name: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(float model, calibration samples, eval samples) of one of the models built here."""
    from test_outlier_transforms import conv_chain, ln_data, ln_graph

    from tflquant.tflite.writer import write_flatbuffer

    if name == "conv_spread":
        m = conv_chain(11, ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"],
                       ["RELU", "RELU", "NONE", "RELU", "RELU"], [16, 16, 24, 24, 32], spread=3.0, size=32,
                       strides=[2, 1, 1, 2, 1])
        x = np.random.default_rng(0).standard_normal((128, 1, 32, 32, 3)).astype(np.float32)
    else:
        m = ln_graph(3, 64, tokens=16, readers=("fc", "fc", "fc"), outliers=30.0, layers=4)
        x = ln_data(3, 64, tokens=16, n=128)
    return write_flatbuffer(m), x[:64], x[64:]


def applies(model: bytes) -> tuple[int, int]:
    """(equalizable pairs, smoothable layer norms) in a model."""
    from tflquant.passes.equalize_cross_layer import equalizable_pairs
    from tflquant.passes.smooth_quant import sites
    from tflquant.tflite.reader import read_flatbuffer

    m = read_flatbuffer(model)
    return len(equalizable_pairs(m)), len(sites(m))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(SHARED + OWN))
    ap.add_argument("--modes", default="int8,int8-per-tensor,int16x8", help="int8, int16x8; '-per-tensor': per-tensor weights (the paper's CLE setting)")
    ap.add_argument("--alphas", default="0.5", help="SmoothQuant migration strengths to measure")
    a = ap.parse_args(argv)

    from tflquant.api import quantize
    from tflquant.scoring import litert_run, load_eval, sqnr_db

    alphas = [float(v) for v in a.alphas.split(",")]
    rows = []
    print(f"{'model':22} {'mode':16} {'variant':14} {'SQNR dB (per output)':28} {'vs base':>8} {'calib s':>7} {'total s':>7}")
    for name in a.models.split(","):
        if name in OWN:
            model, calib, evx = own_model(name)
            calib_data: object = [[s] for s in calib]
            inputs = [evx]
        else:
            path = MODELS / name / "float.tflite"
            if not path.exists():
                print(f"{name}: not found under {MODELS}, skipped")
                continue
            model = path.read_bytes()
            calib_data = str(MODELS / name / "calib.npz")
            inputs, _ = load_eval(MODELS / name / "eval.npz")
        pairs, norms = applies(model)
        ref = litert_run(model, inputs)
        variants: list[tuple[str, dict]] = [("base", {})]
        variants.append(("equalize", {"cross_layer_equalization": True}) if pairs else ("equalize n/a", {}))
        for alpha in alphas:
            variants.append((f"smooth {alpha:g}", {"smooth_quant": alpha}) if norms else (f"smooth {alpha:g} n/a", {}))
        for mode in a.modes.split(","):
            qmode, per_channel = mode.removesuffix("-per-tensor"), not mode.endswith("-per-tensor")
            base = None
            for label, kw in variants:
                if label.endswith("n/a"):
                    rows.append((name, mode, label, None, None, None))
                    print(f"{name:22} {mode:16} {label:14} (nothing to transform)")
                    continue
                t = time.perf_counter()
                res = quantize(model, qmode, representative_dataset=calib_data, per_channel=per_channel, **kw)
                secs = time.perf_counter() - t
                out = litert_run(res.model, inputs)
                db = [sqnr_db(r, g) for r, g in zip(ref, out)]
                if base is None:
                    base = db
                delta = db[0] - base[0]
                calib_s = res.report.seconds.get("calibrate", 0.0)  # smooth-quant: its first float run included
                rows.append((name, mode, label, db, delta, secs))
                print(f"{name:22} {mode:16} {label:14} {' '.join(f'{d:6.2f}' for d in db):28} {delta:+8.2f} {calib_s:7.2f} {secs:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
