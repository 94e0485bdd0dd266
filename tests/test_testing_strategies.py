"""Property tests of tflquant.testing's strategies and of tflquant.quant_math."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tflquant import quant_math as qm
from tflquant import testing as tt
from tflquant.dialects.quant import CalibrationStatsAttr, UniformQuantizedType
from tflquant.ir import parse_module, print_module
from tflquant.reference import Interpreter

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies produce valid IR ---------------------------------------------------------


@FAST
@given(tt.quant_types(per_axis=None, signed=None))
def test_quant_types_are_valid_and_round_trip(t: UniformQuantizedType) -> None:
    t.verify()
    text = f"func.func @f(%x: tensor<8x!quant.uniform<{_params(t)}>>) {{\n  func.return\n}}\n"
    m = parse_module(text)
    assert m.body.block.first_op.function_type.inputs.data[0].element_type == t  # type: ignore[union-attr]


def _params(t: UniformQuantizedType) -> str:
    s = str(t)
    return s[len("!quant.uniform<") : -1]


@FAST
@given(tt.calibration_stats(per_axis=None))
def test_calibration_stats_are_valid(s: CalibrationStatsAttr) -> None:
    s.verify()
    assert np.all(s.min_array() <= s.max_array())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tt.graphs_with_data())
def test_random_graphs_verify_round_trip_and_run(g) -> None:  # noqa: ANN001
    module, data = g
    module.verify()
    text = print_module(module)
    assert print_module(parse_module(text)) == text
    (y,) = Interpreter(module).run(data)
    assert np.all(np.isfinite(y))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_quantized_graphs_are_valid(data) -> None:  # noqa: ANN001
    mode = data.draw(st.sampled_from(["int8", "int16x8"]))
    qmod, fmod, qin = data.draw(tt.quantized_graphs(mode=mode))
    qmod.verify()
    assert qin[0].dtype == (np.int8 if mode == "int8" else np.int16)
    text = print_module(qmod)
    assert "f32>" not in text.replace("xf32>", "")  # only quantized activations besides shapes


# --- quant_math --------------------------------------------------------------------------


@FAST
@given(tt.quant_types(bits=(8, 16), signed=None), st.data())
def test_quantize_dequantize_identity_on_grid(t: UniformQuantizedType, data) -> None:  # noqa: ANN001
    q = np.arange(t.qmin, t.qmax + 1, max(1, (t.qmax - t.qmin) // 257)).astype(t.numpy_dtype())
    assert np.array_equal(qm.quantize(qm.dequantize(q, t), t), q)


@FAST
@given(tt.quant_types(bits=(8, 16), signed=None), st.integers(0, 2**32 - 1))
def test_quantize_error_within_half_scale_inside_range(t: UniformQuantizedType, seed: int) -> None:
    lo = np.float64(t.scale) * (t.qmin - t.zero_point)
    hi = np.float64(t.scale) * (t.qmax - t.zero_point)
    x = np.random.default_rng(seed).uniform(lo, hi, 200).astype(np.float32)
    err = np.abs(qm.dequantize(qm.quantize(x, t), t).astype(np.float64) - x)
    # half a step, plus float32 rounding of x/scale and of the dequantized value
    assert np.all(err <= t.scale * 0.5 * (1 + 1e-5) + np.abs(x) * 2e-7)


@FAST
@given(tt.ranges(), st.sampled_from([(8, False), (16, True)]))
def test_activation_params_represent_zero_and_cover_range(r, cfg) -> None:  # noqa: ANN001
    bits, sym = cfg
    t = qm.choose_activation_params(r[0], r[1], bits=bits, symmetric=sym)
    assert qm.dequantize(qm.quantize(np.zeros(1, np.float32), t), t)[0] == 0.0
    lo, hi = min(r[0], 0.0), max(r[1], 0.0)
    if hi > lo:
        err = np.abs(qm.dequantize(qm.quantize(np.array([lo, hi], np.float32), t), t) - [lo, hi])
        assert np.all(err <= t.scale * 1.01)


def test_activation_params_match_tflite_examples() -> None:
    # The TF converter's digits_cnn input: range [0, 1] -> (1/255, -128).
    t = qm.choose_activation_params(0.0, 1.0)
    assert (np.float32(t.scale), t.zero_point) == (np.float32(1 / 255), -128)
    t = qm.choose_activation_params(-1.0, 1.0, bits=16, symmetric=True)
    assert (np.float32(t.scale), t.zero_point) == (np.float32(1 / 32767), 0)
    assert qm.choose_activation_params(0.0, 0.0).scale == 1.0


@FAST
@given(st.floats(min_value=1e-9, max_value=1e4, allow_nan=False))
def test_quantize_multiplier_is_tflite_exact(real: float) -> None:
    m, shift = qm.quantize_multiplier(real)
    if m == 0:
        assert real < 2.0**-31
        return
    assert (1 << 30) <= m < (1 << 31)
    approx = Fraction(m) * Fraction(2) ** (shift - 31)
    assert abs(approx - Fraction(real)) <= Fraction(2) ** (shift - 32)


@FAST
@given(st.integers(-(2**31), 2**31 - 1), st.floats(min_value=2.0**-20, max_value=0.99))
def test_multiply_by_quantized_multiplier_rounds_to_nearest(x: int, real: float) -> None:
    m, shift = qm.quantize_multiplier(real)
    got = int(qm.multiply_by_quantized_multiplier(np.array([x]), m, shift)[0])
    exact = Fraction(x) * Fraction(m) * Fraction(2) ** (shift - 31)
    assert abs(got - exact) <= 1  # double rounding is off by at most one from exact


def test_fixed_point_primitives_known_values() -> None:
    srdhm = qm.saturating_rounding_doubling_high_mul
    assert srdhm(np.array([-(2**31)]), -(2**31))[0] == 2**31 - 1
    assert srdhm(np.array([2**30]), 2**30)[0] == 2**29
    assert srdhm(np.array([-3]), 2**30)[0] == -1  # -1.5 rounds away from zero
    rdp = qm.rounding_divide_by_pot
    assert list(rdp(np.array([5, -5, 6, -6, 7, -7]), 1)) == [3, -3, 3, -3, 4, -4]
    assert list(rdp(np.array([5, -5]), 0)) == [5, -5]
