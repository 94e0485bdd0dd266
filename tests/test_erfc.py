"""The numpy-only erfc (W. J. Cody's rational approximations) behind the float GELU kernel:
full float64 accuracy against math.erfc, the special values, and float32 GELU equal to a
reference computed one value at a time with math.erfc."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tflquant.reference.float_kernels import _ERFC_CHUNK, _gelu_exact, erfc

TINY = np.finfo(np.float64).tiny  # smallest normal float64


def _math_erfc(z: np.ndarray) -> np.ndarray:
    return np.array([math.erfc(v) for v in z.reshape(-1).tolist()], np.float64).reshape(z.shape)


def test_erfc_relative_error_on_dense_grid() -> None:
    # 600001 points over [-30, 30] (several chunks, the last partial), plus the interval ends
    # of the three formulas and the values next to them
    edges = np.array([0.46875, 4.0, 28.0])
    around = np.concatenate([np.nextafter(edges, 0), edges, np.nextafter(edges, np.inf)])
    z = np.concatenate([np.linspace(-30.0, 30.0, 600001), around, -around, [1e-300, -1e-300, 5e-324, -5e-324]])
    got, want = erfc(z), _math_erfc(z)
    assert got.dtype == np.float64 and got.shape == z.shape
    normal = want >= TINY
    rel = np.abs(got[normal] - want[normal]) / want[normal]
    assert rel.max() <= 2e-15, (rel.max(), z[normal][rel.argmax()])  # measured 9.6e-16 (4.3 ulp)
    # erfc(z) below the normal range (z > 26.55): subnormal results, a few subnormal ulps off
    assert np.abs(got[~normal] - want[~normal]).max() <= 1e-315
    assert (got[z >= 28.0] == 0.0).all() and (got[z <= -6.0] == 2.0).all()


def test_erfc_special_values() -> None:
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, np.finfo(np.float64).max, 1e-310, -1e-310])
    got = erfc(z)
    assert np.isnan(got[0])
    assert got[1:].tolist() == [0.0, 2.0, 1.0, 1.0, 0.0, 2.0, 0.0, 1.0, 1.0]
    assert not np.signbit(got[1:]).any()  # erfc(+inf) is +0.0
    # any shape and layout; 0-d and empty arrays
    grid = np.linspace(-5, 5, 24).reshape(4, 6)
    np.testing.assert_allclose(erfc(grid.T), _math_erfc(grid.T), rtol=2e-15, atol=0)
    assert erfc(np.float64(0.5)).shape == () and abs(float(erfc(np.float64(0.5))) - math.erfc(0.5)) <= 2e-16
    assert erfc(np.zeros((0, 3))).shape == (0, 3)


def _gelu_reference(x: np.ndarray) -> np.ndarray:
    """LiteRT's float GELU, one value at a time: 0.5 * x in float32, times erfc(-x / sqrt(2)) in
    float64 (math.erfc), rounded once to float32."""
    out = []
    for v in x.reshape(-1).tolist():
        half = float(np.float32(0.5) * np.float32(v))
        out.append(half * math.erfc(-v * math.sqrt(0.5)))
    with np.errstate(invalid="ignore"):
        return np.array(out, np.float64).astype(np.float32).reshape(x.shape)


def test_gelu_float32_equals_math_erfc_reference() -> None:
    rng = np.random.default_rng(7)
    n = 4 * _ERFC_CHUNK + 2560  # after the stride below: two full chunks and a partial one
    x = np.concatenate([
        rng.standard_normal(n // 2) * rng.choice([0.5, 2.0, 6.0], n // 2),
        rng.uniform(-40.0, 40.0, n - n // 2),
    ]).astype(np.float32)
    rng.shuffle(x)
    x = x.reshape(-1, 2, 64)[:, :, ::2]  # not contiguous
    got = _gelu_exact(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got.view(np.uint32), _gelu_reference(x).view(np.uint32))


def test_gelu_special_values() -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, -20.0, -60.0], np.float32)
    with np.errstate(invalid="ignore"):
        got = _gelu_exact(x)
    want = _gelu_reference(x)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.signbit(got[[1, 6, 9, 10]]).all()  # -0.0 in, -0.0 out; tiny negative products round to -0.0
    assert got[2] == np.inf and np.isnan(got[3]) and np.isnan(got[4])  # -inf * erfc(inf) = -inf * 0: NaN, as in LiteRT


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_gelu_other_float_types(dtype: type) -> None:
    x = np.linspace(-8, 8, 1001).astype(dtype)
    got = _gelu_exact(x)
    assert got.dtype == dtype
    want = np.array([0.5 * v * math.erfc(-v * math.sqrt(0.5)) for v in x.astype(np.float64).tolist()]).astype(dtype)
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=4e-15, atol=1e-300)
    else:
        np.testing.assert_array_equal(got, want)
