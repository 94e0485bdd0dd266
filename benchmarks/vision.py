#!/usr/bin/env python3
"""Quantize time of the large vision models against ai-edge-quantizer and against the floor.

    python benchmarks/vision.py --aeq-python /tmp/aeq/bin/python [--models ...] [--modes int8,int16x8] [--repeat 3]

Builds (once, cached; see vision_models.py) MobileNetV2 1.0 at 224, ResNet50 and
EfficientNet-B0 with 100 calibration samples, then per model and mode prints:
- tflquant's quantize wall time (fresh child process, imports excluded, model read from
  disk, calibration included) and its calibration phase, and the peak RSS of that process;
- AEQ's wall time for the same model and samples (recipes static_wi8_ai8 / static_wi8_ai16)
  and peak RSS, and the ratio tflquant / AEQ (target <= 0.5);
- the floor: LiteRT (default delegate, XNNPACK) invoking the float model once per sample
  over the same 100 samples, with one thread and with two, and calibration / floor.
With --repeat N the tools alternate N times and each keeps its fastest run (the machine is
shared: ratios from the same run, fastest of several, are what to compare). The CPU seconds
(user + system of the whole process) of both tools are printed too: on a loaded machine
they move much less than wall time (tflquant computes on 2 threads, so its wall time
suffers most from other processes). The 1-minute load average is printed at the start and
after each row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _AEQ_CHILD, _TFLQUANT_CHILD, _child, _fastest, find_aeq_python  # noqa: E402
from vision_models import CACHE, MODELS, build  # noqa: E402

RECIPES = {"int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}

_FLOOR_CHILD = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model_dir, threads = sys.argv[1], int(sys.argv[2])
z = np.load(f"{model_dir}/calib.npz")
x = z[z.files[0]]
it = Interpreter(model_path=f"{model_dir}/float.tflite", num_threads=threads)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], x[:1]); it.invoke()  # warm up (delegate prepared)
t, c = time.perf_counter(), time.process_time()
for i in range(len(x)):
    it.set_tensor(d["index"], x[i : i + 1])
    it.invoke()
print(json.dumps({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c}))
"""


def floor_seconds(d: Path, threads: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeat)):
        r = _child(sys.executable, _FLOOR_CHILD, [str(d), str(threads)])
        if "error" in r:
            raise SystemExit(f"LiteRT floor failed on {d}: {r['error']}")
        best = min(best, r["seconds"])
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--modes", default="int8,int16x8")
    ap.add_argument("--aeq-python", help="a Python with ai-edge-quantizer installed")
    ap.add_argument("--no-aeq", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cache", default=str(CACHE))
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    aeq = None if a.no_aeq else find_aeq_python(a.aeq_python)
    print(f"ai-edge-quantizer: {aeq or 'not installed'}; repeat {a.repeat} (fastest kept); 100 calibration samples; "
          f"load average at start {os.getloadavg()[0]:.1f} (1 min; 'load' column: at the end of each row)\n")
    head = (f"{'model':<22}{'mode':<9}{'tflq s':>8}{'calib s':>8}{'AEQ s':>8}{'xAEQ':>6}{'tflq cpu':>9}{'AEQ cpu':>8}{'xAEQ':>6}"
            f"{'floor1 s':>9}{'floor2 s':>9}{'cal/f1':>7}{'cal/f2':>7}{'peak MB':>8}{'AEQ MB':>8}{'load':>6}  targets")
    print(head)
    results = []
    with tempfile.TemporaryDirectory(prefix="tflquant-vision-") as tmp:
        for name in a.models.split(","):
            d = build(name, Path(a.cache))
            f1, f2 = floor_seconds(d, 1, a.repeat), floor_seconds(d, 2, a.repeat)
            for mode in a.modes.split(","):
                ours, theirs = Path(tmp, f"{name}_{mode}.tflite"), Path(tmp, f"{name}_{mode}_aeq.tflite")
                res: dict = {}
                r2: dict = {}
                for _ in range(max(1, a.repeat)):
                    res = _fastest(res, _child(sys.executable, _TFLQUANT_CHILD, [str(d), mode, "float32", str(ours)]))
                    if aeq:
                        r2 = _fastest(r2, _child(aeq, _AEQ_CHILD, [str(d), RECIPES[mode], str(theirs)]))
                if "error" in res:
                    print(f"{name:<22}{mode:<9}tflquant failed: {res['error']}")
                    continue
                sec, cal = res["seconds"], res["phases"].get("calibrate", float("nan"))
                asec = r2.get("seconds") if r2 and "error" not in r2 else None
                x = sec / asec if asec else None
                cpu, acpu = res.get("cpu_seconds"), (r2.get("cpu_seconds") if asec else None)
                xc = cpu / acpu if cpu and acpu else None
                checks = []
                if x is not None:
                    checks.append(f"time<=0.5xAEQ {'OK' if x <= 0.5 else 'MISS'}")
                checks.append(f"calib<=3xfloor(1 thread) {'OK' if cal <= 3 * f1 else 'MISS'}")
                fmt = lambda v, s: "-" if v is None else format(v, s)  # noqa: E731
                print(f"{name:<22}{mode:<9}{sec:>8.2f}{cal:>8.2f}{fmt(asec, '.2f'):>8}{fmt(x, '.2f'):>6}"
                      f"{fmt(cpu, '.2f'):>9}{fmt(acpu, '.2f'):>8}{fmt(xc, '.2f'):>6}{f1:>9.2f}{f2:>9.2f}"
                      f"{cal / f1:>7.2f}{cal / f2:>7.2f}{res['peak_kb'] / 1024:>8.0f}"
                      f"{fmt(r2.get('peak_kb', 0) / 1024 if asec else None, '.0f'):>8}{os.getloadavg()[0]:>6.1f}  {'  '.join(checks)}"
                      + (f"  (AEQ: {r2['error']})" if r2 and "error" in r2 else ""), flush=True)
                results.append({"model": name, "mode": mode, "tflquant": res, "aeq": r2, "floor_1thread": f1, "floor_2threads": f2})
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
