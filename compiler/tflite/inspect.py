"""`tflquant inspect`: a text view of a .tflite model (a text Netron).

Shows the model header, operator codes with versions, signatures, metadata, and per
subgraph its operators (options, inputs, outputs) and tensors (type, shape, shape
signature, quantization, constant size), then a size summary.
"""

from __future__ import annotations

import os

import numpy as np

from tflquant.errors import TflquantError
from tflquant.tflite import schema
from tflquant.tflite.flatbuf import FlatbufferError, Table, root_table

_TYPE_NAMES = {v: k for k, v in schema.TENSOR_TYPES.items()}
_CODE_NAMES = {v: k for k, v in schema.BUILTIN_CODES.items()}
_OPTIONS_BY_INDEX = {v: k for k, v in schema.OPTIONS_UNION.items()}
_OPTIONS2_BY_INDEX = {v: k for k, v in schema.OPTIONS2_UNION.items()}
_ENUMS = {
    "padding": schema.PADDINGS,
    "fused_activation_function": schema.ACTIVATIONS,
    "weights_format": schema.FC_WEIGHTS_FORMATS,
    "kernel_type": schema.LSTM_KERNEL_TYPES,
}
_TYPE_FIELDS = ("quantized_bias_type", "output_type", "out_type", "in_data_type", "out_data_type", "idx_out_type")
_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2, "COMPLEX64": 8,
             "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8, "UINT32": 4, "UINT16": 2, "BFLOAT16": 2}  # fmt: skip


def inspect_model(path: str | os.PathLike[str]) -> str:
    """The text description of the model at `path` (TflquantError on unreadable/bad files)."""
    from tflquant.fileio import read_bytes
    from tflquant.tflite.reader import read_flatbuffer

    name = os.fspath(path)
    data = read_bytes(path, "TFLite model")
    read_flatbuffer(data, name)  # full validation, with the reader's clear errors
    try:
        return _Inspector(data, name).run()
    except FlatbufferError as e:
        raise TflquantError(f"{name}: corrupted or truncated TFLite model: {e}") from None


def _fmt_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def _fmt_floats(v: np.ndarray, limit: int = 4) -> str:
    items = [f"{float(x):.6g}" for x in v[:limit]]
    more = f", ... ({len(v)} values)" if len(v) > limit else ""
    return "[" + ", ".join(items) + more + "]"


class _Inspector:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self.root = root_table(data)
        self.buffers = self.root.tables(schema.MODEL_FIELDS["buffers"])

    def buffer_size(self, idx: int) -> tuple[int, bool]:
        """(bytes of data, stored outside the flatbuffer)."""
        if idx <= 0 or idx >= len(self.buffers):
            return 0, False
        b = self.buffers[idx]
        span = b.vector_span(schema.BUFFER_FIELDS["data"])
        if span is not None and span[1]:
            return span[1], False
        if b.scalar(schema.BUFFER_FIELDS["offset"], "u64", 0) > 1:
            return int(b.scalar(schema.BUFFER_FIELDS["size"], "u64", 0)), True  # type: ignore[arg-type]
        return 0, False

    def buffer_bytes(self, idx: int) -> bytes:
        if idx <= 0 or idx >= len(self.buffers):
            return b""
        b = self.buffers[idx]
        span = b.vector_span(schema.BUFFER_FIELDS["data"])
        if span is not None and span[1]:
            return self.data[span[0] : span[0] + span[1]]
        off = int(b.scalar(schema.BUFFER_FIELDS["offset"], "u64", 0))  # type: ignore[arg-type]
        if off > 1:
            return self.data[off : off + int(b.scalar(schema.BUFFER_FIELDS["size"], "u64", 0))]  # type: ignore[arg-type]
        return b""

    def run(self) -> str:
        M = schema.MODEL_FIELDS
        root = self.root
        lines: list[str] = []
        w = lines.append
        opcodes = []
        for oc in root.tables(M["operator_codes"]):
            code = max(oc.scalar(3, "i32", 0), oc.scalar(0, "i8", 0))  # type: ignore[type-var]
            cc = oc.string(1)
            nm = cc if code == schema.BUILTIN_CODES["CUSTOM"] and cc else _CODE_NAMES.get(code, f"BUILTIN_{code}")  # type: ignore[call-overload]
            opcodes.append((nm, oc.scalar(2, "i32", 1)))
        subgraphs = root.tables(M["subgraphs"])
        const_total = sum(self.buffer_size(i)[0] for i in range(len(self.buffers)))
        outside = any(self.buffer_size(i)[1] for i in range(len(self.buffers)))
        w(f"model: {self.name}")
        w(f"  file size: {_fmt_bytes(len(self.data))} ({len(self.data)} bytes), schema version {root.scalar(M['version'], 'u32', 0)}"
          + (", buffers stored after the flatbuffer (large-model layout)" if outside else ""))
        desc = root.string(M["description"])
        if desc:
            w(f"  description: {desc!r}")
        w(f"  subgraphs: {len(subgraphs)}, operator codes: {len(opcodes)}, buffers: {len(self.buffers)}, constant data: {_fmt_bytes(const_total)}")
        w("operator codes:")
        for i, (nm, ver) in enumerate(opcodes):
            w(f"  [{i}] {nm} v{ver}")
        sigs = root.tables(M["signature_defs"])
        w(f"signatures: {len(sigs) if sigs else 'none'}")
        for s in sigs:
            S = schema.SIGNATURE_DEF_FIELDS
            ins = ", ".join(f"{t.string(0)} -> t{t.scalar(1, 'u32', 0)}" for t in s.tables(S["inputs"]))
            outs = ", ".join(f"{t.string(0)} <- t{t.scalar(1, 'u32', 0)}" for t in s.tables(S["outputs"]))
            w(f"  {s.string(S['signature_key'])!r} (subgraph {s.scalar(S['subgraph_index'], 'u32', 0)}): inputs [{ins}] outputs [{outs}]")
        metas = root.tables(M["metadata"])
        w(f"metadata: {len(metas) if metas else 'none'}")
        for md in metas:
            raw = self.buffer_bytes(md.scalar(1, "u32", 0))  # type: ignore[arg-type]
            text = raw.rstrip(b"\0")
            if text and len(text) <= 64 and all(32 <= c < 127 for c in text):
                w(f"  {md.string(0)}: {text.decode()!r}")
            else:
                w(f"  {md.string(0)}: {len(raw)} bytes")
        for si, sg in enumerate(subgraphs):
            self._subgraph(si, sg, opcodes, w)
        return "\n".join(lines) + "\n"

    def _tensor_line(self, t: Table, idx: int) -> tuple[str, int]:
        T = schema.TENSOR_FIELDS
        tname = _TYPE_NAMES.get(t.scalar(T["type"], "i8", 0), "?")  # type: ignore[call-overload]
        shape = t.vector(T["shape"], "i32")
        sig = t.vector(T["shape_signature"], "i32")
        dims = [int(d) for d in shape] if shape is not None else []
        if sig is not None and len(sig) == len(dims):
            dims = [-1 if int(s) == -1 else d for d, s in zip(dims, sig)]
        shape_s = "[" + ",".join("?" if d == -1 else str(d) for d in dims) + "]"
        size, out = self.buffer_size(t.scalar(T["buffer"], "u32", 0))  # type: ignore[arg-type]
        parts = [f"t{idx} {t.string(T['name'])!r} {tname}{shape_s}"]
        if t.scalar(T["is_variable"], "bool", False):
            parts.append("variable")
        if size:
            parts.append(f"const {_fmt_bytes(size)}" + (" (outside)" if out else ""))
        elif 0 in dims:
            parts.append("0 elements")  # a constant when no operator writes it (e.g. RESHAPE's shape [])
        if t.table(T["sparsity"]) is not None:
            parts.append("sparse")
        q = t.table(T["quantization"])
        if q is not None:
            Q = schema.QUANTIZATION_FIELDS
            scale = q.vector(Q["scale"], "f32")
            zp = q.vector(Q["zero_point"], "i64")
            mn, mx = q.vector(Q["min"], "f32"), q.vector(Q["max"], "f32")
            if scale is not None and len(scale):
                if len(scale) == 1:
                    parts.append(f"q(scale={float(scale[0]):.6g}, zp={int(zp[0]) if zp is not None and len(zp) else 0})")
                else:
                    parts.append(f"q(per-axis dim {q.scalar(Q['quantized_dimension'], 'i32', 0)}, {len(scale)} scales {_fmt_floats(scale)})")
            if mn is not None and mx is not None and len(mn):
                parts.append(f"range {_fmt_floats(mn, 2)}..{_fmt_floats(mx, 2)}" if len(mn) > 1 else f"range [{float(mn[0]):.6g}, {float(mx[0]):.6g}]")
        return "  ".join(parts), size

    def _subgraph(self, si: int, sg: Table, opcodes: list, w) -> None:  # type: ignore[no-untyped-def]
        SG, OP = schema.SUBGRAPH_FIELDS, schema.OPERATOR_FIELDS
        tensors = sg.tables(SG["tensors"])
        ins = sg.vector(SG["inputs"], "i32")
        outs = sg.vector(SG["outputs"], "i32")
        ops = sg.tables(SG["operators"])
        w(f"subgraph {si} {sg.string(SG['name']) or ''!r}: {len(ops)} operators, {len(tensors)} tensors")
        w(f"  inputs: {[int(x) for x in ins] if ins is not None else []}  outputs: {[int(x) for x in outs] if outs is not None else []}")
        w("  operators:")
        counts: dict[str, int] = {}
        for j, op in enumerate(ops):
            oc = op.scalar(OP["opcode_index"], "u32", 0)
            nm, ver = opcodes[oc] if oc < len(opcodes) else (f"opcode#{oc}", 0)  # type: ignore[index]
            counts[nm] = counts.get(nm, 0) + 1
            opts = self._options(op)
            w(f"    #{j} {nm} v{ver}" + (f"  {opts}" if opts else ""))
            for label, slot in (("in ", OP["inputs"]), ("out", OP["outputs"])):
                v = op.vector(slot, "i32")
                items = []
                for t in (v if v is not None else []):
                    t = int(t)
                    if t < 0:
                        items.append("-")
                    elif t < len(tensors):
                        items.append(f"t{t} {tensors[t].string(schema.TENSOR_FIELDS['name'])!r}")
                    else:
                        items.append(f"t{t} (out of range)")
                w(f"        {label}: " + ", ".join(items))
        w("  tensors:")
        sizes = []
        for k, t in enumerate(tensors):
            line, size = self._tensor_line(t, k)
            w(f"    {line}")
            if size:
                sizes.append((size, k))
        w("  op counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        types: dict[str, int] = {}
        for t in tensors:
            q = t.table(schema.TENSOR_FIELDS["quantization"])
            sc = q.vector(schema.QUANTIZATION_FIELDS["scale"], "f32") if q is not None else None
            key = _TYPE_NAMES.get(t.scalar(schema.TENSOR_FIELDS["type"], "i8", 0), "?") + (" (quantized)" if sc is not None and len(sc) and np.any(sc) else "")  # type: ignore[call-overload]
            types[key] = types.get(key, 0) + 1
        w("  tensor types: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))
        if sizes:
            sizes.sort(reverse=True)
            w(f"  constants: {len(sizes)} tensors, {_fmt_bytes(sum(s for s, _ in sizes))}; largest: "
              + ", ".join(f"t{k} {_fmt_bytes(s)}" for s, k in sizes[:5]))

    def _options(self, op: Table) -> str:
        OP = schema.OPERATOR_FIELDS
        otype = op.scalar(OP["builtin_options_type"], "u8", 0)
        tables, byidx, t = schema.OPTION_TABLES, _OPTIONS_BY_INDEX, op.table(OP["builtin_options"])
        if not otype:
            otype = op.scalar(OP["builtin_options_2_type"], "u8", 0)
            tables, byidx, t = schema.OPTION2_TABLES, _OPTIONS2_BY_INDEX, op.table(OP["builtin_options_2"])
        parts = []
        tname = byidx.get(otype)  # type: ignore[call-overload]
        if otype and t is not None and tname in tables:
            for field, slot, ftype, default in tables[tname]:
                if not t.has(slot):
                    continue
                if ftype == "string":
                    parts.append(f"{field}={t.string(slot)!r}")
                elif ftype.startswith("["):
                    elem = ftype[1:-1]
                    v = t.vector(slot, "u8" if elem == "bool" else elem)
                    vals = [] if v is None else v.tolist()
                    parts.append(f"{field}={vals if len(vals) <= 8 else str(vals[:8])[:-1] + ', ...]'}")
                else:
                    v = t.scalar(slot, ftype, default)
                    if v == default:
                        continue
                    if field in _ENUMS:
                        v = {b: a for a, b in _ENUMS[field].items()}.get(v, v)  # type: ignore[call-overload]
                    elif field in _TYPE_FIELDS:
                        v = _TYPE_NAMES.get(v, v)  # type: ignore[call-overload]
                    parts.append(f"{field}={v}")
        custom = op.vector_span(OP["custom_options"])
        if custom is not None:
            parts.append(f"custom_options={custom[1]} bytes")
        return "(" + ", ".join(parts) + ")" if parts else ""
