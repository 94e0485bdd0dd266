"""Ops with an int8 LiteRT kernel that tflquant quantizes (beyond the core set): ELU,
RELU_0_TO_1, REVERSE_V2, TOPK_V2, DYNAMIC_UPDATE_SLICE, FILL, ONE_HOT.

For each op: a float one-op model (textual IR, written with tflquant's writer) quantized by
`tflquant.quantize` in int8 with float I/O must keep the op integer (no DEQUANTIZE /
QUANTIZE between it and its neighbours: only the model's own input QUANTIZE and output
DEQUANTIZE), run in LiteRT's builtin kernels close to the float model, and agree with
tflquant's IntegerInterpreter bit for bit; integer-only (io_type int8) it must run on TFLite
Micro with LiteRT's outputs when TFLM has the kernel. The integer kernels are also compared
with LiteRT on random quantization parameters over the whole int8 input range.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tflquant
from tflquant.ir import parse_module
from tflquant.reference import Interpreter
from tflquant.reference.integer_interpreter import IntegerInterpreter
from tflquant.scoring import TflmMissingOps, tflm_run
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer

litert = pytest.importorskip("ai_edge_litert.interpreter")


def builtin_interpreter(model: bytes):  # noqa: ANN201
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = litert.Interpreter(
            model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    it.allocate_tensors()
    return it


def run_builtin(model: bytes, x: np.ndarray, dequantize: bool = True) -> list[np.ndarray]:
    """Every output per sample (samples first) with LiteRT's builtin kernels (no XNNPACK)."""
    from tflquant.scoring import dequantize_output, feed

    it = builtin_interpreter(model)
    di, outs = it.get_input_details()[0], it.get_output_details()
    res: list[list[np.ndarray]] = [[] for _ in outs]
    for s in range(x.shape[0]):
        feed(it, di, x[s])
        it.invoke()
        for k, d in enumerate(outs):
            y = it.get_tensor(d["index"])
            quantized = d["quantization"][0] != 0
            res[k].append(dequantize_output(d, y) if dequantize and quantized else y.copy())
    return [np.stack(r) for r in res]


def one_op_model(op: str, in_shape: str, out_types: list[str], params: str = "", consts: str = "", operands: str = "%x") -> str:
    """A float model `y = op(x, consts...)` as textual IR."""
    outs = ", ".join(out_types)
    names = ", ".join(f'"y{i}"' for i in range(len(out_types)))
    res = ", ".join(f"%y#{i}" for i in range(len(out_types))) if len(out_types) > 1 else "%y"
    operand_types = ", ".join(["tensor<" + in_shape + "xf32>"] + [t for t in params.split(";") if t])
    return (
        f'func.func @main(%x: tensor<{in_shape}xf32> {{tfl.name = "x"}}) -> ({outs}) {{\n'
        f"{consts}"
        f'  %y{":" + str(len(out_types)) if len(out_types) > 1 else ""} = "tfl.{op}"({operands}) {{names = [{names}]}} : ({operand_types}) -> ({outs})\n'
        f"  func.return {res} : {outs}\n}}\n"
    )


def op_names(model: bytes) -> list[str]:
    return [o.name for o in read_flatbuffer(model).walk() if o.name.startswith("tfl.") and o.name != "tfl.const"]


def check_one_op(text: str, op: str, x: np.ndarray, tflm: bool, check_int=None, micro_op: str | None = None) -> None:  # noqa: ANN001
    """The e2e contract of the module docstring. The op is 1-Lipschitz: |float - int8| is at
    most half an input step plus half an output step. tflm: True (TFLM must run it and
    match LiteRT), False (TFLM has no kernel: must say so). check_int(k, float model's
    output, int8 model's output, output scales) checks integer outputs (default: equal).
    micro_op: the op legalize-for-micro writes instead in the integer-only model for TFLM
    (target="micro"; the LiteRT model keeps `op`). tflm=False: target="micro" is refused
    with an error naming the op."""
    module = parse_module(text)
    fb = write_flatbuffer(module)
    # the float reference kernel (the calibration engine) agrees with LiteRT's float kernel
    ref = run_builtin(fb, x)
    mine = Interpreter(module).run([x])
    for a, b in zip(ref, mine):
        np.testing.assert_allclose(np.asarray(b, np.float32).reshape(a.shape), a, rtol=1e-5, atol=1e-6)

    qb = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}).model
    n_float = sum(a.dtype.kind == "f" for a in ref)
    assert op_names(qb) == ["tfl.quantize", f"tfl.{op}", *["tfl.dequantize"] * n_float], op_names(qb)
    got = run_builtin(qb, x)
    ib = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}, io_type="int8", target="micro" if tflm else "litert").model
    if not tflm:
        with pytest.raises(tflquant.TflquantError, match=rf"TFLite Micro cannot run .*{op.upper()} '"):
            tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}, io_type="int8", target="micro")
    s_in = builtin_interpreter(ib).get_input_details()[0]["quantization"][0]
    scales = [d["quantization"][0] for d in builtin_interpreter(ib).get_output_details()]
    for k, (a, b) in enumerate(zip(ref, got)):
        if a.dtype.kind in "iu":
            if check_int is not None:
                check_int(k, a, b.reshape(a.shape), scales)
            else:
                assert np.array_equal(a, b.reshape(a.shape)), f"output {k}: integer outputs differ"
            continue
        bound = 1.001 * (0.5 * s_in + 0.5 * scales[k])
        err = float(np.abs(a - b.reshape(a.shape)).max())
        assert err <= bound, f"output {k}: max |float - int8| {err} > {bound} (scales in {s_in}, out {scales[k]})"

    # integer only: the integer interpreter is bit-exact with LiteRT; TFLM runs it too
    assert op_names(ib) == [f"tfl.{micro_op or op}"], op_names(ib)
    imod = read_flatbuffer(ib)
    it = builtin_interpreter(ib)
    d = it.get_input_details()[0]
    s, z = d["quantization"]
    xq = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
    lit = run_builtin(ib, xq, dequantize=False)
    sim = IntegerInterpreter(imod, strict=True).run([xq])
    for a, b in zip(lit, sim):
        assert np.array_equal(np.asarray(b).reshape(a.shape), a), "IntegerInterpreter differs from LiteRT"
    if tflm:
        micro = tflm_run(ib, [xq])
        for a, b in zip(lit, micro):
            assert np.array_equal(b.reshape(a.shape), a), "TFLite Micro differs from LiteRT"
    else:
        with pytest.raises(TflmMissingOps):
            tflm_run(ib, [xq])


def data_rng() -> np.random.Generator:
    """Each test's own data (the same whichever tests run)."""
    return np.random.default_rng(0)


def test_elu_int8_end_to_end() -> None:
    text = one_op_model("elu", "1x4x64", ["tensor<1x4x64xf32>"])
    x = (data_rng().standard_normal((16, 1, 4, 64)) * 2).astype(np.float32)
    check_one_op(text, "elu", x, tflm=True)


def test_relu_0_to_1_int8_end_to_end() -> None:
    text = one_op_model("relu_0_to_1", "1x4x64", ["tensor<1x4x64xf32>"])
    x = (data_rng().standard_normal((16, 1, 4, 64)) * 0.8).astype(np.float32)
    # integer only it is RELU (legalize-for-micro: the calibrated output scale puts 1.0 at 127)
    check_one_op(text, "relu_0_to_1", x, tflm=True, micro_op="relu")
    # for LiteRT (the default target, no legalize-for-micro) it stays RELU_0_TO_1 and
    # computes the same bytes
    fb = write_flatbuffer(parse_module(text))
    ib = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}, io_type="int8", target="micro").model
    plain = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}, io_type="int8").model
    assert op_names(plain) == ["tfl.relu_0_to_1"]
    d = builtin_interpreter(ib).get_input_details()[0]
    s_, z = d["quantization"]
    xq = np.clip(np.round(x / s_) + z, -128, 127).astype(np.int8)
    for a, b in zip(run_builtin(plain, xq, dequantize=False), run_builtin(ib, xq, dequantize=False)):
        assert np.array_equal(a, b)


def test_reverse_v2_int8_end_to_end() -> None:
    text = one_op_model(
        "reverse_v2", "1x4x64", ["tensor<1x4x64xf32>"], params="tensor<1xi32>", operands="%x, %a",
        consts='  %a = "tfl.const"() <{value = dense<[1]> : tensor<1xi32>}> : () -> tensor<1xi32>\n',
    )  # fmt: skip
    x = (data_rng().standard_normal((16, 1, 4, 64)) * 2).astype(np.float32)
    check_one_op(text, "reverse_v2", x, tflm=True)


def test_topk_v2_int8_end_to_end() -> None:
    text = one_op_model(
        "topk_v2", "1x4x64", ["tensor<1x4x5xf32>", "tensor<1x4x5xi32>"], params="tensor<i32>", operands="%x, %k",
        consts='  %k = "tfl.const"() <{value = dense<5> : tensor<i32>}> : () -> tensor<i32>\n',
    )  # fmt: skip
    x = (data_rng().standard_normal((16, 1, 4, 64)) * 2).astype(np.float32)

    def indices_pick_the_top_values(k: int, ref_idx: np.ndarray, idx: np.ndarray, scales: list[float]) -> None:
        # equal int8 values may order differently from the float ones: the chosen elements
        # must hold the k largest float values up to one input LSB (scale in = scale out)
        top = np.take_along_axis(x, ref_idx.astype(np.int64), axis=-1)
        chosen = np.take_along_axis(x, idx.astype(np.int64), axis=-1)
        assert float(np.abs(np.sort(top, -1) - np.sort(chosen, -1)).max()) <= 1.01 * scales[0]
        assert (ref_idx == idx).mean() > 0.9

    check_one_op(text, "topk_v2", x, tflm=False, check_int=indices_pick_the_top_values)


def test_dynamic_update_slice_int8_end_to_end() -> None:
    """A constant block written into the activation (a cache update): the block takes the
    activation's parameters."""
    upd = np.linspace(-3, 3, 2 * 16, dtype=np.float32).reshape(1, 2, 16)
    from tflquant.ir import dense_from_numpy

    lit = dense_from_numpy(upd)
    text = one_op_model(
        "dynamic_update_slice", "1x8x16", ["tensor<1x8x16xf32>"], params="tensor<1x2x16xf32>;tensor<3xi32>", operands="%x, %u, %i",
        consts=f'  %u = "tfl.const"() <{{value = {lit}}}> : () -> tensor<1x2x16xf32>\n'
        '  %i = "tfl.const"() <{value = dense<[0, 3, 0]> : tensor<3xi32>}> : () -> tensor<3xi32>\n',
    )  # fmt: skip
    x = (data_rng().standard_normal((16, 1, 8, 16)) * 2).astype(np.float32)
    check_one_op(text, "dynamic_update_slice", x, tflm=True)


# ---------------------------------------------------------------------------------------
# Integer kernels against LiteRT over the whole int8 input range, random parameters
# ---------------------------------------------------------------------------------------


def _unary_int8_model(op: str, si: float, zi: int, so: float, zo: int) -> str:
    it_, ot = f"i8:f32, {si!r}:{zi}", f"i8:f32, {so!r}:{zo}"
    t_in, t_out = f"tensor<1x256x!quant.uniform<{it_}>>", f"tensor<1x256x!quant.uniform<{ot}>>"
    return (
        f'func.func @main(%a: {t_in} {{tfl.name = "a"}}) -> {t_out} {{\n'
        f'  %r = "tfl.{op}"(%a) {{names = ["r"]}} : ({t_in}) -> {t_out}\n'
        f"  func.return %r : {t_out}\n}}\n"
    )


@pytest.mark.parametrize("op", ["elu", "relu_0_to_1"])
def test_unary_op_bit_exact_random_params(op: str) -> None:
    rng = np.random.default_rng(7)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    for _ in range(40):
        si, so = (float(np.float32(10 ** rng.uniform(-3, 0))) for _ in range(2))
        zi, zo = (int(v) for v in rng.integers(-128, 128, 2))
        module = parse_module(_unary_int8_model(op, si, zi, so, zo))
        (mine,) = IntegerInterpreter(module, strict=True).run([x])
        (ref,) = run_builtin(write_flatbuffer(module), x, dequantize=False)
        assert np.array_equal(mine.reshape(ref.shape), ref), f"{op} in {si}:{zi} out {so}:{zo}: {int((mine.reshape(ref.shape) != ref).sum())} differ"


def _data_model(op: str, q: str, shape: str, out_shape: str, param: str, extra_out: str = "") -> str:
    """A quantized one-op model (parameter constant `param`), outputs: the op's results."""
    t_in, t_out = f"tensor<{shape}x!quant.uniform<{q}>>", f"tensor<{out_shape}x!quant.uniform<{q}>>"
    ptype = param.split(" : ")[1]
    outs = t_out + (f", {extra_out}" if extra_out else "")
    n = 2 if extra_out else 1
    res = "%r#0, %r#1" if extra_out else "%r"
    names = '["r0", "r1"]' if extra_out else '["r0"]'
    return (
        f'func.func @main(%a: {t_in} {{tfl.name = "a"}}) -> ({outs}) {{\n'
        f'  %p = "tfl.const"() <{{value = {param}}}> : () -> {ptype}\n'
        f'  %r{":2" if n == 2 else ""} = "tfl.{op}"(%a, %p) {{names = {names}}} : ({t_in}, {ptype}) -> ({outs})\n'
        f"  func.return {res} : {outs}\n}}\n"
    )


DATA_CASES = [
    ("reverse_v2", "2x5x7", "2x5x7", "dense<[1]> : tensor<1xi32>", ""),
    ("reverse_v2", "2x5x7", "2x5x7", "dense<[1, 2]> : tensor<2xi32>", ""),
    ("reverse_v2", "2x5x7", "2x5x7", "dense<[-1]> : tensor<1xi32>", ""),
    ("topk_v2", "3x40", "3x6", "dense<6> : tensor<i32>", "tensor<3x6xi32>"),
    ("topk_v2", "2x3x9", "2x3x9", "dense<9> : tensor<i32>", "tensor<2x3x9xi32>"),
]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize(("op", "shape", "out_shape", "param", "extra"), DATA_CASES, ids=[f"{c[0]}-{c[3][6:12]}-{c[2]}" for c in DATA_CASES])
def test_data_movement_ops_bit_exact(op: str, shape: str, out_shape: str, param: str, extra: str, bits: int) -> None:
    """Stored values move unchanged (TOPK_V2: equal values in index order), int8 and int16."""
    rng = np.random.default_rng(3)
    q = "i8:f32, 0.05:-3" if bits == 8 else "i16:f32, 0.0005"
    module = parse_module(_data_model(op, q, shape, out_shape, param, extra))
    dims = [int(d) for d in shape.split("x")]
    dt = np.int8 if bits == 8 else np.int16
    # few distinct values: many ties for TOPK_V2
    x = np.concatenate([rng.integers(-4, 4, (3, *dims)), rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, (3, *dims))]).astype(dt)
    mine = IntegerInterpreter(module, strict=True).run([x])
    ref = run_builtin(write_flatbuffer(module), x, dequantize=False)
    for a, b in zip(ref, mine):
        assert np.array_equal(np.asarray(b).reshape(a.shape), a)


@pytest.mark.parametrize("op", ["reverse_v2", "topk_v2"])
def test_data_movement_ops_int16x8_end_to_end(op: str) -> None:
    """16x8: the op stays int16 (LiteRT's kernels take int16) and matches the float model."""
    if op == "reverse_v2":
        text = one_op_model(op, "1x4x64", ["tensor<1x4x64xf32>"], params="tensor<1xi32>", operands="%x, %a",
                            consts='  %a = "tfl.const"() <{value = dense<[2]> : tensor<1xi32>}> : () -> tensor<1xi32>\n')  # fmt: skip
    else:
        text = one_op_model(op, "1x4x64", ["tensor<1x4x5xf32>", "tensor<1x4x5xi32>"], params="tensor<i32>", operands="%x, %k",
                            consts='  %k = "tfl.const"() <{value = dense<5> : tensor<i32>}> : () -> tensor<i32>\n')  # fmt: skip
    fb = write_flatbuffer(parse_module(text))
    x = (data_rng().standard_normal((8, 1, 4, 64)) * 2).astype(np.float32)
    q = tflquant.quantize(fb, mode="int16x8", representative_dataset={"x": x}, io_type="int16").model
    assert op_names(q) == [f"tfl.{op}"]
    ref, got = run_builtin(fb, x), run_builtin(q, x)
    scale = builtin_interpreter(q).get_output_details()[0]["quantization"][0]
    assert float(np.abs(ref[0] - got[0].reshape(ref[0].shape)).max()) <= 0.51 * scale


FILL_MODEL = """
func.func @main(%x: tensor<1x4x64xf32> {tfl.name = "x"}) -> (tensor<1x4x64xf32>, tensor<1x4x64xf32>) {
  %s = "tfl.shape"(%x) <{out_type = "INT32"}> {names = ["s"]} : (tensor<1x4x64xf32>) -> tensor<3xi32>
  %v = "tfl.const"() <{value = dense<0.5> : tensor<f32>}> {names = ["v"]} : () -> tensor<f32>
  %f = "tfl.fill"(%s, %v) {names = ["f"]} : (tensor<3xi32>, tensor<f32>) -> tensor<1x4x64xf32>
  %m = "tfl.maximum"(%x, %f) {names = ["m"]} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  %w = "tfl.const"() <{value = dense<-1.5> : tensor<f32>}> {names = ["w"]} : () -> tensor<f32>
  %g = "tfl.fill"(%s, %w) {names = ["g"]} : (tensor<3xi32>, tensor<f32>) -> tensor<1x4x64xf32>
  %a = "tfl.add"(%x, %g) <{fused_activation_function = "NONE"}> {names = ["a"]} : (tensor<1x4x64xf32>, tensor<1x4x64xf32>) -> tensor<1x4x64xf32>
  func.return %m, %a : tensor<1x4x64xf32>, tensor<1x4x64xf32>
}
"""


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_fill_of_shape_quantized_end_to_end(mode: str) -> None:
    """FILL(SHAPE(x), c) (a dynamic-shape constant tensor) stays integer with float I/O: no
    float FILL and QUANTIZE; its value takes the scale of the op it feeds (MAXIMUM) or its
    own (ADD). LiteRT matches the float model and the IntegerInterpreter bit for bit."""
    fb = write_flatbuffer(parse_module(FILL_MODEL))
    x = (data_rng().standard_normal((8, 1, 4, 64)) * 2).astype(np.float32)
    q = tflquant.quantize(fb, mode=mode, representative_dataset={"x": x})
    names = op_names(q.model)
    assert sorted(names) == sorted(["tfl.quantize", "tfl.shape", "tfl.fill", "tfl.maximum", "tfl.fill", "tfl.add", "tfl.dequantize", "tfl.dequantize"]), names
    ref, got = run_builtin(fb, x), run_builtin(q.model, x)
    levels = 255 if mode == "int8" else 65535
    sim = IntegerInterpreter(q.module).run([x])
    for a, b, c in zip(ref, got, sim):
        # half a step of x and of the filled value, half an output step
        bound = 1.5 * 2 * float(np.abs(a).max()) / levels
        assert float(np.abs(a - b.reshape(a.shape)).max()) <= bound
        np.testing.assert_allclose(np.asarray(c).reshape(b.shape), b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("q", ["i8:f32, 0.05:-3", "i16:f32, 0.0005"])
def test_fill_bit_exact(q: str) -> None:
    t = f"tensor<!quant.uniform<{q}>>"
    o = f"tensor<2x3x!quant.uniform<{q}>>"
    text = (
        f'func.func @main(%v: {t} {{tfl.name = "v"}}) -> {o} {{\n'
        '  %d = "tfl.const"() <{value = dense<[2, 3]> : tensor<2xi32>}> : () -> tensor<2xi32>\n'
        f'  %r = "tfl.fill"(%d, %v) {{names = ["r"]}} : (tensor<2xi32>, {t}) -> {o}\n'
        f"  func.return %r : {o}\n}}\n"
    )
    module = parse_module(text)
    dt = np.int8 if q.startswith("i8") else np.int16
    x = np.array([np.iinfo(dt).min, -7, 0, 5, np.iinfo(dt).max], dt)
    (mine,) = IntegerInterpreter(module, strict=True).run([x])
    (ref,) = run_builtin(write_flatbuffer(module), x, dequantize=False)
    assert np.array_equal(mine.reshape(ref.shape), ref)


@pytest.mark.parametrize("q", ["i8:f32, 0.05:-3", "i16:f32, 0.0005"])
def test_dynamic_update_slice_bit_exact_with_runtime_start(q: str) -> None:
    """The start is a model input (a cache position), clamped into range as LiteRT does."""
    t, u = f"tensor<6x5x!quant.uniform<{q}>>", f"tensor<2x5x!quant.uniform<{q}>>"
    text = (
        f'func.func @main(%a: {t} {{tfl.name = "a"}}, %s: tensor<2xi32> {{tfl.name = "s"}}) -> {t} {{\n'
        f'  %u = "tfl.const"() <{{value = dense<[[1, 2, 3, 4, 5], [-6, -7, -8, -9, -10]]> : tensor<2x5xi8>}}> : () -> {u}\n'
        f'  %r = "tfl.dynamic_update_slice"(%a, %u, %s) {{names = ["r"]}} : ({t}, {u}, tensor<2xi32>) -> {t}\n'
        f"  func.return %r : {t}\n}}\n"
    ).replace("xi8>", "xi8>" if q.startswith("i8") else "xi16>")
    module = parse_module(text)
    dt = np.int8 if q.startswith("i8") else np.int16
    rng = np.random.default_rng(5)
    starts = np.array([[0, 0], [3, 0], [5, 0], [-2, 1], [4, 9]], np.int32)
    x = rng.integers(-100, 100, (len(starts), 6, 5)).astype(dt)
    (mine,) = IntegerInterpreter(module, strict=True).run([x, starts])
    it = builtin_interpreter(write_flatbuffer(module))
    da, ds = it.get_input_details()
    for k in range(len(starts)):
        it.set_tensor(da["index"], x[k])
        it.set_tensor(ds["index"], starts[k])
        it.invoke()
        assert np.array_equal(mine[k], it.get_tensor(it.get_output_details()[0]["index"])), starts[k]


ONE_HOT_MODEL = """
func.func @main(%x: tensor<1x6xi32> {tfl.name = "x"}) -> tensor<1x6x8xf32> {
  %d = "tfl.const"() <{value = dense<8> : tensor<i32>}> : () -> tensor<i32>
  %on = "tfl.const"() <{value = dense<1.0> : tensor<f32>}> : () -> tensor<f32>
  %off = "tfl.const"() <{value = dense<0.0> : tensor<f32>}> : () -> tensor<f32>
  %y = "tfl.one_hot"(%x, %d, %on, %off) <{axis = -1 : i32}> {names = ["y0"]} : (tensor<1x6xi32>, tensor<i32>, tensor<f32>, tensor<f32>) -> tensor<1x6x8xf32>
  func.return %y : tensor<1x6x8xf32>
}
"""


def test_one_hot_int8_end_to_end() -> None:
    """ONE_HOT of int32 ids (token types, classes): int8 output, no float ONE_HOT + QUANTIZE;
    on = 1 and off = 0 are on the calibrated grid. Integer only it runs in LiteRT
    (TFLite Micro has no ONE_HOT kernel)."""
    fb = write_flatbuffer(parse_module(ONE_HOT_MODEL))
    x = data_rng().integers(-1, 9, (16, 1, 6)).astype(np.int32)  # -1 and 8: rows of off_value
    q = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x})
    assert op_names(q.model) == ["tfl.one_hot", "tfl.dequantize"], op_names(q.model)
    ref, got = run_builtin(fb, x), run_builtin(q.model, x)
    np.testing.assert_allclose(got[0].reshape(ref[0].shape), ref[0], rtol=0, atol=1e-6)  # float32 scale 1/255
    ib = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}, io_type="int8").model
    with pytest.raises(tflquant.TflquantError, match=r"TFLite Micro cannot run 1 op .*ONE_HOT 'y0': TFLite Micro has no kernel"):
        tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}, io_type="int8", target="micro")
    assert op_names(ib) == ["tfl.one_hot"]
    lit = run_builtin(ib, x, dequantize=False)[0]
    (sim,) = IntegerInterpreter(read_flatbuffer(ib), strict=True).run([x])
    assert np.array_equal(sim.reshape(lit.shape), lit)
    with pytest.raises(TflmMissingOps):
        tflm_run(ib, [x])


def test_new_int8_ops_carry_the_converters_op_versions() -> None:
    """Op versions as TFLite's op_version rules give them: REVERSE_V2 int8 3, TOPK_V2 int8 2;
    ELU, RELU_0_TO_1 and ONE_HOT have no type-dependent versions (1)."""
    from tflquant.dialects import tfl
    from tflquant.tflite.versions import builtin_version

    cases = {
        "reverse_v2": (one_op_model(
            "reverse_v2", "1x4x8", ["tensor<1x4x8xf32>"], params="tensor<1xi32>", operands="%x, %a",
            consts='  %a = "tfl.const"() <{value = dense<[1]> : tensor<1xi32>}> : () -> tensor<1xi32>\n'), 3),
        "topk_v2": (one_op_model(
            "topk_v2", "1x4x8", ["tensor<1x4x2xf32>", "tensor<1x4x2xi32>"], params="tensor<i32>", operands="%x, %k",
            consts='  %k = "tfl.const"() <{value = dense<2> : tensor<i32>}> : () -> tensor<i32>\n'), 2),
        "elu": (one_op_model("elu", "1x4x8", ["tensor<1x4x8xf32>"]), 1),
    }  # fmt: skip
    x = (data_rng().standard_normal((8, 1, 4, 8))).astype(np.float32)
    for name, (text, want) in cases.items():
        fb = write_flatbuffer(parse_module(text))
        float_op = next(o for o in read_flatbuffer(fb).walk() if o.name == f"tfl.{name}")
        assert builtin_version(float_op) == 1, name
        q = tflquant.quantize(fb, mode="int8", representative_dataset={"x": x}).module
        op = next(o for o in q.walk() if o.name == f"tfl.{name}")
        assert isinstance(op, tfl.TflOp) and builtin_version(op) == want, (name, builtin_version(op))
