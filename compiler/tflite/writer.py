"""Emit a tflquant module (see reader.py for the mapping) as a TFLite flatbuffer.

The output is a valid schema-3 model: identifier TFL3, version 3, an empty buffers[0],
constant data 16-byte aligned, identical constants of one type stored once (never one
buffer for two types: a weight one subgraph reads quantized and another float gets two),
a zero-element constant an empty (present) data vector of its own, builtin_code plus
deprecated_builtin_code = min(code, 127), an options table for every op that has one, op
versions from versions.py (opaque ops keep theirs) and a `min_runtime_version` metadata
entry. The same module always gives the same bytes. Every model written passes
`tflquant.tflite.verify` (LiteRT's verifier checks and more), else TflquantError.

A model whose flatbuffer would pass `max_flatbuffer_size` (2 GB) is written in the
large-model layout: constant buffers hold offset/size and their data follows the
flatbuffer (64-byte aligned), as TFLite's exporter does; `large=True` forces that layout.
`write_model` streams such a model to its file buffer by buffer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from flatbuffers.builder import BuilderSizeError
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    BFloat16Type,

    BytesAttr,
    ComplexType,
    DenseArrayBase,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    NoneType,
    Signedness,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Operation, SSAValue

from tflquant.dialects import tfl
from tflquant.dialects.quant import BlockwiseQuantizedType, CalibrationStatsAttr, StatsOp, UniformQuantizedType
from tflquant.tflite.int4 import Slab, packed
from tflquant.errors import TflquantError
from tflquant.fileio import release_view
from tflquant.tflite import schema, versions
from tflquant.tflite.flatbuf import Builder, Layout, table_layout

_CUSTOM = schema.BUILTIN_CODES["CUSTOM"]
_NAMES_OF_CODE = {v: k for k, v in schema.BUILTIN_CODES.items()}


_TYPE_CODES: dict[Attribute, int] = {}  # element type -> TensorType code, as _element_code finds it
_INT_CODES: dict[tuple[int, int], int] = {}  # an IntegerType's (width, signedness) -> its code
# the element classes without parameters -> their TensorType code
_CODE_OF_CLASS = {c: schema.TENSOR_TYPES[n] for c, n in ((Float32Type, "FLOAT32"), (Float16Type, "FLOAT16"), (Float64Type, "FLOAT64"), (BFloat16Type, "BFLOAT16"))}


# element type class -> 1 (a UniformQuantizedType), 2 (a BlockwiseQuantizedType) or 0:
# isinstance once per class (xDSL attribute classes are ABCs: each isinstance test is slow)
_QUANT_KIND: dict[type, int] = {}


def _quant_kind(elem: Attribute) -> int:
    cls = type(elem)
    k = _QUANT_KIND.get(cls)
    if k is None:
        k = _QUANT_KIND[cls] = 1 if issubclass(cls, UniformQuantizedType) else 2 if issubclass(cls, BlockwiseQuantizedType) else 0
    return k


def _type_code(elem: Attribute) -> int:
    code = _CODE_OF_CLASS.get(type(elem))  # (a float element: no attribute hash)
    if code is not None:
        return code
    if _quant_kind(elem):
        elem = elem.storage_type  # type: ignore[attr-defined]
    if type(elem) is IntegerType:  # by (width, signedness): no attribute hash
        key = (elem.width.data, elem.signedness.data.value)  # type: ignore[attr-defined]
        code = _INT_CODES.get(key)
        if code is None:
            code = _INT_CODES[key] = _element_code(elem)
        return code
    code = _TYPE_CODES.get(elem)
    if code is None:
        code = _TYPE_CODES[elem] = _element_code(elem)
    return code


def _element_code(elem: Attribute) -> int:
    TT = schema.TENSOR_TYPES
    if isinstance(elem, tfl.StringType):
        return TT["STRING"]
    if isinstance(elem, tfl.ResourceType):
        return TT["RESOURCE"]
    if isinstance(elem, tfl.VariantType):
        return TT["VARIANT"]
    if isinstance(elem, Float32Type):
        return TT["FLOAT32"]
    if isinstance(elem, Float16Type):
        return TT["FLOAT16"]
    if isinstance(elem, Float64Type):
        return TT["FLOAT64"]
    if isinstance(elem, BFloat16Type):
        return TT["BFLOAT16"]
    if isinstance(elem, ComplexType):
        return TT["COMPLEX128"] if isinstance(elem.element_type, Float64Type) else TT["COMPLEX64"]
    if isinstance(elem, IntegerType):
        w = elem.width.data
        unsigned = elem.signedness.data == Signedness.UNSIGNED
        table = {
            (1, False): "BOOL", (2, False): "INT2", (4, False): "INT4", (8, False): "INT8", (16, False): "INT16", (32, False): "INT32",
            (64, False): "INT64", (8, True): "UINT8", (16, True): "UINT16", (32, True): "UINT32", (64, True): "UINT64",
            (4, True): "UINT4",
        }  # fmt: skip
        if (w, unsigned) in table:
            return TT[table[(w, unsigned)]]
    raise TflquantError(f"element type {elem} cannot be written to a TFLite model")


@dataclass
class _Tensor:
    name: str | None
    ttype: TensorType
    buffer: int = 0
    is_variable: bool = False
    stats: CalibrationStatsAttr | None = None
    sparsity: DictionaryAttr | None = None
    block_scales: int = -1  # blockwise weight: index of its fp16 scales tensor


@dataclass
class _Operator:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    op: Operation
    intermediates: list[int] = field(default_factory=list)


@dataclass
class _Subgraph:
    name: str
    tensors: list[_Tensor] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    operators: list[_Operator] = field(default_factory=list)


class _Plan:
    """Everything the flatbuffer holds, in the order it is written."""

    def __init__(self) -> None:
        self.buffers: list[bytes | None] = [None]  # buffers[0]: the empty sentinel; b"": an empty data vector
        self._buffer_index: dict[tuple[int, int, bytes, bytes], tuple | dict] = {}
        self.opcodes: list[list] = []  # [code, custom_code, version]
        self._opcode_index: dict[tuple[int, str | None], int] = {}
        self.subgraphs: list[_Subgraph] = []
        self.packed = Slab()  # the int4 / int2 constants' packed bytes

    def buffer(self, data: bytes, ttype: TensorType) -> int:
        """The buffer holding `data` for a constant of type `ttype`: shared only by constants
        of the same element type (the same bytes read as another type are another buffer).
        Constants are told apart by type, size and first and last bytes; only those alike in
        all these are compared or hashed (hashing every payload costs ~0.25 ms per MB)."""
        n = len(data)
        group = (_type_code(ttype.element_type), n, bytes(data[:16]), bytes(data[max(n - 16, 16) :]))
        known = self._buffer_index.get(group)  # (payload, buffer) of the first such constant, then {payload: buffer}
        if known is None:
            idx = len(self.buffers)
            self.buffers.append(data)
            self._buffer_index[group] = (data, idx)
        elif type(known) is tuple:
            first, idx = known
            if first != data:  # (compared up to the first difference)
                idx = len(self.buffers)
                self.buffers.append(data)
                self._buffer_index[group] = {first: known[1], data: idx}
        else:
            idx = known.get(data)
            if idx is None:
                idx = known[data] = len(self.buffers)
                self.buffers.append(data)
        if type(data) is memoryview:  # a mapped input's pages need not stay resident
            release_view(data)
        return idx

    def opcode(self, code: int, custom: str | None, version: int) -> int:
        key = (code, custom)
        idx = self._opcode_index.get(key)
        if idx is None:
            idx = len(self.opcodes)
            self.opcodes.append([code, custom, version])
            self._opcode_index[key] = idx
        else:
            self.opcodes[idx][2] = max(self.opcodes[idx][2], version)
        return idx


def write_flatbuffer(
    module: ModuleOp, *, max_flatbuffer_size: int = schema.FLATBUFFER_SIZE_MAX, large: bool | None = None
) -> bytes:
    """The module as .tflite bytes (TflquantError if it holds something TFLite cannot).

    large: True forces the large-model layout (buffers after the flatbuffer, found by
    offset/size), False forbids it; None (default) uses it only past max_flatbuffer_size.
    For models of gigabytes prefer write_model(), which streams the buffers to the file."""
    from tflquant.tflite.verify import verify_model

    out = b"".join(_pieces(module, max_flatbuffer_size, large))
    verify_model(out)
    return out


def model_pieces(module: ModuleOp, *, max_flatbuffer_size: int | None = None) -> tuple[list[bytes | memoryview], bool]:
    """(the file's pieces in order, large layout?): views of the builder's memory with the
    constants' own payloads among them (in the large-model layout after the flatbuffer,
    with padding), never joined here and not yet verified. Write them with
    `fileio.atomic_write_parts(path, pieces, check=verify_model)`, which verifies the
    mapped file, or verify `b"".join(pieces)` when the bytes are needed: the model is
    never held twice in memory unless its caller asks for one bytes object. A model that
    is one piece (no constant big enough to stay out of the builder) is returned as its
    bytes, verified."""
    from tflquant.tflite.verify import verify_model

    head, tail = _layout(module, schema.FLATBUFFER_SIZE_MAX if max_flatbuffer_size is None else max_flatbuffer_size, None)
    if tail:
        return list(_large_parts(head, tail)), True
    if len(head) == 1:
        out = bytes(head[0])
        verify_model(out)
        return [out], False
    return list(head), False


def _pieces(module: ModuleOp, max_flatbuffer_size: int, large: bool | None):
    head, tail = _layout(module, max_flatbuffer_size, large)
    return _large_parts(head, tail) if tail else head


def write_model(
    module: ModuleOp, path: str | os.PathLike[str], *, max_flatbuffer_size: int = schema.FLATBUFFER_SIZE_MAX, large: bool | None = None
) -> int:
    """Write the module to `path` (atomically) and return the file size. In the large-model
    layout the constant buffers are streamed to the file one by one after the flatbuffer,
    so no copy of the whole model is ever held in memory; the file is verified (memory
    mapped) before it replaces `path`."""
    from tflquant.fileio import atomic_write_parts
    from tflquant.tflite.verify import verify_model

    return atomic_write_parts(path, _pieces(module, max_flatbuffer_size, large), check=verify_model)


def _layout(module: ModuleOp, max_flatbuffer_size: int, large: bool | None) -> tuple[list | bytes, list[tuple[int, object]]]:
    """(flatbuffer, [(file offset, buffer data)] to place after it): without such a tail
    the flatbuffer is a list of pieces (see _emit_parts), else bytes (without the data)."""
    plan = _plan(module)
    total = sum(len(b) for b in plan.buffers if b)
    if large is not True and (large is False or total < max_flatbuffer_size):
        try:
            out = _emit_parts(module, plan, offsets=None)
        except BuilderSizeError:  # the flatbuffer library's own 2 GB limit
            out = None
        if out is not None and (large is False or sum(len(p) for p in out) <= max_flatbuffer_size):
            return out, []
        if large is False:
            raise TflquantError(f"the model needs {total} bytes of constants, more than a {max_flatbuffer_size}-byte flatbuffer holds: write it in the large-model layout")
    return _emit_large(module, plan)


# ----------------------------------------------------------------------------------------
# Planning: tensors, buffers, operator codes
# ----------------------------------------------------------------------------------------


def _plan(module: ModuleOp) -> _Plan:
    plan = _Plan()
    funcs = [op for op in module.body.ops if isinstance(op, func.FuncOp)]
    if not funcs:
        raise TflquantError("the module has no func.func to write as a subgraph")
    for f in funcs:
        plan.subgraphs.append(_plan_function(plan, f))
    return plan


def _plan_function(plan: _Plan, f: func.FuncOp) -> _Subgraph:
    sg = _Subgraph(f.sym_name.data)
    index: dict[SSAValue, int] = {}
    fname = f.sym_name.data

    def new_tensor(v: SSAValue, t: _Tensor) -> int:
        idx = len(sg.tensors)
        sg.tensors.append(t)
        index[v] = idx
        return idx

    def tensor_type(v: SSAValue, what: str, *args: object) -> TensorType:
        t = v.type
        if type(t) is not TensorType and not isinstance(t, TensorType):
            raise TflquantError(f"function @{fname}: {what.format(*args)} has type {t}; TFLite tensors need a ranked tensor type")
        return t

    def lookup(v: SSAValue, op: Operation) -> int:
        idx = index.get(v)  # (a value of type none is never in the index: -1 below)
        if idx is not None:
            return idx
        if isinstance(v.type, NoneType):
            return -1
        raise TflquantError(f"function @{fname}: {op.name} uses a value defined outside the function body")

    if len(f.body.blocks) != 1:
        raise TflquantError(f"function @{fname} must have exactly one block to be written as a subgraph")
    block = f.body.blocks[0]
    for arg in block.args:
        sg.inputs.append(new_tensor(arg, _Tensor(_arg_name(f, arg.index), tensor_type(arg, "argument #{}", arg.index))))

    for op in block.ops:
        kind = _KIND_OF_CLASS.get(type(op)) or _op_kind(op)
        if kind == "return":
            sg.outputs = [lookup(v, op) for v in op.operands]
            continue
        elif kind == "no_value":
            continue
        elif kind == "stats":
            src = lookup(op.input, op)
            if src < 0:
                raise TflquantError(f"function @{fname}: quant.stats on an absent value")
            t = sg.tensors[src]
            if not isinstance(t.ttype.element_type, UniformQuantizedType):
                t.stats = op.stats
            index[op.result] = src
            continue
        elif kind == "const":
            data = op.value.data.data
            tt = tensor_type(op.result, "tfl.const")
            empty = not data and any(int(d) == 0 for d in tt.get_shape())  # a zero-element constant is still a constant
            elem = tt.element_type
            if isinstance(elem, (UniformQuantizedType, BlockwiseQuantizedType)) and elem.bits in (2, 4):
                data = memoryview(packed(op.numpy(), elem.bits, plan.packed))  # two / four values per byte, lowest bits first
            t = _Tensor(_result_name(op, 0), tt, buffer=plan.buffer(data, tt) if data or empty else 0)
            if isinstance(elem, BlockwiseQuantizedType):  # scales: an fp16 tensor the details name
                stt = elem.scales.type
                assert isinstance(stt, TensorType)
                t.block_scales = len(sg.tensors)
                sg.tensors.append(_Tensor(f"{t.name or 'weight'}_scales", stt, buffer=plan.buffer(elem.scales.data.data, stt)))
            new_tensor(op.result, t)
            continue
        elif kind == "sparse_const":
            data = op.value.data.data
            tt = tensor_type(op.result, "tfl.sparse_const")
            t = _Tensor(_result_name(op, 0), tt, buffer=plan.buffer(data, tt), sparsity=op.sparsity)
            new_tensor(op.result, t)
            continue
        elif kind == "variable":
            buf = 0
            if op.value is not None and op.value.data.data:
                buf = plan.buffer(op.value.data.data, tensor_type(op.result, "tfl.variable"))
            new_tensor(op.result, _Tensor(_result_name(op, 0), tensor_type(op.result, "tfl.variable"), buffer=buf, is_variable=True))
            continue
        if kind == "builtin":
            code, custom, version = op.CODE, None, versions.builtin_version(op)
        elif kind == "opaque":
            code = op.code.value.data
            custom = op.custom_code.data if op.custom_code is not None else None
            version = op.version.value.data
        else:
            hint = " (lower quant.qcast/quant.dcast to tfl.quantize/tfl.dequantize first)" if op.name.startswith("quant.") else ""
            raise TflquantError(f"function @{fname}: {op.name} cannot be written to a TFLite model{hint}")
        ins = [lookup(v, op) for v in op._operands]  # (the tuple op.operands wraps: no Python-level iteration)
        outs = []
        for k, r in enumerate(op.results):
            nm = _result_name(op, k)
            outs.append(new_tensor(r, _Tensor(nm, tensor_type(r, "result #{} of {}", k, op.name))))
        inter: list[int] = []
        ia = op.attributes.get("tfl.intermediates")
        if ia is not None:
            if not isinstance(ia, ArrayAttr):
                raise TflquantError(f"function @{fname}: {op.name} attribute tfl.intermediates must be an array")
            for e in ia.data:
                if not isinstance(e, DictionaryAttr) or not isinstance(e.data.get("type"), TensorType):
                    raise TflquantError(f"function @{fname}: {op.name}: each tfl.intermediates entry needs a tensor `type`")
                st = e.data.get("stats")
                t = _Tensor(_text(e.data.get("name")), e.data["type"],  # type: ignore[arg-type]
                            stats=st if isinstance(st, CalibrationStatsAttr) else None)
                inter.append(len(sg.tensors))
                sg.tensors.append(t)
        sg.operators.append(_Operator(plan.opcode(code, custom, version), ins, outs, op, inter))
    _name_tensors(sg)
    return sg


_KIND_OF_CLASS: dict[type, str] = {}


def _op_kind(op: Operation) -> str:
    """How _plan_function writes ops of this class (the isinstance tests, once per class)."""
    for cls, kind in ((func.ReturnOp, "return"), (tfl.NoValueOp, "no_value"), (StatsOp, "stats"), (tfl.ConstOp, "const"),
                      (tfl.SparseConstOp, "sparse_const"), (tfl.VariableOp, "variable"), (tfl.TflOp, "builtin"), (tfl.OpaqueOp, "opaque")):
        if isinstance(op, cls):
            break
    else:
        kind = "other"
    _KIND_OF_CLASS[type(op)] = kind
    return kind


def _text(a: Attribute | None) -> str | None:
    if type(a) is StringAttr or isinstance(a, StringAttr):  # (the exact class first: isinstance of an ABC is slow)
        return a.data
    if isinstance(a, BytesAttr):  # text IR reads names that are not valid UTF-8 as bytes
        return a.data.decode("utf-8", errors="surrogateescape")
    return None


def _arg_name(f: func.FuncOp, index: int) -> str | None:
    if f.arg_attrs is None or index >= len(f.arg_attrs.data):
        return None
    return _text(f.arg_attrs.data[index].data.get("tfl.name"))


def _result_name(op: Operation, index: int) -> str | None:
    names = op.attributes.get("names")
    if (type(names) is ArrayAttr or isinstance(names, ArrayAttr)) and index < len(names.data):
        return _text(names.data[index])
    return None


def _name_tensors(sg: _Subgraph) -> None:
    """Give unnamed tensors deterministic names that no other tensor uses."""
    used = {t.name for t in sg.tensors if t.name is not None}
    for i, t in enumerate(sg.tensors):
        if t.name is None:
            base = f"tensor_{i}"
            n, k = base, 1
            while n in used:
                n = f"{base}_{k}"
                k += 1
            t.name = n
            used.add(n)


# ----------------------------------------------------------------------------------------
# Emission
# ----------------------------------------------------------------------------------------


# Buffer data in the large-model layout starts at multiples of this (the TF converter's
# alignment: what XNNPACK's weight cache and mmap-ed loading like).
LARGE_ALIGNMENT = 64


def _emit_large(module: ModuleOp, plan: _Plan) -> tuple[bytes, list[tuple[int, object]]]:
    """Large-model layout: buffer data after the flatbuffer, found by absolute offset/size.
    Returns the flatbuffer and the (offset, data) of every buffer that follows it."""
    placeholder = {i: (1, len(b)) for i, b in enumerate(plan.buffers) if b}  # b"" stays an inline empty vector
    head = _emit(module, plan, offsets=placeholder)
    pos = _align(len(head))
    offsets: dict[int, tuple[int, int]] = {}
    tail: list[tuple[int, object]] = []
    for i, b in enumerate(plan.buffers):
        if b:
            offsets[i] = (pos, len(b))
            tail.append((pos, b))
            pos = _align(pos + len(b))
    head2 = _emit(module, plan, offsets=offsets)
    if len(head2) != len(head):
        raise TflquantError("internal error: large-model layout changed size between passes")
    return head2, tail


def _large_parts(head: bytes | memoryview, tail: list[tuple[int, object]]):
    """The file's pieces in order: flatbuffer, then each buffer after its padding."""
    yield head
    cur = len(head)
    for off, b in tail:
        if off > cur:
            yield b"\0" * (off - cur)
        yield b
        cur = off + len(b)  # type: ignore[arg-type]
    yield b"\0" * (_align(cur) - cur + LARGE_ALIGNMENT)  # trailing padding, as the TFLite exporter writes


def _align(n: int) -> int:
    return (n + LARGE_ALIGNMENT - 1) & ~(LARGE_ALIGNMENT - 1)


def _emit(module: ModuleOp, plan: _Plan, offsets: dict[int, tuple[int, int]] | None) -> bytes:
    return b"".join(_emit_parts(module, plan, offsets))


def _emit_parts(module: ModuleOp, plan: _Plan, offsets: dict[int, tuple[int, int]] | None) -> list[bytes | memoryview]:
    """The flatbuffer as pieces to write one after the other (the constants' data among them,
    not copied); with `offsets` (large-model layout) the buffers hold offset/size instead."""
    # Constant data is not copied into the builder: its vectors are reserved there (pages
    # never written: no memory) and the data joins the output pieces (Builder.bytes_vector
    # defer=True). Room for the tables too: names are long, and a builder that grows copies
    # itself into one twice the size.
    tables = sum(len(sg.tensors) + len(sg.operators) for sg in plan.subgraphs)
    data_size = 0 if offsets is not None else sum(len(b) + 16 for b in plan.buffers if b)
    # per-axis scales (f32) and zero points (i64): millions for a blockwise weight read through DEQUANTIZE
    qparams = sum(12 * e.num_scales + 32 for sg in plan.subgraphs for t in sg.tensors if _quant_kind(e := t.ttype.element_type) == 1)
    bld = Builder(data_size + qparams + (1 << 20) + 1024 * tables + sum(len(v) + 16 for v in _metadata_values(module)))
    B = schema.BUFFER_FIELDS

    # metadata buffers go after the constant buffers
    attrs = module.attributes
    metadata = _metadata(module)
    pairs = [(_NAMES_OF_CODE.get(c, str(c)), ver) for c, _cc, ver in plan.opcodes]
    mrv = versions.min_runtime_version(pairs).encode()
    metadata.append(("min_runtime_version", mrv.ljust(16, b"\0") if len(mrv) < 16 else mrv))

    buffer_offs: list[int] = []
    for i, b in enumerate(plan.buffers):
        if b is None:
            buffer_offs.append(bld.table([]))
        elif offsets is not None and b:
            off, size = offsets[i]
            buffer_offs.append(bld.table([(B["offset"], "u64", off, None), (B["size"], "u64", size, None)]))
        else:
            d = bld.bytes_vector(b, 16, defer=True)
            buffer_offs.append(bld.table_of(_DATA_LAYOUT, (d,)))
    meta_entries = []
    for k, v in metadata:
        d = bld.bytes_vector(v, 16)
        meta_entries.append((k, len(buffer_offs)))
        buffer_offs.append(bld.table([(B["data"], "off", d, 0)]))

    subgraph_offs = [_emit_subgraph(bld, sg) for sg in plan.subgraphs]

    C = schema.OPERATOR_CODE_FIELDS
    opcode_offs = []
    for code, custom, version in plan.opcodes:
        cc = bld.string(custom) if custom is not None else None
        opcode_offs.append(
            bld.table(
                [
                    (C["deprecated_builtin_code"], "i8", min(code, 127), 0),
                    (C["custom_code"], "off", cc, 0),
                    (C["version"], "i32", version, 1),
                    (C["builtin_code"], "i32", code, 0),
                ]
            )
        )

    MD = schema.METADATA_FIELDS
    meta_offs = []
    for k, bidx in meta_entries:
        s = bld.string(k)
        meta_offs.append(bld.table([(MD["name"], "off", s, 0), (MD["buffer"], "u32", bidx, 0)]))

    sig_offs = _emit_signatures(bld, module, plan)

    desc = attrs.get("tfl.description")
    desc_off = bld.string(desc.data) if isinstance(desc, StringAttr) else None
    M = schema.MODEL_FIELDS
    fields = [
        (M["version"], "u32", schema.SCHEMA_VERSION, 0),
        (M["operator_codes"], "off", bld.offsets(opcode_offs), 0),
        (M["subgraphs"], "off", bld.offsets(subgraph_offs), 0),
        (M["description"], "off", desc_off, 0),
        (M["buffers"], "off", bld.offsets(buffer_offs), 0),
        (M["metadata"], "off", bld.offsets(meta_offs), 0),
    ]
    if sig_offs is not None:
        fields.append((M["signature_defs"], "off", bld.offsets(sig_offs), 0))
    root = bld.table(fields)
    return bld.finish_parts(root, schema.FILE_IDENTIFIER)


def _metadata(module: ModuleOp) -> list[tuple[str, bytes]]:
    """Module metadata as (name, bytes), without the entries the writer recomputes."""
    metadata: list[tuple[str, bytes]] = []
    md = module.attributes.get("tfl.metadata")
    if md is not None:
        if not isinstance(md, DictionaryAttr):
            raise TflquantError("module attribute tfl.metadata must be a dictionary of name -> bytes")
        for k, v in md.data.items():
            if k in ("min_runtime_version", "buffer_location"):
                continue
            if isinstance(v, BytesAttr):
                metadata.append((k, v.data))
            elif isinstance(v, StringAttr):
                metadata.append((k, v.data.encode("utf-8", errors="surrogateescape")))
            else:
                raise TflquantError(f"metadata '{k}' must be bytes or a string, got {v}")
    return metadata


def _metadata_values(module: ModuleOp) -> list[bytes]:
    return [v for _k, v in _metadata(module)]


def _emit_signatures(bld: Builder, module: ModuleOp, plan: _Plan) -> list[int] | None:
    sigs = module.attributes.get("tfl.signatures")
    if sigs is None:
        return None
    if not isinstance(sigs, ArrayAttr):
        raise TflquantError("module attribute tfl.signatures must be an array of dictionaries")
    by_name = {sg.name: i for i, sg in enumerate(plan.subgraphs)}
    S, TM = schema.SIGNATURE_DEF_FIELDS, schema.TENSOR_MAP_FIELDS
    out = []
    for s in sigs.data:
        if not isinstance(s, DictionaryAttr):
            raise TflquantError("each tfl.signatures entry must be a dictionary")
        d = s.data
        key = _str(d.get("key"), "signature key")
        fn = _str(d.get("function"), f"signature '{key}' function")
        if fn not in by_name:
            raise TflquantError(f"signature '{key}' names function @{fn}, which the module does not have")
        sg = plan.subgraphs[by_name[fn]]

        def maps(names_key: str, idx_key: str, io: list[int], what: str) -> int:
            names = d.get(names_key)
            idxs = d.get(idx_key)
            nl = [_str(n, f"signature '{key}' {what} name") for n in (names.data if isinstance(names, ArrayAttr) else [])]
            il = [int(x) for x in idxs.get_values()] if isinstance(idxs, DenseArrayBase) else []
            if len(nl) != len(il):
                raise TflquantError(f"signature '{key}': {names_key} and {idx_key} differ in length")
            entries = []
            for n, i in zip(nl, il):
                if not 0 <= i < len(io):
                    raise TflquantError(f"signature '{key}' {what} '{n}' refers to position {i}, but @{fn} has {len(io)} {what}s")
                so = bld.string(n)
                entries.append(bld.table([(TM["name"], "off", so, 0), (TM["tensor_index"], "u32", io[i], None)]))
            return bld.offsets(entries)

        ins = maps("inputs", "input_indices", sg.inputs, "input")
        outs = maps("outputs", "output_indices", sg.outputs, "output")
        ko = bld.string(key)
        out.append(
            bld.table(
                [
                    (S["inputs"], "off", ins, 0),
                    (S["outputs"], "off", outs, 0),
                    (S["signature_key"], "off", ko, 0),
                    (S["subgraph_index"], "u32", by_name[fn], 0),
                ]
            )
        )
    return out


def _str(a: Attribute | None, what: str) -> str:
    t = _text(a)
    if t is None:
        raise TflquantError(f"{what} must be a string")
    return t


def _emit_subgraph(bld: Builder, sg: _Subgraph) -> int:
    tensor_offs = [_emit_tensor(bld, t) for t in sg.tensors]
    op_offs = [_emit_operator(bld, o) for o in sg.operators]
    SG = schema.SUBGRAPH_FIELDS
    name = bld.string(sg.name)
    return bld.table(
        [
            (SG["tensors"], "off", bld.offsets(tensor_offs), 0),
            (SG["inputs"], "off", bld.numpy(sg.inputs, "i32"), 0),
            (SG["outputs"], "off", bld.numpy(sg.outputs, "i32"), 0),
            (SG["operators"], "off", bld.offsets(op_offs), 0),
            (SG["name"], "off", name, 0),
        ]
    )


def _emit_tensor(bld: Builder, t: _Tensor) -> int:
    Q = schema.QUANTIZATION_FIELDS
    # id(tensor type) -> its shape vectors, for this build (the module's types outlive it)
    shapes: dict[int, tuple[int, int | None]] = bld.memo.setdefault("tensor shapes", {})
    vecs = shapes.get(id(t.ttype))
    if vecs is None:
        dims = [int(d) for d in t.ttype.get_shape()]
        dynamic = any(d == DYNAMIC_INDEX or d < 0 for d in dims)
        vecs = shapes[id(t.ttype)] = (
            bld.numpy([1 if (d == DYNAMIC_INDEX or d < 0) else d for d in dims], "i32"),
            bld.numpy([-1 if (d == DYNAMIC_INDEX or d < 0) else d for d in dims], "i32") if dynamic else None,
        )
    shape, sig = vecs
    elem = t.ttype.element_type
    q = None
    qk = _quant_kind(elem)
    if qk == 1:  # a UniformQuantizedType
        scale = bld.numpy(elem.scale_array().astype(np.float32), "f32")
        zp = bld.numpy(elem.zero_point_array(), "i64")
        q = bld.table_of(_AFFINE_LAYOUT, (scale, zp, elem.axis.data if elem.per_axis else 0))
    elif qk == 2:  # a BlockwiseQuantizedType
        details = bld.table(
            [
                (schema.BLOCKWISE_QUANTIZATION_FIELDS["scales"], "i32", t.block_scales, 0),
                (schema.BLOCKWISE_QUANTIZATION_FIELDS["zero_points"], "i32", -1, 0),
                (schema.BLOCKWISE_QUANTIZATION_FIELDS["block_size"], "i32", elem.block_size.data, 0),
            ]
        )
        q = bld.table([(Q["details_type"], "u8", schema.BLOCKWISE_QUANTIZATION, 0), (Q["details"], "off", details, 0)])
    elif t.stats is not None:
        mn = bld.numpy(t.stats.min_array().astype(np.float32), "f32")
        mx = bld.numpy(t.stats.max_array().astype(np.float32), "f32")
        q = bld.table(
            [
                (Q["min"], "off", mn, 0),
                (Q["max"], "off", mx, 0),
                (Q["quantized_dimension"], "i32", max(t.stats.axis.data, 0), 0),
            ]
        )
    sparsity = _emit_sparsity(bld, t.sparsity) if t.sparsity is not None else None
    name = bld.string(t.name or "")
    return bld.table_of(_TENSOR_LAYOUT, (shape, _type_code(elem), t.buffer, name, q or 0, t.is_variable, sparsity or 0, sig or 0))


_DATA_LAYOUT = table_layout([(schema.BUFFER_FIELDS["data"], "off")])
_Q = schema.QUANTIZATION_FIELDS
_AFFINE_LAYOUT = table_layout([(_Q["scale"], "off"), (_Q["zero_point"], "off"), (_Q["quantized_dimension"], "i32")])
_T = schema.TENSOR_FIELDS
# the fields of a tensor table _emit_tensor writes, in its order (defaults: 0, False)
_TENSOR_LAYOUT = table_layout(
    [(_T["shape"], "off"), (_T["type"], "i8"), (_T["buffer"], "u32"), (_T["name"], "off"), (_T["quantization"], "off"),
     (_T["is_variable"], "bool"), (_T["sparsity"], "off"), (_T["shape_signature"], "off")]
)  # fmt: skip


def _ints_of(a: Attribute | None) -> list[int]:
    if isinstance(a, DenseArrayBase):
        return [int(x) for x in a.get_values()]
    return []


def _int_of(a: Attribute | None, default: int = 0) -> int:
    if isinstance(a, IntegerAttr):
        return int(a.value.data)
    return default


def _emit_sparsity(bld: Builder, sp: DictionaryAttr) -> int:
    S, D = schema.SPARSITY_FIELDS, schema.DIMENSION_METADATA_FIELDS
    d = sp.data
    dims = []
    dm_attr = d.get("dim_metadata")
    for dm in dm_attr.data if isinstance(dm_attr, ArrayAttr) else []:
        if not isinstance(dm, DictionaryAttr):
            raise TflquantError("sparsity dim_metadata entries must be dictionaries")
        fields = [
            (D["format"], "i8", _int_of(dm.data.get("format")), 0),
            (D["dense_size"], "i32", _int_of(dm.data.get("dense_size")), 0),
        ]
        for key in ("array_segments", "array_indices"):
            kc = _int_of(dm.data.get(key + "_type"))
            if kc == 0:
                continue
            if kc not in schema.SPARSE_INDEX_KINDS:
                raise TflquantError(f"sparsity {key}_type {kc} is not a SparseIndexVector type")
            vec = bld.numpy(_ints_of(dm.data.get(key)), schema.SPARSE_INDEX_KINDS[kc])
            tbl = bld.table([(0, "off", vec, 0)])
            fields.append((D[key + "_type"], "u8", kc, 0))
            fields.append((D[key], "off", tbl, 0))
        dims.append(bld.table(fields))
    trav = bld.numpy(_ints_of(d.get("traversal_order")), "i32")
    bmap = _ints_of(d.get("block_map"))
    bm = bld.numpy(bmap, "i32") if bmap else None
    return bld.table(
        [
            (S["traversal_order"], "off", trav, 0),
            (S["block_map"], "off", bm, 0),
            (S["dim_metadata"], "off", bld.offsets(dims), 0),
        ]
    )


def _emit_options(bld: Builder, table: str, values: dict[str, object], tables: dict) -> int:
    layout = _options_layout(table, tables)
    row = list(layout.defaults)  # a field not given: its default, left out
    for k, (fname, _slot, ftype, _default) in enumerate(tables[table]):
        if fname not in values:
            continue
        v = values[fname]
        if ftype == "string":
            row[k] = bld.string(str(v))
        elif ftype.startswith("["):
            elem = ftype[1:-1]
            row[k] = bld.numpy(list(v), "u8" if elem == "bool" else elem)  # type: ignore[arg-type]
        elif ftype == "bool":
            row[k] = bool(v)
        elif ftype in ("f32", "f64"):
            row[k] = float(v)  # type: ignore[arg-type]
        else:
            row[k] = int(v)  # type: ignore[call-overload]
    return bld.table_of(layout, row)


_OPTION_LAYOUTS: dict[tuple[str, int], Layout] = {}


def _options_layout(table: str, tables: dict) -> Layout:
    """The layout of an options table: every field of the schema's table, in its order,
    with its default (strings and vectors: offsets, absent when 0)."""
    key = (table, id(tables))
    layout = _OPTION_LAYOUTS.get(key)
    if layout is None:
        fields = tables[table]
        vectors = [ftype == "string" or ftype.startswith("[") for _f, _s, ftype, _d in fields]
        layout = _OPTION_LAYOUTS[key] = table_layout(
            [(slot, "off" if vec else ftype) for (_f, slot, ftype, _d), vec in zip(fields, vectors)],
            [0 if vec else bool(d) if ftype == "bool" else float(d) if ftype in ("f32", "f64") else int(d)
             for (_f, _s, ftype, d), vec in zip(fields, vectors)],
        )
    return layout


def _option_value(table: str, field: str, ftype: str, a: Attribute) -> object:
    """An option attribute as the value to store, or a clear error."""
    try:
        return tfl.attr_to_option(table, field, ftype, a)
    except (AssertionError, ValueError, TypeError) as e:
        raise TflquantError(f"option {field} of {table} has an invalid value {a}: {e}") from None


_OP = schema.OPERATOR_FIELDS
# the fields _emit_operator gives a builtin op's table (absent ones None), in its order
_OPERATOR_LAYOUT = table_layout(
    [(_OP["opcode_index"], "u32"), (_OP["inputs"], "off"), (_OP["outputs"], "off"), (_OP["intermediates"], "off"),
     (_OP["builtin_options_type"], "u8"), (_OP["builtin_options"], "off")]
)  # fmt: skip


def _emit_operator(bld: Builder, o: _Operator) -> int:
    OP = schema.OPERATOR_FIELDS
    op = o.op
    ins, outs = bld.numpy(o.inputs, "i32"), bld.numpy(o.outputs, "i32")
    inter = bld.numpy(o.intermediates, "i32") if o.intermediates else 0
    if _KIND_OF_CLASS.get(type(op)) == "builtin":  # (_plan_function judged its class: a tfl.TflOp)
        if op.OPTIONS is None:
            return bld.table_of(_OPERATOR_LAYOUT, (o.opcode, ins, outs, inter, 0, 0))
        else:
            # option values by (field, attribute): the reader shares one attribute per value
            known: dict[tuple[str, str, int], tuple[Attribute, object]] = bld.memo.setdefault("option values", {})  # type: ignore[assignment]
            vals = {}
            fields_of, table = op.FIELDS, op.OPTIONS
            for fname, a in op.properties.items():
                fd = fields_of.get(fname)
                if fd is None:
                    continue
                hit = known.get((table, fname, id(a)))
                if hit is None or hit[0] is not a:
                    hit = known[(table, fname, id(a))] = (a, _option_value(table, fname, fd[0], a))
                vals[fname] = hit[1]
            opts = _emit_options(bld, table, vals, schema.OPTION_TABLES)
            return bld.table_of(_OPERATOR_LAYOUT, (o.opcode, ins, outs, inter, schema.OPTIONS_UNION[table], opts))
    else:
        assert isinstance(op, tfl.OpaqueOp)
        fields: list = [
            (OP["opcode_index"], "u32", o.opcode, 0),
            (OP["inputs"], "off", ins, 0),
            (OP["outputs"], "off", outs, 0),
            (OP["intermediates"], "off", inter or None, 0),
        ]
        is2 = op.options2 is not None and op.options2.value.data != 0
        otype = op.options_type.value.data if op.options_type is not None else 0
        if otype:
            union = schema.OPTIONS2_UNION if is2 else schema.OPTIONS_UNION
            tables = schema.OPTION2_TABLES if is2 else schema.OPTION_TABLES
            tname = next((k for k, v in union.items() if v == otype), None)
            if tname is None or tname not in tables:
                raise TflquantError(f"tfl.opaque {op.op_name}: unknown options type {otype}")
            ftypes = {f: t for f, _s, t, _d in tables[tname]}
            vals = {}
            if op.options is not None:
                for fname, a in op.options.data.items():
                    if fname not in ftypes:
                        raise TflquantError(f"tfl.opaque {op.op_name}: {tname} has no field {fname!r}")
                    vals[fname] = _option_value(tname, fname, ftypes[fname], a)
            opts = _emit_options(bld, tname, vals, tables)
            if is2:
                fields.append((OP["builtin_options_2_type"], "u8", otype, 0))
                fields.append((OP["builtin_options_2"], "off", opts, 0))
            else:
                fields.append((OP["builtin_options_type"], "u8", otype, 0))
                fields.append((OP["builtin_options"], "off", opts, 0))
        if op.custom_options is not None:
            raw = op.custom_options.data
            raw = raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else raw
            fields.append((OP["custom_options"], "off", bld.bytes_vector(raw, 16), 0))
    return bld.table(fields)


