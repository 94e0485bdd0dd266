"""Running models in LiteRT / TFLite Micro and scoring them, as ../shared/tools/score.py does
(importable as `tflquant.scoring`; used by the tests and benchmarks/run.py).

    from tflquant.scoring import litert_run, sqnr_db, top1
    ref = litert_run(float_bytes, inputs)          # inputs: one array per model input, samples first
    got = litert_run("model_int8.tflite", inputs)  # a path works too
    sqnr_db(ref[0], got[0]), top1(ref[0], got[0])

Only numpy is imported here; LiteRT (`ai_edge_litert`) is imported when a model is run and
TFLite Micro only in the child process of `tflm_run`. Integer model inputs (int8, uint8,
int16) fed float samples are quantized with the tensor's own scale and zero point, and
integer outputs are dequantized the same way, exactly as score.py does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

# Tensor types score.py quantizes (inputs) and dequantizes (outputs).
QUANTIZED_IO = (np.int8, np.uint8, np.int16)


def sqnr_db(ref: np.ndarray, q: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - q|^2) in float64; 99.0 when identical (score.py's value)."""
    ref = ref.astype(np.float64)
    err = float(np.sum((ref - q) ** 2))
    if err == 0:
        return 99.0
    return float(10 * np.log10(max(float(np.sum(ref**2)), 1e-30) / err))


def top1(ref: np.ndarray, q: np.ndarray) -> float:
    """Share of samples (first axis) whose arg-max agrees."""
    return float(np.mean(ref.reshape(len(ref), -1).argmax(-1) == q.reshape(len(q), -1).argmax(-1)))


def accuracy(q: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose arg-max is the label."""
    return float(np.mean(q.reshape(len(labels), -1).argmax(-1) == labels))


def load_eval(path: str | os.PathLike[str], limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """An eval.npz as score.py reads it: (one array per model input in file order, the
    'labels' array or None); `limit` keeps the first samples of the inputs only."""
    with np.load(path) as z:
        inputs = [z[k][:limit] for k in z.files if k != "labels"]
        labels = z["labels"] if "labels" in z.files else None
    return inputs, labels


def interpreter(model: bytes | str | os.PathLike[str], num_threads: int | None = None, delegates: bool = True) -> Any:
    """A LiteRT interpreter with tensors allocated, from bytes or a path; `delegates=False`:
    LiteRT's builtin kernels only (no XNNPACK delegate, which rounds int8 its own way)."""
    from ai_edge_litert import interpreter as litert

    Interpreter = litert.Interpreter
    kw: dict[str, Any] = {} if num_threads is None else {"num_threads": num_threads}
    if not delegates:
        kw["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if isinstance(model, bytes | bytearray):
        it = Interpreter(model_content=bytes(model), **kw)
    else:
        it = Interpreter(model_path=os.fspath(model), **kw)
    it.allocate_tensors()
    return it


def quantize_input(d: dict, x: np.ndarray) -> np.ndarray:
    """One sample for input `d` (LiteRT input details): reshaped, a float sample for an
    int8/uint8/int16 input quantized with its scale and zero point, cast to its type."""
    x = np.asarray(x).reshape(d["shape"])
    if d["dtype"] in QUANTIZED_IO and x.dtype.kind == "f":
        s, z = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / s) + z, info.min, info.max)
    return x.astype(d["dtype"])


def feed(it: Any, d: dict, x: np.ndarray) -> None:
    """Set input `d` of interpreter `it` to one sample (see quantize_input)."""
    it.set_tensor(d["index"], quantize_input(d, x))


def dequantize_output(d: dict, y: np.ndarray) -> np.ndarray:
    """Output `d` as float32: int8/uint8/int16 outputs dequantized with their parameters."""
    y = y.astype(np.float32)
    if d["dtype"] in QUANTIZED_IO:
        s, z = d["quantization"]
        y = (y - z) * s
    return y


def litert_run(
    model: bytes | str | os.PathLike[str],
    inputs: Sequence[np.ndarray],
    *,
    num_threads: int | None = None,
    dequantize: bool = True,
    delegates: bool = True,
) -> list[np.ndarray]:
    """Every output for every sample, stacked (samples first); `inputs` holds one array per
    model input, in input order, samples first. Outputs are float (dequantized as score.py
    does), or as stored with `dequantize=False`; `delegates=False` runs the builtin kernels."""
    it = interpreter(model, num_threads, delegates)
    ind, outd = it.get_input_details(), it.get_output_details()
    outs: list[list[np.ndarray]] = [[] for _ in outd]
    for i in range(len(inputs[0])):
        for d, a in zip(ind, inputs):
            feed(it, d, a[i])
        it.invoke()
        for k, d in enumerate(outd):
            y = it.get_tensor(d["index"])
            outs[k].append(dequantize_output(d, y) if dequantize else y.copy())
    return [np.stack(o) for o in outs]


# ---------------------------------------------------------------------------------------
# TFLite Micro, in a child process (it aborts the whole process on some models it rejects)
# ---------------------------------------------------------------------------------------

_TFLM_SCRIPT = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
model, inp, out = sys.argv[1:4]
z = np.load(inp)
inputs = [z[f"i{k}"] for k in range(len(z.files))]
it = runtime.Interpreter.from_bytes(open(model, "rb").read(), arena_size=32 * 1024 * 1024)
n_out = 0
while True:
    try:
        it.get_output_details(n_out)
    except Exception:
        break
    n_out += 1
outs = [[] for _ in range(n_out)]
for i in range(len(inputs[0])):
    for k, a in enumerate(inputs):
        d = it.get_input_details(k)
        x = np.asarray(a[i]).reshape(d["shape"])
        dt = np.dtype(d["dtype"])
        if dt.kind in "iu" and x.dtype.kind == "f":
            q = d["quantization_parameters"]
            info = np.iinfo(dt)
            x = np.clip(np.round(x / float(q["scales"][0])) + int(q["zero_points"][0]), info.min, info.max)
        it.set_input(x.astype(dt), k)
    it.invoke()
    for k in range(n_out):
        outs[k].append(np.array(it.get_output(k)))
np.savez(out, **{f"o{k}": np.stack(o) for k, o in enumerate(outs)})
"""


class TflmMissingOps(RuntimeError):
    """TFLite Micro has no kernel for some op of the model (the message lists them)."""


def tflm_run(model: bytes, inputs: Sequence[np.ndarray], timeout: float = 300) -> list[np.ndarray]:
    """Outputs (raw, not dequantized) on TFLite Micro, run in a child process: TFLM aborts
    the whole process on some models it rejects. Raises TflmMissingOps when TFLM lacks a
    kernel, RuntimeError on any other failure."""
    import re
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        mp, ip, op = Path(d, "m.tflite"), Path(d, "in.npz"), Path(d, "out.npz")
        mp.write_bytes(model)
        np.savez(ip, **{f"i{k}": a for k, a in enumerate(inputs)})
        proc = subprocess.run(
            [sys.executable, "-c", _TFLM_SCRIPT, str(mp), str(ip), str(op)], capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            missing = sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", proc.stderr)))
            if missing:
                raise TflmMissingOps(", ".join(missing))
            raise RuntimeError(f"TFLM failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
        z = np.load(op)
        return [z[f"o{k}"] for k in range(len(z.files))]
