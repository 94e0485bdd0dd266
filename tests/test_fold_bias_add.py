"""Property tests of fold-bias-add: on random tfl graphs the pass keeps the module valid and
its values (up to float rounding of the bias sum), removes one ADD/SUB per fold, and is
idempotent and deterministic; `per_channel_row` finds exactly the constants that depend
on the layer's output channel only."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tflquant import testing as tt
from tflquant.dialects import tfl
from tflquant.ir import make_context, parse_module, print_module
from tflquant.passes.fold_bias_add import per_channel_row
from tflquant.pipeline import run_pipeline
from tflquant.reference import Interpreter

OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "ADD", "SUB", "RESHAPE", "RELU")
ARITH = (tfl.BUILTIN_CLASSES["ADD"], tfl.BUILTIN_CLASSES["SUB"])


def fold(module):  # noqa: ANN001, ANN201
    m = module.clone()
    run_pipeline(make_context(), m, "fold-bias-add")
    return m


def _count(module, classes) -> int:  # noqa: ANN001
    return sum(isinstance(o, classes) for o in module.walk())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tt.graphs_with_data(ops=OPS, max_ops=8))
def test_fold_bias_add_keeps_values_and_is_idempotent(g) -> None:  # noqa: ANN001
    module, data = g
    folded = fold(module)
    folded.verify()
    for a, b in zip(Interpreter(module).run(data), Interpreter(folded).run(data)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max(initial=0.0))))
    layers = (tfl.BUILTIN_CLASSES["FULLY_CONNECTED"], tfl.BUILTIN_CLASSES["CONV_2D"], tfl.BUILTIN_CLASSES["DEPTHWISE_CONV_2D"])
    assert _count(folded, layers) == _count(module, layers)
    assert _count(folded, ARITH) <= _count(module, ARITH)
    text = print_module(folded)
    assert print_module(fold(folded)) == text  # nothing left to fold
    assert print_module(fold(parse_module(print_module(module)))) == text  # deterministic


@st.composite
def _bias_chains(draw: st.DrawFn):  # noqa: ANN202
    """FULLY_CONNECTED (keep_num_dims, on [1, S, K]) with or without a bias and an
    activation, zero to two RESHAPEs that split its N channels, then ADD or SUB of a
    constant that is per channel or not, with or without an activation: foldable or not."""
    s, k = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    heads, dim = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    n = heads * dim
    layer_act = draw(st.sampled_from(["NONE", "NONE", "RELU"]))
    add_act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    with_bias, reshapes = draw(st.booleans()), draw(st.integers(0, 2))
    op = draw(st.sampled_from(["ADD", "ADD", "SUB"]))
    cshape = draw(st.sampled_from([[n], [heads, dim], [dim], [s, 1, 1], [1, 1, 1], [s, heads, dim]]))
    swap = op == "ADD" and draw(st.booleans())

    def build(b, args):  # noqa: ANN001, ANN202
        inputs = [args[0], b.weights([n, k])]
        if with_bias:
            inputs.append(b.weights([n], 0.3))
        else:
            nv = tfl.NoValueOp()
            b.ops.append(nv)
            inputs.append(nv.results[0])
        y = b.add("FULLY_CONNECTED", inputs, [1, s, n], {"keep_num_dims": True, "fused_activation_function": layer_act})
        shape = [1, s, n]
        for i in range(reshapes):
            shape = [1, s, heads, dim] if i == 0 else [1, s * heads, dim] if s == 1 else [1, s, heads, dim]
            y = b.add("RESHAPE", [y, b.const(np.array(shape, np.int32))], shape)
        c_full = cshape if len(cshape) <= len(shape) else cshape[-len(shape):]
        try:
            fits = np.broadcast_shapes(tuple(c_full), tuple(shape)) == tuple(shape)
        except ValueError:
            fits = False
        if not fits:  # the constant must not broadcast the activation
            c_full = [shape[-1]]
        c = b.const((b.rng.standard_normal(c_full) * 0.5).astype(np.float32))
        return [b.add(op, [c, y] if swap else [y, c], shape, {"fused_activation_function": add_act})]

    module = tt.make_module([("x", [1, s, k])], build)
    module.verify()
    return module, tt.representative_data(module, 4, seed=draw(st.integers(0, 2**16)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bias_chains())
def test_fold_bias_add_on_tensordot_chains(g) -> None:  # noqa: ANN001
    module, data = g
    folded = fold(module)
    folded.verify()
    (a,), (b,) = Interpreter(module).run(data), Interpreter(folded).run(data)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max(initial=0.0))))
    layer = next(o for o in module.walk() if isinstance(o, tfl.BUILTIN_CLASSES["FULLY_CONNECTED"]))
    arith = next(o for o in module.walk() if isinstance(o, ARITH))
    c = next(v.owner for v in arith.inputs if isinstance(v.owner, tfl.ConstOp)).numpy()
    n = int(layer.results[0].type.get_shape()[-1])
    z_shape = [int(d) for d in arith.results[0].type.get_shape()]
    per_channel = bool(np.all(np.broadcast_to(c, z_shape).reshape(-1, n) == np.broadcast_to(c, z_shape).reshape(-1, n)[:1]))
    foldable = (
        per_channel
        and str(layer.option("fused_activation_function")) == "NONE"
        and not (isinstance(arith, ARITH[1]) and arith.inputs[0].owner is not None and isinstance(arith.inputs[0].owner, tfl.ConstOp))
    )
    assert (_count(folded, ARITH) == 0) == foldable, print_module(module)
    if foldable:  # the model's output keeps its tensor name
        ret = next(o for o in folded.walk() if o.name == "func.return")
        assert tfl.tensor_names(ret.operands[0].owner) == tfl.tensor_names(arith)


@st.composite
def _layer_and_constant(draw: st.DrawFn) -> tuple[np.ndarray, list[int], int]:
    """A layer with N output channels whose output is reshaped so that N splits into
    trailing dims, and a constant broadcastable to the reshaped shape."""
    factors = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    shape = lead + factors
    n = int(np.prod(factors))
    rank = draw(st.integers(1, len(shape)))
    cshape = [draw(st.sampled_from([1, d])) for d in shape[len(shape) - rank :]]
    c = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(cshape).astype(np.float32)
    return c, shape, n


@settings(max_examples=300, deadline=None)
@given(_layer_and_constant())
def test_per_channel_row_is_the_constant_by_channel(case) -> None:  # noqa: ANN001
    c, shape, n = case
    full = np.broadcast_to(c, shape).reshape(-1, n)  # row f // n, channel f % n
    row = per_channel_row(c, shape, n)
    per_channel = bool(np.all(full == full[:1]))
    if row is None:
        assert not per_channel or int(np.prod(shape)) % n or n == 0
    else:
        assert per_channel
        np.testing.assert_array_equal(row, full[0])


def test_per_channel_row_rejects_dynamic_channel_dims_and_misaligned_splits() -> None:
    c = np.arange(6, dtype=np.float32)
    assert per_channel_row(c, [-1, 2, 6], 6) is not None  # dynamic batch: fine
    assert per_channel_row(c.reshape(2, 3), [1, -1, 3], 6) is None  # channel dims must be static
    assert per_channel_row(c, [1, 4, 6], 4) is None  # 6 does not split into channels of 4
