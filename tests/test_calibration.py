"""Calibration: datasets (npz and iterables), observers, the driver, stats files, the pass hook."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tflquant.calibration.driver import CalibrationWarning, Progress, calibrate, entries
from tflquant.calibration.dataset import InputSpec, batches, load_npz, samples_from_arrays, samples_from_iterable
from tflquant.calibration.observers import MinMaxObserver
from tflquant.calibration.stats import Range, read_stats, stats_to_json, write_stats
from tflquant.errors import TflquantError
from tflquant.ir import make_context, parse_module, print_module
from tflquant.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits_cnn.tflite"
DIGITS_CALIB = ROOT / "examples" / "digits_cnn_calib.npz"
DIGITS_INPUT = "serving_default_keras_tensor:0"

SPEC = InputSpec("x:0", (1, 4, 4, 1), np.dtype("float32"), alias="x")
TOK = InputSpec("tokens:0", (1, 3), np.dtype("int32"), alias="tokens")

# A token model: int32 ids -> embedding GATHER (f32 table) -> RELU. Non-float inputs run
# but get no statistics.
TOKEN_MODEL = """
builtin.module attributes {tfl.signatures = [{key = "serving_default", function = "main", inputs = ["tokens"], input_indices = array<i32: 0>, outputs = ["out"], output_indices = array<i32: 0>}]} {
  func.func @main(%ids: tensor<1x3xi32> {tfl.name = "tokens:0"}) -> tensor<1x3x2xf32> {
    %t = "tfl.const"() <{value = dense<[[-1.0, 2.0], [3.0, -4.0], [0.5, 0.25], [-8.0, 8.0]]> : tensor<4x2xf32>}> {names = ["table"]} : () -> tensor<4x2xf32>
    %g = "tfl.gather"(%t, %ids) <{axis = 0 : i32}> {names = ["emb"]} : (tensor<4x2xf32>, tensor<1x3xi32>) -> tensor<1x3x2xf32>
    %r = "tfl.relu"(%g) {names = ["out"]} : (tensor<1x3x2xf32>) -> tensor<1x3x2xf32>
    func.return %r : tensor<1x3x2xf32>
  }
}
"""

# Two signatures over two subgraphs, and the same model without signatures.
_FUNCS = """
  func.func @add_fn(%a: tensor<1x2xf32> {tfl.name = "add_x"}) -> tensor<1x2xf32> {
    %c = "tfl.const"() <{value = dense<[[1.0, 2.0]]> : tensor<1x2xf32>}> {names = ["add_c"]} : () -> tensor<1x2xf32>
    %y = "tfl.add"(%a, %c) <{fused_activation_function = "NONE"}> {names = ["add_y"]} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x2xf32>
    func.return %y : tensor<1x2xf32>
  }
  func.func @mul_fn(%a: tensor<1x2xf32> {tfl.name = "mul_x"}) -> tensor<1x2xf32> {
    %c = "tfl.const"() <{value = dense<[[-1.0, 3.0]]> : tensor<1x2xf32>}> {names = ["mul_c"]} : () -> tensor<1x2xf32>
    %y = "tfl.mul"(%a, %c) <{fused_activation_function = "NONE"}> {names = ["mul_y"]} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x2xf32>
    func.return %y : tensor<1x2xf32>
  }
"""
MULTI_SIG = (
    'builtin.module attributes {tfl.signatures = ['
    '{key = "add", function = "add_fn", inputs = ["x"], input_indices = array<i32: 0>, outputs = ["y"], output_indices = array<i32: 0>}, '
    '{key = "mul", function = "mul_fn", inputs = ["x"], input_indices = array<i32: 0>, outputs = ["y"], output_indices = array<i32: 0>}]} {'
    + _FUNCS
    + "}"
)
NO_SIG = "builtin.module {" + _FUNCS + "}"


def _module(text: str):
    return parse_module(text)


# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------


def _collect(n_it):
    n, it = n_it
    return n, list(it)


def test_npz_keyed_by_tensor_or_signature_name_and_batch_dim_added(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(5, 4, 4, 1))  # float64, no batch dim
    for key in ("x:0", "x"):
        np.savez(tmp_path / "d.npz", labels=np.arange(5), **{key: data})
        n, samples = _collect(samples_from_arrays(load_npz(tmp_path / "d.npz"), [SPEC], "d.npz"))
        assert n == 5 and len(samples) == 5
        assert samples[0][0].shape == (1, 4, 4, 1) and samples[0][0].dtype == np.float32
        np.testing.assert_allclose(samples[3][0][0], data[3].astype(np.float32))


def test_npz_in_input_order_when_no_key_matches(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", whatever=np.zeros((2, 1, 4, 4, 1), np.float32), tok=np.ones((2, 3), np.int64))
    n, samples = _collect(samples_from_arrays(load_npz(tmp_path / "d.npz"), [SPEC, TOK], "d.npz"))
    assert n == 2 and samples[1][1].dtype == np.int32 and samples[1][1].shape == (1, 3)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((3, 5, 5, 1))}, "input 'x:0' (signature name 'x') expects a sample of shape [1, 4, 4, 1], got an array of shape [5, 5, 1]"),
        ({"x": np.zeros((0, 4, 4, 1))}, "holds no samples"),
        ({"x": np.float32(1.0)}, "is a scalar"),
        ({"a": np.zeros((2, 4, 4)), "b": np.zeros((2, 4, 4))}, "do not match the model inputs"),
        ({"x": np.array([["a"] * 16] * 2).reshape(2, 4, 4, 1)}, "is float32, but the data is str"),
    ],
)
def test_npz_errors_name_the_input(arrays, message: str) -> None:
    with pytest.raises(TflquantError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        samples_from_arrays(arrays, [SPEC], "d.npz")


def test_missing_input_and_sample_count_mismatch() -> None:
    with pytest.raises(TflquantError, match="no data for input 'tokens:0'"):
        samples_from_arrays({"x": np.zeros((2, 4, 4, 1))}, [SPEC, TOK], "d.npz")
    with pytest.raises(TflquantError, match=r"different numbers of samples \('x:0' \(signature name 'x'\): 2, 'tokens:0' \(signature name 'tokens'\): 3\)"):
        samples_from_arrays({"x": np.zeros((2, 4, 4, 1)), "tokens": np.zeros((3, 3), np.int32)}, [SPEC, TOK], "d.npz")


def test_token_input_dtype_checks() -> None:
    with pytest.raises(TflquantError, match="input 'tokens:0' .* is int32, but the data is float64"):
        samples_from_arrays({"tokens": np.zeros((2, 3))}, [TOK], "d.npz")
    with pytest.raises(TflquantError, match="outside"):
        samples_from_arrays({"tokens": np.full((2, 3), 2**40, np.int64)}, [TOK], "d.npz")


def test_bad_npz_files(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(TflquantError, match="junk.npz: not a readable .npz"):
        load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(TflquantError, match="not a .npz archive"):
        load_npz(tmp_path / "one.npy")
    with pytest.raises(TflquantError, match="no such calibration file"):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(TflquantError, match="is a directory"):
        load_npz(tmp_path)


def test_iterables_like_tf_representative_dataset() -> None:
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(1, 4, 4, 1)).astype(np.float32) for _ in range(3)]

    def gen():
        for x in xs:
            yield [x]

    for source in (gen, gen(), [[x] for x in xs], [{"x": x} for x in xs], [{"x:0": x[0]} for x in xs], xs):
        got = list(samples_from_iterable(source, [SPEC], "data"))
        assert len(got) == 3
        np.testing.assert_array_equal(got[2][0], xs[2])


def test_iterable_errors_name_the_sample() -> None:
    with pytest.raises(TflquantError, match="data, sample 1: got 2 array"):
        list(samples_from_iterable([[np.zeros((1, 4, 4, 1))], [np.zeros((1, 4, 4, 1))] * 2], [SPEC], "data"))
    with pytest.raises(TflquantError, match="expected a list or dict of arrays per sample, got str"):
        list(samples_from_iterable(["oops"], [SPEC], "data"))
    with pytest.raises(TflquantError, match="expected an iterable"):
        list(samples_from_iterable(42, [SPEC], "data"))


def test_batches_stack_samples_and_split_on_shape_changes() -> None:
    s = [[np.full((1, 2), i, np.float32)] for i in range(5)]
    got = list(batches(iter(s), 2))
    assert [b[0].shape for b in got] == [(2, 1, 2), (2, 1, 2), (1, 1, 2)]
    mixed = [[np.zeros((1, 2))], [np.zeros((1, 2))], [np.zeros((1, 3))]]
    assert [b[0].shape for b in batches(iter(mixed), 8)] == [(2, 1, 2), (1, 1, 3)]


def test_dynamic_dims_accept_any_size() -> None:
    dyn = InputSpec("seq", (1, -1), np.dtype("int32"))
    n, it = samples_from_arrays({"seq": np.zeros((2, 7), np.int32)}, [dyn], "d")
    assert [s[0].shape for s in it] == [(1, 7), (1, 7)]


# ---------------------------------------------------------------------------------------
# observers
# ---------------------------------------------------------------------------------------


def test_minmax_observer_running_range_and_nonfinite_values() -> None:
    o = MinMaxObserver()
    o.observe("a", np.array([1.0, -2.0], np.float32))
    o.observe("a", np.array([[5.0, np.nan, -np.inf]], np.float32))
    o.observe("b", np.array([np.nan, np.inf], np.float32))
    o.observe("i", np.array([100, -100], np.int32))  # integer tensors are not observed
    assert o.stats() == {"a": Range.of(-2.0, 5.0)}
    w = o.warnings()
    assert any("'a'" in x and "skipped 2 NaN/Inf" in x for x in w)
    assert any("'b'" in x and "no range" in x for x in w)


# ---------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------


def _litert_ranges(model: Path, x: np.ndarray) -> dict[str, tuple[float, float]]:
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=str(model), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    out: dict[str, tuple[float, float]] = {}
    for sample in x:
        it.set_tensor(d["index"], sample.reshape(d["shape"]).astype(np.float32))
        it.invoke()
        for t in it.get_tensor_details():
            try:
                a = it.get_tensor(t["index"])
            except ValueError:
                continue
            if a.dtype != np.float32 or a.size == 0:
                continue
            lo, hi = out.get(t["name"], (np.inf, -np.inf))
            out[t["name"]] = (min(lo, float(a.min())), max(hi, float(a.max())))
    return out


def test_calibrate_digits_matches_litert_ranges_for_every_activation() -> None:
    from tflquant.tflite.reader import load_model

    x = np.load(DIGITS_CALIB)[DIGITS_INPUT][:40]
    result = calibrate(load_model(DIGITS), {DIGITS_INPUT: x}, batch_size=16)
    assert result.samples == 40 and result.batches == 3
    ref = _litert_ranges(DIGITS, x)
    assert DIGITS_INPUT in result.stats and len(result.stats) >= 10
    for name, r in result.stats.items():
        lo, hi = ref[name]
        tol = 1e-5 * max(1.0, hi - lo)
        assert abs(r.mins[0] - lo) <= tol and abs(r.maxs[0] - hi) <= tol, name


def test_batch_size_does_not_change_the_ranges() -> None:
    from tflquant.tflite.reader import load_model

    m = load_model(DIGITS)
    a = calibrate(m, DIGITS_CALIB, batch_size=1, max_samples=10).stats
    b = calibrate(m, DIGITS_CALIB, batch_size=7, max_samples=10).stats
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].mins[0] == pytest.approx(b[k].mins[0], abs=1e-5) and a[k].maxs[0] == pytest.approx(b[k].maxs[0], abs=1e-5)


def test_parallel_sample_ranges_give_the_serial_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel ranges reduce their arrays in their own threads and merge in range order:
    the ranges and per-channel means of one thread over whole batches (up to the kernels'
    float rounding, which depends on the matrix sizes BLAS sees)."""
    from tflquant.reference import float_kernels as fk
    from tflquant.reference import interpreter as interp_mod
    from tflquant.tflite.reader import load_model

    m = load_model(DIGITS)
    x = np.load(DIGITS_CALIB)[DIGITS_INPUT][:64]
    x[3, 2:10, 2:10, 0] = np.finfo(np.float32).max  # non-finite values inside the model (overflow) are counted the same way too
    old = fk.set_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            serial = calibrate(m, {DIGITS_INPUT: x}, batch_size=64)
            fk.set_threads(2)
            monkeypatch.setattr(interp_mod, "PARALLEL_MIN_ELEMS", 0)
            merged: list[str] = []
            real_merge = MinMaxObserver.merge
            monkeypatch.setattr(MinMaxObserver, "merge", lambda self, name, part: (merged.append(name), real_merge(self, name, part))[1])
            parallel = calibrate(m, {DIGITS_INPUT: x}, batch_size=64)
    finally:
        fk.set_threads(old)
    ranges = 64 // interp_mod.PARALLEL_RANGE_SAMPLES
    assert len(merged) > ranges * 5 and merged.count(merged[-1]) == ranges  # merged once per range
    assert serial.stats.keys() == parallel.stats.keys() and serial.warnings == parallel.warnings
    for k, a in serial.stats.items():
        b = parallel.stats[k]
        np.testing.assert_allclose(b.mins + b.maxs, a.mins + a.maxs, rtol=1e-5, atol=1e-6, err_msg=k)
        assert (a.mean is None) == (b.mean is None), k
        if a.mean is not None:
            np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5, atol=1e-6)


def test_nan_in_the_data_is_an_error_nan_inside_the_model_is_skipped_with_a_warning() -> None:
    from tflquant.tflite.reader import load_model

    x = np.load(DIGITS_CALIB)[DIGITS_INPUT][:8].copy()
    x[2, 3, 3, 0] = np.nan  # the data itself: an error naming the sample (issue 10)
    with pytest.raises(TflquantError, match=r"NaN or infinite values in 1 of 8 samples \(2\); give finite data"):
        calibrate(load_model(DIGITS), {DIGITS_INPUT: x})
    x[2, 3:9, 3:9, 0] = np.finfo(np.float32).max  # finite data the model overflows to inf: skipped, counted
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        with pytest.warns(CalibrationWarning, match=r"skipped \d+ NaN/Inf value\(s\) .* more tensor"):
            r = calibrate(load_model(DIGITS), {DIGITS_INPUT: x})
    assert any("skipped" in w and "NaN/Inf value(s) of" in w for w in r.warnings)
    assert all(np.isfinite(v.mins[0]) and np.isfinite(v.maxs[0]) for v in r.stats.values())
    assert r.stats[DIGITS_INPUT].maxs[0] == pytest.approx(float(np.finfo(np.float32).max))


def test_token_model_runs_int_inputs_and_records_only_float_tensors() -> None:
    m = _module(TOKEN_MODEL)
    ids = np.array([[0, 1, 2], [3, 3, 3]], np.int32)
    r = calibrate(m, {"tokens": ids})
    assert set(r.stats) == {"emb", "out"}
    assert r.stats["emb"] == Range.of(-8.0, 8.0)
    assert r.stats["out"] == Range.of(0.0, 8.0)


def test_multi_signature_models_calibrate_each_signature_named() -> None:
    m = _module(MULTI_SIG)
    assert [e.key for e in entries(m)] == ["add", "mul"]
    x = np.array([[1.0, 1.0], [2.0, -1.0]], np.float32)
    r = calibrate(m, {"add/x": x, "mul_x": x})
    assert r.stats["add_y"] == Range.of(1.0, 3.0) and r.stats["mul_y"] == Range.of(-3.0, 3.0)
    assert r.per_entry == {"add": 2, "mul": 2}
    # TF style: (signature_key, {name: array}) pairs, only the 'mul' signature
    r2 = calibrate(m, [("mul", {"x": x[i:i + 1]}) for i in range(2)])
    assert set(r2.stats) == {"mul_x", "mul_y"}
    with pytest.raises(TflquantError, match="yield \\(signature_key"):
        calibrate(m, [[x[:1]]])
    with pytest.raises(TflquantError, match="unknown signature 'nope'"):
        calibrate(m, [("nope", {"x": x[:1]})])
    with pytest.raises(TflquantError, match="no array matches one of them"):
        calibrate(m, {"other": x})


def test_model_without_signatures_runs_its_first_function() -> None:
    m = _module(NO_SIG)
    (e,) = entries(m)
    assert e.key is None and e.fn.sym_name.data == "add_fn"
    r = calibrate(m, [np.array([[0.0, 1.0]], np.float32)])
    assert r.stats["add_y"] == Range.of(1.0, 3.0)


def test_empty_iterable_is_an_error() -> None:
    from tflquant.tflite.reader import load_model

    with pytest.raises(TflquantError, match="no calibration samples"):
        calibrate(load_model(DIGITS), [])


def test_progress_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(10, True, stream=stream)
        p.update(4)
        p.update(6)
        p.close()
    assert "10/10 samples" in tty.getvalue() and tty.getvalue().endswith("\n")
    assert pipe.getvalue() == ""
    off = Tty()
    Progress(10, False, stream=off).update(3)
    assert off.getvalue() == ""


# ---------------------------------------------------------------------------------------
# stats files and the annotate-calibration hook
# ---------------------------------------------------------------------------------------


def test_stats_file_round_trip_and_short_forms(tmp_path: Path) -> None:
    stats = {"b": Range.of(-1.5, 2.0), "a": Range((-1.0, -2.0), (1.0, 2.0), axis=1)}
    write_stats(tmp_path / "s.json", stats)
    assert read_stats(tmp_path / "s.json") == stats
    assert json.loads(stats_to_json(stats))["format"] == "tflquant-calibration-stats"
    (tmp_path / "short.json").write_text('{"x": [0, 1], "y": {"min": -1, "max": 1}}')
    assert read_stats(tmp_path / "short.json") == {"x": Range.of(0, 1), "y": Range.of(-1, 1)}


@pytest.mark.parametrize(
    "text, message",
    [
        ("{nope", "not a JSON calibration stats file"),
        ('{"x": [2, 1]}', "min 2.0 greater than max 1.0"),
        ('{"x": {"min": 0}}', "needs both 'min' and 'max'"),
        ('{"x": [0, Infinity]}', "non-finite range"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_stats_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.json").write_text(text)
    with pytest.raises(TflquantError, match=message):
        read_stats(tmp_path / "s.json")


def test_in_memory_stats_hook_feeds_the_pass() -> None:
    ctx = make_context()
    m = parse_module(TOKEN_MODEL, ctx=ctx)
    run_pipeline(ctx, m, "annotate-calibration", stats={"emb": (-8.0, 8.0), "out": Range.of(0.0, 8.0)})
    text = print_module(m)
    assert text.count("quant.stats") == 2 and "<-8.0, 8.0>" in text and "<0.0, 8.0>" in text
    # without them the pass has nothing to add and leaves the module as it is
    run_pipeline(ctx, m, "annotate-calibration")
    assert print_module(m) == text


def test_calibrated_stats_annotate_every_float_activation_of_a_real_model() -> None:
    from tflquant.tflite.reader import load_model

    ctx = make_context()
    m = load_model(DIGITS)
    r = calibrate(m, DIGITS_CALIB, max_samples=16)
    run_pipeline(ctx, m, "annotate-calibration", stats=r.stats)
    assert print_module(m).count("quant.stats ") == len(r.stats)


def test_blas_threads_are_limited_inside_and_restored_after() -> None:
    from tflquant.calibration.blas import blas_threads, current_blas_threads

    before = current_blas_threads()
    with blas_threads(1):
        inside = current_blas_threads()
    assert current_blas_threads() == before
    if before is not None:  # numpy uses OpenBLAS here
        assert inside == 1
    with blas_threads(None):
        assert current_blas_threads() == before


def test_calibration_keeps_activation_arrays_on_the_heap() -> None:
    """After calibrate(), a 4 MB array (a typical activation) is not given fresh mmap'd pages
    (glibc: mallinfo2's count of mmap'd blocks stays); elsewhere keep_arrays_on_heap() is False."""
    import ctypes
    import platform

    from tflquant.calibration.heap import MMAP_THRESHOLD, keep_arrays_on_heap
    from tflquant.tflite.reader import load_model

    calibrate(load_model(DIGITS), DIGITS_CALIB, max_samples=2)
    if platform.libc_ver()[0] != "glibc":
        assert keep_arrays_on_heap() is False
        return
    assert keep_arrays_on_heap() is True

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2().hblks
    a = np.ones(1 << 20, np.float32)
    assert libc.mallinfo2().hblks == before
    big = np.ones(MMAP_THRESHOLD + (16 << 20), np.uint8)  # above the threshold: still its own mapping
    assert libc.mallinfo2().hblks == before + 1
    del a, big


def test_a_plain_observer_sees_every_float_tensor_in_sample_order() -> None:
    """An observer with observe/stats/warnings only (hessian.InputHessians' interface: no
    reduce/merge, no histograms) is called with each tensor's arrays, samples in order."""
    from tflquant.tflite.reader import load_model

    class Plain:
        def __init__(self) -> None:
            self.seen: dict[str, int] = {}

        def observe(self, name: str, array: np.ndarray) -> None:
            self.seen[name] = self.seen.get(name, 0) + len(array)

        def stats(self) -> dict[str, Range]:
            return {}

        def warnings(self) -> list[str]:
            return []

    data = {k: v[:20] for k, v in load_npz(DIGITS_CALIB).items()}
    obs = Plain()
    calibrate(load_model(DIGITS), data, batch_size=8, observer=obs)  # type: ignore[arg-type]
    minmax = calibrate(load_model(DIGITS), data, batch_size=8).stats
    assert set(minmax) <= set(obs.seen) and obs.seen[DIGITS_INPUT] == 20
