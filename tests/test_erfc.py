"""The numpy-only erfc (W. J. Cody's rational approximations) behind the float GELU kernel:
full float64 accuracy against math.erfc, the special values, and float32 GELU equal to a
reference computed one value at a time with math.erfc; the table the float32 GELU goes through
(its error bound, and equality with the Cody path where a value lies near a float32 rounding
boundary). All 2^32 float32 inputs were checked against the Cody path outside the suite."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tflquant.reference import float_kernels as fk
from tflquant.reference.float_kernels import _ERFC_CHUNK, _gelu_exact, erfc

_cody = fk._gelu_cody

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


def _midpoint_distance(x: np.ndarray) -> np.ndarray:
    """How far 0.5 x erfc(-x / sqrt(2)) (float64) lies from the nearest float32 rounding boundary,
    in float32 ulps (0: on a midpoint)."""
    r = 0.5 * x.astype(np.float64) * erfc(x.astype(np.float64) * -math.sqrt(0.5))
    y = r.astype(np.float32)
    frac = np.abs(r - y.astype(np.float64)) / np.spacing(np.abs(y)).astype(np.float64)
    return np.abs(0.5 - frac)


def test_gelu_table_equals_cody_path_near_rounding_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    # the float32 GELU goes through a cubic table and takes Cody's erfc only where the table's
    # value is within its error bound of a float32 rounding boundary: the inputs whose product
    # lies closest to a boundary, the table's ends and interval edges, the saturated ranges
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.standard_normal(100_000) * 2.0, rng.uniform(-8.0, 8.0, 100_000)]).astype(np.float32)
    hard = x[np.argsort(_midpoint_distance(x))[:300]]
    edges = np.array([-15.0, -8.0, 8.0, (0.5 - 4096) / 512, (4096 - 0.5) / 512, 0.5 / 512, -0.5 / 512, 3.0 + 0.5 / 512], np.float32)
    edges = np.concatenate([np.nextafter(edges, -np.inf), edges, np.nextafter(edges, np.inf)])
    wide = rng.uniform(-40.0, 40.0, 20_000).astype(np.float32)
    tiny = np.array([1e-45, 3e-45, -3e-45, 1.2e-38, -1.1e-38, 1e-30, 6e-8, -6e-8], np.float32)
    x = np.concatenate([hard, edges, wide, tiny, x])
    want = fk._gelu_cody(x)
    calls: list[int] = []
    def counting(v: np.ndarray) -> np.ndarray:
        calls.append(v.size)
        return _cody(v)

    monkeypatch.setattr(fk, "_gelu_cody", counting)
    got = fk._gelu_exact(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert sum(calls) < x.size // 50  # most values do not take Cody's path
    calls.clear()
    fk._gelu_exact(hard)
    assert sum(calls) >= 250  # most of the 300 nearest a boundary do (within E of it)
    np.testing.assert_array_equal(got[:300].view(np.uint32), _gelu_reference(hard).view(np.uint32))


def test_gelu_table_error_bound() -> None:
    # the table's bound E, measured on other points than the ones that set it: the cubic's
    # relative difference from Cody's erfc / 2 stays within E / 2 on 10^6 random float32 inputs
    table, eps = fk._phi_table()
    assert 1e-14 <= eps <= 1e-10
    assert np.isnan(table[0]).all() and np.isnan(table[-1]).all()
    x = np.random.default_rng(5).uniform(-8.0, 8.0, 1_000_000).astype(np.float32).astype(np.float64)
    s = x * fk._PHI_SCALE
    j = np.rint(s)
    t = s - j
    c = table[(j + fk._PHI_SCALE * fk._PHI_RANGE + 1).astype(np.intp)]
    p = ((c[:, 3] * t + c[:, 2]) * t + c[:, 1]) * t + c[:, 0]
    want = 0.5 * erfc(x * -math.sqrt(0.5))
    assert (np.abs(p - want) / want).max() <= eps / 2


def test_gelu_mostly_off_the_table() -> None:
    # most values off the table: Cody's path runs on the gathered values before a chunk's are
    # written past them (more than a chunk of them pending) and after the last chunk
    x = np.random.default_rng(3).uniform(-40.0, 40.0, 3 * _ERFC_CHUNK + 5).astype(np.float32)
    x[::7] = np.nan
    x[1::11] = -np.inf
    got = _gelu_exact(x)
    with np.errstate(invalid="ignore"):  # -inf * 0
        want = _cody(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert (got[(x >= 8.0)] == x[x >= 8.0]).all() and np.isnan(got[1::11]).all()
