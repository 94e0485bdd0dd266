"""Run representative data through the float model and record every float tensor's range.

    result = calibrate(module, "calib.npz", batch_size=32, progress=True)
    result.stats      # tensor name -> Range, what annotate-calibration consumes
    result.warnings   # NaN/Inf skipped, ... (also issued as Python warnings)

The model runs in the numpy reference interpreter, `batch_size` samples at a time (every
activation gets a leading sample axis), so Python only dispatches ops. Models with several
signatures calibrate every signature the data names; a model without signatures runs its
first function. A tensor name that several functions use is recorded per function as
'@function/name', so a signature without data keeps its ops float instead of borrowing
another signature's ranges.

Resource variables (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE, shared between
signatures by container and shared_name, initialized by a CALL_ONCE subgraph: how the TF
converter writes a KV cache) hold state from one run to the next, as in one LiteRT
interpreter. Calibration runs a copy of the model in which each variable a function reads
is an extra argument (named like the READ_VARIABLE result, so its range is recorded) and
each variable it assigns an extra result; the driver keeps the values between runs.
Samples of such a model run one at a time in the order the data gives them, as a LiteRT
user would invoke the signatures: arrays keyed '<signature>/<input>' run signature by
signature (all prefill samples, then the decode samples, each continuing the state the
previous left); an iterable of (signature_key, inputs) pairs runs in its own order.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DenseArrayBase, DictionaryAttr, FunctionType, ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Operation, SSAValue

from tflquant.calibration.dataset import (
    ArraySamples,
    InputSpec,
    batches,
    load_npz,
    samples_from_arrays,
    samples_from_iterable,
    split_signature,
)
from tflquant.calibration import DEFAULT_BATCH_SIZE
from tflquant.calibration.observers import MinMaxObserver, make_observer
from tflquant.calibration.stats import Stats, check_method, function_of, qualified_name
from tflquant.dialects import tfl
from tflquant.errors import TflquantError
from tflquant.ir import numpy_dtype_of_element, value_name
from tflquant.reference.interpreter import PLAIN_OP_CLASSES



class CalibrationWarning(UserWarning):
    """Something in the calibration data the user should know about (NaN/Inf, ...)."""


@dataclass
class Entry:
    """One function to calibrate: a signature, or the model's main function."""

    fn: func.FuncOp
    specs: list[InputSpec]
    key: str | None = None  # signature key

    @property
    def label(self) -> str:
        return f"signature '{self.key}'" if self.key is not None else f"function '{self.fn.sym_name.data}'"


@dataclass
class CalibrationResult:
    stats: Stats
    samples: int
    batches: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    per_entry: dict[str, int] = field(default_factory=dict)  # signature/function -> samples


# ---------------------------------------------------------------------------------------
# Model entry points
# ---------------------------------------------------------------------------------------


def _functions(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.ops if isinstance(op, func.FuncOp)]


def _arg_specs(fn: func.FuncOp, aliases: Mapping[int, str] | None = None) -> list[InputSpec]:
    specs = []
    for i, arg in enumerate(fn.body.blocks[0].args if fn.body.blocks else ()):
        t = arg.type
        if not isinstance(t, TensorType):
            raise TflquantError(f"{fn.sym_name.data}: argument #{i} is not a tensor ({t})")
        name = value_name(arg) or f"input_{i}"
        shape = tuple(int(d) for d in t.get_shape())
        specs.append(InputSpec(name, shape, numpy_dtype_of_element(t.element_type).newbyteorder("="), (aliases or {}).get(i)))
    return specs


def entries(module: ModuleOp) -> list[Entry]:
    """The model's signatures (in file order), or its first function when it has none."""
    fns = {f.sym_name.data: f for f in _functions(module)}
    if not fns:
        raise TflquantError("the model has no subgraph to calibrate")
    sigs = module.attributes.get("tfl.signatures")
    out: list[Entry] = []
    if isinstance(sigs, ArrayAttr):
        for s in sigs.data:
            if not isinstance(s, DictionaryAttr):
                continue
            d = s.data
            key = d["key"].data if isinstance(d.get("key"), StringAttr) else ""
            fname = d["function"].data if isinstance(d.get("function"), StringAttr) else None
            if fname not in fns:
                raise TflquantError(f"signature '{key}' names function {fname!r}, which the model does not have")
            aliases: dict[int, str] = {}
            names, idx = d.get("inputs"), d.get("input_indices")
            if isinstance(names, ArrayAttr) and isinstance(idx, DenseArrayBase):
                for n, i in zip(names.data, idx.get_values()):
                    aliases[int(i)] = n.data  # type: ignore[attr-defined]
            out.append(Entry(fns[fname], _arg_specs(fns[fname], aliases), key))
    if not out:
        first = next(iter(fns.values()))
        out.append(Entry(first, _arg_specs(first)))
    return out


# ---------------------------------------------------------------------------------------
# Progress on a terminal
# ---------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr; silent unless enabled and stderr is a terminal."""

    def __init__(self, total: int | None, enabled: bool, label: str = "calibrating", stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled and _isatty(self.stream)
        self.total, self.label, self.done, self.batches = total, label, 0, 0
        self.start = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            text = f"\r{self.label} [{bar:<24}] {self.done}/{self.total} samples  {elapsed:5.1f}s"
        else:
            text = f"\r{self.label}: {self.done} samples  {elapsed:5.1f}s"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------
# Routing data to entries
# ---------------------------------------------------------------------------------------

Source = Any  # path to .npz, mapping of arrays, iterable, or a function returning an iterable


def _plan(module: ModuleOp, data: Source, where: str, in_order: bool = False) -> list[tuple[Entry, int | None, Iterator[list[np.ndarray]]]]:
    """(entry, sample count if known, samples) for every entry the data feeds."""
    ents = entries(module)
    if isinstance(data, (str, os.PathLike)):
        where = os.fspath(data)
        data = load_npz(data)
    if isinstance(data, Mapping) and all(isinstance(v, np.ndarray) for v in data.values()):
        return _plan_arrays(ents, data, where)
    if isinstance(data, Mapping):
        raise TflquantError(f"{where}: a mapping of calibration data must hold numpy arrays (one per input, samples first)")
    if len(ents) == 1:
        return [(ents[0], None, samples_from_iterable(data, ents[0].specs, where))]
    return _plan_multi_iterable(ents, data, where, in_order)


def _plan_arrays(ents: list[Entry], arrays: Mapping[str, np.ndarray], where: str) -> list[tuple[Entry, int | None, Iterator[list[np.ndarray]]]]:
    if len(ents) == 1:
        n, it = samples_from_arrays(arrays, ents[0].specs, where)
        return [(ents[0], n, it)]
    plan = []
    for e in ents:
        prefix = f"{e.key}/"
        sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        sub.update({k: v for k, v in arrays.items() if any(k == s.name for s in e.specs)})
        if sub:
            n, it = samples_from_arrays(sub, e.specs, f"{where} ({e.label})")
            plan.append((e, n, it))
    if not plan:
        want = "; ".join(f"{e.label}: {', '.join(s.name for s in e.specs)}" for e in ents)
        raise TflquantError(
            f"{where}: the model has {len(ents)} signatures and no array matches one of them; key arrays "
            f"'<signature>/<input>' or by input tensor name ({want})"
        )
    return plan


def _plan_multi_iterable(ents: list[Entry], data: Source, where: str, in_order: bool = False) -> list[tuple[Entry, int | None, Iterator[list[np.ndarray]]]]:
    """Several signatures, TF style: items are (signature_key, {name: array}). Grouped by
    signature, or with `in_order` (a stateful model) as runs of consecutive items of one
    signature, in the order given (prefill, decode, decode, ..., prefill, ...)."""
    by_key = {e.key: e for e in ents}
    routed: dict[str | None, list[list[np.ndarray]]] = {}
    runs: list[tuple[str, list[list[np.ndarray]]]] = []
    from tflquant.calibration.dataset import _item_to_sample, numbered_items

    for i, item in numbered_items(data, where):
        key, payload = split_signature(item)
        if key is None:
            raise TflquantError(
                f"{where}, sample {i}: the model has signatures {', '.join(repr(k) for k in by_key)}; "
                "yield (signature_key, {input_name: array}) pairs"
            )
        if key not in by_key:
            raise TflquantError(f"{where}, sample {i}: unknown signature {key!r} (the model has {', '.join(repr(k) for k in by_key)})")
        sample = _item_to_sample(payload, by_key[key].specs, f"{where}, sample {i}")
        if in_order:
            if runs and runs[-1][0] == key:
                runs[-1][1].append(sample)
            else:
                runs.append((key, [sample]))
        else:
            routed.setdefault(key, []).append(sample)
    if in_order:
        return [(by_key[k], len(v), iter(v)) for k, v in runs]
    return [(by_key[k], len(v), iter(v)) for k, v in routed.items()]


# ---------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------


def _weighted_input(op: Operation) -> int | None:
    """For a layer whose bias `correct-bias` adjusts (tfl.AffineOp calibrated_bias): the
    input operand whose channel means it needs."""
    a = type(op).get_trait(tfl.AffineOp) if isinstance(op, tfl.TflOp) else None
    return a.input if a is not None and a.calibrated_bias else None


def weighted_layer_inputs(module: ModuleOp) -> frozenset[str]:
    """Statistics keys (see `shared_names`) of the activation inputs of CONV_2D,
    DEPTHWISE_CONV_2D and FULLY_CONNECTED."""
    shared = shared_names(module)
    out = set()
    for op in module.walk():
        idx = _weighted_input(op)
        if idx is not None and idx < len(op.operands):
            v = op.operands[idx]
            name = value_name(v)
            if name is not None:
                fn = function_of(v) if name in shared else None
                out.add(qualified_name(fn, name) if fn is not None else name)
    return frozenset(out)


def shared_names(module: ModuleOp) -> frozenset[str]:
    """Tensor names that more than one function uses (signatures of a multi-signature model
    often repeat names: the TF converter calls every output 'StatefulPartitionedCall:0').
    Their statistics are recorded per function, as '@function/name'."""
    seen: dict[str, str] = {}
    shared: set[str] = set()
    funcs = _functions(module)
    if len(funcs) < 2:  # one function: no name to share
        return frozenset()
    for f in funcs:
        fname = f.sym_name.data
        values = [*f.body.blocks[0].args] if f.body.blocks else []
        values += [r for op in f.body.walk() for r in op.results]
        for v in values:
            name = value_name(v)
            if name is None:
                continue
            first = seen.setdefault(name, fname)
            if first != fname:
                shared.add(name)
    return frozenset(shared)


def _run_batch(interp: Any, entry: Entry, arrays: list[np.ndarray], observe: Any, state: _State | None = None) -> None:
    name = entry.fn.sym_name.data
    if state is None:  # (no outputs wanted: an observer naming its values runs only what they need)
        interp.run(arrays, observer=observe, func_name=name, results=False)
    else:
        state.run(interp, name, arrays, observe)


# ---------------------------------------------------------------------------------------
# Resource variables (see the module docstring)
# ---------------------------------------------------------------------------------------

_RESOURCE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


def _resource_op(op: Operation) -> str | None:
    if (type(op) is tfl.OpaqueOp or (type(op) not in PLAIN_OP_CLASSES and isinstance(op, tfl.OpaqueOp))) and op.custom_code is None and op.op_name in _RESOURCE_OPS:
        return op.op_name
    return None


def variable_key(op: tfl.OpaqueOp) -> str:
    """The variable a VAR_HANDLE names: `container/shared_name` (LiteRT shares a variable
    between subgraphs by these two strings)."""
    opts = op.options.data if op.options is not None else {}
    c, n = opts.get("container"), opts.get("shared_name")
    return f"{c.data if isinstance(c, StringAttr) else ''}/{n.data if isinstance(n, StringAttr) else ''}"


@dataclass
class _StatefulFn:
    reads: list[str]  # variable keys, one per extra argument (after the inputs)
    writes: list[str]  # variable keys, one per extra result (after the outputs)
    n_outputs: int
    inits: list[int]  # subgraphs CALL_ONCE runs first


class _State:
    """Variable values between runs, and a copy of the model with variables as I/O."""

    def __init__(self, module: ModuleOp, entry_names: Sequence[str]):
        self.module = module.clone()
        funcs = _functions(self.module)
        self.fns: dict[str, _StatefulFn] = {}
        self.names = [f.sym_name.data for f in funcs]
        needed = list(entry_names)
        while needed:  # the entries and the subgraphs their CALL_ONCE ops run
            name = needed.pop()
            if name in self.fns:
                continue
            info = self.fns[name] = _lift_variables(funcs[self.names.index(name)])
            for i in info.inits:
                if not 0 <= i < len(funcs):
                    raise TflquantError(f"function '{name}': CALL_ONCE runs subgraph {i}, which the model does not have")
                needed.append(self.names[i])
        for f in funcs:
            if f.sym_name.data not in self.fns and f.sym_name.data in _control_flow_bodies(funcs) and any(_resource_op(op) for op in f.walk()):
                raise TflquantError(
                    f"function '{f.sym_name.data}' (a WHILE / IF subgraph) uses resource variables; "
                    "calibration supports them only in signature functions and CALL_ONCE subgraphs"
                )
        self.values: dict[str, np.ndarray] = {}
        self.done_once: set[str] = set()

    def run(self, interp: Any, name: str, arrays: list[np.ndarray], observe: Any) -> None:
        info = self.fns[name]
        for i in info.inits:
            init = self.names[i]
            if init not in self.done_once:
                self.done_once.add(init)
                self.run(interp, init, [], observe)
        n = len(arrays[0]) if arrays else 1
        extra = []
        for key in info.reads:
            if key not in self.values:
                raise TflquantError(
                    f"function '{name}' reads resource variable '{key}' before anything assigned it "
                    "(calibrate the signature that writes it first, or initialize it with CALL_ONCE)"
                )
            v = self.values[key]
            extra.append(v if len(v) == n else v[np.arange(n) % len(v)])
        outs = interp.run([*arrays, *extra], observer=observe, func_name=name)
        for key, v in zip(info.writes, outs[info.n_outputs :]):
            self.values[key] = np.asarray(v)


def _control_flow_bodies(funcs: Sequence[func.FuncOp]) -> set[str]:
    out = set()
    for f in funcs:
        for op in f.walk():
            for option in tfl.CONTROL_FLOW_SUBGRAPHS.get(tfl.op_type(op), ()):
                i = tfl.subgraph_index(op, option)
                if i is not None and 0 <= i < len(funcs):
                    out.add(funcs[i].sym_name.data)
    return out


def _lift_variables(f: func.FuncOp) -> _StatefulFn:
    """Rewrite `f` in place: READ_VARIABLE -> extra argument, ASSIGN_VARIABLE -> extra result
    (its last value), VAR_HANDLE / CALL_ONCE removed."""
    fname = f.sym_name.data
    block = f.body.blocks[0]
    handles: dict[SSAValue, str] = {}
    current: dict[str, SSAValue] = {}
    reads: list[str] = []
    inits: list[int] = []
    ret = block.last_op
    if not isinstance(ret, func.ReturnOp):
        raise TflquantError(f"function '{fname}' does not end with func.return")
    n_outputs = len(ret.operands)
    arg_attrs = list(f.arg_attrs.data) if f.arg_attrs is not None else [DictionaryAttr({}) for _ in block.args]
    for op in list(block.ops):
        kind = _resource_op(op)
        if kind is None:
            if any(isinstance(v.type, TensorType) and isinstance(v.type.element_type, tfl.ResourceType) for v in op.operands):
                raise TflquantError(f"function '{fname}': {tfl.op_type(op)} takes a resource handle; calibration cannot run it")
            continue
        assert isinstance(op, tfl.OpaqueOp)
        if kind == "VAR_HANDLE":
            handles[op.results[0]] = variable_key(op)
        elif kind == "CALL_ONCE":
            i = tfl.subgraph_index(op, "init_subgraph_index") if op.options is not None else None
            if i is None:
                raise TflquantError(f"function '{fname}': CALL_ONCE without init_subgraph_index")
            inits.append(i)
        else:
            h = op.operands[0] if op.operands else None
            if h not in handles:
                raise TflquantError(f"function '{fname}': {kind} on a handle that no VAR_HANDLE of this function makes")
            key = handles[h]  # type: ignore[index]
            if kind == "ASSIGN_VARIABLE":
                current[key] = op.operands[1]
            elif key in current:  # read after an assign in the same run: the assigned value
                op.results[0].replace_all_uses_with(current[key])
            else:
                arg = block.insert_arg(op.results[0].type, len(block.args))
                arg_attrs.append(DictionaryAttr({"tfl.name": StringAttr(value_name(op.results[0]) or f"{key}:read")}))
                reads.append(key)
                op.results[0].replace_all_uses_with(arg)
        for r in op.results:
            if r.uses and r not in handles:
                raise TflquantError(f"function '{fname}': the result of {kind} is used by an op calibration cannot run")
    for op in reversed(list(block.ops)):
        if _resource_op(op) is not None:
            op.detach()
            op.erase(safe_erase=False)
    writes = list(current)
    ret.operands = (*ret.operands, *(current[k] for k in writes))
    f.function_type = FunctionType.from_lists([a.type for a in block.args], [v.type for v in ret.operands])
    f.arg_attrs = ArrayAttr(arg_attrs)
    return _StatefulFn(reads, writes, n_outputs, inits)


def calibrate(
    module: ModuleOp,
    data: Source,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    observer: MinMaxObserver | str = "minmax",
    max_samples: int | None = None,
    where: str = "calibration data",
    threads: int | None = 1,
    channel_means: bool = True,
    histograms: bool = False,
    method: str | None = None,
    method_tensors: Collection[str] | None = None,
) -> CalibrationResult:
    """Observe every float tensor of the float model over the data; see the module docstring.

    `threads`: BLAS threads while calibrating (see tflquant.calibration.blas: a process-wide
    setting, shared safely by concurrent calls); None keeps numpy's default. Calibration
    changes no other process-wide state (glibc's malloc thresholds are opt-in:
    tflquant.calibration.heap). `channel_means`: also record the per-channel mean of every input of a
    weighted layer (what `correct-bias` reads). `histograms`: also keep each tensor's
    histogram and per-sample min/max, what the calibration methods other than minmax need
    (`tflquant.calibration.stats.select`); off, the statistics are min/max (and means) only.
    With histograms, `method` (None: every method, auto's trials included) names the one
    method the statistics are for: moving-average reads the per-sample ranges only,
    percentile / mse / entropy the histograms only (minmax neither), and the other is not
    kept; `method_tensors` (statistics keys, see `shared_names`; None: every tensor) are the
    tensors whose ranges that method picks, the others get min/max (and means) only. What
    is kept is exactly what a calibration with every statistic finds.
    """
    from tflquant.calibration.blas import blas_threads
    from tflquant.reference.interpreter import Interpreter

    t0 = time.perf_counter()
    obs = make_observer(observer) if isinstance(observer, str) else observer
    if channel_means and isinstance(obs, MinMaxObserver):
        obs.mean_names = obs.mean_names | weighted_layer_inputs(module)
    if histograms and isinstance(obs, MinMaxObserver):
        obs.histograms = True
        if method is not None:
            check_method(method)
            obs.sample_ranges = method == "moving-average"
            obs.histogram_counts = method not in ("moving-average", "minmax")
        if method_tensors is not None:
            obs.method_names = frozenset(method_tensors)
    stateful = any(_resource_op(op) for op in module.walk())
    plan = _plan(module, data, where, in_order=stateful)
    total_known = all(n is not None for _, n, _ in plan)
    total = sum(n for _, n, _ in plan if n is not None) if total_known else None
    if max_samples is not None and total is not None:
        total = min(total, max_samples * len(plan))
    bar = Progress(total, progress)
    state = None
    if stateful:  # resource variables: one sample at a time, in the data's order, as LiteRT invokes
        state = _State(module, [e.fn.sym_name.data for e, _, _ in plan])
        batch_size = 1
    # an LSTM's state runs on from sample to sample, as in LiteRT
    interp = Interpreter(state.module if state is not None else module, stateful=True)
    observe = _NamedObserver(obs, shared_names(module))
    for f in _functions(interp.module or module):
        if f.body.blocks:
            observe.readers_of(f.body.block)
    per_entry: dict[str, int] = {}
    # an observer without reduce/merge (hessian.InputHessians) is called in sample order, for
    # the values of its `observed_names` only (when it has them)
    call = observe if hasattr(obs, "reduce") else _PlainCall(observe, getattr(obs, "observed_names", None), interp.module or module)
    try:
        with blas_threads(threads):
            _run_plan(plan, interp, call, batch_size, max_samples, where, bar, per_entry, state)
    finally:
        bar.close()
    n_samples = sum(per_entry.values())
    n_batches = bar.batches
    notes = obs.warnings()
    if notes:
        more = f" (and {len(notes) - 1} more tensor(s))" if len(notes) > 1 else ""
        warnings.warn(notes[0] + more, CalibrationWarning, stacklevel=2)
    return CalibrationResult(obs.stats(), n_samples, n_batches, time.perf_counter() - t0, notes, per_entry)


# ops whose result holds, sample by sample, the values of their first operand: RESHAPE and
# friends in the same order (a view of the same buffer), TRANSPOSE permuted
_SAME_ORDER = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
_PERMUTED = frozenset({"TRANSPOSE"})
_READERS = frozenset(tfl.BUILTIN_CLASSES[k] for k in _SAME_ORDER | _PERMUTED)  # their op classes


class _NamedObserver:
    """The interpreter's observer (values) in front of a MinMaxObserver (tensor names); it
    splits into reduce/merge so that parallel sample ranges reduce their arrays at once.

    With histograms, the result of an op in _SAME_ORDER / _PERMUTED reuses what its operand's
    reduce found (MinMaxObserver.same_values decides when that is exactly what its own
    reduce would find): a reshape's values are binned once."""

    def __init__(self, obs: MinMaxObserver, shared: frozenset[str] = frozenset()):
        self.obs = obs
        self.shared = shared
        self.names: dict[int, str | None] = {}
        self.sources: dict[int, Any] = {}
        self.readers: dict[int, set[int]] = {}  # id(block) -> ids of its values a RESHAPE / TRANSPOSE reads (readers_of)
        self.blocks: list[Block] = []
        self.local = threading.local()  # per thread: value -> (its last array, weakly; its reduce result)
        # MinMaxObserver.reduce's `now` (a subclass may define reduce without it)
        self.counts_now = getattr(type(obs), "reduce", None) is MinMaxObserver.reduce
        # a plain observer (hessian.InputHessians): observe() in sample order, no reduce/merge
        self.plain = not hasattr(obs, "reduce")
        # a MinMaxObserver (with histograms on, checked per call): a value whose statistics no
        # other value shares is observed in one call (observe: no reduce result to build and merge)
        self.direct = type(obs) is MinMaxObserver

    # (the dictionaries are keyed by id(value): an SSAValue hashes and compares by identity
    # in Python code, id() does the same in C; the module's values live as long as the run)

    def _name(self, value: SSAValue) -> str | None:
        try:
            return self.names[id(value)]
        except KeyError:
            name = value_name(value)
            if name is not None and name in self.shared and (fn := function_of(value)) is not None:
                name = qualified_name(fn, name)
            self.names[id(value)] = name
            return name

    def _source(self, value: SSAValue) -> tuple[SSAValue | None, bool, bool]:
        """(operand, same order?, does a RESHAPE / TRANSPOSE read `value`?) when `value` holds
        its operand's values, else (None, False, does one read `value`?)."""
        try:
            return self.sources[id(value)]
        except KeyError:
            op, src, same = value.owner, None, False
            cls = type(op)  # (exact classes first: isinstance against xDSL's ABCs is slow)
            if cls in _READERS or (cls not in PLAIN_OP_CLASSES and isinstance(op, Operation)):
                if op.operands and len(op.results) == 1:
                    kind = tfl.op_type(op)
                    if kind in _SAME_ORDER or kind in _PERMUTED:
                        src = op.operands[0]
                        same = kind in _SAME_ORDER
            block = op.parent if cls in PLAIN_OP_CLASSES else op if isinstance(op, Block) else getattr(op, "parent", None)
            readers = self.readers.get(id(block)) if block is not None else None
            if readers is None:
                read = any(u.index == 0 and type(u.operation) in _READERS for u in value.uses)
            else:
                read = id(value) in readers
            out = (src, same, read)
            self.sources[id(value)] = out
            return out

    def readers_of(self, block: Block) -> None:
        """Note once which values of `block` a RESHAPE / TRANSPOSE reads (as operand 0): the
        values of a block are used in it only (a tfl function is one block)."""
        if id(block) not in self.readers:
            self.readers[id(block)] = {id(op.operands[0]) for op in block.ops if type(op) in _READERS and op.operands}
            self.blocks.append(block)  # (alive while keyed by id)

    def __call__(self, value: SSAValue, array: np.ndarray) -> None:
        if self.plain:
            if (name := self._name(value)) is not None:
                self.obs.observe(name, array)
            return
        if self.direct and self.obs.histograms:
            if type(array) is np.ndarray and array.dtype.kind != "f":  # no statistics (reduce: None)
                return
            try:
                name = self.names[id(value)]
            except KeyError:
                name = self._name(value)
            if name is None:
                return
            try:
                src, _, read = self.sources[id(value)]
            except KeyError:
                src, _, read = self._source(value)
            if src is None:  # observed in one call (see reduce); kept for a RESHAPE / TRANSPOSE of it
                if not read:
                    self.obs.observe(name, array)
                    return
                part = self.obs._observe_direct(name, array, keep=True)
                if part is not False:
                    seen = getattr(self.local, "seen", None)
                    if seen is None:
                        seen = self.local.seen = {}
                    seen[id(value)] = (weakref.ref(array), part)
                    return
        token = self.reduce(value, array, now=True)
        if token is not None and token[1] is not None:
            self.obs.merge(*token)

    def reduce(self, value: SSAValue, array: np.ndarray, now: bool = False) -> Any:
        name = self._name(value)
        if name is None:
            return None
        if not self.obs.histograms:
            return (name, self.obs.reduce(name, array))
        seen = getattr(self.local, "seen", None)
        if seen is None:
            seen = self.local.seen = {}
        part = None
        src, same, read = self._source(value)
        if src is not None and (hit := seen.get(id(src))) is not None:
            part = self.obs.same_values(name, array, hit[0](), hit[1], same)
        if part is None:
            part = self.obs.reduce(name, array, now=True) if now and self.counts_now else self.obs.reduce(name, array)
        if read and part is not None and isinstance(array, np.ndarray):
            seen[id(value)] = (weakref.ref(array), part)
        return (name, part)

    def merge(self, value: SSAValue, token: Any) -> None:
        if token is not None and token[1] is not None:
            self.obs.merge(*token)


class _PlainCall:
    """The interpreter's observer in front of a plain observer (no reduce/merge): every value
    goes to it through `named`; with `names` (statistics keys), the ids of the values of the
    module's functions that carry those keys are `observed` (the interpreter calls it for
    those only, see tflquant.reference.interpreter); the observer's `range_samples`, if any,
    goes to the interpreter too."""

    def __init__(self, named: _NamedObserver, names: Collection[str] | None, module: ModuleOp):
        self.named = named
        if names is not None:
            wanted = set(names)
            values: list[SSAValue] = []
            for f in _functions(module):
                if f.body.blocks:
                    values += f.body.blocks[0].args
                values += [r for op in f.body.walk() for r in op.results]
            self.observed = frozenset(id(v) for v in values if named._name(v) in wanted)
        if (per := getattr(named.obs, "range_samples", None)) is not None:
            self.range_samples = per

    def __call__(self, value: SSAValue, array: np.ndarray) -> None:
        self.named(value, array)


def _run_plan(
    plan: list[tuple[Entry, int | None, Iterator[list[np.ndarray]]]],
    interp: Any,
    observe: Any,
    batch_size: int,
    max_samples: int | None,
    where: str,
    bar: Progress,
    per_entry: dict[str, int],
    state: _State | None = None,
) -> None:
    for entry, _, samples in plan:
        key = entry.key if entry.key is not None else entry.fn.sym_name.data
        count = 0
        if max_samples is not None:
            samples = _take(samples, max_samples - per_entry.get(key, 0))
        for arrays in batches(samples, batch_size):
            _run_batch(interp, entry, arrays, observe, state)
            k = len(arrays[0]) if arrays else 0
            if isinstance(getattr(observe, "obs", None), MinMaxObserver):
                observe.obs.end_batch(max(k, 1))
            count += k
            bar.batches += 1
            bar.update(k)
        if count == 0 and key not in per_entry:
            raise TflquantError(f"{where}: no calibration samples for {entry.label}")
        per_entry[key] = per_entry.get(key, 0) + count


def _take(it: Iterator[list[np.ndarray]], n: int) -> Iterator[list[np.ndarray]]:
    if isinstance(it, ArraySamples):
        return it.take(n)
    return _take_items(it, n)


def _take_items(it: Iterator[list[np.ndarray]], n: int) -> Iterator[list[np.ndarray]]:
    for i, s in enumerate(it):
        if i >= n:
            return
        yield s


def specs_summary(specs: Sequence[InputSpec]) -> str:
    return ", ".join(f"{s.name} {s.shape_text()} {s.dtype.name}" for s in specs)
