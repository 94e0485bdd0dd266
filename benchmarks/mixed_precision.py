"""Mixed precision (issue 13): automatic int8 / int16 / float mixes against the int8 and 16x8 models.

    nice python benchmarks/mixed_precision.py [--models tiny_transformer small_unet] [--workers 2]

For each model in ../shared/models: quantize int8 and int16x8 (default options), then run the
mixed-precision search (`tflquant.quantize(..., target_sqnr=)`) twice:
(a) to the 16x8 model's SQNR minus 0.5 dB (what must show: within 1 dB of 16x8, faster);
(b) to fractions (--b-fraction, default a fifth, a third and half) of the way from the int8
    SQNR to the 16x8 one (what must show: fewer than a quarter of the ops promoted).
Which samples the search measures on (`--validate`): `split` (default) gives it the even
eval.npz samples as validation_dataset= and scores the odd ones, which it never saw (a user's
held-out validation set); `calib` leaves it the API's default: the first calibration
samples (32 at most, a quarter), held out of its candidates' calibration (their ranges come
from the other ones); `eval` gives it every eval.npz sample, the same ones scored.
SQNR: LiteRT outputs against the float model's on the scored eval.npz samples, as the search
scores (tflquant.mixed_precision.output_sqnr): the mean of per-sample SQNRs, lowest over the
outputs, dB; the int8 / 16x8 figures and the targets derived from them too. Latency: LiteRT single-thread invoke, the models interleaved in one process
(rounds of 20 invokes each, median over the rounds), next to the search's cost model
(tflquant.mixed_precision.estimated_latency) relative to int8. Promoted ops: ops of the mixed model
computing in int16 or float (QUANTIZE / DEQUANTIZE not counted) over the int8 model's ops.
The search path is printed; with --check-workers (a) is rerun with one worker to check the
result does not depend on the worker count.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"


def _interp(model: bytes):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    return it


def _outputs(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    it = _interp(model)
    ins, outs = it.get_input_details(), it.get_output_details()
    res: list[list[np.ndarray]] = [[] for _ in outs]
    for k in range(inputs[0].shape[0]):
        for d, x in zip(ins, inputs):
            it.set_tensor(d["index"], x[k : k + 1].reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        for j, d in enumerate(outs):
            y = it.get_tensor(d["index"]).astype(np.float64)
            if d["dtype"] != np.float32:
                s, z = d["quantization"]
                y = (y - z) * s
            res[j].append(y)
    return [np.concatenate(r) for r in res]


def _sqnr(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    from tflquant.mixed_precision import output_sqnr

    return output_sqnr(ref, got)


def _latencies(models: dict[str, bytes], x: list[np.ndarray], rounds: int = 15, n: int = 20) -> dict[str, float]:
    its = {}
    for k, b in models.items():
        it = _interp(b)
        for d, a in zip(it.get_input_details(), x):
            it.set_tensor(d["index"], a[:1].reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        its[k] = it
    times: dict[str, list[float]] = {k: [] for k in its}
    for _ in range(rounds):
        for k, it in its.items():  # interleaved: every model sees the same machine load
            t = time.perf_counter()
            for _ in range(n):
                it.invoke()
            times[k].append((time.perf_counter() - t) / n * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def _promoted(result) -> tuple[int, int]:
    counts: dict[str, int] = {}
    for o in result.report.ops:
        counts[o.kind] = counts.get(o.kind, 0) + 1
    return counts.get("int16", 0) + counts.get("float", 0), sum(v for k, v in counts.items() if k not in ("quantize", "dequantize"))


def run_model(name: str, workers: int, out: list[str], check_workers: bool = False, validate: str = "split",
              b_fractions: tuple[float, ...] = (0.2,), skip_a: bool = False) -> None:
    import tflquant

    d = MODELS / name
    fpath, calib = str(d / "float.tflite"), str(d / "calib.npz")
    ev = np.load(d / "eval.npz")
    keys = [k for k in ev.files if k != "labels"]
    val = {"eval": str(d / "eval.npz"), "calib": None, "split": {k: ev[k][0::2] for k in keys}}[validate]
    x = [ev[k][1::2] if validate == "split" else ev[k] for k in keys]
    fbytes = (d / "float.tflite").read_bytes()
    ref = _outputs(fbytes, x)
    base = {m: tflquant.quantize(fpath, mode=m, representative_dataset=calib) for m in ("int8", "int16x8")}
    s8, s16 = (_sqnr(ref, _outputs(base[m].model, x)) for m in ("int8", "int16x8"))
    n8 = _promoted(base["int8"])[1]
    say = lambda s: (print(s, flush=True), out.append(s))  # noqa: E731
    say(f"== {name} (search measured on {dict(split='the even eval.npz samples, scored on the odd ones', calib='held-out calibration samples, the API default (step 0 says which)', eval='eval.npz')[validate]}): int8 {s8:.2f} dB ({len(base['int8'].model)} B, {n8} ops), int16x8 {s16:.2f} dB ({len(base['int16x8'].model)} B)")
    mixed = {}
    targets = [] if skip_a else [("a", s16 - 0.5)]
    targets += [(f"b{f:g}", s8 + (s16 - s8) * f) for f in b_fractions]
    for tag, target in targets:
        t = time.perf_counter()
        r = tflquant.quantize(fpath, representative_dataset=calib, target_sqnr=target, workers=workers, validation_dataset=val)
        secs = time.perf_counter() - t
        s = _sqnr(ref, _outputs(r.model, x))
        p, _ = _promoted(r)
        mixed[tag] = r
        say(f"-- ({tag}) target {target:.2f} dB: search {secs:.1f} s, {len(r.report.search) - 1} steps; eval SQNR {s:.2f} dB "
            f"({s - s16:+.2f} dB vs 16x8), {len(r.model)} B, {p}/{n8} ops promoted ({p / n8:.0%})")
        for st in r.report.search:
            line = str(st)
            say("     " + (line if len(line) < 220 else line[:217] + "..."))
        if tag == "a" and check_workers:
            one = tflquant.quantize(fpath, representative_dataset=calib, target_sqnr=target, workers=1, validation_dataset=val)
            same = hashlib.sha256(one.model).hexdigest() == hashlib.sha256(r.model).hexdigest()
            say(f"     workers=1 vs workers={workers}: {'same bytes' if same else 'DIFFERENT bytes'}")
    lat = _latencies({"int8": base["int8"].model, "int16x8": base["int16x8"].model,
                      **{f"mixed-{t}": r.model for t, r in mixed.items()}, "float": fbytes}, x)
    say("   LiteRT latency (ms, interleaved, median of 15x20 invokes): "
        + ", ".join(f"{k} {v:.3f}" for k, v in lat.items()) + "; "
        + ", ".join(f"mixed-{t} / int16x8 = {lat[f'mixed-{t}'] / lat['int16x8']:.2f}" for t in mixed)
        + (f", mixed-a / int8 = {lat['mixed-a'] / lat['int8']:.2f}" if "a" in mixed else ""))
    from tflquant.mixed_precision import estimated_latency
    from tflquant.tflite.reader import read_flatbuffer

    est = {"int8": base["int8"].module, "int16x8": base["int16x8"].module, **{f"mixed-{t}": r.module for t, r in mixed.items()},
           "float": read_flatbuffer(fbytes)}
    e8 = estimated_latency(est["int8"])
    say("   cost model vs LiteRT, relative to int8 (estimated / measured): "
        + ", ".join(f"{k} {estimated_latency(m) / e8:.2f} / {lat[k] / lat['int8']:.2f}" for k, m in est.items() if k != "int8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny_transformer", "small_unet"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check-workers", action="store_true", help="rerun (a) with one worker: same bytes?")
    ap.add_argument("--validate", choices=["split", "calib", "eval"], default="split", help="samples the search measures on (see above)")
    ap.add_argument("--b-fraction", type=float, nargs="+", default=[0.2, 1 / 3, 0.5],
                    help="targets (b): these fractions of the way from int8 to 16x8")
    ap.add_argument("--skip-a", action="store_true", help="only the (b) targets")
    a = ap.parse_args(argv)
    out: list[str] = []
    for m in a.models:
        if not (MODELS / m / "float.tflite").exists():
            print(f"skip {m}: {MODELS / m} not found", file=sys.stderr)
            continue
        run_model(m, a.workers, out, a.check_workers, a.validate, tuple(a.b_fraction), a.skip_a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
