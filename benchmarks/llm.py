"""Language-model weight formats against ai-edge-quantizer (AEQ), issue 12.

    python benchmarks/llm.py [--model-dir ../shared/models/decoder_tiny] [--aeq-python /tmp/aeq/bin/python]
                             [--configs "int4 channel,int4 block 32"] [--modes dynamic]

A generated decoder with decoder_tiny's kind of token data: `python benchmarks/decoder_models.py
DIR/float.tflite --dim 256 --layers 2 --vocab 8192 --seq 32 --data`, then `--model-dir DIR`.
A block size that does not divide a layer's input width (block 128 on a 64-wide model) is
printed as not applicable for both tools.

For int8 channel, int4 channel, int4 block 32 and int4 block 128, in dynamic and
weight-only modes: tflquant and AEQ's same recipe (min/max round to nearest, symmetric,
its `dynamic` = compute INTEGER / no explicit DEQUANTIZE, `weight-only` = compute FLOAT with
DEQUANTIZE) quantize the float model; LiteRT (default resolver: XNNPACK) runs both on the
eval tokens. Prints logits SQNR (as ../shared/tools/score.py: 10 log10 |ref|^2/|ref-q|^2
over all samples), top-1 agreement, file size, quantize time and single-thread invoke
latency (tflquant and AEQ interleaved in one process), with tflquant / AEQ ratios; `cal dB`
/ `cal s` / `cal x`: tflquant given the model's calib.npz as representative data (data-aware weight
rounding), its logits SQNR, quantize time and that time over AEQ's. `--repeat N`: every quantize
time is the best of N runs (tflquant, tflquant with data and AEQ take turns). tflquant's time counts from the call after
its modules are imported to the saved file (the report, built when first read, is not read), as AEQ's child
counts from its Quantizer to its written file; both are timed warm, after one untimed call in their
process (AEQ's child quantizes twice and counts the second). AEQ runs in a child process of its own venv (it pins
its own LiteRT); without it the AEQ columns are empty.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIGS = [  # label, mode, bits, granularity, block
    ("int8 channel", 8, "channel", 32),
    ("int4 channel", 4, "channel", 32),
    ("int4 block 32", 4, "block", 32),
    ("int4 block 128", 4, "block", 128),
    ("int2 channel", 2, "channel", 32),  # beyond the issue's table: LiteRT runs int2 (ternary) FULLY_CONNECTED / DEQUANTIZE
]
MODES = ("dynamic", "weight-only")

_AEQ_CHILD = r"""
import json, sys, time, warnings, contextlib, io
warnings.filterwarnings("ignore")
from ai_edge_quantizer import quantizer
src, out, bits, gran, mode = sys.argv[1:6]
calls = int(sys.argv[6]) if len(sys.argv) > 6 else 1
cfg = {"num_bits": int(bits), "symmetric": True, "granularity": gran, "dtype": "INT"}
opc = {"weight_tensor_config": cfg, "compute_precision": "INTEGER" if mode == "dynamic" else "FLOAT",
       "explicit_dequantize": mode != "dynamic"}
times = []
for _ in range(calls):
    t, c = time.perf_counter(), time.process_time()
    q = quantizer.Quantizer(src, [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": opc}])
    with contextlib.redirect_stdout(io.StringIO()):
        res = q.quantize(None)
    open(out, "wb").write(bytes(res.quantized_model))
    times.append((time.perf_counter() - t, time.process_time() - c))
warm = min(times[1:], key=lambda x: x[1]) if calls > 1 else times[0]
print(json.dumps({"seconds": warm[0], "cpu": warm[1], "first_seconds": times[0][0], "first_cpu": times[0][1]}))
"""


def _aeq_granularity(gran: str, block: int) -> str:
    return {"channel": "CHANNELWISE", "tensor": "TENSORWISE"}.get(gran, f"BLOCKWISE_{block}")


def run_litert(model: bytes | str, tokens: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model, num_threads=1) if isinstance(model, str) else Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for x in tokens:
        it.set_tensor(d["index"], x.reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        outs.append(it.get_tensor(o["index"]).astype(np.float32).copy())
    return np.stack(outs)


def latency_ms(models: list[str], tokens: np.ndarray, reps: int = 30) -> list[float]:
    """Median single-thread invoke time of each model, their invokes interleaved in one
    process (a load spike from elsewhere hits every model alike)."""
    from ai_edge_litert.interpreter import Interpreter

    its = []
    for model in models:
        it = Interpreter(model_path=model, num_threads=1)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], tokens[0].reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        its.append(it)
    times: list[list[float]] = [[] for _ in its]
    for _ in range(reps):
        for it, ts in zip(its, times):
            t = time.perf_counter()
            it.invoke()
            ts.append(time.perf_counter() - t)
    return [1000 * float(np.median(ts)) for ts in times]


def sqnr_db(ref: np.ndarray, q: np.ndarray) -> float:
    e = float(np.sum((ref.astype(np.float64) - q) ** 2))
    return 99.0 if e == 0 else float(10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / e))


def top1(ref: np.ndarray, q: np.ndarray) -> float:
    return float(np.mean(np.argmax(ref, -1) == np.argmax(q, -1)))


def measure(path: str, ref: np.ndarray, tokens: np.ndarray) -> dict:
    try:
        out = run_litert(path, tokens)
    except Exception as e:  # LiteRT refused the model: a result, not a crash
        return {"error": str(e).splitlines()[0][:120], "size": os.path.getsize(path)}
    return {"db": sqnr_db(ref, out), "top1": top1(ref, out), "size": os.path.getsize(path)}


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=os.path.join(here, "..", "..", "shared", "models", "decoder_tiny"))
    ap.add_argument("--aeq-python", default=os.environ.get("TFLQUANT_AEQ_PYTHON", "/tmp/aeq/bin/python"))
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--no-calibration", action="store_true", help="skip the runs with calibration data (cal dB / cal s)")
    ap.add_argument("--repeat", type=int, default=1, help="quantize times: the best of this many runs, tflquant, tflquant with data and AEQ taking turns")
    ap.add_argument("--configs", help="comma-separated weight labels to run (e.g. 'int4 channel,int4 block 32'); default all")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated modes (dynamic, weight-only)")
    args = ap.parse_args(argv)
    configs = [c for c in CONFIGS if args.configs is None or c[0] in {x.strip() for x in args.configs.split(",")}]
    if not configs:
        ap.error(f"--configs names none of {', '.join(c[0] for c in CONFIGS)}")
    modes = [m for m in MODES if m in {x.strip() for x in args.modes.split(",")}]

    import tflquant
    import tflquant.api
    import tflquant.tflite.reader
    import tflquant.tflite.writer
    from tflquant.passes import get_all_passes

    for load in get_all_passes().values():  # imported before timing, as AEQ's child imports its package first
        load()

    float_path = os.path.join(args.model_dir, "float.tflite")
    tokens = next(iter(np.load(os.path.join(args.model_dir, "eval.npz")).values()))
    ref = run_litert(float_path, tokens)
    aeq = args.aeq_python if args.aeq_python and os.path.exists(args.aeq_python) else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{os.path.basename(os.path.normpath(args.model_dir))}: float {os.path.getsize(float_path) / 1024:.0f} KB, "
              f"{len(tokens)} eval samples, LiteRT default resolver (XNNPACK), 1 thread; latency: median invoke, tflquant and AEQ interleaved in one process")
        calib = os.path.join(args.model_dir, "calib.npz")
        calib = calib if os.path.exists(calib) and not args.no_calibration else None
        tflquant.quantize(float_path, mode="dynamic").save(os.path.join(tmp, "warm.tflite"))  # warm, as AEQ's second call
        head = f"{'mode':<12}{'weights':<16}{'tflq dB':>8}{'AEQ dB':>8}{'diff':>7}{'cal dB':>7}{'cal s':>6}{'cal x':>6}{'tflq KB':>9}{'AEQ KB':>8}{'size x':>8}{'tflq s':>8}{'AEQ s':>7}{'time x':>8}{'tflq ms':>8}{'AEQ ms':>8}{'top1':>6}{'AEQ':>6}"
        print(head)
        for mode in modes:
            for label, bits, gran, block in configs:
                ours_path = os.path.join(tmp, "ours.tflite")
                cal_path = os.path.join(tmp, "ours_cal.tflite")
                aeq_path = os.path.join(tmp, "aeq.tflite")
                best: dict[str, float] = {}
                aeq_error = None
                not_applicable = None
                for _rep in range(max(1, args.repeat)):  # the three take turns: a load spike hits each alike
                    t = time.perf_counter()  # to the written file, as AEQ's child counts
                    try:
                        tflquant.quantize(float_path, mode=mode, weight_bits=bits, granularity=gran, block_size=block).save(ours_path)
                    except tflquant.TflquantError as e:
                        if gran != "block":
                            raise
                        not_applicable = str(e)  # the block size does not divide a weight's input dimension
                        break
                    best["ours"] = min(best.get("ours", 1e9), time.perf_counter() - t)
                    if calib is not None:  # the same with calibration data (data-aware weight rounding)
                        t = time.perf_counter()
                        tflquant.quantize(float_path, mode=mode, weight_bits=bits, granularity=gran, block_size=block,
                                          representative_dataset=calib).save(cal_path)
                        best["cal"] = min(best.get("cal", 1e9), time.perf_counter() - t)
                    if aeq:
                        p = subprocess.run([aeq, "-c", _AEQ_CHILD, float_path, aeq_path, str(bits), _aeq_granularity(gran, block), mode, "2"],
                                           capture_output=True, text=True, timeout=1800)
                        if p.returncode == 0:
                            best["aeq"] = min(best.get("aeq", 1e9), json.loads(p.stdout.strip().splitlines()[-1])["seconds"])
                        else:
                            aeq_error = (p.stderr.strip().splitlines() or ["?"])[-1][:120]
                if not_applicable is not None:  # neither tool has this format for the model: a row, not a crash
                    rows.append({"mode": mode, "weights": label, "not_applicable": not_applicable})
                    print(f"{mode:<12}{label:<16}  not applicable to this model (both tools): {not_applicable[:150]}")
                    sys.stdout.flush()
                    continue
                ours = measure(ours_path, ref, tokens)
                ours["seconds"] = best["ours"]
                cal: dict = {}
                if calib is not None:
                    cal = measure(cal_path, ref, tokens)
                    cal["seconds"] = best["cal"]
                theirs: dict = {}
                if aeq and aeq_error is not None:
                    theirs = {"error": aeq_error}
                elif aeq:
                    theirs = measure(aeq_path, ref, tokens)
                    theirs["seconds"] = best["aeq"]
                runnable = [(d, path) for d, path in ((ours, ours_path), (theirs, os.path.join(tmp, "aeq.tflite"))) if "db" in d]
                for (d, _path), ms in zip(runnable, latency_ms([path for _d, path in runnable], tokens)):
                    d["ms"] = ms
                if theirs.get("size", 0) > 0.9 * os.path.getsize(float_path):
                    theirs["note"] = "AEQ left the weights float (no such recipe): its columns are the float model's"
                rows.append({"mode": mode, "weights": label, "tflquant": ours, "tflquant_calibrated": cal, "aeq": theirs})

                def f(d: dict, k: str, fmt: str) -> str:
                    return format(d[k], fmt) if k in d else "-"

                def ratio(k: str) -> str:
                    return f"{ours[k] / theirs[k]:.2f}" if k in ours and theirs.get(k) else "-"

                cal_x = f"{cal['seconds'] / theirs['seconds']:.2f}" if "seconds" in cal and theirs.get("seconds") else "-"
                diff = f"{ours['db'] - theirs['db']:+.1f}" if "db" in ours and "db" in theirs else "-"
                size_a = f"{theirs['size'] / 1024:.0f}" if "size" in theirs else "-"
                print(f"{mode:<12}{label:<16}{f(ours, 'db', '.1f'):>8}{f(theirs, 'db', '.1f'):>8}{diff:>7}{f(cal, 'db', '.1f'):>7}{f(cal, 'seconds', '.2f'):>6}{cal_x:>6}{ours['size'] / 1024:>9.0f}{size_a:>8}"
                      f"{ratio('size'):>8}{f(ours, 'seconds', '.2f'):>8}{f(theirs, 'seconds', '.2f'):>7}{ratio('seconds'):>8}"
                      f"{f(ours, 'ms', '.2f'):>8}{f(theirs, 'ms', '.2f'):>8}{f(ours, 'top1', '.2f'):>6}{f(theirs, 'top1', '.2f'):>6}")
                for who, d in (("tflquant", ours), ("tflquant with calibration", cal), ("AEQ", theirs)):
                    if "error" in d or "note" in d:
                        print(f"    {who}: {d.get('error') or d['note']}")
                sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
