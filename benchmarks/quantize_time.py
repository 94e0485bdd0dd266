"""Quantize time against ai-edge-quantizer (AEQ), issue 12 ("quantize time at most half of
AEQ's"), measured two ways.

    python benchmarks/quantize_time.py [--model ../shared/models/decoder_tiny/float.tflite] [--rounds 5]

For int8 channel, int4 channel, int4 block 32 and int4 block 128 in dynamic and weight-only
modes:

- per call, warm: tflquant's `quantize(...).save(path)` in this process after an untimed
  call, best of 3 x rounds; AEQ's same recipe in a child process of its own venv that
  quantizes 4 times and counts the best of its last 3 (its first call also pays AEQ's
  one-time set-up, as our untimed call does ours), best over rounds. This is what a
  toolchain that embeds the quantizer pays per model.
- per process, cold (`--process`): what a new user waits for. `tflquant quantize MODEL -o OUT
  ...` as a command, against a Python process that imports ai_edge_quantizer and runs the
  same recipe once (benchmarks/llm.py's child); each a fresh process, best over rounds.

The two take turns, so a load spike hits both alike. CPU seconds (time.process_time, or the
children's rusage), which a loaded machine disturbs less than wall time; wall is printed too.
For 4-bit rows also tflquant with `weight_rounding="nearest"`, AEQ's own method (the default
clips the scales to the least weight error, the issue's no-data method). AEQ has no
weight-only blockwise recipe: those rows have no ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llm  # noqa: E402  (its recipes and AEQ child)


def _ours(path: str, out: str, **kw: object) -> tuple[float, float]:
    import tflquant

    t, c = time.perf_counter(), time.process_time()
    tflquant.quantize(path, **kw).save(out)
    return time.process_time() - c, time.perf_counter() - t


def _child(cmd: list[str]) -> tuple[float, float, str]:
    """(CPU, wall, stdout) of one child process, CPU from its rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"{cmd[0]} failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall, p.stdout


def _cli(model: str, out: str, mode: str, bits: int, gran: str, block: int) -> list[str]:
    cli = os.path.join(os.path.dirname(sys.executable), "tflquant")
    return [cli, "quantize", model, "-o", out, "--mode", mode, "--weight-bits", str(bits), "--granularity", gran, "--block-size", str(block)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "shared", "models", "decoder_tiny", "float.tflite"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--process", action="store_true", help="also time whole processes: the tflquant command against a fresh AEQ script")
    ap.add_argument("--with-data", action="store_true", help="4-bit rows also with the model's calib.npz (data-aware rounding), warm")
    ap.add_argument("--aeq-python", default=os.environ.get("TFLQUANT_AEQ_PYTHON", "/tmp/aeq/bin/python"))
    args = ap.parse_args()
    aeq = args.aeq_python if os.path.exists(args.aeq_python) else None
    tmp = tempfile.mkdtemp()
    calib = os.path.join(os.path.dirname(os.path.abspath(args.model)), "calib.npz")
    calib = calib if os.path.exists(calib) else None
    print(f"{os.path.basename(os.path.dirname(os.path.abspath(args.model)))}: CPU ms (wall ms), best of {args.rounds} rounds; "
          f"AEQ {'from ' + aeq if aeq else 'not installed'}")
    print("per call, warm (both after an untimed call in their process)")
    for mode in llm.MODES:
        for label, bits, gran, block in llm.CONFIGS[:4]:
            kw = dict(mode=mode, weight_bits=bits, granularity=gran, block_size=block)
            _ours(args.model, f"{tmp}/o.tflite", **kw)  # warm
            ours = near = theirs = cal = (1e9, 1e9)
            if bits == 4 and calib and args.with_data:
                _ours(args.model, f"{tmp}/d.tflite", representative_dataset=calib, **kw)  # warm
            has_recipe = aeq is not None and not (mode == "weight-only" and gran == "block")
            for _ in range(args.rounds):
                for _ in range(3):
                    ours = min(ours, _ours(args.model, f"{tmp}/o.tflite", **kw))
                    if bits == 4:
                        near = min(near, _ours(args.model, f"{tmp}/n.tflite", weight_rounding="nearest", **kw))
                if bits == 4 and calib and args.with_data:  # one a round: it takes ~10x longer
                    cal = min(cal, _ours(args.model, f"{tmp}/d.tflite", representative_dataset=calib, **kw))
                if has_recipe:
                    _cpu, _wall, out = _child([aeq, "-c", llm._AEQ_CHILD, args.model, f"{tmp}/a.tflite", str(bits), llm._aeq_granularity(gran, block), mode, "4"])
                    d = json.loads(out.strip().splitlines()[-1])
                    theirs = min(theirs, (d["cpu"], d["seconds"]))
            row = f"{mode:<12}{label:<16} tflquant {ours[0] * 1e3:6.1f} ({ours[1] * 1e3:6.1f})"
            row += f" | AEQ {theirs[0] * 1e3:6.1f} ({theirs[1] * 1e3:6.1f}) | x {ours[0] / theirs[0]:4.2f}" if has_recipe else " | AEQ -" + " " * 25
            if bits == 4:
                row += f" | nearest {near[0] * 1e3:6.1f}" + (f" x {near[0] / theirs[0]:4.2f}" if has_recipe else "")
            if cal[0] < 1e9:
                row += f" | with data {cal[0] * 1e3:6.1f}" + (f" x {cal[0] / theirs[0]:4.2f}" if has_recipe else "")
            print(row, flush=True)
    if args.process:
        print("per process, cold (the tflquant command; a Python process importing AEQ and quantizing once)")
        for mode in llm.MODES:
            for label, bits, gran, block in llm.CONFIGS[:4]:
                has_recipe = aeq is not None and not (mode == "weight-only" and gran == "block")
                ours = theirs = cal = (1e9, 1e9)
                for _ in range(args.rounds):
                    cpu, wall, _out = _child(_cli(args.model, f"{tmp}/c.tflite", mode, bits, gran, block))
                    ours = min(ours, (cpu, wall))
                    if calib and bits == 4:
                        cpu, wall, _out = _child(_cli(args.model, f"{tmp}/d.tflite", mode, bits, gran, block) + ["--calibration", calib])
                        cal = min(cal, (cpu, wall))
                    if has_recipe:
                        cpu, wall, _out = _child([aeq, "-c", llm._AEQ_CHILD, args.model, f"{tmp}/a.tflite", str(bits), llm._aeq_granularity(gran, block), mode])
                        theirs = min(theirs, (cpu, wall))
                row = f"{mode:<12}{label:<16} tflquant {ours[0] * 1e3:6.0f} ({ours[1] * 1e3:6.0f})"
                row += f" | AEQ {theirs[0] * 1e3:6.0f} ({theirs[1] * 1e3:6.0f}) | x {ours[0] / theirs[0]:4.2f}" if has_recipe else " | AEQ -" + " " * 25
                if cal[0] < 1e9:
                    row += f" | with data {cal[0] * 1e3:6.0f} ({cal[1] * 1e3:6.0f})" + (f" x {cal[0] / theirs[0]:4.2f}" if has_recipe else "")
                print(row, flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
