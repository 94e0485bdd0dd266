"""Structural checks of a .tflite flatbuffer: what LiteRT's model verifier checks, and more.

    problems = check_model(data)        # [] when the model is sound
    verify_model(data)                  # TflquantError naming the first problem

The writer runs `verify_model` on every model it writes, so tflquant never hands out a model
that LiteRT would refuse to load or that would corrupt its memory. The facts checked are
those of LiteRT's verifier (tflite/core/tools/verifier.cc), learned from its documentation
and source, in our own code:

- the file: identifier TFL3, schema version 3, a subgraphs and a buffers section, buffers[0]
  empty, buffer data inside the file (offset/size of the large-model layout included),
  metadata buffer indices in range;
- operator codes: a builtin code (builtin_code and deprecated_builtin_code agreeing),
  a custom code for CUSTOM, a version of at least 1;
- tensors: a known type, no negative dimension, a shape_signature of the same rank (-1 or
  the dimension), a buffer index in range; a constant's buffer holds exactly the bytes its
  shape and type need (strings: a well-formed string buffer with one entry per element;
  sparse tensors: well-formed sparsity metadata whose values fill the buffer);
- quantization: as many zero points as scales, per-axis scales along a dimension the tensor
  has and of its size, scales finite and positive, zero points inside the storage type;
- subgraph inputs and outputs, operator inputs (-1 for an absent optional one), outputs and
  intermediates in the subgraph's tensor range; every operator input is a constant, a
  variable, a subgraph input or the output of an earlier operator (a zero-element tensor
  may be none of these); no operator output is a constant, a variable or a subgraph input,
  or is produced twice;
- custom options stored after the flatbuffer (large models) inside the file;
- WHILE / IF / CALL_ONCE name subgraphs the model has; signature defs name an existing
  subgraph, unique keys, and tensors among that subgraph's inputs / outputs.

And what LiteRT only finds out at run time, by corrupting memory or computing garbage:
- one buffer shared by tensors of different types or byte sizes (a weight read as int8
  by one subgraph and as float32 by another must have two buffers);
- a variable tensor with a buffer (LiteRT refuses it at load);
- a resource variable (VAR_HANDLE by container and shared_name, shared by every subgraph)
  read or assigned with different types or quantization in different places: LiteRT copies
  raw bytes between them.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable

import math
import struct

import numpy as np

from tflquant.errors import LazyText, TflquantError
from tflquant.tflite import schema
from tflquant.tflite.flatbuf import Fields, FlatbufferError, Table, root_table

M, SG, T, Q = schema.MODEL_FIELDS, schema.SUBGRAPH_FIELDS, schema.TENSOR_FIELDS, schema.QUANTIZATION_FIELDS
B, OC, OP = schema.BUFFER_FIELDS, schema.OPERATOR_CODE_FIELDS, schema.OPERATOR_FIELDS
SD, TM = schema.SIGNATURE_DEF_FIELDS, schema.TENSOR_MAP_FIELDS
SP, DM = schema.SPARSITY_FIELDS, schema.DIMENSION_METADATA_FIELDS

_TYPE_NAMES = {v: k for k, v in schema.TENSOR_TYPES.items()}
_CODE_NAMES = {v: k for k, v in schema.BUILTIN_CODES.items()}
_CUSTOM = schema.BUILTIN_CODES["CUSTOM"]
# bits per element of the numeric types (STRING, RESOURCE, VARIANT have no fixed size)
_BITS = {
    "FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8, "INT16": 16,
    "COMPLEX64": 64, "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32,
    "UINT16": 16, "INT4": 4, "BFLOAT16": 16, "INT2": 2, "UINT4": 4, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8,
}  # fmt: skip
_INT_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767), "INT4": (-8, 7), "UINT4": (0, 15)}
# control-flow builtins -> (options table, subgraph index fields)
_SUBGRAPH_OPTIONS = {
    "WHILE": ("WhileOptions", ("cond_subgraph_index", "body_subgraph_index")),
    "IF": ("IfOptions", ("then_subgraph_index", "else_subgraph_index")),
    "CALL_ONCE": ("CallOnceOptions", ("init_subgraph_index",)),
}
_I32 = struct.Struct("<i")
# what the checks read of tensor, quantization and operator tables (Table.read)
_TENSOR_CHECK = Fields([(T["name"], "off"), (T["type"], "i8"), (T["shape"], "off"), (T["shape_signature"], "off"), (T["quantization"], "off"),
                        (T["buffer"], "u32"), (T["sparsity"], "off"), (T["is_variable"], "bool")])
_BUFFER_CHECK = Fields([(B["data"], "off"), (B["offset"], "u64"), (B["size"], "u64")])
_QUANTIZATION_CHECK = Fields([(Q["scale"], "off"), (Q["zero_point"], "off"), (Q["quantized_dimension"], "i32")])
_OPERATOR_CHECK = Fields([(OP["opcode_index"], "u32"), (OP["inputs"], "off"), (OP["outputs"], "off"), (OP["intermediates"], "off"),
                          (OP["large_custom_options_offset"], "u64"), (OP["large_custom_options_size"], "u64")])


class _Label:
    """A tensor's label, made when a message needs it (f-strings call __format__)."""

    __slots__ = ("labels", "index")

    def __init__(self, labels: Callable[[int], str], index: int):
        self.labels, self.index = labels, index

    def __format__(self, spec: str) -> str:
        return format(self.labels(self.index), spec)

    def __str__(self) -> str:
        return self.labels(self.index)


class _Problems(list):
    """Problems found, in model order (the checks go on after the first one)."""

    strict = True


def verify_model(data: bytes, what: str = "the written model") -> None:
    """Raise TflquantError("internal error: <what> fails ...: <first problem>") when the
    model has a problem `check_model` (strict) finds."""
    problems = check_model(data, strict=True)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise TflquantError(f"internal error: {what} fails LiteRT's model checks: {problems[0]}{more}")


def check_model(data: bytes, strict: bool = True) -> list[str]:
    """Every problem found in the model, as one sentence each ([] when it is sound).

    `strict=False` accepts one buffer shared by tensors of different types but the same
    byte size (the TF converter stores a 4-byte zero once for an int32 and a float32
    constant, and LiteRT reads constants in place); tflquant's writer never does that."""
    out = _Problems()
    out.strict = strict
    try:
        _check(data if isinstance(data, (bytes, mmap.mmap)) else bytes(data), out)  # a mapped file is read in place
    except FlatbufferError as e:
        out.append(f"the flatbuffer is malformed: {e}")
    return list(out)


# ----------------------------------------------------------------------------------------


class _Buffers:
    def __init__(self, data: bytes, tables: list[Table], out: _Problems):
        self.sizes: list[int | None] = []  # bytes of data (None: no data)
        self.spans: list[tuple[int, int] | None] = []
        self.data = data
        for i, b in enumerate(tables):
            try:  # (one struct for the three fields)
                data_at, off, size = b.read(_BUFFER_CHECK)
                span = None if data_at is None else b.span_at(data_at, B["data"], 1)
            except FlatbufferError:  # field by field, for the error that reading raises first
                span = b.vector_span(B["data"])
                off = int(b.scalar(B["offset"], "u64", 0))  # type: ignore[arg-type]
                size = int(b.scalar(B["size"], "u64", 0))  # type: ignore[arg-type]
            if span is not None and off > 1:
                out.append(f"buffer {i} has both inline data and an offset")
            if off > 1:
                if off + size > len(data):
                    out.append(f"buffer {i} points at bytes {off}..{off + size} outside the {len(data)}-byte file")
                    span = None
                else:
                    span = (off, size)
            self.spans.append(span)
            self.sizes.append(None if span is None else span[1])
        if tables and self.sizes[0]:
            out.append(f"buffer 0 must be empty (it is the 'no data' buffer), it holds {self.sizes[0]} bytes")

    def __len__(self) -> int:
        return len(self.sizes)

    def raw(self, i: int) -> bytes:
        span = self.spans[i]
        assert span is not None
        return self.data[span[0] : span[0] + span[1]]


def _check(data: bytes, out: _Problems) -> None:
    try:
        model = root_table(data, schema.FILE_IDENTIFIER)
    except FlatbufferError as e:
        out.append(f"not a TFLite flatbuffer: {e}")
        return
    version = model.scalar(M["version"], "u32", 0)
    if version != schema.SCHEMA_VERSION:
        out.append(f"schema version {version}, LiteRT reads version {schema.SCHEMA_VERSION}")
    if not model.has(M["subgraphs"]):
        out.append("the model has no 'subgraphs' section")
    if not model.has(M["buffers"]):
        out.append("the model has no 'buffers' section")
    buffers = _Buffers(data, model.tables(M["buffers"]), out)
    opcodes = _check_opcodes(model.tables(M["operator_codes"]), out)
    for i, md in enumerate(model.tables(M["metadata"])):
        bi = md.scalar(schema.METADATA_FIELDS["buffer"], "u32", 0)
        if not 0 <= int(bi) < len(buffers):  # type: ignore[call-overload]
            out.append(f"metadata {i} ('{md.string(schema.METADATA_FIELDS['name'])}') names buffer {bi}, the model has {len(buffers)}")
    subgraphs = model.tables(M["subgraphs"])
    shared = _SharedBuffers(out)
    variables = _ResourceVariables(out)
    io: list[tuple[list[int], list[int], int]] = []
    for si, sg in enumerate(subgraphs):
        io.append(_check_subgraph(si, sg, len(subgraphs), buffers, opcodes, shared, variables, out))
    variables.finish()
    _check_signatures(model.tables(M["signature_defs"]), subgraphs, io, out)


def _check_opcodes(codes: list[Table], out: _Problems) -> list[str]:
    names = []
    for i, c in enumerate(codes):
        dep = int(c.scalar(OC["deprecated_builtin_code"], "i8", 0))  # type: ignore[call-overload]
        code = int(c.scalar(OC["builtin_code"], "i32", 0))  # type: ignore[call-overload]
        version = int(c.scalar(OC["version"], "i32", 1))  # type: ignore[call-overload]
        eff = max(dep, code)  # how LiteRT reads the pair
        if dep < 127 and code != dep and code != 0:
            out.append(f"operator code {i}: builtin_code {code} and deprecated_builtin_code {dep} disagree")
        if eff < 0:  # codes this schema does not name yet (a newer LiteRT) round-trip untouched
            out.append(f"operator code {i}: negative builtin code {eff}")
        if eff == _CUSTOM and not c.string(OC["custom_code"]):
            out.append(f"operator code {i}: a CUSTOM operator without a custom_code")
        if version < 1:
            out.append(f"operator code {i} ({_CODE_NAMES.get(eff, eff)}): version {version} (versions start at 1)")
        names.append(c.string(OC["custom_code"]) if eff == _CUSTOM else _CODE_NAMES.get(eff, f"BUILTIN_{eff}"))
    return names  # type: ignore[return-value]


class _SharedBuffers:
    """Buffers used by several tensors: every user must read the same type (sizes are
    checked against the buffer itself)."""

    def __init__(self, out: _Problems):
        self.first: dict[int, tuple[str, int, str]] = {}  # buffer -> (type, bytes, tensor label)
        self.out = out

    def use(self, buffer: int, tname: str, nbytes: int, label: str) -> None:
        seen = self.first.get(buffer)
        if seen is None:
            self.first[buffer] = (tname, nbytes, label)
        elif seen[1] != nbytes or (seen[0] != tname and self.out.strict):
            self.out.append(
                f"{label} ({tname}, {nbytes} bytes) shares buffer {buffer} with {seen[2]} ({seen[0]}, {seen[1]} bytes): "
                "one buffer must not hold data of two types"
            )


class _ResourceVariables:
    """Every READ_VARIABLE result and ASSIGN_VARIABLE value of one variable (container and
    shared_name, across subgraphs) must have one type and one quantization."""

    def __init__(self, out: _Problems):
        self.uses: dict[str, list[tuple[tuple, str]]] = {}
        self.out = out

    def use(self, key: str, signature: tuple, label: str) -> None:
        self.uses.setdefault(key, []).append((signature, label))

    def finish(self) -> None:
        for key, uses in self.uses.items():
            first_sig, first_label = uses[0]
            for sig, label in uses[1:]:
                if sig != first_sig:
                    self.out.append(
                        f"resource variable '{key}' is {_sig_text(first_sig)} at {first_label} but {_sig_text(sig)} at {label}: "
                        "LiteRT copies its bytes unchanged, so every READ_VARIABLE and ASSIGN_VARIABLE of it needs the same type"
                    )
                    break


def _sig_text(sig: tuple) -> str:
    tname, shape, q = sig
    text = f"{tname}[{'x'.join(str(d) for d in shape)}]"
    if q:
        text += f" (scale {q[0]}, zero point {q[1]})"
    return text


def _tensor_label(tensors: list[Table], i: int, sname: str) -> str:
    name = tensors[i].string(T["name"]) if 0 <= i < len(tensors) else None
    return f"tensor '{name}' (#{i}) of subgraph '{sname}'" if name else f"tensor #{i} of subgraph '{sname}'"


def _check_subgraph(
    si: int, sg: Table, n_subgraphs: int, buffers: _Buffers, opcodes: list[str],
    shared: _SharedBuffers, variables: _ResourceVariables, out: _Problems,
) -> tuple[list[int], list[int], int]:  # fmt: skip
    sname = sg.string(SG["name"]) or f"#{si}"
    file_size = len(buffers.data)
    tensors = sg.tables(SG["tensors"])
    n = len(tensors)
    label = lambda i: _tensor_label(tensors, i, sname)  # noqa: E731
    constant: set[int] = set()
    variable: set[int] = set()
    empty: set[int] = set()
    types: list[str] = []
    shapes: list[list[int]] = []
    for i, t in enumerate(tensors):
        tname, shape, has_data, is_variable = _check_tensor(t, i, label, buffers, shared, out)
        types.append(tname)
        shapes.append(shape)
        if has_data:
            constant.add(i)
        if is_variable:
            variable.add(i)
            if has_data:
                out.append(f"{label(i)} is a variable tensor with a buffer (LiteRT refuses to load it)")
        if 0 in shape:
            empty.add(i)

    def in_range(idx: list[int] | None, what: str, where: object = None, allow_absent: bool = False) -> list[int]:
        """The indices in range; one problem for each other (`what`, formatted with
        `where`, names their list: made only then)."""
        vals = idx or []
        if not vals or (min(vals) >= (-1 if allow_absent else 0) and max(vals) < n):
            return vals  # all in range (the common case: `what` is not needed)
        what = what.format(where)
        ok = []
        for x in vals:
            if allow_absent and x == -1:
                ok.append(x)
            elif not 0 <= x < n:
                out.append(f"{what} names tensor {x}, the subgraph has {n} tensors")
            else:
                ok.append(x)
        return ok

    inputs = in_range(sg.ints(SG["inputs"]), "an input of subgraph '{}'", sname)
    outputs = in_range(sg.ints(SG["outputs"]), "an output of subgraph '{}'", sname)
    produced: set[int] = set()
    input_set = set(inputs)
    readable = constant | variable | input_set | empty  # what an operator may read besides earlier outputs
    handles: dict[int, str] = {}  # VAR_HANDLE output tensor -> variable key
    for oi, op in enumerate(sg.tables(SG["operators"])):
        code, ins_at, outs_at, inter_at, large_off, large_size = op.read(_OPERATOR_CHECK)
        if not 0 <= code < len(opcodes):
            out.append(f"operator #{oi} of subgraph '{sname}' has opcode_index {code}, the model has {len(opcodes)} operator codes")
            opname = "?"
        else:
            opname = opcodes[code]
        where = LazyText("operator #{} ({}) of subgraph '{}'", oi, opname, sname)  # the operator's name in a message, made when one needs it
        ins = in_range(op.ints_at(ins_at, OP["inputs"]), "an input of {}", where, allow_absent=True)
        outs = in_range(op.ints_at(outs_at, OP["outputs"]), "an output of {}", where)
        if inter_at is not None:
            in_range(op.ints_at(inter_at, OP["intermediates"]), "an intermediate of {}", where)
        if large_off > 1 and large_off + large_size > file_size:
            out.append(f"{where}: its custom options at bytes {large_off}..{large_off + large_size} lie outside the {file_size}-byte file")
        for x in ins:
            if x in readable or x in produced or x == -1:
                continue
            out.append(f"{where} reads {label(x)}, which is not a constant, a variable, a subgraph input or the output of an earlier operator")
        for x in outs:
            if x in constant:
                out.append(f"{where} writes {label(x)}, which is a constant (it has buffer data)")
            elif x in variable:
                out.append(f"{where} writes {label(x)}, which is a variable tensor")
            elif x in input_set:
                out.append(f"{where} writes {label(x)}, which is an input of the subgraph")
            elif x in produced:
                out.append(f"{where} writes {label(x)}, which an earlier operator already produces")
            produced.add(x)
        if opname in _SUBGRAPH_OPTIONS:
            table, fields = _SUBGRAPH_OPTIONS[opname]
            opts = op.table(OP["builtin_options"]) if op.scalar(OP["builtin_options_type"], "u8", 0) == schema.OPTIONS_UNION[table] else None
            slots = {f: s for f, s, _t, _d in schema.OPTION_TABLES[table]}
            for fld in fields:
                k = int(opts.scalar(slots[fld], "i32", 0)) if opts is not None else 0  # type: ignore[call-overload]
                if not 0 <= k < n_subgraphs or (opts is None):
                    out.append(f"{where}: {fld} {k if opts is not None else '(missing)'} is not a subgraph of the model ({n_subgraphs} subgraphs)")
        if opname == "VAR_HANDLE" and outs:
            opts = op.table(OP["builtin_options"]) if op.scalar(OP["builtin_options_type"], "u8", 0) == schema.OPTIONS_UNION["VarHandleOptions"] else None
            container = (opts.string(0) if opts is not None else None) or ""
            shared_name = (opts.string(1) if opts is not None else None) or ""
            handles[outs[0]] = f"{container}/{shared_name}" if container else shared_name
        elif opname in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
            value = (outs[0] if outs else None) if opname == "READ_VARIABLE" else (ins[1] if len(ins) > 1 else None)
            if ins and ins[0] in handles and value is not None and value >= 0:
                variables.use(handles[ins[0]], _tensor_signature(tensors[value], types[value], shapes[value]), label(value))
    return inputs, outputs, n


def _tensor_signature(t: Table, tname: str, shape: list[int]) -> tuple:
    q = t.table(T["quantization"])
    params = None
    if q is not None:
        sc, zp = q.vector(Q["scale"], "f32"), q.vector(Q["zero_point"], "i64")
        if sc is not None and len(sc):
            params = (tuple(float(s) for s in sc), tuple(int(z) for z in zp) if zp is not None else ())
    return (tname, tuple(shape), params)


def _check_tensor(t: Table, index: int, labels: Callable[[int], str], buffers: _Buffers, shared: _SharedBuffers, out: _Problems) -> tuple[str, list[int], bool, bool]:
    """(type name, shape, has buffer data, is_variable) of tensor `index`, reporting what is
    wrong with it (`labels(index)` names it: built only for a problem)."""
    name_at, code, shape_at, sig_at, q_at, bi, sparsity_at, is_variable = t.read(_TENSOR_CHECK)
    if name_at is not None:
        t.span_at(name_at, T["name"], 1)  # the name must lie inside the buffer (FlatbufferError), even unused
    tname = _TYPE_NAMES.get(code)
    if tname is None:
        out.append(f"{labels(index)} has unknown type {code}")
        tname = f"TYPE_{code}"
    shape = t.ints_at(shape_at, T["shape"]) or []
    if shape and min(shape) < 0:
        out.append(f"{labels(index)} has a negative dimension in its shape {shape}")
    sig = t.ints_at(sig_at, T["shape_signature"])
    if sig:
        if len(sig) != len(shape):
            out.append(f"{labels(index)}: shape_signature {list(sig)} has rank {len(sig)}, the shape {shape} has rank {len(shape)}")
        elif any(s != -1 and s != d for s, d in zip(sig, shape)):
            out.append(f"{labels(index)}: shape_signature {list(sig)} disagrees with the shape {shape}")
    if q_at is not None:
        _check_quantization(t.table_at(q_at), _Label(labels, index), tname, shape, out)  # type: ignore[arg-type]
    if not 0 <= bi < len(buffers):
        out.append(f"{labels(index)} names buffer {bi}, the model has {len(buffers)} buffers")
        return tname, shape, False, is_variable
    nbytes = buffers.sizes[bi]
    if bi == 0 or nbytes is None:
        return tname, shape, False, is_variable
    label = _Label(labels, index)  # (kept by shared.use for a later message)
    elems = math.prod(shape) if not shape or min(shape) >= 0 else math.prod(max(d, 0) for d in shape)
    sparsity = t.table_at(sparsity_at)
    if sparsity is not None:
        elems = _sparse_elements(sparsity, shape, label, out)
        if elems is None:
            return tname, shape, True, is_variable
    if tname == "STRING":
        _check_strings(buffers.raw(bi), elems, label, out)
    elif tname in _BITS:
        need = (elems * _BITS[tname] + 7) // 8
        if need != nbytes:
            out.append(f"{label} ({tname.lower()} {shape}) needs {need} bytes, its buffer {bi} holds {nbytes}")
    else:
        out.append(f"{label}: a {tname} tensor cannot hold constant data (buffer {bi})")
    shared.use(bi, tname, nbytes, label)
    return tname, shape, True, is_variable


def _check_quantization(q: Table, label: str, tname: str, shape: list[int], out: _Problems) -> None:
    sc_at, zp_at, qd = q.read(_QUANTIZATION_CHECK)
    sc, zp = q.vector_at(sc_at, Q["scale"], "f32"), q.vector_at(zp_at, Q["zero_point"], "i64")
    n_sc = 0 if sc is None else len(sc)
    n_zp = 0 if zp is None else len(zp)
    if n_sc == 0:
        if n_zp:
            out.append(f"{label} has {n_zp} zero point(s) and no scale")
        return
    if n_zp and n_zp != n_sc:
        out.append(f"{label} has {n_sc} scale(s) and {n_zp} zero point(s)")
    lo, hi = (sc[0], sc[0]) if n_sc == 1 else (sc.min(), sc.max())  # type: ignore[index, union-attr] # (numpy's reductions cost more than one value needs)
    if not (0 < lo and hi < math.inf):  # (NaN fails both)
        bad = next(float(s) for s in sc if not (math.isfinite(s) and s > 0))  # type: ignore[union-attr]
        out.append(f"{label} has scale {bad}; scales must be finite and positive")
    if n_sc > 1:
        if not 0 <= qd < len(shape):
            out.append(f"{label}: per-axis quantization along dimension {qd} of a rank-{len(shape)} tensor")
        elif shape[qd] != n_sc:
            out.append(f"{label}: {n_sc} scales along dimension {qd}, which has size {shape[qd]}")
    rng = _INT_RANGE.get(tname)
    if rng is not None and zp is not None and n_zp:
        zlo, zhi = (int(zp[0]),) * 2 if n_zp == 1 else (int(zp.min()), int(zp.max()))
        if zlo < rng[0] or zhi > rng[1]:
            out.append(f"{label}: zero point {zlo if zlo < rng[0] else zhi} is outside the {tname.lower()} range {rng}")


def _check_strings(raw: bytes, elems: int, label: str, out: _Problems) -> None:
    """A string buffer: int32 count, count+1 int32 offsets from the buffer start, the bytes."""
    if len(raw) < 4:
        out.append(f"{label}: a string buffer of {len(raw)} bytes has no string count")
        return
    count = _I32.unpack_from(raw, 0)[0]
    if count != elems:
        out.append(f"{label} has {elems} elements, its string buffer holds {count} strings")
        return
    header = 4 * (count + 2)
    if len(raw) < header:
        out.append(f"{label}: the string buffer ({len(raw)} bytes) is shorter than its {header}-byte header")
        return
    offs = np.frombuffer(raw, dtype="<i4", count=count + 1, offset=4)
    if int(offs[0]) != header or np.any(np.diff(offs) < 0) or int(offs[-1]) != len(raw):
        out.append(f"{label}: the string offsets do not run from the header end ({header}) to the buffer end ({len(raw)}) in order")


def _sparse_elements(sp: Table, shape: list[int], label: str, out: _Problems) -> int | None:
    """The number of values a sparse tensor stores (None when its metadata is malformed)."""
    order = [int(x) for x in (sp.vector(SP["traversal_order"], "i32") if sp.has(SP["traversal_order"]) else [])]
    bmap = [int(x) for x in (sp.vector(SP["block_map"], "i32") if sp.has(SP["block_map"]) else [])]
    dims = sp.tables(SP["dim_metadata"])
    rank = len(shape)
    if len(order) != rank + len(bmap) or len(dims) != len(order) or sorted(order) != list(range(len(order))):
        out.append(f"{label}: sparsity traversal_order {order} does not fit a rank-{rank} tensor with {len(bmap)} block dimension(s)")
        return None
    if any(not 0 <= b < rank for b in bmap):
        out.append(f"{label}: sparsity block_map {bmap} names a dimension the tensor does not have")
        return None
    block = {bmap[o - rank]: int(dims[k].scalar(DM["dense_size"], "i32", 0)) for k, o in enumerate(order) if o >= rank}  # type: ignore[call-overload]
    count = 1
    for k, d in enumerate(dims):
        fmt = int(d.scalar(DM["format"], "i8", 0))  # type: ignore[call-overload]
        size = int(d.scalar(DM["dense_size"], "i32", 0))  # type: ignore[call-overload]
        if fmt != schema.DIMENSION_TYPES["DENSE"] and order[k] < rank:  # a sparse dimension spans the tensor's (blocked) dimension
            size = shape[order[k]] // max(block.get(order[k], 1), 1)
        if fmt == schema.DIMENSION_TYPES["DENSE"]:
            if size < 0:
                out.append(f"{label}: sparsity dimension {k} has dense_size {size}")
                return None
            count *= size
            continue
        vecs = []
        for key in ("array_segments", "array_indices"):
            kind = schema.SPARSE_INDEX_KINDS.get(int(d.scalar(DM[key + "_type"], "u8", 0)))  # type: ignore[call-overload]
            tbl = d.table(DM[key])
            v = tbl.vector(0, kind) if kind is not None and tbl is not None else None
            if v is None:
                out.append(f"{label}: sparse dimension {k} has no {key}")
                return None
            vecs.append(v.astype(np.int64))
        seg, idx = vecs
        if len(seg) != count + 1 or (len(seg) and (seg[0] != 0 or np.any(np.diff(seg) < 0) or seg[-1] != len(idx))):
            out.append(f"{label}: sparse dimension {k}: array_segments must rise from 0 to {len(idx)} over {count + 1} entries")
            return None
        if len(idx) and (idx.min() < 0 or idx.max() >= size):
            out.append(f"{label}: sparse dimension {k}: an index is outside its dense size {size}")
            return None
        count = len(idx)
    return count


def _check_signatures(sigs: list[Table], subgraphs: list[Table], io: list[tuple[list[int], list[int], int]], out: _Problems) -> None:
    keys: set[str] = set()
    for i, s in enumerate(sigs):
        key = s.string(SD["signature_key"]) or ""
        if key in keys:
            out.append(f"signature key '{key}' is used twice")
        keys.add(key)
        si = int(s.scalar(SD["subgraph_index"], "u32", 0))  # type: ignore[call-overload]
        if not 0 <= si < len(subgraphs):
            out.append(f"signature '{key}' names subgraph {si}, the model has {len(subgraphs)}")
            continue
        inputs, outputs, n = io[si]
        for field, allowed, what in ((SD["inputs"], set(inputs), "input"), (SD["outputs"], set(outputs), "output")):
            names: set[str] = set()
            for m in s.tables(field):
                name = m.string(TM["name"]) or ""
                ti = int(m.scalar(TM["tensor_index"], "u32", 0))  # type: ignore[call-overload]
                if name in names:
                    out.append(f"signature '{key}' has two {what}s named '{name}'")
                names.add(name)
                if not 0 <= ti < n:
                    out.append(f"signature '{key}' {what} '{name}' names tensor {ti}, its subgraph has {n} tensors")
                elif ti not in allowed:
                    out.append(f"signature '{key}' {what} '{name}' names tensor {ti}, which is not an {what} of its subgraph")
