"""The calibration-speed paths of the float kernels (large batches only take them) against
plain numpy formulas: LOGISTIC bit for bit, ADD/MUL with a fused activation bit for bit,
convolutions of small images batched into one product and large 1x1 products against a
float64 reference. The kernels themselves are checked against LiteRT in test_reference_float."""

from __future__ import annotations

import numpy as np
import pytest

from tflquant.reference import float_kernels as fk

F32 = np.float32


def _sigmoid_plain(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_sigmoid_equals_the_two_sided_formula(dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(100_003) * 12).astype(dtype)  # several chunks and a partial one
    x[:8] = [-np.inf, np.inf, np.nan, 0.0, -0.0, -100, 100, 1e-7]
    with np.errstate(all="ignore"):
        want, got = _sigmoid_plain(x), fk._sigmoid(x)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, want)
    # non-contiguous, 0-d and empty inputs
    v = x[:999].reshape(27, 37)[:, ::3]
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(fk._sigmoid(v), _sigmoid_plain(v))
    assert fk._sigmoid(np.zeros((0, 3), dtype)).shape == (0, 3)
    assert float(fk._sigmoid(np.array(0.0, dtype))) == 0.5


@pytest.mark.parametrize("builtin,act", [("ADD", "RELU"), ("ADD", "RELU6"), ("MUL", "RELU_N1_TO_1"), ("SUB", "RELU")])
def test_binary_with_activation_in_chunks(builtin: str, act: str) -> None:
    from models import GraphBuilder

    shape = (1, 40, 40, 24)  # 38400 values: more than one chunk
    g = GraphBuilder("main", {"a": (shape, F32), "b": (shape, F32)})
    y = g.op(builtin, [g.args["a"], g.args["b"]], shape, fused_activation_function=act)
    g.module([y])
    kern = fk.KERNELS[builtin](y.owner)
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((3, *shape)) * 4).astype(F32)
    b = (rng.standard_normal((3, *shape)) * 4).astype(F32)
    fn = {"ADD": np.add, "MUL": np.multiply, "SUB": np.subtract}[builtin]
    lo, hi = {"RELU": (0, np.inf), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}[act]
    np.testing.assert_array_equal(kern(a, b), np.clip(fn(a, b), lo, hi))


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, dil: int, padding: str) -> np.ndarray:
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    oh, pt, pb = fk.out_size_and_pad(h, kh, stride, dil, padding)
    ow, pl, pr = fk.out_size_and_pad(wd, kw, stride, dil, padding)
    xp = np.pad(x.astype(np.float64), [(0, 0), (pt, pb), (pl, pr), (0, 0)])
    y = np.zeros((n, oh, ow, o))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dil : i * dil + (oh - 1) * stride + 1 : stride, j * dil : j * dil + (ow - 1) * stride + 1 : stride]
            y += patch @ w[:, i, j, :].T.astype(np.float64)
    return y + b


@pytest.mark.parametrize("hw,k,stride,dil,padding", [(7, 3, 1, 1, "SAME"), (14, 3, 2, 1, "SAME"), (9, 3, 1, 2, "VALID"), (16, 3, 2, 1, "SAME")])
def test_conv_of_small_images_in_one_product(hw: int, k: int, stride: int, dil: int, padding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    n, c, o = 9, 192, 64
    monkeypatch.setattr(fk, "_CONV_GEMM_MIN_WORK", 0)  # take the batched path at this size
    calls = []
    batched = fk._conv_group_samples
    monkeypatch.setattr(fk, "_conv_group_samples", lambda *a: calls.append(a[0].shape[0]) or batched(*a))
    x = rng.standard_normal((n, hw, hw, c)).astype(F32)
    w = (rng.standard_normal((o, k, k, c)) / np.sqrt(k * k * c)).astype(F32)
    b = rng.standard_normal(o).astype(F32)
    old = fk.set_threads(1)
    try:
        y = fk.conv2d_nhwc(x, w, b, (stride, stride), (dil, dil), padding, fk.activation("RELU6"))
        per_sample = np.concatenate([fk.conv2d_nhwc(x[s : s + 1], w, b, (stride, stride), (dil, dil), padding) for s in range(n)])
    finally:
        fk.set_threads(old)
    assert calls and calls[0] == n  # the whole batch went through the batched path
    ref = _conv_ref(x, w, b, stride, dil, padding)
    assert y.dtype == F32
    np.testing.assert_allclose(y, np.clip(ref, 0, 6), rtol=0, atol=2e-5 * np.abs(ref).max())
    np.testing.assert_allclose(np.clip(per_sample, 0, 6), y, rtol=0, atol=2e-5 * np.abs(ref).max())


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("hw,stride,padding", [(56, 1, "SAME"), (57, 2, "SAME"), (57, 2, "VALID"), (30, 3, "SAME")])
def test_pointwise_conv_large_products(hw: int, stride: int, padding: str, big: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if big:
        monkeypatch.setattr(fk, "_POINTWISE_BIG_ROWS", 0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, hw, hw, 24)).astype(F32)
    w = (rng.standard_normal((144, 1, 1, 24)) / 5).astype(F32)
    b = rng.standard_normal(144).astype(F32)
    y = fk.conv2d_nhwc(x, w, b, (stride, stride), (1, 1), padding, fk.activation("RELU"))
    ref = _conv_ref(x, w, b, stride, 1, padding)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("order", ["x_sig", "sig_x"])
def test_swish_logistic_hands_its_product_to_the_mul(order: str) -> None:
    """LOGISTIC then MUL(x, sigmoid(x)) (swish as the TF converter writes it): the MUL takes
    the product the LOGISTIC computed chunk by chunk; every value equals the plain formulas,
    and a MUL of the sigmoid by something else (squeeze-excite) is computed as usual."""
    from models import GraphBuilder

    from tflquant.ir import value_name
    from tflquant.reference.interpreter import Interpreter

    shape = (1, 24, 24, 40)
    g = GraphBuilder("main", {"x": (shape, F32), "z": (shape, F32)})
    x, z = g.args["x"], g.args["z"]
    s = g.op("LOGISTIC", [x], shape, name="sig")
    m = g.op("MUL", [x, s] if order == "x_sig" else [s, x], shape, name="swish", fused_activation_function="NONE")
    e = g.op("MUL", [m, s], shape, name="excite", fused_activation_function="NONE")
    s2 = g.op("LOGISTIC", [z], shape, name="sig2")
    o = g.op("MUL", [s2, e], shape, name="other", fused_activation_function="NONE")
    module = g.module([o])
    rng = np.random.default_rng(4)
    xs = (rng.standard_normal((5, *shape)) * 6).astype(F32)
    zs = (rng.standard_normal((5, *shape)) * 6).astype(F32)
    seen: dict[str, np.ndarray] = {}
    (out,) = Interpreter(module).run([xs, zs], observer=lambda v, a: seen.__setitem__(value_name(v), np.array(a)))
    sig, sig2 = _sigmoid_plain(xs), _sigmoid_plain(zs)
    np.testing.assert_array_equal(seen["sig"], sig)
    np.testing.assert_array_equal(seen["swish"], xs * sig)
    np.testing.assert_array_equal(seen["excite"], xs * sig * sig)
    np.testing.assert_array_equal(out, sig2 * (xs * sig * sig))
    # the MUL run alone (no LOGISTIC before it in this thread) computes the product itself
    mul = next(op for op in module.walk() if op.name == "tfl.mul")
    y = sig[:2].copy()
    np.testing.assert_array_equal(fk.KERNELS["MUL"](mul)(xs[:2], y), xs[:2] * y)
