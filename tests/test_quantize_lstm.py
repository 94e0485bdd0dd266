"""int8 UNIDIRECTIONAL_SEQUENCE_LSTM: calibration of the cell state, the quantize-lstm pass,
and the quantized models in LiteRT (and TFLite Micro) against the float model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import MODELS, GraphBuilder, sample_inputs, ttype
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr

import tflquant
from tflquant.calibration.driver import calibrate
from tflquant.dialects import tfl
from tflquant.passes.quantize_lstm import cell_scale_exponent
from tflquant.scoring import litert_run, sqnr_db, tflm_run
from tflquant.tflite.writer import write_flatbuffer


def lstm_model(n_in: int, n_cell: int, steps: int, batch: int, time_major: bool, cifg: bool, seed: int) -> ModuleOp:
    """A float LSTM with variable states (as the TF converter writes Keras' LSTM)."""
    r = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return r.uniform(-0.6, 0.6, shape).astype(np.float32)

    shape = (steps, batch, n_in) if time_major else (batch, steps, n_in)
    g = GraphBuilder("main", {"seq": (shape, np.float32)})
    nv = g.no_value()
    gates = ["forget", "cell", "output"] if cifg else ["input", "forget", "cell", "output"]
    w_in = {k: g.const(w(n_cell, n_in), f"w_in_{k}") for k in gates}
    w_rec = {k: g.const(w(n_cell, n_cell), f"w_rec_{k}") for k in gates}
    bias = {k: g.const(w(n_cell) + (1.0 if k == "forget" else 0.0), f"bias_{k}") for k in gates}
    states = []
    for nm in ("output_state", "cell_state"):
        var = tfl.VariableOp.create(result_types=[ttype((batch, n_cell))], attributes={"names": ArrayAttr([StringAttr(nm)])})
        states.append(g.add(var).results[0])
    order = ["input", "forget", "cell", "output"]
    inputs = [g.x, *[w_in.get(k, nv) for k in order], *[w_rec.get(k, nv) for k in order], nv, nv, nv]
    inputs += [*[bias.get(k, nv) for k in order], nv, nv, *states, nv, nv, nv, nv]
    out_shape = (steps, batch, n_cell) if time_major else (batch, steps, n_cell)
    y = g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, out_shape, fused_activation_function="TANH", time_major=time_major, name="lstm_out")
    return g.module([y], ["lstm_out"])


def reference_cells(module: ModuleOp, x: np.ndarray) -> np.ndarray:
    """The cell state of every step, in float64, from the LSTM equations (no interpreter),
    the samples one after the other with the state carried over (LiteRT's invokes)."""
    consts = {tfl.tensor_names(o)[0]: o.numpy().astype(np.float64) for o in module.walk() if isinstance(o, tfl.ConstOp)}

    def sig(v: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-v))

    out = []
    h = np.zeros((x.shape[1], consts["w_rec_forget"].shape[0]))
    c = np.zeros_like(h)
    for s in x.astype(np.float64):  # s: (batch, steps, n_in); the state runs on, as in LiteRT
        for t in range(s.shape[1]):
            xt = s[:, t]

            def gate(k: str) -> np.ndarray:
                return xt @ consts[f"w_in_{k}"].T + h @ consts[f"w_rec_{k}"].T + consts[f"bias_{k}"]

            f, g, o = sig(gate("forget")), np.tanh(gate("cell")), sig(gate("output"))
            i = sig(gate("input"))
            c = f * c + i * g
            h = o * np.tanh(c)
            out.append(c)
    return np.stack(out)


def test_cell_scale_exponent_is_the_next_power_of_two_within_the_kernels_range() -> None:
    assert [cell_scale_exponent(a) for a in (0.0, 0.3, 1.0, 1.01, 3.9, 4.0, 63.0, 100.0)] == [0, 0, 0, 1, 2, 2, 6, 6]
    assert cell_scale_exponent(0.9, headroom=1.3) == 1


def test_calibration_records_every_steps_cell_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float kernel reports the cell state of every step under the state variable's name,
    the state carried from sample to sample as over LiteRT invokes; with parallel sample
    ranges allowed the range is the same, equal to the LSTM equations'."""
    from tflquant.reference import float_kernels as fk
    from tflquant.reference import interpreter as interp_mod

    m = lstm_model(3, 5, 6, 1, False, False, seed=4)
    x = np.random.default_rng(5).standard_normal((48, 1, 6, 3)).astype(np.float32) * 2
    cells = reference_cells(m, x[:, 0][:, None])
    old = fk.set_threads(1)
    try:
        serial = calibrate(m, {"seq": x}).stats["cell_state"]
        fk.set_threads(2)
        monkeypatch.setattr(interp_mod, "PARALLEL_MIN_ELEMS", 0)
        parallel = calibrate(m, {"seq": x}).stats["cell_state"]
    finally:
        fk.set_threads(old)
    assert (serial.mins, serial.maxs) == (parallel.mins, parallel.maxs)
    np.testing.assert_allclose([serial.mins[0], serial.maxs[0]], [cells.min(), cells.max()], rtol=1e-5)
    assert serial.maxs[0] - serial.mins[0] > 1.0  # a range wide enough to tell the steps apart


def _quantize(m: ModuleOp, calib: dict[str, np.ndarray], io_type: str = "float32") -> tflquant.QuantizationResult:
    return tflquant.quantize(write_flatbuffer(m), representative_dataset=calib, io_type=io_type)


@pytest.mark.parametrize("io_type", ("float32", "int8"))
def test_test_model_lstm_is_int8_in_litert_and_tflm(io_type: str) -> None:
    module = MODELS["lstm"]()
    r = _quantize(module, sample_inputs(module, n=64, seed=1), io_type)
    kinds = {o.op_type: o.kind for o in r.report.ops}
    assert kinds["UNIDIRECTIONAL_SEQUENCE_LSTM"] == "int8" and not r.report.float_ops
    from tflquant.tflite.versions import builtin_version

    (lstm,) = [o for o in r.module.walk() if isinstance(o, tfl.UnidirectionalSequenceLstmOp)]
    assert builtin_version(lstm) == 2  # what TF's quantizer writes for the integer LSTM
    x = list(sample_inputs(module, n=16, seed=2).values())
    ref = litert_run(write_flatbuffer(module), x)[0]
    got = litert_run(r.model, x)[0]
    assert sqnr_db(ref, got) > 35.0
    if io_type == "int8":  # TFLite Micro's integer LSTM rounds like LiteRT's to one step
        from ai_edge_litert.interpreter import Interpreter

        d = Interpreter(model_content=r.model).get_input_details()[0]
        s, z = d["quantization"]
        xq = [np.clip(np.round(a / s) + z, -128, 127).astype(np.int8) for a in x]
        a = litert_run(r.model, xq, dequantize=False)[0].astype(np.int32)
        b = tflm_run(r.model, xq)[0].astype(np.int32)
        assert np.abs(a - b).max() <= 1


def stacked_classifier() -> ModuleOp:
    """Two stacked LSTMs, the last step, a dense layer and a softmax: a Keras sequence
    classifier as the TF converter writes it."""
    r = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return r.uniform(-0.5, 0.5, shape).astype(np.float32)

    g = GraphBuilder("main", {"seq": ((1, 6, 3), np.float32)})
    nv = g.no_value()
    x = g.x
    for layer, (ni, nc) in enumerate([(3, 8), (8, 5)]):
        wi = [g.const(w(nc, ni), f"l{layer}_wi{k}") for k in range(4)]
        wr = [g.const(w(nc, nc), f"l{layer}_wr{k}") for k in range(4)]
        b = [g.const(w(nc), f"l{layer}_b{k}") for k in range(4)]
        st = []
        for n in ("h", "c"):
            var = tfl.VariableOp.create(result_types=[ttype((1, nc))], attributes={"names": ArrayAttr([StringAttr(f"l{layer}_{n}")])})
            st.append(g.add(var).results[0])
        x = g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [x, *wi, *wr, nv, nv, nv, *b, nv, nv, *st, nv, nv, nv, nv], (1, 6, nc),
                 fused_activation_function="TANH", time_major=False, name=f"lstm{layer}")
    ints = [g.const(np.array(v, np.int32)) for v in ([0, 5, 0], [1, 6, 5], [1, 1, 1])]
    last = g.op("STRIDED_SLICE", [x, *ints], (1, 5), shrink_axis_mask=2, name="last")
    y = g.op("FULLY_CONNECTED", [last, g.const(w(4, 5)), g.const(w(4))], (1, 4), name="logits")
    return g.module([g.op("SOFTMAX", [y], (1, 4), beta=1.0, name="probs")], ["probs"])


def test_stacked_lstm_classifier_is_integer_only_and_agrees_with_the_float_model() -> None:
    m = stacked_classifier()
    calib = sample_inputs(m, n=100, seed=1)
    x = list(calib.values())  # in calibration order: the same state trajectory
    ref = litert_run(write_flatbuffer(m), x)[0].reshape(100, -1)
    for io_type in ("float32", "int8"):
        r = _quantize(m, calib, io_type)
        assert [o.kind for o in r.report.ops if o.op_type == "UNIDIRECTIONAL_SEQUENCE_LSTM"] == ["int8", "int8"]
        assert not r.report.float_ops
        got = litert_run(r.model, x)[0].reshape(100, -1)
        assert sqnr_db(ref, got) > 40.0 and np.mean(ref.argmax(1) == got.argmax(1)) >= 0.98


def test_int16x8_keeps_the_lstm_float_and_says_why() -> None:
    module = MODELS["lstm"]()
    r = tflquant.quantize(write_flatbuffer(module), mode="int16x8", representative_dataset=sample_inputs(module, n=16, seed=1))
    (lstm,) = [o for o in r.report.fallbacks if o.op_type == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert "int8 activations only" in lstm.reason  # type: ignore[operator]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_in=st.integers(1, 6),
    n_cell=st.integers(1, 8),
    steps=st.integers(1, 5),
    batch=st.integers(1, 2),
    time_major=st.booleans(),
    cifg=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_random_lstms_quantize_to_int8_and_track_the_float_model(n_in, n_cell, steps, batch, time_major, cifg, seed) -> None:
    """Any shape, time-major or not, with or without the input gate (CIFG): the LSTM becomes
    int8, LiteRT prepares and runs it, and it follows the float model."""
    m = lstm_model(n_in, n_cell, steps, batch, time_major, cifg, seed)
    calib = sample_inputs(m, n=64, seed=seed)
    r = _quantize(m, calib)
    assert not r.report.float_ops, [(o.name, o.reason) for o in r.report.fallbacks]
    # the calibration samples in calibration order: the state carried from invoke to invoke
    # follows the calibrated trajectory, so only rounding (no clipping) separates the models
    x = [a[:16] for a in calib.values()]
    ref = litert_run(write_flatbuffer(m), x)[0]
    got = litert_run(r.model, x)[0]
    assert np.all(np.isfinite(got))
    assert sqnr_db(ref, got) > 25.0, sqnr_db(ref, got)
