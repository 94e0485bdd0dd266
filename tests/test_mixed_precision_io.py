"""Mixed precision with integer model I/O: a model output computed at the other precision
than the I/O type (an int16 op's result with int8 / uint8 I/O, an int8 op's with int16 I/O)
leaves the model through a requantizing QUANTIZE, and a model input read by ops of the other
precision is requantized for them; LiteRT runs both, and the model's outputs follow the
float model's."""

from __future__ import annotations

import numpy as np
import pytest
from models import cnn, sample_inputs

import tflquant
from tflquant.dialects import quant, tfl
from tflquant.reference.integer_interpreter import IntegerInterpreter
from tflquant.scoring import interpreter, litert_run, quantize_input, sqnr_db
from tflquant.tflite.writer import write_flatbuffer


@pytest.fixture(scope="module")
def model() -> tuple[bytes, dict[str, np.ndarray], list[np.ndarray]]:
    m = write_flatbuffer(cnn())
    data = sample_inputs(cnn(), n=32, seed=5)
    return m, data, litert_run(m, list(data.values()))


def _bits(v) -> int | None:
    t = quant.quantized_element(v.type)
    return None if t is None else t.storage_type.width.data


def _returned_requantize(r: tflquant.QuantizationResult) -> tfl.QuantizeOp:
    """The QUANTIZE whose result is the model output, reading an integer tensor."""
    from xdsl.dialects import func

    ret = next(o for o in r.module.walk() if isinstance(o, func.ReturnOp))
    q = ret.operands[0].owner
    while isinstance(q, tfl.QuantizeOp) and _bits(q.inputs[0]) == 8 and isinstance(q.inputs[0].owner, tfl.QuantizeOp):
        q = q.inputs[0].owner  # uint8: int16 -> int8 -> uint8
    assert isinstance(q, tfl.QuantizeOp)
    return q


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_int16_model_output_and_input_with_integer_io(model, io_type) -> None:
    """int8 model, SOFTMAX (the model output) and the first CONV_2D (reading the model input)
    in int16, int8 / uint8 I/O: the output is requantized int16 -> int8 (then to uint8), the
    input int8 -> int16; LiteRT's outputs, dequantized, are the float model's within what
    the int8 / 16x8 models give, and those of the same mix with float I/O give or take one
    output step; the integer reference interpreter gives LiteRT's builtin kernels' bits."""
    m, data, ref = model
    x = list(data.values())
    prec = {"SOFTMAX": "int16", "CONV_2D": "int16"}
    r = tflquant.quantize(m, representative_dataset=data, op_precision=prec, io_type=io_type)
    kinds = {(o.op_type, o.kind) for o in r.report.ops}
    assert {("SOFTMAX", "int16"), ("CONV_2D", "int16"), ("FULLY_CONNECTED", "int8")} <= kinds and not r.report.float_ops
    q = _returned_requantize(r)
    assert (_bits(q.inputs[0]), _bits(q.outputs[0])) == (16, 8) and isinstance(q.inputs[0].owner, tfl.SoftmaxOp)
    it = interpreter(r.model)
    ins, outs = it.get_input_details(), it.get_output_details()
    want = np.int8 if io_type == "int8" else np.uint8
    assert ins[0]["dtype"] == want and outs[0]["dtype"] == want
    assert outs[0]["name"] == interpreter(m).get_output_details()[0]["name"]  # the output keeps its name
    got = litert_run(r.model, x)[0]  # float samples quantized in, outputs dequantized
    s8 = sqnr_db(ref[0], litert_run(tflquant.quantize(m, representative_dataset=data, io_type=io_type).model, x)[0])
    s16 = sqnr_db(ref[0], litert_run(tflquant.quantize(m, mode="int16x8", representative_dataset=data).model, x)[0])
    assert sqnr_db(ref[0], got) > min(s8, s16) - 3.0 and sqnr_db(ref[0], got) > 20.0
    same_mix = litert_run(tflquant.quantize(m, representative_dataset=data, op_precision=prec).model, x)[0]
    step = outs[0]["quantization"][0]
    assert np.max(np.abs(got - same_mix)) <= 1.01 * step
    xq = [np.stack([quantize_input(d, s) for s in a]) for d, a in zip(ins, x)]
    np.testing.assert_array_equal(IntegerInterpreter(r.module).run(xq)[0], litert_run(r.model, xq, dequantize=False, delegates=False)[0])


def test_int8_model_output_with_int16_io(model) -> None:
    """The other way round: 16x8 with SOFTMAX in int8 and int16 I/O: the int8 output is
    requantized to int16 and LiteRT's output follows the float model's."""
    m, data, ref = model
    x = list(data.values())
    r = tflquant.quantize(m, mode="int16x8", representative_dataset=data, op_precision={"SOFTMAX": "int8"}, io_type="int16")
    q = _returned_requantize(r)
    assert (_bits(q.inputs[0]), _bits(q.outputs[0])) == (8, 16)
    it = interpreter(r.model)
    assert it.get_input_details()[0]["dtype"] == np.int16 and it.get_output_details()[0]["dtype"] == np.int16
    got = litert_run(r.model, x)[0]
    same_mix = litert_run(tflquant.quantize(m, mode="int16x8", representative_dataset=data, op_precision={"SOFTMAX": "int8"}).model, x)[0]
    assert sqnr_db(ref[0], got) > 20.0 and np.max(np.abs(got - same_mix)) <= 1.01 * it.get_output_details()[0]["quantization"][0]



@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_output_returned_twice_keeps_its_name(io_type) -> None:
    """A requantized output (SOFTMAX in int16, int8 / uint8 I/O) returned twice: both model
    outputs keep the float model's name (the second one does not take the DEQUANTIZE's or
    requantizing QUANTIZE's name) and give the same values."""
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ArrayAttr, FunctionType

    mod = cnn()
    f = next(o for o in mod.walk() if isinstance(o, func.FuncOp))
    ret = f.body.blocks[0].last_op
    v = ret.operands[0]
    ret.operands = (v, v)
    f.function_type = FunctionType.from_lists(list(f.function_type.inputs.data), [v.type, v.type])
    if f.res_attrs is not None:
        f.res_attrs = ArrayAttr(list(f.res_attrs.data) * 2)
    m = write_flatbuffer(mod)
    data = sample_inputs(cnn(), n=8, seed=5)
    names = [d["name"] for d in interpreter(m).get_output_details()]
    assert len(names) == 2 and names[0] == names[1]
    r = tflquant.quantize(m, representative_dataset=data, op_precision={"SOFTMAX": "int16"}, io_type=io_type)
    assert _bits(_returned_requantize(r).inputs[0]) == 16
    outs = interpreter(r.model).get_output_details()
    assert [d["name"] for d in outs] == names
    assert all(d["dtype"] == (np.int8 if io_type == "int8" else np.uint8) for d in outs)
    got = litert_run(r.model, list(data.values()))
    np.testing.assert_array_equal(got[0], got[1])
