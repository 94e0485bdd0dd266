"""quantize-bias: integer biases for the integer CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED
and TRANSPOSE_CONV ops.

Afterwards every such op with a quantized input and a quantized constant filter has an
integer bias: int32 (`bias-type=int32`, always for int8 inputs) or int64 (`bias-type=int64`,
and always for a DEPTHWISE_CONV_2D on int16 inputs, the only bias its kernel takes), zero
point 0, scale input_scale x filter_scale[c] (per axis 0 when the filter is per channel),
values round(b / scale) exactly. A CONV_2D or DEPTHWISE_CONV_2D without a bias gets a zero
bias (LiteRT's kernels require one). Where a bias would overflow (|q| > 2^31/2 for int32), the filter scale of
that channel is widened until it fits and the filter is requantized (the constant is copied
first if other ops read it). A bias constant read by several ops is copied per reader. An int32 bias on int16 inputs sets
`quantized_bias_type = INT32` (CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV), without which the
int16 kernels read the bias as int64; int64 and int8-mode biases leave it unset, as TF does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType, ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, value_name
from tflquant.passes._quant_ops import bits_of, float_const
from tflquant.quant_math import dequantize

BIAS_TYPES = {"int32": 32, "int64": 64}
# largest |bias| in storage units before the filter scale is widened (MLIR's kBiasMax)
BIAS_LIMIT = {32: (1 << 31) // 2, 64: (1 << 39) - 1}


def bias_type_for(affine: tfl.AffineOp, act_bits: int, requested: int) -> int:
    if act_bits == 8:
        return 32
    if affine.int64_bias:
        return 64
    return requested


@dataclass(frozen=True)
class QuantizeBias(ModulePass):
    """Integer conv/depthwise/FC/transpose-conv ops have integer biases with scale
    input_scale x filter_scale[c] and zero point 0 (see module docstring)."""

    name = "quantize-bias"

    bias_type: str = "int32"

    def __post_init__(self) -> None:
        if self.bias_type not in BIAS_TYPES:
            raise TflquantError(f"quantize-bias: bias-type must be int32 or int64, got {self.bias_type!r}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            for o in list(f.walk()):
                affine = type(o).get_trait(tfl.AffineOp)
                if isinstance(o, tfl.TflOp) and affine is not None and affine.bias is not None:
                    self._bias(o, affine)

    def _bias(self, o: tfl.TflOp, affine: tfl.AffineOp) -> None:
        kind = o.BUILTIN
        x = o.inputs[affine.input] if affine.input < len(o.inputs) else None
        w = o.inputs[affine.weight] if affine.weight < len(o.inputs) else None
        if x is None or w is None:
            return
        xt, wt = quant.quantized_element(x.type), quant.quantized_element(w.type)
        wc = w.owner
        if xt is None or wt is None or xt.per_axis or not isinstance(wc, tfl.ConstOp):
            return
        bidx = affine.bias
        b = o.operand("bias")
        if b is not None and quant.quantized_element(b.type) is not None:
            return  # already integer
        bits = bias_type_for(affine, bits_of(xt), BIAS_TYPES[self.bias_type])
        wshape = wc.result.type.get_shape()  # type: ignore[union-attr]
        axis = affine.channel_axis or 0
        n = wshape[axis]
        if b is None:
            if not affine.needs_bias:
                return
            values = np.zeros(n, np.float32)
            bname = f"{value_name(o.results[0]) or 'conv'}_bias"
        else:
            c = float_const(b)
            if c is None:
                return
            values = np.asarray(c.numpy(), np.float32).reshape(-1)
            bname = value_name(b) or f"{value_name(o.results[0]) or 'op'}_bias"
            if not np.all(np.isfinite(values)):
                raise TflquantError(f"quantize-bias: bias '{bname}' of {kind} '{value_name(o.results[0])}' holds NaN or infinite values")
            if values.size != n:
                return
        in_scale = np.float32(xt.scale)
        wscales = wt.scale_array().astype(np.float32)
        if wscales.size == 1:
            wscales = np.full(n, wscales[0], np.float32) if wt.per_axis else wscales
        # widen filter scales where the bias would overflow
        limit = BIAS_LIMIT[bits]
        need = np.abs(values.astype(np.float64)) / (float(in_scale) * np.broadcast_to(wscales, (n,)).astype(np.float64))
        if np.any(need > limit):
            wt, wscales = self._widen_filter(o, wc, wt, values, float(in_scale), limit, axis)
        bscales = (in_scale * wscales).astype(np.float32)
        # the kernels multiply by double(s_in) * double(s_w[c]): quantize in those exact units
        exact = np.float64(in_scale) * wscales.astype(np.float64)
        st = IntegerType(bits)
        if wt.per_axis:
            bt = UniformQuantizedType.make(st, [float(s) for s in bscales], 0, axis=0)
            q = np.rint(values.astype(np.float64) / exact)
        else:
            bt = UniformQuantizedType.make(st, float(bscales[0]), 0)
            q = np.rint(values.astype(np.float64) / exact[0])
        hi = (1 << (bits - 1)) - 1
        q = np.clip(q, -hi, hi).astype(np.int32 if bits == 32 else np.int64)
        ttype = TensorType(bt, [n])
        const = tfl.ConstOp(dense_from_numpy(q), ttype, name=bname)
        Rewriter.insert_op(const, InsertPoint.before(o))
        operands = list(o.inputs)
        while len(operands) <= bidx:
            nv = tfl.NoValueOp()
            Rewriter.insert_op(nv, InsertPoint.before(o))
            operands.append(nv.result)
        old = operands[bidx]
        o.operands[bidx] = const.result
        if bits == 32 and bits_of(xt) == 16 and "quantized_bias_type" in o.FIELDS:
            # int16 kernels read an unmarked bias as int64: say it is int32
            o.set_option("quantized_bias_type", "INT32")
        owner = old.owner
        if isinstance(owner, Operation) and not old.uses:
            owner.detach()
            owner.erase()

    def _widen_filter(
        self,
        o: tfl.TflOp,
        wc: tfl.ConstOp,
        wt: UniformQuantizedType,
        bias: np.ndarray,
        in_scale: float,
        limit: int,
        axis: int,
    ) -> tuple[UniformQuantizedType, np.ndarray]:
        wq = wc.numpy()
        real = dequantize(wq, wt)
        n = bias.size
        scales = wt.scale_array().astype(np.float64)
        if not wt.per_axis:
            scales = np.full(1, scales[0])
        need = np.abs(bias.astype(np.float64)) / (in_scale * limit)
        if wt.per_axis:
            scales = np.maximum(scales, need * (1 + 1e-6))
            new_t = UniformQuantizedType.make(wt.storage_type, [float(s) for s in scales], 0, axis=wt.axis.data, narrow=True)
        else:
            scales = np.maximum(scales, float(np.max(need)) * (1 + 1e-6))
            new_t = UniformQuantizedType.make(wt.storage_type, float(scales[0]), 0, narrow=True)
        from tflquant.passes._fake_quant import quantize_const_values

        payload = quantize_const_values(real, new_t)
        assert isinstance(wc.result.type, TensorType)
        nc = tfl.ConstOp(dense_from_numpy(payload), with_element(wc.result.type, new_t), name=value_name(wc.result))
        Rewriter.insert_op(nc, InsertPoint.before(o))
        o.operands[1] = nc.result
        if not wc.result.uses:
            wc.detach()
            wc.erase()
        ws = new_t.scale_array().astype(np.float32)
        return new_t, (np.full(n, ws[0], np.float32) if not new_t.per_axis else ws)
