"""Low-level flatbuffer access: checked table reading over raw bytes, and table building.

Reading never trusts the buffer: every offset, vtable and vector is bounds-checked against
the buffer size, so a corrupted file raises FlatbufferError (never IndexError, a struct
error or a hang). Every loop a caller runs is bounded by a vector length that has already
been checked against the buffer size.

Building wraps `flatbuffers.Builder` with the few shapes a TFLite model needs: strings,
numpy vectors, 16-byte aligned byte vectors, vectors of offsets, and tables given as
(slot, kind, value, default) fields.
"""

from __future__ import annotations

import functools
import itertools
import mmap
import operator
import struct
from collections.abc import Sequence

import flatbuffers
import flatbuffers.builder
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.number_types import enforce_number


class FlatbufferError(Exception):
    """The buffer is not a well-formed flatbuffer (the reader turns this into TflquantError)."""


_SCALARS: dict[str, struct.Struct] = {
    "bool": struct.Struct("<B"),
    "u8": struct.Struct("<B"),
    "i8": struct.Struct("<b"),
    "u16": struct.Struct("<H"),
    "i16": struct.Struct("<h"),
    "u32": struct.Struct("<I"),
    "i32": struct.Struct("<i"),
    "u64": struct.Struct("<Q"),
    "i64": struct.Struct("<q"),
    "f32": struct.Struct("<f"),
    "f64": struct.Struct("<d"),
}
NUMPY_OF_KIND: dict[str, str] = {
    "bool": "u1",
    "u8": "u1",
    "i8": "i1",
    "u16": "<u2",
    "i16": "<i2",
    "u32": "<u4",
    "i32": "<i4",
    "u64": "<u8",
    "i64": "<i8",
    "f32": "<f4",
    "f64": "<f8",
}
_U16 = _SCALARS["u16"]
_INT_FORMATS = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "i64": "q"}
_INT_SIZES = {k: struct.calcsize("<" + f) for k, f in _INT_FORMATS.items()}


@functools.lru_cache(maxsize=1024)
def _structs(code: str, n: int) -> struct.Struct:
    """The struct of n little-endian values of one struct code (vtables, short vectors)."""
    return struct.Struct(f"<{n}{code}")

_U32 = _SCALARS["u32"]
_I32 = _SCALARS["i32"]
# kind -> the structs of 0..64 integers of that kind (ints_at's short vectors)
_INT_STRUCTS = {k: [_structs(f, n) for n in range(65)] for k, f in _INT_FORMATS.items()}


class Table:
    """A table at `pos` in `buf`, with its vtable checked. `vtables`: the vtables already
    read from `buf` (vtable position -> its length, the object length and the field offsets),
    shared by the tables read from one root: flatbuffers stores one vtable for every table
    of the same layout, so most tables reuse a checked one."""

    __slots__ = ("buf", "pos", "objlen", "slots", "vtables", "plans")

    def __init__(self, buf: bytes, pos: int, vtables: dict[int, tuple[int, tuple[int, ...], dict]] | None = None):
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise FlatbufferError(f"table offset {pos} is outside the {n}-byte buffer")
        vt = pos - _I32.unpack_from(buf, pos)[0]
        if vtables is None:
            vtables = {}
        known = vtables.get(vt)
        if known is None:
            if vt < 0 or vt + 4 > n:
                raise FlatbufferError(f"vtable of the table at {pos} is outside the buffer")
            vtlen, objlen = _U16.unpack_from(buf, vt)[0], _U16.unpack_from(buf, vt + 2)[0]
            if vtlen < 4 or vtlen % 2 or vt + vtlen > n or objlen < 4 or pos + objlen > n:
                raise FlatbufferError(f"malformed vtable for the table at {pos}")
            # the field offsets, read once, and the FieldPlans of this layout (Fields -> plan)
            known = vtables[vt] = (objlen, _structs("H", (vtlen - 4) // 2).unpack_from(buf, vt + 4), {})
        objlen, slots, plans = known
        if pos + objlen > n:
            raise FlatbufferError(f"malformed vtable for the table at {pos}")
        self.buf, self.pos, self.objlen, self.slots, self.vtables, self.plans = buf, pos, objlen, slots, vtables, plans

    def _field(self, slot: int) -> int:
        slots = self.slots
        return slots[slot] if slot < len(slots) else 0

    def has(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, kind: str, default: object = 0) -> object:
        slots = self.slots
        off = slots[slot] if slot < len(slots) else 0  # (_field, inline: the readers' most frequent call)
        if off == 0:
            return default
        st = _SCALARS[kind]
        if off + st.size > self.objlen:
            raise FlatbufferError(f"field {slot} of the table at {self.pos} runs past the table")
        v = st.unpack_from(self.buf, self.pos + off)[0]
        return bool(v) if kind == "bool" else v

    def _indirect(self, slot: int) -> int | None:
        slots = self.slots
        off = slots[slot] if slot < len(slots) else 0
        if off == 0:
            return None
        p = self.pos + off
        if off + 4 > self.objlen:
            raise FlatbufferError(f"field {slot} of the table at {self.pos} runs past the table")
        target = p + _U32.unpack_from(self.buf, p)[0]
        if target + 4 > len(self.buf):
            raise FlatbufferError(f"field {slot} of the table at {self.pos} points outside the buffer")
        return target

    def table(self, slot: int) -> Table | None:
        return self.table_at(self._indirect(slot))

    def _vector(self, slot: int, itemsize: int) -> tuple[int, int] | None:
        p = self._indirect(slot)
        return None if p is None else self.span_at(p, slot, itemsize)

    def string(self, slot: int) -> str | None:
        return self.string_at(self._indirect(slot), slot)

    def raw_bytes(self, slot: int) -> bytes | None:
        v = self._vector(slot, 1)
        if v is None:
            return None
        start, count = v
        return bytes(self.buf[start : start + count])

    def vector(self, slot: int, kind: str) -> np.ndarray | None:
        """A vector of scalars as a read-only numpy array (None when absent)."""
        return self.vector_at(self._indirect(slot), slot, kind)

    def ints(self, slot: int, kind: str = "i32") -> list[int] | None:
        """A vector of integers as a Python list (None when absent): vector(slot, kind).tolist()."""
        return self.ints_at(self._indirect(slot), slot, kind)

    def vector_span(self, slot: int) -> tuple[int, int] | None:
        """(start, length) in bytes of a [ubyte] vector, without copying."""
        return self._vector(slot, 1)

    def tables(self, slot: int) -> list[Table]:
        v = self._vector(slot, 4)
        if v is None:
            return []
        start, count = v
        buf, vtables = self.buf, self.vtables
        rel = np.frombuffer(buf, dtype="<u4", count=count, offset=start).tolist() if count > 64 else _structs("I", count).unpack_from(buf, start)
        return [Table(buf, start + 4 * i + o, vtables) for i, o in enumerate(rel)]

    def strings(self, slot: int) -> list[str]:
        v = self._vector(slot, 4)
        if v is None:
            return []
        start, count = v
        out = []
        n = len(self.buf)
        for i in range(count):
            q = start + 4 * i
            p = q + _U32.unpack_from(self.buf, q)[0]
            if p + 4 > n:
                raise FlatbufferError("string outside the buffer")
            ln = _U32.unpack_from(self.buf, p)[0]
            if p + 4 + ln > n:
                raise FlatbufferError("string runs past the buffer")
            out.append(bytes(self.buf[p + 4 : p + 4 + ln]).decode("utf-8", errors="surrogateescape"))
        return out

    # -- reading many fields at once: read(fields) decodes them with one struct per layout of
    # the table (FieldPlan), offsets resolved to their targets; the *_at readers take such a
    # target. Whatever does not check out there is read again field by field, which raises
    # the error the one-field readers above raise for it.

    def read(self, fields: Fields) -> Sequence:
        """The values of `fields` in their order: a scalar's value (its default when
        absent), an offset's target position (None when absent)."""
        plan = self.plans.get(fields)  # (this vtable's plan for them)
        if plan is None:
            plan = self._plan(fields)
        if plan is False:
            return self._read_each(fields)
        pos = self.pos
        out = plan.pick(plan.struct.unpack_from(self.buf, pos + plan.start) + fields.defaults)
        if plan.offsets:
            out = list(out)
            n = len(self.buf) - 4
            for k, at in plan.offsets:
                target = pos + at + out[k]
                if target > n:
                    return self._read_each(fields)
                out[k] = target
        return out

    def _plan(self, fields: Fields) -> FieldPlan | bool:
        """The FieldPlan of `fields` for this table's layout (made once per layout)."""
        key = (self.slots, self.objlen)
        plan = fields.plans.get(key)
        if plan is None:
            plan = _read_plan(fields, self.slots, self.objlen)
            if len(fields.plans) < 4096:  # (a corrupt file's many layouts are not kept)
                fields.plans[key] = plan
        self.plans[fields] = plan
        return plan

    def _read_each(self, fields: Fields) -> list:
        return [self._indirect(slot) if kind == "off" else self.scalar(slot, kind, d)
                for slot, kind, d in zip(fields.slots, fields.kinds, fields.defaults)]

    # The *_at readers read the vector or table at `p`, the target of field `slot` (from
    # _indirect or read(), which checked that its 4-byte length lies in the buffer); the
    # one-field readers above are these on _indirect(slot).

    def span_at(self, p: int, slot: int, itemsize: int) -> tuple[int, int]:
        """(start, element count) of the vector at `p`, checked to lie in the buffer."""
        count = _U32.unpack_from(self.buf, p)[0]
        if p + 4 + count * itemsize > len(self.buf):
            raise FlatbufferError(f"vector in field {slot} of the table at {self.pos} runs past the buffer ({count} elements)")
        return p + 4, count

    def string_at(self, p: int | None, slot: int) -> str | None:
        if p is None:
            return None
        buf = self.buf
        end = p + 4 + _U32.unpack_from(buf, p)[0]
        if end > len(buf):
            self.span_at(p, slot, 1)  # (raises)
        return str(buf[p + 4 : end], "utf-8", "surrogateescape")

    def ints_at(self, p: int | None, slot: int, kind: str = "i32") -> list[int] | None:
        if p is None:
            return None
        buf = self.buf
        count = _U32.unpack_from(buf, p)[0]
        if p + 4 + count * _INT_SIZES[kind] > len(buf):
            self.span_at(p, slot, _INT_SIZES[kind])  # (raises)
        if count > 64:
            return np.frombuffer(buf, dtype=_DTYPES[kind], count=count, offset=p + 4).tolist()
        return list(_INT_STRUCTS[kind][count].unpack_from(buf, p + 4))

    def vector_at(self, p: int | None, slot: int, kind: str) -> np.ndarray | None:
        if p is None:
            return None
        dtype = _DTYPES[kind]
        start, count = self.span_at(p, slot, dtype.itemsize)
        return np.frombuffer(self.buf, dtype=dtype, count=count, offset=start)

    def table_at(self, p: int | None) -> Table | None:
        return None if p is None else Table(self.buf, p, self.vtables)


class Fields:
    """Fields to read from tables of one type with Table.read: (slot, kind) each, kind a
    scalar kind or "off"; `defaults`: an absent scalar's value (default 0, False; an
    absent offset: None)."""

    __slots__ = ("slots", "kinds", "defaults", "plans")

    def __init__(self, slots_and_kinds: Sequence[tuple[int, str]], defaults: Sequence[object] | None = None):
        self.slots = tuple(s for s, _k in slots_and_kinds)
        self.kinds = tuple(k for _s, k in slots_and_kinds)
        given = tuple(defaults) if defaults is not None else tuple(False if k == "bool" else 0 for k in self.kinds)
        self.defaults = tuple(None if k == "off" else d for k, d in zip(self.kinds, given))
        # (vtable field offsets, object length) -> a FieldPlan, or False: read field by field
        self.plans: dict[tuple[tuple[int, ...], int], FieldPlan | bool] = {}


class FieldPlan:
    """How Table.read decodes Fields from tables of one layout: one struct from the first
    present field to the last, then each field's value (or default) picked out."""

    __slots__ = ("struct", "start", "pick", "offsets")

    def __init__(self, st: struct.Struct, start: int, picks: list[int], offsets: tuple[tuple[int, int], ...]):
        self.struct, self.start, self.offsets = st, start, offsets
        # the fields' values, in their order, out of the unpacked values + the defaults
        if len(picks) > 1:
            self.pick = operator.itemgetter(*picks)
        else:  # (itemgetter of one index gives the value itself)
            self.pick = lambda vals: tuple(vals[k] for k in picks)


def _read_plan(fields: Fields, slots: tuple[int, ...], objlen: int) -> FieldPlan | bool:
    """The FieldPlan of fields for a table whose vtable holds `slots`, or False when a
    field runs past the table or two overlap (read field by field: the same values, or
    the one-field readers' errors)."""
    present = []  # (offset in the table, size, struct code, index among the fields)
    for i, (slot, kind) in enumerate(zip(fields.slots, fields.kinds)):
        off = slots[slot] if slot < len(slots) else 0
        if off == 0:
            continue
        code = "I" if kind == "off" else "?" if kind == "bool" else _SCALARS[kind].format.lstrip("<")
        size = struct.calcsize("<" + code)
        if off + size > objlen:
            return False
        present.append((off, size, code, i))
    present.sort()
    fmt, at = ["<"], present[0][0] if present else 0
    for off, size, code, _i in present:
        if off < at:
            return False  # overlapping fields
        fmt.append("x" * (off - at) + code)
        at = off + size
    where = {i: k for k, (_o, _s, _c, i) in enumerate(present)}  # field -> its value's place
    picks = [where[i] if i in where else len(present) + i for i in range(len(fields.slots))]
    offsets = tuple((i, off) for off, _s, code, i in present if fields.kinds[i] == "off")
    return FieldPlan(struct.Struct("".join(fmt)), present[0][0] if present else 0, picks, offsets)


_DTYPES = {k: np.dtype(v) for k, v in NUMPY_OF_KIND.items()}


def root_table(buf: bytes, identifier: bytes | None = None) -> Table:
    """The root table of a finished flatbuffer, checking the 4-byte file identifier."""
    if len(buf) < 8:
        raise FlatbufferError(f"only {len(buf)} bytes, too short for a flatbuffer")
    if identifier is not None and bytes(buf[4:8]) != identifier:
        raise FlatbufferError(f"file identifier is {bytes(buf[4:8])!r}, expected {identifier!r}")
    return Table(buf, _U32.unpack_from(buf, 0)[0])


# ----------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------

_PREPEND_SLOT = {
    "bool": "PrependBoolSlot",
    "u8": "PrependUint8Slot",
    "i8": "PrependInt8Slot",
    "u16": "PrependUint16Slot",
    "i16": "PrependInt16Slot",
    "u32": "PrependUint32Slot",
    "i32": "PrependInt32Slot",
    "u64": "PrependUint64Slot",
    "i64": "PrependInt64Slot",
    "f32": "PrependFloat32Slot",
    "f64": "PrependFloat64Slot",
}

# A table field to build: (slot, kind, value, default). kind is a scalar kind or "off"
# (an offset returned by one of the vector/string/table builders). A scalar equal to its
# default is left out, as flatbuffers does; pass default=None to always write it.
Field = tuple[int, str, object, object]


# A builder of at least this size is anonymous memory (see Builder): its untouched room (the
# reserved deferred vectors, the slack) costs no page faults. decoder_tiny's int4 writes ask
# for 2.9 MB, whose bytearray zero-fill took 0.6-1.6 ms of a ~40 ms quantize + save.
_MAPPED_BUILDER_MIN = 1 << 20
# [ubyte] vectors at least this big may be deferred (see Builder.bytes_vector).
_DEFER_MIN = 4096
_BUILDERS = itertools.count()


class Builder:
    """A thin layer over flatbuffers.Builder (back-to-front building, children first)."""

    def __init__(self, size_hint: int = 1024):
        size = max(1024, min(size_hint, flatbuffers.Builder.MAX_BUFFER_SIZE))
        if size < _MAPPED_BUILDER_MIN:
            self.fb = flatbuffers.Builder(size)
        else:
            # Anonymous memory: the kernel hands out zero pages as they are written, where a
            # bytearray is zero-filled up front. Held through a numpy array: views of it
            # (finish_parts' pieces) are no views of a mapped file (fileio.mapped_file), which
            # callers copy, or whose pages they may drop (zeroing anonymous memory)
            self.fb = flatbuffers.Builder(0)
            self.fb.Bytes = memoryview(np.frombuffer(mmap.mmap(-1, size), np.uint8))
            self.fb.head = size
        self._shared: dict[tuple[str, bytes], int] = {}
        self._lists: dict[tuple[str, tuple], int] = {}
        self.memo: dict[str, object] = {}  # the caller's caches for this build
        self._deferred: list[tuple[int, bytes | memoryview]] = []
        self.serial = next(_BUILDERS)  # (tells this builder from earlier ones in the table plans)

    def string(self, s: str) -> int:
        """flatbuffers.Builder.CreateString's bytes (a 0 after the text, the length before)."""
        x = s.encode("utf-8", errors="surrogateescape")
        fb = self.fb
        if fb.nested:
            raise flatbuffers.builder.IsNestedError()
        self._prep(4, len(x) + 1)
        head = fb.head - 1 - len(x)
        fb.Bytes[head : fb.head] = x + b"\x00"
        head -= 4
        _UOFFSET.pack_into(fb.Bytes, head, len(x))
        fb.head = head
        fb.vectorNumElems = None
        return len(fb.Bytes) - head

    def _scalar_vector(self, payload: bytes, itemsize: int, count: int, alignment: int) -> int:
        """flatbuffers.Builder.CreateNumpyVector's bytes for a little-endian 1-D array's data."""
        fb = self.fb
        if fb.nested:
            raise flatbuffers.builder.IsNestedError()
        self._prep(4, itemsize * count)
        if alignment > 4:  # (after Prep(4, n), a Prep of 4 bytes or fewer for n is a no-op)
            self._prep(alignment, itemsize * count)
        head = fb.head - len(payload)
        fb.Bytes[head : fb.head] = payload
        head -= 4
        _UOFFSET.pack_into(fb.Bytes, head, count)
        fb.head = head
        fb.vectorNumElems = None
        return len(fb.Bytes) - head

    def numpy(self, arr: np.ndarray | Sequence[object], kind: str) -> int:
        """A scalar vector; identical vectors (shapes, scales, zero points) are stored once."""
        # a list of integers (shapes, tensor indices): found by its values before any
        # numpy conversion (equal numbers give equal bytes in an integer kind)
        lkey = (kind, tuple(arr)) if isinstance(arr, list) and kind in _INT_KINDS else None
        if lkey is not None:
            off = self._lists.get(lkey)
            if off is not None:
                return off
            try:  # the little-endian bytes numpy makes of Python integers in range
                n = len(arr)
                payload = (_INT_STRUCTS[kind][n] if n <= 64 else _structs(_INT_FORMATS[kind], n)).pack(*arr)
            except struct.error:  # (anything else: as numpy converts it)
                payload = None
            if payload is not None:
                key = (kind, payload)
                if (off := self._shared.get(key)) is None:
                    size = _INT_SIZES[kind]
                    off = self._shared[key] = self._scalar_vector(payload, size, len(arr), size)
                self._lists[lkey] = off
                return off
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.dtype(NUMPY_OF_KIND[kind])).reshape(-1))
        key = (kind, a.tobytes())
        if (off := self._shared.get(key)) is None:
            off = self._shared[key] = self._scalar_vector(key[1], a.itemsize, a.size, a.dtype.alignment)
        if lkey is not None:
            self._lists[lkey] = off
        return off

    def bytes_vector(self, data: bytes | memoryview, alignment: int = 1, defer: bool = False) -> int:
        """A [ubyte] vector. defer=True only reserves its room: the data is not copied into
        the builder but placed between the pieces finish_parts() returns."""
        fb = self.fb
        n = len(data)
        fb.StartVector(1, n, alignment)
        fb.head = fb.head - n
        if defer and n >= _DEFER_MIN:
            self._deferred.append((len(fb.Bytes) - fb.head, data))  # distance from the end: survives growth
        else:
            fb.Bytes[fb.head : fb.head + n] = data
        fb.vectorNumElems = n
        return fb.EndVector()

    def offsets(self, offs: Sequence[int]) -> int:
        """A vector of offsets: the bytes of StartVector(4, n, 4), PrependUOffsetTRelative
        for each (last first), EndVector(), without a method call per element (after
        the first Prep the position stays 4-aligned and the room is reserved)."""
        fb = self.fb
        if fb.nested:
            raise flatbuffers.builder.IsNestedError()
        n = len(offs)
        self._prep(4, 4 * n)  # StartVector's two Preps, both (4, 4n): the second is a no-op
        buf, end, head = fb.Bytes, len(fb.Bytes), fb.head
        for o in reversed(offs):
            cur = end - head
            if not o <= cur:
                raise flatbuffers.builder.OffsetArithmeticError("flatbuffers: Offset arithmetic error.")
            head -= 4
            _UOFFSET.pack_into(buf, head, cur - o + 4)
        head -= 4
        _UOFFSET.pack_into(buf, head, n)
        fb.head = head
        fb.vectorNumElems = None
        return end - head

    def offsets_generic(self, offs: Sequence[int]) -> int:
        """offsets() through flatbuffers.Builder's own methods (the reference it must match)."""
        fb = self.fb
        fb.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            fb.PrependUOffsetTRelative(o)
        return fb.EndVector()

    def table(self, fields: Sequence[Field], layout: Layout | None = None) -> int:
        """A table of the fields; the same bytes flatbuffers.Builder's StartObject /
        Prepend*Slot / EndObject write (table_generic), built here without its per-field
        method calls: Prep's alignment, growth and minalign, the vtable written or shared
        as WriteVtable does (its dictionary of vtables). `layout`: table_layout() of fields
        whose slots and kinds are always these (the order to write them, found once)."""
        fb = self.fb
        if fb.nested:
            raise flatbuffers.builder.IsNestedError()
        if layout is not None:
            if not fb.forceDefaults and len(fields) == len(layout.kinds):
                off = self._planned_table(fields, layout)
                if off is not None:
                    return off
            order, nslots = layout.order, layout.nslots
            ordered: Sequence[Field] = [fields[i] for i in order]
        else:
            nslots = 0
            for f in fields:
                if f[0] >= nslots:
                    nslots = f[0] + 1
            # Larger scalars first keeps the table compact; order is fixed, so output is deterministic.
            ordered = sorted(fields, key=_field_order) if len(fields) > 1 else fields
        force = fb.forceDefaults
        vt = [0] * nslots
        object_end = len(fb.Bytes) - fb.head
        for slot, kind, value, default in ordered:
            if value is None:
                continue
            if kind == "off":
                if value == 0 and not force:
                    continue
                size, pk = 4, None
            else:
                size, pk, lo, hi = _SCALAR_FACTS[kind]
                if lo is not None and not lo <= value <= hi:  # as Prepend*Slot (flatbuffers' enforce_number)
                    enforce_number(value, _FLAGS[kind])
                if default is not None:
                    if lo is not None and not lo <= default <= hi:
                        enforce_number(default, _FLAGS[kind])
                    if value == default and not force:
                        continue
                else:  # written whatever its value (table_generic forces defaults for it, then stops forcing)
                    force = fb.forceDefaults = False
            # Prep(size, 0), growing only when the room is short
            if size > fb.minalign:
                fb.minalign = size
            buf, head = fb.Bytes, fb.head
            n = len(buf)
            align = (head - n) & (size - 1)
            if head < align + size:
                self._prep(size, 0)
                buf, head = fb.Bytes, fb.head
                n = len(buf)
            elif align:
                head -= align
                buf[head : head + align] = _ZEROS[align]
            if pk is None:  # PrependUOffsetTRelative
                cur = n - head
                if not value <= cur:
                    raise flatbuffers.builder.OffsetArithmeticError("flatbuffers: Offset arithmetic error.")
                head -= 4
                _UOFFSET.pack_into(buf, head, cur - value + 4)
            else:
                head -= size
                pk.pack_into(buf, head, value)
            fb.head = head
            vt[slot] = n - head
        return self._end_object(vt, object_end)

    def table_of(self, layout: Layout, values: Sequence[object]) -> int:
        """table() of layout's fields holding `values` (in the layout's field order), each
        left out when equal to the layout's default for it (an offset: 0, no value): the
        same bytes, without building the fields."""
        fb = self.fb
        if fb.nested:
            raise flatbuffers.builder.IsNestedError()
        if fb.forceDefaults:
            return self.table([(s, k, v, d) for s, k, v, d in zip(layout.slots, layout.kinds, values, layout.defaults)])
        present = tuple(map(operator.ne, values, layout.defaults))
        vals = list(itertools.compress(values, present))
        try:
            off = self._write_planned(layout, present, vals)
        except struct.error:
            for v, (_off, lo, hi, flags) in zip(vals, itertools.compress(layout.facts, present)):
                if lo is not None:
                    enforce_number(v, flags)  # flatbuffers' TypeError for a value out of range
            raise
        if off is None:  # an offset that does not precede the table: flatbuffers' error
            return self.table([(s, k, v, d) for s, k, v, d in zip(layout.slots, layout.kinds, values, layout.defaults)])
        return off

    def _planned_table(self, fields: Sequence[Field], layout: Layout) -> int | None:
        """table(fields, layout) through the layout's byte plans (None, with nothing
        written, for an offset that does not precede the table)."""
        present = []
        vals = []
        for (_slot, _kind, value, default), (is_off, lo, hi, flags) in zip(fields, layout.facts):
            if value is None:
                p = False
            elif is_off:
                p = value != 0
            else:
                if lo is not None and not lo <= value <= hi:  # as Prepend*Slot (flatbuffers' enforce_number)
                    enforce_number(value, flags)
                if default is not None and lo is not None and not lo <= default <= hi:
                    enforce_number(default, flags)
                p = default is None or value != default  # (default None: written whatever its value)
            present.append(p)
            if p:
                vals.append(value)
        return self._write_planned(layout, tuple(present), vals)

    def _write_planned(self, layout: Layout, present: tuple[bool, ...], vals: list) -> int | None:
        """Write the table whose fields `present` (in the layout's order) hold `vals` with
        one struct write of the whole object: which fields are written and the head's
        alignment fix every byte's place (a _TablePlan, made once per such case)."""
        fb = self.fb
        start = len(fb.Bytes) - fb.head  # the table's end, as a distance from the buffer's end
        key = (present, start & 7)
        plan = layout.plans.get(key)
        if plan is None:
            plan = layout.plans[key] = _TablePlan(layout, present, start & 7)
        args = plan.arrange(vals)  # in address order
        for k, end in plan.offset_ends:
            stored = start + end - args[k]  # from the field to its target
            if stored < 4:
                return None
            args[k] = stored
        while fb.head < plan.size:  # grow as the field loop's Preps would (the bytes from the end stay)
            old = len(fb.Bytes)
            fb.GrowByteBuffer()
            fb.head += len(fb.Bytes) - old
        object_offset = start + plan.size
        # the vtable's place in this builder, once written (it never moves: a distance from the end)
        serial, known = self.serial, plan.found
        found = known[1] if known[0] == serial else fb.vtables.get(plan.vtable)
        head = len(fb.Bytes) - object_offset
        plan.struct.pack_into(fb.Bytes, head, 0 if found is None else found - object_offset, *args)
        if plan.minalign > fb.minalign:
            fb.minalign = plan.minalign
        fb.head = head
        if found is None:  # WriteVtable: its entries, the object size, its own size
            for x in plan.vtable:
                self._prepend_u16(x)
            self._prepend_u16(2 * len(plan.vtable) + 2)
            n = len(fb.Bytes)
            _SOFFSET.pack_into(fb.Bytes, n - object_offset, (n - fb.head) - object_offset)
            fb.vtables[plan.vtable] = n - fb.head
        elif known[0] != serial:
            plan.found = (serial, found)  # (one store: builders in other threads read it too)
        fb.current_vtable = None
        fb.nested = False
        return object_offset

    def _prep(self, size: int, additional: int) -> None:
        """flatbuffers.Builder.Prep: align for `size` after `additional` bytes, growing the
        buffer as it does."""
        fb = self.fb
        if size > fb.minalign:
            fb.minalign = size
        head = fb.head
        buf_len = len(fb.Bytes)
        align = (~(buf_len - head + additional) + 1) & (size - 1)
        needed = align + size + additional
        while head < needed:
            old = buf_len
            fb.GrowByteBuffer()
            buf_len = len(fb.Bytes)
            head += buf_len - old
        if align > 0:
            fb.Bytes[head - align : head] = b"\x00" * align
            head -= align
        fb.head = head

    def _end_object(self, vt: list[int], object_end: int) -> int:
        """flatbuffers.Builder.EndObject (WriteVtable) for the object whose fields are at
        the offsets `vt` (0: absent), started at `object_end`."""
        fb = self.fb
        # PrependSOffsetTRelative(0): Prep(4, 0), inline when no growth is needed
        if fb.minalign < 4:
            fb.minalign = 4
        head = fb.head
        align = (head - len(fb.Bytes)) & 3
        if head < align + 4:
            self._prep(4, 0)
        elif align:
            fb.Bytes[head - align : head] = _ZEROS[align]
            fb.head = head - align
        fb.head -= 4
        n = len(fb.Bytes)
        object_offset = n - fb.head
        _SOFFSET.pack_into(fb.Bytes, fb.head, object_offset)
        key = []
        trim = True
        for elem in reversed(vt):
            if elem == 0:
                if trim:
                    continue
            else:
                elem = object_offset - elem
                trim = False
            key.append(elem)
        object_size = object_offset - object_end
        key.append(object_size)
        vkey = tuple(key)
        found = fb.vtables.get(vkey)
        if found is None:
            trailing = 0
            trim = True
            for elem in reversed(vt):
                off = 0
                if elem == 0:
                    if trim:
                        trailing += 1
                        continue
                else:
                    off = object_offset - elem
                    trim = False
                self._prepend_u16(off)
            self._prepend_u16(object_size)
            self._prepend_u16((len(vt) - trailing + 2) * 2)
            n = len(fb.Bytes)
            _SOFFSET.pack_into(fb.Bytes, n - object_offset, (n - fb.head) - object_offset)
            fb.vtables[vkey] = n - fb.head
        else:
            fb.head = len(fb.Bytes) - object_offset
            _SOFFSET.pack_into(fb.Bytes, fb.head, found - object_offset)
        fb.current_vtable = None
        fb.nested = False
        return object_offset

    def _prepend_u16(self, x: int) -> None:
        self._prep(2, 0)
        enforce_number(x, _VOFFSET_FLAGS)
        self.fb.head -= 2
        _VOFFSET.pack_into(self.fb.Bytes, self.fb.head, x)

    def table_generic(self, fields: Sequence[Field]) -> int:
        """table() through flatbuffers.Builder's own methods (the reference it must match)."""
        fb = self.fb
        nslots = max((f[0] for f in fields), default=-1) + 1
        fb.StartObject(nslots)
        for slot, kind, value, default in sorted(fields, key=_field_order):
            if value is None:
                continue
            if kind == "off":
                fb.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif default is None:
                # Always write: temporarily force defaults for this one field.
                fb.ForceDefaults(True)
                getattr(fb, _PREPEND_SLOT[kind])(slot, value, 0)
                fb.ForceDefaults(False)
            else:
                getattr(fb, _PREPEND_SLOT[kind])(slot, value, default)
        return fb.EndObject()

    def finish(self, root: int, identifier: bytes) -> bytes:
        return b"".join(self.finish_parts(root, identifier))

    def finish_parts(self, root: int, identifier: bytes) -> list[bytes | memoryview]:
        """The finished flatbuffer as pieces whose concatenation is the file: views of the
        builder's memory with the deferred vectors' data in between (nothing copied)."""
        fb = self.fb
        fb.Finish(root, file_identifier=identifier)
        mem = memoryview(fb.Bytes).toreadonly()
        end = len(fb.Bytes)
        parts: list[bytes | memoryview] = []
        cur = fb.Head()
        for pos, data in sorted((end - d, data) for d, data in self._deferred):
            parts += [mem[cur:pos], data]
            cur = pos + len(data)
        parts.append(mem[cur:end])
        return parts


class Layout:
    """Tables whose fields are always (slot, kind, ...) in one order (table_layout): the
    order Builder.table writes them in, their slot count, the defaults table_of leaves
    out, and the byte plans of such tables (_TablePlan, one per set of written fields and
    alignment, made when first met)."""

    __slots__ = ("order", "nslots", "slots", "kinds", "defaults", "facts", "plans")

    def __init__(self, slots_and_kinds: Sequence[tuple[int, str]], defaults: Sequence[object] | None = None):
        fields = [(slot, kind, None, None) for slot, kind in slots_and_kinds]
        self.order = tuple(sorted(range(len(fields)), key=lambda i: _field_order(fields[i])))
        self.nslots = max((slot for slot, _k in slots_and_kinds), default=-1) + 1
        self.slots = tuple(slot for slot, _k in slots_and_kinds)
        self.kinds = tuple(kind for _s, kind in slots_and_kinds)
        if len(set(self.slots)) != len(self.slots):
            raise ValueError(f"a table layout names a slot twice: {list(slots_and_kinds)}")
        # per field: (an offset?, the least and greatest value flatbuffers accepts (None:
        # unbounded), its number flags)
        self.facts = tuple((True, None, None, None) if k == "off" else (False, *_SCALAR_FACTS[k][2:], _FLAGS[k]) for k in self.kinds)
        self.defaults = tuple(defaults) if defaults is not None else tuple(0 for _k in self.kinds)
        for d, (is_off, lo, hi, flags) in zip(self.defaults, self.facts):
            if is_off and d != 0:
                raise ValueError("an offset field's default is 0 (no value)")
            if lo is not None:
                enforce_number(d, flags)
        self.plans: dict[tuple[tuple[bool, ...], int], _TablePlan] = {}


class _TablePlan:
    """Where every byte of a table goes, for one layout, one set of written fields
    (`present`, in the layout's order) and the head's alignment (`start`: the distance of
    the table's end from the buffer's end, modulo 8): the Preps' padding, the fields, the
    soffset to the vtable and the vtable itself, as table()'s loop and _end_object place them."""

    __slots__ = ("struct", "size", "arrange", "field_end", "offset_args", "offset_ends", "minalign", "vtable", "found")

    def __init__(self, layout: Layout, present: tuple[bool, ...], start: int):
        d = start
        placed = []  # (distance of the field from the buffer's end, its struct code, slot, an offset?, index among the values)
        index = {i: k for k, i in enumerate(i for i in range(len(present)) if present[i])}
        minalign = 4
        for i in layout.order:  # writing order
            if not present[i]:
                continue
            kind = layout.kinds[i]
            size = 4 if kind == "off" else _SCALAR_FACTS[kind][0]
            minalign = max(minalign, size)
            d += (-d) & (size - 1)  # Prep(size, 0)
            d += size
            code = "I" if kind == "off" else _FLAGS[kind].packer_type.format.lstrip("<")
            placed.append((d, code, layout.slots[i], kind == "off", index[i]))
        d += (-d) & 3  # PrependSOffsetTRelative's Prep(4, 0)
        obj = d + 4  # the object's offset
        fmt, at = ["<i"], obj - 4  # at: the distance from the end of the next byte to fill
        in_memory = placed[::-1]  # lowest address first
        for fd, code, _slot, _off, _k in in_memory:
            fmt.append("x" * (at - fd) + code)
            at = fd - struct.calcsize("<" + code)
        fmt.append("x" * (at - start))
        self.struct = struct.Struct("".join(fmt))
        self.size = obj - start
        order = [k for _fd, _c, _s, _o, k in in_memory]
        # the values in address order, as a list (the offsets are replaced in it)
        if len(order) > 1:
            pick = operator.itemgetter(*order)
            self.arrange = lambda vals: list(pick(vals))
        else:
            self.arrange = lambda vals: [vals[k] for k in order]
        # per struct argument after the soffset: the field's distance from the table's end
        self.field_end = tuple(fd - start for fd, _c, _s, _o, _k in in_memory)
        self.offset_args = tuple(k for k, (_fd, _c, _s, is_off, _i) in enumerate(in_memory) if is_off)
        self.offset_ends = tuple((k, self.field_end[k]) for k in self.offset_args)
        # (serial of the Builder this table's vtable was last found in, its place there): _write_planned
        self.found = (-1, 0)
        self.minalign = minalign
        where = {slot: fd for fd, _c, slot, _o, _k in placed}
        entries = [obj - where[s] if s in where else 0 for s in range(layout.nslots)]
        while entries and entries[-1] == 0:
            entries.pop()
        self.vtable = (*reversed(entries), obj - start)  # as _end_object keys fb.vtables


def table_layout(slots_and_kinds: Sequence[tuple[int, str]], defaults: Sequence[object] | None = None) -> Layout:
    """The Layout of tables whose fields are always (slot, kind, ...) in this order: the
    order Builder.table sorts them into, and their slot count (the same table bytes).
    `defaults`: the value of each field that table_of leaves out (default: 0, False)."""
    return Layout(slots_and_kinds, defaults)


def _field_order(f: Field) -> tuple[int, int]:
    return (_NEG_WIDTH[f[1]], f[0])


_FLAGS = {
    "bool": N.BoolFlags, "u8": N.Uint8Flags, "i8": N.Int8Flags, "u16": N.Uint16Flags, "i16": N.Int16Flags,
    "u32": N.Uint32Flags, "i32": N.Int32Flags, "u64": N.Uint64Flags, "i64": N.Int64Flags,
    "f32": N.Float32Flags, "f64": N.Float64Flags,
}  # fmt: skip
_ZEROS = [b"\x00" * k for k in range(8)]
# kind -> (bytes, packer, least and greatest value: None for floats and bool, which
# flatbuffers' enforce_number does not bound)
_SCALAR_FACTS = {k: (f.bytewidth, f.packer_type, f.min_val, f.max_val) for k, f in _FLAGS.items()}
_INT_KINDS = frozenset(("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"))
_UOFFSET = N.UOffsetTFlags.packer_type
_SOFFSET = N.SOffsetTFlags.packer_type
_VOFFSET_FLAGS = N.VOffsetTFlags
_VOFFSET = N.VOffsetTFlags.packer_type


def _width(kind: str) -> int:
    if kind in ("off", "u32", "i32", "f32"):
        return 4
    if kind in ("u64", "i64", "f64"):
        return 8
    if kind in ("u16", "i16"):
        return 2
    return 1


_NEG_WIDTH = {k: -_width(k) for k in ("off", "bool", "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64")}
