"""CONV_2D's calibration-speed paths for large models. Winograd F(2x2, 3x3) (large 3x3
stride-1 convolutions of many channels) against the direct products it replaces and against
a float64 reference: random shapes
(odd and even sizes, SAME and VALID, with and without bias and activation, batches that
split into sample groups and into tile-row blocks), the thresholds that keep small
convolutions on the direct path, and its filter transform. 1x1 convolutions of wide filters
in 2048-row products."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tflquant.reference import float_kernels as fk

F32 = np.float32


def _ref64(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: str) -> np.ndarray:
    n, h, wd, c = x.shape
    o = w.shape[0]
    oh, pt, pb = fk.out_size_and_pad(h, 3, 1, 1, padding)
    ow, pl, pr = fk.out_size_and_pad(wd, 3, 1, 1, padding)
    xp = np.pad(x.astype(np.float64), [(0, 0), (pt, pb), (pl, pr), (0, 0)])
    y = np.zeros((n, oh, ow, o))
    for i in range(3):
        for j in range(3):
            y += (xp[:, i : i + oh, j : j + ow].reshape(-1, c) @ w[:, i, j, :].T.astype(np.float64)).reshape(y.shape)
    return y if b is None else y + b


def _conv(x, w, b, padding, act, winograd: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fk, "_WINOGRAD_MIN_WORK", 0 if winograd else 1 << 62)
    return fk.conv2d_nhwc(x, w, b, (1, 1), (1, 1), padding, act)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 5),
    h=st.integers(1, 13),
    wd=st.integers(1, 13),
    c=st.sampled_from([64, 80]),
    o=st.sampled_from([64, 72]),
    padding=st.sampled_from(["SAME", "VALID"]),
    bias=st.booleans(),
    act=st.sampled_from(["NONE", "RELU", "RELU6"]),
    block_bytes=st.sampled_from([1 << 20, 1]),  # 1: one tile row per product, one sample per group
    seed=st.integers(0, 2**16),
)
def test_winograd_equals_the_direct_products(n, h, wd, c, o, padding, bias, act, block_bytes, seed, monkeypatch) -> None:
    monkeypatch.setattr(fk, "_WINOGRAD_BYTES", block_bytes)
    monkeypatch.setattr(fk, "_WINOGRAD_TILES", 1 if block_bytes == 1 else 128)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, h, wd, c)) * 3).astype(F32)
    w = (rng.standard_normal((o, 3, 3, c)) / np.sqrt(9 * c)).astype(F32)
    b = rng.standard_normal(o).astype(F32) if bias else None
    a = fk.activation(act)
    old = fk.set_threads(1)
    try:
        direct = _conv(x, w, b, padding, a, False, monkeypatch)
        calls = []
        orig = fk._winograd_tiles
        monkeypatch.setattr(fk, "_winograd_tiles", lambda *args: calls.append(args[0].shape) or orig(*args))
        wino = _conv(x, w, b, padding, a, True, monkeypatch)
    finally:
        fk.set_threads(old)
    assert wino.shape == direct.shape and wino.dtype == F32
    if direct.size == 0:
        assert not calls
        return
    assert calls  # the Winograd path ran
    ref = _ref64(x, w, b, padding)
    lo, hi = {"NONE": (-np.inf, np.inf), "RELU": (0, np.inf), "RELU6": (0, 6)}[act]
    ref = np.clip(ref, lo, hi)
    scale = np.abs(ref).max() or 1.0
    # float32 rounding: both paths within a few ulp of the largest output of the float64 result
    np.testing.assert_allclose(wino, ref, rtol=0, atol=2e-6 * scale)
    np.testing.assert_allclose(wino, direct, rtol=0, atol=2e-6 * scale)


def test_winograd_deterministic_over_threads_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same bytes with 1 and 2 threads and on a second run."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 15, 14, 64)).astype(F32)
    w = (rng.standard_normal((64, 3, 3, 64)) / 24).astype(F32)
    b = rng.standard_normal(64).astype(F32)
    relu = fk.activation("RELU")
    old = fk.set_threads(1)
    try:
        one = _conv(x, w, b, "SAME", relu, True, monkeypatch)
        fk.set_threads(2)
        two = _conv(x, w, b, "SAME", relu, True, monkeypatch)
        again = _conv(x, w, b, "SAME", relu, True, monkeypatch)
    finally:
        fk.set_threads(old)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(two, again)


def test_winograd_filter_transform() -> None:
    """G g G^T (float32 products) against the float64 formula, as (16, C, O) matrices."""
    rng = np.random.default_rng(8)
    w = rng.standard_normal((5, 3, 3, 7)).astype(F32)
    g = fk._WINOGRAD_G
    want = np.einsum("ai,oijc,bj->abco", g, w.astype(np.float64), g).reshape(16, 7, 5)
    got = fk.winograd_filter(w)
    assert got.shape == (16, 7, 5) and got.dtype == F32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize(
    "shape,wshape,stride,dil",
    [
        ((2, 9, 9, 32), (64, 3, 3, 32), 1, 1),  # too few input channels
        ((2, 9, 9, 64), (48, 3, 3, 64), 1, 1),  # too few output channels
        ((2, 9, 9, 64), (64, 3, 3, 64), 2, 1),  # strided
        ((2, 9, 9, 64), (64, 3, 3, 64), 1, 2),  # dilated
        ((2, 9, 9, 64), (64, 5, 5, 64), 1, 1),  # not 3x3
        ((2, 9, 9, 512), (512, 3, 3, 512), 1, 1),  # transformed filter > _WINOGRAD_FILTER_BYTES
    ],
)
def test_direct_path_outside_winograd(shape, wshape, stride, dil, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fk, "_WINOGRAD_MIN_WORK", 0)
    monkeypatch.setattr(fk, "_winograd_tiles", lambda *a: pytest.fail("Winograd path taken"))
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(F32)
    w = rng.standard_normal(wshape).astype(F32)
    y = fk.conv2d_nhwc(x, w, None, (stride, stride), (dil, dil), "SAME", None)
    assert y.shape[:1] == (2,)


def test_small_convolutions_keep_the_direct_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below _WINOGRAD_MIN_WORK multiply-adds a 3x3 convolution keeps the direct path (the
    shared test models' calibration stays bit for bit)."""
    monkeypatch.setattr(fk, "_winograd_tiles", lambda *a: pytest.fail("Winograd path taken"))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 16, 16, 64)).astype(F32)  # 4*16*16*64*9*64 = 37.7M < 2**27
    w = rng.standard_normal((64, 3, 3, 64)).astype(F32)
    fk.conv2d_nhwc(x, w, None, (1, 1), (1, 1), "SAME", None)


@pytest.mark.parametrize("c,o,stride", [(512, 512, 1), (256, 1024, 2), (1024, 256, 1)])
def test_wide_pointwise_filters_in_long_products(c: int, o: int, stride: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1x1 filter of >= 2^18 weights: 2048-row products (one here), the same values as
    256-row products within float32 rounding, against float64."""
    rng = np.random.default_rng(c + o)
    x = rng.standard_normal((3, 24, 24, c)).astype(F32)
    w = (rng.standard_normal((o, 1, 1, c)) / np.sqrt(c)).astype(F32)
    b = rng.standard_normal(o).astype(F32)
    sizes: list[int] = []
    real = np.matmul

    def spy(a, bm, out=None):
        sizes.append(a.shape[0])
        return real(a, bm, out=out)

    relu = fk.activation("RELU")
    old = fk.set_threads(1)
    try:
        monkeypatch.setattr(fk.np, "matmul", spy)
        y = fk.conv2d_nhwc(x, w, b, (stride, stride), (1, 1), "SAME", relu)
        wide = list(sizes)
        monkeypatch.setattr(fk, "_POINTWISE_WIDE", 1 << 62)
        sizes.clear()
        narrow = fk.conv2d_nhwc(x, w, b, (stride, stride), (1, 1), "SAME", relu)
    finally:
        monkeypatch.setattr(fk.np, "matmul", real)
        fk.set_threads(old)
    rows = 3 * (-(-24 // stride)) ** 2
    assert wide == [rows] and max(sizes) == 256 and sum(sizes) == rows
    xs = x[:, ::stride, ::stride].astype(np.float64)
    ref = np.maximum((xs.reshape(-1, c) @ w[:, 0, 0, :].T.astype(np.float64)).reshape(y.shape) + b, 0)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6 * scale)
    np.testing.assert_allclose(y, narrow, rtol=0, atol=2e-6 * scale)


def test_relu_in_place_equals_maximum_with_zero() -> None:
    """RELU against a zero array (the fast loop) gives np.maximum(x, 0) bit for bit: NaN,
    -0.0, infinities, subnormals; several chunks and a partial one; non-contiguous, small and
    float16 arrays take the scalar form."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(7 * (fk._ELEMWISE_CHUNK // 2 + 111)).astype(F32)
    idx = rng.permutation(x.size)[:5000]
    x[idx[:1000]] = -0.0
    x[idx[1000:2000]] = np.nan
    x[idx[2000:3000]] = np.float32(-1e-44)
    x[idx[3000:4000]] = np.float32(1e-44)
    x[idx[4000:]] = -np.inf
    for a in (x, x.reshape(-1, 7)[:, 1:5], x[:100], x.astype(np.float16)):
        want = np.maximum(a, 0)
        got = a.copy()
        assert fk.relu_inplace(got) is got
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(got.view(np.uint16 if a.dtype == np.float16 else np.uint32),
                                      want.view(np.uint16 if a.dtype == np.float16 else np.uint32))
    assert fk.activation("RELU") is fk.relu_inplace
