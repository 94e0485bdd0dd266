"""Every fact about an op lives on its declaration (dialects/tfl.py BUILTIN_OPS, as xDSL
traits); these tests fail when a declared op lacks what the rest of tflquant needs: a float
kernel, a version rule, an entry in the random-graph strategies (or a reason it has none),
an integer kernel when it is quantizable (or a reason it has none), and traits whose
operand indices and names fit the op.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.traits import OpTrait

from tflquant import testing as tt
from tflquant.dialects import tfl
from tflquant.reference import float_kernels as fk
from tflquant.reference import integer_kernels as ik
from tflquant.tflite import versions

DECLARED = list(tfl.BUILTIN_CLASSES.items())


def test_declarations_are_xdsl_traits() -> None:
    for t in (tfl.Quantizable, tfl.SameScale, tfl.FixedResultScale, tfl.AffineOp, tfl.DynamicRangeWeights,
              tfl.KernelParams, tfl.UnbatchedResult, tfl.Stateful, tfl.ShapeRule, tfl.VersionByType,
              tfl.NotInRandomGraphs):  # fmt: skip
        assert issubclass(t, OpTrait)
    conv = tfl.Conv2DOp
    assert conv.get_trait(tfl.AffineOp) == tfl.AffineOp(input=0, weight=1, channel_axis=0, bias=2, calibrated_bias=True)
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
