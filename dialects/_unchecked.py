"""Attributes built without xDSL's generic parameter checks, for callers whose parameters
are already of the declared classes (the flatbuffer reader, dense payloads, quantized
types): those checks are most of a small attribute's cost and cannot fail there. What is
built is equal to, and hashes equal to, what the checked constructors build
(tests/test_unverified_builders.py); anything these cannot vouch for takes the checked path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntAttr,
    IntegerType,
    NoneAttr,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute

# element types whose dense payloads xDSL checks only by element count at rank 0
DENSE_ELEMENTS = (IntegerType, Float16Type, Float32Type, Float64Type, BFloat16Type)
_NO_ENCODING = NoneAttr()


def built(cls: type, **fields: object) -> Any:
    """An attribute of class `cls` with these fields (of the classes it declares), unchecked."""
    a = cls.__new__(cls)
    for k, v in fields.items():
        object.__setattr__(a, k, v)
    return a


def dense(elem: Attribute, shape: tuple[int, ...], data: BytesAttr) -> DenseIntOrFPElementsAttr:
    """DenseIntOrFPElementsAttr(TensorType(elem, shape), data): unchecked for a numeric element
    and rank >= 1 with dimensions >= 0 (xDSL checks the element count of rank-0 payloads
    only, and int dimensions); anything else through the checked constructors."""
    if not shape or not isinstance(elem, DENSE_ELEMENTS) or not all(type(d) is int and d >= 0 for d in shape):
        return DenseIntOrFPElementsAttr(TensorType(elem, shape), data)
    dims = built(ArrayAttr, data=tuple(built(IntAttr, data=d) for d in shape))
    return dense_of_type(built(TensorType, shape=dims, element_type=elem, encoding=_NO_ENCODING), data)


def dense_of_type(t: TensorType, data: BytesAttr) -> DenseIntOrFPElementsAttr:
    """DenseIntOrFPElementsAttr(t, data) for a payload whose size the caller checked (the
    shape's elements, one for rank 0; the reader's _payload): unchecked for a numeric element,
    whose verifier checks nothing else; other elements through the checked constructor."""
    if not isinstance(t.element_type, DENSE_ELEMENTS):
        return DenseIntOrFPElementsAttr(t, data)
    return built(DenseIntOrFPElementsAttr, type=t, data=data)


def string_array(strings: Iterable[str]) -> ArrayAttr:
    """ArrayAttr([StringAttr(s) for s in strings]) for Python strings, unchecked."""
    return built(ArrayAttr, data=tuple(built(StringAttr, data=s) for s in strings))
