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
