"""Mixed precision (issue 13): int8 / int16 / float per op by hand (`op_precision`), and the
automatic search to a target (`target_sqnr`, `accuracy_fn` + `max_drop`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from models import cnn, sample_inputs

import tflquant
from tflquant.errors import TflquantError
from tflquant.reference.integer_interpreter import IntegerInterpreter
from tflquant.scoring import interpreter, litert_run, quantize_input, sqnr_db
from tflquant.tflite.writer import write_flatbuffer


@pytest.fixture(scope="module")
def model() -> tuple[bytes, dict[str, np.ndarray], list[np.ndarray]]:
    """The test CNN, calibration data and its float outputs on them (LiteRT)."""
    m = write_flatbuffer(cnn())
    data = sample_inputs(cnn(), n=48, seed=3)
    return m, data, litert_run(m, list(data.values()))


@pytest.fixture
def few_candidates(monkeypatch) -> None:
    """Searches in tests try at most 4 groups per round and 3 rounds (the parent decides;
    workers need not know)."""
    from tflquant import mixed_precision

    monkeypatch.setattr(mixed_precision, "MAX_PREFIXES", 4)
    monkeypatch.setattr(mixed_precision, "MAX_ROUNDS", 3)


def _conversions(r: tflquant.QuantizationResult) -> set[tuple[str, str]]:
    """(input type, output type) of every QUANTIZE in the model, as element-type text."""
    from tflquant.dialects import quant, tfl

    def kind(v) -> str:
        t = quant.quantized_element(v.type)
        return f"int{t.storage_type.width.data}" if t is not None else "float"

    return {(kind(o.inputs[0]), kind(o.outputs[0])) for o in r.module.walk() if isinstance(o, tfl.QuantizeOp)}


def test_by_hand_mixed_model_runs_in_litert_like_the_reference(model) -> None:
    """CONV_2D and ADD in int16, the rest int8: LiteRT runs the int8 <-> int16 requantizing
    QUANTIZE ops at the boundaries, the integer reference interpreter gives LiteRT's builtin
    kernels' outputs, and the accuracy lies with int8's and 16x8's."""
    m, data, ref = model
    x = list(data.values())
    r8 = tflquant.quantize(m, representative_dataset=data)
    r16 = tflquant.quantize(m, mode="int16x8", representative_dataset=data)
    mixed = tflquant.quantize(m, representative_dataset=data, op_precision={"CONV_2D": "int16", "ADD": "int16"})
    kinds = {(o.op_type, o.kind) for o in mixed.report.ops}
    assert {("CONV_2D", "int16"), ("ADD", "int16"), ("DEPTHWISE_CONV_2D", "int8"), ("SOFTMAX", "int8")} <= kinds
    assert {("int8", "int16"), ("int16", "int8")} <= _conversions(mixed)
    # int16 ops take int64 biases, int8 ops int32
    from tflquant.dialects import quant, tfl

    for o in mixed.module.walk():
        if isinstance(o, tfl.TflOp) and o.BUILTIN in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            act = quant.quantized_element(o.inputs[0].type).storage_type.width.data
            bias = quant.quantized_element(o.inputs[2].type).storage_type.width.data
            assert (act, bias) in ((8, 32), (16, 64))
    got = litert_run(mixed.model, x)[0]
    s8, s16, smix = (sqnr_db(ref[0], litert_run(r.model, x)[0]) for r in (r8, r16, mixed))
    assert smix > 20.0 and s16 > s8
    assert min(s8, s16) - 3.0 < smix < max(s8, s16) + 3.0
    # the reference interpreter's integer kernels give LiteRT's builtin kernels' outputs, bit
    # for bit, on the mixed model with float I/O and integer only (int8 I/O: the model input
    # is int8 and requantized to int16 for the CONV_2D)
    np.testing.assert_array_equal(IntegerInterpreter(mixed.module).run(x)[0], litert_run(mixed.model, x, delegates=False)[0])
    assert sqnr_db(got, litert_run(mixed.model, x, delegates=False)[0]) > 40.0
    only = tflquant.quantize(m, representative_dataset=data, op_precision={"CONV_2D": "int16", "ADD": "int16"}, io_type="int8")
    assert not only.report.float_ops and ("int8", "int16") in _conversions(only)
    ins = interpreter(only.model).get_input_details()
    xq = [np.stack([quantize_input(d, s) for s in a]) for d, a in zip(ins, x)]
    assert ins[0]["dtype"] == np.int8
    np.testing.assert_array_equal(IntegerInterpreter(only.module).run(xq)[0], litert_run(only.model, xq, dequantize=False, delegates=False)[0])


def test_float_region_and_every_op_int16(model) -> None:
    """A float op sits between DEQUANTIZE and QUANTIZE with its weights float; int8 mode with
    every op type int16 is the int16x8 model, byte for byte."""
    m, data, ref = model
    r = tflquant.quantize(m, representative_dataset=data, op_precision=["FULLY_CONNECTED=float"])
    fc = [o for o in r.report.ops if o.op_type == "FULLY_CONNECTED"]
    assert [o.kind for o in fc] == ["float"] and "op-precision" in (fc[0].reason or "")
    assert ("float", "int8") in _conversions(r)
    assert sqnr_db(ref[0], litert_run(r.model, list(data.values()))[0]) > 20.0
    types = sorted({o.op_type for o in tflquant.quantize(m, representative_dataset=data).report.ops} - {"DEQUANTIZE", "QUANTIZE"})
    every = tflquant.quantize(m, representative_dataset=data, op_precision={t: "int16" for t in types})
    assert every.model == tflquant.quantize(m, mode="int16x8", representative_dataset=data).model


def test_op_precision_errors_and_recipe(model, tmp_path) -> None:
    m, data, _ = model
    with pytest.raises(TflquantError, match="no op has the output tensor or op type 'nope'"):
        tflquant.quantize(m, representative_dataset=data, op_precision={"nope": "int16"})
    with pytest.raises(TflquantError, match="unknown precision 'int4'"):
        tflquant.quantize(m, representative_dataset=data, op_precision={"SOFTMAX": "int4"})
    with pytest.raises(TflquantError, match="applies to the int8 and int16x8 modes"):
        tflquant.quantize(m, mode="dynamic", op_precision={"SOFTMAX": "int16"})
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"op_precision": {"CONV_2D": "int16"}}))
    a = tflquant.quantize(m, representative_dataset=data, recipe=recipe)
    b = tflquant.quantize(m, representative_dataset=data, op_precision=["CONV_2D=int16"])
    assert a.model == b.model and ("CONV_2D", "int16") in {(o.op_type, o.kind) for o in a.report.ops}
    recipe.write_text(json.dumps({"op_precision": {"CONV_2D": "int9"}}))
    with pytest.raises(TflquantError, match="recipe .*unknown precision 'int9'"):
        tflquant.quantize(m, representative_dataset=data, recipe=recipe)


def test_search_reaches_the_target_and_prints_its_path(model, few_candidates) -> None:
    """From int8 (step 0) the search promotes until the output SQNR on the samples it holds
    out of the calibration data (the first quarter: 12 of 48) reaches the target; each step
    says what it promoted; the model found is the last step's; and no promoted op of it can
    be taken back (to int8) without missing the target (the pruning)."""
    from tflquant.mixed_precision import output_sqnr

    m, data, _ = model
    start = tflquant.quantize(m, representative_dataset=data, target_sqnr=1.0, workers=1)
    s0 = start.report.search[0].sqnr_db
    assert len(start.report.search) == 1 and start.report.search[0].promoted == ()
    assert "the first 12 calibration samples, held out" in str(start.report.search[0])
    target = s0 + 6.0
    r = tflquant.quantize(m, representative_dataset=data, target_sqnr=target, workers=1)
    path = r.report.search
    assert len(path) >= 2 and path[-1].sqnr_db >= target and all(st.promoted for st in path[1:])
    assert not any("no mix reached" in w for w in r.report.warnings)
    assert path[-1].size == len(r.model) and "mixed-precision search" in str(r.report)
    held = [a[:12] for a in data.values()]
    ref = tflquant.reference.interpreter.Interpreter(tflquant.tflite.reader.read_flatbuffer(m)).run(held)
    # the model returned is calibrated on all samples, the search's candidates on the other 36
    rest = {k: v[12:] for k, v in data.items()}
    chosen = {o.name: o.kind for o in r.report.ops if o.kind in ("int16", "float")}
    found = tflquant.quantize(m, representative_dataset=rest, op_precision=chosen, bias_correction=True)
    assert abs(output_sqnr(ref, IntegerInterpreter(found.module).run(held)) - path[-1].sqnr_db) < 1e-6
    assert r.model == tflquant.quantize(m, representative_dataset=data, op_precision=chosen, bias_correction=True).model
    kinds = [o.kind for o in r.report.ops if o.kind not in ("quantize", "dequantize")]
    assert sum(k in ("int16", "float") for k in kinds) == path[-1].promoted_ops == len(chosen) > 0
    for name in chosen:  # every promoted op is needed: without it the target is missed on the
        # held-out samples or on one half of them (the even ones, the odd ones)
        fewer = {k: v for k, v in chosen.items() if k != name}
        q = tflquant.quantize(m, representative_dataset=rest, op_precision=fewer or None, bias_correction=True)
        got = IntegerInterpreter(q.module).run(held)
        halves = [output_sqnr([x[h::2] for x in ref], [y[h::2] for y in got]) for h in (0, 1)]
        assert min(output_sqnr(ref, got), *halves) < target


def test_output_sqnr_is_the_mean_of_per_sample_sqnrs_of_the_worst_output() -> None:
    """The search's score: per output, each sample's SQNR averaged over the samples (one
    sample of large error does not decide it, as in an SQNR pooled over the samples); the
    lowest over the outputs; an exact sample counts 99 dB."""
    from tflquant.mixed_precision import output_sqnr

    ref = [np.array([[1.0, 1.0], [10.0, 10.0], [1.0, -1.0]]), np.array([[2.0], [2.0], [2.0]])]
    got = [ref[0] + np.array([[0.1, 0.1], [5.0, 5.0], [0.0, 0.0]]), np.array([[2.2], [1.8], [2.0]])]
    first = np.mean([10 * np.log10(2 / 0.02), 10 * np.log10(200 / 50), 99.0])
    second = np.mean([20.0, 20.0, 99.0])
    assert abs(output_sqnr(ref, got) - min(first, second)) < 1e-9 and first < second
    pooled = 10 * np.log10(204 / 50.02)
    assert output_sqnr(ref[:1], got[:1]) > pooled + 20


def test_search_without_held_out_data_says_so(model, few_candidates) -> None:
    """A one-shot iterable cannot be read twice: the search measures on its first samples,
    the ones the ranges came from, and step 0 says so."""
    m, data, _ = model
    items = [{k: v[i : i + 1] for k, v in data.items()} for i in range(len(next(iter(data.values()))))]
    r = tflquant.quantize(m, representative_dataset=iter(items), target_sqnr=1.0, workers=1)
    assert "the ones the ranges came from" in str(r.report.search[0])


def test_search_to_a_score_and_errors(model, few_candidates) -> None:
    """accuracy_fn / max_drop: the score of the model found is within max_drop of the float
    model's; an unreachable target returns the best found with a warning."""
    m, data, ref = model
    x = list(data.values())

    def score(b: bytes) -> float:  # negative mean squared error of the output
        return -float(np.mean((litert_run(b, x)[0] - ref[0]) ** 2))

    r8 = tflquant.quantize(m, representative_dataset=data)
    drop = -score(r8.model) / 4
    r = tflquant.quantize(m, representative_dataset=data, accuracy_fn=score, max_drop=drop, workers=1)
    assert score(r.model) >= -drop and r.report.search[-1].score == pytest.approx(score(r.model))
    with pytest.raises(TflquantError, match="accuracy_fn and max_drop go together"):
        tflquant.quantize(m, representative_dataset=data, accuracy_fn=score)
    with pytest.raises(TflquantError, match="starts from int8"):
        tflquant.quantize(m, mode="int16x8", representative_dataset=data, target_sqnr=40.0)
    with pytest.raises(TflquantError, match="workers must be a positive integer"):
        tflquant.quantize(m, representative_dataset=data, target_sqnr=40.0, workers=0)


def test_search_result_does_not_depend_on_worker_count(model, few_candidates) -> None:
    """Candidates evaluated in 2 spawned worker processes give the same path and bytes as in one."""
    m, data, _ = model
    s0 = tflquant.quantize(m, representative_dataset=data, target_sqnr=1.0, workers=1).report.search[0].sqnr_db
    one = tflquant.quantize(m, representative_dataset=data, target_sqnr=s0 + 4.0, workers=1)
    two = tflquant.quantize(m, representative_dataset=data, target_sqnr=s0 + 4.0, workers=2)
    assert one.model == two.model and [s.promoted for s in one.report.search] == [s.promoted for s in two.report.search]


def test_search_with_integer_io(model, few_candidates) -> None:
    """io_type int8: the search feeds the model its samples quantized and reads its outputs
    dequantized (the same SQNR as the float-I/O model's, give or take input rounding), and
    candidates the options refuse (float ops without allow_float) are passed over, not raised
    (an int16 model output is requantized to int8: tests/test_mixed_precision_io.py)."""
    m, data, _ = model
    f = tflquant.quantize(m, representative_dataset=data, target_sqnr=1.0, workers=1).report.search[0].sqnr_db
    r = tflquant.quantize(m, representative_dataset=data, target_sqnr=f + 3.0, workers=1, io_type="int8")
    assert abs(r.report.search[0].sqnr_db - f) < 0.5 and f > 20.0
    assert interpreter(r.model).get_input_details()[0]["dtype"] == np.int8
    assert not r.report.float_ops
