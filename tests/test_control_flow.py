"""Control flow (WHILE, IF): the reference interpreter runs the subgraphs like LiteRT,
calibration sees every iteration, and int8 quantizes the ops inside the loop body (the
values crossing into and out of the subgraphs stay float; integer-only refuses by name)."""

from __future__ import annotations

import numpy as np
import pytest
from models import GraphBuilder, ttype
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, ModuleOp, StringAttr, i32
from xdsl.ir import SSAValue

import tflquant
from tflquant.calibration.driver import calibrate
from tflquant.dialects import tfl
from tflquant.reference.interpreter import Interpreter
from tflquant.scoring import litert_run, sqnr_db, tflm_run
from tflquant.tflite import schema
from tflquant.tflite.writer import write_flatbuffer


def control_op(kind: str, operands: list[SSAValue], result_types: list, names: list[str], **subgraphs: int) -> tfl.OpaqueOp:
    options = "WhileOptions" if kind == "WHILE" else "IfOptions"
    return tfl.OpaqueOp.create(
        operands=operands,
        result_types=result_types,
        properties={
            "code": IntegerAttr(schema.BUILTIN_CODES[kind], i32),
            "version": IntegerAttr(1, i32),
            "options_type": IntegerAttr(schema.OPTIONS_UNION[options], i32),
            "options": DictionaryAttr({k: IntegerAttr(v, i32) for k, v in subgraphs.items()}),
        },
        attributes={"names": ArrayAttr([StringAttr(n) for n in names])},
    )


def recurrent_loop(steps: int = 5, n_in: int = 3, n_h: int = 4, seed: int = 0) -> ModuleOp:
    """h = tanh(W x_t + U h + b) over the steps of the input, in a WHILE loop (how the TF
    converter writes Keras' SimpleRNN / GRU), then a dense head on the last h."""
    r = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return r.uniform(-1, 1, shape).astype(np.float32)

    main = GraphBuilder("main", {"seq": ((1, steps, n_in), np.float32)})
    i0, h0 = main.const(np.array(0, np.int32), "i0"), main.const(np.zeros((1, n_h), np.float32), "h0")
    loop = main.add(
        control_op("WHILE", [i0, h0, main.x], [ttype((), np.int32), ttype((1, n_h)), ttype((1, steps, n_in))],
                   ["i_final", "h_final", "seq_final"], cond_subgraph_index=1, body_subgraph_index=2)
    )
    y = main.op("FULLY_CONNECTED", [loop.results[1], main.const(w(2, n_h), "head_w"), main.const(w(2), "head_b")], (1, 2), name="logits")
    args = {"i": ((), np.int32), "h": ((1, n_h), np.float32), "seq": ((1, steps, n_in), np.float32)}
    cond = GraphBuilder("cond", {f"c_{k}": v for k, v in args.items()})
    more = cond.op("LESS", [cond.args["c_i"], cond.const(np.array(steps, np.int32), "n_steps")], (), np.bool_, name="more")
    body = GraphBuilder("body", {f"b_{k}": v for k, v in args.items()})
    x_t = body.op("GATHER", [body.args["b_seq"], body.args["b_i"]], (1, n_in), axis=1, name="x_t")
    wx = body.op("FULLY_CONNECTED", [x_t, body.const(w(n_h, n_in), "w_x"), body.const(w(n_h) / 2, "b_x")], (1, n_h), name="wx")
    uh = body.op("FULLY_CONNECTED", [body.args["b_h"], body.const(w(n_h, n_h), "w_h"), body.no_value()], (1, n_h), name="uh")
    h = body.op("TANH", [body.op("ADD", [wx, uh], (1, n_h), name="pre")], (1, n_h), name="h_next")
    i1 = body.op("ADD", [body.args["b_i"], body.const(np.array(1, np.int32), "one")], (), np.int32, name="i_next")
    return main.module([y], ["logits"], extra=[cond.function([more]), body.function([i1, h, body.args["b_seq"]])])


def doubling_loop() -> ModuleOp:
    """x doubles while its sum is below 10: a data-dependent number of iterations per sample."""
    main = GraphBuilder("main", {"x": ((2,), np.float32)})
    loop = main.add(control_op("WHILE", [main.x], [ttype((2,))], ["x_final"], cond_subgraph_index=1, body_subgraph_index=2))
    cond = GraphBuilder("cond", {"c_x": ((2,), np.float32)})
    total = cond.op("SUM", [cond.args["c_x"], cond.const(np.array([0], np.int32))], (), name="total")
    more = cond.op("LESS", [total, cond.const(np.array(10.0, np.float32))], (), np.bool_, name="more")
    body = GraphBuilder("body", {"b_x": ((2,), np.float32)})
    x2 = body.op("MUL", [body.args["b_x"], body.const(np.array([2.0], np.float32))], (2,), name="doubled")
    return main.module([loop.results[0]], ["x_final"], extra=[cond.function([more]), body.function([x2])])


def branch() -> ModuleOp:
    """IF(flag[0] > 0): x * 3 else x - 1."""
    main = GraphBuilder("main", {"flag": ((1,), np.float32), "x": ((3,), np.float32)})
    c = main.op("GREATER", [main.args["flag"], main.const(np.array([0.0], np.float32))], (1,), np.bool_, name="c")
    pick = main.add(control_op("IF", [c, main.args["x"]], [ttype((3,))], ["picked"], then_subgraph_index=1, else_subgraph_index=2))
    then = GraphBuilder("then", {"t_x": ((3,), np.float32)})
    t = then.op("MUL", [then.args["t_x"], then.const(np.array([3.0], np.float32))], (3,), name="tripled")
    other = GraphBuilder("else", {"e_x": ((3,), np.float32)})
    e = other.op("SUB", [other.args["e_x"], other.const(np.array([1.0], np.float32))], (3,), name="decremented")
    return main.module([pick.results[0]], ["picked"], extra=[then.function([t]), other.function([e])])


def test_reference_interpreter_runs_while_loops_like_litert() -> None:
    m = recurrent_loop()
    x = np.random.default_rng(1).standard_normal((6, 1, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(Interpreter(m).run([x])[0], litert_run(write_flatbuffer(m), [x])[0], rtol=1e-5, atol=1e-6)


def test_samples_that_loop_a_different_number_of_times() -> None:
    """The condition differs between samples: each finishes on its own, as in LiteRT."""
    m = doubling_loop()
    x = np.array([[0.5, 0.5], [3.0, 4.0], [20.0, 1.0], [0.1, 0.05]], np.float32)
    got = Interpreter(m).run([x])[0]
    np.testing.assert_array_equal(got, litert_run(write_flatbuffer(m), [x])[0])
    np.testing.assert_allclose(got, [[8, 8], [6, 8], [20, 1], [12.8, 6.4]], rtol=1e-6)  # 4, 1, 0, 7 doublings


def test_reference_interpreter_runs_if_like_litert() -> None:
    m = branch()
    flags = np.array([[1.0], [-1.0], [2.0]], np.float32)
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    got = Interpreter(m).run([flags, x])[0]
    np.testing.assert_array_equal(got, litert_run(write_flatbuffer(m), [flags, x])[0])
    np.testing.assert_array_equal(got, [x[0] * 3, x[1] - 1, x[2] * 3])


def test_calibration_sees_every_iteration_of_the_body() -> None:
    m = recurrent_loop()
    x = np.random.default_rng(2).standard_normal((16, 1, 5, 3)).astype(np.float32)
    stats = calibrate(m, {"seq": x}).stats
    # the body's GATHER reads one step a time: over the loop it sees the whole sequence
    assert (stats["x_t"].mins[0], stats["x_t"].maxs[0]) == (float(x.min()), float(x.max()))
    assert {"b_h", "h_next", "pre", "wx", "uh"} <= stats.keys()


def test_int8_carries_int8_around_the_loop_and_runs_in_litert_and_tflm() -> None:
    """The loop's float values become int8 (quantize-control-flow): no QUANTIZE/DEQUANTIZE
    per iteration, and integer only works, in LiteRT and TFLite Micro."""
    m = recurrent_loop()
    calib = np.random.default_rng(3).standard_normal((64, 1, 5, 3)).astype(np.float32)
    x = np.random.default_rng(4).standard_normal((32, 1, 5, 3)).astype(np.float32)
    ref = litert_run(write_flatbuffer(m), [x])[0]
    for io_type in ("float32", "int8"):
        r = tflquant.quantize(write_flatbuffer(m), representative_dataset={"seq": calib}, io_type=io_type)
        kinds = {(o.op_type, o.kind) for o in r.report.ops}
        assert {("WHILE", "int8"), ("FULLY_CONNECTED", "int8"), ("TANH", "int8"), ("GATHER", "int8")} <= kinds
        assert not r.report.float_ops
        body = [f for f in r.module.ops if f.sym_name.data == "body"][0]  # type: ignore[attr-defined]
        assert not [o for o in body.walk() if tfl.op_type(o) in ("DEQUANTIZE",)]
        got = litert_run(r.model, [x])[0]
        assert sqnr_db(ref, got) > 25.0
    from ai_edge_litert.interpreter import Interpreter

    d = Interpreter(model_content=r.model).get_input_details()[0]
    s, z = d["quantization"]
    xq = np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)
    a = litert_run(r.model, [xq], dequantize=False)[0].astype(np.float64)
    b = tflm_run(r.model, [xq])[0].astype(np.float64)
    assert sqnr_db(a - z, b - z) > 30.0  # TFLM's integer ADD/TANH round a little differently


def test_without_ranges_the_loop_stays_float_with_a_reason() -> None:
    """quantize-control-flow left out: the body still quantizes, with float at its
    boundaries, and integer only is refused naming the WHILE."""
    from tflquant.ir import make_context
    from tflquant.pipeline import pipeline_spec, run_pipeline

    m = recurrent_loop()
    calib = np.random.default_rng(3).standard_normal((64, 1, 5, 3)).astype(np.float32)
    stats = calibrate(m, {"seq": calib}).stats
    import re

    def without_pass(spec: str) -> str:
        return re.sub(r"quantize-control-flow(\{[^}]*\})?,", "", spec)

    spec = without_pass(pipeline_spec("int8"))
    assert "quantize-control-flow" not in spec
    run_pipeline(make_context(), m, spec, stats=stats)
    from tflquant.api import describe_ops

    ops = describe_ops(m)
    (loop,) = [o for o in ops if o.op_type == "WHILE"]
    assert loop.kind == "float" and "control flow" in (loop.reason or "")
    assert ("TANH", "int8") in {(o.op_type, o.kind) for o in ops}
    x = np.random.default_rng(4).standard_normal((32, 1, 5, 3)).astype(np.float32)
    assert sqnr_db(litert_run(write_flatbuffer(recurrent_loop()), [x])[0], litert_run(write_flatbuffer(m), [x])[0]) > 25.0
    spec_only = without_pass(pipeline_spec("int8", io_type="int8", allow_float=False))
    m2 = recurrent_loop()
    with pytest.raises(tflquant.TflquantError, match=r"integer-only quantization is impossible: 1 op\(s\) .*'i_final' \(WHILE\)"):
        run_pipeline(make_context(), m2, spec_only, stats=stats)


def _int8_inputs(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    s, z = Interpreter(model_content=model).get_input_details()[0]["quantization"]
    return np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)


def _litert_builtin(model: bytes, x: np.ndarray) -> np.ndarray:
    """Raw outputs of LiteRT's builtin kernels (no XNNPACK delegate), sample by sample."""
    return litert_run(model, [x], dequantize=False, delegates=False)[0]


def test_integer_interpreter_runs_quantized_loops_like_litert() -> None:
    """IntegerInterpreter runs WHILE with integer kernels in the subgraphs, bit for bit with
    LiteRT's builtin kernels: where the iteration counts differ per sample (doubling loop) and
    around a recurrence."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    for m, x, key in (
        (doubling_loop(), (np.abs(np.random.default_rng(2).standard_normal((64, 2))) + 0.05).astype(np.float32), "x"),
        (recurrent_loop(), np.random.default_rng(1).standard_normal((100, 1, 5, 3)).astype(np.float32), "seq"),
    ):
        r = tflquant.quantize(write_flatbuffer(m), representative_dataset={key: x[:64]}, io_type="int8")
        xq = _int8_inputs(r.model, x)
        ii = IntegerInterpreter(r.module)
        np.testing.assert_array_equal(ii.run([xq])[0], _litert_builtin(r.model, xq))
        assert not ii.float_ops


def test_if_quantizes_integer_only_and_matches_litert() -> None:
    """IF: the branches' argument and results are int8 (quantize-control-flow), integer only
    works, LiteRT follows the float model and IntegerInterpreter equals LiteRT's builtin kernels."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    m = branch()
    rng = np.random.default_rng(0)
    calib = {"flag": rng.standard_normal((64, 1)).astype(np.float32), "x": rng.standard_normal((64, 3)).astype(np.float32)}
    ref = litert_run(write_flatbuffer(m), list(calib.values()))[0]
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset=calib)
    assert ("IF", "int8") in {(o.op_type, o.kind) for o in r.report.ops} and not r.report.float_ops
    assert sqnr_db(ref, litert_run(r.model, list(calib.values()))[0]) > 30.0
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset=calib, io_type="int8")
    from tflquant.scoring import interpreter, quantize_input

    ins = interpreter(r.model).get_input_details()
    xq = [np.stack([quantize_input(d, s) for s in a]) for d, a in zip(ins, calib.values())]
    builtin = litert_run(r.model, xq, dequantize=False, delegates=False)[0]
    np.testing.assert_array_equal(IntegerInterpreter(r.module).run(xq)[0], builtin)


def gru_loop(steps: int = 6, n_in: int = 4, n_h: int = 5, seed: int = 0) -> ModuleOp:
    """A GRU as the TF converter writes Keras' GRU: a WHILE over the steps, gates from one
    FULLY_CONNECTED each for x and h split in three, the outputs written into a sequence with
    DYNAMIC_UPDATE_SLICE."""
    r = np.random.default_rng(seed)

    def w(*s: int) -> np.ndarray:
        return r.uniform(-0.7, 0.7, s).astype(np.float32)

    main = GraphBuilder("main", {"seq": ((1, steps, n_in), np.float32)})
    i0 = main.const(np.array(0, np.int32), "i0")
    h0 = main.const(np.zeros((1, n_h), np.float32), "h0")
    out0 = main.const(np.zeros((1, steps, n_h), np.float32), "outs0")
    loop = main.add(control_op("WHILE", [i0, h0, out0, main.x],
        [ttype((), np.int32), ttype((1, n_h)), ttype((1, steps, n_h)), ttype((1, steps, n_in))],
        ["i_final", "h_final", "outs", "seq_final"], cond_subgraph_index=1, body_subgraph_index=2))
    y = main.op("FULLY_CONNECTED", [loop.results[2], main.const(w(3, n_h), "head_w"), main.const(w(3), "head_b")], (1, steps, 3), keep_num_dims=True, name="head")
    args = {"i": ((), np.int32), "h": ((1, n_h), np.float32), "o": ((1, steps, n_h), np.float32), "s": ((1, steps, n_in), np.float32)}
    cond = GraphBuilder("cond", {f"c_{k}": v for k, v in args.items()})
    more = cond.op("LESS", [cond.args["c_i"], cond.const(np.array(steps, np.int32), "n")], (), np.bool_, name="more")
    body = GraphBuilder("body", {f"b_{k}": v for k, v in args.items()})
    x_t = body.op("GATHER", [body.args["b_s"], body.args["b_i"]], (1, n_in), axis=1, name="x_t")
    gx = body.op("FULLY_CONNECTED", [x_t, body.const(w(3 * n_h, n_in), "kernel"), body.const(w(3 * n_h), "bias")], (1, 3 * n_h), name="gx")
    gh = body.op("FULLY_CONNECTED", [body.args["b_h"], body.const(w(3 * n_h, n_h), "rkernel"), body.no_value()], (1, 3 * n_h), name="gh")
    xz, xr, xh = body.op("SPLIT", [body.const(np.array(1, np.int32), "ax"), gx], [(1, n_h)] * 3, num_splits=3, name=["xz", "xr", "xh"])
    hz, hr, hh = body.op("SPLIT", [body.const(np.array(1, np.int32), "ax2"), gh], [(1, n_h)] * 3, num_splits=3, name=["hz", "hr", "hh"])
    z = body.op("LOGISTIC", [body.op("ADD", [xz, hz], (1, n_h), name="zs")], (1, n_h), name="z")
    rr = body.op("LOGISTIC", [body.op("ADD", [xr, hr], (1, n_h), name="rs")], (1, n_h), name="r")
    cand = body.op("TANH", [body.op("ADD", [xh, body.op("MUL", [rr, hh], (1, n_h), name="rh")], (1, n_h), name="cs")], (1, n_h), name="cand")
    # h' = z * h + (1 - z) * cand = cand + z * (h - cand)
    hn = body.op("ADD", [cand, body.op("MUL", [z, body.op("SUB", [body.args["b_h"], cand], (1, n_h), name="dh")], (1, n_h), name="zdh")], (1, n_h), name="h_next")
    upd = body.op("RESHAPE", [hn, body.const(np.array([1, 1, n_h], np.int32), "shp")], (1, 1, n_h), name="h_row")
    zero = body.const(np.array(0, np.int32), "zero")
    start = body.op("PACK", [zero, body.args["b_i"], zero], (3,), np.int32, values_count=3, axis=0, name="start")
    o_next = body.op("DYNAMIC_UPDATE_SLICE", [body.args["b_o"], upd, start], (1, steps, n_h), name="o_next")
    i1 = body.op("ADD", [body.args["b_i"], body.const(np.array(1, np.int32), "one")], (), np.int32, name="i_next")
    return main.module([y], ["head"], extra=[cond.function([more]), body.function([i1, hn, o_next, body.args["b_s"]])])


def test_a_gru_loop_quantizes_integer_only_like_litert_and_tflm() -> None:
    """Keras' GRU as the converter writes it (gates split from two FULLY_CONNECTED, outputs
    gathered by DYNAMIC_UPDATE_SLICE) quantizes with every op integer; LiteRT follows the
    float model, IntegerInterpreter equals its builtin kernels, TFLite Micro runs it."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    m = gru_loop()
    x = np.random.default_rng(1).standard_normal((64, 1, 6, 4)).astype(np.float32)
    ref = litert_run(write_flatbuffer(m), [x])[0]
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset={"seq": x})
    assert not r.report.float_ops and sqnr_db(ref, litert_run(r.model, [x])[0]) > 30.0
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset={"seq": x}, io_type="int8")
    assert not r.report.float_ops and ("WHILE", "int8") in {(o.op_type, o.kind) for o in r.report.ops}
    xq = _int8_inputs(r.model, x)
    builtin = _litert_builtin(r.model, xq)
    np.testing.assert_array_equal(IntegerInterpreter(r.module).run([xq])[0], builtin)
    z = float(_int8_zero_point_out(r.model))
    assert sqnr_db(builtin.astype(np.float64) - z, tflm_run(r.model, [xq])[0].astype(np.float64) - z) > 30.0


def _int8_zero_point_out(model: bytes) -> int:
    from ai_edge_litert.interpreter import Interpreter

    return int(Interpreter(model_content=model).get_output_details()[0]["quantization"][1])


# ---------------------------------------------------------------------------------------
# Edge cases found in review
# ---------------------------------------------------------------------------------------


def shared_subgraph_loops(n: int = 3) -> ModuleOp:
    """Two WHILEs running the same cond/body functions on operands of different ranges."""
    main = GraphBuilder("main", {"x": ((n,), np.float32)})
    l1 = main.add(control_op("WHILE", [main.x], [ttype((n,))], ["x1"], cond_subgraph_index=1, body_subgraph_index=2))
    small = main.op("MUL", [main.x, main.const(np.array([0.25], np.float32), "q")], (n,), name="small")
    l2 = main.add(control_op("WHILE", [small], [ttype((n,))], ["x2"], cond_subgraph_index=1, body_subgraph_index=2))
    s = main.op("ADD", [l1.results[0], l2.results[0]], (n,), name="s")
    cond = GraphBuilder("cond", {"c_x": ((n,), np.float32)})
    total = cond.op("SUM", [cond.args["c_x"], cond.const(np.array([0], np.int32))], (), name="total")
    more = cond.op("LESS", [total, cond.const(np.array(10.0, np.float32))], (), np.bool_, name="more")
    body = GraphBuilder("body", {"b_x": ((n,), np.float32)})
    x2 = body.op("MUL", [body.args["b_x"], body.const(np.array([2.0], np.float32))], (n,), name="doubled")
    return main.module([s], ["s"], extra=[cond.function([more]), body.function([x2])])


@pytest.mark.parametrize("mode", ("int8", "int16x8"))
def test_subgraphs_shared_by_two_whiles_keep_float_boundaries(mode: str) -> None:
    """One function cannot take two types: WHILEs sharing subgraphs pass float (the model
    loads and runs in LiteRT) and int16 comparisons stay float (LiteRT compares int16 as raw
    integers, whatever the scales)."""
    m = shared_subgraph_loops()
    x = (np.abs(np.random.default_rng(0).standard_normal((64, 3))) + 0.1).astype(np.float32)
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset={"x": x}, mode=mode)
    kinds = {(o.op_type, o.kind) for o in r.report.ops}
    assert ("WHILE", "float") in kinds and ("LESS", "int8" if mode == "int8" else "float") in kinds
    ref, got = litert_run(write_flatbuffer(m), [x[:16]])[0], litert_run(r.model, [x[:16]])[0]
    assert sqnr_db(ref, got) > (15.0 if mode == "int8" else 40.0)  # int8: near the threshold a sample may double once more


def test_if_whose_branches_are_one_function_stays_float() -> None:
    m = branch()
    (ifop,) = [o for o in m.walk() if tfl.op_type(o) == "IF"]
    ifop.options = DictionaryAttr({"then_subgraph_index": IntegerAttr(1, i32), "else_subgraph_index": IntegerAttr(1, i32)})  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    calib = {"flag": rng.standard_normal((64, 1)).astype(np.float32), "x": rng.standard_normal((64, 3)).astype(np.float32)}
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset=calib)
    assert ("IF", "float") in {(o.op_type, o.kind) for o in r.report.ops}
    assert sqnr_db(litert_run(write_flatbuffer(m), list(calib.values()))[0], litert_run(r.model, list(calib.values()))[0]) > 30.0


def test_a_loop_over_constants_is_calibrated_and_leaves_no_dead_tensors() -> None:
    """A WHILE on constants only (a table built by a loop) still runs at calibration with the
    observer, so its body quantizes; the float constant it replaced and the cond's unused
    argument conversions do not stay in the file."""
    n = 4
    main = GraphBuilder("main", {"x": ((n,), np.float32)})
    i0, t0 = main.const(np.array(0, np.int32), "i0"), main.const(np.linspace(0.1, 0.4, n).astype(np.float32), "t0")
    loop = main.add(control_op("WHILE", [i0, t0], [ttype((), np.int32), ttype((n,))], ["i_f", "table"], cond_subgraph_index=1, body_subgraph_index=2))
    y = main.op("ADD", [main.x, loop.results[1]], (n,), name="y")
    cond = GraphBuilder("cond", {"c_i": ((), np.int32), "c_t": ((n,), np.float32)})
    more = cond.op("LESS", [cond.args["c_i"], cond.const(np.array(3, np.int32), "ns")], (), np.bool_, name="more")
    body = GraphBuilder("body", {"b_i": ((), np.int32), "b_t": ((n,), np.float32)})
    t3 = body.op("MUL", [body.args["b_t"], body.const(np.array([3.0], np.float32), "k3")], (n,), name="t3")
    tt = body.op("TANH", [t3], (n,), name="tt")
    i1 = body.op("ADD", [body.args["b_i"], body.const(np.array(1, np.int32), "one")], (), np.int32, name="i1")
    m = main.module([y], ["y"], extra=[cond.function([more]), body.function([i1, tt])])
    x = np.random.default_rng(0).standard_normal((64, n)).astype(np.float32)
    r = tflquant.quantize(write_flatbuffer(m), representative_dataset={"x": x}, io_type="int8")
    assert not r.report.float_ops and ("TANH", "int8") in {(o.op_type, o.kind) for o in r.report.ops}
    names = [tfl.tensor_names(o)[0] for o in r.module.walk() if isinstance(o, tfl.ConstOp) and tfl.tensor_names(o)]
    assert names.count("t0") == 1  # the integer constant only
    cond_f = [f for f in r.module.ops if f.sym_name.data == "cond"][0]  # type: ignore[attr-defined]
    assert [tfl.op_type(o) for o in cond_f.walk() if isinstance(o, tfl.TflOp)] == ["LESS"]


def test_a_plain_observer_sees_every_iteration_with_parallel_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """An observer without reduce/merge on a loop model: the samples run in order (no
    parallel ranges taking turns per value, which a value seen once per iteration breaks)."""
    from tflquant.reference import float_kernels as fk
    from tflquant.reference import interpreter as interp_mod

    monkeypatch.setattr(interp_mod, "PARALLEL_MIN_ELEMS", 0)
    old = fk.set_threads(2)
    try:
        seen: list[str] = []
        x = np.random.default_rng(1).standard_normal((32, 1, 5, 3)).astype(np.float32)
        Interpreter(recurrent_loop()).run([x], observer=lambda v, a: seen.append(str(a.shape)))
    finally:
        fk.set_threads(old)
    assert len(seen) > 5 * 5  # the body's values, every iteration
