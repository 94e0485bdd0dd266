"""propagate-scales: make the fake-quant parameters satisfy every op's kernel constraints.

Afterwards, for every op with an integer kernel whose inputs and outputs are fake-quantized
(`dcast` in, `qcast` out):
- fixed-range ops have their fixed output parameters: SOFTMAX and LOGISTIC (1/256, -128),
  TANH (1/128, 0), LOG_SOFTMAX (16/256, 127), L2_NORMALIZATION (1/128, 0); int16:
  SOFTMAX, LOGISTIC and TANH (1/32768, 0);
- same-scale ops (RESHAPE, pools, PAD/PADV2, TRANSPOSE, SLICE, GATHER, SPLIT, RESIZE_*,
  REDUCE_MAX, CONCATENATION, PACK, MAXIMUM, MINIMUM, SELECT, ...) have one parameter set on
  their bound inputs and every output. The values tied together this way form a group
  (union-find over qcasts); a group gets the parameters of the union of its members' ranges
  (TF's converter gives e.g. a concatenation's producers its output range the same way), or
  the fixed parameters when a fixed-range output is in it. The range of a value read only
  by a slice with constant bounds (STRIDED_SLICE, SLICE, GATHER with constant indices) does
  not count: what the slice drops never reaches the model, so the group takes the range the
  slice's output was calibrated to (the dropped values saturate); the same holds for a
  constant table read by GATHER / EMBEDDING_LOOKUP (rows calibration never looked up
  saturate to the range of those it did). A multi-input op never lets a
  fixed-range input impose its range on the others: that input is requantized instead
  (`qcast(dcast(x))`, a QUANTIZE int->int after rewrite-integer), as is any input whose
  group's fixed parameters conflict;
- ADD/SUB outputs have a scale of at least 1.01 * 2 * max(input scales) / 2^shift (shift 20
  for int8, 15 for int16), so the kernel's output multiplier stays below 1 (TFLite Micro
  aborts otherwise; it happens when a calibrated difference is constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.passes._fake_quant import activation_params, dcast_source, input_qtype, op_bits, qcast_users
from tflquant.passes._quant_ops import bits_of, fixed_params, has_kernel, op_info, same_inputs


def retype_qcast(q: quant.QuantizeCastOp, qtype: UniformQuantizedType) -> None:
    t = q.result.type
    assert isinstance(t, TensorType)
    if t.element_type != qtype:
        Rewriter.replace_value_with_new_type(q.result, with_element(t, qtype))


def make_fixed(bits: int, scale: float, zp: int) -> UniformQuantizedType:
    from xdsl.dialects.builtin import IntegerType

    return UniformQuantizedType.make(IntegerType(bits), scale, zp)


def qrange(t: UniformQuantizedType) -> tuple[float, float]:
    """The real range a per-tensor type represents (symmetric types: +-qmax*scale)."""
    s, z = t.scale, t.zero_point
    if z == 0 and t.is_signed and bits_of(t) > 8:
        return -t.qmax * s, t.qmax * s
    return (t.qmin - z) * s, (t.qmax - z) * s


class _Groups:
    """Union-find over qcast ops: each group must end up with one parameter set."""

    def __init__(self) -> None:
        self.parent: dict[quant.QuantizeCastOp, quant.QuantizeCastOp] = {}
        self.fixed: dict[quant.QuantizeCastOp, UniformQuantizedType] = {}
        # members whose own range does not count: read only by a slice with constant bounds
        self.sliced: set[quant.QuantizeCastOp] = set()

    def find(self, q: quant.QuantizeCastOp) -> quant.QuantizeCastOp:
        self.parent.setdefault(q, q)
        while self.parent[q] is not q:
            self.parent[q] = self.parent[self.parent[q]]
            q = self.parent[q]
        return q

    def fixed_of(self, q: quant.QuantizeCastOp) -> UniformQuantizedType | None:
        return self.fixed.get(self.find(q))

    def union(self, a: quant.QuantizeCastOp, b: quant.QuantizeCastOp) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is rb:
            return
        self.parent[rb] = ra
        if rb in self.fixed:
            self.fixed.setdefault(ra, self.fixed.pop(rb))

    def members(self) -> dict[quant.QuantizeCastOp, list[quant.QuantizeCastOp]]:
        out: dict[quant.QuantizeCastOp, list[quant.QuantizeCastOp]] = {}
        for q in list(self.parent):
            out.setdefault(self.find(q), []).append(q)
        return out


def _input_qcast(v: SSAValue) -> quant.QuantizeCastOp | None:
    d = dcast_source(v)
    if d is None:
        return None
    q = d.input.owner
    return q if isinstance(q, quant.QuantizeCastOp) else None


_SLICES = ("tfl.strided_slice", "tfl.slice", "tfl.gather", "tfl.gather_nd")


def _only_sliced(o: Operation, i: int, q: quant.QuantizeCastOp) -> bool:
    """Input i of o is a slice's data (STRIDED_SLICE, SLICE, GATHER with constant bounds or
    indices) and nothing else reads it: the values the slice drops never reach the model, so
    the input's range need not cover them (the output's own calibrated range is enough).
    A constant table read by GATHER or EMBEDDING_LOOKUP counts as sliced too: the rows the
    calibration data looked up set the range, rows beyond it saturate (as a float table with
    a quantized output would: ai-edge-quantizer's form of the op), in int8 only: int16 has
    the resolution to keep every row."""
    d = dcast_source(o.operands[i])
    table = d is not None and isinstance(d.input.owner, quant.QuantizeCastOp) and isinstance(d.input.owner.input.owner, tfl.ConstOp)
    table = table and bits_of(quant.quantized_element(q.result.type)) == 8  # type: ignore[arg-type]
    if not (table and (o.name, i) in (("tfl.gather", 0), ("tfl.embedding_lookup", 1))) and (
        o.name not in _SLICES or i != 0 or not all(isinstance(v.owner, tfl.ConstOp) for v in o.operands[1:])
    ):
        return False
    return d is not None and d.result.uses.get_length() == 1 and q.result.uses.get_length() == 1




@dataclass(frozen=True)
class PropagateScales(ModulePass):
    """Fixed-range and same-scale constraints hold on the fake-quant parameters of every
    integer-capable op; conflicts are resolved by requantizing (see module docstring)."""

    name = "propagate-scales"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            _Propagator().run(f)


class _Propagator:
    def __init__(self) -> None:
        self.groups = _Groups()
        self.pending: list[tuple[Operation, quant.QuantizeCastOp]] = []

    def run(self, f: func.FuncOp) -> None:
        for o in list(f.walk()):
            self._visit(o, self.groups)
        self._assign(self.groups)
        for o in list(f.walk()):
            if o.name in ("tfl.add", "tfl.sub"):
                self._add_output_scale(o)

    def _visit(self, o: Operation, groups: _Groups) -> None:
        info = op_info(o)
        if info is None:
            return
        bits = op_bits(o)
        if bits is None or not has_kernel(o, bits):
            return
        outs = [q for r in o.results for q in qcast_users(r) if quant.quantized_element(q.result.type) is not None]
        if (fp := fixed_params(info, bits)) is not None:
            fixed = make_fixed(bits, *fp)
            for q in outs:
                groups.find(q)
                groups.fixed[groups.find(q)] = fixed
            return
        bound = same_inputs(o, info)
        if not bound or not outs:
            return
        anchor = outs[0]
        for q in outs[1:]:
            groups.union(anchor, q)
        several = len(bound) > 1 and o.name != "tfl.padv2"
        for i in bound:
            q = _input_qcast(o.operands[i])
            if q is None:
                continue
            if quant.quantized_element(q.result.type).per_axis:  # type: ignore[union-attr]
                continue
            if several and (groups.fixed_of(q) is not None) != (groups.fixed_of(anchor) is not None):
                # a fixed-range value (e.g. LOGISTIC) must not impose its range on the others
                self._requantize(o, i)
                continue
            fa, fq = groups.fixed_of(anchor), groups.fixed_of(q)
            if fa is not None and fq is not None and fa != fq:
                self._requantize(o, i)
                continue
            if _only_sliced(o, i, q):
                groups.sliced.add(q)
            groups.union(anchor, q)

    def _requantize(self, o: Operation, i: int) -> None:
        """Give input i its own qcast (a requantize) that joins the op's group later."""
        v = o.operands[i]
        t = quant.quantized_element(v.owner.input.type)  # type: ignore[union-attr]
        assert t is not None
        rq = quant.QuantizeCastOp(v, t)
        rd = quant.DequantizeCastOp(rq.result)
        block = o.parent_block()
        assert block is not None
        block.insert_ops_before([rq, rd], o)
        o.operands[i] = rd.result
        self.pending.append((o, rq))

    def _assign(self, groups: _Groups) -> None:
        for o, rq in self.pending:
            for r in o.results:
                for q in qcast_users(r):
                    groups.union(q, rq)
                    break
        for root, members in groups.members().items():
            fixed = groups.fixed.get(root)
            if fixed is not None:
                target = fixed
            else:
                counted = [q for q in members if q not in groups.sliced] or members
                types = [quant.quantized_element(q.result.type) for q in counted]
                uniq = {t for t in types if t is not None}
                if len(uniq) == 1 and len(counted) < len(members):
                    target = next(iter(uniq))  # type: ignore[assignment]
                    for q in members:
                        retype_qcast(q, target)
                    continue
                if len(uniq) <= 1:
                    continue
                ranges = [qrange(t) for t in uniq]  # type: ignore[arg-type]
                bits = bits_of(next(iter(uniq)))  # type: ignore[arg-type]
                target = activation_params(min(r[0] for r in ranges), max(r[1] for r in ranges), bits)
            for q in members:
                retype_qcast(q, target)

    def _add_output_scale(self, o: Operation) -> None:
        """ADD/SUB rescale both inputs to 2*max(s1, s2) / 2^shift (shift 20 for int8, 15 for
        int16) and need the output multiplier below 1 (TFLite Micro aborts otherwise): an
        output scale too small for its inputs (a near-constant difference) is widened."""
        ins = [input_qtype(v) for v in o.operands]
        outs = [q for q in qcast_users(o.results[0])] if o.results else []
        if len(outs) != 1 or any(t is None or t.per_axis for t in ins):
            return
        out = quant.quantized_element(outs[0].result.type)
        if out is None:
            return
        shift = 20 if bits_of(out) == 8 else 15
        need = 2 * max(t.scale for t in ins) / (1 << shift) * 1.01  # type: ignore[union-attr]
        if out.scale >= need:
            return
        if out.zero_point == 0 and bits_of(out) > 8:
            target = UniformQuantizedType.make(out.storage_type, need, 0)
        else:
            lo, _ = qrange(out)
            zp = int(np.clip(np.round(out.qmin - lo / need), out.qmin, out.qmax))
            target = UniformQuantizedType.make(out.storage_type, need, zp)
        members = self.groups.members().get(self.groups.find(outs[0]), [outs[0]])
        for q in members:
            retype_qcast(q, target)
