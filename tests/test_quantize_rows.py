"""quantize-weights' round to nearest per channel (_quantize_rows): slice by slice in two
reused work buffers, the same codes, scales and SQNR as the whole-tensor formula and as
sqnr_db, whatever the slice boundaries; codes handed to the IR without a copy."""

from __future__ import annotations

import numpy as np
import pytest

import tflquant.passes.quantize_weights as qw
from tflquant.tflite.int4 import Slab


def _formula(w: np.ndarray, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    s = (np.abs(w).max(axis=1) / np.float32(qmax)).astype(np.float32)
    s[~(s > 0)] = 1.0
    return np.clip(np.rint(w / s[:, None]), -qmax, qmax).astype(np.int8), s


def _sqnr64(w: np.ndarray, q: np.ndarray, s: np.ndarray) -> float:
    w64 = w.astype(np.float64)
    err = w64 - q.astype(np.float64) * s.astype(np.float64)[:, None]
    return 10 * np.log10((w64 * w64).sum() / (err * err).sum())


# (rows, columns) against a 64-element slice: one slice, slices of many rows ending inside
# and at the end, rows longer than a slice (one row a slice), a column, a single row
@pytest.mark.parametrize("shape", [(3, 5), (7, 13), (64, 1), (50, 16), (9, 64), (5, 97), (1, 300), (33, 7)])
@pytest.mark.parametrize("bits", [8, 4])
def test_slices_give_the_whole_tensor_formula(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int], bits: int) -> None:
    monkeypatch.setattr(qw, "_CHUNK", 64)
    qmax = (1 << (bits - 1)) - 1
    r = np.random.default_rng(shape[0] * 1000 + shape[1])
    w = (r.standard_normal(shape) * np.exp(2 * r.standard_normal((shape[0], 1)))).astype(np.float32)
    if shape[0] > 2:
        w[1] = 0.0  # an all-zero row: scale 1.0
        w[2, 0] = -np.abs(w[2]).max() * 3  # a row's maximum on a negative value
    want_q, want_s = _formula(w, qmax)
    for slab in (None, Slab()):
        q, s, db = qw._quantize_rows(w, qmax, measure=True, slab=slab)
        np.testing.assert_array_equal(q, want_q)
        np.testing.assert_array_equal(s, want_s)
        assert db == qw.sqnr_db(w, q, s[:, None])  # the same terms in the same order
        if shape[1] > 1:  # (one value a row is exact but for float32 rounding: no float64 match)
            assert db == pytest.approx(_sqnr64(w, q, s), abs=1e-3)
    q2, s2, none = qw._quantize_rows(w, qmax)
    assert none is None and np.array_equal(q2, want_q) and np.array_equal(s2, want_s)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 4, 49])
def test_a_nan_or_infinity_in_any_slice_gives_none(monkeypatch: pytest.MonkeyPatch, bad: float, row: int) -> None:
    monkeypatch.setattr(qw, "_CHUNK", 64)  # 4 rows of 16 a slice: the bad value's slice is not the first for rows 4, 49
    w = np.random.default_rng(row).standard_normal((50, 16)).astype(np.float32)
    w[row, 7] = bad
    assert qw._quantize_rows(w, 127, measure=True) is None
    assert qw._quantize_rows(w, 7, slab=Slab()) is None


def test_codes_go_to_the_ir_without_a_copy() -> None:
    slab = Slab()
    q = slab.take((4, 8), np.int8)
    q[...] = np.arange(32, dtype=np.int8).reshape(4, 8)
    attr = qw._codes_attr(q)
    view = attr.data.data
    assert isinstance(view, memoryview) and view.readonly
    assert np.shares_memory(np.frombuffer(view, np.int8), q)
    assert not q.flags.writeable  # frozen: the IR's payload cannot change under it
    assert bytes(view) == np.arange(32, dtype=np.int8).tobytes()
    other = np.arange(32, dtype=np.int8).reshape(4, 8)  # codes from elsewhere (data-aware rounding): copied
    copied = qw._codes_attr(other, own=False)
    assert isinstance(copied.data.data, bytes) and other.flags.writeable
    strided = np.arange(64, dtype=np.int8).reshape(8, 8)[::2]
    assert bytes(qw._codes_attr(strided).data.data) == strided.tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("mode", ["dynamic", "weight-only"])
@pytest.mark.parametrize("gran,bits", [("block", 4), ("channel", 4), ("channel", 8), ("tensor", 8)])
def test_a_non_finite_weight_rounded_to_nearest_is_named(bad: float, mode: str, gran: str, bits: int) -> None:
    """Rounding to nearest finds a NaN or infinity from the maxima it takes anyway (no
    separate pass over the weight): blocks read directly, blocks read through DEQUANTIZE
    (weight-only), channels and one scale all name the weight."""
    import tflquant
    from tflquant.errors import TflquantError
    from tests.models import GraphBuilder

    r = np.random.default_rng(1)
    g = GraphBuilder("main", {"x": ((2, 128), np.float32)})
    w = r.standard_normal((96, 128)).astype(np.float32)
    w[70, 100] = bad  # past the first slice of blocks / rows when slices are small
    y = g.op("FULLY_CONNECTED", [g.x, g.const(w, "w_bad"), g.no_value()], (2, 96), name="fc")
    with pytest.raises(TflquantError, match="w_bad.*NaN or infinite"):
        tflquant.quantize(g.tflite([y]), mode=mode, weight_bits=bits, granularity=gran, block_size=32, weight_rounding="nearest")


@pytest.mark.parametrize("shape,block", [((3, 32), 32), ((70, 128), 32), ((70, 128), 128), ((5, 7, 256), 32), ((5, 7, 256), 128), ((1, 4096), 128)])
def test_blocks_in_slices_give_the_whole_tensor_steps(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], block: int) -> None:
    """_quantize_blocks (slices of blocks, maxima by segments) equals the whole-tensor steps:
    choose_scales' scales at least the smallest fp16 normal, in fp16, codes rounded with them
    and clipped; an all-zero block, tiny and huge blocks included."""
    monkeypatch.setattr(qw, "_CHUNK", 256)
    r = np.random.default_rng(block + shape[0])
    w = (r.standard_normal(shape) * np.exp(3 * r.standard_normal(shape[:-1] + (1,)))).astype(np.float32)
    flat = w.reshape(-1, block)
    flat[0] = 0.0
    if flat.shape[0] > 2:
        flat[1] *= np.float32(1e-9)  # max|w| / 7 below the smallest fp16 normal: clamped, codes clipped
        flat[2] *= np.float32(1e4)
    s16 = np.maximum(np.maximum(qw.choose_scales(flat, 7), qw.FP16_TINY).astype(np.float16), np.float16(qw.FP16_TINY))
    want = np.clip(np.rint(flat / s16.astype(np.float32)[:, None]), -7, 7).astype(np.int8).reshape(shape)
    for slab in (None, Slab()):
        q, s = qw._quantize_blocks(w, block, 7, slab)
        np.testing.assert_array_equal(s, s16)
        np.testing.assert_array_equal(q, want)
    q2, t2 = qw.quantize_blockwise(w, block, 4)
    np.testing.assert_array_equal(q2, want)
    np.testing.assert_array_equal(t2.scale_array().reshape(-1), s16.astype(np.float32))


@pytest.mark.parametrize("size", [1, 63, 64, 65, 1000])
@pytest.mark.parametrize("bits", [8, 4, 16])
def test_one_scale_in_slices_equals_the_formula(monkeypatch: pytest.MonkeyPatch, size: int, bits: int) -> None:
    """_quantize_tensor (max|w| slice by slice, then the rounding slice by slice, no clip after
    an absmax scale) equals max|w| / qmax and clip(rint(w / s)); an all-zero weight gets 1.0;
    a NaN or infinity in any slice gives None."""
    monkeypatch.setattr(qw, "_CHUNK", 64)
    qmax = (1 << (bits - 1)) - 1
    w = (np.random.default_rng(size).standard_normal((size, 3)) * 7).astype(np.float32)
    s = np.float32(np.abs(w).max() / np.float32(qmax))
    want = np.clip(np.rint(w / s), -qmax, qmax).astype(np.int8 if bits < 16 else np.int16)
    q, got = qw._quantize_tensor(w, qmax)
    assert got.dtype == np.float32 and got[0] == s and q.dtype == want.dtype
    np.testing.assert_array_equal(q, want)
    q0, s0 = qw._quantize_tensor(np.zeros_like(w), qmax)
    assert s0[0] == 1.0 and not q0.any()
    for bad in (np.nan, np.inf, -np.inf):
        w2 = w.copy()
        w2.reshape(-1)[-1] = bad
        assert qw._quantize_tensor(w2, qmax) is None
