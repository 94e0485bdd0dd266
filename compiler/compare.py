"""Per-tensor errors of a quantized model against its float original: where the accuracy goes.

    from tflquant.compare import layer_errors
    for row in layer_errors("float.tflite", "int8.tflite", "eval.npz"):
        print(row)                      # in execution order

Both models run in tflquant's reference interpreters on the same float samples: the float
model in float, the quantized one with LiteRT's integer kernels (`IntegerInterpreter`, which
quantizes integer model inputs from the float samples with the inputs' own parameters).
Every tensor the two models name alike is compared: a quantized tensor is dequantized with
its own parameters and scored by its SQNR against the float tensor (10 log10 of signal over
error energy, 99 dB when equal), with the largest error in steps of its quantization scale.
Rows come in execution order, so a drop from one row to the next points at the op that
loses the accuracy; give it to `keep_float` (or `--keep-float`) to see what keeping it float
is worth.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import value_name


@dataclass(frozen=True)
class LayerError:
    """One tensor both models compute."""

    name: str
    op_type: str  # the op computing it in the quantized model
    kind: str  # its element type there: "int8", "int16", "float"
    sqnr_db: float
    max_error_steps: float | None  # largest |float - dequantized| in quantization steps (None: float)

    def __str__(self) -> str:
        steps = "-" if self.max_error_steps is None else f"{self.max_error_steps:.1f}"
        return f"{self.sqnr_db:7.2f} dB  {steps:>7} steps  {self.kind:5}  {self.op_type:24} {self.name}"


def _module(model: Any, what: str) -> ModuleOp:
    from tflquant.fileio import read_bytes
    from tflquant.tflite.reader import read_flatbuffer

    if isinstance(model, ModuleOp):
        return model
    if isinstance(model, bytes | bytearray):
        return read_flatbuffer(bytes(model), what)
    return read_flatbuffer(read_bytes(model, "TFLite model"), os.fspath(model))


def _main(m: ModuleOp) -> func.FuncOp:
    fns = [o for o in m.ops if isinstance(o, func.FuncOp)]
    if not fns:
        raise TflquantError("the model has no subgraph")
    return next((f for f in fns if f.sym_name.data == "main"), fns[0])


def _inputs(f: func.FuncOp, data: Any, max_samples: int) -> list[np.ndarray]:
    """One float array per input of f, samples first: from a .npz path (arrays in input order
    or keyed by input name; `labels` ignored), a mapping by input name, or a list."""
    args = f.body.blocks[0].args
    if isinstance(data, str | os.PathLike):
        from tflquant.calibration.dataset import load_npz

        data = {k: v for k, v in load_npz(data, "data file").items() if k != "labels"}
    if isinstance(data, Mapping):
        names = [value_name(a) for a in args]
        if all(n in data for n in names):
            arrays = [np.asarray(data[n]) for n in names]
        elif len(data) == len(args):
            arrays = [np.asarray(v) for v in data.values()]
        else:
            raise TflquantError(f"the data has arrays {', '.join(data)}; the model's inputs are {', '.join(str(n) for n in names)}")
    else:
        arrays = [np.asarray(a) for a in data]
    if len(arrays) != len(args):
        raise TflquantError(f"the model takes {len(args)} inputs, the data gives {len(arrays)}")
    return [a[:max_samples] for a in arrays]


def _check_integer(m: ModuleOp) -> None:
    """compare runs integer models (int8 / int16 activations, float fallback allowed); a
    hybrid op (float activations, int8 weights: dynamic range) has no integer kernel here."""
    for o in m.walk():
        if not isinstance(o, tfl.TflOp) or isinstance(o, tfl.DequantizeOp | tfl.QuantizeOp):
            continue
        acts = [v for v in o.operands if not isinstance(v.owner, tfl.ConstOp | tfl.DequantizeOp)]
        weights = [v for v in o.operands if isinstance(v.owner, tfl.ConstOp)]
        if any(tfl.is_float_tensor(v.type) for v in acts) and any(quant.quantized_element(w.type) is not None for w in weights):
            names = tfl.tensor_names(o) or ["?"]
            raise TflquantError(
                f"compare takes integer models (int8, int16x8); {tfl.op_type(o)} '{names[0]}' is hybrid (float "
                "activations, int8 weights: dynamic range), which the integer reference interpreter does not run"
            )


def _collect(into: dict[str, list[np.ndarray]]) -> Any:
    def observe(v: SSAValue, a: np.ndarray) -> None:
        name = value_name(v)
        if name is not None and isinstance(v.type, TensorType):
            into.setdefault(name, []).append((v, np.array(a)))  # type: ignore[arg-type]

    return observe


def layer_errors(float_model: Any, quantized_model: Any, data: Any, max_samples: int = 64) -> list[LayerError]:
    """Per-tensor errors in execution order; see the module docstring. Models: paths, bytes or
    modules; data: a .npz path, a mapping by input name or a list of arrays (samples first)."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter, _dequant, _quant
    from tflquant.reference.interpreter import Interpreter

    if not isinstance(max_samples, int) or max_samples < 1:
        raise TflquantError(f"max_samples must be a positive integer, got {max_samples!r}")
    fm, qm = _module(float_model, "float model"), _module(quantized_model, "quantized model")
    _check_integer(qm)
    x = _inputs(_main(fm), data, max_samples)
    if not x or not len(x[0]):
        raise TflquantError("the data holds no samples")
    ref: dict[str, list] = {}
    got: dict[str, list] = {}
    Interpreter(fm).run(x, observer=_collect(ref), func_name=_main(fm).sym_name.data)
    qmain = _main(qm)
    qx = []
    for a, arr in zip(qmain.body.blocks[0].args, x):
        qt = quant.quantized_element(a.type)
        qx.append(_quant(np.asarray(arr, np.float32), qt, True) if qt is not None else arr)
    IntegerInterpreter(qm).run(qx, observer=_collect(got))
    rows = []
    for name, parts in got.items():
        if name not in ref:
            continue
        v = parts[0][0]
        if not isinstance(v.owner, Operation):
            continue  # a model input, not computed
        qt = quant.quantized_element(v.type)
        q = np.concatenate([a for _, a in parts])
        r = np.concatenate([a for _, a in ref[name]])
        if q.shape != r.shape or r.dtype.kind != "f":
            continue  # integer results (ARG_MAX, shapes, ...) have no SQNR
        r = r.astype(np.float64)
        deq = (_dequant(q, qt, True) if qt is not None else q).astype(np.float64)
        err = float(np.sum((r - deq) ** 2))
        sqnr = 99.0 if err == 0 else float(10 * np.log10(max(float(np.sum(r**2)), 1e-30) / err))
        steps = None
        if qt is not None and not qt.per_axis:
            steps = float(np.max(np.abs(r - deq))) / qt.scale if r.size else 0.0
        op_type = tfl.op_type(v.owner)
        kind = f"int{qt.storage_type.width.data}" if qt is not None else "float"
        rows.append(LayerError(name, op_type, kind, sqnr, steps))
    if not rows:
        raise TflquantError("the two models name no tensor alike: is the second one quantized from the first?")
    return rows
