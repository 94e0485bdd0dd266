#!/usr/bin/env python3
"""Models past 2 GB: generate a ~3 GB decoder, quantize it, report time and peak memory.

    python benchmarks/large_model.py [--dim 2048 --layers 12 --vocab 32000] [--workdir /tmp]
                                     [--aeq-python /tmp/aeq/bin/python] [--no-aeq] [--keep]
                                     [--determinism] [--roundtrip] [--int4]

Steps, each in a child process of its own (wall time and peak RSS from getrusage, as
benchmarks/run.py measures; peak RSS counts the model file's mapped pages):

1. benchmarks/decoder_models.py writes the float decoder (large-model layout past 2 GB);
2. tflquant quantizes it: dynamic int8 and, when the API has it, weight-only int4
   (blockwise 32), each written to a file as `tflquant quantize -o` does;
3. AEQ's dynamic_wi8_afp32 recipe, when its venv is there (--aeq-python); with --int4
   also tflquant dynamic int4 blockwise 32 without data (MSE-clipped scales, the default)
   against AEQ's same recipe (min/max, BLOCKWISE_32);
4. LiteRT loads the float model and every output, runs a few token sequences (one invoke
   each) and the logits are compared with the float model's: SQNR (10 log10 |ref|^2 /
   |ref - q|^2 over all sequences) and top-1 agreement.

Prints one row per quantizer (time, peak GB, peak / float file size, output size, SQNR,
top-1, runs in LiteRT), each output's sha256, and tflquant / AEQ ratios. --determinism
quantizes dynamic int8 a second time in a fresh process and compares the two outputs'
bytes; --roundtrip reads the float model with tflquant's reader, writes it back with its
writer (the large-model layout past 2 GB), compares the bytes with the input and reads the
copy back. Files are deleted unless --keep.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import _child  # noqa: E402

HERE = Path(__file__).resolve().parent
GB = 1e9

_GENERATE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from decoder_models import write_decoder
out, dim, layers, vocab, seq = sys.argv[2], *map(int, sys.argv[3:7])
t = time.perf_counter()
size = write_decoder(out, dim, layers, vocab, seq)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "size": size}))
"""

# peak resident memory split into anonymous (the process's own) and file-backed (mapped
# model pages) as /proc/self/status tells, sampled every 20 ms on Linux; {} elsewhere
_RSS_SAMPLER = r"""
import threading
_rss_peak = {}
def _rss_sample():
    import time
    while True:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(("RssAnon", "RssFile")):
                        k, v = line.split(":")
                        _rss_peak[k] = max(_rss_peak.get(k, 0), int(v.split()[0]))
        except OSError:
            return
        time.sleep(0.02)
threading.Thread(target=_rss_sample, daemon=True).start()
"""

_TFLQUANT = _RSS_SAMPLER + r"""
import json, resource, sys, time
import tflquant, tflquant.api, tflquant.tflite.reader, tflquant.tflite.writer
from tflquant.passes import get_all_passes
for load in get_all_passes().values():
    load()
src, out, mode, bits, gran, rounding = sys.argv[1:7]
kw = {} if bits == "8" else {"weight_bits": int(bits), "granularity": gran, "block_size": 32}
if rounding:
    kw["weight_rounding"] = rounding
ru = resource.getrusage(resource.RUSAGE_SELF)
base, cpu0 = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
t = time.perf_counter()
r = tflquant.quantize(src, mode=mode, **kw)
r.save(out)
t_report = time.perf_counter()
phases = dict(r.report.seconds)  # the report (per-op weight SQNRs) is built when first read: timed, as the CLI prints it
phases["report"] = time.perf_counter() - t_report
sec = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
time.sleep(0.05)
print(json.dumps({"seconds": sec, "cpu_seconds": ru.ru_utime + ru.ru_stime - cpu0, "peak_kb": ru.ru_maxrss, "base_kb": base,
                  "anon_kb": _rss_peak.get("RssAnon"), "file_kb": _rss_peak.get("RssFile"),
                  "phases": phases, "size": r.report.size_after}))
"""

_AEQ = r"""
import contextlib, io, json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from ai_edge_quantizer import quantizer, recipe
src, out = sys.argv[1:3]
gran = sys.argv[3] if len(sys.argv) > 3 else ""  # "": the dynamic_wi8_afp32 recipe; else int4 dynamic with this granularity
ru = resource.getrusage(resource.RUSAGE_SELF)
base, cpu0 = ru.ru_maxrss, ru.ru_utime + ru.ru_stime
t = time.perf_counter()
if gran:
    cfg = {"num_bits": 4, "symmetric": True, "granularity": gran, "dtype": "INT"}
    rec = [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
            "op_config": {"weight_tensor_config": cfg, "compute_precision": "INTEGER", "explicit_dequantize": False}}]
else:
    rec = recipe.dynamic_wi8_afp32()
q = quantizer.Quantizer(src, rec)
with contextlib.redirect_stdout(io.StringIO()):
    res = q.quantize()
res.export_model(out, overwrite=True) if hasattr(res, "export_model") else open(out, "wb").write(bytes(res.quantized_model))
sec = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": sec, "cpu_seconds": ru.ru_utime + ru.ru_stime - cpu0, "peak_kb": ru.ru_maxrss, "base_kb": base}))
"""

_ROUNDTRIP = r"""
import hashlib, json, resource, sys, time
import numpy as np
from tflquant.ir import dense_to_numpy, release_payload
from tflquant.tflite.reader import load_model
from tflquant.tflite.writer import write_model
from tflquant.dialects import tfl
src, out = sys.argv[1:3]
def digest(module):
    h, n = hashlib.sha256(), 0
    for op in module.walk():
        if isinstance(op, tfl.ConstOp):
            h.update(str(op.results[0].type).encode())
            a = dense_to_numpy(op.value)
            h.update(memoryview(a).cast("B") if a.size else np.ascontiguousarray(a).tobytes())  # (no cast with a 0 in the shape)
            release_payload(op.value)  # the check's own reading leaves the mapped pages free
            n += 1
    return h.hexdigest(), n
t = time.perf_counter()
m = load_model(src)
t_read = time.perf_counter() - t
before, consts = digest(m)
t = time.perf_counter()
size = write_model(m, out)
t_write = time.perf_counter() - t
del m
t = time.perf_counter()
m = load_model(out)
after, consts_after = digest(m)
t_reread = time.perf_counter() - t
write_model(m, out + ".again")  # written from what it read: the same bytes (a fixed point)
print(json.dumps({"read": t_read, "write": t_write, "reread": t_reread, "size": size, "constants": consts,
                  "constants_equal": before == after and consts == consts_after,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_LITERT = r"""
import json, resource, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, tokens_path, out = sys.argv[1:4]
tokens = np.load(tokens_path)
it = Interpreter(model_path=path, num_threads=2)
it.allocate_tensors()
i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
logits = []
for x in tokens:
    it.set_tensor(i, x)
    it.invoke()
    logits.append(it.get_tensor(o).copy())
np.save(out, np.stack(logits))
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""



def child(python: str, script: str, args: list[str], timeout: float = 3600) -> dict:
    """run.py's child runner (last JSON line of stdout, or {"error": ...})."""
    return _child(python, script, [str(a) for a in args], timeout)


def sqnr_db(ref, q) -> float:
    import numpy as np

    ref, q = np.asarray(ref, np.float64), np.asarray(q, np.float64)
    noise = float(np.sum((ref - q) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref**2)) / noise)


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from decoder_models import param_bytes, token_batches

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--sequences", type=int, default=4, help="token sequences LiteRT runs")
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--aeq-python", default=os.environ.get("TFLQUANT_AEQ_PYTHON", "/tmp/aeq/bin/python"))
    ap.add_argument("--no-aeq", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the model files")
    ap.add_argument("--no-weight-only", action="store_true", help="skip the weight-only int4 run")
    ap.add_argument("--int4", action="store_true", help="also dynamic int4 block 32, tflquant (no data) and AEQ")
    ap.add_argument("--weight-rounding", default="", help="weight_rounding for the tflquant runs (default: the API's)")
    ap.add_argument("--model", default=None, help="use this float model instead of generating one (kept)")
    ap.add_argument("--determinism", action="store_true", help="quantize dynamic int8 twice (fresh processes), compare the bytes")
    ap.add_argument("--roundtrip", action="store_true", help="read the float model, write it back with tflquant, compare, read it back")
    a = ap.parse_args(argv)

    import tflquant.api

    work = Path(a.workdir) / f"tflquant-large-{a.dim}x{a.layers}x{a.vocab}"
    work.mkdir(parents=True, exist_ok=True)
    fpath = work / "float.tflite"
    made: list[Path] = [fpath]
    py = sys.executable
    print(f"decoder dim {a.dim}, {a.layers} layers, vocab {a.vocab}, seq {a.seq}: ~{param_bytes(a.dim, a.layers, a.vocab) / GB:.2f} GB of float32 weights")
    if a.model:
        fpath = Path(a.model)
        made.remove(work / "float.tflite")
    else:
        gen = child(py, _GENERATE, [HERE, fpath, a.dim, a.layers, a.vocab, a.seq])
        if "error" in gen:
            print(f"generating failed: {gen['error']}")
            return 1
        print(f"generated {fpath} ({fpath.stat().st_size / GB:.2f} GB) in {gen['seconds']:.1f} s, peak {gen['peak_kb'] * 1024 / GB:.2f} GB")
    fsize = fpath.stat().st_size

    runs: list[tuple[str, Path, dict]] = []
    configs = [("tflquant dynamic int8", "dynamic", "8", "channel")]
    if "weight-only" in getattr(tflquant.api, "MODES", ()) and not a.no_weight_only:
        configs.append(("tflquant weight-only int4 b32", "weight-only", "4", "block"))
    if a.int4:
        configs.append(("tflquant dynamic int4 b32", "dynamic", "4", "block"))
    for label, mode, bits, gran in configs:
        out = work / f"{mode}_{bits}.tflite"
        made.append(out)
        if a.weight_rounding:
            label += f" ({a.weight_rounding})"
        runs.append((label, out, child(py, _TFLQUANT, [fpath, out, mode, bits, gran, a.weight_rounding])))
        if a.determinism and mode == "dynamic":
            out2 = work / f"{mode}_{bits}.again.tflite"
            made.append(out2)
            runs.append((label + " again", out2, child(py, _TFLQUANT, [fpath, out2, mode, bits, gran, a.weight_rounding])))
    aeq_ok = not a.no_aeq and Path(a.aeq_python).exists()
    if aeq_ok:
        out = work / "aeq_dynamic_wi8_afp32.tflite"
        made.append(out)
        runs.append(("AEQ dynamic_wi8_afp32", out, child(a.aeq_python, _AEQ, [fpath, out])))
        if a.int4:
            out = work / "aeq_dynamic_int4_b32.tflite"
            made.append(out)
            runs.append(("AEQ dynamic int4 b32", out, child(a.aeq_python, _AEQ, [fpath, out, "BLOCKWISE_32"])))

    if a.roundtrip:
        rt_path, rt_again = work / "roundtrip.tflite", work / "roundtrip.tflite.again"
        made += [rt_path, rt_again]
        rt = child(py, _ROUNDTRIP, [fpath, rt_path])
        if "error" in rt:
            print(f"round trip failed: {rt['error']}")
        else:
            digest = sha256_file(rt_path)
            same = "byte-identical to" if digest == sha256_file(fpath) else "not byte-identical to"
            fixed = "the same bytes" if digest == sha256_file(rt_again) else "DIFFERENT bytes"
            print(f"round trip: read {rt['read']:.1f} s, write {rt['write']:.1f} s ({rt['size'] / GB:.2f} GB, {same} the input "
                  f"(size {'equal' if rt['size'] == fsize else 'DIFFERENT'})), read back {rt['reread']:.1f} s: {rt['constants']} "
                  f"constants {'equal' if rt['constants_equal'] else 'NOT EQUAL'}, written again: {fixed}; peak {rt['peak_kb'] * 1024 / GB:.2f} GB")

    tokens = token_batches(a.vocab, a.seq, a.sequences)
    tok_path = work / "tokens.npy"
    np.save(tok_path, tokens)
    made.append(tok_path)
    ref_path = work / "ref.npy"
    made.append(ref_path)
    ref_run = child(py, _LITERT, [fpath, tok_path, ref_path])
    ref = np.load(ref_path) if "error" not in ref_run else None
    if ref is None:
        print(f"LiteRT could not run the float model: {ref_run['error']}")
    else:
        print(f"LiteRT runs the float model (peak {ref_run['peak_kb'] * 1024 / GB:.2f} GB)")

    head = f"{'quantizer':<30}{'time s':>8}{'CPU s':>7}{'peak GB':>9}{'x file':>8}{'out GB':>8}{'SQNR dB':>9}{'top-1':>7}  LiteRT"
    print()
    print(head)
    print("-" * len(head))
    results = {}
    for label, out, r in runs:
        if "error" in r:
            print(f"{label:<30} failed: {r['error']}")
            continue
        runs_ok, db, top1 = "no", float("nan"), float("nan")
        got_path = out.with_suffix(".logits.npy")
        made.append(got_path)
        lr = child(py, _LITERT, [out, tok_path, got_path])
        if "error" not in lr:
            runs_ok = "runs"
            got = np.load(got_path)
            if ref is not None:
                db = sqnr_db(ref, got)
                top1 = float(np.mean(ref.argmax(-1) == got.argmax(-1)))
        else:
            runs_ok = f"fails: {lr['error'][:60]}"
        peak = r["peak_kb"] * 1024
        results[label] = r
        print(f"{label:<30}{r['seconds']:>8.1f}{r.get('cpu_seconds', float('nan')):>7.1f}{peak / GB:>9.2f}{peak / fsize:>8.2f}{out.stat().st_size / GB:>8.2f}{db:>9.1f}{top1:>7.2f}  {runs_ok}")
        if "phases" in r:
            print(f"{'':<30}phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["phases"].items() if k != "total"))
        if r.get("anon_kb") is not None:
            print(f"{'':<30}peak resident split (sampled): anonymous {r['anon_kb'] * 1024 / GB:.2f} GB, mapped file pages {r['file_kb'] * 1024 / GB:.2f} GB")
        r["sha256"] = sha256_file(out)
        print(f"{'':<30}sha256 {r['sha256']}")
    ours, theirs = next((v for k, v in results.items() if k.startswith("tflquant dynamic int8")), None), results.get("AEQ dynamic_wi8_afp32")
    again = next((v for k, v in results.items() if k.startswith("tflquant dynamic int8") and k.endswith(" again")), None)
    if ours and again:
        print(f"\ndynamic int8 twice: outputs {'byte-identical' if ours['sha256'] == again['sha256'] else 'DIFFER'}")
    pairs = [("dynamic int8", ours, theirs),
             ("dynamic int4 b32", next((v for k, v in results.items() if k.startswith("tflquant dynamic int4 b32")), None), results.get("AEQ dynamic int4 b32"))]
    for what, mine, other in pairs:
        if mine and other:
            print(f"\ntflquant / AEQ ({what}): time {mine['seconds'] / other['seconds']:.2f}x, CPU time "
                  f"{mine['cpu_seconds'] / other['cpu_seconds']:.2f}x, peak memory {mine['peak_kb'] / other['peak_kb']:.2f}x")
    if not a.keep:
        for p in made:
            if p.exists():
                p.unlink()
        try:
            work.rmdir()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
