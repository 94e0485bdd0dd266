"""propagate-scales: make the fake-quant parameters satisfy every op's kernel constraints.

Afterwards, for every op with an integer kernel whose inputs and outputs are fake-quantized
(`dcast` in, `qcast` out):
- fixed-range ops have their fixed output parameters: SOFTMAX and LOGISTIC (1/256, -128),
  TANH (1/128, 0), LOG_SOFTMAX (16/256, 127), L2_NORMALIZATION (1/128, 0); int16:
  SOFTMAX, LOGISTIC and TANH (1/32768, 0);
- same-scale ops have the same parameters on the bound inputs and every output. Ops with one
  such input (RESHAPE, pools, PAD, TRANSPOSE, SLICE, GATHER, SPLIT, RESIZE_*, REDUCE_MAX, ...)
  give their outputs the input's parameters (a PADV2 pad value is requantized to them).
  Ops with several (CONCATENATION, PACK, MAXIMUM, MINIMUM, SELECT) keep the output's
  calibrated parameters and bring each input to them: a constant is requantized, a value only
  this op reads gets the parameters at its producer (through a chain of same-scale ops),
  anything else goes through a requantize (`qcast(dcast(x))`, a QUANTIZE int->int later).
Ops are visited in program order, so a chain of same-scale ops shares one parameter set.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.passes._quant_ops import (
    bits_of,
    fixed_params,
    float_const,
    has_kernel,
    op_info,
    same_inputs,
)


def qcast_users(v: SSAValue) -> list[quant.QuantizeCastOp]:
    return [u.operation for u in v.uses if isinstance(u.operation, quant.QuantizeCastOp)]


def dcast_source(v: SSAValue) -> quant.DequantizeCastOp | None:
    return v.owner if isinstance(v.owner, quant.DequantizeCastOp) else None


def input_qtype(v: SSAValue) -> UniformQuantizedType | None:
    d = dcast_source(v)
    return quant.quantized_element(d.input.type) if d is not None else None


def retype_qcast(q: quant.QuantizeCastOp, qtype: UniformQuantizedType) -> None:
    t = q.result.type
    assert isinstance(t, TensorType)
    if t.element_type != qtype:
        Rewriter.replace_value_with_new_type(q.result, with_element(t, qtype))


def op_bits(o: Operation) -> int | None:
    """Activation bits of a fake-quantized op: from its output qcasts or input dcasts."""
    for r in o.results:
        for q in qcast_users(r):
            if (t := quant.quantized_element(q.result.type)) is not None:
                return bits_of(t)
    for v in o.operands:
        if (t := input_qtype(v)) is not None and not t.per_axis:
            return bits_of(t)
    return None


def make_fixed(bits: int, scale: float, zp: int) -> UniformQuantizedType:
    from xdsl.dialects.builtin import IntegerType

    return UniformQuantizedType.make(IntegerType(bits), scale, zp)


def _is_forward(o: Operation) -> bool:
    info = op_info(o)
    return info is not None and len(info.same) == 1 and info.same[0] >= 0 or (o.name == "tfl.padv2")


@dataclass(frozen=True)
class PropagateScales(ModulePass):
    """Fixed-range and same-scale constraints hold on the fake-quant parameters of every
    integer-capable op; conflicts are resolved by requantizing (see module docstring)."""

    name = "propagate-scales"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            for o in list(f.walk()):
                self._visit(o)

    def _visit(self, o: Operation) -> None:
        info = op_info(o)
        if info is None:
            return
        bits = op_bits(o)
        if bits is None or not has_kernel(o, bits):
            return
        if (fp := fixed_params(info, bits)) is not None:
            fixed = make_fixed(bits, *fp)
            for r in o.results:
                for q in qcast_users(r):
                    retype_qcast(q, fixed)
            return
        bound = same_inputs(o, info)
        if not bound:
            return
        if _is_forward(o):
            self._forward(o, bound)
        else:
            self._output_defines(o, bound)

    def _forward(self, o: Operation, bound: list[int]) -> None:
        src = input_qtype(o.operands[bound[0]])
        if src is None or src.per_axis:
            return
        for r in o.results:
            for q in qcast_users(r):
                retype_qcast(q, src)
        for i in bound[1:]:
            self._bring_to(o, i, src)

    def _output_defines(self, o: Operation, bound: list[int]) -> None:
        target = None
        for r in o.results:
            for q in qcast_users(r):
                target = quant.quantized_element(q.result.type)
        if target is None:
            return
        for i in bound:
            self._bring_to(o, i, target)

    # -------------------------------------------------------------------------------
    def _bring_to(self, o: Operation, i: int, target: UniformQuantizedType) -> None:
        """Make input i of o carry `target`: retype at the source, or requantize."""
        v = o.operands[i]
        d = dcast_source(v)
        if d is None:
            return
        if quant.quantized_element(d.input.type) == target:
            return
        chain = self._retypable_chain(v, o)
        if chain is not None:
            for q in chain:
                retype_qcast(q, target)
            return
        # requantize: qcast(dcast(x)) to the target, read by this op only
        rq = quant.QuantizeCastOp(v, target)
        rd = quant.DequantizeCastOp(rq.result)
        block = o.parent_block()
        assert block is not None
        block.insert_ops_before([rq, rd], o)
        o.operands[i] = rd.result

    def _retypable_chain(self, v: SSAValue, reader: Operation) -> list[quant.QuantizeCastOp] | None:
        """The qcasts to retype so that v (a dcast read only by `reader`) gets new parameters
        without touching any other reader; None when a requantize is needed instead."""
        chain: list[quant.QuantizeCastOp] = []
        while True:
            d = dcast_source(v)
            if d is None or not v.has_one_use() or next(iter(v.uses)).operation is not reader:
                return None
            q = d.input.owner
            if not isinstance(q, quant.QuantizeCastOp) or not q.result.has_one_use():
                return None
            chain.append(q)
            x = q.input
            if float_const(x) is not None or not isinstance(x.owner, Operation):
                return chain  # a constant or a function argument takes any parameters
            producer = x.owner
            if isinstance(producer, quant.DequantizeCastOp | tfl.ConstOp):
                return None
            if not x.has_one_use():
                return None
            info = op_info(producer)
            bits = op_bits(producer)
            if info is None or bits is None or not has_kernel(producer, bits):
                return chain  # a float op: its output is quantized by this qcast alone
            if fixed_params(info, bits) is not None:
                return None
            if not info.same:
                return chain  # free output parameters
            if not _is_forward(producer) or len(producer.results) != 1:
                return None
            bound = same_inputs(producer, info)
            if len(bound) != 1:
                return None
            v, reader = producer.operands[bound[0]], producer
