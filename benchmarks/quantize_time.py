"""Quantize time against ai-edge-quantizer (AEQ) in CPU seconds, issue 12 ("quantize time at
most half of AEQ's"), without calibration data.

    python benchmarks/quantize_time.py [--model ../shared/models/decoder_tiny/float.tflite] [--rounds 5]

For int8 channel, int4 channel, int4 block 32 and int4 block 128 in dynamic and weight-only
modes: tflquant's `quantize(...).save(path)` in this (warm) process, best of 3 x rounds, and
AEQ's same recipe in a child process of its own venv timed from its Quantizer to its written
file (benchmarks/llm.py's child), best of rounds; the two take turns, so a load spike hits
both alike. CPU seconds (time.process_time, each process its own), which a loaded machine
disturbs less than wall time; wall is printed too. For 4-bit rows also tflquant with
`weight_rounding="nearest"`, AEQ's own method (the default clips the scales to the least
weight error, the issue's no-data method). AEQ has no weight-only blockwise recipe: those rows
have no ratio.
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "shared", "models", "decoder_tiny", "float.tflite"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--aeq-python", default=os.environ.get("TFLQUANT_AEQ_PYTHON", "/tmp/aeq/bin/python"))
    args = ap.parse_args()
    aeq = args.aeq_python if os.path.exists(args.aeq_python) else None
    tmp = tempfile.mkdtemp()
    print(f"{os.path.basename(os.path.dirname(os.path.abspath(args.model)))}: CPU ms per call (wall), best of {args.rounds} rounds; "
          f"AEQ {'from ' + aeq if aeq else 'not installed'}")
    for mode in llm.MODES:
        for label, bits, gran, block in llm.CONFIGS[:4]:
            kw = dict(mode=mode, weight_bits=bits, granularity=gran, block_size=block)
            _ours(args.model, f"{tmp}/o.tflite", **kw)  # warm
            ours = near = theirs = (1e9, 1e9)
            has_recipe = aeq is not None and not (mode == "weight-only" and gran == "block")
            for _ in range(args.rounds):
                for _ in range(3):
                    ours = min(ours, _ours(args.model, f"{tmp}/o.tflite", **kw))
                    if bits == 4:
                        near = min(near, _ours(args.model, f"{tmp}/n.tflite", weight_rounding="nearest", **kw))
                if has_recipe:
                    p = subprocess.run([aeq, "-c", llm._AEQ_CHILD, args.model, f"{tmp}/a.tflite", str(bits), llm._aeq_granularity(gran, block), mode],
                                       capture_output=True, text=True, timeout=1800)
                    if p.returncode:
                        sys.exit(f"AEQ failed on {mode} {label}: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
                    d = json.loads(p.stdout.strip().splitlines()[-1])
                    theirs = min(theirs, (d["cpu"], d["seconds"]))
            row = f"{mode:<12}{label:<16} tflquant {ours[0] * 1e3:6.1f} ({ours[1] * 1e3:6.1f})"
            row += f" | AEQ {theirs[0] * 1e3:6.1f} ({theirs[1] * 1e3:6.1f}) | x {ours[0] / theirs[0]:4.2f}" if has_recipe else " | AEQ -" + " " * 25
            if bits == 4:
                row += f" | nearest {near[0] * 1e3:6.1f}" + (f" x {near[0] / theirs[0]:4.2f}" if has_recipe else "")
            print(row, flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
