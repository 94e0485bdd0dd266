#!/usr/bin/env python3
"""Long fuzz sweep of the whole path (tests/test_fuzz_quantize.py runs a bounded slice of it):

    python benchmarks/fuzz.py                          # 500 byte mutants per seed model
    python benchmarks/fuzz.py --iterations 5000 --seed 7 --models fc cnn lstm
    python benchmarks/fuzz.py --only data --iterations 2000

Each case is written to files and run through `tflquant quantize` in every mode, `compare`,
`inspect` and `import`, in this process under an address-space limit (current size + 3 GB)
and a 30 s timer. Every run must end in exit 0 (the output written) or 2 with one line
`tflquant: error: ...`, leave no output behind on failure and never change its inputs;
corrupt data files must always give 2. Prints a summary and every bad outcome (the seed and
case number reproduce it); exits 1 when there was one.

Kinds: `field` (the named field mutations of the test), `bytes` (seeded random byte
corruption of each seed model), `data` (the named corrupt data files, then random ones:
NaN/Inf at random places, random dtypes, shapes and keys).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_fuzz_quantize as F  # noqa: E402

SEED_MODELS = ("fc", "cnn", "elementwise", "shapes", "matmul", "lstm")


def seeds(names: list[str]) -> list[tuple[str, bytes, dict[str, np.ndarray]]]:
    from models import MODELS, sample_inputs

    from tflquant.tflite.writer import write_flatbuffer

    out = []
    for n in names:
        if n == "fc":
            out.append(("fc", F.build(F.fc_spec()), F.seed_data(F.fc_spec())))
        else:
            m = MODELS[n]()
            out.append((n, write_flatbuffer(m), sample_inputs(m, 8)))
    return out


def random_data(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[str, bytes]:
    """A random corruption of valid data (always invalid)."""
    k = list(arrays)[int(rng.integers(0, len(arrays)))]
    a = arrays[k].copy()
    kind = int(rng.integers(0, 6))
    if kind == 0 and a.dtype.kind == "f":
        idx = tuple(int(rng.integers(0, s)) for s in a.shape)
        a[idx] = [np.nan, np.inf, -np.inf][int(rng.integers(0, 3))]
        what = f"non-finite value at {idx} of {k!r}"
    elif kind == 1:
        dt = ["complex64", "U4", "S3", "datetime64[D]", "timedelta64[s]", "V8"][int(rng.integers(0, 6))]
        a = np.zeros(a.shape, dtype=dt)
        what = f"{k!r} as {dt}"
    elif kind == 2:
        axis = int(rng.integers(1, max(2, a.ndim)))
        a = np.concatenate([a, a], axis=min(axis, a.ndim - 1)) if a.ndim > 1 else a[:, None]
        what = f"{k!r} doubled along axis {axis}"
    elif kind == 3:
        a = a.reshape(-1)[: int(rng.integers(0, max(1, a.size)))]
        what = f"{k!r} flattened to {a.shape}"
    elif kind == 4:
        a = a[:0]
        what = f"{k!r} with zero samples"
    else:
        arrays = {**arrays, f"extra_{int(rng.integers(0, 99))}": a}
        what = "an extra array"
    return what, F._npz({**arrays, **({k: a} if kind != 5 else {})})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=500, help="byte mutants per seed model / random data files (default 500)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--models", nargs="+", default=["fc", "cnn"], choices=SEED_MODELS)
    p.add_argument("--only", choices=["field", "bytes", "data"], help="one kind of mutation")
    a = p.parse_args()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fz = F.Fuzzer(Path(tmp))
        rng = np.random.default_rng(a.seed)
        import tflquant

        models = seeds(a.models)
        if a.only in (None, "field"):
            good = F.quantized_seed(F.fc_spec())
            for name, make in F.FIELD_MUTANTS:
                calib = F.seed_data(F.two_input_spec() if name.startswith("two-input") else F.fc_spec())
                fz.model_case(name, make(), calib, list(F.MODES), compare_with=good)
            print(f"field: {fz.report()}", flush=True)
        if a.only in (None, "bytes"):
            for name, data, calib in models:
                good = tflquant.quantize(data, mode="int8", representative_dataset=calib).model
                for k, (what, mutant) in enumerate(F.byte_mutants(data, rng, a.iterations)):
                    fz.model_case(f"{name} byte mutant {k} ({what})", mutant, calib, list(F.MODES), compare_with=good if k % 2 == 0 else None)
                print(f"bytes/{name}: {fz.report()}", flush=True)
        if a.only in (None, "data"):
            for name, data, calib in models:
                q = tflquant.quantize(data, mode="int8", representative_dataset=calib).model
                cases = F.data_mutants(calib) + [random_data(calib, rng) for _ in range(a.iterations // 4)]
                for what, d in cases:
                    fz.data_case(f"{name}: {what}", data, q, d, ["int8", "int16x8"])
                print(f"data/{name}: {fz.report()}", flush=True)
    print(f"\n{fz.report()} in {time.perf_counter() - t0:.0f}s; {len(fz.failures)} bad outcome(s)")
    for f in fz.failures:
        print("-", f[:3000])
    return 1 if fz.failures else 0


if __name__ == "__main__":
    sys.exit(main())
