"""The fast constructors that skip xDSL's generic checks (quant types, dense payloads, tensor
names, builtin op verification) build what the checked constructors build and raise the
same errors for what those refuse."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    IntAttr,
    IntegerAttr,
    IntegerType,
    Signedness,
    StringAttr,
    TensorType,
    i32,
    i64,
)
from xdsl.dialects import test as xdsl_test
from xdsl.ir import Block, Region

from tflquant.dialects import tfl
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType, _dense, storage_range
from tflquant.ir import dense_from_numpy
from tflquant.dialects._unchecked import string_array
from tflquant.errors import TflquantError


def _checked_type(storage, scales, zero_points=0, axis=-1, narrow=False, expressed=None):
    """UniformQuantizedType.make through xDSL's checked constructor."""
    s = np.asarray(scales, np.float64).astype("<f4").reshape(-1)
    z = np.asarray(zero_points).astype("<i8").reshape(-1)
    if z.size == 1 and s.size != 1:
        z = np.repeat(z, s.size)
    lo, hi = storage_range(storage)
    return UniformQuantizedType(storage, expressed or Float32Type(), IntAttr(axis), _dense(s, Float32Type()), _dense(z, i64), IntAttr(lo + narrow), IntAttr(hi))


def _outcome(build, *args):
    try:
        t = build(*args)
    except Exception as e:  # noqa: BLE001 - the exception itself is what is compared
        return (type(e).__name__, str(e))
    return ("ok", t, hash(t), str(t))


TYPE_CASES = [
    (IntegerType(8), 0.5),
    (IntegerType(8), [0.5, 0.25], 0, 0, True),
    (IntegerType(4), np.ones(7), 0, 1, True),
    (IntegerType(8, Signedness.UNSIGNED), 0.1, 128),
    (IntegerType(16), 0.01, 0, -1, False, Float16Type()),
    (IntegerType(8, Signedness.SIGNED), 1.0),
    (IntegerType(8), [np.inf]),  # invalid from here on
    (IntegerType(8), [0.0]),
    (IntegerType(8), [np.nan, 1.0], 0, 0),
    (IntegerType(8), 1.0, 300),
    (IntegerType(8), [1.0, 2.0], 0),
    (IntegerType(8), [1.0, 2.0], [0, 1, 2], 0),
    (IntegerType(3), 1.0),
    (IntegerType(8), [], 0, 0),
]


@pytest.mark.parametrize("case", TYPE_CASES, ids=range(len(TYPE_CASES)))
def test_quant_type_make_equals_checked_constructor(case):
    fast, checked = _outcome(UniformQuantizedType.make, *case), _outcome(_checked_type, *case)
    assert fast == checked


def _checked_blockwise(storage, block_size, scales):
    """BlockwiseQuantizedType.make through xDSL's checked constructor."""
    return BlockwiseQuantizedType(storage, Float32Type(), IntAttr(block_size), dense_from_numpy(np.asarray(scales, np.float16)))


_U16 = np.arange(1 << 16, dtype=np.uint16)
BLOCKWISE_CASES = [
    (IntegerType(4), 32, np.array([[0.5, 0.25], [1e-3, 6e4]], np.float32)),
    (IntegerType(8), 128, np.ones((3, 1, 2), np.float16)),
    (IntegerType(4), 32, np.float16(0.5)),  # rank 0
    (IntegerType(4), 32, np.ones((0, 2), np.float16)),  # no blocks
    (IntegerType(4), 32, np.array([6e-8, 1.0], np.float32)),  # an fp16 subnormal: positive
    (IntegerType(4), 32, _U16.view(np.float16)),  # every fp16 value: NaN, infinities, zeros, negatives (refused)
    (IntegerType(4), 32, _U16[1:0x7C00].view(np.float16)),  # every positive finite fp16 value
    (IntegerType(4), 32, np.array([1.0, -0.0], np.float16)),
    (IntegerType(4), 32, np.array([0.0, 1.0], np.float32)),
    (IntegerType(4), 32, np.array([1.0, np.inf], np.float32)),
    (IntegerType(4), 32, np.array([np.nan, 1.0], np.float32)),
    (IntegerType(2), 32, np.ones(2)),
    (IntegerType(4, Signedness.UNSIGNED), 32, np.ones(2)),
    (IntegerType(4), 0, np.ones(2)),
    (IntegerType(4), np.int64(32), np.ones(2)),  # not a Python int: the checked path
]


@pytest.mark.parametrize("case", BLOCKWISE_CASES, ids=range(len(BLOCKWISE_CASES)))
def test_blockwise_make_equals_checked_constructor(case):
    fast, checked = _outcome(BlockwiseQuantizedType.make, *case), _outcome(_checked_blockwise, *case)
    assert fast == checked
    assert sum(_outcome(_checked_blockwise, *c)[0] != "ok" for c in BLOCKWISE_CASES) >= 7  # the error path is compared too


def test_some_quant_types_are_refused():
    """The table above holds refused inputs: the comparison covers the error path too."""
    refused = [c for c in TYPE_CASES if _outcome(_checked_type, *c)[0] != "ok"]
    assert len(refused) >= 5


@pytest.mark.parametrize("arr", [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0, 4), np.int8), np.ones(5, np.float16), np.array([1, -2], np.int64), np.float32(3.0)])
def test_dense_from_numpy_equals_checked_attribute(arr):
    a = np.asarray(arr)
    elem = {np.float32: Float32Type(), np.float16: Float16Type(), np.int8: IntegerType(8), np.int64: IntegerType(64)}[a.dtype.type]
    from xdsl.dialects.builtin import BytesAttr

    checked = DenseIntOrFPElementsAttr(TensorType(elem, a.shape), BytesAttr(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()))
    fast = dense_from_numpy(a)
    assert fast == checked and hash(fast) == hash(checked)


def test_bytes_attr_equals_checked_attribute():
    from xdsl.dialects.builtin import BytesAttr

    from tflquant.dialects._unchecked import bytes_attr

    for data in (b"", b"\x00\x01abc", memoryview(b"payload bytes").toreadonly()):
        fast, checked = bytes_attr(data), BytesAttr(data)
        assert fast == checked and hash(fast) == hash(checked) and fast.data is checked.data


def test_string_array_equals_checked_array():
    names = ["a", "b;c", "ünïcode", ""]
    fast, checked = string_array(names), ArrayAttr([StringAttr(n) for n in names])
    assert fast == checked and hash(fast) == hash(checked)


_F = TensorType(Float32Type(), [2])


def _full_verify(op):
    type(op).get_irdl_definition().verify(op)
    tfl.TflOp.verify_(op)


def _verify_outcome(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "ok"


def _ops():
    src = xdsl_test.TestOp(result_types=[_F] * 4)
    x, y, z = src.results[0], src.results[1], src.results[2]
    ok = tfl.AddOp([x, y], [_F])
    bogus = tfl.AddOp([x, y], [_F])
    bogus.properties["bogus"] = StringAttr("x")
    bad_enum = tfl.AddOp([x, y], [_F])
    bad_enum.properties["fused_activation_function"] = StringAttr("NOPE")
    bad_names = tfl.AddOp([x, y], [_F])
    bad_names.attributes["names"] = ArrayAttr([StringAttr("a"), StringAttr("b")])
    three = tfl.AddOp([x, y, z], [_F])
    region = tfl.AddOp.create(operands=[x, y], result_types=[_F], regions=[Region(Block())])
    successor = tfl.AddOp.create(operands=[x, y], result_types=[_F], successors=[Block()])
    bad_option = tfl.ReshapeOp([x, y], [_F])
    bad_option.properties["new_shape"] = IntegerAttr(3, i32)
    return [ok, bogus, bad_enum, bad_names, three, region, successor, bad_option]


def test_builtin_op_verify_equals_full_verification():
    outcomes = []
    for op in _ops():
        fast, full = _verify_outcome(op.verify_), _verify_outcome(lambda op=op: _full_verify(op))
        assert fast == full, (op.name, fast, full)
        outcomes.append(fast)
    assert outcomes[0] == "ok" and sum(o != "ok" for o in outcomes) >= 5, outcomes


def _full_const_verify(op):
    """What xDSL's verification of a tfl.const runs: its definition, then the payload check."""
    type(op).get_irdl_definition().verify(op)
    tfl._check_const_payload(op)


def _consts():
    f = dense_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    q = dense_from_numpy(np.arange(6, dtype=np.int8).reshape(2, 3))
    qt = TensorType(UniformQuantizedType.make(IntegerType(8), [0.5, 0.25], axis=0), [2, 3])
    src = xdsl_test.TestOp(result_types=[_F])
    ok = tfl.ConstOp(f)
    quantized = tfl.ConstOp(q, qt)
    wrong_elem = tfl.ConstOp(f, qt)
    wrong_shape = tfl.ConstOp(f, TensorType(Float32Type(), [3, 2]))
    extra_prop = tfl.ConstOp(f)
    extra_prop.properties["bogus"] = StringAttr("x")
    bad_value = tfl.ConstOp.create(properties={"value": StringAttr("x")}, result_types=[f.type])
    no_value = tfl.ConstOp.create(result_types=[f.type])
    operand = tfl.ConstOp.create(operands=[src.results[0]], properties={"value": f}, result_types=[f.type])
    two_results = tfl.ConstOp.create(properties={"value": f}, result_types=[f.type, f.type])
    not_tensor = tfl.ConstOp.create(properties={"value": f}, result_types=[Float32Type()])
    region = tfl.ConstOp.create(properties={"value": f}, result_types=[f.type], regions=[Region(Block())])
    successor = tfl.ConstOp.create(properties={"value": f}, result_types=[f.type], successors=[Block()])
    short = tfl.ConstOp.create(properties={"value": DenseIntOrFPElementsAttr(f.type, f.data.__class__(bytes(8)))}, result_types=[f.type])
    return [ok, quantized, wrong_elem, wrong_shape, extra_prop, bad_value, no_value, operand, two_results, not_tensor, region, successor, short]


def test_const_verify_equals_full_verification():
    outcomes = []
    for op in _consts():
        fast, full = _verify_outcome(op.verify_), _verify_outcome(lambda op=op: _full_const_verify(op))
        assert fast == full, (fast, full)
        outcomes.append(fast)
    assert outcomes[:2] == ["ok", "ok"] and all(o != "ok" for o in outcomes[2:]), outcomes


_MODULE = """builtin.module {
  func.func @main(%0: tensor<2xf32>) -> tensor<2xf32> {
    %1 = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
    %2 = "tfl.add"(%0, %1) <{fused_activation_function = "NONE"}> : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
    func.return %2 : tensor<2xf32>
  }
  func.func @other(%0: tensor<2xf32>) -> tensor<2xf32> {
    %1 = "tfl.neg"(%0) : (tensor<2xf32>) -> tensor<2xf32>
    func.return %1 : tensor<2xf32>
  }
}
"""


def _modules():
    """A valid module, then one broken each way xDSL's module verification finds."""
    from xdsl.dialects.builtin import FunctionType
    from xdsl.dialects.func import FuncOp

    from tflquant.ir import parse_module

    def fresh():
        m = parse_module(_MODULE)
        main, other = list(m.ops)
        return m, main, other, list(main.body.block.ops), list(other.body.block.ops)

    out = [fresh()[0]]
    m, main, other, mo, oo = fresh()
    oo[0].operands = [mo[0].results[0]]  # uses a value of another function (IsolatedFromAbove)
    out.append(m)
    m, main, other, mo, oo = fresh()
    mo[2].detach()  # no terminator
    out.append(m)
    m, main, other, mo, oo = fresh()
    main.properties["function_type"] = FunctionType.from_lists([_F], [TensorType(Float32Type(), [3])])  # return types differ
    out.append(m)
    m, main, other, mo, oo = fresh()
    main.properties["function_type"] = FunctionType.from_lists([TensorType(Float32Type(), [3])], [_F])  # entry block args differ
    out.append(m)
    m, main, other, mo, oo = fresh()
    mo[0].properties["bogus"] = StringAttr("x")  # a constant with an undeclared property
    out.append(m)
    m, main, other, mo, oo = fresh()
    mo[1].properties["fused_activation_function"] = StringAttr("NOPE")  # a bad option
    out.append(m)
    m, main, other, mo, oo = fresh()
    other.properties["sym_name"] = StringAttr("main")  # two symbols @main
    out.append(m)
    m, main, other, mo, oo = fresh()
    mo[1].add_region(Region(Block()))  # a region on an op that declares none
    out.append(m)
    m, main, other, mo, oo = fresh()
    for op in reversed(oo):
        op.detach()  # an empty body
    out.append(m)
    m, main, other, mo, oo = fresh()
    mo[2].detach()
    mo[1].detach()
    other.body.block.insert_op_before(mo[1], oo[1])  # uses %0 of main from @other
    main.body.block.add_op(mo[2])
    out.append(m)
    m, main, other, mo, oo = fresh()
    m.body.block.add_op(FuncOp("external", ([_F], [_F])))  # a function whose block is empty
    out.append(m)
    return out


def test_verify_module_equals_module_verify():
    from tflquant.dialects._unchecked import _verified, verify_module

    assert _verified(_modules()[0])  # the valid module takes the one-pass checks
    outcomes = []
    for m in _modules():
        fast, full = _verify_outcome(lambda m=m: verify_module(m)), _verify_outcome(m.verify)
        assert fast == full, (fast, full)
        outcomes.append(fast)
    assert outcomes[0] == "ok" and all(o != "ok" for o in outcomes[1:]), outcomes


def _op_state(op):
    """What an op holds, by identity where xDSL keeps objects (operands, uses) and by value
    otherwise (types, properties, attributes)."""
    return (
        type(op), tuple(map(id, op.operands)), [(u.operation is op, u.index) for v in op.operands for u in v.uses if u.operation is op],
        [(r.type, r.index, r.op is op, r.name_hint, r.first_use) for r in op.results],
        op.properties, op.attributes, op.location, tuple(op.successors), op._successor_uses, tuple(op.regions),
        op.parent, op.next_op, op.prev_op, sorted(vars(op)),
    )


def test_new_op_equals_create():
    """The reader's op constructor (new_op) builds what Operation.create builds, for every
    builtin op class and for constants; a class that fills in defaults takes create."""
    from tflquant.dialects._unchecked import _plain_class, new_op

    x = xdsl_test.TestOp(result_types=[TensorType(Float32Type(), [2, 3])]).results[0]
    y = xdsl_test.TestOp(result_types=[TensorType(Float32Type(), [2, 3])]).results[0]
    t = TensorType(Float32Type(), [2, 3])
    for cls in sorted(set(tfl.BY_CODE.values()), key=lambda c: c.name):
        assert _plain_class(cls), cls.name
        for operands in ((), (x,), (x, y, x)):
            props = {"fused_activation_function": StringAttr("RELU")} if "fused_activation_function" in cls.FIELDS else {}
            attrs = {"names": string_array(["out"])}
            a = new_op(cls, operands, [t, t], dict(props), dict(attrs))
            b = cls.create(operands=operands, result_types=[t, t], properties=props, attributes=attrs)
            sa, sb = _op_state(a), _op_state(b)
            assert sa[0] is sb[0] and sa[2:] == sb[2:] and sa[1] == sb[1], cls.name
            a.erase()
            b.erase()
    c = dense_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), Float32Type())
    a = new_op(tfl.ConstOp, (), (t,), {"value": c}, {"names": string_array(["w"])})
    b = tfl.ConstOp.create(properties={"value": c}, result_types=[t], attributes={"names": string_array(["w"])})
    assert _op_state(a)[2:] == _op_state(b)[2:]
    a.verify()
    assert not _plain_class(xdsl_test.TestOp) or new_op(xdsl_test.TestOp, (x,), (), {}, {}).operands[0] is x


def test_op_constructors_equal_create():
    """TflOp(...) and ConstOp(...) (built like new_op when the inputs are values) hold what
    Operation.create builds; an Operation given as an input takes xDSL's argument building."""
    x = xdsl_test.TestOp(result_types=[TensorType(Float32Type(), [2, 3])]).results[0]
    y = xdsl_test.TestOp(result_types=[TensorType(Float32Type(), [2, 3])]).results[0]
    t = TensorType(Float32Type(), [2, 3])
    for cls in sorted(set(tfl.BY_CODE.values()), key=lambda c: c.name):
        for operands in ((), (x,), (x, y, x)):
            opts = {"fused_activation_function": "RELU"} if "fused_activation_function" in cls.FIELDS else {}
            a = cls(list(operands), [t, t], options=opts, names=["out", "o2"])
            props = {"fused_activation_function": StringAttr("RELU")} if opts else {}
            b = cls.create(operands=operands, result_types=[t, t], properties=props, attributes={"names": ArrayAttr([StringAttr("out"), StringAttr("o2")])})
            sa, sb = _op_state(a), _op_state(b)
            assert sa[0] is sb[0] and sa[2:] == sb[2:] and sa[1] == sb[1], cls.name
            a.erase()
            b.erase()
    c = dense_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), Float32Type())
    for name in ("w", None):
        a = tfl.ConstOp(c, t, name=name)
        b = tfl.ConstOp.create(properties={"value": c}, result_types=[t], attributes={"names": ArrayAttr([StringAttr(name)])} if name else {})
        assert _op_state(a)[2:] == _op_state(b)[2:]
        a.verify()
    src = xdsl_test.TestOp(result_types=[t])
    d = tfl.DequantizeOp([src], [t])  # an Operation: its one result
    assert d.inputs[0] is src.results[0] and list(src.results[0].uses)[0].operation is d


def test_dtype_maps_by_object_and_class_agree_with_names():
    """ir.element_type_of_dtype / numpy_dtype_of_element's lookups by dtype object and element
    class give what the lookups by dtype name and by element (hash) give."""
    from xdsl.dialects.builtin import BFloat16Type, Signedness

    from tflquant import ir

    for name, elem in ir._DTYPE_TO_ELEMENT.items():
        for order in "<>":
            d = np.dtype(name).newbyteorder(order)
            assert ir.element_type_of_dtype(d) == elem
        assert ir.numpy_dtype_of_element(elem) == np.dtype(name).newbyteorder("<")
    assert ir.numpy_dtype_of_element(BFloat16Type()) == np.dtype("<u2")
    for bad in (IntegerType(8, Signedness.SIGNED), IntegerType(4)):
        with pytest.raises(TflquantError):
            ir.numpy_dtype_of_element(bad)


def test_with_element_equals_checked_tensor_type():
    from xdsl.dialects.builtin import DYNAMIC_INDEX, Float16Type

    from tflquant.dialects.quant import with_element

    for shape in ([2, 3], [], [DYNAMIC_INDEX, 4], [0]):
        t = TensorType(Float32Type(), shape)
        for e in (Float16Type(), IntegerType(8), UniformQuantizedType.make(IntegerType(8), 0.5, 0)):
            fast, checked = with_element(t, e), TensorType(e, shape)
            assert fast == checked and hash(fast) == hash(checked) and sorted(vars(fast)) == sorted(vars(checked))
