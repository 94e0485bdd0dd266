"""The quantized types and attributes quantize-weights builds without xDSL's checks equal the
checked ones: UniformQuantizedType.make (float32 scales taken as they are, other numbers
rounded once through float64) against the checked constructor, its verify's one-pass scale
test against the named errors, float64_attr against FloatAttr. The report's blockwise SQNR
(no dequantized copy) against sqnr_db of the dequantized weight; the pass's own rounding on a
batched search's scales against round_tensor."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import BytesAttr, DenseIntOrFPElementsAttr, Float32Type, Float64Type, FloatAttr, IntAttr, IntegerType, TensorType, i64
from xdsl.utils.exceptions import VerifyException

from tflquant.dialects._unchecked import float64_attr
from tflquant.dialects.quant import UniformQuantizedType


def _checked(storage, scales, zero_points, axis, lo, hi):
    s = np.asarray(scales, np.float64).astype("<f4").reshape(-1)
    z = np.asarray(zero_points).astype("<i8").reshape(-1)
    if z.size == 1 and s.size != 1:
        z = np.repeat(z, s.size)
    dense = lambda v, e: DenseIntOrFPElementsAttr(TensorType(e, [v.size]), BytesAttr(v.tobytes()))
    return UniformQuantizedType(storage, Float32Type(), IntAttr(axis), dense(s, Float32Type()), dense(z, i64), IntAttr(lo), IntAttr(hi))


@pytest.mark.parametrize("scales, zero_points, axis", [
    (np.array([0.5, 1e-3, 3.25e-7], np.float32), 0, 0),
    (np.array([0.1, 0.2], np.float64), 0, 1),  # float64: rounded once to float32
    (0.1, 0, -1),
    (0.1, -3, -1),
    ([0.5, 0.25], [0, -3], 0),
    (np.array([[0.5], [0.25]], np.float32), np.array([1, 2]), 0),
    (np.array([1e-45, 3.4e38], np.float32), 0, 0),  # a subnormal and the largest float32: positive and finite
])
def test_uniform_type_make_equals_the_checked_constructor(scales, zero_points, axis):
    t = UniformQuantizedType.make(IntegerType(8), scales, zero_points, axis=axis, narrow=True)
    want = _checked(IntegerType(8), scales, zero_points, axis, -127, 127)
    assert t == want and hash(t) == hash(want)


@pytest.mark.parametrize("bad", [0.0, -0.0, -1.5, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("per_axis", [False, True])
def test_uniform_type_bad_scale_named(bad, per_axis):
    scales = np.array([0.5, bad, 0.25] if per_axis else [bad], np.float32)
    with pytest.raises(VerifyException, match=f"quant scale must be positive and finite, got {np.float64(np.float32(bad))}"):
        UniformQuantizedType.make(IntegerType(8), scales, 0, axis=0 if per_axis else -1)


def test_uniform_type_zero_point_out_of_range_named():
    with pytest.raises(VerifyException, match=r"zero point -129 out of storage range \[-128, 127\]"):
        UniformQuantizedType.make(IntegerType(8), [0.5, 0.25], [0, -129], axis=0)


@pytest.mark.parametrize("v", [0.0, -0.0, 14.837261, 99.0, 1e-300, -7.5e307])
def test_float64_attr_equals_float_attr(v):
    a, b = float64_attr(v), FloatAttr(v, Float64Type())
    assert a == b and hash(a) == hash(b)
    a.verify()


@pytest.mark.parametrize("shape, block", [((96, 256), 32), ((3000, 64), 64), ((7, 3, 64), 32), ((2, 3, 4, 128), 128), ((1, 256), 32), ((64,), 32)])
def test_blockwise_sqnr_equals_sqnr_of_the_dequantized_weight(shape, block):
    """The report's blockwise SQNR (slice by slice, no dequantized copy) is sqnr_db of the
    dequantized weight, to the bit (several slices of rows, rank 1 to 4)."""
    from tflquant.passes.quantize_weights import blockwise_sqnr_db, quantize_blockwise, sqnr_db

    w = np.random.default_rng(3).standard_t(3, shape).astype(np.float32)
    q, t = quantize_blockwise(w, block, 4)
    want = sqnr_db(w.reshape(q.shape), t.dequantize(q.astype(np.float32)), 1.0, 0.0)
    assert blockwise_sqnr_db(w.reshape(q.shape), q, t.scale_array(), block) == want


@pytest.mark.parametrize("shape, axis", [((40, 24), 0), ((3, 5, 7, 16), 3), ((6, 70000 // 6), 0), ((300,), 0), ((9, 33), None)])
def test_rounding_on_found_scales_equals_round_tensor(shape, axis):
    """quantize-weights rounds a weight on its batched search's scales itself, slice by slice
    (channel on any axis, or one scale): round_tensor's codes and scales."""
    from tflquant.calibration.weight_rounding import qrange, round_tensor, search_scales_many, tensor_groups
    from tflquant.passes.quantize_weights import _round_on

    w = np.random.default_rng(5).standard_t(3, shape).astype(np.float32)
    gran = "tensor" if axis is None else "channel"
    qmin, qmax = qrange(4)
    found = search_scales_many([tensor_groups(w, axis, gran)], qmin, qmax)[0]
    want = round_tensor(w, axis, 4, gran, group_scales=found, finite=True)
    got = _round_on(w, axis, 4, found)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
