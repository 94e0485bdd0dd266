"""The integer UNIDIRECTIONAL_SEQUENCE_LSTM kernel against LiteRT, bit for bit.

Quantized LSTMs in LiteRT's full-integer "8x8_16" form (int8 input / output / output
state, int8 symmetric weights, int32 biases at input_scale * weight_scale, an int16 cell
state with a power-of-two scale, 5 intermediates of which the 5th carries the hidden
vector's parameters) are built by hand, written with tflquant's flatbuffer writer, run
in LiteRT's builtin kernels (variables reset before every sample) and in
IntegerInterpreter; the int8 outputs must be identical.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerType, ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Region

from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy
from tflquant.reference.integer_interpreter import IntegerInterpreter
from tflquant.tflite.writer import write_flatbuffer

litert = pytest.importorskip("ai_edge_litert.interpreter")

I8, I16, I32 = IntegerType(8), IntegerType(16), IntegerType(32)


def _qconst(data: np.ndarray, q: UniformQuantizedType, name: str) -> tfl.ConstOp:
    return tfl.ConstOp(dense_from_numpy(data), TensorType(q, data.shape), name=name)


def _variable(shape: tuple[int, ...], q: UniformQuantizedType, name: str) -> tfl.VariableOp:
    """A state tensor without initial value: LiteRT refuses variable tensors with a buffer."""
    return tfl.VariableOp.create(
        result_types=[TensorType(q, shape)],
        attributes={"names": ArrayAttr([StringAttr(name)])},
    )


def quantized_lstm(
    seed: int,
    *,
    batch: int = 1,
    steps: int = 4,
    n_input: int = 5,
    n_cell: int = 6,
    time_major: bool = False,
    cifg: bool = False,
    cell_exp: int = -11,
    cell_clip: float = 0.0,
    gain: float = 1.0,
) -> ModuleOp:
    """A one-op quantized LSTM with random parameters; `gain` scales the weights (large
    gains saturate the Q3.12 gate pre-activations)."""
    r = np.random.default_rng(seed)
    s_in = float(r.uniform(0.01, 0.08))
    zp_in = int(r.integers(-40, 40))
    s_out = float(r.uniform(0.005, 0.01))
    zp_out = int(r.integers(-20, 20))
    q_in = UniformQuantizedType.make(I8, s_in, zp_in)
    q_out = UniformQuantizedType.make(I8, s_out, zp_out)
    q_cell = UniformQuantizedType.make(I16, 2.0**cell_exp, 0)
    in_shape = (steps, batch, n_input) if time_major else (batch, steps, n_input)
    out_shape = (steps, batch, n_cell) if time_major else (batch, steps, n_cell)
    block = Block(arg_types=[TensorType(q_in, in_shape)])
    ops: list = []
    nv = tfl.NoValueOp()
    ops.append(nv)

    def weights(name: str, cols: int) -> tfl.ConstOp:
        s_w = float(r.uniform(0.2, 0.8)) * gain / 127
        w = r.integers(-127, 128, (n_cell, cols)).astype(np.int8)
        return _qconst(w, UniformQuantizedType.make(I8, s_w, 0, narrow=True), name)

    gates = ("forget", "cell", "output") if cifg else ("input", "forget", "cell", "output")
    w_in = {g: weights(f"w_in_{g}", n_input) for g in gates}
    w_rec = {g: weights(f"w_rec_{g}", n_cell) for g in gates}
    biases = {}
    for g in gates:
        wq = w_in[g].result.type.element_type
        s_b = float(np.float32(s_in) * np.float32(wq.scale))
        b = np.round(r.uniform(-1.5, 1.5, n_cell) / s_b).astype(np.int32)
        biases[g] = _qconst(b, UniformQuantizedType.make(I32, s_b, 0), f"bias_{g}")
    ops += [*w_in.values(), *w_rec.values(), *biases.values()]
    h0 = _variable((batch, n_cell), q_out, "output_state")
    c0 = _variable((batch, n_cell), q_cell, "cell_state")
    ops += [h0, c0]
    none = nv.result

    def opt(g: str, d: dict) -> object:
        return d[g].result if g in d else none

    inputs = [
        block.args[0],
        *(opt(g, w_in) for g in ("input", "forget", "cell", "output")),
        *(opt(g, w_rec) for g in ("input", "forget", "cell", "output")),
        none, none, none,
        *(opt(g, biases) for g in ("input", "forget", "cell", "output")),
        none, none,
        h0.result, c0.result,
        none, none, none, none,
    ]  # fmt: skip
    lstm = tfl.UnidirectionalSequenceLstmOp(
        inputs,
        [TensorType(q_out, out_shape)],
        options={"fused_activation_function": "TANH", "time_major": time_major, "cell_clip": cell_clip},
        names=["lstm"],
    )
    q12 = UniformQuantizedType.make(I16, 2.0**-12, 0)
    inter = [DictionaryAttr({"name": StringAttr(f"lstm_inter_{k}"), "type": TensorType(q12, [])}) for k in range(4)]
    inter.append(DictionaryAttr({"name": StringAttr("lstm_hidden"), "type": TensorType(q_out, [])}))
    lstm.attributes["tfl.intermediates"] = ArrayAttr(inter)
    ops.append(lstm)
    block.add_ops([*ops, func.ReturnOp(lstm.results[0])])
    f = func.FuncOp(
        "main",
        ([block.args[0].type], [lstm.results[0].type]),
        Region(block),
        arg_attrs=ArrayAttr([DictionaryAttr({"tfl.name": StringAttr("seq")})]),
    )
    m = ModuleOp([f])
    m.verify()
    return m


def litert_outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    """LiteRT's builtin kernels, one sample at a time, variables reset before each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = litert.Interpreter(
            model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    it.allocate_tensors()
    (ind,), (outd,) = it.get_input_details(), it.get_output_details()
    ys = []
    for sample in x:
        it.reset_all_variables()
        it.set_tensor(ind["index"], sample)
        it.invoke()
        ys.append(it.get_tensor(outd["index"]).copy())
    return np.stack(ys)


def random_input(module: ModuleOp, n: int, seed: int) -> np.ndarray:
    f = next(iter(module.ops))
    assert isinstance(f, func.FuncOp)
    shape = f.body.block.args[0].type.get_shape()
    return np.random.default_rng(seed + 1000).integers(-128, 128, (n, *shape)).astype(np.int8)


def assert_bit_exact(module: ModuleOp, n: int = 6, seed: int = 0) -> int:
    """Asserts IntegerInterpreter == LiteRT on n random samples; returns the element count."""
    x = random_input(module, n, seed)
    ref = litert_outputs(write_flatbuffer(module), x)
    ii = IntegerInterpreter(module)
    assert not ii.float_ops, ii.float_ops
    (mine,) = ii.run([x])
    assert mine.dtype == np.int8 and mine.shape == ref.shape
    diff = np.abs(mine.astype(int) - ref.astype(int))
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} differ, max {diff.max()}"
    return diff.size


CASES = [
    dict(seed=0),
    dict(seed=1, batch=2),
    dict(seed=2, time_major=True),
    dict(seed=3, batch=2, time_major=True, steps=6),
    dict(seed=4, gain=6.0),  # saturated gates
    dict(seed=5, batch=2, gain=6.0, time_major=True),
    dict(seed=6, cifg=True),
    dict(seed=7, cifg=True, batch=2, gain=4.0),
    dict(seed=8, cell_exp=-9, gain=4.0),  # tanh of the cell with 6 integer bits
    dict(seed=9, cell_exp=-15),  # the cell saturating at +-1
    dict(seed=10, cell_clip=0.75, gain=4.0),
    dict(seed=11, n_input=1, n_cell=1, steps=8),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_bit_exact_with_litert(case: dict) -> None:
    assert_bit_exact(quantized_lstm(**case), seed=case["seed"])


def test_random_configurations() -> None:
    """Random shapes, layouts and parameters: every output byte equal to LiteRT's."""
    r = np.random.default_rng(123)
    elements = 0
    for k in range(16):
        case = dict(
            seed=100 + k,
            batch=int(r.integers(1, 4)),
            steps=int(r.integers(1, 8)),
            n_input=int(r.integers(1, 9)),
            n_cell=int(r.integers(1, 11)),
            time_major=bool(r.integers(2)),
            cifg=bool(r.integers(2)),
            cell_exp=int(r.integers(-15, -8)),
            cell_clip=float(r.choice([0.0, 0.5, 3.0])),
            gain=float(r.choice([0.5, 1.0, 3.0, 8.0])),
        )
        try:
            elements += assert_bit_exact(quantized_lstm(**case), n=4, seed=case["seed"])
        except AssertionError as e:
            raise AssertionError(f"{case}: {e}") from None
    assert elements > 1000


def _lstm_op(m: ModuleOp) -> tfl.UnidirectionalSequenceLstmOp:
    f = next(iter(m.ops))
    assert isinstance(f, func.FuncOp)
    return next(o for o in f.body.block.ops if isinstance(o, tfl.UnidirectionalSequenceLstmOp))


def test_unsupported_variant_is_named() -> None:
    m = quantized_lstm(0)
    del _lstm_op(m).attributes["tfl.intermediates"]
    with pytest.raises(TflquantError, match="UNIDIRECTIONAL_SEQUENCE_LSTM.*intermediate"):
        IntegerInterpreter(m)
    # a cell state whose scale LiteRT's tanh cannot take
    with pytest.raises(TflquantError, match="UNIDIRECTIONAL_SEQUENCE_LSTM.*cell state scale"):
        IntegerInterpreter(quantized_lstm(0, cell_exp=-8))


@pytest.mark.parametrize("io_type", ["float32", "int8"])
def test_quantized_model_bit_exact(io_type: str) -> None:
    """tests/models.py's float LSTM model through tflquant.quantize (quantize-lstm): the
    LSTM computes in int8 and IntegerInterpreter reproduces LiteRT's outputs bit for bit."""
    import tflquant
    from models import lstm, sample_inputs

    from tflquant.tflite.reader import read_flatbuffer

    m = lstm()
    res = tflquant.quantize(write_flatbuffer(m), mode="int8", representative_dataset=sample_inputs(m, n=32, seed=1), io_type=io_type)
    q = read_flatbuffer(res.model)
    f = next(iter(q.ops))
    assert isinstance(f, func.FuncOp)
    (lstm_op,) = [o for o in f.body.block.ops if isinstance(o, tfl.UnidirectionalSequenceLstmOp)]
    assert lstm_op.results[0].type.element_type.bits == 8
    ii = IntegerInterpreter(q)
    assert not ii.float_ops, ii.float_ops
    x = sample_inputs(m, n=8, seed=7)["seq"]
    if io_type == "int8":
        qx = f.body.block.args[0].type.element_type
        x = np.clip(np.round(x / np.float32(qx.scale)) + qx.zero_point, -128, 127).astype(np.int8)
    (mine,) = ii.run([x])
    ref = litert_outputs(res.model, x)
    assert mine.dtype == ref.dtype and mine.shape == ref.shape
    np.testing.assert_array_equal(mine, ref)


def test_quantize_lstm_outputs_bit_exact() -> None:
    """Random float LSTMs (CIFG, time-major, batch 2, calibration ranges that give several
    cell scales) through tflquant.quantize with int8 I/O: IntegerInterpreter == LiteRT."""
    import tflquant
    from test_quantize_lstm import lstm_model

    from tflquant.tflite.reader import read_flatbuffer

    r = np.random.default_rng(0)
    cell_scales = set()
    for k in range(6):
        cfg = dict(n_in=int(r.integers(1, 6)), n_cell=int(r.integers(1, 8)), steps=int(r.integers(1, 6)),
                   batch=int(r.integers(1, 3)), time_major=bool(k % 2), cifg=k in (2, 5), seed=k)  # fmt: skip
        m = lstm_model(**cfg)
        f = next(iter(m.ops))
        assert isinstance(f, func.FuncOp)
        shape = f.body.block.args[0].type.get_shape()
        calib = {"seq": (r.standard_normal((32, *shape)) * (1.0, 3.0, 10.0)[k % 3]).astype(np.float32)}
        res = tflquant.quantize(write_flatbuffer(m), mode="int8", representative_dataset=calib, io_type="int8")
        q = read_flatbuffer(res.model)
        (op,) = [o for o in next(iter(q.ops)).body.block.ops if isinstance(o, tfl.UnidirectionalSequenceLstmOp)]
        cell_scales.add(op.operand("cell_state").type.element_type.scale)
        try:
            assert_bit_exact(q, n=6, seed=k)
        except AssertionError as e:
            raise AssertionError(f"{cfg}: {e}") from None
    assert len(cell_scales) > 1
