"""The outlier transforms (issue 13): equalize-cross-layer and smooth-quant keep the float
function (reference interpreter, float rounding only) on random conv chains and random
layer-norm -> FC graphs, touch exactly the layers they may, balance what they promise to
balance, and are wired into the pipeline, API and CLI as opt-in options.

`conv_chain` and `ln_graph` are also the models benchmarks/outlier_transforms.py measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import GraphBuilder
from xdsl.dialects.builtin import ModuleOp

from tflquant.errors import TflquantError
from tflquant.ir import make_context, print_module, value_name
from tflquant.pipeline import pipeline_spec, run_pipeline
from tflquant.reference import Interpreter

ACTS = ("NONE", "RELU", "RELU_OP", "RELU6")  # RELU_OP: a separate RELU op after the layer


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


def conv_chain(
    seed: int,
    kinds: Sequence[str],
    acts: Sequence[str],
    channels: Sequence[int],
    spread: float = 3.0,
    size: int = 8,
    in_channels: int = 3,
    strides: Sequence[int] | None = None,
    fc: bool = True,
    fc_acts: Sequence[str] = (),
    paddings: Sequence[str] | None = None,
) -> ModuleOp:
    """A chain of CONV_2D / DEPTHWISE_CONV_2D layers (kinds[i], activation acts[i] after
    it, channels[i] output channels; a depthwise layer multiplies its input channels by
    channels[i] // input), ending in RESHAPE + FULLY_CONNECTED when `fc` (with fused
    activation fc_acts[0], then one more FULLY_CONNECTED per further entry). Output
    channels' weight ranges spread over exp(+-spread): the badly scaled channels BatchNorm
    folding leaves, the case cross-layer equalization is for."""
    r = np.random.default_rng(seed)
    g = GraphBuilder("main", {"image": ((1, size, size, in_channels), np.float32)})
    x, c, hw = g.x, in_channels, size
    strides = strides or [1] * len(kinds)
    for i, (kind, act, out) in enumerate(zip(kinds, acts, channels)):
        k = 3 if i % 2 == 0 else 1
        s = strides[i]
        pad = paddings[i] if paddings and hw >= k else "SAME"
        spread_o = np.exp(r.uniform(-spread, spread, out)).astype(np.float32)
        hw_out = -(-hw // s) if pad == "SAME" else (hw - k) // s + 1
        fused = act if act in ("NONE", "RELU", "RELU6") else "NONE"
        opts = dict(padding=pad, stride_w=s, stride_h=s, fused_activation_function=fused)
        if kind == "DEPTHWISE_CONV_2D":
            mult = max(out // c, 1)
            out = c * mult
            spread_o = spread_o[:out] if spread_o.size >= out else np.resize(spread_o, out)
            w = (r.standard_normal((1, k, k, out)) / k * spread_o).astype(np.float32)
            x = g.op(kind, [x, g.const(w, f"l{i}/w"), g.const((r.standard_normal(out) * spread_o * 0.1).astype(np.float32), f"l{i}/b")],
                     (1, hw_out, hw_out, out), name=f"l{i}", depth_multiplier=mult, **opts)
        else:
            w = (r.standard_normal((out, k, k, c)) / np.sqrt(k * k * c) * spread_o[:, None, None, None]).astype(np.float32)
            x = g.op(kind, [x, g.const(w, f"l{i}/w"), g.const((r.standard_normal(out) * spread_o * 0.1).astype(np.float32), f"l{i}/b")],
                     (1, hw_out, hw_out, out), name=f"l{i}", **opts)
        if act == "RELU_OP":
            x = g.op("RELU", [x], (1, hw_out, hw_out, out), name=f"l{i}/relu")
        c, hw = out, hw_out
    if fc:
        flat = g.op("RESHAPE", [x, g.const(np.array([1, hw * hw * c], np.int32), "flat/shape")], (1, hw * hw * c), name="flat")
        x, k = flat, hw * hw * c
        for j, act in enumerate(fc_acts or ["NONE"]):
            name, out = ("fc" if j == 0 else f"fc{j}"), 4 + j
            w = (r.standard_normal((out, k)) / np.sqrt(k) * np.exp(r.uniform(-spread, spread, out))[:, None]).astype(np.float32)
            x = g.op("FULLY_CONNECTED", [x, g.const(w, f"{name}/w"), g.const((0.1 * r.standard_normal(out)).astype(np.float32), f"{name}/b")],
                     (1, out), name=name, fused_activation_function=act)
            k = out
    return g.module([x], ["out"])


def ln_graph(
    seed: int,
    channels: int = 8,
    tokens: int = 4,
    readers: Sequence[str] = ("fc", "fc"),
    beta: bool = True,
    residual: bool = False,
    outliers: float = 1.0,
    layers: int = 1,
) -> ModuleOp:
    """`layers` blocks of a Keras layer norm (MEAN, SQUARED_DIFFERENCE, MEAN, ADD eps,
    RSQRT, MUL gamma, NEG/MUL, ADD beta, MUL, ADD, as the TF converter writes it) whose
    output the `readers` read: "fc" (FULLY_CONNECTED, keep_num_dims), "reshape_fc" (the
    Tensordot form: RESHAPE to 2-D, FULLY_CONNECTED), "mean_fc" (MEAN over the tokens, then
    FULLY_CONNECTED), "bmm" (BATCH_MATMUL by a constant). `residual`: the norm's output is
    also added to the block input (post-norm: not smoothable). `outliers`: a quarter of the
    channels get gamma that much larger and the readers' weights of those channels that
    much smaller: the systematic outlier channels of trained transformers, which carry no
    more of the output than the others."""
    r = np.random.default_rng(seed)
    c, t = channels, tokens
    g = GraphBuilder("main", {"x": ((1, t, c), np.float32)})
    x = g.x
    outs = []
    for b in range(layers):
        p = f"b{b}"
        axis = g.const(np.array([-1], np.int32), f"{p}/axis")
        mean = g.op("MEAN", [x, axis], (1, t, 1), name=f"{p}/mean", keep_dims=True)
        neg = g.op("NEG", [mean], (1, t, 1), name=f"{p}/neg")
        sq = g.op("SQUARED_DIFFERENCE", [x, mean], (1, t, c), name=f"{p}/sq")
        var = g.op("MEAN", [sq, axis], (1, t, 1), name=f"{p}/var", keep_dims=True)
        ve = g.op("ADD", [var, g.const(np.float32(1e-3), f"{p}/eps")], (1, t, 1), name=f"{p}/add")
        rs = g.op("RSQRT", [ve], (1, t, 1), name=f"{p}/rsqrt")
        gamma = (1.0 + 0.2 * r.standard_normal(c)).astype(np.float32)
        wide = r.permutation(c)[: max(c // 4, 1)]
        gamma[wide] *= outliers
        gm = g.op("MUL", [rs, g.const(gamma.reshape(1, 1, c), f"{p}/gamma")], (1, t, c), name=f"{p}/mul")
        m1 = g.op("MUL", [neg, gm], (1, t, c), name=f"{p}/mul_1")
        if beta:
            m1 = g.op("ADD", [m1, g.const((0.3 * r.standard_normal((1, 1, c))).astype(np.float32), f"{p}/beta")], (1, t, c), name=f"{p}/add_1")
        m2 = g.op("MUL", [x, gm], (1, t, c), name=f"{p}/mul_2")
        y = g.op("ADD", [m2, m1], (1, t, c), name=f"{p}/out")
        heads = []
        for k, kind in enumerate(readers):
            w = (r.standard_normal((c, c)) / np.sqrt(c)).astype(np.float32)
            w[:, wide] /= outliers  # trained readers weigh the wide channels down
            bias = g.const((0.1 * r.standard_normal(c)).astype(np.float32), f"{p}/r{k}/b")
            if kind == "fc":
                h = g.op("FULLY_CONNECTED", [y, g.const(w, f"{p}/r{k}/w"), bias], (1, t, c), name=f"{p}/r{k}", keep_num_dims=True)
            elif kind == "reshape_fc":
                y2 = g.op("RESHAPE", [y, g.const(np.array([t, c], np.int32), f"{p}/r{k}/shape")], (t, c), name=f"{p}/r{k}/flat")
                h2 = g.op("FULLY_CONNECTED", [y2, g.const(w, f"{p}/r{k}/w"), bias], (t, c), name=f"{p}/r{k}")
                h = g.op("RESHAPE", [h2, g.const(np.array([1, t, c], np.int32), f"{p}/r{k}/back")], (1, t, c), name=f"{p}/r{k}/unflat")
            elif kind == "mean_fc":
                pooled = g.op("MEAN", [y, g.const(np.array([1], np.int32), f"{p}/r{k}/axis")], (1, c), name=f"{p}/r{k}/pool", keep_dims=False)
                h2 = g.op("FULLY_CONNECTED", [pooled, g.const(w, f"{p}/r{k}/w"), bias], (1, c), name=f"{p}/r{k}")
                h = g.op("RESHAPE", [h2, g.const(np.array([1, 1, c], np.int32), f"{p}/r{k}/back")], (1, 1, c), name=f"{p}/r{k}/unflat")
                h = g.op("ADD", [h, g.const(np.zeros((1, t, c), np.float32), f"{p}/r{k}/bcast")], (1, t, c), name=f"{p}/r{k}/tile")
            else:  # bmm
                h = g.op("BATCH_MATMUL", [y, g.const(w.T.reshape(1, c, c).copy(), f"{p}/r{k}/w")], (1, t, c), name=f"{p}/r{k}")
            heads.append(h)
        z = heads[0]
        for h in heads[1:]:
            z = g.op("ADD", [z, h], (1, t, c), name=f"{p}/sum{len(outs)}_{value_name(h)}")
        if residual:
            outs.append(g.op("ADD", [y, x], (1, t, c), name=f"{p}/residual"))
        x = g.op("ADD", [x, z], (1, t, c), name=f"{p}/next")
    return g.module([x, *outs], ["out", *[f"res{i}" for i in range(len(outs))]])


def ln_data(seed: int, channels: int = 8, tokens: int = 4, n: int = 16, outlier_inputs: float = 1.0) -> np.ndarray:
    x = np.random.default_rng(seed + 1).standard_normal((n, 1, tokens, channels)).astype(np.float32)
    x[..., 0] *= outlier_inputs
    return x


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _run(m: ModuleOp, x: np.ndarray) -> list[np.ndarray]:
    return Interpreter(m).run([x])


def _assert_same_function(before: list[np.ndarray], after: list[np.ndarray], rtol: float = 2e-5) -> None:
    for a, b in zip(before, after):
        scale = max(float(np.max(np.abs(a))), 1e-6)
        assert np.max(np.abs(a - b)) <= rtol * scale * 10 + 1e-6, (np.max(np.abs(a - b)), scale)


def _marked(m: ModuleOp, mark: str) -> list[str]:
    return [value_name(o.results[0]) or "" for o in m.walk() if mark in o.attributes]


def _weights(m: ModuleOp) -> dict[str, np.ndarray]:
    from tflquant.dialects import tfl

    return {value_name(o.results[0]) or "": o.numpy() for o in m.walk() if isinstance(o, tfl.ConstOp)}


def _smooth(m: ModuleOp, x: np.ndarray, alpha: float = 0.5) -> None:
    """smooth-quant with per-channel ranges observed on x, as the driver does."""
    from tflquant.passes.smooth_quant import ChannelRangeObserver, attach_ranges, sites

    names = frozenset(value_name(s.y) for s in sites(m))
    obs = ChannelRangeObserver(names=names)
    Interpreter(m).run([x], observer=lambda v, a: (n := value_name(v)) in names and obs.merge(n, obs.reduce(n, a)))
    attach_ranges(m, obs.stats())
    run_pipeline(make_context(), m, f"smooth-quant{{alpha={alpha!r}}}")


# ---------------------------------------------------------------------------------------
# equalize-cross-layer
# ---------------------------------------------------------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> tuple[ModuleOp, list[str], list[str]]:
    n = draw(st.integers(2, 4))
    kinds = draw(st.lists(st.sampled_from(["CONV_2D", "DEPTHWISE_CONV_2D"]), min_size=n, max_size=n))
    acts = draw(st.lists(st.sampled_from(ACTS), min_size=n, max_size=n))
    channels = draw(st.lists(st.integers(2, 6), min_size=n, max_size=n))
    strides = draw(st.lists(st.sampled_from([1, 2]), min_size=n, max_size=n))
    paddings = draw(st.lists(st.sampled_from(["SAME", "VALID"]), min_size=n, max_size=n))
    fc = draw(st.booleans())
    fc_acts = draw(st.lists(st.sampled_from(["NONE", "RELU", "RELU6"]), min_size=1, max_size=3)) if fc else []
    m = conv_chain(draw(st.integers(0, 2**16)), kinds, acts, channels, spread=draw(st.floats(0.0, 4.0)), strides=strides, fc=fc, fc_acts=fc_acts, paddings=paddings)
    names = [f"l{i}" for i in range(n)] + (["fc", *[f"fc{j}" for j in range(1, len(fc_acts))]] if fc else [])
    return m, [*acts, *fc_acts], names  # acts[i]: the activation after layer names[i]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.integers(0, 2**16))
def test_equalize_keeps_the_float_function(chain: tuple[ModuleOp, list[str], list[str]], seed: int) -> None:
    m, acts, layers = chain
    x = np.random.default_rng(seed).standard_normal((3, 1, 8, 8, 3)).astype(np.float32)
    before = _run(m, x)
    run_pipeline(make_context(), m, "equalize-cross-layer")
    _assert_same_function(before, _run(m, x))
    # exactly the layers joined by a positively homogeneous activation are equalized
    expected = set()
    for i in range(len(layers) - 1):
        if acts[i] != "RELU6":
            expected |= {layers[i], layers[i + 1]}
    assert set(_marked(m, "tflquant.equalized")) == expected


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["CONV_2D", "DEPTHWISE_CONV_2D"]), st.sampled_from(["NONE", "RELU", "RELU_OP"]), st.floats(0.0, 5.0))
def test_equalize_balances_a_pair(seed: int, kind: str, act: str, spread: float) -> None:
    """After the pass, output channel i of the first layer and input channel i of the
    second have the same range max|w| (sqrt of the product of the old ones)."""
    from tflquant.passes._rescale import in_ranges, out_ranges

    m = conv_chain(seed, [kind, "CONV_2D"], [act, "NONE"], [4, 5], spread=spread, fc=False)
    w0 = _weights(m)
    r1_old, r2_old = out_ranges(kind, w0["l0/w"]), in_ranges("CONV_2D", w0["l1/w"], w0["l0/w"].shape[3 if kind != "CONV_2D" else 0])
    run_pipeline(make_context(), m, "equalize-cross-layer")
    w = _weights(m)
    r1, r2 = out_ranges(kind, w["l0/w"]), in_ranges("CONV_2D", w["l1/w"], r1_old.size)
    np.testing.assert_allclose(r1, r2, rtol=1e-5)
    np.testing.assert_allclose(r1, np.sqrt(r1_old * r2_old), rtol=1e-5)


def test_equalize_is_idempotent_and_deterministic() -> None:
    texts = []
    for passes in ("equalize-cross-layer", "equalize-cross-layer,equalize-cross-layer"):
        m = conv_chain(3, ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"], ["RELU", "RELU_OP", "NONE"], [6, 6, 4])
        run_pipeline(make_context(), m, passes)
        texts.append(print_module(m))
    assert texts[0] == texts[1]


def test_equalize_lifts_int8_sqnr_of_a_badly_scaled_conv_chain() -> None:
    """The case CLE is for: depthwise output channels whose ranges spread over e^+-3 share
    one per-tensor activation scale; equalized, the int8 model's output is closer to the
    float one (reference interpreter of the quantized IR against the float model)."""
    sqnr = {}
    for on in (False, True):
        sqnr[on] = _quantized_sqnr(conv_chain(7, ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"], ["RELU", "RELU", "NONE"], [8, 8, 8], spread=3.0),
                                   np.random.default_rng(0).standard_normal((32, 1, 8, 8, 3)).astype(np.float32), cross_layer_equalization=on)
    assert sqnr[True] > sqnr[False] + 3.0, sqnr


def _quantized_sqnr(m: ModuleOp, x: np.ndarray, **options: object) -> float:
    """int8 output SQNR on x[16:] (integer reference kernels) after calibrating on x[:16]."""
    from tflquant.api import quantize
    from tflquant.reference.integer_interpreter import IntegerInterpreter
    from tflquant.scoring import sqnr_db
    from tflquant.tflite.writer import write_flatbuffer

    ref = Interpreter(m).run([x[16:]])[0]
    res = quantize(write_flatbuffer(m), "int8", representative_dataset=[[s] for s in x[:16]], **options)
    assert res.module is not None
    return sqnr_db(ref, IntegerInterpreter(res.module).run([x[16:]])[0])


# ---------------------------------------------------------------------------------------
# smooth-quant
# ---------------------------------------------------------------------------------------

READERS = ("fc", "reshape_fc", "mean_fc", "bmm")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**16),
    st.integers(2, 12),
    st.lists(st.sampled_from(READERS), min_size=1, max_size=3),
    st.booleans(),
    st.booleans(),
    st.floats(1.0, 30.0),
    st.sampled_from([0.0, 0.25, 0.5, 0.85, 1.0]),
)
def test_smooth_quant_keeps_the_float_function(seed: int, channels: int, readers: list[str], beta: bool, residual: bool,
                                               outliers: float, alpha: float) -> None:
    m = ln_graph(seed, channels, readers=readers, beta=beta, residual=residual, outliers=outliers, layers=2)
    x = ln_data(seed, channels, outlier_inputs=outliers)
    before = _run(m, x)
    w0 = _weights(m)
    _smooth(m, x, alpha)
    _assert_same_function(before, _run(m, x))
    marked = _marked(m, "tflquant.smoothed")
    if residual:  # every consumer must take the factor: a residual read makes it skip
        assert marked == [] and all(np.array_equal(v, _weights(m)[k]) for k, v in w0.items())
    else:
        assert marked == ["b0/out", "b1/out"]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 10), st.lists(st.sampled_from(["fc", "reshape_fc", "bmm"]), min_size=1, max_size=3), st.floats(1.0, 50.0))
def test_smooth_quant_alpha_half_equalizes_activation_and_weight_ranges(seed: int, channels: int, readers: list[str], outliers: float) -> None:
    """With alpha 0.5, max|X_j| / s_j == max|W_j| * s_j (both sqrt(max|X_j| max|W_j|)):
    measured on the smoothed model's layer-norm output and its readers' weights."""
    from tflquant.passes._rescale import in_ranges
    from tflquant.passes.smooth_quant import sites

    m = ln_graph(seed, channels, readers=readers, outliers=outliers)
    x = ln_data(seed, channels)
    site = sites(m)[0]
    _smooth(m, x, 0.5)
    seen: dict[str, np.ndarray] = {}
    Interpreter(m).run([x], observer=lambda v, a: seen.__setitem__(value_name(v), a) if value_name(v) == "b0/out" else None)
    xmax = np.abs(seen["b0/out"]).reshape(-1, channels).max(axis=0)
    w = _weights(m)
    wmax = np.max([in_ranges(r.kind, w[value_name(r.op.operands[r.index])], channels) for r in site.readers], axis=0)
    np.testing.assert_allclose(xmax, wmax, rtol=1e-4)


def test_smooth_quant_on_the_driver_path_lifts_int8_sqnr_with_outlier_channels() -> None:
    """SmoothQuant's case: a few layer-norm channels 30x wider than the rest. The driver
    runs the data once for per-channel ranges, smooths, calibrates the smoothed model."""
    m = ln_graph(5, 16, tokens=8, readers=("fc", "fc", "fc"), outliers=30.0, layers=2)
    x = ln_data(5, 16, tokens=8, n=48)
    off = _quantized_sqnr(m, x)
    on = _quantized_sqnr(ln_graph(5, 16, tokens=8, readers=("fc", "fc", "fc"), outliers=30.0, layers=2), x, smooth_quant=0.5)
    assert on > off + 3.0, (off, on)


# ---------------------------------------------------------------------------------------
# wiring
# ---------------------------------------------------------------------------------------


def test_options_are_off_by_default_and_opt_in() -> None:
    base = pipeline_spec("int8")
    assert "equalize" not in base and "smooth" not in base
    assert pipeline_spec("int8", cross_layer_equalization=False, smooth_quant=None) == base
    spec = pipeline_spec("int16x8", cross_layer_equalization=True, smooth_quant=0.75)
    assert spec.startswith("equalize-cross-layer,smooth-quant{alpha=0.75},annotate-calibration")
    with pytest.raises(TflquantError, match="int8 and int16x8"):
        pipeline_spec("dynamic", smooth_quant=0.5)
    with pytest.raises(TflquantError, match=r"alpha in \[0, 1\]"):
        pipeline_spec("int8", smooth_quant=2.0)


def test_cli_options_and_list_passes(capsys: pytest.CaptureFixture[str]) -> None:
    from tflquant.cli import main as cli_main
    from tflquant.opt import main as opt_main

    cli_main(["quantize", "m.tflite", "--print-pipeline", "--equalize", "--smooth-quant"])
    assert capsys.readouterr().out.startswith("equalize-cross-layer,smooth-quant{alpha=0.5},annotate-calibration")
    cli_main(["quantize", "m.tflite", "--print-pipeline", "--smooth-quant=0.3"])
    assert capsys.readouterr().out.startswith("smooth-quant{alpha=0.3},annotate-calibration")
    assert opt_main(["--list-passes"]) == 0
    out = capsys.readouterr().out
    assert "equalize-cross-layer{tolerance=0.0001 max-iterations=50}" in out and "smooth-quant{alpha=0.5 stats-file=none}" in out


def test_driver_reads_a_one_shot_dataset_twice_and_is_deterministic() -> None:
    """smooth-quant reads the calibration data twice (per-channel ranges, then calibration):
    a generator is read into a list first; the model is the same bytes as from a list."""
    from tflquant.api import quantize
    from tflquant.tflite.writer import write_flatbuffer

    data = write_flatbuffer(ln_graph(2, 8, readers=("fc", "bmm"), outliers=10.0))
    x = ln_data(2, 8, n=12)
    from_list = quantize(data, "int8", representative_dataset=[[s] for s in x], smooth_quant=0.5)
    from_generator = quantize(data, "int8", representative_dataset=([s] for s in x), smooth_quant=0.5)
    assert from_list.model == from_generator.model
    assert "smooth-quant{alpha=0.5}" in from_list.report.pipeline
    plain = quantize(data, "int8", representative_dataset=[[s] for s in x])
    assert plain.model != from_list.model and "smooth" not in plain.report.pipeline
    with pytest.raises(TflquantError, match="mixed-precision search"):
        quantize(data, "int8", representative_dataset=[[s] for s in x], smooth_quant=0.5, target_sqnr=30.0)


def test_smooth_quant_on_decoder_tiny_keeps_the_function_and_names_unique() -> None:
    """decoder_tiny's nine layer norms share one gamma constant: each norm gets its own
    rescaled copy (a distinct tensor name), the float outputs stay, the norms are marked."""
    from conftest import shared_model_dir

    from tflquant.dialects import tfl
    from tflquant.tflite.reader import load_model

    d = shared_model_dir("decoder_tiny")
    m = load_model(str(d / "float.tflite"))
    tokens = np.load(d / "eval.npz")
    x = tokens[[k for k in tokens.files if k != "labels"][0]][:4]
    before = _run(m, x)
    _smooth(m, x, 0.5)
    _assert_same_function(before, _run(m, x))
    assert len(_marked(m, "tflquant.smoothed")) == 9
    names = [value_name(o.results[0]) for o in m.walk() if isinstance(o, tfl.ConstOp)]
    assert len(names) == len(set(names))


def test_save_stats_keeps_the_smoothing_ranges_for_replay(tmp_path) -> None:  # noqa: ANN001
    """--save-stats with smooth_quant also writes the per-channel ranges it used
    (STATS.smooth.json); `smooth-quant{stats-file=...}` on the float IR then smooths exactly
    as the driver did."""
    from tflquant.api import quantize, smooth_ranges_path
    from tflquant.calibration.stats import read_stats
    from tflquant.tflite.writer import write_flatbuffer

    x = ln_data(4, 8, n=12)
    stats = tmp_path / "stats.json"
    quantize(write_flatbuffer(ln_graph(4, 8, outliers=10.0)), "int8", representative_dataset=[[s] for s in x], smooth_quant=0.5, save_stats=stats)
    ranges = read_stats(smooth_ranges_path(stats))
    assert sorted(ranges) == ["b0/out"] and ranges["b0/out"].axis == 2 and len(ranges["b0/out"].mins) == 8
    replayed, direct = ln_graph(4, 8, outliers=10.0), ln_graph(4, 8, outliers=10.0)
    run_pipeline(make_context(), replayed, f'smooth-quant{{stats-file="{smooth_ranges_path(stats)}"}}')
    _smooth(direct, x)
    assert print_module(replayed) == print_module(direct)
