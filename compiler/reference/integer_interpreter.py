"""Simulates a quantized `tfl` module the way LiteRT runs it: integer kernels, bit for bit.

    from tflquant.reference.integer_interpreter import IntegerInterpreter
    interp = IntegerInterpreter(module)
    (y,) = interp.run([x_int8])          # x: (N, *input shape), storage integers
    interp.float_ops                     # ops it had to simulate in float (see below)

Every op whose operands or results are quantized and that has a kernel in
`integer_kernels.KERNELS` runs with TFLite's fixed-point arithmetic. Hybrid ops of
dynamic-range models (float input, int8 / int4 / blockwise weights) run the float kernel on
their input quantized per row or batch as LiteRT's hybrid kernels do and on the dequantized
weights (integer_kernels.hybrid_input): LiteRT's exact integer sums, scaled in float, up to
float rounding. Float ops (and
quantized ops without an integer kernel) run with the float reference kernels, their
quantized operands dequantized and quantized results re-quantized; they are listed in
`float_ops` so a test can tell exact from approximate simulation.

Batching follows the float interpreter: every input has a leading sample axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, NoneType, TensorType
from xdsl.ir import Operation, SSAValue

from tflquant import quant_math as qm
from tflquant.dialects import tfl
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType, blockwise_element, quantized_element
from tflquant.errors import TflquantError
from tflquant.ir import numpy_dtype_of_element
from tflquant.reference import float_kernels as fk
from tflquant.reference import integer_kernels as ik

Observer = Callable[[SSAValue, np.ndarray], None]


def integer_params(op: Operation) -> frozenset[str]:
    """Operands the integer kernel takes without a sample axis, besides float_kernels.PARAMS
    (the op's tfl.KernelParams `integer`)."""
    p = type(op).get_trait(tfl.KernelParams) if isinstance(op, tfl.TflOp) else None
    return frozenset(p.integer) if p is not None else frozenset()


def _label(op: Operation) -> str:
    names = tfl.tensor_names(op)
    kind = op.op_name if isinstance(op, tfl.OpaqueOp) else op.name
    return f"{kind} '{names[0]}'" if names else kind




def _dequant(x: np.ndarray, q: UniformQuantizedType | BlockwiseQuantizedType, batched: bool) -> np.ndarray:
    if isinstance(q, BlockwiseQuantizedType):
        return q.dequantize(x)
    if not q.per_axis:
        return qm.dequantize(x, q)
    s, z = qm.broadcast_params(q, x.ndim - (1 if batched else 0))
    return (s.astype(np.float64) * (x.astype(np.int64) - z)).astype(np.float32)


def _quant(x: np.ndarray, q: UniformQuantizedType, batched: bool) -> np.ndarray:
    if not q.per_axis:
        return qm.quantize(x, q)
    s, z = qm.broadcast_params(q, x.ndim - (1 if batched else 0))
    r = qm.round_half_away(np.asarray(x, np.float32) / s)
    return np.clip(r + z, q.qmin, q.qmax).astype(q.numpy_dtype())


class IntegerInterpreter:
    """Runs `@main` (or a given function) of a quantized module with integer kernels."""

    def __init__(self, module_or_func: ModuleOp | func.FuncOp, strict: bool = False):
        if isinstance(module_or_func, ModuleOp):
            funcs = [o for o in module_or_func.ops if isinstance(o, func.FuncOp)]
            if not funcs:
                raise TflquantError("module has no func.func to run")
            f = next((g for g in funcs if g.sym_name.data == "main"), funcs[0])
        else:
            f = module_or_func
            funcs = [g for g in (f.parent_op().ops if isinstance(f.parent_op(), ModuleOp) else [f]) if isinstance(g, func.FuncOp)]  # type: ignore[union-attr]
        self.func = f
        self.funcs = funcs  # the module's functions: TFLite subgraphs, by index
        self._subgraphs: dict[int, IntegerInterpreter] = {}
        self._observer: Observer | None = None
        self.strict = strict
        self.float_ops: list[str] = []
        self._steps: list[tuple[Operation, Callable[..., Any], bool]] = []
        self._compile()

    # ---------------------------------------------------------------------------------
    def _compile(self) -> None:
        for op in self.func.body.block.ops:
            if isinstance(op, (func.ReturnOp, tfl.ConstOp, tfl.NoValueOp, tfl.VariableOp)):
                continue
            key = tfl.op_type(op)
            if key in ("WHILE", "IF") and isinstance(op, tfl.OpaqueOp):
                self._steps.append((op, self._control(op, key), True))
                continue
            k, integer = op_kernel(op)
            if not integer and any(quantized_element(v.type) or blockwise_element(v.type) for v in (*op.operands, *op.results)):
                if self.strict:
                    raise TflquantError(f"{_label(op)} has no integer kernel (strict mode)")
                self.float_ops.append(_label(op))
            self._steps.append((op, k, integer))

    # ---------------------------------------------------------------------------------
    def _subgraph(self, op: Operation, option: str) -> IntegerInterpreter:
        i = tfl.subgraph_index(op, option)
        if i is None or not 0 <= i < len(self.funcs):
            raise TflquantError(f"{_label(op)} names subgraph {i}, which the module does not have")
        if i not in self._subgraphs:
            self._subgraphs[i] = IntegerInterpreter(self.funcs[i], self.strict)
            self.float_ops += self._subgraphs[i].float_ops
        return self._subgraphs[i]

    def _control(self, op: Operation, key: str) -> Callable[..., Any]:
        """WHILE / IF on the module's other functions (as the float interpreter runs them,
        with integer kernels inside); samples whose conditions differ run one by one."""

        def per_sample(run: Callable[[list[np.ndarray]], list[np.ndarray]], vals: list[np.ndarray], n: int) -> list[np.ndarray]:
            outs = [run([v[k : k + 1] for v in vals]) for k in range(n)]
            return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]

        def flags(c: np.ndarray, n: int) -> np.ndarray:
            return np.asarray(c).reshape(n, -1)[:, 0].astype(bool)

        def loop(vals: list[np.ndarray]) -> list[np.ndarray]:
            n = max(v.shape[0] for v in vals)
            vals = [np.broadcast_to(v, (n,) + v.shape[1:]) for v in vals]
            cond, body = self._subgraph(op, "cond_subgraph_index"), self._subgraph(op, "body_subgraph_index")
            for _ in range(1 << 20):
                c = flags(cond.run(vals, self._observer)[0], n)
                if not c.any():
                    return vals
                if not c.all():
                    return per_sample(loop, vals, n)
                vals = body.run(vals, self._observer)
            raise TflquantError(f"{_label(op)} did not finish after {1 << 20} iterations")

        def branch(vals: list[np.ndarray]) -> list[np.ndarray]:
            n = max(v.shape[0] for v in vals)
            vals = [np.broadcast_to(v, (n,) + v.shape[1:]) for v in vals]
            c = flags(vals[0], n)
            if c.all() or not c.any():
                return self._subgraph(op, "then_subgraph_index" if c[0] else "else_subgraph_index").run(vals[1:], self._observer)
            return per_sample(branch, vals, n)

        body_fn = loop if key == "WHILE" else branch
        return lambda *vals: tuple(body_fn(list(vals)))

    def run(self, inputs: Sequence[np.ndarray], observer: Observer | None = None) -> list[np.ndarray]:
        """Run N samples: inputs[i] has shape (N, *shape of argument i) (storage integers for
        quantized inputs). The observer sees every op result, in subgraphs too (once per
        iteration of a loop)."""
        self._observer = observer
        block = self.func.body.block
        if len(inputs) != len(block.args):
            raise TflquantError(f"@{self.func.sym_name.data} takes {len(block.args)} inputs, got {len(inputs)}")
        vals: dict[SSAValue, Any] = {}
        batched: dict[SSAValue, bool] = {}
        n = None
        for a, x in zip(block.args, inputs):
            t = a.type
            assert isinstance(t, TensorType)
            arr = np.asarray(x)
            dims = [max(int(d), -1) for d in t.get_shape()]  # dynamic dims are negative
            if arr.ndim == len(dims) and dims and dims[0] in (1, -1):
                arr = arr[:, None]  # samples as rows of a batch-1 input: (N, 16, 16, 1) for [1,16,16,1]
            if arr.ndim != len(dims) + 1 or any(w >= 0 and w != g for w, g in zip(dims, arr.shape[1:])):
                shown = "x".join("?" if d < 0 else str(d) for d in dims)
                raise TflquantError(f"input {a.index} must have shape (N, {shown.replace('x', ', ')}) (samples first), got {arr.shape}")
            dt = numpy_dtype_of_element(t.element_type).newbyteorder("=")
            if arr.dtype != dt:
                if arr.dtype.kind == "f" and dt.kind in "iu":
                    raise TflquantError(f"input {a.index} is {t}: give its storage integers, not floats")
                arr = arr.astype(dt)
            vals[a] = arr
            batched[a] = True
            n = arr.shape[0] if n is None else n
            if observer is not None:
                observer(a, arr)
        for op in block.ops:
            if isinstance(op, tfl.ConstOp):
                vals[op.result] = op.numpy()
                batched[op.result] = False
        for op in block.ops:
            if isinstance(op, tfl.NoValueOp):
                vals[op.result] = None
                batched[op.result] = False
            elif isinstance(op, tfl.VariableOp):
                vals[op.result] = op.initial_value()
                batched[op.result] = False
        for op, k, integer in self._steps:
            outs, ob = self._call(op, k, integer, vals, batched)
            for r, o in zip(op.results, outs):
                vals[r] = o
                batched[r] = ob
                if observer is not None:
                    observer(r, o if ob else np.broadcast_to(o, (n or 1,) + np.shape(o)))
        ret = block.last_op
        assert isinstance(ret, func.ReturnOp)
        res = []
        for v in ret.operands:
            o = vals[v]
            res.append(o if batched[v] else np.broadcast_to(o, (n or 1,) + np.shape(o)).copy())
        return res

    def _call(self, op: Operation, k: Callable[..., Any], integer: bool, vals: dict, batched: dict) -> tuple[list[Any], bool]:
        return call_op(op, k, integer, vals, batched)


def op_kernel(op: Operation) -> tuple[Callable[..., Any], bool]:
    """(kernel, integer) for one op: its integer kernel, or the float kernel that simulates it."""
    key = tfl.op_type(op)
    hybrid = ik.hybrid_input(op)
    if hybrid is not None and key in fk.KERNELS:  # float input quantized as the hybrid kernel does
        k = fk.KERNELS[key](op)
        return (lambda x, *rest: k(hybrid(x), *rest)), False
    if key in ik.KERNELS and any(quantized_element(v.type) is not None for v in (*op.operands, *op.results)):
        try:
            return ik.KERNELS[key](op), True
        except TflquantError as e:
            raise TflquantError(f"{_label(op)}: {e}") from None
        except NotImplementedError:
            pass  # this variant (e.g. int16) has no integer kernel: float below
    factory = fk.KERNELS.get(key)
    if factory is None:
        raise TflquantError(f"{_label(op)} has no reference kernel")
    return factory(op), False


def call_op(
    op: Operation,
    k: Callable[..., Any],
    integer: bool,
    vals: dict,
    batched: dict,
    float_operands: frozenset[SSAValue] | set[SSAValue] = frozenset(),
    quantize_results: bool = True,
) -> tuple[list[Any], bool]:
    """Run one op on `vals` (operand -> array, storage integers for quantized values) as
    IntegerInterpreter.run does; `batched[v]`: the array has the sample axis. Returns the
    results and whether they are batched. A float kernel (integer=False) can also take real
    values for quantized operands (`float_operands`) and return real results
    (quantize_results=False): the op as it would compute kept float."""
    key = tfl.op_type(op)
    params = fk.PARAMS.get(key, frozenset())
    if integer:
        params = params | integer_params(op)
    names = getattr(op, "OPERANDS", ())
    any_b = any(batched[v] for v in op.operands)
    args = []
    for i, v in enumerate(op.operands):
        x = vals[v]
        name = names[i] if i < len(names) else (names[-1] if names else "")
        is_param = name in params and not name.startswith("*")
        b = batched[v]
        q = None if isinstance(v.type, NoneType) else (quantized_element(v.type) or blockwise_element(v.type))
        if not integer and q is not None and x is not None and key not in fk.QUANT_AWARE and v not in float_operands:
            x = _dequant(x, q, b)
        if x is not None:
            if is_param and b:
                x = x[0]
            elif not is_param and not b:
                x = np.asarray(x)[None]
        args.append(x)
    try:
        r = k(*args)
    except TflquantError as e:
        raise TflquantError(f"{_label(op)}: {e}") from None
    except MemoryError:
        raise TflquantError(f"{_label(op)}: its result does not fit in memory: check the shapes in the model (or use fewer samples)") from None
    except (ValueError, IndexError, TypeError, ArithmeticError) as e:
        shapes = ", ".join("-" if a is None else str(np.shape(a)) for a in args)
        raise TflquantError(f"{_label(op)} failed on operands of shapes ({shapes}): {e}") from None
    outs = list(r) if isinstance(r, (tuple, list)) else [r]
    unbatched_result = key in fk.UNBATCHED_RESULTS
    res = []
    for o, rv in zip(outs, op.results):
        o = np.asarray(o)
        q = quantized_element(rv.type)
        if not integer and q is not None and key not in fk.QUANT_AWARE:
            if quantize_results:
                o = _quant(o, q, not unbatched_result)
        elif not integer and isinstance(rv.type, TensorType) and q is None:
            dt = fk.float_dtype(rv.type)
            if dt is not None and o.dtype != dt:
                o = o.astype(dt)
        if not any_b and not unbatched_result:
            o = o[0]
        res.append(o)
    return res, any_b and not unbatched_result
