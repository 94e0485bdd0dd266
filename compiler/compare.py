"""Per-tensor errors of quantized models against their float original: where the accuracy goes.

    from tflquant.compare import compare_models, layer_errors
    for row in layer_errors("float.tflite", "int8.tflite", "eval.npz"):
        print(row)                      # in execution order
    c = compare_models("float.tflite", ["int8.tflite", "16x8.tflite"], "eval.npz")
    c.to_csv("layers.csv")              # the TF QuantizationDebugger's columns, then ours
    c.to_html("layers.html")            # SQNR plot of every model (tflquant.debug_report)

Both models run in tflquant's reference interpreters on the same float samples: the float
model in float, the quantized one with LiteRT's integer kernels (`IntegerInterpreter`, which
quantizes integer model inputs from the float samples with the inputs' own parameters). A
dynamic-range model (float activations) runs float kernels, its hybrid ones fed their input
quantized at run time as LiteRT's hybrid kernels do; float16 and weight-only models run
their dequantized weights. Every tensor the two models name alike is compared, in every
subgraph (a WHILE body once per iteration; names '@subgraph/tensor' outside the first) and
every signature the data names ('<signature>/<input>' keys; each runs from the variables'
initial values): a quantized tensor is dequantized with its own parameters and scored by
its SQNR against the float tensor (10 log10 of signal over error energy, 99 dB when equal),
with the largest error in steps of its quantization scale, the SQNR its op loses (its
inputs' lowest SQNR minus its own) and the TF debugger's metrics. Rows come in execution
order, so a drop from one row to the next points at the op that loses the accuracy; give it
to `keep_float` (or `--keep-float`) to see what keeping it float is worth.

`op_losses` measures ops one at a time instead (no integer run of the whole model): each
integer op is fed the float model's values quantized at its input types and its output is
scored against the same op kept float. `tflquant.quantize` runs it on the ops
`suspicious_ops` picks (division-like and exponential ops, elementwise ops whose input steps
can move the output by many output steps) and keeps float those that `destroys` says
quantizing ruins: the measured fallback.
"""

from __future__ import annotations

import itertools
import mmap
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import value_name
from tflquant.reference import float_kernels as fk
from tflquant.reference.integer_interpreter import IntegerInterpreter


@dataclass(frozen=True)
class LayerError:
    """One tensor both models compute. The first five fields are the table's; the rest are
    the TF QuantizationDebugger's layer statistics (each computed per sample on the error
    dequantized - float, then averaged over the samples, as its CSV has them) and where the
    tensor lives."""

    name: str  # the tensor's name, '@function/name' outside the first subgraph
    op_type: str  # the op computing it in the quantized model
    kind: str  # its element type there: "int8", "int16", "float"
    sqnr_db: float
    max_error_steps: float | None  # largest |float - dequantized| in quantization steps (None: float)
    tensor_name: str = ""  # the TFLite tensor name, unqualified
    subgraph: int = 0  # index of its subgraph in the quantized model
    tensor_idx: int | None = None  # its index in that subgraph's tensors (as Netron and LiteRT count)
    scale: float | None = None  # the first (per-axis: channel 0's) scale and zero point, as TF writes
    zero_point: int | None = None
    num_elements: int = 0  # elements per sample
    stddev: float = float("nan")
    mean_error: float = float("nan")
    max_abs_error: float = float("nan")
    mean_squared_error: float = float("nan")
    layer_loss_db: float = 0.0  # SQNR lost at this op: its inputs' lowest SQNR (99 if exact) - its own
    model: str = ""  # label of the quantized model
    signature: str | None = None  # the signature run (models with several)

    def __str__(self) -> str:
        steps = "-" if self.max_error_steps is None else f"{self.max_error_steps:.1f}"
        return f"{self.sqnr_db:7.2f} dB  {steps:>7} steps  {self.kind:5}  {self.op_type:24} {self.name}"


TABLE_HEADER = f"{'SQNR':>10}  {'max err':>13}  {'type':5}  {'op':24} tensor"


@dataclass(frozen=True)
class Comparison:
    """Per-tensor errors of one or several quantized models (int8, 16x8, mixed, dynamic...)
    against one float model: `rows` model by model, each in execution order; `order` the
    tensors' qualified names in the float model's execution order (the plots' x axis)."""

    float_label: str
    labels: tuple[str, ...]
    rows: tuple[LayerError, ...]
    order: tuple[str, ...]

    def for_model(self, label: str) -> list[LayerError]:
        if label not in self.labels:
            raise TflquantError(f"no quantized model labelled {label!r} (labels: {', '.join(self.labels)})")
        return [r for r in self.rows if r.model == label]

    def table(self, worst: int | None = None) -> str:
        """The text table `tflquant compare` prints: per model (a heading when several), every
        tensor in execution order, or only the `worst` lowest SQNRs, worst first."""
        out = []
        for label in self.labels:
            rows = self.for_model(label)
            if worst is not None:
                rows = sorted(rows, key=lambda r: r.sqnr_db)[:worst]
            if len(self.labels) > 1:
                out.append(f"== {label}")
            out.append(TABLE_HEADER)
            out.extend(str(r) for r in rows)
        return "\n".join(out) + "\n"

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """The TF QuantizationDebugger's layer CSV (its columns first, then tflquant's); written
        to `path` (atomically) when given; returns the text."""
        from tflquant.debug_report import csv_text, write_text

        return write_text(csv_text(self.rows), path)

    def to_html(self, path: str | os.PathLike[str] | None = None, title: str | None = None) -> str:
        """One self-contained HTML page: per-tensor SQNR in execution order, every model
        overlaid, the layers losing the most highlighted, a table under it; written to `path`
        (atomically) when given; returns the text."""
        from tflquant.debug_report import html_page, write_text

        return write_text(html_page(self, title), path)


def _load(model: Any, what: str) -> tuple[ModuleOp, bytes | mmap.mmap | None]:
    """(module, flatbuffer bytes when the model came as a file or bytes)."""
    from tflquant.fileio import read_bytes
    from tflquant.tflite.reader import read_flatbuffer

    if isinstance(model, ModuleOp):
        return model, None
    if isinstance(model, bytes | bytearray | memoryview | mmap.mmap):  # in memory, or mapped
        data = model if isinstance(model, bytes | mmap.mmap) else bytes(model)
        return read_flatbuffer(data, what), data
    data = read_bytes(model, "TFLite model")
    return read_flatbuffer(data, os.fspath(model)), data


def _module(model: Any, what: str) -> ModuleOp:
    return _load(model, what)[0]


def _main(m: ModuleOp) -> func.FuncOp:
    fns = [o for o in m.ops if isinstance(o, func.FuncOp)]
    if not fns:
        raise TflquantError("the model has no subgraph")
    return next((f for f in fns if f.sym_name.data == "main"), fns[0])


def _inputs(f: func.FuncOp, data: Any, max_samples: int) -> list[np.ndarray]:
    """One array per input of f, samples first: from a .npz path (arrays in input order or
    keyed by input name; `labels` ignored), a mapping by input name, or a list; checked like
    calibration data (shapes, dtypes, finite values), so bad data is one clear error."""
    from tflquant.calibration.driver import _arg_specs
    from tflquant.calibration.dataset import load_npz, stacked_inputs

    where = "the data"
    if isinstance(data, str | os.PathLike):
        where = os.fspath(data)
        data = load_npz(data, "data file")
    if not isinstance(data, Mapping):
        data = {f"input #{i}": a for i, a in enumerate(data)}  # in input order
    return stacked_inputs(data, _arg_specs(f), where, max_samples)


def _entry_inputs(fm: ModuleOp, data: Any, max_samples: int) -> list[tuple[Any, list[np.ndarray]]]:
    """(calibration Entry, its input arrays) for every entry point of the float model the
    data feeds: the model's one function, or each signature named by '<signature>/<input>'
    keys (or its inputs' tensor names), as calibration routes data."""
    from tflquant.calibration.driver import _plan_arrays, entries
    from tflquant.calibration.dataset import load_npz

    ents = entries(fm)
    if len(ents) == 1:
        return [(ents[0], _inputs(ents[0].fn, data, max_samples))]
    where = "the data"
    if isinstance(data, str | os.PathLike):
        where = os.fspath(data)
        data = load_npz(data, "data file")
    if not isinstance(data, Mapping):
        raise TflquantError(f"{where}: the model has {len(ents)} signatures; key the arrays '<signature>/<input>'")
    out = []
    for e, _, samples in _plan_arrays(ents, data, where):
        first = list(itertools.islice(samples, max_samples))
        if not first:
            raise TflquantError(f"{where} ({e.label}): no samples")
        out.append((e, [np.stack([s[i] for s in first]) for i in range(len(e.specs))]))
    return out


def _hybrid_op(o: Operation) -> bool:
    """Float activations with int8 weights (a dynamic-range model's hybrid kernel)."""
    acts = [v for v in o.operands if not isinstance(v.owner, tfl.ConstOp | tfl.DequantizeOp)]
    weights = [v for v in o.operands if isinstance(v.owner, tfl.ConstOp)]
    return any(tfl.is_float_tensor(v.type) for v in acts) and any(quant.quantized_element(w.type) is not None for w in weights)


def _integer_activations(m: ModuleOp) -> bool:
    """Whether the model computes on quantized activations (int8 / 16x8 / mixed): then it runs
    with LiteRT's integer kernels; else (dynamic, float16, weight-only) in float, its quantized
    weights dequantized. A model with both quantized activations and hybrid ops is refused."""
    integer = any(
        isinstance(o, tfl.TflOp) and not isinstance(o, tfl.ConstOp | tfl.DequantizeOp)
        and any(quant.quantized_element(r.type) is not None for r in o.results)
        for o in m.walk()
    )
    if integer:
        for o in m.walk():
            if isinstance(o, tfl.TflOp) and not isinstance(o, tfl.DequantizeOp | tfl.QuantizeOp) and _hybrid_op(o):
                names = tfl.tensor_names(o) or ["?"]
                raise TflquantError(
                    f"{tfl.op_type(o)} '{names[0]}' is hybrid (float activations, int8 weights) in a model with "
                    "integer activations; compare runs integer models or dynamic-range ones, not both in one model"
                )
    return integer


def _hybrid_kernel(op: Operation, k: Any) -> Any:
    """The float kernel k fed its activation input as LiteRT's hybrid kernel quantizes it
    (reference.integer_kernels.hybrid_input)."""
    from tflquant.reference.integer_kernels import hybrid_input

    quantized = hybrid_input(op)
    return k if quantized is None else (lambda x, *rest: k(quantized(x), *rest))


class _HybridInterpreter(IntegerInterpreter):
    """Runs a dynamic-range model like LiteRT: float kernels, the hybrid ones fed their input
    quantized as theirs quantize it (IntegerInterpreter's loop, its WHILE / IF included)."""

    def _compile(self) -> None:
        for op in self.func.body.block.ops:
            if isinstance(op, func.ReturnOp | tfl.ConstOp | tfl.NoValueOp | tfl.VariableOp):
                continue
            key = tfl.op_type(op)
            if key in ("WHILE", "IF") and isinstance(op, tfl.OpaqueOp):
                self._steps.append((op, self._control(op, key), True))
                continue
            factory = fk.KERNELS.get(key)
            if factory is None:
                raise TflquantError(f"{key} '{(tfl.tensor_names(op) or ['?'])[0]}' has no reference kernel")
            k = factory(op)
            self._steps.append((op, _hybrid_kernel(op, k) if _hybrid_op(op) else k, False))

    def _subgraph(self, op: Operation, option: str) -> IntegerInterpreter:
        i = tfl.subgraph_index(op, option)
        if i is None or not 0 <= i < len(self.funcs):
            raise TflquantError(f"{tfl.op_type(op)} names subgraph {i}, which the module does not have")
        if i not in self._subgraphs:
            self._subgraphs[i] = _HybridInterpreter(self.funcs[i])
        return self._subgraphs[i]


def _tensor_indices(m: ModuleOp, data: bytes | mmap.mmap | None) -> list[dict[str, int]]:
    """Per subgraph of the quantized model's flatbuffer: tensor name -> its first index."""
    from tflquant.tflite import schema
    from tflquant.tflite.flatbuf import root_table
    from tflquant.tflite.writer import write_flatbuffer

    from tflquant.tflite.flatbuf import FlatbufferError

    if data is None:
        data = write_flatbuffer(m)
    out = []
    try:
        for sg in root_table(data).tables(schema.MODEL_FIELDS["subgraphs"]):
            names: dict[str, int] = {}
            for i, t in enumerate(sg.tables(schema.SUBGRAPH_FIELDS["tensors"])):
                names.setdefault(t.string(schema.TENSOR_FIELDS["name"]) or "", i)
            out.append(names)
    except FlatbufferError:  # the reader took the file: only the indices are lost
        return []
    return out


_Key = tuple[str | None, str, str]  # (signature, function, tensor name)


def _collect(into: dict[_Key, list], signature: str | None, quantized: bool = False) -> Any:
    """Observer keeping every named tensor's arrays under (signature, function, name). In a
    quantized model, an integer model output renamed '<name>_int8' is kept under the float
    model's name, and the DEQUANTIZE giving the float output (an exact copy) is left out."""
    from tflquant.calibration.stats import function_of

    def observe(v: SSAValue, a: np.ndarray) -> None:
        name = _float_name(v) if quantized else value_name(v)
        if quantized and isinstance(v.owner, tfl.DequantizeOp) and _float_name(v.owner.inputs[0]) == name:
            return
        if name is not None and isinstance(v.type, TensorType):
            into.setdefault((signature, function_of(v) or "", name), []).append((v, np.array(a)))

    return observe


def _function_indices(m: ModuleOp) -> dict[str, int]:
    return {f.sym_name.data: i for i, f in enumerate(o for o in m.ops if isinstance(o, func.FuncOp))}


def _display(key: _Key, first: str) -> str:
    """A tensor's name in tables and plots: '@function/name' outside the first function."""
    return key[2] if key[1] == first else f"@{key[1]}/{key[2]}"


def _label(model: Any, i: int) -> str:
    if isinstance(model, str | os.PathLike):
        return os.path.splitext(os.path.basename(os.fspath(model)))[0] or f"model {i + 1}"
    return f"model {i + 1}"


def _debug_stats(deq: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """The TF debugger's layer metrics on diff = dequantized - float: each per sample (row),
    then the mean over samples (NaN-skipping, as its nanmean)."""
    n = len(ref)
    d = (deq - ref).reshape(n, -1)
    if d.size == 0:
        return {"num_elements": 0}
    with np.errstate(invalid="ignore", over="ignore"):
        per = {
            "stddev": d.std(axis=1),
            "mean_error": d.mean(axis=1),
            "max_abs_error": np.abs(d).max(axis=1),
            "mean_squared_error": (d**2).mean(axis=1),
        }
        out: dict[str, float] = {k: float(np.nanmean(v)) if not np.all(np.isnan(v)) else float("nan") for k, v in per.items()}
    out["num_elements"] = int(d.shape[1])
    return out


def layer_errors(float_model: Any, quantized_model: Any, data: Any, max_samples: int = 64) -> list[LayerError]:
    """Per-tensor errors in execution order; see the module docstring. Models: paths, bytes or
    modules; data: a .npz path, a mapping by input name or a list of arrays (samples first)."""
    return list(compare_models(float_model, [quantized_model], data, max_samples).rows)


def compare_models(
    float_model: Any,
    quantized_models: Sequence[Any],
    data: Any,
    max_samples: int = 64,
    labels: Sequence[str] | None = None,
) -> Comparison:
    """Per-tensor errors of each quantized model (int8, 16x8, mixed, dynamic, float16,
    weight-only) against the float model on the same samples, every subgraph (WHILE / IF
    bodies, once per iteration) and every signature the data names; see the module
    docstring. `labels` name the quantized models (default: their file names)."""
    from tflquant.reference.interpreter import Interpreter

    if not isinstance(max_samples, int) or max_samples < 1:
        raise TflquantError(f"max_samples must be a positive integer, got {max_samples!r}")
    if isinstance(quantized_models, str | bytes | os.PathLike | ModuleOp) or not quantized_models:
        raise TflquantError("compare_models takes a list of one or more quantized models")
    names = list(labels) if labels is not None else [_label(q, i) for i, q in enumerate(quantized_models)]
    if len(names) != len(quantized_models):
        raise TflquantError(f"{len(quantized_models)} quantized models but {len(names)} labels")
    for i, n in enumerate(names):  # distinct labels: the CSV's model column and the plot's legend
        if n in names[:i]:
            k = 2
            while f"{n} ({k})" in names:
                k += 1
            names[i] = f"{n} ({k})"
    fm = _module(float_model, "float model")
    runs = _entry_inputs(fm, data, max_samples)
    if not any(x and len(x[0]) for _, x in runs):
        raise TflquantError("the data holds no samples")
    ref: dict[_Key, list] = {}
    _run_entries(fm, Interpreter, runs, [e.fn.sym_name.data for e, _ in runs], ref)
    first = _main(fm).sym_name.data
    several = len(runs) > 1
    order = [f"{k[0]}:{_display(k, first)}" if several else _display(k, first) for k in ref]
    rows: list[LayerError] = []
    for label, qmodel in zip(names, quantized_models):
        rows += _model_rows(ref, runs, qmodel, label, several)
    shown = {r.name for r in rows}
    float_label = _label(float_model, 0) if not isinstance(float_model, ModuleOp) else "float"
    return Comparison(float_label, tuple(names), tuple(rows), tuple(n for n in dict.fromkeys(order) if n in shown))


class _QuantizedRunner:
    """Runs a quantized model's functions by name, as the float Interpreter does: integer
    models in IntegerInterpreter (float samples quantized for integer inputs), others like
    LiteRT's hybrid kernels."""

    def __init__(self, module: ModuleOp, integer: bool):
        self.funcs = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        self.integer = integer
        self.interps: dict[str, Any] = {}

    def run(self, inputs: Sequence[np.ndarray], observer: Any = None, func_name: str | None = None) -> list[np.ndarray]:
        from tflquant.reference.integer_interpreter import _quant

        f = self.funcs[func_name or next(iter(self.funcs))]
        if f.sym_name.data not in self.interps:
            self.interps[f.sym_name.data] = IntegerInterpreter(f) if self.integer else _HybridInterpreter(f)
        x = []
        for a, arr in zip(f.body.blocks[0].args, inputs):
            qt = quant.quantized_element(a.type)
            floats = qt is not None and np.asarray(arr).dtype.kind == "f"  # samples; carried variables are stored values
            x.append(_quant(np.asarray(arr, np.float32), qt, True) if floats else arr)
        return self.interps[f.sym_name.data].run(x, observer)


def _run_entries(m: ModuleOp, make: Any, runs: list, fnames: list[str], into: dict[_Key, list], quantized: bool = False) -> None:
    """Run each entry's samples through `make(module)` (a runner with run(inputs, observer,
    func_name)), observed into `into`. Models with resource variables (a KV cache) run as
    calibration runs them: variables lifted to inputs and outputs, carried from entry to
    entry in the data's order, CALL_ONCE initializers first."""
    from tflquant.calibration.driver import _resource_op, _State

    if any(_resource_op(op) for op in m.walk()):
        state = _State(m, fnames)
        runner = make(state.module)
        for (e, x), name in zip(runs, fnames):
            state.run(runner, name, x, _collect(into, e.key, quantized))
        return
    runner = make(m)
    for (e, x), name in zip(runs, fnames):
        runner.run(x, observer=_collect(into, e.key, quantized), func_name=name)


def _model_rows(ref: dict[_Key, list], runs: list, qmodel: Any, label: str, several: bool) -> list[LayerError]:
    from tflquant.calibration.driver import entries
    from tflquant.reference.integer_interpreter import _dequant

    qm, qbytes = _load(qmodel, f"quantized model {label}")
    integer = _integer_activations(qm)
    q_index = _function_indices(qm)
    q_entries = {e.key: e for e in entries(qm)}
    got: dict[_Key, list] = {}
    missing = [e.key for e, _ in runs if e.key not in q_entries]
    if missing:
        raise TflquantError(f"quantized model {label} has no signature {missing[0]!r}: is it quantized from the float model?")
    fnames = [q_entries[e.key].fn.sym_name.data for e, _ in runs]
    _run_entries(qm, lambda m: _QuantizedRunner(m, integer), runs, fnames, got, quantized=True)
    indices = _tensor_indices(qm, qbytes)
    first = _main(qm).sym_name.data
    scored: dict[_Key, tuple[float, np.ndarray, np.ndarray] | None] = {}

    def score(key: _Key, ref_key: _Key) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(SQNR, dequantized, float) of a quantized-model tensor against a float one."""
        if key not in scored:
            scored[key] = None
            if key in got and ref_key in ref:
                v = got[key][0][0]
                qt = quant.quantized_element(v.type)
                q = np.concatenate([a for _, a in got[key]])
                r = np.concatenate([a for _, a in ref[ref_key]])
                if q.shape == r.shape and r.dtype.kind == "f":  # integer results (ARG_MAX, shapes) have no SQNR
                    r = r.astype(np.float64)
                    deq = (_dequant(q, qt, True) if qt is not None else q).astype(np.float64)
                    err = float(np.sum((r - deq) ** 2))
                    sqnr = 99.0 if err == 0 else float(10 * np.log10(max(float(np.sum(r**2)), 1e-30) / err))
                    scored[key] = (sqnr, deq, r)
        return scored[key]

    def input_sqnr(sig: str | None, fname: str, o: SSAValue) -> float:
        """SQNR of an op's input: its row's, or for a QUANTIZE of a float value (a model
        input) the quantized value's against that float value; 99 (exact) when unknown."""
        src = o
        while isinstance(src.owner, tfl.QuantizeOp):
            src = src.owner.inputs[0]
        s = score((sig, fname, _float_name(o) or ""), (sig, fname, _float_name(src) or ""))
        return s[0] if s is not None else 99.0

    rows = []
    for key, parts in got.items():
        v = parts[0][0]
        if key not in ref or not isinstance(v.owner, Operation):
            continue  # a model or subgraph input is not computed
        s = score(key, key)
        if s is None:
            continue
        sqnr, deq, r = s
        qt = quant.quantized_element(v.type)
        steps = None
        if qt is not None and not qt.per_axis:
            steps = float(np.max(np.abs(r - deq))) / qt.scale if r.size else 0.0
        sig, fname, name = key
        sg = q_index.get(fname, 0)
        ins = [input_sqnr(sig, fname, o) for o in v.owner.operands if not isinstance(o.owner, tfl.ConstOp | tfl.NoValueOp)]
        scale = zp = None
        if qt is not None:
            scale, zp = (float(qt.scale_array()[0]), int(qt.zero_point_array()[0])) if qt.per_axis else (float(qt.scale), int(qt.zero_point))
        shown = _display(key, first)
        rows.append(LayerError(
            f"{sig}:{shown}" if several and sig is not None else shown,
            tfl.op_type(v.owner),
            f"int{qt.storage_type.width.data}" if qt is not None else "float",
            sqnr,
            steps,
            tensor_name=value_name(v) or name,
            subgraph=sg,
            tensor_idx=indices[sg].get(value_name(v) or name) if sg < len(indices) else None,
            scale=scale,
            zero_point=zp,
            layer_loss_db=(min(ins) if ins else 99.0) - sqnr,
            model=label,
            signature=sig,
            **_debug_stats(deq, r),  # type: ignore[arg-type]
        ))
    if not rows:
        raise TflquantError(f"the float model and quantized model {label} name no tensor alike: is it quantized from the float model?")
    return rows


# ---------------------------------------------------------------------------------------
# Op by op: what quantizing each op costs against keeping it float (the measured fallback)
# ---------------------------------------------------------------------------------------

# Which ops the measured fallback considers, and their analytic worst case, are stated on
# each op's declaration (tfl.ErrorBound). Division-like and exponential ops (kinds below) can
# lose far more than a step of their output (and LiteRT's int8 DIV kernel breaks for wide
# divisor ranges): measured unless their calibrated ranges show them benign. Binary ops are
# measured when their inputs' steps can swamp the output: their integer kernels rescale both
# inputs to a common fixed-point scale (an ADD of a -1e9 mask). Unary ops with a slope bound
# are not: their integer kernels (tables, exact clamps) give the float function of the
# dequantized input rounded to the output's step, which keeping them float would not improve.
ALWAYS_MEASURED = frozenset({"power", "exponential", "division"})
_BINARY = frozenset({"sum", "product", "squared-difference"})
SUSPICIOUS_STEPS = 8.0  # worst-case output error, in output steps, that gets an op measured


def _bound(op: Operation) -> tfl.ErrorBound | None:
    """The op's declared error bound (tfl.ErrorBound), if it has one."""
    return op.get_trait(tfl.ErrorBound) if isinstance(op, tfl.TflOp) else None


def input_error_steps(op: Operation) -> float | None:
    """Analytic worst case of an integer elementwise op: how many of its output's steps half
    a step of each input can move the output (slope bound x input step / 2, products by the
    other operand's largest magnitude); None for ops it does not bound."""
    bound = _bound(op)
    if bound is None or bound.kind not in _BINARY or not op.results:
        return None
    qo = quant.quantized_element(op.results[0].type)
    ins = [quant.quantized_element(v.type) for v in op.operands]
    if qo is None or qo.per_axis or any(q is None or q.per_axis for q in ins):
        return None
    if bound.kind in ("product", "squared-difference"):
        if len(ins) != 2:
            return None
        (a, b) = ins
        ma, mb = (max(abs(r) for r in q.real_range()) for q in (a, b))  # type: ignore[union-attr]
        if bound.kind == "squared-difference":
            ma = mb = ma + mb
        err = mb * a.scale / 2 + ma * b.scale / 2  # type: ignore[union-attr]
    else:
        err = sum(q.scale for q in ins) / 2  # type: ignore[union-attr]
    return float(err / qo.scale)


def _divide_garbage(op: Operation, y_max: float) -> bool:
    """LiteRT's int8 DIV shifts right by (its output shift - reciprocal shift - dividend
    headroom); beyond 31 bits the x86 build returns garbage. Dividends of one step (headroom
    30) meet the divisor's largest quantized value (reciprocal shift = its bit length - 1)."""
    from tflquant import quant_math as qm

    q1, q2, qo = (quant.quantized_element(v.type) for v in (*op.operands[:2], op.results[0]))
    if q1 is None or q2 is None or qo is None or qo.bits != 8:
        return False
    _, shift = qm.quantize_multiplier(float(np.float32(q1.scale)) / (float(np.float32(q2.scale)) * float(np.float32(qo.scale))))
    v2 = int(abs(round(y_max / q2.scale))) if np.isfinite(y_max) else q2.qmax - q2.qmin
    return 30 + max(v2, 1).bit_length() - 1 - shift >= 32


def analytic_error_steps(op: Operation, stats: Mapping[str, Any]) -> float | None:
    """Worst case of the division-like and exponential ops from the calibrated ranges of their
    inputs (`stats`: tensor name -> calibration Range): how many output steps half an input
    step can move the output where the slope is steepest (RSQRT, SQRT, LOG: the smallest
    input; EXP: the largest; DIV: the smallest divisor with the largest dividend), infinite
    when LiteRT's DIV kernel can return garbage. None: not known (measure it)."""
    qo = quant.quantized_element(op.results[0].type)
    ins = [quant.quantized_element(v.type) for v in op.operands]
    names = [_source(v)[0] for v in op.operands]
    ranges = [stats.get(n) if n is not None else None for n in names]
    if qo is None or qo.per_axis or any(q is None or q.per_axis for q in ins) or any(r is None or r.axis >= 0 for r in ranges):
        return None
    lo, hi = ranges[0].mins[0], ranges[0].maxs[0]
    half = ins[0].scale / 2  # type: ignore[union-attr]
    bound = _bound(op)
    kind = bound.kind if bound is not None else None
    if kind == "power":
        if lo <= 0:
            return float("inf")
        p = bound.power  # type: ignore[union-attr]
        slope = abs(p) * lo ** (p - 1) if p != 0 else 1 / lo  # x**p, or log x
        return float(slope * half / qo.scale)
    if kind == "exponential":
        return float(np.exp(min(hi, 80.0)) * half / qo.scale)
    if kind == "division" and len(ranges) == 2:
        ylo, yhi = ranges[1].mins[0], ranges[1].maxs[0]  # type: ignore[union-attr]
        if ylo <= 0 <= yhi or _divide_garbage(op, max(abs(ylo), abs(yhi))):
            return float("inf")
        y_min = min(abs(ylo), abs(yhi))
        x_max = max(abs(lo), abs(hi))
        return float((x_max / y_min**2 * ins[1].scale / 2 + half / y_min) / qo.scale)  # type: ignore[union-attr]
    return None


def suspicious_ops(module: ModuleOp, stats: Mapping[str, Any] | None = None) -> list[Operation]:
    """The integer ops of the main function worth measuring (see op_losses): division-like
    and exponential ops whose analytic worst case (with the calibration `stats`; without,
    always) exceeds SUSPICIOUS_STEPS output steps, and elementwise ops whose inputs' steps
    can move the output by more than that."""
    out = []
    for op in _main(module).body.block.ops:
        if not isinstance(op, tfl.TflOp) or not op.results or quant.quantized_element(op.results[0].type) is None:
            continue
        if (bound := _bound(op)) is not None and bound.kind in ALWAYS_MEASURED:
            steps = analytic_error_steps(op, stats) if stats is not None else None
            if steps is None or steps > SUSPICIOUS_STEPS:
                out.append(op)
        elif (steps := input_error_steps(op)) is not None and steps > SUSPICIOUS_STEPS:
            out.append(op)
    return out


@dataclass(frozen=True)
class OpLoss:
    """One integer op, measured alone on float data: its inputs are the float model's values
    quantized at the op's input types, its output is compared with the float model's."""

    name: str  # output tensor name (the float model's)
    op_type: str
    quantized_db: float  # SQNR of the op's integer output (-inf: LiteRT would fail the invoke)
    float_db: float  # SQNR of the same op kept float: inputs read from integer ops stay
    # quantized, model inputs stay float; its output quantized again when integer ops read it
    samples: int
    note: str = ""

    @property
    def gain_db(self) -> float:
        """What keeping the op float would win."""
        return self.float_db - self.quantized_db


def _float_values(fm: ModuleOp, fmain: func.FuncOp, x: list[np.ndarray], need: set[str] | frozenset[str]) -> dict[str, np.ndarray]:
    """The float model's values of the tensors named in `need` (inputs included) on x."""
    from tflquant.reference.interpreter import Interpreter

    ref: dict[str, np.ndarray] = {}

    def keep(v: SSAValue, a: np.ndarray) -> None:
        if (name := value_name(v)) in need and name not in ref:
            ref[name] = np.array(a)

    Interpreter(fm).run(x, observer=keep, func_name=fmain.sym_name.data)
    for a, arr in zip(fmain.body.blocks[0].args, x):
        if (nm := value_name(a)) in need:
            ref.setdefault(nm, np.asarray(arr, np.float32))
    return ref


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    ok = np.isfinite(ref)
    if not np.all(np.isfinite(got[ok])):
        return float("-inf")
    ref, got = ref[ok], got[ok]
    err = float(np.sum((ref - got) ** 2))
    if err == 0:
        return 99.0
    return float(10 * np.log10(max(float(np.sum(ref**2)), 1e-30) / err))


def _float_name(v: SSAValue) -> str | None:
    """The float model's name of a quantized-model value: a model output's integer tensor is
    renamed '<name>_int8' and its DEQUANTIZE takes the name."""
    for u in v.uses:
        if isinstance(u.operation, tfl.DequantizeOp) and (n := value_name(u.operation.results[0])) is not None:
            if value_name(v) in (f"{n}_int8", f"{n}_int16", f"{n}_uint8"):
                return n
    return value_name(v)


def _source(v: SSAValue) -> tuple[str | None, bool]:
    """(float model name, real-valued) of what a quantized operand holds: through QUANTIZE ops
    back to a float value (a model input or a float op's output: real-valued, it would reach
    the op unquantized if the op stayed float) or to an integer op's output."""
    u = v
    while isinstance(u.owner, tfl.QuantizeOp):
        u = u.owner.inputs[0]
    return _float_name(u), quant.quantized_element(u.type) is None


def op_losses(*args: Any, **kw: Any) -> list[OpLoss]:
    """See _op_losses; BLAS runs one thread, as in calibration (small batches, and threads
    stall on a loaded machine)."""
    from tflquant.calibration.blas import blas_threads

    with blas_threads(1):
        return _op_losses(*args, **kw)


def _op_losses(
    float_model: Any,
    quantized_model: Any,
    data: Any,
    max_samples: int = 8,
    ops: Sequence[Operation] | None = None,
) -> list[OpLoss]:
    """For each integer op of the quantized model's main function (`ops`, default: every
    one), its output's SQNR computed by its integer kernel against the same op kept float,
    both fed the float model's values on the first `max_samples` samples of `data`. Runs the
    float model once; each op runs alone (no integer run of the whole model)."""
    from tflquant.reference.integer_interpreter import _dequant, _quant, call_op, op_kernel

    fm, qm = _module(float_model, "float model"), _module(quantized_model, "quantized model")
    plan = []
    need: set[str] = set()
    for op in _main(qm).body.block.ops if ops is None else ops:
        if not isinstance(op, tfl.TflOp) or not op.results:
            continue
        qt = quant.quantized_element(op.results[0].type)
        name = _float_name(op.results[0])
        if qt is None or name is None:
            continue
        sources: list[tuple[str, bool] | None] = []
        for v in op.operands:
            if isinstance(v.owner, tfl.ConstOp | tfl.NoValueOp):
                sources.append(None)
                continue
            src, real = _source(v)
            if src is None or quant.quantized_element(v.type) is None:
                break
            sources.append((src, real))
        else:
            plan.append((op, name, sources))
            need.add(name)
            need.update(s[0] for s in sources if s is not None)
    if not plan:
        return []
    fmain = _main(fm)
    x = _inputs(fmain, data, max_samples)
    n = len(x[0]) if x else 0
    if n == 0:
        return []
    ref = _float_values(fm, fmain, x, need)
    out = []
    for op, name, sources in plan:
        if name not in ref or any(s is not None and s[0] not in ref for s in sources):
            continue
        vals: dict[SSAValue, Any] = {}
        batched: dict[SSAValue, bool] = {}
        reals: set[SSAValue] = set()
        real_vals: dict[SSAValue, Any] = {}
        for v, s in zip(op.operands, sources):
            if s is None:
                vals[v] = v.owner.numpy() if isinstance(v.owner, tfl.ConstOp) else None  # type: ignore[union-attr]
                batched[v] = False
                continue
            r = ref[s[0]].astype(np.float32)
            vals[v] = _quant(r, quant.quantized_element(v.type), True)
            batched[v] = True
            if s[1]:
                reals.add(v)
                real_vals[v] = r
        res = op.results[0]
        qt = quant.quantized_element(res.type)
        note = ""
        try:
            k, integer = op_kernel(op)
        except TflquantError:
            continue  # no kernel to measure it with
        try:
            got = call_op(op, k, integer, vals, batched)[0][0]
            q_db = _sqnr(ref[name], _dequant(np.asarray(got), qt, True))
        except TflquantError as e:
            q_db, note = float("-inf"), str(e)
        requant = any(not isinstance(u.operation, tfl.DequantizeOp | func.ReturnOp) for u in res.uses)
        fk_factory = fk.KERNELS.get(tfl.op_type(op))
        if fk_factory is None:
            continue
        fvals = {**vals, **real_vals}
        try:
            fo = np.asarray(call_op(op, fk_factory(op), False, fvals, batched, reals, quantize_results=requant)[0][0])
        except TflquantError:
            continue
        f_db = _sqnr(ref[name], _dequant(fo, qt, True) if requant else fo)
        out.append(OpLoss(name, tfl.op_type(op), q_db, f_db, n, note))
    return out


def destroys(loss: OpLoss) -> bool:
    """An op that quantizing destroys: it fails (LiteRT refuses the invoke), its output loses
    the signal (SQNR below 0 dB) where float does at least 6 dB better, or float does
    20 dB better and the integer op is below 30 dB."""
    if loss.quantized_db == float("-inf"):
        return True
    if loss.quantized_db < 0 and loss.gain_db >= 6:
        return True
    return loss.gain_db >= 20 and loss.quantized_db < 30


def hybrid_losses(*args: Any, **kw: Any) -> list[OpLoss]:
    """See _hybrid_losses; BLAS runs one thread, as in calibration."""
    from tflquant.calibration.blas import blas_threads

    with blas_threads(1):
        return _hybrid_losses(*args, **kw)


def _hybrid_losses(float_model: Any, quantized_model: Any, data: Any, max_samples: int = 8) -> list[OpLoss]:
    """Dynamic-range models: for each hybrid op of the main function (float activations, int8
    weights), its output computed with the dequantized weights from the float model's inputs,
    scored against the float model's output (`quantized_db`; `float_db` is exact: 99). The
    activations' run-time quantization is left out: it is the same whatever the weights."""
    from tflquant.reference.integer_interpreter import call_op

    fm, qm = _module(float_model, "float model"), _module(quantized_model, "quantized model")
    plan = []
    for op in _main(qm).body.block.ops:
        if not isinstance(op, tfl.TflOp) or not op.results or tfl.op_type(op) not in fk.KERNELS:
            continue
        weights = [v for v in op.operands if isinstance(v.owner, tfl.ConstOp) and quant.quantized_element(v.type) is not None]
        acts = [v for v in op.operands if not isinstance(v.owner, tfl.ConstOp | tfl.NoValueOp)]
        if not weights or not acts or not all(tfl.is_float_tensor(v.type) for v in acts) or not tfl.is_float_tensor(op.results[0].type):
            continue
        if (name := value_name(op.results[0])) is not None and all(value_name(v) is not None for v in acts):
            plan.append((op, name))
    if not plan:
        return []
    need = {n for _, n in plan} | {value_name(v) for op, _ in plan for v in op.operands if not isinstance(v.owner, tfl.ConstOp | tfl.NoValueOp)}
    fmain = _main(fm)
    x = _inputs(fmain, data, max_samples)
    ref = _float_values(fm, fmain, x, need)
    out = []
    for op, name in plan:
        vals: dict[SSAValue, Any] = {}
        batched: dict[SSAValue, bool] = {}
        for v in op.operands:
            if isinstance(v.owner, tfl.ConstOp | tfl.NoValueOp):
                vals[v] = v.owner.numpy() if isinstance(v.owner, tfl.ConstOp) else None
                batched[v] = False
            else:
                vals[v] = ref.get(value_name(v) or "")
                batched[v] = True
        if name not in ref or any(vals[v] is None and batched[v] for v in op.operands):
            continue
        try:
            got = call_op(op, fk.KERNELS[tfl.op_type(op)](op), False, vals, batched)[0][0]
        except TflquantError:
            continue
        out.append(OpLoss(name, tfl.op_type(op), _sqnr(ref[name], got), 99.0, len(x[0])))
    return out
