"""Property tests of the whole quantizer on random graphs (tflquant.testing strategies).

For random float tfl graphs and random calibration data, `tflquant.api.quantize`:
- produces a model LiteRT loads and runs;
- is deterministic (same input, same bytes);
- in int8 mode with integer I/O, quantizes every op of the strategies' op mix (each has an
  int8 kernel), leaving no float tensor between ops;
- and the integer reference interpreter reproduces LiteRT on the quantized model (within
  one unit in the last place on at least 99.9% of elements).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, TensorType

from tflquant import quant_math as qm
from tflquant import testing as tt
from tflquant.dialects import quant
from tflquant.dialects.quant import quantized_element

litert = pytest.importorskip("ai_edge_litert.interpreter")


def run_litert(model: bytes, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = litert.Interpreter(model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    di, do = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for s in range(x.shape[0]):
        it.set_tensor(di["index"], x[s].astype(di["dtype"]))
        it.invoke()
        outs.append(it.get_tensor(do["index"]).copy())
    return np.stack(outs)


@settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(tt.graphs_with_data(max_ops=5))
def test_int8_quantizer_output_is_integer_valid_deterministic_and_simulated(g) -> None:  # noqa: ANN001
    from tflquant.api import quantize
    from tflquant.reference.integer_interpreter import IntegerInterpreter
    from tflquant.tflite.reader import read_flatbuffer
    from tflquant.tflite.writer import write_flatbuffer

    module, data = g
    float_model = write_flatbuffer(module)
    r1 = quantize(float_model, "int8", representative_dataset={"input": data[0]}, io_type="int8")
    r2 = quantize(float_model, "int8", representative_dataset={"input": data[0]}, io_type="int8")
    assert r1.model == r2.model, "quantization is not deterministic"

    qmod = read_flatbuffer(r1.model)
    f = next(o for o in qmod.ops if isinstance(o, func.FuncOp))
    for op in f.walk():
        assert not isinstance(op, (quant.QuantizeCastOp, quant.DequantizeCastOp))
        for v in (*op.operands, *op.results):
            t = v.type
            if isinstance(t, TensorType) and isinstance(t.element_type, Float32Type):
                raise AssertionError(f"float tensor left in an integer-only model: {op.name}")
    arg_q = quantized_element(f.body.block.args[0].type)
    assert arg_q is not None
    xq = qm.quantize(data[0], arg_q)

    ref = run_litert(r1.model, xq)
    (mine,) = IntegerInterpreter(qmod, strict=True).run([xq])
    d = np.abs(mine.astype(np.int64) - ref.reshape(mine.shape).astype(np.int64))
    assert (d > 1).mean() <= 0.001, f"max |diff| {d.max()}"
