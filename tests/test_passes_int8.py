"""The static-quantization pass chain (int8, integer only, 16x8): guarantees and end to end.

Every quantized module is checked against what LiteRT's kernels require (`check_kernel_rules`),
the models run in LiteRT and stay close to the float model, and random graphs (hypothesis)
keep the same guarantees. (TFLite Micro runs of integer-only models: tests/test_e2e_int8.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, Operation

import tflquant
from tflquant import testing as tt
from tflquant.dialects import quant, tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.ir import make_context, parse_module, value_name
from tflquant.passes._quant_ops import fixed_params, has_kernel, is_f32, op_info, same_inputs
from tflquant.pipeline import run_pipeline
from tflquant.reference.integer_interpreter import IntegerInterpreter
from tflquant.scoring import litert_run, sqnr_db
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer

from models import MODELS, run_tflite, sample_inputs

CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}
INPUT_INDEX = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 2}


def qt(v) -> UniformQuantizedType | None:  # noqa: ANN001
    return quant.quantized_element(v.type)


def check_kernel_rules(module: ModuleOp, integer_only: bool = False) -> None:
    """What LiteRT's integer kernels check (research §1.3, §2), on a quantized module."""
    for f in [o for o in module.walk() if isinstance(o, func.FuncOp)]:
        seen: set = set(f.body.blocks[0].args)
        for o in f.body.blocks[0].ops:
            # program order: every operand is defined before it is read
            for v in o.operands:
                assert isinstance(v, BlockArgument) or v in seen, f"{o.name} reads a value defined later"
            seen.update(o.results)
            assert not isinstance(o, quant.QuantizeCastOp | quant.DequantizeCastOp | quant.StatsOp), "fake quant left"
            for v in list(o.operands) + list(o.results):
                t = qt(v)
                if t is not None and t.bits == 16 and t.is_signed:
                    assert not np.any(t.zero_point_array()), f"int16 tensor with non-zero zero point at {o.name}"
            _check_op(o)
            if integer_only and not isinstance(o, func.ReturnOp | tfl.ConstOp | tfl.NoValueOp):
                assert not any(is_f32(v.type) for v in list(o.operands) + list(o.results)), f"{o.name} is float"


def _check_op(o: Operation) -> None:
    info = op_info(o)
    if info is None:
        return
    ins = [qt(v) for v in o.operands]
    outs = [qt(r) for r in o.results]
    acts = [t for i, t in enumerate(ins) if t is not None and i not in info.weights and not t.per_axis]
    if not acts and not any(outs):
        return  # a float op
    bits = (acts or [t for t in outs if t is not None])[0].bits
    assert has_kernel(o, bits), f"{o.name} has no int{bits} kernel but is quantized"
    if (fp := fixed_params(info, bits)) is not None:
        for t in outs:
            assert t is not None and np.float32(t.scale) == np.float32(fp[0]) and t.zero_point == fp[1], (
                f"{o.name} output {t} is not the fixed {fp}"
            )
    bound = same_inputs(o, info)
    if bound:
        types = {ins[i] for i in bound} | {t for t in outs}
        assert len(types) == 1, f"{o.name} needs one parameter set on inputs {bound} and outputs, got {types}"
    kind = o.BUILTIN  # type: ignore[attr-defined]
    if kind in ("ADD", "SUB") and bits == 16:
        assert o.option("pot_scale_int16") is False  # type: ignore[attr-defined]
    if kind in CHANNEL_AXIS:
        x, w = ins[INPUT_INDEX[kind]], ins[1]
        assert x is not None and w is not None
        assert isinstance(o.operands[1].owner, tfl.ConstOp)
        assert not np.any(w.zero_point_array()) and w.bits == 8
        assert o.operands[1].owner.numpy().min() >= -127  # type: ignore[union-attr]  # narrow range
        if w.per_axis:
            assert w.axis.data == CHANNEL_AXIS[kind]
        b = o.operand("bias")  # type: ignore[attr-defined]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert b is not None, f"{kind} needs a bias"
        if b is not None:
            bt = qt(b)
            assert bt is not None and not np.any(bt.zero_point_array())
            want_bits = 32 if bits == 8 else (64 if kind == "DEPTHWISE_CONV_2D" else bt.bits)
            assert bt.bits == want_bits
            expect = (np.float32(x.scale) * w.scale_array().astype(np.float32)).astype(np.float32)
            assert np.array_equal(bt.scale_array().astype(np.float32), expect), "bias scale != input x filter scale"


def quantize_module(module: ModuleOp, inputs: dict[str, np.ndarray], **kw) -> tflquant.api.QuantizationResult:  # noqa: ANN003
    return tflquant.quantize(write_flatbuffer(module), representative_dataset=inputs, **kw)


def run_integer_io(model: bytes, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model with integer I/O: quantize the float inputs, dequantize the outputs."""
    return litert_run(model, list(inputs.values()))


# ---------------------------------------------------------------------------------------
# End to end on the test models (no ../shared needed)
# ---------------------------------------------------------------------------------------

# (model, mode, io_type): minimum SQNR (dB) of each float output against the float model
CASES = {
    ("cnn", "int8", "float32"): 30,
    ("cnn", "int8", "int8"): 30,
    ("cnn", "int8", "uint8"): 30,
    ("cnn", "int16x8", "float32"): 60,
    ("cnn", "int16x8", "int16"): 60,
    ("elementwise", "int8", "float32"): 25,
    ("elementwise", "int16x8", "float32"): 50,
    ("shapes", "int8", "float32"): 25,
    ("shapes", "int8", "int8"): 25,
    ("shapes", "int16x8", "float32"): 60,
    ("matmul", "int8", "float32"): 20,
    ("matmul", "int16x8", "float32"): 35,
    ("dynamic_batch", "int8", "float32"): 30,
    ("dynamic_batch", "int16x8", "float32"): 60,
}


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: "-".join(c))
def test_models_run_in_litert(case: tuple[str, str, str]) -> None:
    name, mode, io_type = case
    module = MODELS[name]()
    float_model = write_flatbuffer(module)
    calib = sample_inputs(module, 32, seed=1)
    ev = sample_inputs(module, 6, seed=2)
    integer_only = io_type != "float32"
    r = quantize_module(module, calib, mode=mode, io_type=io_type, allow_float=not integer_only)
    check_kernel_rules(read_flatbuffer(r.model), integer_only=integer_only)
    ref = run_tflite(float_model, ev)
    got = run_integer_io(r.model, ev) if integer_only else run_tflite(r.model, ev)
    for a, b in zip(ref, got):
        if a.dtype.kind == "f":
            assert sqnr_db(a, b) >= CASES[case], f"{case}: SQNR {sqnr_db(a, b):.1f} dB"
    assert len(r.model) < len(float_model) or name != "cnn"


def test_integer_only_lists_every_float_op() -> None:
    module = MODELS["elementwise"]()
    with pytest.raises(TflquantError) as e:
        quantize_module(module, sample_inputs(module, 8, seed=1), mode="int8", io_type="int8", allow_float=False)
    assert "'cast_" in str(e.value) and "(CAST)" in str(e.value)
    # NEG and SQUARE have no integer kernel but are rewritten as MUL, so they are not listed
    assert "NEG" not in str(e.value) and "SQUARE" not in str(e.value)


def test_deterministic() -> None:
    module = MODELS["shapes"]()
    calib = sample_inputs(module, 16, seed=1)
    a = quantize_module(module, calib, mode="int8").model
    b = quantize_module(MODELS["shapes"](), calib, mode="int8").model
    assert a == b


# ---------------------------------------------------------------------------------------
# Pass-level guarantees on textual IR
# ---------------------------------------------------------------------------------------

CHAIN = "insert-fake-quant{{activations={act}}},propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias{{bias-type={bias}}}"

CONV = """
func.func @main(%x: tensor<1x3x3x2xf32> {tfl.name = "x"}) -> tensor<1x3x3x3xf32> {
  %xs = quant.stats %x, <-0.7, 2.3> : tensor<1x3x3x2xf32>
  %w = "tfl.const"() <{value = dense<[[[[0.3, -1.2]]], [[[0.01, 0.02]]], [[[0.0, 0.0]]]]> : tensor<3x1x1x2xf32>}> {names = ["w"]} : () -> tensor<3x1x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.123, -4.5, 0.7]> : tensor<3xf32>}> {names = ["b"]} : () -> tensor<3xf32>
  %c = "tfl.conv_2d"(%xs, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> {names = ["conv"]} : (tensor<1x3x3x2xf32>, tensor<3x1x1x2xf32>, tensor<3xf32>) -> tensor<1x3x3x3xf32>
  %cs = quant.stats %c, <-5.0, 5.0> : tensor<1x3x3x3xf32>
  %l = "tfl.logistic"(%cs) {names = ["sig"]} : (tensor<1x3x3x3xf32>) -> tensor<1x3x3x3xf32>
  %ls = quant.stats %l, <0.0, 1.0> : tensor<1x3x3x3xf32>
  func.return %ls : tensor<1x3x3x3xf32>
}
"""


@pytest.mark.parametrize("act,bias", [("int8", "int32"), ("int16", "int64"), ("int16", "int32")])
def test_bias_is_input_times_filter_scale(act: str, bias: str) -> None:
    ctx = make_context()
    m = parse_module(CONV, ctx=ctx)
    run_pipeline(ctx, m, CHAIN.format(act=act, bias=bias))
    check_kernel_rules(m)
    conv = next(o for o in m.walk() if isinstance(o, tfl.Conv2DOp))
    x, w, b = (qt(v) for v in conv.inputs)
    assert x is not None and w is not None and b is not None
    assert b.bits == (32 if act == "int8" else int(bias[3:]))
    bq = conv.inputs[2].owner.numpy().astype(np.float64)  # type: ignore[union-attr]
    # the kernels scale the accumulator by double(s_in) * double(s_w[c]): each bias integer is
    # the nearest multiple of that unit (error at most half a step)
    unit = np.float64(x.scale) * w.scale_array()
    assert np.allclose(b.scale_array(), unit, rtol=1e-6)
    want = np.array([0.123, -4.5, 0.7], np.float32).astype(np.float64)
    assert np.all(np.abs(bq * unit - want) <= unit / 2 * (1 + 1e-9))
    # the all-zero channel borrows a usable scale instead of a huge or tiny one
    assert 0 < w.scale_array()[2] < 1


def test_fake_quant_round_trip_is_exact_on_the_grid() -> None:
    """The integer payload of a weight dequantizes back within half a step of the float weight."""
    ctx = make_context()
    m = parse_module(CONV, ctx=ctx)
    run_pipeline(ctx, m, CHAIN.format(act="int8", bias="int32"))
    conv = next(o for o in m.walk() if isinstance(o, tfl.Conv2DOp))
    w = qt(conv.inputs[1])
    q = conv.inputs[1].owner.numpy().astype(np.float64)  # type: ignore[union-attr]
    real = q * w.scale_array().reshape(-1, 1, 1, 1)
    orig = np.array([[[[0.3, -1.2]]], [[[0.01, 0.02]]], [[[0.0, 0.0]]]])
    assert np.all(np.abs(real - orig) <= w.scale_array().reshape(-1, 1, 1, 1) / 2 + 1e-9)
    assert np.max(np.abs(q)) == 127


def test_partly_quantized_ops_keep_their_types() -> None:
    text = """
func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %q = "tfl.quantize"(%x) {names = ["q"]} : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8:f32, 0.1:3>>
  %r = "tfl.relu"(%q) {names = ["r"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.1:3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-128>>
  %d = "tfl.dequantize"(%r) {names = ["d"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-128>>) -> tensor<1x4xf32>
  %ds = quant.stats %d, <0.0, 6.0> : tensor<1x4xf32>
  %t = "tfl.tanh"(%ds) {names = ["t"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %ts = quant.stats %t, <0.0, 1.0> : tensor<1x4xf32>
  func.return %ts : tensor<1x4xf32>
}
"""
    ctx = make_context()
    m = parse_module(text, ctx=ctx)
    run_pipeline(ctx, m, CHAIN.format(act="int8", bias="int32"))
    check_kernel_rules(m)
    relu = next(o for o in m.walk() if isinstance(o, tfl.BUILTIN_CLASSES["RELU"]))
    assert str(qt(relu.outputs[0])) == "!quant.uniform<i8:f32, 0.05:-128>"
    tanh = next(o for o in m.walk() if isinstance(o, tfl.TanhOp))
    assert qt(tanh.outputs[0]) is not None and qt(tanh.outputs[0]).scale == 1 / 128  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------
# Random graphs (hypothesis)
# ---------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tt.graphs_with_data(ops=tt.SAFE_OPS + tt.EXTRA_OPS, max_ops=6))
def test_random_graphs_keep_the_kernel_rules(graph) -> None:  # noqa: ANN001
    module, inputs = graph
    names = [a.data["tfl.name"].data for a in next(o for o in module.walk() if isinstance(o, func.FuncOp)).arg_attrs.data]  # type: ignore[union-attr]
    data = dict(zip(names, inputs))
    fb = write_flatbuffer(module)
    for mode in ("int8", "int16x8"):
        r = tflquant.quantize(fb, mode=mode, representative_dataset=data)
        q = read_flatbuffer(r.model)
        check_kernel_rules(q)
        # an op falls back to float exactly when it has no integer kernel for the mode, or
        # when the measured fallback found that quantizing it destroys its output (the report
        # names it with what it measured: EXP, ...). (MUL(ABS(x), negative) with RELU, whose
        # all-zero output once wrapped the int16 product around, stays integer now: tests below.)
        bits = 8 if mode == "int8" else 16
        measured = {f.name for f in r.report.fallbacks if "quantized it" in f.reason}
        for o in q.walk():
            if isinstance(o, tfl.TflOp) and not isinstance(o, tfl.QuantizeOp | tfl.DequantizeOp):
                stayed_float = any(is_f32(v.type) for v in o.results)
                if stayed_float and has_kernel(o, bits):
                    assert value_name(o.results[0]) in measured, f"{o.name}: float with an integer kernel in {mode}, not a measured fallback"
                else:
                    assert stayed_float == (not has_kernel(o, bits)), f"{o.name}: float={stayed_float} in {mode}"



@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_an_all_zero_mul_output_stays_integer(mode: str) -> None:
    """MUL(ABS(x), a negative constant) with RELU is zero everywhere (found by the random-graph
    test above). Its calibrated range is degenerate (+-5e-7 after widening, as TF's converter
    does): at that output scale the requantization multiplier s1 s2 / s_out is about 13 in
    16x8, and LiteRT's int32 rescale of the product wrapped around before the RELU clamp
    (5e-7 instead of 0), so the measured fallback kept the MUL float. propagate-scales raises
    the output scale so the rescale cannot wrap: the MUL is integer, nothing falls back, and
    LiteRT gives exact zeros, on the calibration data and on 30x larger inputs."""
    from models import GraphBuilder

    g = GraphBuilder("main", {"input": ((1, 1, 1, 1), np.float32)})
    a = g.op("ABS", [g.x], (1, 1, 1, 1), name="abs_1")
    m = g.op("MUL", [a, g.const(np.full((1, 1, 1, 1), -0.716, np.float32), "c")], (1, 1, 1, 1), name="mul_2", fused_activation_function="RELU")
    data = {"input": np.random.default_rng(0).standard_normal((20, 1, 1, 1, 1)).astype(np.float32) * 0.1}
    r = tflquant.quantize(g.tflite([m]), mode=mode, representative_dataset=data)
    assert not r.report.fallbacks
    mul = next(o for o in read_flatbuffer(r.model).walk() if isinstance(o, tfl.MulOp))
    (s1, s2), so = (qt(v).scale for v in mul.operands), qt(mul.results[0]).scale  # type: ignore[union-attr]
    # |(q1 - z1)(q2 - z2)| < 2^16 (int8), <= 2^30 (int16): shifted left by log2(M) + 1, it
    # stays below 2^31
    assert s1 * s2 / so < (2**14 if mode == "int8" else 1)
    for x in (data["input"], data["input"] * 30):
        (got,) = run_tflite(r.model, {"input": x})
        assert got.shape[0] == 20 and not np.any(got)


def _degenerate_case(case: str) -> tuple[bytes, dict[str, np.ndarray], str]:
    """(float model, calibration data, the op's output name) of a one- or two-op graph whose
    op's output has a degenerate calibrated range: zero everywhere (a fused or standalone
    RELU of negative values, a zero weight), one non-zero constant, or below 1e-6."""
    from models import GraphBuilder

    rng = np.random.default_rng(1)
    shape = (1, 2, 2, 3) if case == "conv_relu" else (1, 4)
    g = GraphBuilder("main", {"x": (shape, np.float32)})
    x = g.x
    if case == "hard_swish":  # x <= -3: hard_swish(x) = 0
        out = g.op("HARD_SWISH", [x], shape, name="out")
        return g.tflite([out]), {"x": (-3.0 - np.abs(rng.standard_normal((16, *shape)))).astype(np.float32)}, "out"
    a = g.op("ABS", [x], shape, name="abs")

    def c(v: object) -> object:
        return g.const(np.asarray(v, np.float32))

    w = -np.abs(rng.standard_normal((4, 4))).astype(np.float32)
    if case == "mul_relu":
        out = g.op("MUL", [a, c(np.full(shape, -0.7))], shape, name="out", fused_activation_function="RELU")
    elif case == "add_relu":
        out = g.op("ADD", [a, c(np.full(shape, -9.0))], shape, name="out", fused_activation_function="RELU")
    elif case == "sub_relu":
        out = g.op("SUB", [a, c(np.full(shape, 9.0))], shape, name="out", fused_activation_function="RELU")
    elif case == "relu":  # a standalone RELU of negative values
        neg = g.op("MUL", [a, c(np.full(shape, -1.0))], shape, name="neg")
        out = g.op("RELU", [neg], shape, name="out")
    elif case == "fc_relu":
        out = g.op("FULLY_CONNECTED", [a, c(w), c(np.zeros(4))], (1, 4), name="out", fused_activation_function="RELU")
    elif case == "fc_zero_weight":
        out = g.op("FULLY_CONNECTED", [x, c(np.zeros((4, 4))), c(np.zeros(4))], (1, 4), name="out")
    elif case == "fc_constant":  # zero weight, non-zero bias: one constant value
        out = g.op("FULLY_CONNECTED", [x, c(np.zeros((4, 4))), c(np.full(4, 0.37))], (1, 4), name="out")
    elif case == "conv_relu":
        wc = -np.abs(rng.standard_normal((2, 1, 1, 3))).astype(np.float32)
        out = g.op("CONV_2D", [a, c(wc), c(np.zeros(2))], (1, 2, 2, 2), name="out", padding="SAME",
                   stride_h=1, stride_w=1, fused_activation_function="RELU")
    elif case == "concat":  # one all-zero input, one not
        z = g.op("MUL", [a, c(np.full(shape, -0.7))], shape, name="zero", fused_activation_function="RELU")
        out = g.op("CONCATENATION", [z, x], (1, 8), name="out", axis=1)
    elif case == "tiny":  # |values| < 1e-6
        out = g.op("MUL", [x, c(np.full(shape, 1e-7))], shape, name="out")
    else:
        raise AssertionError(case)
    return g.tflite([out]), {"x": rng.standard_normal((16, *shape)).astype(np.float32)}, "out"


DEGENERATE = ["mul_relu", "add_relu", "sub_relu", "relu", "fc_relu", "fc_zero_weight", "fc_constant", "conv_relu",
              "concat", "tiny", "hard_swish"]


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_ranges_stay_integer_and_match_float(case: str, mode: str) -> None:
    """An op whose calibrated output is all zero, one constant or tiny gets a valid output
    type: the op stays integer (no measured fallback), its requantization cannot wrap, and
    LiteRT's output matches the float model's (zeros exactly); where the float output stays
    zero on inputs 30x larger than the calibration data, so does LiteRT's (a multiplier
    above 1 wraps sooner there)."""
    fb, data, name = _degenerate_case(case)
    r = tflquant.quantize(fb, mode=mode, representative_dataset=data)
    q = read_flatbuffer(r.model)
    check_kernel_rules(q)
    op = next(o for o in q.walk() if isinstance(o, tfl.TflOp) and o.results and value_name(o.results[0]) == name)
    bits = 8 if mode == "int8" else 16
    assert not r.report.fallbacks or not has_kernel(op, bits), [f.reason for f in r.report.fallbacks]
    assert (qt(op.results[0]) is not None) == has_kernel(op, bits)
    for k in (1, 30):
        x = {"x": data["x"] * k} if case != "hard_swish" else data
        (want,) = run_tflite(fb, x)
        (got,) = run_tflite(r.model, x)
        # the integer kernels (what the measured fallback runs) give LiteRT's values (the
        # last float32 bit of a DEQUANTIZE aside)
        (ref,) = IntegerInterpreter(q).run([x["x"]])
        np.testing.assert_allclose(ref.reshape(got.shape), got, rtol=1e-6, atol=0)
        if not np.any(want):
            assert not np.any(got), f"{case} {mode}: {got.ravel()[:8]}"
        elif k == 1:  # (larger inputs saturate where the float output leaves the range)
            # zeros stay zeros; the rest within 2% of the largest value (int8 steps)
            assert not np.any(got[want == 0]) or case == "tiny"
            assert np.max(np.abs(got - want)) <= 0.02 * np.max(np.abs(want)) + 1e-6, f"{case} {mode}"


def test_quantizing_a_quantized_model_changes_nothing() -> None:
    """An int8 model run through the chain again keeps every op and type (idempotence)."""
    module = MODELS["cnn"]()
    calib = sample_inputs(module, 16, seed=1)
    once = quantize_module(module, calib, mode="int8").model
    twice = tflquant.quantize(once, mode="int8", representative_dataset=calib).model
    assert str(read_flatbuffer(once)) == str(read_flatbuffer(twice))


@pytest.mark.parametrize("mode,bias", [("int8", None), ("int16x8", None), ("int16x8", "int32")])
def test_transpose_conv_and_depthwise_biases_run(mode: str, bias: str | None) -> None:
    """TRANSPOSE_CONV with a bias (input 3) and DEPTHWISE_CONV_2D: int32 / int64 biases, and an
    int32 bias on int16 inputs marked with quantized_bias_type, all run in LiteRT."""
    from models import GraphBuilder

    r = np.random.default_rng(0)
    g = GraphBuilder("main", {"x": ((1, 4, 4, 3), np.float32)})
    shape = g.const(np.array([1, 8, 8, 5], np.int32))
    w = g.const((r.normal(size=(5, 2, 2, 3)) * 0.3).astype(np.float32))
    b = g.const(r.normal(size=(5,)).astype(np.float32))
    y = g.op("TRANSPOSE_CONV", [shape, w, g.x, b], (1, 8, 8, 5), padding="SAME", stride_w=2, stride_h=2)
    w2 = g.const((r.normal(size=(1, 3, 3, 5)) * 0.3).astype(np.float32))
    z = g.op("DEPTHWISE_CONV_2D", [y, w2, g.const(np.full(5, 0.1, np.float32))], (1, 8, 8, 5),
             padding="SAME", stride_w=1, stride_h=1, depth_multiplier=1)
    module = g.module([z])
    fb = write_flatbuffer(module)
    res = quantize_module(module, sample_inputs(module, 32, seed=1), mode=mode, bias_type=bias)
    check_kernel_rules(read_flatbuffer(res.model))
    ev = sample_inputs(module, 4, seed=2)
    assert sqnr_db(run_tflite(fb, ev)[0], run_tflite(res.model, ev)[0]) > (35 if mode == "int8" else 45)
    assert not [o for o in res.report.ops if o.kind == "float"]


def test_per_channel_output_floor_keeps_the_fine_channels_resolution() -> None:
    # Channel 0's large weight meets an input that is zero over the calibration data, so its
    # results are multiples of a coarse unit; channel 1's small results must still get an output
    # scale of its own resolution (the no-wrap floor is the finest channel's unit, not the coarsest).
    from models import GraphBuilder

    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    w = np.array([[0, 0, 0, 100.0], [0.01, 0.02, 0, 0]], np.float32)
    out = g.op("FULLY_CONNECTED", [g.x, g.const(w), g.const(np.zeros(2, np.float32))], (1, 2), name="out")
    x = np.random.default_rng(0).standard_normal((64, 1, 4)).astype(np.float32)
    x[..., 3] = 0
    want = x @ w.T
    r = tflquant.quantize(g.tflite([out]), mode="int8", representative_dataset={"x": x})
    fc = next(o for o in read_flatbuffer(r.model).walk() if isinstance(o, tfl.FullyConnectedOp))
    assert fc.results[0].type.element_type.scale < 1e-3  # the range of channel 1 (0.044) over 255 steps, not 100 x s_in / 127
    (got,) = litert_run(r.model, [x])
    ch1 = np.abs(got.reshape(want.shape) - want)[..., 1].max()
    assert ch1 < 0.02 * np.abs(want[..., 1]).max()
