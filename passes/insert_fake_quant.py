"""insert-fake-quant: turn calibration statistics and constants into fake quantization.

Afterwards no `quant.stats` op is left: every annotated float value `%x` is read only through
`quant.dcast(quant.qcast(%x))`, with int8 asymmetric parameters (range widened to contain 0)
or, for `activations=int16`, int16 symmetric parameters (zero point 0) over the range widened
by `int16-headroom` (default 1.3: 0.4 of 15 bits buys room for data beyond the calibration
set; clipping, not resolution, is what limits 16x8 accuracy). Mixed precision: an op
marked by op-precision (`tflquant.precision`) computes at its own bits instead of
`activations`. Each value takes its producer's precision (a model input `activations`, a
float op's output its first integer reader's); a reader of the other precision reads it
through a second pair, `qcast(dcast(qcast(%x)))`, a requantize once rewritten (a float
producer's or, unless `requantize-inputs`, a model input's second pair quantizes %x itself;
`requantize-inputs=true` is for integer model I/O, and also requantizes to `activations` a
value an entry function returns when its producer computes at the other precision, so that
set-io-types can make the output the I/O type). Every float constant input of an op that
has an integer kernel for those activations is wrapped the same way (one pair per use):
weights (CONV_2D filter dim 0, DEPTHWISE_CONV_2D dim 3, FULLY_CONNECTED dim 0,
TRANSPOSE_CONV dim 0, BATCH_MATMUL right-hand side per tensor) in int8 symmetric
[-127, 127], per channel unless `per-channel=false`; other constant inputs (ADD/MUL
operands, gather tables, PReLU alpha, ...) like activations. Biases stay float for
quantize-bias. A weight stored as DEQUANTIZE(fp16 constant) is read as its float values.
A fake-quantized NEG or SQUARE (no integer kernel in LiteRT) becomes MUL by a constant -1
or MUL(x, x), and in 16x8 SQUARED_DIFFERENCE (no int16 kernel) becomes MUL(d, d) with
d = SUB(x, y) fake-quantized over [x_min - y_max, x_max - y_min], so that they need not
fall back to float. PADV2's output takes its input's parameters and its constant padding
value is clipped to that range (TF pads max pools with -inf: the value saturates to qmin
instead of stretching the scale without bound); likewise a MAXIMUM constant below the other
operand's range is raised to it, a MINIMUM constant above it lowered to it, a SELECT /
SELECT_V2 value far beyond the data (an attention mask's -FLT_MAX) saturates to it, and an
ADD of a constant mask (0 / -1e9) has its far values clipped and its output the range the
kept values give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, describe, entry_functions, kept_float, value_name
from tflquant.passes._fake_quant import activation_params
from tflquant.passes._quant_ops import ACTIVATION_TYPES, PRECISION, float_const, fp16_weight, has_kernel, is_f32, op_info, op_precision
from tflquant.quant_math import choose_weight_params


def weight_params(w: np.ndarray, axis: int | None) -> UniformQuantizedType:
    """int8 symmetric [-127, 127]; an all-zero channel borrows a neighbour-sized scale; an
    all-zero weight gets 1/127 (max |w| = 1) in every channel: any scale holds its zeros, and
    the layer's output is its bias, quantized in steps of s_in * s_w (1.0 left it coarse, and
    made the requantization unit s_in * s_w, which propagate-scales keeps the output scale
    above, as coarse)."""
    t = choose_weight_params(w, axis=axis)
    if w.size == 0:
        return t
    if axis is None:
        return t if np.any(w) else UniformQuantizedType.make(t.storage_type, 1 / 127, 0, narrow=True)
    absmax = np.max(np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)), axis=1)
    if np.all(absmax > 0):
        return t
    if not np.any(absmax > 0):  # an all-zero weight
        return UniformQuantizedType.make(t.storage_type, [1 / 127] * len(absmax), 0, axis=t.axis.data, narrow=True)
    # A zero channel keeps any scale; use the median of the others so that its bias keeps
    # a sane scale (a scale of 1.0 would round the bias coarsely).
    scales = t.scale_array()
    scales[absmax == 0] = float(np.median(scales[absmax > 0]))
    return UniformQuantizedType.make(t.storage_type, [float(s) for s in scales], 0, axis=axis, narrow=True)


def _real_range(v: SSAValue) -> tuple[float, float]:
    """The real range a dcast'ed value can take (from its fake-quant type)."""
    t = quant.quantized_element(v.owner.input.type)  # type: ignore[union-attr]
    assert t is not None
    return t.real_range()


def fake_quant(v: SSAValue, qtype: UniformQuantizedType, before: Operation) -> SSAValue:
    """Insert qcast/dcast of v before `before`; returns the dcast result."""
    q = quant.QuantizeCastOp(v, qtype)
    d = quant.DequantizeCastOp(q.result)
    block = before.parent_block()
    assert block is not None
    block.insert_ops_before([q, d], before)
    return d.result


@dataclass(frozen=True)
class InsertFakeQuant(ModulePass):
    """Every quant.stats value and every constant input of an integer-capable op is read
    through a qcast/dcast pair whose type follows the activation scheme or the weight scheme."""

    name = "insert-fake-quant"

    activations: str = "int8"
    per_channel: bool = True
    int16_headroom: float = 1.3
    requantize_inputs: bool = False

    def __post_init__(self) -> None:
        if not 1.0 <= self.int16_headroom <= 16.0:
            raise TflquantError(f"insert-fake-quant: int16-headroom must be in [1, 16], got {self.int16_headroom}")
        if self.activations not in ACTIVATION_TYPES:
            raise TflquantError(f"insert-fake-quant: activations must be int8 or int16, got {self.activations!r}")

    @property
    def bits(self) -> int:
        return ACTIVATION_TYPES[self.activations]

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        entries = entry_functions(op)
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            self._stats(f, f in entries)
            self._negations(f)
            self._constants(f)

    def op_bits(self, o: Operation) -> int:
        """Activation bits o computes in: its op-precision, else the pass's `activations`."""
        return op_precision(o, self.bits)

    # activations -------------------------------------------------------------------
    def _stats(self, f: func.FuncOp, entry: bool = False) -> None:
        order = {o: i for i, o in enumerate(f.walk())}
        for s in [o for o in f.walk() if isinstance(o, quant.StatsOp)]:
            x = s.input
            if not is_f32(x.type):
                raise TflquantError(f"insert-fake-quant: quant.stats on non-f32 value {describe(x)}")
            readers = sorted({u.operation for u in (*x.uses, *s.result.uses)} - {s}, key=lambda o: order.get(o, -1))
            integer_producer, bits = self._value_bits(x, readers)
            st = s.stats
            try:
                qtype = self._padded_type(x) or self._masked_sum_type(x) or self._range_params(st, bits)
            except TflquantError as e:
                raise TflquantError(f"insert-fake-quant: {describe(x)}: {e}") from None
            q = quant.QuantizeCastOp(x, qtype)
            d = quant.DequantizeCastOp(q.result)
            block = s.parent_block()
            assert block is not None
            block.insert_ops_before([q, d], s)
            s.result.replace_all_uses_with(d.result)
            x.replace_uses_with_if(d.result, lambda use: use.operation is not q)
            # readers of another precision: a requantize of the producer's integer value, or
            # (float producer, model input) their own quantization of the float value
            other: dict[int, SSAValue] = {}
            for r in readers:
                if (rb := self.op_bits(r)) == bits or not has_kernel(r, rb):
                    continue
                if rb not in other:
                    requant = integer_producer or (self.requantize_inputs and not isinstance(x.owner, Operation))
                    other[rb] = fake_quant(d.result if requant else x, self._range_params(st, rb), s)
                for i, v in enumerate(r.operands):
                    if v is d.result:
                        r.operands[i] = other[rb]
            if self.requantize_inputs and entry and integer_producer and bits != self.bits:
                # a model output computed at the other precision: integer I/O is at the
                # pass's activations, through a requantize (int16 -> int8, int8 -> int16)
                for r in readers:
                    if isinstance(r, func.ReturnOp):
                        out = fake_quant(d.result, self._range_params(st, self.bits), s)
                        for i, v in enumerate(r.operands):
                            if v is d.result:
                                r.operands[i] = out
            s.detach()
            s.erase()

    def _range_params(self, st: quant.CalibrationStatsAttr, bits: int) -> UniformQuantizedType:
        k = self.int16_headroom if bits == 16 else 1.0
        return activation_params(st.min * k, st.max * k, bits)

    def _value_bits(self, x: SSAValue, readers: list[Operation]) -> tuple[bool, int]:
        """(integer producer, bits) of a value: its producer's precision when the producer
        has an integer kernel for it; a function argument (model input) the pass's (what
        integer I/O takes); else its first integer reader's (one QUANTIZE from float, no
        requantize), else the pass's."""
        p = x.owner
        if isinstance(p, Operation) and has_kernel(p, b := self.op_bits(p)):
            return True, b
        if not isinstance(p, Operation):
            return False, self.bits
        for r in readers:
            if has_kernel(r, b := self.op_bits(r)):
                return False, b
        return False, self.bits

    # NEG and SQUARE have no integer kernel: NEG(x) = MUL(x, -1), SQUARE(x) = MUL(x, x);
    # SQUARED_DIFFERENCE has none for int16: (x - y)^2 = MUL(SUB(x, y), SUB(x, y)) --------
    def _negations(self, f: func.FuncOp) -> None:
        rewritable = (
            tfl.BUILTIN_CLASSES["NEG"],
            tfl.BUILTIN_CLASSES["SQUARE"],
            tfl.BUILTIN_CLASSES["SQUARED_DIFFERENCE"],
        )
        for o in [o for o in f.walk() if isinstance(o, rewritable)]:
            x, y = o.inputs[0], o.outputs[0]
            if kept_float(o) or (o.BUILTIN == "SQUARED_DIFFERENCE" and has_kernel(o, self.op_bits(o))):
                continue
            if not all(isinstance(v.owner, quant.DequantizeCastOp) for v in o.inputs) or not is_f32(y.type):
                continue
            if not y.uses or not all(isinstance(u.operation, quant.QuantizeCastOp) for u in y.uses):
                continue
            name = value_name(y)
            new_ops: list[Operation] = []
            if o.BUILTIN == "NEG":
                minus_one = tfl.ConstOp(
                    dense_from_numpy(np.array(-1.0, np.float32)), name=f"{name}/minus_one" if name else None
                )
                new_ops.append(minus_one)
                other = minus_one.result
            elif o.BUILTIN == "SQUARE":
                other = x
            else:
                # the difference's range follows from the operands' (their fake-quant types)
                (xl, xh), (yl, yh) = (_real_range(v) for v in o.inputs)
                sub = tfl.SubOp(list(o.inputs), [y.type], names=[f"{name}/diff"] if name else None)
                new_ops.append(sub)
                block = o.parent_block()
                assert block is not None
                block.insert_ops_before(new_ops, o)
                new_ops = []
                x = other = fake_quant(sub.outputs[0], activation_params(xl - yh, xh - yl, self.op_bits(o)), o)
            mul = tfl.MulOp([x, other], [y.type], names=[name] if name else None)
            new_ops.append(mul)
            if PRECISION in o.attributes:  # the rewrite computes at the op's precision
                for n in (mul, sub) if o.BUILTIN == "SQUARED_DIFFERENCE" else (mul,):
                    n.attributes[PRECISION] = o.attributes[PRECISION]
            block = o.parent_block()
            assert block is not None
            block.insert_ops_before(new_ops, o)
            y.replace_all_uses_with(mul.outputs[0])
            o.detach()
            o.erase()

    # constants -------------------------------------------------------------------
    def _constants(self, f: func.FuncOp) -> None:
        materialized: dict[SSAValue, SSAValue] = {}
        for o in list(f.walk()):
            info = op_info(o)
            if info is None or not has_kernel(o, bits := self.op_bits(o)):
                continue
            saturated = self._saturated_const(o)
            self._saturate_mask(o)
            for i, v in enumerate(list(o.operands)):
                if i == saturated:
                    continue
                if i == info.bias:
                    if fp16_weight(v) is not None:  # an fp16 bias: quantize-bias reads float32
                        w = self._const_values(v, materialized, o)
                        assert w is not None
                        o.operands[i] = w[1]
                    continue
                w = self._const_values(v, materialized, o)
                if w is None:
                    continue
                values, src = w
                if i in info.weights and (bits == 8 or not info.int16_weight):
                    axis = info.weights[i] if self.per_channel else None
                    if axis is not None and values.ndim <= axis:
                        axis = None
                    qtype = weight_params(values, axis)
                else:
                    lo, hi = (float(np.min(values)), float(np.max(values))) if values.size else (0.0, 0.0)  # empty: any scale
                    qtype = activation_params(lo, hi, bits)
                o.operands[i] = fake_quant(src, qtype, o)
        for dq in [o for o in f.walk() if isinstance(o, tfl.DequantizeOp)]:
            if fp16_weight(dq.outputs[0]) is not None and not dq.outputs[0].uses:
                src = dq.inputs[0].owner
                dq.detach()
                dq.erase()
                if isinstance(src, tfl.ConstOp) and not src.result.uses:
                    src.detach()
                    src.erase()

    # Constants that stand for "beyond everything" saturate to the data's range -------------
    def _saturation(self, o: Operation) -> tuple[int, int, bool, bool] | None:
        """(constant operand, data operand, clip from below, clip from above) when a constant
        operand of a same-scale op saturates to its data operand's range:
        - PADV2's padding value, always (TF pads a max pool with -inf);
        - a MAXIMUM constant below the data (MINIMUM: above): the same results;
        - a SELECT / SELECT_V2 value that lies further beyond the data's range than 64 times
          its width (an attention mask's -1e9 or -FLT_MAX): kept, it would leave the data
          fewer than 4 of the 256 levels; saturated, a masked logit is the lowest score.
        The data operand must already be fake-quantized, the constant a float constant."""
        if not has_kernel(o, self.op_bits(o)):
            return None
        key = getattr(o, "BUILTIN", None)
        n = len(o.operands)
        if key == "PADV2" and n > 2:
            ci, di, low, high = 2, 0, True, True
        elif key in ("MAXIMUM", "MINIMUM", "SELECT", "SELECT_V2") and n == (2 if key in ("MAXIMUM", "MINIMUM") else 3):
            first = 0 if n == 2 else 1
            consts = [float_const(o.operands[i]) is not None for i in (first, first + 1)]
            if consts.count(True) != 1:
                return None
            ci = first + consts.index(True)
            di = 2 * first + 1 - ci
            low, high = key != "MINIMUM", key != "MAXIMUM"
        else:
            return None
        c, x = float_const(o.operands[ci]), o.operands[di]
        if c is None or not isinstance(x.owner, quant.DequantizeCastOp):
            return None
        values = c.numpy()
        if values.size == 0 or np.any(np.isnan(values)):
            return None  # refused with the other constants
        if key in ("SELECT", "SELECT_V2"):
            lo, hi = quant.quantized_element(x.owner.input.type).real_range()  # type: ignore[union-attr]
            with np.errstate(over="ignore", invalid="ignore"):
                beyond = max(lo - float(np.min(values)), float(np.max(values)) - hi, 0.0)
            if not beyond > 64 * (hi - lo):
                return None
        return ci, di, low, high

    def _padded_type(self, x: SSAValue) -> UniformQuantizedType | None:
        """The type of a PADV2 / SELECT output whose constant saturates: its data's (the
        calibrated range holds the constant: -FLT_MAX would stretch it without bound)."""
        o = x.owner
        if not isinstance(o, tfl.TflOp) or o.BUILTIN not in ("PADV2", "SELECT", "SELECT_V2"):
            return None
        sat = self._saturation(o)
        if sat is None:
            return None
        return quant.quantized_element(o.operands[sat[1]].owner.input.type)  # type: ignore[union-attr]

    def _additive_mask(self, o: Operation) -> tuple[int, np.ndarray, tuple[float, float]] | None:
        """ADD of a constant mask (0 where kept, -1e9 where masked: Keras' causal attention):
        (constant operand, the constant with its far values clipped, output range). Values
        further from 0 than 64 x (data width + data magnitude) are far; kept, they would set
        the constant's scale (and the output's calibrated range) so far above the data's that
        the kernel's 20-bit rescaling loses the data. Clipped there, a masked sum still
        saturates to the output's lowest value, the range the near values give."""
        if getattr(o, "BUILTIN", None) != "ADD" or len(o.operands) != 2 or not has_kernel(o, self.op_bits(o)):
            return None
        consts = [float_const(v) is not None for v in o.operands]
        if consts.count(True) != 1:
            return None
        ci = consts.index(True)
        c, x = float_const(o.operands[ci]), o.operands[1 - ci]
        if c is None or not isinstance(x.owner, quant.DequantizeCastOp):
            return None
        values = c.numpy()
        if values.size == 0 or np.any(np.isnan(values)):
            return None
        lo, hi = quant.quantized_element(x.owner.input.type).real_range()  # type: ignore[union-attr]
        bound = 64.0 * ((hi - lo) + max(abs(lo), abs(hi)))
        far = np.abs(values.astype(np.float64)) > bound
        if not np.any(far) or np.all(far):
            return None
        near = values[~far]
        clipped = np.where(far, np.sign(values) * bound, values).astype(np.float32)
        return ci, clipped, (lo + float(np.min(near)), hi + float(np.max(near)))

    def _masked_sum_type(self, x: SSAValue) -> UniformQuantizedType | None:
        """The type of an ADD output with an additive mask: the range the near values give."""
        mask = self._additive_mask(x.owner) if isinstance(x.owner, Operation) else None
        return activation_params(*mask[2], self.op_bits(x.owner)) if mask is not None else None  # type: ignore[arg-type]

    def _saturate_mask(self, o: Operation) -> None:
        """An additive mask's constant is read with its far values clipped (see _additive_mask);
        it is then quantized from its own range like any constant operand."""
        mask = self._additive_mask(o)
        if mask is None:
            return
        ci, clipped, _ = mask
        c = float_const(o.operands[ci])
        assert c is not None
        name = value_name(c.result)
        nc = tfl.ConstOp(dense_from_numpy(clipped), name=f"{name}/saturated" if name else None)
        block = o.parent_block()
        assert block is not None
        block.insert_op_before(nc, o)
        o.operands[ci] = nc.result
        if not c.result.uses:
            c.detach()
            c.erase()

    def _saturated_const(self, o: Operation) -> int | None:
        """Read a saturating constant (see _saturation) clipped to its data's range, through
        the data's fake quantization (a MAXIMUM/MINIMUM constant that is a real floor/ceiling
        beyond the range keeps its own parameters); returns its operand index."""
        sat = self._saturation(o)
        if sat is None:
            return None
        ci, di, low, high = sat
        c = float_const(o.operands[ci])
        x = o.operands[di]
        if c is None or not isinstance(x.owner, quant.DequantizeCastOp):
            return None
        qtype = quant.quantized_element(x.owner.input.type)
        assert qtype is not None
        values = c.numpy()
        if np.any(np.isnan(values)):
            return None  # refused with the other constants
        lo, hi = qtype.real_range()
        clipped = np.clip(values, lo if low else -np.inf, hi if high else np.inf).astype(np.float32)
        if np.any(clipped < lo) or np.any(clipped > hi):
            if not np.all(np.isfinite(clipped)):
                return None  # refused with the other constants
            qtype = activation_params(float(np.min(clipped)), float(np.max(clipped)), self.op_bits(o))
        src = o.operands[ci]
        if not np.array_equal(clipped, values):
            name = value_name(src)
            nc = tfl.ConstOp(dense_from_numpy(clipped), name=f"{name}/saturated" if name else None)
            block = o.parent_block()
            assert block is not None
            block.insert_op_before(nc, o)
            src = nc.result
        o.operands[ci] = fake_quant(src, qtype, o)
        if not c.result.uses:
            c.detach()
            c.erase()
        return ci

    def _const_values(
        self, v: SSAValue, materialized: dict[SSAValue, SSAValue], user: Operation
    ) -> tuple[np.ndarray, SSAValue] | None:
        if (c := float_const(v)) is not None:
            w = c.numpy()
            if not np.all(np.isfinite(w)):
                raise TflquantError(
                    f"insert-fake-quant: constant {describe(v)} read by {user.name} holds NaN or infinite values"
                )
            return w, v
        if (h := fp16_weight(v)) is not None:
            values, src = h
            if v not in materialized:
                assert isinstance(v.type, TensorType)
                c = tfl.ConstOp(dense_from_numpy(values.astype(np.float32)), name=value_name(src.result) or value_name(v))
                block = v.owner.parent_block()  # type: ignore[union-attr]
                assert block is not None
                block.insert_op_before(c, v.owner)  # type: ignore[arg-type]
                materialized[v] = c.result
            return values, materialized[v]
        return None
