"""set-io-types: integer model inputs and outputs instead of float ones.

Afterwards every float function argument that was read only by QUANTIZE ops is itself the
quantized tensor (`type=int8`/`int16`: the QUANTIZE ops are gone; `type=uint8`: the argument is
uint8 with zero point + 128, read by a uint8 -> int8 QUANTIZE), and every returned
DEQUANTIZE result is replaced by the quantized tensor (`int8`/`int16`, which takes the
output's tensor name back) or by a QUANTIZE to uint8 (zero point + 128). The function type
follows. Integer arguments/results (token ids, ...) are left alone; a float input or output
that is not quantized, or whose type does not match (int16 I/O on int8 activations, uint8 on
int16) is an error naming the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, IntegerType, ModuleOp, Signedness, TensorType
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType, with_element
from tflquant.errors import TflquantError
from tflquant.ir import describe, value_name
from tflquant.passes._quant_ops import bits_of, is_f32
from tflquant.passes.freeze_batch_size import entry_functions
from tflquant.passes.rewrite_integer import erase_if_unused, set_name

IO_TYPES = ("int8", "uint8", "int16")


def to_uint8(t: UniformQuantizedType) -> UniformQuantizedType:
    return UniformQuantizedType.make(IntegerType(8, Signedness.UNSIGNED), t.scale, t.zero_point + 128)


@dataclass(frozen=True)
class SetIoTypes(ModulePass):
    """Model inputs and outputs are int8, uint8 or int16 tensors (no float boundary ops)."""

    name = "set-io-types"

    type: str = "int8"

    def __post_init__(self) -> None:
        if self.type not in IO_TYPES:
            raise TflquantError(f"set-io-types: type must be one of {', '.join(IO_TYPES)}, got {self.type!r}")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in entry_functions(op):  # the model's I/O, not the subgraphs control flow calls
            if f.body.blocks:
                self._inputs(f)
                self._outputs(f)
                ret = f.body.blocks[0].last_op
                outs = [v.type for v in ret.operands] if isinstance(ret, func.ReturnOp) else list(f.function_type.outputs)
                f.function_type = FunctionType.from_lists([a.type for a in f.body.blocks[0].args], outs)

    def _check(self, qt: UniformQuantizedType, what: str) -> None:
        want = 16 if self.type == "int16" else 8
        if bits_of(qt) != want or qt.per_axis:
            raise TflquantError(
                f"set-io-types: {what} is quantized to {qt.storage_type} but the requested I/O type is {self.type}; "
                "int8/uint8 I/O needs int8 activations, int16 I/O needs 16x8"
            )

    def _inputs(self, f: func.FuncOp) -> None:
        for arg in list(f.body.blocks[0].args):
            if not is_f32(arg.type):
                continue
            users = [u.operation for u in arg.uses]
            if not users:
                continue
            if not all(isinstance(u, tfl.QuantizeOp) for u in users):
                raise TflquantError(
                    f"set-io-types: model input {describe(arg)} is read in float; it cannot become {self.type} "
                    "(it has no calibration data, or feeds an op that stays float: no integer kernel, or kept float); "
                    "keep float model I/O for such a model"
                )
            types = {u.outputs[0].type for u in users}  # type: ignore[attr-defined]
            if len(types) != 1:
                raise TflquantError(f"set-io-types: model input {describe(arg)} is quantized in several ways")
            qtensor = types.pop()
            qt = quant.quantized_element(qtensor)
            assert qt is not None and isinstance(qtensor, TensorType)
            self._check(qt, f"model input {describe(arg)}")
            if self.type == "uint8":
                Rewriter.replace_value_with_new_type(arg, with_element(qtensor, to_uint8(qt)))
                continue
            new = Rewriter.replace_value_with_new_type(arg, qtensor)
            for u in users:
                u.outputs[0].replace_all_uses_with(new)  # type: ignore[attr-defined]
                u.detach()
                u.erase()

    def _outputs(self, f: func.FuncOp) -> None:
        ret = f.body.blocks[0].last_op
        if not isinstance(ret, func.ReturnOp):
            return
        for i, v in enumerate(list(ret.operands)):
            if not is_f32(v.type):
                continue
            dq = v.owner
            if not isinstance(dq, tfl.DequantizeOp) or quant.quantized_element(dq.inputs[0].type) is None:
                raise TflquantError(
                    f"set-io-types: model output {describe(v)} is computed in float; it cannot become {self.type} "
                    "(its op has no integer kernel, no calibration data, or is kept float); keep float model I/O for such a model"
                )
            y = dq.inputs[0]
            qt = quant.quantized_element(y.type)
            assert qt is not None and isinstance(y.type, TensorType)
            self._check(qt, f"model output {describe(v)}")
            name = value_name(v)
            if self.type == "uint8":
                new = tfl.QuantizeOp([y], [with_element(y.type, to_uint8(qt))], names=[name or f"output_{i}"])
                Rewriter.insert_op(new, InsertPoint.before(ret))
                ret.operands[i] = new.outputs[0]
            else:
                ret.operands[i] = y
                if name is not None and isinstance(y.owner, Operation) and not isinstance(y.owner, tfl.ConstOp):
                    set_name(y.owner, y.index, name)  # type: ignore[attr-defined]
            erase_if_unused(dq)
