"""set-io-types: integer model inputs and outputs instead of float ones.

Afterwards every float function argument that was read only by QUANTIZE ops is itself the
quantized tensor (`type=int8`/`int16`: the QUANTIZE ops are gone; `type=uint8`: the argument is
uint8 with zero point + 128, read by a uint8 -> int8 QUANTIZE), and every returned
DEQUANTIZE result is replaced by the quantized tensor (`int8`/`int16`, which takes the
output's tensor name back) or by a QUANTIZE to uint8 (zero point + 128). The function type
follows. An input that ops staying float read (no integer kernel, or kept float) becomes the
integer tensor its calibration gave it (rewrite-integer leaves that type as the argument's
`tflquant.quant_type`), read by those ops through a DEQUANTIZE; an output such an op computes
comes from a QUANTIZE to its calibrated type (legalize-float-fallback leaves it as the
result's `tflquant.quant_type`), which takes the output's name. This is what the TF converter
does with integer I/O and float fallback. Mixed precision (op-precision): an output computed
at the other precision than the I/O type comes from the requantizing QUANTIZE that
insert-fake-quant{requantize-inputs} adds (int16 -> int8, int8 -> int16; its range from the
calibration), which takes the output's name (the producer's gets the storage suffix). Integer arguments/results (token ids, ...) are left
alone; only the model's entry functions change (not subgraphs control flow calls); a float
input or output without a calibrated type, or whose type does not match (int16 I/O on int8
activations, uint8 on int16) is an error naming the tensor.
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
from tflquant.ir import describe, entry_functions, erase_if_unused, io_attr, set_io_attr, set_name, value_name
from tflquant.passes._fake_quant import IO_QUANT_TYPE, storage_suffix
from tflquant.passes._quant_ops import bits_of, is_f32

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
            recorded = io_attr(f, arg.index, IO_QUANT_TYPE)
            set_io_attr(f, arg.index, IO_QUANT_TYPE, None)
            if not users:
                continue
            quantizes = [u for u in users if isinstance(u, tfl.QuantizeOp)]
            floats = [u for u in users if not isinstance(u, tfl.QuantizeOp)]
            types = {u.outputs[0].type for u in quantizes} or ({recorded} if isinstance(recorded, TensorType) else set())
            if not types:
                raise TflquantError(
                    f"set-io-types: model input {describe(arg)} is read in float and has no calibrated range; "
                    f"it cannot become {self.type}: calibrate it, or keep float model I/O"
                )
            if len(types) != 1:
                raise TflquantError(f"set-io-types: model input {describe(arg)} is quantized in several ways")
            qtensor = types.pop()
            qt = quant.quantized_element(qtensor)
            assert qt is not None and isinstance(qtensor, TensorType)
            self._check(qt, f"model input {describe(arg)}")
            if self.type == "uint8":  # its QUANTIZE readers requantize uint8 -> int8
                new = Rewriter.replace_value_with_new_type(arg, with_element(qtensor, to_uint8(qt)))
            else:
                new = Rewriter.replace_value_with_new_type(arg, qtensor)
                for u in quantizes:
                    u.outputs[0].replace_all_uses_with(new)  # type: ignore[attr-defined]
                    u.detach()
                    u.erase()
            if floats:  # ops that stay float read the input through a DEQUANTIZE (as TF does)
                dq = tfl.DequantizeOp([new], [with_element(qtensor, qt.expressed_type)], names=[f"{value_name(new) or 'input'}_dequantized"])
                Rewriter.insert_op(dq, InsertPoint.at_start(f.body.blocks[0]))
                new.replace_uses_with_if(dq.outputs[0], lambda use: use.operation in floats)

    def _outputs(self, f: func.FuncOp) -> None:
        ret = f.body.blocks[0].last_op
        if not isinstance(ret, func.ReturnOp):
            return
        renamed: dict[Operation, str] = {}  # requantizing QUANTIZE -> the output name it took (an output returned twice keeps it)
        for i, v in enumerate(list(ret.operands)):
            if not is_f32(v.type):
                continue
            dq = v.owner
            recorded = io_attr(f, i, IO_QUANT_TYPE, result=True)
            set_io_attr(f, i, IO_QUANT_TYPE, None, result=True)
            if not isinstance(dq, tfl.DequantizeOp) or quant.quantized_element(dq.inputs[0].type) is None:
                if not isinstance(recorded, TensorType) or (rq := quant.quantized_element(recorded)) is None:
                    raise TflquantError(
                        f"set-io-types: model output {describe(v)} is computed in float and has no calibrated range; "
                        f"it cannot become {self.type}: calibrate it, or keep float model I/O"
                    )
                # computed in float by an op that stays float: a QUANTIZE makes it integer (as TF does)
                self._check(rq, f"model output {describe(v)}")
                name = value_name(v) or f"output_{i}"
                out_type = with_element(recorded, to_uint8(rq)) if self.type == "uint8" else recorded
                q = tfl.QuantizeOp([v], [out_type], names=[name])
                if isinstance(v.owner, Operation) and not isinstance(v.owner, tfl.ConstOp) and value_name(v) is not None:
                    set_name(v.owner, v.index, f"{name}_float")  # type: ignore[attr-defined]
                Rewriter.insert_op(q, InsertPoint.before(ret))
                ret.operands[i] = q.outputs[0]
                continue
            y = dq.inputs[0]
            qt = quant.quantized_element(y.type)
            assert qt is not None and isinstance(y.type, TensorType)
            self._check(qt, f"model output {describe(v)}")
            name = value_name(v)
            src = y.owner.inputs[0] if isinstance(y.owner, tfl.QuantizeOp) else None
            if src is not None and y.owner in renamed:
                name = renamed[y.owner]  # the same requantized output returned again
            elif src is not None and isinstance(src.owner, Operation) and not isinstance(src.owner, tfl.ConstOp) \
                    and (st := quant.quantized_element(src.type)) is not None and bits_of(st) != bits_of(qt) and value_name(src) is not None:
                # requantized from the other precision (insert-fake-quant's requantize-inputs):
                # the output takes its producer's tensor name, the producer the storage suffix
                name = value_name(src)
                renamed[y.owner] = name
                set_name(src.owner, src.index, f"{name}_{storage_suffix(st)}")  # type: ignore[attr-defined]
                if self.type == "uint8":
                    set_name(y.owner, y.index, f"{name}_{storage_suffix(qt)}")
            if self.type == "uint8":
                new = tfl.QuantizeOp([y], [with_element(y.type, to_uint8(qt))], names=[name or f"output_{i}"])
                Rewriter.insert_op(new, InsertPoint.before(ret))
                ret.operands[i] = new.outputs[0]
            else:
                ret.operands[i] = y
                if name is not None and isinstance(y.owner, Operation) and not isinstance(y.owner, tfl.ConstOp):
                    set_name(y.owner, y.index, name)  # type: ignore[attr-defined]
            erase_if_unused(dq)
