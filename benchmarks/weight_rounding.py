"""Data-aware weight rounding (tflquant.calibration.weight_rounding) on a decoder: per layer and whole model.

    python benchmarks/weight_rounding.py [--model DIR] [--timing] [--act-order]

For each FULLY_CONNECTED (and BATCH_MATMUL with a constant weight) of the model, the float
reference interpreter runs the calibration tokens (calib.npz) and an observer accumulates
the layer's input statistics (X^T X); the evaluation tokens (eval.npz) give held-out
inputs. Each weight is then rounded with round to nearest ("rtn", absmax scales: what
quantize-weights does today), MSE-clipped scales ("mse", E[x^2]-weighted) and GPTQ
("gptq"), for int4 channel / block 32 / block 128 (and int8 channel for reference), and
the table gives
- per layer: output SQNR (dB) of x @ W^T against x @ W_hat^T on the held-out inputs
  (the mean over layers, and the worst layer);
- whole model: logits SQNR (dB) on eval.npz of the model whose weights are replaced by the
  dequantized weights (simulated weight-only: float compute), run by the float reference
  interpreter.
Statistics come from the float model (every layer sees float inputs). `--sequential` adds
"gptq-seq" rows for the int4 formats: layers are rounded stage by stage in program order
(a stage = the layers reading one input, e.g. query/key/value), each stage's statistics
collected from the model whose earlier layers already hold their rounded weights, as the
GPTQ paper does (one calibration run per stage).
`--timing` also times GPTQ on a synthetic 2048 x 2048 layer with 512 calibration rows.

`--litert` measures the product instead (tflquant.quantize with the calibration tokens,
weight_rounding nearest / mse / auto, as a user runs it) next to AEQ's same recipe, LiteRT
running every model on eval.npz (benchmarks/llm.py's runner): logits SQNR, top-1, size,
quantize wall and CPU seconds (CPU as a multiple of AEQ's CPU for the same recipe) with
the wall split (load, statistics = the float run collecting X^T X, passes = rounding,
check, write), for int8 channel, int4 channel, int4 block 32, int4 block 128 in dynamic
and weight-only modes. `--max-samples N` caps the calibration sequences the statistics run
reads (the row-budget trade-off: SQNR against the float run's time).
A generated decoder for `--model`: benchmarks/decoder_models.py DIR/float.tflite --dim 512
--layers 4 --vocab 8000 --seq 32, with DIR/calib.npz = token_batches(8000, 32, 64, seed 1)
and DIR/eval.npz = token_batches(8000, 32, 32, seed 2) (`--make-decoder DIR` writes them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from tflquant.calibration import weight_rounding as wr
from tflquant.dialects import tfl
from tflquant.ir import dense_from_numpy, value_name
from tflquant.reference import Interpreter
from tflquant.tflite.reader import read_flatbuffer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "..", "shared", "models", "decoder_tiny")

FORMATS = [(8, "channel", 32), (4, "channel", 32), (4, "block", 32), (4, "block", 128)]
METHODS = ("rtn", "mse", "gptq")


class Layer:
    def __init__(self, op, const: tfl.ConstOp, adj_y: bool | None):
        self.op, self.const, self.adj_y = op, const, adj_y  # adj_y None: FULLY_CONNECTED
        self.w = const.numpy().astype(np.float32)
        self.name = value_name(op.results[0]) or op.name
        self.in_features = self.w.shape[1] if adj_y is None or adj_y else self.w.shape[-2]
        self.stats = wr.InputStatistics(self.in_features)
        self.eval_x: list[np.ndarray] = []

    def round(self, bits: int, gran: str, block: int, method: str, act_order: bool) -> np.ndarray:
        kw = dict(bits=bits, granularity=gran, block_size=block, method=method, stats=self.stats, act_order=act_order)
        if self.adj_y is None:
            return wr.round_fully_connected(self.w, **kw).dequantized()
        r = wr.round_batch_matmul(self.w, adj_y=self.adj_y, **kw)
        return _dequantize_bmm(r, self.adj_y)

    def output(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x = x.reshape(-1, self.in_features).astype(np.float64)
        if self.adj_y is None:
            return x @ w.T.astype(np.float64)
        m = w.reshape(-1, *w.shape[-2:])[0]  # batch matrices share the input here: first one
        return x @ (m.T if self.adj_y else m).astype(np.float64)


def _dequantize_bmm(r: wr.RoundedWeight, adj_y: bool) -> np.ndarray:
    c = r.codes.astype(np.float32)
    if r.granularity == "tensor":
        return c * r.scales[0]
    if r.granularity == "channel":
        return c * (r.scales[..., None] if adj_y else r.scales[..., None, :])
    return c * np.repeat(r.scales, r.block_size, axis=-1)


def find_layers(module) -> list[Layer]:
    layers = []
    for op in module.walk():
        if isinstance(op, tfl.BUILTIN_CLASSES["FULLY_CONNECTED"]):
            w = op.operand("filter")
            if w is not None and isinstance(w.owner, tfl.ConstOp):
                layers.append(Layer(op, w.owner, None))
        elif isinstance(op, tfl.BUILTIN_CLASSES["BATCH_MATMUL"]) and isinstance(op.operands[1].owner, tfl.ConstOp):
            layers.append(Layer(op, op.operands[1].owner, bool(op.option("adj_y"))))
    return layers


def run(module, tokens: np.ndarray, layers: list[Layer] | None = None, collect: str | None = None) -> np.ndarray:
    """Logits of `tokens` [N, seq]; with `collect` ("stats" / "eval") layers' inputs are observed."""
    by_value = {}
    for L in layers or ():
        by_value.setdefault(L.op.operands[0], []).append(L)

    def observe(v, a):
        for L in by_value.get(v, ()):
            if collect == "stats":
                L.stats.add(a)
            else:
                L.eval_x.append(np.array(a, np.float32).reshape(-1, L.in_features))

    interp = Interpreter(module)
    arg = interp.function().body.blocks[0].args[0]
    shape = tuple(arg.type.get_shape())
    x = tokens.reshape(tokens.shape[0], *shape).astype(np.int32)
    return interp.run([x], observer=observe if collect else None)[0]


def timing() -> None:
    rng = np.random.default_rng(0)
    out, inn, n = 2048, 2048, 512
    w = (rng.standard_t(3, size=(out, inn)) * 0.02).astype(np.float32)
    x = (rng.standard_normal((n, 256)) @ rng.standard_normal((256, inn)) / 4 + 0.5 * rng.standard_normal((n, inn))).astype(np.float32)
    x[:, :16] *= 20
    t = time.perf_counter()
    st = wr.InputStatistics.of(x)
    t_stats = time.perf_counter() - t
    print(f"\ntiming: 2048x2048 layer, 512 calibration rows (best of 3; X^T X accumulation {t_stats:.2f} s)")
    print("wall seconds (CPU seconds in parentheses; the machine may be shared)")
    print(f"{'format':<16}{'rtn':>13}{'mse':>13}{'gptq':>13}{'gptq act-order':>16}   output SQNR rtn/mse/gptq dB")
    for bits, gran, block in FORMATS[1:]:
        row, cpus, dbs = [], [], []
        for method, ao in [("rtn", False), ("mse", False), ("gptq", False), ("gptq", True)]:
            best = cpu = float("inf")
            for _ in range(3):
                t, c = time.perf_counter(), time.process_time()
                r = wr.round_weight(w, bits, gran, block, method=method, stats=st, act_order=ao)
                best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
            row.append(best)
            cpus.append(cpu)
            if not ao:
                dbs.append(wr.sqnr_db(x @ w.T, x @ r.dequantized().T))
        label = f"int{bits} {gran}" + (f" {block}" if gran == "block" else "")
        cells = [f"{v:.2f} ({c:.2f})" for v, c in zip(row, cpus)]
        print(f"{label:<16}" + "".join(f"{c:>13}" for c in cells[:3]) + f"{cells[3]:>16}   " + " / ".join(f"{d:.1f}" for d in dbs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="directory with float.tflite, calib.npz, eval.npz")
    ap.add_argument("--act-order", action="store_true", help="GPTQ with act-order (columns by descending E[x^2])")
    ap.add_argument("--timing", action="store_true", help="also time a synthetic 2048 x 2048 layer")
    ap.add_argument("--sequential", action="store_true", help="also GPTQ with statistics from the partly rounded model (int4 only; slow)")
    ap.add_argument("--litert", action="store_true", help="measure tflquant.quantize's models in LiteRT next to AEQ's instead")
    ap.add_argument("--aeq-python", default=os.environ.get("TFLQUANT_AEQ_PYTHON", "/tmp/aeq/bin/python"))
    ap.add_argument("--roundings", default="nearest,mse,auto", help="--litert: weight_rounding values to measure")
    ap.add_argument("--make-decoder", metavar="DIR", help="write the 512-wide generated decoder with calib / eval tokens to DIR and exit")
    ap.add_argument("--max-samples", type=int, default=None, help="--litert: calibration samples (sequences) the statistics run reads (default: all)")
    args = ap.parse_args(argv)
    if args.make_decoder:
        import decoder_models

        os.makedirs(args.make_decoder, exist_ok=True)
        decoder_models.main([os.path.join(args.make_decoder, "float.tflite"), "--dim", "512", "--layers", "4", "--vocab", "8000", "--seq", "32"])
        np.savez(os.path.join(args.make_decoder, "calib.npz"), tokens=decoder_models.token_batches(8000, 32, 64, 1))
        np.savez(os.path.join(args.make_decoder, "eval.npz"), tokens=decoder_models.token_batches(8000, 32, 32, 2))
        return 0
    if args.litert:
        return litert_table(args.model, args.aeq_python, args.roundings.split(","), args.max_samples)

    with open(os.path.join(args.model, "float.tflite"), "rb") as f:
        module = read_flatbuffer(f.read(), "float.tflite")
    calib = np.load(os.path.join(args.model, "calib.npz"))
    ev = np.load(os.path.join(args.model, "eval.npz"))
    calib_t, eval_t = calib[calib.files[0]], ev[ev.files[0]]
    layers = find_layers(module)
    if not layers:
        print("no FULLY_CONNECTED / BATCH_MATMUL with a constant weight")
        return 1
    t = time.perf_counter()
    run(module, calib_t, layers, "stats")
    ref = run(module, eval_t, layers, "eval")
    print(f"{os.path.basename(os.path.normpath(args.model))}: {len(layers)} layers with constant weights, "
          f"{calib_t.shape[0]} calibration / {eval_t.shape[0]} eval sequences; float runs {time.perf_counter() - t:.1f} s"
          + ("; GPTQ act-order" if args.act_order else ""))

    print(f"\n{'format':<16}{'method':<9}{'layer mean dB':>14}{'worst dB':>10}{'logits dB':>11}{'round s':>9}")
    originals = [L.const.value for L in layers]
    for bits, gran, block in FORMATS:
        label = f"int{bits} {gran}" + (f" {block}" if gran == "block" else "")
        for method in METHODS:
            t = time.perf_counter()
            deqs = [L.round(bits, gran, block, method, args.act_order) for L in layers]
            dt = time.perf_counter() - t
            _row(module, layers, deqs, originals, eval_t, ref, label, method, dt)
        if args.sequential and bits == 4:
            t = time.perf_counter()
            deqs = sequential_gptq(module, layers, originals, calib_t, bits, gran, block, args.act_order)
            _row(module, layers, deqs, originals, eval_t, ref, label, "gptq-seq", time.perf_counter() - t)
    if args.timing:
        timing()
    return 0


def sequential_gptq(module, layers: list[Layer], originals, calib_t, bits: int, gran: str, block: int, act_order: bool) -> list[np.ndarray]:
    stages: dict[object, list[Layer]] = {}
    for L in layers:
        stages.setdefault(L.op.operands[0], []).append(L)
    done: dict[int, np.ndarray] = {}
    saved = [L.stats for L in layers]
    try:
        for group in stages.values():
            for L in group:
                L.stats = wr.InputStatistics(L.in_features)
            for L, v in zip(layers, originals):
                L.const.properties["value"] = dense_from_numpy(done[id(L)].astype(np.float32)) if id(L) in done else v
            run(module, calib_t, group, "stats")
            for L in group:
                done[id(L)] = L.round(bits, gran, block, "gptq", act_order)
    finally:
        for L, v, st in zip(layers, originals, saved):
            L.const.properties["value"] = v
            L.stats = st
    return [done[id(L)] for L in layers]


def _row(module, layers: list[Layer], deqs, originals, eval_t, ref, label: str, method: str, dt: float) -> None:
    """Per-layer SQNR on the held-out inputs and logits SQNR with the rounded weights swapped in."""
    per = []
    for L, d in zip(layers, deqs):
        x = np.concatenate(L.eval_x)
        per.append(wr.sqnr_db(L.output(x, L.w), L.output(x, d)))
    for L, d in zip(layers, deqs):
        L.const.properties["value"] = dense_from_numpy(d.astype(np.float32))
    try:
        logits = run(module, eval_t)
    finally:
        for L, v in zip(layers, originals):
            L.const.properties["value"] = v
    print(f"{label:<16}{method:<9}{np.mean(per):>14.2f}{np.min(per):>10.2f}{wr.sqnr_db(ref, logits):>11.2f}{dt:>9.2f}", flush=True)


def litert_table(model_dir: str, aeq_python: str | None, roundings: list[str], max_samples: int | None = None) -> int:
    """Every format x mode x rounding: LiteRT logits SQNR, top-1, size, quantize wall and
    CPU seconds (process_time: every thread of the process; the fairer figure on a shared
    machine) and CPU as a multiple of AEQ's same recipe (its CPU seconds after its imports)."""
    import subprocess
    import tempfile

    import llm  # benchmarks/llm.py: LiteRT runner, the formats

    import tflquant

    float_path = os.path.join(model_dir, "float.tflite")
    calib_path = os.path.join(model_dir, "calib.npz")
    tokens = next(iter(np.load(os.path.join(model_dir, "eval.npz")).values()))
    ref = llm.run_litert(float_path, tokens)
    aeq = aeq_python if aeq_python and os.path.exists(aeq_python) else None
    tflquant.quantize(float_path, mode="dynamic")  # imports and first-call costs out of the timings
    print(f"{os.path.basename(os.path.normpath(model_dir))}: LiteRT (XNNPACK, 1 thread) on {len(tokens)} eval sequences; "
          f"tflquant with {os.path.basename(calib_path)}" + (f" (max_samples {max_samples})" if max_samples else "")
          + f"; wall s / CPU s on a shared machine (load {os.getloadavg()[0]:.1f})")
    print(f"{'mode':<12}{'weights':<16}{'rounding':<10}{'dB':>7}{'top1':>6}{'KB':>7}{'wall s':>8}{'CPU s':>7}{'x AEQ':>7}   time split (wall)")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in llm.MODES:
            for label, bits, gran, block in llm.CONFIGS:
                aeq_cpu = None
                rows = []
                if aeq:
                    path = os.path.join(tmp, "aeq.tflite")
                    p = subprocess.run([aeq, "-c", llm._AEQ_CHILD, float_path, path, str(bits), llm._aeq_granularity(gran, block), mode],
                                       capture_output=True, text=True, timeout=1800)
                    if p.returncode == 0:
                        m = llm.measure(path, ref, tokens)
                        d = json.loads(p.stdout.strip().splitlines()[-1])
                        aeq_cpu = d["cpu"]
                        rows.append(f"{mode:<12}{label:<16}{'AEQ':<10}{m.get('db', float('nan')):>7.1f}{m.get('top1', float('nan')):>6.2f}"
                                    f"{m['size'] / 1024:>7.0f}{d['seconds']:>8.2f}{d['cpu']:>7.2f}")
                    else:
                        rows.append(f"{mode:<12}{label:<16}{'AEQ':<10} failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:100]}")
                for rounding in roundings:
                    path = os.path.join(tmp, "ours.tflite")
                    t, c = time.perf_counter(), time.process_time()
                    r = tflquant.quantize(float_path, mode=mode, weight_bits=bits, granularity=gran, block_size=block,
                                          representative_dataset=calib_path, weight_rounding=rounding, max_samples=max_samples)
                    total, cpu = time.perf_counter() - t, time.process_time() - c
                    r.save(path)
                    m = llm.measure(path, ref, tokens)
                    split = ", ".join(f"{k} {v:.2f}" for k, v in r.report.seconds.items() if k != "total")
                    ratio = f"{cpu / aeq_cpu:>7.1f}" if aeq_cpu else f"{'':>7}"
                    print(f"{mode:<12}{label:<16}{rounding:<10}{m.get('db', float('nan')):>7.1f}{m.get('top1', float('nan')):>6.2f}"
                          f"{m['size'] / 1024:>7.0f}{total:>8.2f}{cpu:>7.2f}{ratio}   {split}", flush=True)
                for row in rows:
                    print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
