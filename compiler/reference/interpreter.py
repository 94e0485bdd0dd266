"""The reference interpreter: runs a `tfl` module (float, fake-quantized or mixed) in numpy.

    interp = Interpreter(module)
    outs = interp.run([x], observer=lambda value, array: ...)

Samples are batched: every input has a leading *sample axis* (a model input of shape
[1,16,16,1] takes an array of shape (N,1,16,16,1)) and so do the outputs. Inside, every
value that depends on the inputs carries the sample axis; constants, and values computed
only from constants and shapes (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chains), do not.

A function is compiled once into a flat plan of steps (kernel, operand slots, result slots,
slots to free); running it is a loop that only dispatches to numpy kernels. Quantized values
are integer storage arrays: QUANTIZE / quant.qcast produce them and DEQUANTIZE / quant.dcast
read them; any other op consuming a quantized value sees it dequantized (weights of hybrid
models, fp16 weights after DEQUANTIZE), and an op with a quantized result quantizes its
float result, so fake-quantized and quantized modules can be simulated in float.

The observer is called as `observer(value, array)` for every function argument and every op
result except constants (`tfl.const`, `tfl.no_value`, ...: read those with ConstOp.numpy()),
always with a leading sample axis (a broadcast view for sample-independent values).
A large batch runs as sample ranges in parallel threads (see PARALLEL_MIN_SAMPLES): the
observer is then called once per range for each op result, never concurrently, so it must
merge what it sees (min/max, sums) rather than assume one call per value and run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue

from tflquant.dialects import tfl
from tflquant.dialects.quant import blockwise_element, quantized_element
from tflquant.errors import TflquantError
from tflquant.ir import describe, numpy_dtype_of_element, op_label
from tflquant.reference import float_kernels as fk

Observer = Callable[[SSAValue, np.ndarray], None]
# An observer may also split its work: `reduce(value, array) -> token` (thread-safe, no
# shared state written) and `merge(value, token)`. When batches run as parallel sample
# ranges, `reduce` runs in each range's own thread and only `merge` waits its turn (range
# order); the plain call `observer(value, array)` must equal merge(value, reduce(...)).
# An observer that reads a few values only may name them: `observed`, a collection of the
# ids of those SSAValues (of any function); it is then called for those only. With parallel
# sample ranges a plain observer's ranges take turns on each value it is called for, so the
# fewer the better (hessian.InputHessians reads a few matmul inputs of hundreds of values).
# It may also ask for `range_samples`, the samples per parallel range (instead of
# PARALLEL_RANGE_SAMPLES; PARALLEL_RANGE_BYTES still caps it): fewer, longer ranges mean
# fewer turns and fewer dispatches of every step.

_CONSTANT_OPS = (tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp, tfl.SparseConstOp)






@dataclass
class _Step:
    run: Callable[..., list[Any]]
    ins: list[int]
    outs: list[int]
    free: list[int]
    batched: bool
    values: list[SSAValue]
    side: list[SSAValue] = field(default_factory=list)  # operands the kernel reports (SIDE_VALUES)
    carry: list[Any] | None = None  # a stateful interpreter's state of a STATEFUL op between runs
    control: bool = False  # WHILE / IF: the kernel runs subgraphs and passes them the observer


@dataclass
class _Plan:
    func: func.FuncOp
    n_slots: int
    args: list[int]
    arg_types: list[TensorType]
    consts: dict[int, Any]
    steps: list[_Step]
    results: list[int]
    result_batched: list[bool]
    batched: set[int] = field(default_factory=set)
    sample_elems: int = 0  # elements of the batched op results per sample (static shapes)
    largest_elems: int = 0  # elements per sample of the largest batched op result
    folded_bytes: int = 0  # bytes of the results computed once from constants (kept by _once)
    pruned: tuple[Any, _Plan] | None = None  # (observed ids, _pruned's plan for them): the last one built


def _sparse_to_dense(op: tfl.SparseConstOp) -> np.ndarray:
    """Densify a TFLite sparse constant (DENSE and SPARSE_CSR dimension metadata, blocks)."""
    from tflquant.ir import dense_to_numpy

    values = dense_to_numpy(op.value).reshape(-1)
    t = op.result.type
    assert isinstance(t, TensorType)
    shape = [int(d) for d in t.get_shape()]
    n = len(shape)
    sp = _attr_py(op.sparsity)
    order = [int(v) for v in sp.get("traversal_order", [])] or list(range(n))
    block_map = [int(v) for v in sp.get("block_map", [])]
    dims = sp.get("dim_metadata", [])
    block_size = {}
    for i, d in enumerate(order):
        if d >= n:
            block_size[block_map[d - n]] = int(dims[i]["dense_size"])
    sizes = [shape[d] // block_size.get(d, 1) if d < n else block_size[block_map[d - n]] for d in order]
    positions = np.zeros(1, dtype=np.int64)
    for i, md in enumerate(dims):
        if int(md.get("format", 0)) == 0:
            positions = (positions[:, None] * sizes[i] + np.arange(sizes[i])[None, :]).reshape(-1)
        else:
            seg = np.asarray(md.get("array_segments", []), dtype=np.int64)
            idx = np.asarray(md.get("array_indices", []), dtype=np.int64)
            counts = seg[1:] - seg[:-1]
            positions = np.repeat(positions, counts) * sizes[i] + idx[seg[0] : seg[-1]]
    if len(positions) != len(values):
        raise ValueError(f"{len(values)} values for {len(positions)} positions")
    flat = np.zeros(int(np.prod(sizes)), dtype=values.dtype)
    flat[positions] = values
    arr = flat.reshape(sizes)
    # axes of `arr` follow traversal order; bring each dim next to its block dim, then merge
    target = []
    for d in range(n):
        target.append(order.index(d))
        if d in block_size:
            target.append(order.index(n + block_map.index(d)))
    return np.ascontiguousarray(arr.transpose(target).reshape(shape))


def _attr_py(a: Any) -> Any:
    """Plain Python data from a (nested) xDSL attribute used in sparsity dictionaries."""
    from xdsl.dialects.builtin import ArrayAttr, DenseArrayBase, DictionaryAttr, FloatAttr, IntegerAttr

    if isinstance(a, DictionaryAttr):
        return {k: _attr_py(v) for k, v in a.data.items()}
    if isinstance(a, ArrayAttr):
        return [_attr_py(v) for v in a.data]
    if isinstance(a, DenseArrayBase):
        return list(a.get_values())
    if isinstance(a, IntegerAttr):
        return a.value.data
    if isinstance(a, FloatAttr):
        return a.value.data
    if isinstance(a, StringAttr):
        return a.data
    return a


class Interpreter:
    """Runs the functions of a module (or one func.func) on batches of samples."""

    def __init__(self, module_or_func: ModuleOp | func.FuncOp, stateful: bool = False):
        """`stateful`: ops that update variable tensors (LSTM) keep their state from sample to
        sample and from run to run, as one LiteRT interpreter does over successive invokes
        (samples then run in order, not in parallel ranges); `reset()` starts over. By
        default every sample starts from the variables' initial values."""
        self.stateful = stateful
        if isinstance(module_or_func, func.FuncOp):
            funcs = [module_or_func]
            self.module: ModuleOp | None = None
        elif isinstance(module_or_func, ModuleOp):
            funcs = [op for op in module_or_func.ops if isinstance(op, func.FuncOp)]
            self.module = module_or_func
        else:
            raise TflquantError(f"the reference interpreter runs a module or a func.func, not {type(module_or_func).__name__}")
        if not funcs:
            raise TflquantError("the module has no function to run")
        self.funcs = funcs
        self._by_name = {f.sym_name.data: f for f in funcs}
        self._plans: dict[str, _Plan] = {}

    # ------------------------------------------------------------------------------------
    def function(self, func_name: str | None = None, signature: str | None = None) -> func.FuncOp:
        if signature is not None:
            return self._signature_func(signature)
        if func_name is None:
            return self.funcs[0]
        if func_name not in self._by_name:
            raise TflquantError(f"no function named {func_name!r}; functions: {', '.join(self._by_name)}")
        return self._by_name[func_name]

    def _plan(self, f: func.FuncOp) -> _Plan:
        name = f.sym_name.data
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = _cached_plan(f, self.stateful, self._subgraph)
        return plan

    def _subgraph(self, index: int) -> _Plan:
        """The plan of the module's function number `index` (TFLite subgraph index)."""
        if self.module is None or not 0 <= index < len(self.funcs):
            raise TflquantError(f"control flow refers to subgraph {index}, which the module does not have")
        return self._plan(self.funcs[index])

    def reset(self) -> None:
        """Forget the state stateful ops carried over (as LiteRT's reset_all_variables)."""
        for plan in self._plans.values():
            for st in plan.steps:
                if st.carry is not None:
                    st.carry.clear()

    def signatures(self) -> list[dict[str, Any]]:
        """The module's signature defs (`tfl.signatures`) as plain dictionaries."""
        sigs = self.module.attributes.get("tfl.signatures") if self.module is not None else None
        return [e for e in _attr_py(sigs) if isinstance(e, dict)] if sigs is not None else []

    def _signature(self, signature: str) -> dict[str, Any]:
        sigs = self.signatures()
        for entry in sigs:
            if entry.get("key") == signature:
                return entry
        keys = ", ".join(repr(e.get("key")) for e in sigs) or "none"
        raise TflquantError(f"the model has no signature {signature!r} (signatures: {keys})")

    def _signature_func(self, signature: str) -> func.FuncOp:
        return self.function(str(self._signature(signature).get("function", self.funcs[0].sym_name.data)))

    def run(
        self,
        inputs: Sequence[np.ndarray],
        observer: Observer | None = None,
        func_name: str | None = None,
        signature: str | None = None,
        results: bool = True,
    ) -> list[np.ndarray]:
        """Run N samples at once: inputs[i] has shape (N, *shape of argument i).

        With `signature`, inputs and outputs follow the signature's order instead.
        `results=False`: return nothing; with an observer that names its `observed` values,
        only the ops those values need run (see `_pruned`).
        """
        f = self.function(func_name, signature)
        plan = self._plan(f)
        if not results and (only := getattr(observer, "observed", None)) is not None:
            plan = _pruned(plan, only)
        if signature is None:
            outs = _execute(plan, inputs, observer)
            return outs if results else []
        sig = self._signature(signature)
        in_idx = [int(i) for i in sig.get("input_indices", range(len(inputs)))]
        if len(inputs) != len(in_idx):
            raise TflquantError(f"signature {signature!r} takes {len(in_idx)} inputs, got {len(inputs)}")
        ordered: list[Any] = [None] * len(plan.args)
        for pos, i in enumerate(in_idx):
            ordered[i] = inputs[pos]
        outs = _execute(plan, ordered, observer)
        return [outs[int(i)] for i in sig.get("output_indices", range(len(outs)))] if results else []


# ----------------------------------------------------------------------------------------
# planning
# ----------------------------------------------------------------------------------------

# A function's plan is kept on the func.func object for the next interpreter of the same,
# unchanged function (calibrate() builds an Interpreter per call; auto calibration and the
# mixed-precision search run the float model several times): attribute _PLANS, keyed by
# `stateful`, with the function's fingerprint (_fingerprint: every op, in order, with its
# operands, result types, properties and attributes, and the block's arguments and their
# types: all that planning reads of the IR). A change to any of them builds a new plan.
# Plans with state of their own (the carried state of STATEFUL ops) or that run other
# functions (WHILE / IF) are not kept, nor plans holding more than PLAN_CACHE_CONST_BYTES of
# constants: a kept plan keeps its dequantized constants and the results of ops computed from
# constants only (a float16 weight's DEQUANTIZE) alive as long as the module. Kernels come from
# fk.KERNELS when the plan is built (a kernel registered later reaches new functions only).
_PLANS = "_tflquant_plans"
PLAN_CACHE_CONST_BYTES = 16 << 20


def _fingerprint(f: func.FuncOp) -> tuple[Any, ...]:
    """What planning reads of `f`, compared by identity (then equality: equal attributes or
    types plan the same). Holding the objects, it keeps them alive: an id is never reused."""
    block = f.body.block
    parts: list[Any] = [tuple(block.args), tuple([a.type for a in block.args])]
    for op in block.ops:
        parts.append((op, tuple(op.operands), tuple([r.type for r in op.results]), tuple(op.properties.items()), tuple(op.attributes.items())))
    return tuple(parts)


def _cached_plan(f: func.FuncOp, stateful: bool, subgraph: Callable[[int], _Plan] | None) -> _Plan:
    """_build_plan(f, ...), or the plan an earlier interpreter built for `f` as it is now."""
    kept = f.__dict__.get(_PLANS)
    fp = None
    if kept is not None and (entry := kept.get(stateful)) is not None:
        fp = _fingerprint(f)
        if entry[0] == fp:
            return entry[1]
        kept.pop(stateful, None)  # (another thread may have dropped it already)
    plan = _build_plan(f, stateful, subgraph)
    if all(st.carry is None and not st.control for st in plan.steps) and _const_bytes(plan) <= PLAN_CACHE_CONST_BYTES:
        f.__dict__.setdefault(_PLANS, {})[stateful] = (fp if fp is not None else _fingerprint(f), plan)
    return plan


def _const_bytes(plan: _Plan) -> int:
    """What a kept plan holds: its constants and the results it computes from them once."""
    return sum(a.nbytes for a in plan.consts.values() if isinstance(a, np.ndarray)) + plan.folded_bytes



def _build_plan(f: func.FuncOp, stateful: bool = False, subgraph: Callable[[int], _Plan] | None = None) -> _Plan:
    slots: dict[int, int] = {}  # id(value) -> slot (an SSAValue hashes by identity in Python; id() in C)
    consts: dict[int, Any] = {}
    batched: set[int] = set()
    deq_consts: dict[int, int] = {}
    steps: list[_Step] = []
    last_use: dict[int, int] = {}

    def new_slot(v: SSAValue | None) -> int:
        i = len(slots) + len(extra)
        if v is not None:
            slots[id(v)] = i
        else:
            extra.append(i)
        return i

    extra: list[int] = []
    sample_elems = 0
    largest_elems = 0
    folded_bytes = 0
    folded = _ConstSlots(consts)  # slots whose value never changes between runs
    block = f.body.block
    arg_types = []
    args = []
    for a in block.args:
        s = new_slot(a)
        args.append(s)
        batched.add(s)
        assert isinstance(a.type, TensorType), f"argument {describe(a)} is not a tensor"
        arg_types.append(a.type)

    results: list[int] = []
    types = _TypeFacts()
    for op in block.ops:
        cls = type(op)  # (exact classes first: isinstance against xDSL's ABCs costs a cache walk)
        if cls is func.ReturnOp or (cls not in PLAIN_OP_CLASSES and isinstance(op, func.ReturnOp)):
            results = [slots[id(v)] for v in op.operands]
            for s in results:
                last_use[s] = len(steps) + 1  # never freed
            break
        if cls is tfl.ConstOp or (cls not in PLAIN_OP_CLASSES and isinstance(op, tfl.ConstOp)):
            consts[new_slot(op.result)] = op.numpy()
            continue
        if cls not in PLAIN_OP_CLASSES:
            if isinstance(op, tfl.NoValueOp):
                consts[new_slot(op.result)] = None
                continue
            if isinstance(op, tfl.VariableOp):
                consts[new_slot(op.result)] = op.initial_value()
                continue
            if isinstance(op, tfl.SparseConstOp):
                try:
                    consts[new_slot(op.result)] = _sparse_to_dense(op)
                except (KeyError, IndexError, ValueError, TypeError) as e:
                    raise TflquantError(f"{op_label(op)}: cannot densify sparse constant: {e}") from None
                continue

        key = tfl.op_type(op)
        factory = fk.KERNELS.get(key)
        opaque = cls is tfl.OpaqueOp or (cls not in PLAIN_OP_CLASSES and isinstance(op, tfl.OpaqueOp))
        if key in CONTROL_FLOW and opaque and op.custom_code is None and subgraph is not None:
            factory = lambda o, key=key: CONTROL_FLOW[key](o, subgraph)  # noqa: E731
        if factory is None or (opaque and op.custom_code is not None):
            what = "custom op" if opaque and op.custom_code is not None else "op"
            raise TflquantError(
                f"{what} {op_label(op)} has no reference kernel; the float reference interpreter "
                f"cannot run this model (supported: {len(fk.KERNELS)} ops, see tflquant.reference.float_kernels)"
            )
        try:
            kern = factory(op)
        except TflquantError as e:
            raise TflquantError(f"{op_label(op)}: {e}") from None
        except (KeyError, ValueError, TypeError, AssertionError, AttributeError) as e:
            raise TflquantError(f"{op_label(op)}: cannot build its reference kernel ({type(e).__name__}: {e})") from None

        operand_names = getattr(op, "OPERANDS", None) or fk.OPAQUE_OPERANDS.get(key, ())
        params = fk.PARAMS.get(key, frozenset())
        quant_aware = key in fk.QUANT_AWARE
        in_slots: list[int] = []
        modes: list[tuple[str, Any]] = []  # per operand: ('data'|'param', dequantize type or None)
        op_batched = False
        for i, v in enumerate(op.operands):
            s = slots[id(v)]
            name = operand_names[i] if i < len(operand_names) else (operand_names[-1] if operand_names else "")
            is_param = name in params and not name.startswith("*")
            q = None if quant_aware else types.quantized(v.type)
            if q is not None and s in consts and s not in batched:
                # dequantize a quantized constant once
                if s not in deq_consts:
                    ds = new_slot(None)
                    consts[ds] = fk.dequantize(consts[s], q, 0)
                    deq_consts[s] = ds
                s = deq_consts[s]
                q = None
            in_slots.append(s)
            modes.append(("param" if is_param else "data", q))
            if s in batched:
                op_batched = True
        out_q = [None if quant_aware else quantized_element(r.type) for r in op.results]  # (blockwise types are for weights, not results)
        res_batched = op_batched and key not in fk.UNBATCHED_RESULTS
        out_slots = [new_slot(r) for r in op.results]
        if res_batched:
            batched.update(out_slots)
        in_batched = [s in batched for s in in_slots]
        for s in in_slots:
            last_use[s] = len(steps)
        run = _wrap(op, kern, modes, in_batched, op_batched, key in fk.UNBATCHED_RESULTS, out_q, types)
        if all(s in folded for s in in_slots) and key not in CONTROL_FLOW:
            # only constants in (e.g. DEQUANTIZE of fp16 weights): compute on the first run, keep
            # (not a WHILE / IF: its subgraphs' values are observed on every run)
            run = _once(run)
            folded.update(out_slots)
            folded_bytes += sum(_result_bytes(r.type) for r in op.results)
        side = [op.operand(n) for n in fk.SIDE_VALUES.get(key, ()) if res_batched]  # type: ignore[attr-defined]
        carry = [] if stateful and key in fk.STATEFUL else None
        step = _Step(run, in_slots, out_slots, [], res_batched, list(op.results), [v for v in side if v is not None], carry)
        step.control = key in CONTROL_FLOW
        steps.append(step)
        if res_batched:
            for r in op.results:
                e = types.elems(r.type)
                sample_elems += e
                largest_elems = max(largest_elems, e)
    else:
        raise TflquantError(f"function @{f.sym_name.data} has no func.return")

    for s, i in last_use.items():
        if i < len(steps) and s not in consts and s not in args:
            steps[i].free.append(s)
    n = len(slots) + len(extra)
    res_b = [s in batched for s in results]
    return _Plan(f, n, args, arg_types, consts, steps, results, res_b, batched, sample_elems, largest_elems, folded_bytes)


def _pruned(plan: _Plan, only: Any) -> _Plan:
    """The plan cut to the steps whose results (or reported operands) have ids in `only`, and
    the steps they read from, transitively; no results. WHILE / IF steps (their subgraphs'
    values may be observed) and steps with state carried between runs are kept. The same
    step functions: results, observer calls and state as in the whole plan's run."""
    kept = plan.pruned
    if kept is not None and kept[0] == only:
        return kept[1]
    need: set[int] = set()
    steps: list[_Step] = []
    for st in reversed(plan.steps):  # back to front: a step is kept when a kept step reads it
        if st.control or st.carry is not None or any(s in need for s in st.outs) or any(id(v) in only for v in st.values) or any(id(v) in only for v in st.side):
            steps.append(st)
            need.update(st.ins)
    steps.reverse()
    last: dict[int, int] = {}
    for i, st in enumerate(steps):
        for s in st.outs:
            last[s] = i  # a result no kept step reads: freed once observed
        for s in st.ins:
            last[s] = i
    frees: list[list[int]] = [[] for _ in steps]
    for s, i in last.items():
        if s not in plan.consts and s not in plan.args:
            frees[i].append(s)
    out = [replace(st, free=f) for st, f in zip(steps, frees)]
    elems = [_static_elems(v.type) for st in out if st.batched for v in st.values]
    cut = replace(plan, steps=out, results=[], result_batched=[], sample_elems=sum(elems), largest_elems=max(elems, default=0), pruned=None)
    plan.pruned = (frozenset(only), cut)  # (a copy: the caller's collection may change)
    return cut


def _result_bytes(t: Any) -> int:
    """Bytes of a value of type `t` (8 a element when its element type has no numpy dtype;
    a dynamic dimension counts as PLAN_CACHE_CONST_BYTES, so such a plan is never kept)."""
    if not isinstance(t, TensorType):
        return 0
    shape = t.get_shape()
    if any(d < 0 for d in shape):
        return PLAN_CACHE_CONST_BYTES + 1
    try:
        size = np.dtype(numpy_dtype_of_element(t.element_type)).itemsize
    except TflquantError:
        size = 8
    return int(np.prod(shape, dtype=np.int64)) * size


# The generated classes of the TFLite builtin ops: none is an OpaqueOp, ConstOp, NoValueOp,
# VariableOp, SparseConstOp or func.ReturnOp (the special ones planning tells apart), so an
# exact-class lookup here spares the isinstance checks (slow against xDSL's ABCs). Other op
# classes (subclasses, quant ops) take the isinstance checks. calibrate reads it too.
PLAIN_OP_CLASSES: frozenset[type] = frozenset(tfl.BUILTIN_CLASSES.values())


_UNSET = object()


class _TypeFacts:
    """What planning asks of value types, once per type object (a function's values share
    their type objects): quantized element, float dtype, static element count."""

    def __init__(self) -> None:
        self.facts: dict[int, list[Any]] = {}
        self.keep: list[Any] = []  # the types keyed by id (alive while planning)

    def _of(self, t: Any) -> list[Any]:
        f = self.facts.get(id(t))
        if f is None:
            self.keep.append(t)
            if isinstance(t, TensorType):
                f = [quantized_element(t) or blockwise_element(t), _UNSET, _static_elems(t)]
            else:
                f = [None, None, 0]
            self.facts[id(t)] = f
        return f

    def quantized(self, t: Any) -> Any:
        return self._of(t)[0]

    def float_dtype(self, t: Any) -> Any:
        f = self._of(t)
        if f[1] is _UNSET:  # asked for only when planning needs it (a blockwise type has none)
            f[1] = fk.float_dtype(t)
        return f[1]

    def elems(self, t: Any) -> int:
        return self._of(t)[2]


def _static_elems(t: Any) -> int:
    if not isinstance(t, TensorType):
        return 0
    e = 1
    for d in t.get_shape():
        e *= max(int(d), 1)
    return e


def _wrap(
    op: Operation,
    kern: fk.Kernel,
    modes: list[tuple[str, Any]],
    in_batched: list[bool],
    op_batched: bool,
    unbatched_result: bool,
    out_q: list[Any],
    types: _TypeFacts | None = None,
) -> Callable[[list[Any]], list[Any]]:
    """Adapt a kernel to the plan: lift/dequantize operands, quantize/unlift results."""
    label = _Label(op)  # (formatted only for an error message)
    n_out = len(op.results)
    convs: list[Callable[[Any], Any] | None] = []
    for (mode, q), b in zip(modes, in_batched):
        if mode == "param":
            if b:
                convs.append(_param_from_batched(label, q))
            elif q is not None:
                convs.append(lambda a, q=q: fk.dequantize(a, q, 0))
            else:
                convs.append(None)
        else:
            if b:
                convs.append(None if q is None else (lambda a, q=q: fk.dequantize(a, q, 1)))
            elif q is not None:
                convs.append(lambda a, q=q: None if a is None else fk.dequantize(a, q, 0)[None])
            else:
                convs.append(lambda a: None if a is None else np.asarray(a)[None])
    any_conv = any(c is not None for c in convs)
    out_types = [r.type for r in op.results]
    facts = types or _TypeFacts()
    out_dt = [facts.float_dtype(t) for t in out_types]
    strip = not op_batched and not unbatched_result

    def fail(e: BaseException, vals: list[Any]) -> TflquantError:
        if isinstance(e, TflquantError):
            return TflquantError(f"{label}: {e}")
        if isinstance(e, MemoryError):
            return TflquantError(f"{label}: its result does not fit in memory: check the shapes in the model (or lower the batch size)")
        shapes = ", ".join("-" if v is None else str(getattr(v, "shape", "?")) for v in vals)
        return TflquantError(f"{label} failed on operands of shapes ({shapes}): {e}")

    def run(vals: list[Any], side: list[np.ndarray] | None = None, carry: list[Any] | None = None, observer: Observer | None = None) -> list[Any]:
        if any_conv:
            vals = [v if c is None or v is None else c(v) for c, v in zip(convs, vals)]
        kw: dict[str, Any] | None = None
        if side is not None or carry is not None or observer is not None:
            kw = {}
            if side is not None:
                kw["side"] = side
            if carry is not None:
                kw["carry"] = carry
            if observer is not None:
                kw["observer"] = observer
        try:
            r = kern(*vals, **kw) if kw else kern(*vals)
        except (TflquantError, MemoryError, ValueError, IndexError, TypeError, ArithmeticError) as e:
            raise fail(e, vals) from None
        return finish(r)

    def finish(r: Any) -> list[Any]:
        outs = list(r) if isinstance(r, (tuple, list)) else [r]
        if len(outs) != n_out:
            raise TflquantError(f"{label} produced {len(outs)} results, the op declares {n_out}")
        for i, o in enumerate(outs):
            if type(o) is not np.ndarray:
                o = np.asarray(o)
            q = out_q[i]
            if q is not None:
                o = fk.quantize(o, q, 0 if unbatched_result else 1)
            elif (dt := out_dt[i]) is not None and o.dtype is not dt and o.dtype != dt:
                o = o.astype(dt)
            outs[i] = o[0] if strip else o
        return outs

    if any_conv or n_out != 1 or out_q[0] is not None or strip:
        return run
    dt0 = out_dt[0]

    def run_one(vals: list[Any], side: list[np.ndarray] | None = None, carry: list[Any] | None = None, observer: Observer | None = None) -> list[Any]:
        """run() for the common op: one result, nothing to convert (same results)."""
        if side is not None or carry is not None or observer is not None:
            return run(vals, side, carry, observer)
        try:
            r = kern(*vals)
        except (TflquantError, MemoryError, ValueError, IndexError, TypeError, ArithmeticError) as e:
            raise fail(e, vals) from None
        if type(r) is np.ndarray and (dt0 is None or r.dtype is dt0 or r.dtype == dt0):
            return [r]
        return finish(r)

    return run_one


class _Label:
    """An op's label for error messages (op_label), formatted when first shown."""

    __slots__ = ("op", "text")

    def __init__(self, op: Operation):
        self.op, self.text = op, None

    def __str__(self) -> str:
        if self.text is None:
            self.text = op_label(self.op)
        return self.text

    __format__ = lambda self, spec: format(str(self), spec)  # noqa: E731


class _ConstSlots(set):
    """Slots holding constants, plus results computed only from constants."""

    def __init__(self, consts: dict[int, Any]):
        super().__init__()
        self.consts = consts

    def __contains__(self, s: object) -> bool:
        return s in self.consts or set.__contains__(self, s)


def _once(run: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    cache: list[Any] = []

    def cached(vals: list[Any], side: Any = None, carry: Any = None, observer: Any = None) -> list[Any]:
        if not cache:
            cache.append(run(vals))
        return cache[0]

    return cached


def _param_from_batched(label: object, q: Any) -> Callable[[np.ndarray], np.ndarray]:
    def conv(a: np.ndarray) -> np.ndarray:
        if a.shape[0] > 1 and not (a == a[:1]).all():
            raise TflquantError(f"{label}: a parameter operand (shape, axis, weights, ...) differs between samples")
        v = a[0]
        return fk.dequantize(v, q, 0) if q is not None else v

    return conv


# ----------------------------------------------------------------------------------------
# execution
# ----------------------------------------------------------------------------------------


def _check_input(i: int, x: Any, t: TensorType, f: func.FuncOp) -> np.ndarray:
    from tflquant.ir import value_name

    a = np.asarray(x)
    want = [max(int(d), -1) for d in t.get_shape()]
    name = value_name(f.body.block.args[i]) or f"#{i}"
    if a.ndim == len(want) and want and want[0] in (1, -1):
        a = a[:, None]  # samples given as rows of a batch-1 input: (N, 16, 16, 1) for [1,16,16,1]
    if a.ndim != len(want) + 1 or any(w >= 0 and w != g for w, g in zip(want, a.shape[1:])):
        shown = "x".join("?" if d < 0 else str(d) for d in want)
        raise TflquantError(
            f"input {i} ('{name}') of @{f.sym_name.data} must have shape (N, {', '.join('?' if d < 0 else str(d) for d in want)}) "
            f"(samples first, then the tensor<{shown}>), got {a.shape}"
        )
    dt = numpy_dtype_of_element(t.element_type).newbyteorder("=")
    if a.dtype != dt:
        if a.dtype.kind == "f" and dt.kind in "iu":
            raise TflquantError(f"input {i} ('{name}') must be {dt}, got float data {a.dtype}")
        a = a.astype(dt)
    return a


def _execute(plan: _Plan, inputs: Sequence[np.ndarray], observer: Observer | None) -> list[np.ndarray]:
    f = plan.func
    if len(inputs) != len(plan.args):
        raise TflquantError(f"@{f.sym_name.data} takes {len(plan.args)} inputs, got {len(inputs)}")
    vals: list[Any] = [None] * plan.n_slots
    for s, a in plan.consts.items():
        vals[s] = a
    n = None
    block_args = f.body.block.args
    only = getattr(observer, "observed", None)
    for i, (s, x, t) in enumerate(zip(plan.args, inputs, plan.arg_types)):
        a = _check_input(i, x, t, f)
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise TflquantError(f"all inputs must have the same number of samples: input 0 has {n}, input {i} has {a.shape[0]}")
        vals[s] = a
        if observer is not None and (only is None or id(block_args[i]) in only):
            observer(block_args[i], a)
    n = n or 1
    # samples in order: stateful ops carry state from one to the next; control flow observes
    # a subgraph's values once per iteration, which ranges could not take turns on
    sequential = any(st.carry is not None or st.control for st in plan.steps)
    if not sequential and n >= PARALLEL_MIN_SAMPLES and n * plan.sample_elems >= PARALLEL_MIN_ELEMS and fk.get_threads() > 1:
        return _execute_parts(plan, vals, n, observer, only)
    with np.errstate(all="ignore"):  # inf/nan propagate silently, as in LiteRT
        _run_steps(plan, vals, n, observer, only)
    res = []
    for s, b in zip(plan.results, plan.result_batched):
        o = vals[s]
        res.append(o if b else np.broadcast_to(o, (n,) + np.shape(o)).copy())
    return res


# Batches of at least this many samples and activation elements run as sample ranges in
# parallel threads (measured on 2 cores: small_unet calibration -18% against splitting only
# inside the heavy kernels; a small model like tiny_transformer loses to the thread handoff).
PARALLEL_MIN_SAMPLES = 16
PARALLEL_MIN_ELEMS = 4 << 20
PARALLEL_RANGE_SAMPLES = 8  # samples per range (with 64-sample batches: small_unet -8% against 16 per range, less memory)
# ... at most as many as keep a range's largest activation within this many bytes: large
# images run fewer samples per range, so elementwise ops and observers find more of their
# arrays in cache and both threads hold less. Measured (calibration CPU time, peak RSS, 100
# samples at 224x224): EfficientNet-B0 5 per range against 8: -20%, 650 -> 402 MB (2 per
# range: another -5%, 273 MB, but MobileNetV2 +5% and ResNet50 +6%: their matrix products
# want rows); MobileNetV2 5 per range: -5%, 347 -> 292 MB; ResNet50 keeps 8.
PARALLEL_RANGE_BYTES = 28 << 20


def range_samples(plan: _Plan, wanted: int | None = None) -> int:
    """Samples per parallel range for this plan (`wanted`, default PARALLEL_RANGE_SAMPLES,
    capped by PARALLEL_RANGE_BYTES)."""
    return max(1, min(wanted or PARALLEL_RANGE_SAMPLES, PARALLEL_RANGE_BYTES // max(1, 4 * plan.largest_elems)))


def _execute_parts(plan: _Plan, vals: list[Any], n: int, observer: Observer | None, only: Any = None) -> list[np.ndarray]:
    """Run the steps on sample ranges in parallel (float_kernels' threads; kernels inside do
    not split again). The observer sees each value range by range, in range order (so an
    observer that sums in floating point stays deterministic), never concurrently: a split
    observer's `reduce` runs in the range's own thread and its tokens are merged in range
    order once every range has run (no thread waits for another); a plain observer is
    called in range order as each range reaches the value."""
    import threading

    ranges = min(n, max(fk.get_threads(), n // range_samples(plan, getattr(observer, "range_samples", None))))
    bounds = [n * i // ranges for i in range(ranges + 1)]
    start_of = {b: i for i, b in enumerate(bounds[:-1])}
    outs: dict[int, list[Any]] = {}
    tokens: dict[int, list[tuple[SSAValue, Any]]] = {}  # range -> its reduce results, in step order
    cond = threading.Condition()
    progress: dict[SSAValue, int] = {}  # plain observer: value -> ranges that have observed it
    failed: list[BaseException] = []  # the first error of a range (others then stop)
    reduce, merge = getattr(observer, "reduce", None), getattr(observer, "merge", None)
    split = reduce is not None and merge is not None

    def part(s0: int, s1: int) -> None:
        idx = start_of[s0]
        mine_tokens = tokens[idx] = []

        def keep_token(v: SSAValue, a: np.ndarray) -> None:  # split observer: merged after the batch
            if failed:
                raise TflquantError("another sample range failed")
            mine_tokens.append((v, reduce(v, a)))  # type: ignore[misc]

        def in_order(v: SSAValue, a: np.ndarray) -> None:  # plain observer: ranges take turns per value
            with cond:
                while progress.get(v, 0) != idx and not failed:
                    cond.wait()
                if failed:
                    raise TflquantError("another sample range failed")
                try:
                    observer(v, a)  # type: ignore[misc]
                finally:
                    progress[v] = idx + 1
                    cond.notify_all()

        obs = None if observer is None else keep_token if split else in_order
        mine = list(vals)
        for s in plan.args:
            mine[s] = vals[s][s0:s1]
        try:
            with np.errstate(all="ignore"):
                _run_steps(plan, mine, s1 - s0, obs, only)
        except BaseException as e:
            with cond:
                if not failed:
                    failed.append(e)
                cond.notify_all()
            raise
        outs[s0] = [mine[s] for s in plan.results]

    try:
        fk.split_samples(n, 1 << 62, part, serial_parts=True, ranges=ranges)
    except BaseException:
        if failed:
            raise failed[0] from None
        raise
    for idx in sorted(tokens):
        for v, token in tokens[idx]:
            merge(v, token)  # type: ignore[misc]
    order = sorted(outs)
    res = []
    for i, (s, b) in enumerate(zip(plan.results, plan.result_batched)):
        if b:
            res.append(np.concatenate([outs[k][i] for k in order]))
        else:
            o = outs[order[0]][i]
            res.append(np.broadcast_to(o, (n,) + np.shape(o)).copy())
    return res


def _run_steps(plan: _Plan, vals: list[Any], n: int, observer: Observer | None, only: Any = None) -> None:
    """Run the plan's steps; `observer` sees their results (those whose ids are in `only`
    when it is given; a WHILE / IF passes the observer on to its subgraphs)."""
    for step in plan.steps:
        side: list[np.ndarray] | None = [] if observer is not None and step.side else None
        outs = step.run([vals[s] for s in step.ins], side, step.carry, observer if step.control else None)
        for s, o in zip(step.outs, outs):
            vals[s] = o
        if observer is not None:
            for v, o in zip(step.values, outs):
                if only is None or id(v) in only:
                    observer(v, o if step.batched else np.broadcast_to(o, (n,) + o.shape))
            for v, o in zip(step.side, side or ()):
                if only is None or id(v) in only:
                    observer(v, o)
        for s in step.free:
            vals[s] = None


# ----------------------------------------------------------------------------------------
# control flow: WHILE and IF run other functions of the module (TFLite subgraphs)
# ----------------------------------------------------------------------------------------

MAX_LOOP_ITERATIONS = 1 << 20


def _option_int(op: Operation, name: str) -> int:
    i = tfl.subgraph_index(op, name)
    if i is None:
        raise TflquantError(f"no option {name} (the subgraph to run)")
    return i


def _same_samples(vals: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """The operands with one sample axis of the same length (sample-independent ones broadcast)."""
    n = max((v.shape[0] for v in vals), default=1)
    return [np.broadcast_to(v, (n,) + v.shape[1:]) for v in vals], n


def _per_sample(run: Callable[[list[np.ndarray]], list[np.ndarray]], vals: list[np.ndarray], n: int) -> list[np.ndarray]:
    """`run` on each sample alone, results stacked: where a condition differs between samples."""
    outs = [run([v[k : k + 1] for v in vals]) for k in range(n)]
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]


def _condition(plan: _Plan, vals: list[np.ndarray], n: int, observer: Observer | None, label: str) -> np.ndarray:
    c = np.asarray(_execute(plan, vals, observer)[0]).reshape(n, -1)
    if c.shape[1] != 1:
        raise TflquantError(f"{label}: the condition must be one boolean per sample, got shape {c.shape[1:]}")
    return c[:, 0].astype(bool)


def _while(op: Operation, subgraph: Callable[[int], _Plan]) -> Callable[..., Any]:
    """WHILE: loop-carried values go through the body function while the cond function says
    so. Samples whose conditions disagree at some iteration finish the loop one by one."""
    label = op_label(op)
    ci, bi = _option_int(op, "cond_subgraph_index"), _option_int(op, "body_subgraph_index")

    def loop(vals: list[np.ndarray], observer: Observer | None) -> list[np.ndarray]:
        vals, n = _same_samples(vals)
        cond, body = subgraph(ci), subgraph(bi)
        for _ in range(MAX_LOOP_ITERATIONS):
            c = _condition(cond, vals, n, observer, label)
            if not c.any():
                return vals
            if not c.all():
                return _per_sample(lambda v: loop(v, observer), vals, n)
            vals = _execute(body, vals, observer)
        raise TflquantError(f"{label} did not finish after {MAX_LOOP_ITERATIONS} iterations")

    def run(*vals: np.ndarray, observer: Observer | None = None) -> tuple[np.ndarray, ...]:
        return tuple(loop(list(vals), observer))

    return run


def _if(op: Operation, subgraph: Callable[[int], _Plan]) -> Callable[..., Any]:
    """IF: the then or the else function on the other operands, by the first (per sample)."""
    label = op_label(op)
    ti, ei = _option_int(op, "then_subgraph_index"), _option_int(op, "else_subgraph_index")

    def branch(vals: list[np.ndarray], observer: Observer | None) -> list[np.ndarray]:
        vals, n = _same_samples(vals)
        c = np.asarray(vals[0]).reshape(n, -1)
        if c.shape[1] != 1:
            raise TflquantError(f"{label}: the condition must be one boolean per sample, got shape {c.shape[1:]}")
        c = c[:, 0].astype(bool)
        if c.all() or not c.any():
            return _execute(subgraph(ti if c[0] else ei), vals[1:], observer)
        return _per_sample(lambda v: branch(v, observer), vals, n)

    def run(*vals: np.ndarray, observer: Observer | None = None) -> tuple[np.ndarray, ...]:
        return tuple(branch(list(vals), observer))

    return run


CONTROL_FLOW: dict[str, Callable[[Operation, Callable[[int], _Plan]], Callable[..., Any]]] = {"WHILE": _while, "IF": _if}
