"""`cast-weights-f16`: float16 weights, float32 compute.

Every float32 constant read by tfl ops (weights, biases, other constant operands) with at
least `min-elements` elements becomes a float16 constant followed by one DEQUANTIZE back to
float32, shared by all its readers; values beyond the fp16 range are clamped to ±65504
(NaN stays NaN). Activations, model inputs and outputs stay float32. This is what the TF
converter's float16 mode writes, including the model metadata `reduced_precision_support =
"fp16accfp32"`; LiteRT dequantizes constant inputs once, at preparation.

Left alone: constants that are not float32 (so a model whose weights are already fp16
behind a DEQUANTIZE is recognised and not converted twice), constants read by opaque ops
(custom kernels may need a real constant) or returned as model outputs, and constants with
fewer than `min-elements` elements (default 0: all of them, like the converter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import BytesAttr, DictionaryAttr, Float16Type, Float32Type, ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from tflquant.dialects import tfl
from tflquant.dialects.quant import with_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, value_name

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
REDUCED_PRECISION_KEY = "reduced_precision_support"


def to_fp16(w: np.ndarray) -> np.ndarray:
    """float32 -> float16, round to nearest even, clamped to the finite fp16 range."""
    return np.clip(np.asarray(w, dtype=np.float32), -FP16_MAX, FP16_MAX).astype(np.float16)


def _mark_reduced_precision(module: ModuleOp) -> None:
    """Model metadata `reduced_precision_support = "fp16accfp32"`, as the TF converter writes
    for float16 models: it tells XNNPACK that the model may run in fp16 (with fp32
    accumulation) on CPUs with fp16 arithmetic. An existing value is kept."""
    md = module.attributes.get("tfl.metadata")
    entries = dict(md.data) if isinstance(md, DictionaryAttr) else {}
    if REDUCED_PRECISION_KEY not in entries:
        entries[REDUCED_PRECISION_KEY] = BytesAttr(b"fp16accfp32")
        module.attributes["tfl.metadata"] = DictionaryAttr(entries)


@dataclass(frozen=True)
class CastWeightsF16(ModulePass):
    """float32 constants -> float16 constants + DEQUANTIZE to float32 (see module docstring)."""

    name = "cast-weights-f16"

    min_elements: int = 0

    def __post_init__(self) -> None:
        if self.min_elements < 0:
            raise TflquantError(f"cast-weights-f16: min-elements must be >= 0, got {self.min_elements}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        consts = [c for c in op.walk() if isinstance(c, tfl.ConstOp) and self._castable(c)]
        for c in consts:
            self._cast(c)
        if consts:
            _mark_reduced_precision(op)

    def _castable(self, c: tfl.ConstOp) -> bool:
        t = c.result.type
        if not (isinstance(t, TensorType) and isinstance(t.element_type, Float32Type)):
            return False
        uses = list(c.result.uses)
        if not uses or not all(isinstance(u.operation, tfl.TflOp) for u in uses):
            return False
        n = int(np.prod(t.get_shape())) if t.get_shape() else 1
        return n >= self.min_elements

    @staticmethod
    def _cast(c: tfl.ConstOp) -> None:
        t = c.result.type
        assert isinstance(t, TensorType) and c.parent is not None
        name = value_name(c.result)
        half = tfl.ConstOp(dense_from_numpy(to_fp16(c.numpy())), with_element(t, Float16Type()), name=name)
        dq = tfl.DequantizeOp([half.result], [t], names=None if name is None else [f"{name}_dequantize"])
        block = c.parent
        block.insert_op_before(half, c)
        block.insert_op_after(dq, half)
        c.result.replace_all_uses_with(dq.outputs[0])
        Rewriter.erase_op(c)
