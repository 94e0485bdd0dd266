"""Attributes built without xDSL's generic parameter checks, for callers whose parameters
are already of the declared classes (the flatbuffer reader, dense payloads, quantized
types): those checks are most of a small attribute's cost and cannot fail there. What is
built is equal to, and hashes equal to, what the checked constructors build
(tests/test_unverified_builders.py); anything these cannot vouch for takes the checked path."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    FloatAttr,
    FloatData,
    Float32Type,
    Float64Type,
    IntAttr,
    IntegerType,
    NoneAttr,
    StringAttr,
    UNKNOWN_LOC,
    TensorType,
)
from xdsl.ir import Attribute, Block, ErasedSSAValue, OpResult, Operation, SSAValue, SSAValues, Use

# element types whose dense payloads xDSL checks only by element count at rank 0
DENSE_ELEMENTS = (IntegerType, Float16Type, Float32Type, Float64Type, BFloat16Type)
_NO_ENCODING = NoneAttr()


def class_test(bases: type | tuple[type, ...]) -> Callable[[object], bool]:
    """isinstance(x, bases) judged once per class of x (xDSL's ABCs make isinstance slow)."""
    known: dict[type, bool] = {}

    def test(x: object) -> bool:
        cls = type(x)
        r = known.get(cls)
        if r is None:
            r = known[cls] = issubclass(cls, bases)
        return r

    return test


_dense_element = class_test(DENSE_ELEMENTS)  # an element type with dense payloads


_set = object.__setattr__


def built(cls: type, **fields: object) -> Any:
    """An attribute of class `cls` with these fields (of the classes it declares), unchecked."""
    a = cls.__new__(cls)
    for k, v in fields.items():
        _set(a, k, v)
    return a


def _data_attr(cls: type, data: object) -> Any:
    """built(cls, data=data): the attributes of one `data` field (strings, ints, arrays)."""
    a = cls.__new__(cls)
    _set(a, "data", data)
    return a


def dense(elem: Attribute, shape: tuple[int, ...], data: BytesAttr) -> DenseIntOrFPElementsAttr:
    """DenseIntOrFPElementsAttr(TensorType(elem, shape), data): unchecked for a numeric element
    and rank >= 1 with dimensions >= 0 (xDSL checks the element count of rank-0 payloads
    only, and int dimensions); anything else through the checked constructors."""
    if not shape or not _dense_element(elem) or not all(type(d) is int and d >= 0 for d in shape):
        return DenseIntOrFPElementsAttr(TensorType(elem, shape), data)
    return dense_of_type(tensor_type(elem, shape), data)


def tensor_type(elem: Attribute, shape: Iterable[int]) -> TensorType:
    """TensorType(elem, shape) for an element type and Python int dimensions (dynamic ones
    included), unchecked: xDSL's checks of those cannot fail."""
    dims = _data_attr(ArrayAttr, tuple([_data_attr(IntAttr, d) for d in shape]))
    return built(TensorType, shape=dims, element_type=elem, encoding=_NO_ENCODING)


def dense_of_type(t: TensorType, data: BytesAttr) -> DenseIntOrFPElementsAttr:
    """DenseIntOrFPElementsAttr(t, data) for a payload whose size the caller checked (the
    shape's elements, one for rank 0; the reader's _payload): unchecked for a numeric element,
    whose verifier checks nothing else; other elements through the checked constructor."""
    if not _dense_element(t.element_type):
        return DenseIntOrFPElementsAttr(t, data)
    return built(DenseIntOrFPElementsAttr, type=t, data=data)


def bytes_attr(data: bytes | memoryview) -> BytesAttr:
    """BytesAttr(data) for bytes or a read-only byte view, unchecked."""
    return _data_attr(BytesAttr, data)


_F64 = Float64Type()


def float64_attr(value: float) -> FloatAttr:
    """FloatAttr(value, Float64Type()) for a Python float, unchecked (a double is its own
    float64 value: nothing to round)."""
    return built(FloatAttr, value=_data_attr(FloatData, float(value)), type=_F64)


def string_array(strings: Iterable[str]) -> ArrayAttr:
    """ArrayAttr([StringAttr(s) for s in strings]) for Python strings, unchecked."""
    return _data_attr(ArrayAttr, tuple([_data_attr(StringAttr, s) for s in strings]))


def new_op(cls: type, operands: Iterable[Any], result_types: Iterable[Attribute], properties: dict[str, Attribute],
           attributes: dict[str, Attribute]) -> Any:
    """cls.create(operands=..., result_types=..., properties=..., attributes=...) for an op
    without regions or successors, taking the two dictionaries as they are (the caller's own,
    fresh): xDSL's Operation.__init__ without its generic argument handling. A class whose
    IRDL definition fills in a default property or attribute takes cls.create itself
    (tests/test_unverified_builders.py: the same op, uses and all)."""
    if not _plain_class(cls):
        return cls.create(operands=operands, result_types=result_types, properties=properties, attributes=attributes)
    op = cls.__new__(cls)
    init_op(op, operands, result_types, properties, attributes)
    return op


def init_op(op: Any, operands: Iterable[Any], result_types: Iterable[Attribute], properties: dict[str, Attribute],
            attributes: dict[str, Attribute]) -> None:
    """What Operation.__init__ sets on `op` (of a _plain_class class, without regions or
    successors; operands SSA values), taking the two dictionaries as they are."""
    vals = SSAValues(operands)
    uses = []
    for i, v in enumerate(vals):
        u = Use(op, i)
        first = v.first_use  # (v.add_use(u), inline: the use heads the value's list)
        u._next_use = first
        if first is not None:
            first._prev_use = u
        v.first_use = u
        uses.append(u)
    op._operands = vals
    op._operand_uses = tuple(uses)
    op.results = SSAValues([OpResult(t, op, i) for i, t in enumerate(result_types)])
    op.properties = properties
    op.attributes = attributes
    op.location = UNKNOWN_LOC
    op._successors = ()
    op._successor_uses = ()
    op.regions = ()


def append_ops(block: Block, ops: Iterable[Operation]) -> None:
    """block.add_op(op) for each op, in order. An op in no block and without regions (a
    fresh op of the reader) is linked in directly: xDSL's checks of it (in no block, not
    containing the block) cannot fail; any other takes add_op."""
    last = block.last_op
    for op in ops:
        if op.parent is not None or op.regions:
            block.add_op(op)
        else:
            op.parent = block
            op._prev_op = last
            if last is None:
                block._first_op = op
            else:
                last._next_op = op
            block._last_op = op
        last = op


is_value = class_test(SSAValue)  # an SSA value (an op's result or a block argument, not an Operation)


@functools.cache
def _plain_class(cls: type) -> bool:
    """An IRDL op class whose __post_init__ adds nothing (no default property or attribute
    outside an optional definition), or False."""
    from xdsl.irdl import IRDLOperation, OptionalDef

    if not (isinstance(cls, type) and issubclass(cls, IRDLOperation)):
        return False
    d = cls.get_irdl_definition()
    return not any(not isinstance(p, OptionalDef) and p.default_value is not None
                   for p in (*d.properties.values(), *d.attributes.values()))


# ----------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------


@functools.cache  # (two threads may both build it the first time: each gets a whole pair)
def _func_def_without_isolation() -> tuple[Any, Any]:
    """func.func's IRDL definition without its IsolatedFromAbove trait (checked by
    verify_module in one pass over the body), and func.func's own verifier."""
    import dataclasses

    from xdsl.dialects import func
    from xdsl.ir import OpTraits
    from xdsl.traits import IsolatedFromAbove

    op_def = func.FuncOp.get_irdl_definition()
    cells = [c.cell_contents for c in (func.FuncOp.verify_.__closure__ or ())]
    custom = [c for c in cells if callable(c) and getattr(c, "__qualname__", "") == "FuncOp.verify_"]
    assert len(custom) == 1 and any(isinstance(t, IsolatedFromAbove) for t in op_def.traits), "xDSL's func.func changed: update verify_module"
    kept = tuple(t for t in op_def.traits if not isinstance(t, IsolatedFromAbove))
    return dataclasses.replace(op_def, traits=OpTraits(lambda: kept)), custom[0]


def verify_module(module: Any) -> None:
    """module.verify(), in about half its time for the IR tflquant builds (a module of
    func.func, each one block of ops without regions or successors, ended by func.return):
    the same checks, xDSL's walks of the generic ones (each op's terminator and parent
    facts, func.func's IsolatedFromAbove) made in one pass. Whatever fails, or any other
    form, runs module.verify() itself: the same IR passes and fails, with its messages."""
    try:
        ok = _verified(module)
    except Exception:  # noqa: BLE001 - module.verify() raises its own error for it
        ok = False
    if not ok:
        module.verify()


_erased = class_test(ErasedSSAValue)
_is_op = class_test(Operation)
_is_block = class_test(Block)


def _verified(module: Any) -> bool:
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ModuleOp
    func_def, func_custom = _func_def_without_isolation()
    if type(module) is not ModuleOp or module._operands or module._successors or module.parent is not None:
        return False
    (region,) = module.regions
    if len(region.blocks) != 1:
        return False
    mblock = region.blocks.first
    if mblock.parent is not region:
        return False
    for fn in mblock.ops:
        if type(fn) is not func.FuncOp or fn.parent is not mblock or fn._operands or fn._successors:
            return False
        (body,) = fn.regions
        if len(body.blocks) != 1:
            return False
        block = body.blocks.first
        if block.parent is not body:
            return False
        last = block.last_op
        if type(last) is not func.ReturnOp:  # (also: an empty block)
            return False
        op = block.first_op
        while op is not None:  # (block.ops, without its iterator's call per op)
            if op.parent is not block or op.regions or op._successors:
                return False
            for v in op._operands:
                if type(v) is OpResult:  # (most operands: an op's live result, its op in this block?)
                    if v.op.parent is not block:
                        return False
                    continue
                owner = v.owner
                # defined in this block (func.func is isolated from above), and not erased
                if _erased(v):
                    return False
                if _is_op(owner):
                    if owner.parent is not block:
                        return False
                elif not _is_block(owner) or owner is not block:
                    return False
            op.verify_()
            op = op._next_op
        func_def.verify(fn)
        func_custom(fn)
    module.verify_()
    return True
