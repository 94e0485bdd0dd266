"""End to end, 16x8 (int16 activations, int8 weights): quantized models run in LiteRT, are
more accurate than int8, and at least as accurate as the TF converter's 16x8 files.

- Self-contained: a small attention model with an int32 token input (the kind the TF
  converter refuses to quantize to 16x8), built from IR.
- Conformance: every model in ../shared/models (skipped when absent), scored like
  ../shared/tools/score.py against tf_int16x8.tflite; the tiny transformer, which has none,
  against our own int8 model. Float and int16 model I/O, strict mode, int32 biases.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import MODEL_NAMES, shared_model_dir
from models import GraphBuilder, sample_inputs

import tflquant
from tflquant.scoring import litert_run, load_eval, sqnr_db
from tflquant.tflite.writer import write_flatbuffer

# A 16x8 model may trail the TF converter's by this much. Measured (eval.npz, all samples):
# digits_cnn 31.772 vs 31.763, small_unet 63.702 vs 63.691, mobilenet_v2 46.556 vs 46.562
# (-0.006 dB); tiny_transformer (no TF file) 48.74 vs our int8 30.80. The mobilenet gap is
# TF's calibration, not a better scheme: its logger records an in-place ADD's output as the
# ADD's second input, so every residual branch gets the ADD output's (wider) range; copying
# that gave no gain (46.549 dB). Differences this small move either way with any rounding.
SQNR_SLACK_DB = 0.02


def tensor_details(model: bytes) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model).get_tensor_details()


def assert_16x8_structure(model: bytes) -> None:
    """int16 tensors symmetric (zero point 0); softmax/logistic/tanh outputs at 1/32768."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    details = {t["index"]: t for t in it.get_tensor_details()}
    for t in details.values():
        if t["dtype"] == np.int16:
            assert not np.any(t["quantization_parameters"]["zero_points"]), t["name"]
    for o in it._get_ops_details():
        if o["op_name"] in ("SOFTMAX", "LOGISTIC", "TANH"):
            out = details[o["outputs"][0]]
            if out["dtype"] == np.int16:
                assert out["quantization_parameters"]["scales"][0] == np.float32(1 / 32768), o["op_name"]


# ---------------------------------------------------------------------------------------
# Self-contained: attention over int32 tokens
# ---------------------------------------------------------------------------------------


def attention_model():  # noqa: ANN201
    """tokens [1, 8] int32 -> embedding gather -> q/k/v fully connected -> softmax(q k^T / 4)
    -> v -> output projection + residual -> mean-centred tanh -> logistic gate -> classifier
    -> softmax [1, 4]."""
    r = np.random.default_rng(11)

    def w(*shape: int, scale: float = 0.25) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    g = GraphBuilder("main", {"tokens": ((1, 8), np.int32)})
    d = 16
    e = g.op("GATHER", [g.const(w(32, d, scale=1.0), "embedding"), g.x], (1, 8, d), axis=0)
    q = g.op("FULLY_CONNECTED", [e, g.const(w(d, d), "q/w"), g.const(w(d), "q/b")], (1, 8, d), keep_num_dims=True)
    k = g.op("FULLY_CONNECTED", [e, g.const(w(d, d), "k/w"), g.const(w(d), "k/b")], (1, 8, d), keep_num_dims=True)
    v = g.op("FULLY_CONNECTED", [e, g.const(w(d, d), "v/w"), g.no_value()], (1, 8, d), keep_num_dims=True)
    s = g.op("BATCH_MATMUL", [q, k], (1, 8, 8), adj_y=True)
    s = g.op("MUL", [s, g.const(np.float32(0.25))], (1, 8, 8))
    p = g.op("SOFTMAX", [s], (1, 8, 8), beta=1.0)
    a = g.op("BATCH_MATMUL", [p, v], (1, 8, d))
    o = g.op("FULLY_CONNECTED", [a, g.const(w(d, d), "o/w"), g.const(w(d), "o/b")], (1, 8, d), keep_num_dims=True)
    h = g.op("ADD", [e, o], (1, 8, d))
    mu = g.op("MEAN", [h, g.const(np.array([2], np.int32))], (1, 8, 1), keep_dims=True)
    c = g.op("TANH", [g.op("SUB", [h, mu], (1, 8, d))], (1, 8, d))
    gate = g.op("LOGISTIC", [g.op("FULLY_CONNECTED", [c, g.const(w(d, d), "gate/w"), g.const(w(d), "gate/b")],
                                  (1, 8, d), keep_num_dims=True)], (1, 8, d))
    pooled = g.op("MEAN", [g.op("MUL", [c, gate], (1, 8, d)), g.const(np.array([1], np.int32))], (1, d))
    logits = g.op("FULLY_CONNECTED", [pooled, g.const(w(4, d), "cls/w"), g.const(w(4), "cls/b")], (1, 4))
    return g.module([g.op("SOFTMAX", [logits], (1, 4), beta=1.0, name="probs")], ["probs"])


def _tokens(n: int, seed: int) -> dict[str, np.ndarray]:
    return {"tokens": np.random.default_rng(seed).integers(0, 32, size=(n, 1, 8)).astype(np.int32)}


def test_attention_model_16x8_beats_int8_in_litert() -> None:
    float_model = write_flatbuffer(attention_model())
    calib, evaluation = _tokens(64, 1), _tokens(48, 2)
    assert set(sample_inputs(attention_model())) == {"tokens"}
    ref = litert_run(float_model, [evaluation["tokens"]])[0]
    q16 = tflquant.quantize(float_model, mode="int16x8", representative_dataset=calib)
    q8 = tflquant.quantize(float_model, mode="int8", representative_dataset=calib)
    s16 = sqnr_db(ref, litert_run(q16.model, [evaluation["tokens"]])[0])
    s8 = sqnr_db(ref, litert_run(q8.model, [evaluation["tokens"]])[0])
    assert s16 > s8 + 6, (s16, s8)
    assert s16 > 40
    assert_16x8_structure(q16.model)
    kinds = {o.kind for o in q16.report.ops}
    assert "float" not in kinds  # every op of this model has an int16 kernel


def test_ops_without_int16_kernel_fall_back_to_float_unless_strict() -> None:
    """L2_NORMALIZATION and LOG_SOFTMAX have no int16 kernel: they run in float between
    DEQUANTIZE and QUANTIZE; strict mode fails with one error naming both."""
    g = GraphBuilder("main", {"x": ((1, 8), np.float32)})
    a = g.op("L2_NORMALIZATION", [g.x], (1, 8), name="l2")
    b = g.op("LOG_SOFTMAX", [a], (1, 8), name="log_softmax")
    w = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    y = g.op("FULLY_CONNECTED", [b, g.const(w), g.no_value()], (1, 4), name="fc")
    model = g.tflite([y])
    x = np.random.default_rng(6).standard_normal((16, 1, 8)).astype(np.float32)
    res = tflquant.quantize(model, mode="int16x8", representative_dataset={"x": x})
    kinds = {o.op_type: o.kind for o in res.report.ops}
    assert kinds["L2_NORMALIZATION"] == kinds["LOG_SOFTMAX"] == "float" and kinds["FULLY_CONNECTED"] == "int16"
    assert sqnr_db(litert_run(model, [x])[0], litert_run(res.model, [x])[0]) > 40
    with pytest.raises(tflquant.TflquantError) as e:
        tflquant.quantize(model, mode="int16x8", representative_dataset={"x": x}, allow_float=False)
    msg = str(e.value)
    assert "'l2' (L2_NORMALIZATION)" in msg and "'log_softmax' (LOG_SOFTMAX)" in msg and "fc" not in msg


# ---------------------------------------------------------------------------------------
# ../shared/models against the TF converter
# ---------------------------------------------------------------------------------------


# LiteRT's int16 kernels are reference code: small_unet takes 0.3 s a sample in 16x8, so the
# tests score a prefix of eval.npz (ours and TF's on the same samples; the ordering holds
# on every prefix we measured).
MAX_EVAL = 32


@functools.cache
def _eval(name: str) -> list[np.ndarray]:
    return load_eval(shared_model_dir(name) / "eval.npz", MAX_EVAL)[0]


@functools.cache
def _float_outputs(name: str) -> list[np.ndarray]:
    return litert_run((shared_model_dir(name) / "float.tflite").read_bytes(), _eval(name))


@functools.cache
def _quantized(name: str, mode: str = "int16x8", **kw: object) -> tflquant.QuantizationResult:
    d = shared_model_dir(name)
    return tflquant.quantize(str(d / "float.tflite"), mode=mode, representative_dataset=str(d / "calib.npz"), **kw)


def _sqnrs(name: str, model: bytes) -> list[float]:
    return [sqnr_db(r, g) for r, g in zip(_float_outputs(name), litert_run(model, _eval(name)))]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shared_16x8_at_least_as_good_as_tf_converter(name: str) -> None:
    res = _quantized(name)
    ours = _sqnrs(name, res.model)
    assert_16x8_structure(res.model)
    tf_file = shared_model_dir(name) / "tf_int16x8.tflite"
    if tf_file.exists():
        theirs = _sqnrs(name, tf_file.read_bytes())
        for a, b in zip(ours, theirs):
            assert a >= b - SQNR_SLACK_DB, f"{name}: 16x8 SQNR {a:.3f} dB < TF's {b:.3f} dB"
        assert len(res.model) <= tf_file.stat().st_size
    else:
        # the converter refuses this model (int32 token input): ours must beat our int8 model
        int8 = _sqnrs(name, _quantized(name, "int8").model)
        for a, b in zip(ours, int8):
            assert a > b + 6, f"{name}: 16x8 SQNR {a:.3f} dB is not above int8's {b:.3f} dB"


@pytest.mark.parametrize("name", ["digits_cnn", "mobilenet_v2_035_96", "tiny_transformer"])
def test_shared_16x8_int16_io(name: str) -> None:
    res = _quantized(name, io_type="int16")
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=res.model)
    for d in it.get_input_details():
        assert d["dtype"] in (np.int16, np.int32), d["name"]  # token ids stay int32
    for d in it.get_output_details():
        assert d["dtype"] == np.int16 and d["quantization"][1] == 0
    float_io = _sqnrs(name, _quantized(name).model)
    for a, b in zip(_sqnrs(name, res.model), float_io):
        assert a >= b - 0.05


def test_shared_16x8_strict_transformer_is_all_integer() -> None:
    """Strict 16x8 succeeds on the transformer: its layer norms' SQUARED_DIFFERENCE (no int16
    kernel) is rewritten as MUL(SUB, SUB) by insert-fake-quant, so nothing stays float."""
    d = shared_model_dir("tiny_transformer")
    res = tflquant.quantize(str(d / "float.tflite"), mode="int16x8", representative_dataset=str(d / "calib.npz"),
                            allow_float=False)
    assert not [o for o in res.report.ops if o.kind == "float"]


@pytest.mark.parametrize("name", [
    "digits_cnn",
    "tiny_transformer",
])
def test_shared_16x8_int32_bias(name: str) -> None:
    """bias_type="int32" where the kernels accept it (not DEPTHWISE_CONV_2D): as accurate."""
    res = _quantized(name, bias_type="int32")
    details = tensor_details(res.model)
    assert any(t["dtype"] == np.int32 and len(t["quantization_parameters"]["scales"]) for t in details)
    for a, b in zip(_sqnrs(name, res.model), _sqnrs(name, _quantized(name).model)):
        assert a >= b - 0.1
