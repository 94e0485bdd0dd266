"""`quantize-control-flow`: the float values a WHILE carries around its loop, and those an IF
passes to and from its branches, become integer.

Runs after propagate-scales, before rewrite-integer. A value a WHILE carries is five
tensors: operand k of the WHILE, argument k of its cond and of its body function, result k
of the body and result k of the WHILE. LiteRT copies them into one another as bytes, so
quantized they must share one type. For each float32 value carried whose body result is
fake-quantized (or is the body's own argument, passed through) and whose initial value is
fake-quantized or a constant, the pass gives all five the activation parameters of the
union of the ranges their fake-quantized copies have (int8 asymmetric; int16 symmetric in
16x8, chosen by the copies' storage type): the WHILE gets a `quant.qcast` of its operand
(or an integer constant), the functions read their argument through a `quant.dcast` and
return a `quant.qcast` of their result, and the WHILE's readers get a `quant.dcast`.
rewrite-integer then folds these into the neighbouring integer ops (or requantizes where
parameters differ). Values without a range stay float, as do integer values (counters).
An IF passes operand k+1 as argument k of both branches (they take the operand's type) and
returns result j from either branch (their common type, or the union of their ranges). A
function that several ops call (or that is both branches of one IF) cannot take one type
per caller: those ops keep float values at their boundaries.
Without this pass a WHILE or IF keeps float operands and its subgraphs quantize and
dequantize at their boundaries (on every iteration).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, erase_if_unused, kept_float, value_name
from tflquant.passes._quant_ops import ACTIVATION_TYPES, bits_of, float_const, is_f32
from tflquant.passes._fake_quant import activation_params, dcast_source, quantize_const_values


_SUBGRAPHS = tfl.CONTROL_FLOW_SUBGRAPHS


def _subgraph(funcs: list[func.FuncOp], op: Operation, option: str) -> func.FuncOp:
    i = tfl.subgraph_index(op, option)
    if i is None or not 0 <= i < len(funcs) or not funcs[i].body.blocks:
        raise TflquantError(f"quantize-control-flow: WHILE '{value_name(op.results[0]) or '?'}' names subgraph {i}, which the module does not have")
    return funcs[i]


def _return(f: func.FuncOp) -> func.ReturnOp:
    ret = f.body.blocks[0].last_op
    if not isinstance(ret, func.ReturnOp):
        raise TflquantError(f"quantize-control-flow: function @{f.sym_name.data} does not end in func.return")
    return ret


@dataclass(frozen=True)
class QuantizeControlFlow(ModulePass):
    """Every float value a WHILE carries, or an IF passes, whose copies have ranges is one
    quantized type in the op and in its subgraphs' arguments and results; the functions
    convert it with qcast/dcast at their boundaries."""

    name = "quantize-control-flow"

    activations: str = "int8"  # the type of constants carried without any other range

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATION_TYPES:
            raise TflquantError(f"quantize-control-flow: activations must be int8 or int16, got {self.activations!r}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        funcs = [o for o in op.ops if isinstance(o, func.FuncOp)]
        controls = [o for o in op.walk() if isinstance(o, tfl.OpaqueOp) and tfl.op_type(o) in _SUBGRAPHS]
        # a function called by several ops (or twice by one IF) would need one type for all
        # of them: those ops keep float (their subgraphs still quantize inside)
        calls = Counter(id(_subgraph(funcs, c, n)) for c in controls for n in _SUBGRAPHS[tfl.op_type(c)])
        for c in controls:
            if kept_float(c) or any(calls[id(_subgraph(funcs, c, n))] > 1 for n in _SUBGRAPHS[tfl.op_type(c)]):
                continue
            if tfl.op_type(c) == "IF":
                self._branch(c, _subgraph(funcs, c, "then_subgraph_index"), _subgraph(funcs, c, "else_subgraph_index"))
            else:
                self._loop(c, _subgraph(funcs, c, "cond_subgraph_index"), _subgraph(funcs, c, "body_subgraph_index"))

    @property
    def bits(self) -> int:
        return ACTIVATION_TYPES[self.activations]

    def _loop(self, w: Operation, cond: func.FuncOp, body: func.FuncOp) -> None:
        changed = False
        for k in range(len(w.operands)):
            qt = self._carried_type(w, cond, body, k)
            if qt is not None:
                self._quantize(w, cond, body, k, qt)
                changed = True
        if changed:
            _update_types(cond, body)

    def _branch(self, c: Operation, then: func.FuncOp, other: func.FuncOp) -> None:
        """IF: operand k+1 is argument k of both branches (its own type); result j is result j
        of both branches (their common type, or the union of their ranges)."""
        branches = (then, other)
        changed = False
        for k in range(1, len(c.operands)):
            o, args = c.operands[k], [f.body.blocks[0].args[k - 1] for f in branches]
            if not all(is_f32(v.type) for v in (o, *args)) or (init := _initial(o)) is None:
                continue
            qt = init if isinstance(init, UniformQuantizedType) else self._const_type(init, args)
            self._operand(c, k, qt)
            for a in args:
                _retype(a, qt, InsertPoint.at_start(a.block))  # type: ignore[arg-type]
            changed = True
        for j, r in enumerate(c.results):
            outs = [_return(f).operands[j] for f in branches]
            if not all(is_f32(v.type) for v in (r, *outs)):
                continue
            types = [quant.quantized_element(d.input.type) if (d := dcast_source(v)) is not None else None for v in outs]
            if any(t is None or t.per_axis for t in types) or len({bits_of(t) for t in types}) != 1:  # type: ignore[union-attr]
                continue
            if types[0] == types[1]:
                qt = types[0]
            else:
                ranges = [t.real_range() for t in types]  # type: ignore[union-attr]
                qt = activation_params(min(lo for lo, _ in ranges), max(hi for _, hi in ranges), bits_of(types[0]))  # type: ignore[arg-type]
            assert qt is not None
            for f in branches:
                ret = _return(f)
                q = quant.QuantizeCastOp(ret.operands[j], qt)
                Rewriter.insert_op(q, InsertPoint.before(ret))
                ret.operands[j] = q.result
            _retype(r, qt, InsertPoint.after(c))
            changed = True
        if changed:
            _update_types(*branches)

    def _const_type(self, r: tuple[float, float], args: list) -> UniformQuantizedType:
        """A constant's type: with the ranges the arguments it becomes were calibrated to,
        in their storage type, else the mode's activation type over the constant's values."""
        types = [t for a in args for q in a.uses if isinstance(q.operation, quant.QuantizeCastOp)
                 if (t := quant.quantized_element(q.operation.result.type)) is not None and not t.per_axis]
        bits = bits_of(types[0]) if types else self.bits
        ranges = [r] + [t.real_range() for t in types if bits_of(t) == bits]
        return activation_params(min(lo for lo, _ in ranges), max(hi for _, hi in ranges), bits)

    def _operand(self, op: Operation, k: int, qt: UniformQuantizedType) -> None:
        """Operand k of a WHILE / IF becomes quantized: an integer constant or a qcast."""
        o = op.operands[k]
        assert isinstance(o.type, TensorType)
        if (c := float_const(o)) is not None:
            new: Operation = tfl.ConstOp(dense_from_numpy(quantize_const_values(c.numpy(), qt)), with_element(o.type, qt), name=value_name(o))
        else:
            new = quant.QuantizeCastOp(o, qt)
        Rewriter.insert_op(new, InsertPoint.before(op))
        op.operands[k] = new.results[0]
        if c is not None:
            erase_if_unused(c)

    def _carried_type(self, w: Operation, cond: func.FuncOp, body: func.FuncOp, k: int) -> UniformQuantizedType | None:
        o, r = w.operands[k], w.results[k]
        ca, ba = cond.body.blocks[0].args[k], body.body.blocks[0].args[k]
        br = _return(body).operands[k]
        if not all(is_f32(v.type) for v in (o, r, ca, ba, br)):
            return None
        init = _initial(o)
        if init is None:
            return None
        if br is ba:  # passed through unchanged: the initial value's type
            return init if isinstance(init, UniformQuantizedType) else self._const_type(init, [ca, ba])
        d = dcast_source(br)
        result = quant.quantized_element(d.input.type) if d is not None else None
        if result is None or result.per_axis:
            return None  # a float result without a range
        # after the first iteration every carried value is a body result: its type, widened
        # only if the initial value lies outside it
        lo, hi = init.real_range() if isinstance(init, UniformQuantizedType) else init
        rlo, rhi = result.real_range()
        if isinstance(init, UniformQuantizedType) and bits_of(init) != bits_of(result):
            return None
        tol = result.scale / 2
        if lo >= rlo - tol and hi <= rhi + tol:
            return result
        return activation_params(min(lo, rlo), max(hi, rhi), bits_of(result))

    def _quantize(self, w: Operation, cond: func.FuncOp, body: func.FuncOp, k: int, qt: UniformQuantizedType) -> None:
        self._operand(w, k, qt)
        _retype(w.results[k], qt, InsertPoint.after(w))
        for f in (cond, body):
            block = f.body.blocks[0]
            _retype(block.args[k], qt, InsertPoint.at_start(block))
        ret = _return(body)
        q = quant.QuantizeCastOp(ret.operands[k], qt)
        Rewriter.insert_op(q, InsertPoint.before(ret))
        ret.operands[k] = q.result


def _retype(v: SSAValue, qt: UniformQuantizedType, where: InsertPoint) -> None:
    """v becomes quantized; what read it reads a dcast of it."""
    assert isinstance(v.type, TensorType)
    float_type = v.type
    new_v = Rewriter.replace_value_with_new_type(v, with_element(float_type, qt))
    if not new_v.uses:
        return
    d = quant.DequantizeCastOp(new_v)
    Rewriter.insert_op(d, where)
    new_v.replace_uses_with_if(d.result, lambda use: use.operation is not d)


def _initial(o: SSAValue) -> UniformQuantizedType | tuple[float, float] | None:
    """The fake-quantized type of a WHILE operand, or a float constant's range."""
    if (d := dcast_source(o)) is not None:
        t = quant.quantized_element(d.input.type)
        return t if t is not None and not t.per_axis else None
    if (c := float_const(o)) is not None:
        values = c.numpy()
        return (float(np.min(values)), float(np.max(values))) if values.size else (0.0, 0.0)
    return None




def _update_types(*funcs: func.FuncOp) -> None:
    for f in funcs:
        ret = _return(f)
        f.function_type = FunctionType.from_lists([a.type for a in f.body.blocks[0].args], [v.type for v in ret.operands])
