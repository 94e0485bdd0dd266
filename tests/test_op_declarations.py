"""Every fact about an op lives on its declaration (dialects/tfl.py BUILTIN_OPS, as xDSL
traits); these tests fail when a declared op lacks what the rest of tflquant needs: a float
kernel, a version rule, an entry in the random-graph strategies (or a reason it has none),
an integer kernel when it is quantizable (or a reason it has none), and traits whose
operand indices and names fit the op. REDUCE_PROD (int8 and 16x8) is the worked example of
README.md's "Adding an op": one declaration, an integer kernel, and these checks in LiteRT.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import IntegerType
from xdsl.traits import OpTrait

from tflquant import testing as tt
from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.reference import float_kernels as fk
from tflquant.reference import integer_kernels as ik
from tflquant.tflite import versions

DECLARED = list(tfl.BUILTIN_CLASSES.items())


def test_declarations_are_xdsl_traits() -> None:
    for t in (tfl.Quantizable, tfl.SameScale, tfl.FixedResultScale, tfl.AffineOp, tfl.DynamicRangeWeights,
              tfl.KernelParams, tfl.UnbatchedResult, tfl.Stateful, tfl.ShapeRule, tfl.VersionByType,
              tfl.NotInRandomGraphs, tfl.OptionalInputs):  # fmt: skip
        assert issubclass(t, OpTrait)
    conv = tfl.Conv2DOp
    assert conv.get_trait(tfl.AffineOp) == tfl.AffineOp(input=0, weight=1, channel_axis=0, bias=2, calibrated_bias=True, needs_bias=True)
    assert conv.has_trait(tfl.Quantizable(int8=True, int16=True))
    assert tfl.LogisticOp.get_trait(tfl.FixedResultScale) == tfl.FixedResultScale(int8=(1 / 256, -128), int16=(1 / 32768, 0))
    assert tfl.ConcatenationOp.get_trait(tfl.SameScale) == tfl.SameScale((tfl.ALL,))
    assert not tfl.BUILTIN_CLASSES["SQUARE"].has_trait(tfl.Quantizable)  # stays float
    assert [d.builtin for d in tfl.BUILTIN_OPS] == list(tfl.BUILTIN_CLASSES)  # one declaration per op


@pytest.mark.parametrize("builtin,cls", DECLARED, ids=[b for b, _ in DECLARED])
def test_declared_op_has_kernels_version_rule_and_random_graphs(builtin: str, cls: type[tfl.TflOp]) -> None:
    assert builtin in fk.KERNELS, f"{builtin}: no float kernel in reference/float_kernels.py"
    by_type, rule = cls.has_trait(tfl.VersionByType), builtin in versions.RULES
    assert by_type != rule, f"{builtin}: needs exactly one version rule (tfl.VersionByType or versions.RULES), has {int(by_type) + int(rule)}"
    excluded = cls.get_trait(tfl.NotInRandomGraphs)
    if excluded is None:
        assert builtin in tt.DRAWABLE_OPS, f"{builtin}: not drawn by tflquant.testing's random graphs and no NotInRandomGraphs reason"
    else:
        assert builtin not in tt.DRAWABLE_OPS and len(excluded.reason) > 20, builtin
    q = cls.get_trait(tfl.Quantizable)
    if q is not None:
        assert q.int8 or q.int16, builtin
        if q.no_integer_kernel:
            assert builtin not in ik.KERNELS, f"{builtin}: has an integer kernel, drop no_integer_kernel"
        else:
            assert builtin in ik.KERNELS, f"{builtin}: quantizable but no integer kernel in reference/integer_kernels.py"


@pytest.mark.parametrize("builtin,cls", DECLARED, ids=[b for b, _ in DECLARED])
def test_traits_fit_the_operands(builtin: str, cls: type[tfl.TflOp]) -> None:
    names = cls.OPERANDS
    variadic = any(n.startswith("*") for n in names)
    n = len(names)
    if (p := cls.get_trait(tfl.KernelParams)) is not None:
        assert set(p.names) | set(p.integer) <= set(names), builtin
    if (s := cls.get_trait(tfl.SameScale)) is not None:
        assert s.operands == (tfl.ALL,) or (not variadic and all(0 <= i < n for i in s.operands)), builtin
    if (a := cls.get_trait(tfl.AffineOp)) is not None:
        assert len({a.input, a.weight} | ({a.bias} if a.bias is not None else set())) == (3 if a.bias is not None else 2)
        assert all(0 <= i < n for i in (a.input, a.weight, *(() if a.bias is None else (a.bias,)))), builtin
        assert not a.calibrated_bias or a.bias is not None, builtin
    if (d := cls.get_trait(tfl.DynamicRangeWeights)) is not None:
        assert d.slots(cls) and all(0 <= i < n for i, _ in d.slots(cls)), builtin
    if (r := cls.get_trait(tfl.ShapeRule)) is not None:
        assert r.kind in (tfl.ELEMENTWISE, tfl.BROADCAST, tfl.VALUE_DEPENDENT) and (variadic or r.operand < n), builtin
    if (f := cls.get_trait(tfl.FixedResultScale)) is not None:
        q = cls.get_trait(tfl.Quantizable)
        assert q is not None and (f.int8 is not None) == q.int8 and (f.int16 is None or q.int16), builtin
    if (o := cls.get_trait(tfl.OptionalInputs)) is not None:
        assert not variadic and 0 < o.trailing < n, builtin
    if (st_ := cls.get_trait(tfl.Stateful)) is not None:
        assert set(st_.side_values) <= set(names), builtin


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.data())
def test_drawable_ops_are_drawn(data: st.DataObject) -> None:
    """Each op the strategies list really appears in the graphs drawn with it (and verifies)."""
    builtin = data.draw(st.sampled_from(sorted(tt.DRAWABLE_OPS)))
    m = data.draw(tt.tfl_graphs(ops=(builtin,), min_ops=1, max_ops=3))
    m.verify()
    kinds = {getattr(o, "BUILTIN", None) for o in m.walk()}
    x = m.body.block.first_op.body.block.args[0]  # type: ignore[union-attr]
    assert builtin in kinds or not tt._applicable(builtin, tt.shape_of(x)), builtin


# ---------------------------------------------------------------------------------------
# The worked example: REDUCE_PROD, int8 and 16x8
# ---------------------------------------------------------------------------------------


def _reduce_prod_model(shape, axes, keep, in_t, out_t):  # noqa: ANN001, ANN202
    from tests.models import GraphBuilder

    out_shape = [1 if i in axes else d for i, d in enumerate(shape)] if keep else [d for i, d in enumerate(shape) if i not in axes]
    g = GraphBuilder("main", {"x": (shape, in_t)})
    y = g.op("REDUCE_PROD", [g.x, g.const(np.array(axes, np.int32))], out_shape, out_dtype=out_t, name="out", keep_dims=keep)
    return g.tflite([y])


@pytest.mark.parametrize("bits", [8, 16])
def test_reduce_prod_integer_kernel_equals_litert(bits: int) -> None:
    """IntegerInterpreter's REDUCE_PROD is LiteRT's builtin kernel bit for bit (random shapes,
    axes, keep_dims, scales and zero points; a reduction over size-1 axes only included)."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter
    from tflquant.scoring import litert_run
    from tflquant.tflite.reader import read_flatbuffer

    rng = np.random.default_rng(bits)
    for _ in range(12):
        shape = (1, *(int(d) for d in rng.integers(1, 5, 3)))
        axes = sorted(int(a) for a in rng.choice([1, 2, 3], int(rng.integers(1, 4)), replace=False))
        zi, zo = (int(rng.integers(-20, 20)), int(rng.integers(-20, 20))) if bits == 8 else (0, 0)
        in_t = UniformQuantizedType.make(IntegerType(bits), float(np.float32(rng.uniform(0.005, 0.05))), zi)
        out_t = UniformQuantizedType.make(IntegerType(bits), float(np.float32(rng.uniform(0.001, 0.1))), zo)
        model = _reduce_prod_model(shape, axes, bool(rng.integers(0, 2)), in_t, out_t)
        lim = 128 if bits == 8 else 3000
        x = rng.integers(-lim, lim, (1, *shape)).astype(np.int8 if bits == 8 else np.int16)
        want = litert_run(model, [x], dequantize=False, delegates=False)[0]
        interp = IntegerInterpreter(read_flatbuffer(model), strict=True)
        got = interp.run([x])[0]
        assert not interp.float_ops
        assert np.array_equal(np.asarray(got).reshape(want.shape), want), (shape, axes)


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_reduce_prod_quantizes_and_runs_in_litert(mode: str) -> None:
    """A float REDUCE_PROD model quantizes to an integer REDUCE_PROD (version 2) that LiteRT
    runs like IntegerInterpreter, close to the float model."""
    import tflquant
    from tflquant.reference.integer_interpreter import IntegerInterpreter
    from tflquant.scoring import litert_run
    from tflquant.tflite.reader import read_flatbuffer

    model = _reduce_prod_model((1, 4, 3, 6), [2], False, np.float32, np.float32)
    rng = np.random.default_rng(0)
    calib = rng.uniform(0.5, 1.5, (64, 1, 4, 3, 6)).astype(np.float32)
    result = tflquant.quantize(model, mode=mode, io_type="int8" if mode == "int8" else "int16",
                               representative_dataset={"x": calib[:, 0]})  # fmt: skip
    module = read_flatbuffer(result.model)
    prod = next(o for o in module.walk() if isinstance(o, tfl.TflOp) and o.BUILTIN == "REDUCE_PROD")
    assert isinstance(prod.inputs[0].type.element_type, UniformQuantizedType)  # type: ignore[attr-defined]
    assert versions.builtin_version(prod) == 2
    x = calib[:8]
    in_t = module.ops.first.body.block.args[0].type.element_type  # type: ignore[attr-defined]
    xq = np.clip(np.round(x / in_t.scale) + in_t.zero_point, in_t.qmin, in_t.qmax).astype(in_t.numpy_dtype())
    want = litert_run(result.model, [xq], dequantize=False, delegates=False)[0]
    got = IntegerInterpreter(module, strict=True).run([xq])[0]
    assert np.array_equal(np.asarray(got).reshape(want.shape), want)
    out_t = prod.outputs[0].type.element_type  # type: ignore[attr-defined]
    real = (want.astype(np.float64) - out_t.zero_point) * out_t.scale
    ref = np.prod(x.astype(np.float64), axis=3)
    sqnr = 10 * np.log10(np.sum(ref**2) / np.sum((real.reshape(ref.shape) - ref) ** 2))
    assert sqnr > (25 if mode == "int8" else 40), sqnr
