#!/usr/bin/env python3
"""Quantize every model in ../shared/models in every mode and compare, side by side, with the
TF converter's files there (and ai-edge-quantizer when available):

    python benchmarks/run.py                         # everything
    python benchmarks/run.py --models digits_cnn --modes int8,dynamic
    python benchmarks/run.py --aeq-python /path/to/venv/bin/python --json results.json

Per model and mode it prints, for tflquant, the TF converter and ai-edge-quantizer (AEQ):
SQNR of every output against the float model on eval.npz (dB, as ../shared/tools/score.py),
top-1 agreement, labelled accuracy, file size, LiteRT latency (single thread, median, the
invokes interleaved one by one in the same process), quantize wall time (calibration included, model
read from disk, imports excluded) and peak memory of the quantizing process. Ratios are
against references measured in this run: size and latency against the TF converter's file,
wall time against AEQ's. Targets checked (marked OK / MISS):
  - SQNR >= TF's on every output, top-1 agreement and labelled accuracy >= TF's, size <=
    TF's, latency <= 1.05 x TF's;
  - static modes: quantize wall time <= 0.5 x AEQ's (same float model, same 100 samples);
  - peak memory < 3 x float model size + 300 MB.

tflquant and AEQ each quantize in a fresh child process so that peak memory is theirs
alone. AEQ is found by importing `ai_edge_quantizer` in this Python, else in the Python
given by --aeq-python or $TFLQUANT_AEQ_PYTHON (a separate venv: AEQ pins its own LiteRT).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tflquant.scoring import accuracy, feed, interpreter, litert_run, load_eval, sqnr_db, top1

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TFLQUANT_SHARED_MODELS", ROOT.parent / "shared" / "models"))

# label -> (tflquant mode, io_type, TF converter file, AEQ recipe or None)
MODES: dict[str, tuple[str, str, str, str | None]] = {
    "int8": ("int8", "float32", "tf_int8.tflite", "static_wi8_ai8"),
    "int8only": ("int8", "int8", "tf_int8only.tflite", None),  # AEQ has no TF-style int8 I/O recipe
    "int16x8": ("int16x8", "float32", "tf_int16x8.tflite", "static_wi8_ai16"),
    "dynamic": ("dynamic", "float32", "tf_dynamic.tflite", "dynamic_wi8_afp32"),
    "float16": ("float16", "float32", "tf_float16.tflite", "float16"),
}
STATIC = ("int8", "int16x8")
MB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# Child processes: quantize once, report wall time and peak memory
# ---------------------------------------------------------------------------------------

_TFLQUANT_CHILD = r"""
import json, resource, sys, time
import tflquant
# import everything quantize() would import lazily, so the timing is the work (as for AEQ)
import tflquant.api, tflquant.tflite.reader, tflquant.tflite.writer, tflquant.calibration.driver
import tflquant.reference.interpreter
from tflquant.passes import get_all_passes
for load in get_all_passes().values():
    load()
# the tflquant command serves calibration's arrays from the heap for its own process; so
# does this child, which stands for that command (tflquant.calibration.heap)
from tflquant.calibration.heap import keep_arrays_on_heap
keep_arrays_on_heap()
model_dir, mode, io_type, out = sys.argv[1:5]
ru = resource.getrusage(resource.RUSAGE_SELF)
base, cpu0 = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
t = time.perf_counter()
r = tflquant.quantize(f"{model_dir}/float.tflite", mode=mode, io_type=io_type,
                      representative_dataset=f"{model_dir}/calib.npz" if mode in ("int8", "int16x8") else None)
r.save(out)
sec = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
peak = ru.ru_maxrss
print(json.dumps({"seconds": sec, "cpu_seconds": ru.ru_utime + ru.ru_stime - cpu0, "peak_kb": peak, "base_kb": base, "phases": r.report.seconds,
                  "fallbacks": [f"{o.op_type} {o.name}" for o in r.report.fallbacks]}))
"""

_AEQ_CHILD = r"""
import json, resource, sys, time, warnings, os, contextlib, io
warnings.filterwarnings("ignore")
import numpy as np
from ai_edge_quantizer import quantizer, recipe, qtyping
from ai_edge_litert.interpreter import Interpreter
model_dir, rname, out = sys.argv[1:4]
ru = resource.getrusage(resource.RUSAGE_SELF)
base, cpu0 = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
t = time.perf_counter()
float_path = f"{model_dir}/float.tflite"
if rname == "float16":
    OC = qtyping.OpQuantizationConfig
    TC = qtyping.TensorQuantizationConfig
    rp = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
           "op_config": {"weight_tensor_config": {"num_bits": 16, "symmetric": True, "granularity": "TENSORWISE", "dtype": "FLOAT"},
                         "compute_precision": "FLOAT", "explicit_dequantize": True}}]
else:
    rp = getattr(recipe, rname)()
q = quantizer.Quantizer(float_path, rp)
calib = None
if q.need_calibration:
    it = Interpreter(model_path=float_path)
    sigs = it.get_signature_list()
    key = next(iter(sigs))
    runner = it.get_signature_runner(key)
    details = runner.get_input_details()
    z = np.load(f"{model_dir}/calib.npz")
    tensor_to_alias = {d["name"]: alias for alias, d in details.items()}
    arrays = {tensor_to_alias.get(k, k): z[k] for k in z.files if k != "labels"}
    n = len(next(iter(arrays.values())))
    data = [{a: arrays[a][i].reshape(details[a]["shape"]).astype(details[a]["dtype"]) for a in arrays} for i in range(n)]
    calib = q.calibrate({key: data})
with contextlib.redirect_stdout(io.StringIO()):
    res = q.quantize(calib)
open(out, "wb").write(bytes(res.quantized_model))
sec = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": sec, "cpu_seconds": ru.ru_utime + ru.ru_stime - cpu0, "peak_kb": ru.ru_maxrss, "base_kb": base}))
"""


def _child(python: str, script: str, args: list[str], timeout: float = 1800) -> dict:
    proc = subprocess.run([python, "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail[:300]}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"error": f"unexpected output: {proc.stdout[-200:]}"}


def _fastest(best: dict, new: dict) -> dict:
    if not best or "error" in best:
        return new
    if "error" in new:
        return best
    return new if new["seconds"] < best["seconds"] else {**best, "peak_kb": max(best["peak_kb"], new["peak_kb"])}


def find_aeq_python(explicit: str | None) -> str | None:
    candidates = [explicit, os.environ.get("TFLQUANT_AEQ_PYTHON"), sys.executable]
    for py in candidates:
        if not py:
            continue
        ok = subprocess.run([py, "-c", "import ai_edge_quantizer"], capture_output=True).returncode == 0
        if ok:
            return py
    return None


# ---------------------------------------------------------------------------------------
# Scoring in LiteRT (as ../shared/tools/score.py)
# ---------------------------------------------------------------------------------------


def run_model(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return litert_run(path, inputs, num_threads=1)


def latencies_ms(paths: dict[str, Path], inputs: list[np.ndarray], budget_s: float) -> dict[str, float]:
    """Median single-thread invoke time of each model. Invokes are interleaved one by one
    (model order rotating), so load bursts from other processes hit every model alike."""
    its = {}
    for k, p in paths.items():
        it = interpreter(p, num_threads=1)
        for d, a in zip(it.get_input_details(), inputs):
            feed(it, d, a[0])
        for _ in range(3):  # warm up
            it.invoke()
        its[k] = it
    t = time.perf_counter()
    for it in its.values():
        it.invoke()
    one_round = max(time.perf_counter() - t, 1e-6)
    n = int(max(20, min(3000, budget_s / one_round)))
    keys = list(its)
    times: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(n):
        for j in range(len(keys)):
            k = keys[(i + j) % len(keys)]
            it = its[k]
            t = time.perf_counter()
            it.invoke()
            times[k].append(time.perf_counter() - t)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


@dataclass
class Row:
    tool: str
    path: Path | None = None
    sqnr: list[float] = field(default_factory=list)
    top1: float | None = None
    acc: float | None = None
    size: int | None = None
    latency: float | None = None
    seconds: float | None = None
    peak_mb: float | None = None
    error: str | None = None
    note: str = ""


def score(rows: list[Row], float_path: Path, inputs: list[np.ndarray], labels: np.ndarray | None, ref: list[np.ndarray], budget_s: float) -> None:
    ok = [r for r in rows if r.path is not None and r.error is None]
    for r in ok:
        try:
            got = run_model(r.path, inputs)  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - a model LiteRT rejects is a result to print
            r.error = f"LiteRT: {str(e).strip().splitlines()[0][:120]}"
            continue
        r.sqnr = [round(sqnr_db(a, b), 2) for a, b in zip(ref, got)]
        r.top1 = top1(ref[0], got[0])
        if labels is not None:
            r.acc = accuracy(got[0], labels)
        r.size = r.path.stat().st_size  # type: ignore[union-attr]
    paths = {"float": float_path} | {r.tool: r.path for r in ok if r.error is None}  # type: ignore[misc]
    lat = latencies_ms(paths, inputs, budget_s)  # type: ignore[arg-type]
    for r in ok:
        if r.error is None:
            r.latency = lat.get(r.tool)
    rows.append(Row("float", float_path, size=float_path.stat().st_size, latency=lat["float"]))


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", help="comma-separated model folder names (default: all in ../shared/models)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {','.join(MODES)}")
    ap.add_argument("--aeq-python", help="a Python with ai-edge-quantizer installed")
    ap.add_argument("--no-aeq", action="store_true", help="skip ai-edge-quantizer")
    ap.add_argument("--latency-budget", type=float, default=3.0, help="seconds of invokes per model and mode (default 3)")
    ap.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    ap.add_argument("--repeat", type=int, default=1, help="quantize N times, tflquant and AEQ alternating; keep the fastest (default 1)")
    a = ap.parse_args(argv)

    if not SHARED.is_dir():
        print(f"no reference models at {SHARED}", file=sys.stderr)
        return 2
    models = a.models.split(",") if a.models else sorted(p.name for p in SHARED.iterdir() if (p / "float.tflite").exists())
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    aeq = None if a.no_aeq else find_aeq_python(a.aeq_python)
    print(f"models: {', '.join(models)}; modes: {', '.join(modes)}; ai-edge-quantizer: {aeq or 'not installed'}")
    print(f"machine: {os.cpu_count()} cores; latency single thread, median of interleaved rounds\n")

    results: list[dict] = []
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tflquant-bench-") as tmp:
        for name in models:
            d = SHARED / name
            float_path = d / "float.tflite"
            float_size = float_path.stat().st_size
            info = json.loads((d / "info.json").read_text()) if (d / "info.json").exists() else {}
            inputs, labels = load_eval(d / "eval.npz")
            ref = run_model(float_path, inputs)
            mem_budget_mb = 3 * float_size / MB + 300
            print(f"== {name}  (float {float_size / 1024:.1f} KB, {len(inputs[0])} eval samples; memory budget {mem_budget_mb:.0f} MB)")
            header = f"  {'mode':<9}{'tool':<10}{'SQNR dB':>16}{'top1':>7}{'acc':>7}{'size KB':>9}{'xTF':>6}{'lat ms':>8}{'xTF':>6}{'quant s':>8}{'xAEQ':>6}{'peak MB':>8}  notes"
            print(header)
            for label in modes:
                mode, io_type, tf_file, aeq_recipe = MODES[label]
                rows: list[Row] = []
                ours = Path(tmp, f"{name}_{label}_tflquant.tflite")
                aeq_out = Path(tmp, f"{name}_{label}_aeq.tflite")
                res: dict = {}
                r2: dict = {}
                for _ in range(max(1, a.repeat)):  # alternate, keep each tool's fastest run
                    res = _fastest(res, _child(sys.executable, _TFLQUANT_CHILD, [str(d), mode, io_type, str(ours)]))
                    if aeq and aeq_recipe:
                        r2 = _fastest(r2, _child(aeq, _AEQ_CHILD, [str(d), aeq_recipe, str(aeq_out)]))
                row = Row("tflquant", ours if "error" not in res else None, error=res.get("error"))
                if "error" not in res:
                    row.seconds, row.peak_mb = res["seconds"], res["peak_kb"] / 1024
                    if res.get("fallbacks"):
                        row.note = f"{len(res['fallbacks'])} float op(s)"
                rows.append(row)
                tf = d / tf_file
                if tf.exists():
                    conv = info.get("convert_seconds", {}).get(label)
                    rows.append(Row("tf", tf, seconds=conv, note="time: converter, model in memory" if conv else ""))
                else:
                    rows.append(Row("tf", None, error=info.get("errors", {}).get(label, "no TF file")[:60]))
                if aeq and aeq_recipe:
                    ar = Row("aeq", aeq_out if "error" not in r2 else None, error=r2.get("error"))
                    if "error" not in r2:
                        ar.seconds, ar.peak_mb = r2["seconds"], r2["peak_kb"] / 1024
                    rows.append(ar)
                score(rows, float_path, inputs, labels, ref, a.latency_budget)
                by = {r.tool: r for r in rows}
                t, q, ae = by.get("tf"), by["tflquant"], by.get("aeq")
                for r in rows:
                    if r.tool == "float":
                        continue
                    x_size = r.size / t.size if (t and t.size and r.size) else None
                    x_lat = r.latency / t.latency if (t and t.latency and r.latency) else None
                    x_aeq = r.seconds / ae.seconds if (ae and ae.seconds and r.seconds and r.tool != "tf") else None
                    sq = ",".join(f"{s:.2f}" for s in r.sqnr) if r.sqnr else "-"
                    note = r.error or r.note
                    print(
                        f"  {label:<9}{r.tool:<10}{sq:>16}{_fmt(r.top1, '.3f'):>7}{_fmt(r.acc, '.3f'):>7}"
                        f"{_fmt(r.size / 1024 if r.size else None, '.1f'):>9}{_fmt(x_size, '.3f'):>6}"
                        f"{_fmt(r.latency, '.3f'):>8}{_fmt(x_lat, '.2f'):>6}{_fmt(r.seconds, '.2f'):>8}"
                        f"{_fmt(x_aeq, '.2f'):>6}{_fmt(r.peak_mb, '.0f'):>8}  {note}"
                    )
                # targets
                checks = []
                if q.error is None and t and t.error is None and t.sqnr:
                    checks.append(("SQNR>=TF", all(a >= b for a, b in zip(q.sqnr, t.sqnr))))
                    checks.append(("top1>=TF", q.top1 is not None and t.top1 is not None and q.top1 >= t.top1))
                    if t.acc is not None:
                        checks.append(("acc>=TF", q.acc is not None and q.acc >= t.acc))
                    checks.append(("size<=TF", q.size is not None and t.size is not None and q.size <= t.size))
                    checks.append(("lat<=1.05xTF", q.latency is not None and t.latency is not None and q.latency <= 1.05 * t.latency))
                if q.error is None and ae and ae.seconds and q.seconds and mode in STATIC:
                    checks.append(("time<=0.5xAEQ", q.seconds <= 0.5 * ae.seconds))
                if q.error is None and q.peak_mb is not None:
                    checks.append((f"mem<{mem_budget_mb:.0f}MB", q.peak_mb < mem_budget_mb))
                if q.error is not None:
                    checks.append(("quantized", False))
                text = "  ".join(f"{n} {'OK' if ok else 'MISS'}" for n, ok in checks)
                print(f"  {'':<9}{'targets':<10}{text}")
                misses += [f"{name}/{label}: {n}" for n, ok in checks if not ok]
                results.append(
                    {
                        "model": name,
                        "mode": label,
                        "float_size": float_size,
                        "rows": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.__dict__.items()} for r in rows],
                        "targets": {n: ok for n, ok in checks},
                    }
                )
            print()
    print("targets missed: " + ("; ".join(misses) if misses else "none"))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
