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
- every op whose kernel rescales an integer result to its output (multiplier
  M = s_r / s_out, s_r the real value of one unit of that result) has an output scale
  large enough that the rescale cannot wrap around (`unit_scale`): LiteRT shifts the int32
  result left by log2(M) + 1 before its fixed-point multiply when M >= 1, which wraps once
  the result reaches 2^31 / 2M, before the fused activation clamps it (an int16 MUL's
  product reaches 2^30: M must stay below 1); XNNPACK refuses conv / FC with M >= 256,
  LiteRT HARD_SWISH with s_in / 128 > s_out, TFLite Micro ADD/SUB with M >= 1. It happens
  when the calibrated output range is degenerate: zero everywhere (MUL(ABS(x), negative)
  with RELU, RELU of negative values), or narrower than 1e-6, which TF's converter and
  activation_params widen to +-5e-7 only (scale 3.9e-9 in int8, 1.5e-11 in int16: MLIR's
  kNearZeroTolerance), far below what the inputs resolve. The raised scale is 1.01 times
  the floor, from the same lowest value (int16: zero point 0), for the output's whole
  same-scale group; no output scale finer than s_r resolves more of the integer
  result, so the floor costs no accuracy where it applies.
"""

from __future__ import annotations

import functools
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
from tflquant.passes._quant_ops import bits_of, fixed_params, has_kernel, op_info, op_kind, same_inputs


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
        # raising an output raises its readers' units: repeat until nothing moves (a raise
        # can reach an op already visited only through a same-scale group; few rounds)
        for _ in range(4):
            if not [o for o in list(f.walk()) if self._output_scale_floor(o)]:
                break

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

    def _output_scale_floor(self, o: Operation) -> bool:
        """Raise o's output scale to 1.01 * unit_scale(o) when it is below (see the module
        docstring), with its whole same-scale group; True when it did."""
        if not _rescales(type(o)) or not o.results:
            return False
        outs = qcast_users(o.results[0])
        if len(outs) != 1 or not has_kernel(o, op_bits(o) or 0):
            return False
        out = quant.quantized_element(outs[0].result.type)
        unit = unit_scale(o, out) if out is not None and not out.per_axis else None
        if unit is None or self.groups.fixed_of(outs[0]) is not None:
            return False
        need = unit * 1.01
        if not np.float32(out.scale) < need:
            return False
        if out.zero_point == 0 and bits_of(out) > 8:
            target = UniformQuantizedType.make(out.storage_type, need, 0)
        else:  # the same lowest value, the range stretched upwards
            lo, _ = qrange(out)
            zp = int(np.clip(np.round(out.qmin - lo / need), out.qmin, out.qmax))
            target = UniformQuantizedType.make(out.storage_type, need, zp)
        for q in self.groups.members().get(self.groups.find(outs[0]), [outs[0]]):
            retype_qcast(q, target)
        return True


_RELUS = ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU")
_RESCALING = frozenset(("MUL", "ADD", "SUB", "SQUARED_DIFFERENCE", "HARD_SWISH", "MEAN", "SUM", *_RELUS))


@functools.cache
def _rescales(cls: type) -> bool:
    """unit_scale may have a floor for ops of this class."""
    return issubclass(cls, tfl.TflOp) and (cls.get_trait(tfl.AffineOp) is not None or getattr(cls, "BUILTIN", None) in _RESCALING)


def unit_scale(o: Operation, out: UniformQuantizedType) -> float | None:
    """The output scale below which o's integer kernel (LiteRT's) can wrap its int32
    rescale around, or refuses the model (None: no such kernel, or inputs not known). The
    rescale multiplies an integer result r by M = s_r / s_out, shifting r left by
    log2(M) + 1 first when M >= 1: it wraps once |r| 2M reaches 2^31. So with |r| < 2^k,
    s_out must stay above s_r 2^(k - 30):
    - MUL: r = (q1 - z1)(q2 - z2), s_r = s1 s2; k = 16 (int8), 30 (int16: M < 1);
    - conv / FC / depthwise / transpose conv / BATCH_MATMUL: r the accumulator, s_r =
      s_in * max s_w, up to 2^31 itself: M < 1 (XNNPACK also refuses M >= 256);
    - ADD/SUB: the inputs shifted left by 20 (int8) / 15 (int16), s_r = 2 max(s1, s2) /
      2^shift: M < 1 (TFLite Micro aborts otherwise); int8 SQUARED_DIFFERENCE: the
      difference (shift 7) squared, s_r = (2 max(s1, s2))^2 / 2^14, up to 2^30: M < 1;
    - RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU: r = q - z, s_r = s_in,
      k = 8 / 16 (a finer floor would move the legitimate M > 1 of a RELU_0_TO_1 whose
      input range is wider than [0, 1]);
    - MEAN / SUM of n values: r their sum, k = bits + log2(n), s_r = s_in / n (MEAN: the
      floor is s_in / 2^(30 - bits) whatever n), s_in (SUM: n from static shapes, else
      skipped);
    - HARD_SWISH: s_out >= s_in / 128 (LiteRT refuses the model otherwise).
    A finer output scale than s_r resolves nothing the integer result holds."""
    kind = op_kind(o)
    if kind is None:
        return None
    ins = [input_qtype(v) for v in o.operands]
    bits = bits_of(out)

    def scale(i: int) -> float | None:
        t = ins[i] if i < len(ins) else None
        return None if t is None else float(np.max(t.scale_array()))

    affine = type(o).get_trait(tfl.AffineOp)
    if affine is not None:
        si = scale(affine.input)
        wt = ins[affine.weight] if affine.weight < len(ins) else None
        if si is None or wt is None:
            return None
        sw = wt.scale_array()
        # channel c's results are multiples of s_in * s_w[c]: an output scale above the
        # finest channel's unit loses that channel's resolution (a per-channel weight with
        # one large channel), so the floor is the finest unit, kept within XNNPACK's M < 256
        # for the coarsest channel (M <= 128 there: the rescale wraps only past |acc| 2^23)
        return si * max(float(np.min(sw)), float(np.max(sw)) / 128)
    if kind in ("MUL", "ADD", "SUB", "SQUARED_DIFFERENCE"):
        if len(ins) != 2 or any(t is None or t.per_axis for t in ins):
            return None
        s1, s2 = ins[0].scale, ins[1].scale  # type: ignore[union-attr]
        if kind == "MUL":
            return s1 * s2 / (1 << 14) if bits == 8 else s1 * s2
        if kind == "SQUARED_DIFFERENCE":
            return (2 * max(s1, s2)) ** 2 / (1 << 14)
        return 2 * max(s1, s2) / (1 << (20 if bits == 8 else 15))
    s = scale(0) if ins and ins[0] is not None and not ins[0].per_axis else None
    if s is None:
        return None
    if kind in _RELUS or kind == "MEAN":
        return s / (1 << (30 - bits))
    if kind == "HARD_SWISH":
        return s / 128
    if kind == "SUM":
        n = _reduced_count(o)
        return None if n is None else s * n / (1 << (30 - bits))
    return None


def _reduced_count(o: Operation) -> int | None:
    """How many values MEAN / SUM add into each output (None: shapes not static)."""
    x = o.operands[0]
    c = o.operands[1].owner if len(o.operands) > 1 else None
    if not isinstance(x.type, TensorType) or not isinstance(c, tfl.ConstOp):
        return None
    shape = x.type.get_shape()
    if not shape:
        return 1
    dims = [shape[a] for a in {int(a) % len(shape) for a in np.ravel(c.numpy())}]
    return int(np.prod(dims)) if all(d > 0 for d in dims) else None
