"""Import a TFLite flatbuffer into the tflquant IR (a builtin.module of func.func).

Mapping (see docs/TEAM.md):
- each SubGraph becomes a func.func, in subgraph order, named by SubGraph.name (else
  "main" for subgraph 0 and "subgraph_N"); inputs are block arguments with `tfl.name`;
  outputs are the operands of func.return;
- a tensor an operator produces is that op's result; op attribute `names` lists the tensor
  names; constant tensors become `tfl.const` (`tfl.sparse_const` when sparse), and so does
  a zero-element tensor nothing writes (its buffer empty, or buffer 0: LiteRT runs it as an
  empty tensor, e.g. RESHAPE's shape [] for a scalar); variable tensors `tfl.variable`, an
  absent optional input (-1) one `tfl.no_value` per function; these come first in the
  function, in order of first use;
- a modelled builtin with fewer inputs than LiteRT's kernel needs, or a required one left
  out (-1), and a tensor of 2^64 bytes or more are refused (LiteRT refuses them too);
- modelled builtins become typed `tfl.*` ops with their non-default options; every other
  operator (unmodelled builtin, custom op, BuiltinOptions2) becomes `tfl.opaque`;
- quantized tensors get a `!quant.uniform` element type; a tensor with only min/max is
  followed by a `quant.stats` op carrying the range;
- shape_signature -1 becomes a dynamic (`?`) dimension;
- STRING / RESOURCE / VARIANT tensors get `!tfl.string` / `!tfl.resource` / `!tfl.variant`
  elements (a string constant keeps its raw TFLite buffer as a 1-D ui8 payload);
  INT4 / INT2 are read when quantized (INT4 affine or LiteRT's BlockwiseQuantization, INT2
  affine: two / four values per byte, lowest bits first, unpacked to one per int8 in the IR);
  types without an IR element (UINT4, FLOAT8, unquantized INT4 / INT2) are refused with a
  clear error;
- Operator.intermediates (quantized LSTM) become the op attribute `tfl.intermediates`:
  `[{name = "...", type = tensor<...>, stats = #quant.stats<...>?}, ...]`.

Module attributes:
- `tfl.description`: the model description string (when present);
- `tfl.metadata`: dictionary name -> bytes of Model.metadata, without `min_runtime_version`
  and `buffer_location` (the writer recomputes them);
- `tfl.signatures`: array of dictionaries, one per SignatureDef, in file order:
  `{key = "serving_default", function = "main", inputs = ["x", ...], input_indices =
  array<i32: 0, ...>, outputs = [...], output_indices = array<i32: ...>}`, where the
  indices are positions among the function's arguments and results.
"""

from __future__ import annotations

import math
import mmap
import os

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    BoolAttr,
    BytesAttr,
    DYNAMIC_INDEX,
    ComplexType,
    DenseArrayBase,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    i32,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from tflquant.dialects import tfl
from tflquant.dialects._unchecked import append_ops, bytes_attr, class_test, dense_of_type, new_op, string_array, tensor_type, verify_module
from tflquant.dialects.quant import BlockwiseQuantizedType, CalibrationStatsAttr, StatsOp, UniformQuantizedType, storage_range
from tflquant.tflite.int4 import packed_size, unpack_bits
from tflquant.errors import LazyText, TflquantError
from tflquant.ir import dense_from_numpy
from tflquant.tflite import schema
from tflquant.tflite.flatbuf import Fields, FlatbufferError, Table, root_table

T = schema.TENSOR_FIELDS
OPF = schema.OPERATOR_FIELDS
# what _tensor reads of a tensor table and of its quantization table (Table.read)
_TENSOR_READ = Fields([(T["name"], "off"), (T["type"], "i8"), (T["shape"], "off"), (T["shape_signature"], "off"),
                       (T["buffer"], "u32"), (T["is_variable"], "bool"), (T["sparsity"], "off"), (T["quantization"], "off")])
_OPERATOR_READ = Fields([(OPF["opcode_index"], "u32"), (OPF["inputs"], "off"), (OPF["outputs"], "off"), (OPF["builtin_options_type"], "u8"),
                         (OPF["builtin_options"], "off"), (OPF["builtin_options_2_type"], "u8"), (OPF["builtin_options_2"], "off"),
                         (OPF["custom_options"], "off"), (OPF["large_custom_options_offset"], "u64"),
                         (OPF["large_custom_options_size"], "u64"), (OPF["intermediates"], "off")])
_Q = schema.QUANTIZATION_FIELDS
_QUANTIZATION_READ = Fields([(_Q["scale"], "off"), (_Q["details_type"], "u8"), (_Q["details"], "off"), (_Q["quantized_dimension"], "i32"),
                             (_Q["zero_point"], "off"), (_Q["min"], "off"), (_Q["max"], "off")])
DROPPED_METADATA = ("min_runtime_version", "buffer_location")

# TensorType enum -> (element type, numpy dtype of the payload)
ELEMENT_OF_TYPE: dict[int, tuple[Attribute, str]] = {
    0: (Float32Type(), "<f4"),
    1: (Float16Type(), "<f2"),
    2: (IntegerType(32), "<i4"),
    3: (IntegerType(8, Signedness.UNSIGNED), "u1"),
    4: (IntegerType(64), "<i8"),
    6: (IntegerType(1), "?"),
    7: (IntegerType(16), "<i2"),
    8: (ComplexType(Float32Type()), "<c8"),
    9: (IntegerType(8), "i1"),
    10: (Float64Type(), "<f8"),
    11: (ComplexType(Float64Type()), "<c16"),
    12: (IntegerType(64, Signedness.UNSIGNED), "<u8"),
    15: (IntegerType(32, Signedness.UNSIGNED), "<u4"),
    16: (IntegerType(16, Signedness.UNSIGNED), "<u2"),
    17: (IntegerType(4), "i1"),  # INT4: packed two per byte in the file, one per int8 in the IR (quantized only)
    19: (IntegerType(2), "i1"),  # INT2: packed four per byte, one per int8 in the IR (quantized only)
    18: (BFloat16Type(), "<u2"),
    # no numeric payload: a constant keeps its raw TFLite buffer (string buffer format)
    5: (tfl.StringType(), "u1"),
    13: (tfl.ResourceType(), "u1"),
    14: (tfl.VariantType(), "u1"),
}
# the element classes of ELEMENT_OF_TYPE that are not quantized types (the exact classes)
_PLAIN_ELEMENTS = frozenset(type(e) for e, _d in ELEMENT_OF_TYPE.values() if not isinstance(e, (UniformQuantizedType, BlockwiseQuantizedType)))
_PAYLOAD_DTYPES = {code: np.dtype(dtype) for code, (_e, dtype) in ELEMENT_OF_TYPE.items()}
_TYPE_NAMES = {v: k for k, v in schema.TENSOR_TYPES.items()}
_OPTIONS_BY_INDEX = {v: k for k, v in schema.OPTIONS_UNION.items()}
_OPTIONS2_BY_INDEX = {v: k for k, v in schema.OPTIONS2_UNION.items()}
_QUANT_STORAGE = {3, 9, 7, 2, 4, 17, 19}  # UINT8, INT8, INT16, INT32, INT64, INT4, INT2
# Constant payloads at least this big are views of the model's bytes, smaller ones copies.
PAYLOAD_VIEW_MIN = 64


def load_model(path: str | os.PathLike[str]) -> ModuleOp:
    """Read a .tflite file into a module (TflquantError naming the file on any problem)."""
    from tflquant.fileio import map_file

    return read_flatbuffer(map_file(path, "TFLite model"), name=os.fspath(path))


def read_flatbuffer(data: bytes | mmap.mmap, name: str = "<model>") -> ModuleOp:
    """Import a TFLite flatbuffer held in memory or memory-mapped (load_model maps the file).

    Constant payloads of PAYLOAD_VIEW_MIN bytes or more are not copied: their attributes hold
    read-only views of `data` (tflquant.ir.dense_from_buffer), so a mapped model's weights
    are read from the file's pages and never held twice."""
    if not isinstance(data, (bytes, mmap.mmap)):
        data = bytes(data)
    try:
        module = _Importer(data, name).run()
    except TflquantError:
        raise
    except FlatbufferError as e:
        raise TflquantError(f"{name}: corrupted or truncated TFLite model: {e}") from None
    except RecursionError:
        raise TflquantError(f"{name}: corrupted TFLite model: structure nested too deeply") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AssertionError, MemoryError, UnicodeError) as e:
        raise TflquantError(f"{name}: corrupted TFLite model: {type(e).__name__}: {e}") from None
    try:
        verify_module(module)
    except Exception as e:  # noqa: BLE001 - any verifier failure means the file holds bad values
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TflquantError(f"{name}: the model holds invalid values: {first}") from None
    return module


class _Tensor:
    __slots__ = ("name", "ttype", "buffer", "is_variable", "sparsity", "stats", "payload_dtype", "shape", "table", "type_code")


class _Importer:
    def __init__(self, data: bytes | mmap.mmap, name: str):
        self.data = data
        self.view = memoryview(data).toreadonly()
        self.name = name
        # immutable attributes built once per model: tensor types, option values
        self._types: dict[tuple[Attribute, tuple[int, ...]], TensorType] = {}
        self._options: dict[tuple[type, str, object], Attribute] = {}

    def _tensor_type(self, elem: Attribute, dims: list[int]) -> TensorType:
        """TensorType(elem, dims), one instance per distinct unquantized type."""
        if type(elem) not in _PLAIN_ELEMENTS and isinstance(elem, (UniformQuantizedType, BlockwiseQuantizedType)):
            return TensorType(elem, dims)
        key = (elem, tuple(dims))
        t = self._types.get(key)
        if t is None:
            if type(elem) in _PLAIN_ELEMENTS and all(type(d) is int for d in dims):
                # without xDSL's generic parameter checks, which cannot fail for these (a
                # TensorType takes any element and int dimensions): most of its cost
                t = tensor_type(elem, dims)
            else:
                t = TensorType(elem, dims)
            self._types[key] = t
        return t

    def _option_attr(self, cls: type[tfl.TflOp], field: str, value: object) -> Attribute:
        """The property TflOp.__init__ makes of a decoded option value."""
        if field not in cls.FIELDS:
            raise ValueError(f"{cls.name} has no option {field!r}; options: {sorted(cls.FIELDS)}")
        # a field's decoded values share one Python type; -0.0 and 0.0 are told apart
        key = (cls, field, tuple(map(_exact, value)) if isinstance(value, list) else _exact(value))
        a = self._options.get(key)
        if a is None:
            a = self._options[key] = cls.option_attr(field, value)
        return a

    def fail(self, msg: str) -> TflquantError:
        return TflquantError(f"{self.name}: {msg}")

    # ------------------------------------------------------------------ model level
    def run(self) -> ModuleOp:
        data = self.data
        if len(data) < 8:
            raise self.fail(f"not a TFLite model: only {len(data)} bytes")
        if data[4:8] != schema.FILE_IDENTIFIER:
            raise self.fail(f"not a TFLite model (file identifier {bytes(data[4:8])!r}, expected b'TFL3')")
        root = root_table(data)
        M = schema.MODEL_FIELDS
        version = root.scalar(M["version"], "u32", 0)
        if version != schema.SCHEMA_VERSION:
            raise self.fail(f"unsupported TFLite schema version {version} (expected {schema.SCHEMA_VERSION})")
        self.buffers = root.tables(M["buffers"])
        self.opcodes = []
        for oc in root.tables(M["operator_codes"]):
            C = schema.OPERATOR_CODE_FIELDS
            dep = oc.scalar(C["deprecated_builtin_code"], "i8", 0)
            code = max(oc.scalar(C["builtin_code"], "i32", 0), dep)
            self.opcodes.append(_opcode(code, oc.string(C["custom_code"]), oc.scalar(C["version"], "i32", 1)))
        subgraphs = root.tables(M["subgraphs"])
        if not subgraphs:
            raise self.fail("the model has no subgraphs")
        names: list[str] = []
        for i, sg in enumerate(subgraphs):
            n = sg.string(schema.SUBGRAPH_FIELDS["name"]) or ("main" if i == 0 else f"subgraph_{i}")
            base, k = n, 1
            while n in names:
                n = f"{base}_{k}"
                k += 1
            names.append(n)
        funcs = [self._subgraph(i, sg, names[i]) for i, sg in enumerate(subgraphs)]
        attrs: dict[str, Attribute] = {}
        if (desc := root.string(M["description"])) is not None:
            attrs["tfl.description"] = StringAttr(desc)
        meta: dict[str, Attribute] = {}
        for md in root.tables(M["metadata"]):
            mname = md.string(schema.METADATA_FIELDS["name"]) or ""
            if mname in DROPPED_METADATA:
                continue
            idx = md.scalar(schema.METADATA_FIELDS["buffer"], "u32", 0)
            meta[mname] = BytesAttr(self.buffer_bytes(idx, f"metadata '{mname}'") or b"")
        if meta:
            attrs["tfl.metadata"] = DictionaryAttr(meta)
        sigs = [self._signature(s, subgraphs, names) for s in root.tables(M["signature_defs"])]
        if sigs:
            attrs["tfl.signatures"] = ArrayAttr(sigs)
        return ModuleOp(funcs, attributes=attrs)

    def buffer_bytes(self, idx: int, what: str) -> bytes | None:
        """The data of buffer `idx`, inline or at offset/size; None when empty."""
        span = self.buffer_span(idx, what)
        return None if span is None else bytes(self.view[span[0] : span[0] + span[1]])

    def buffer_view(self, idx: int, what: str) -> bytes | memoryview | None:
        """buffer_bytes, as a read-only view of the model (no copy) when it is big."""
        span = self.buffer_span(idx, what)
        if span is None:
            return None
        raw = self.view[span[0] : span[0] + span[1]]
        return raw if span[1] >= PAYLOAD_VIEW_MIN else bytes(raw)

    def buffer_span(self, idx: int, what: str) -> tuple[int, int] | None:
        """(start, length) of buffer `idx`'s data in the model, inline or at offset/size."""
        if idx == 0:
            return None
        if idx >= len(self.buffers):
            raise self.fail(f"{what} refers to buffer {idx}, but the model has {len(self.buffers)} buffers")
        b = self.buffers[idx]
        B = schema.BUFFER_FIELDS
        span = b.vector_span(B["data"])
        if span is not None and span[1] > 0:
            return span
        off = b.scalar(B["offset"], "u64", 0)
        if off > 1:
            size = b.scalar(B["size"], "u64", 0)
            if off + size > len(self.data):
                raise self.fail(f"{what}: buffer {idx} lies at bytes {off}..{off + size}, past the end of the {len(self.data)}-byte file (truncated?)")
            return (off, size)
        return None

    def _signature(self, s: Table, subgraphs: list[Table], names: list[str]) -> DictionaryAttr:
        S = schema.SIGNATURE_DEF_FIELDS
        key = s.string(S["signature_key"]) or ""
        sg_idx = s.scalar(S["subgraph_index"], "u32", 0)
        if sg_idx >= len(subgraphs):
            raise self.fail(f"signature '{key}' refers to subgraph {sg_idx}, but the model has {len(subgraphs)}")
        sg = subgraphs[sg_idx]
        sg_in = sg.ints(schema.SUBGRAPH_FIELDS["inputs"]) or []
        sg_out = sg.ints(schema.SUBGRAPH_FIELDS["outputs"]) or []

        def maps(slot: int, io: list[int], what: str) -> tuple[list[str], list[int]]:
            ns, idxs = [], []
            for tm in s.tables(slot):
                tname = tm.string(schema.TENSOR_MAP_FIELDS["name"]) or ""
                t = tm.scalar(schema.TENSOR_MAP_FIELDS["tensor_index"], "u32", 0)
                if t not in io:
                    raise self.fail(f"signature '{key}' {what} '{tname}' is tensor {t}, which is not a subgraph {what}")
                ns.append(tname)
                idxs.append(io.index(t))
            return ns, idxs

        in_names, in_idx = maps(S["inputs"], sg_in, "input")
        out_names, out_idx = maps(S["outputs"], sg_out, "output")
        return DictionaryAttr(
            {
                "key": StringAttr(key),
                "function": StringAttr(names[sg_idx]),
                "inputs": ArrayAttr([StringAttr(n) for n in in_names]),
                "input_indices": DenseArrayBase.from_list(i32, in_idx),
                "outputs": ArrayAttr([StringAttr(n) for n in out_names]),
                "output_indices": DenseArrayBase.from_list(i32, out_idx),
            }
        )

    # ------------------------------------------------------------------ tensors
    def _tensor(self, t: Table, index: int, sg_index: int) -> _Tensor:
        info = _Tensor()
        info.table = t
        name_at, code, shape_at, sig_at, buffer, is_variable, sparsity_at, q_at = t.read(_TENSOR_READ)
        info.name = t.string_at(name_at, T["name"])
        if info.name is None:
            info.name = f"tensor_{index}" if sg_index == 0 else f"subgraph_{sg_index}_tensor_{index}"
        info.type_code = code
        if code not in ELEMENT_OF_TYPE:
            tname = _TYPE_NAMES.get(code, str(code))
            raise self.fail(f"tensor '{info.name}' has type {tname}, which tflquant does not support")
        elem, _ = ELEMENT_OF_TYPE[code]
        info.payload_dtype = _PAYLOAD_DTYPES[code]
        shape = t.ints_at(shape_at, T["shape"]) or []
        if shape and min(shape) < 0:
            raise self.fail(f"tensor '{info.name}' has a negative dimension in shape {shape}")
        if math.prod(shape) * info.payload_dtype.itemsize >= 1 << 64:  # LiteRT: "invalidly specified in schema"
            raise self.fail(f"tensor '{info.name}' has shape {shape}, more bytes than a machine can address: the model is corrupt")
        info.shape = shape
        dims = list(shape)
        sig = t.ints_at(sig_at, T["shape_signature"])
        if sig is not None and len(sig) == len(shape):
            for k, d in enumerate(sig):
                if d == -1:
                    dims[k] = DYNAMIC_INDEX
        info.buffer = buffer
        info.is_variable = is_variable
        info.sparsity = t.table_at(sparsity_at)
        info.stats = None
        q = t.table_at(q_at)
        if q is not None and any(q.slots):  # (a table without fields, as converters write for a float tensor: nothing to read)
            Q = schema.QUANTIZATION_FIELDS
            scale_at, details, details_at, qdim, zp_at, min_at, max_at = q.read(_QUANTIZATION_READ)
            scale = q.vector_at(scale_at, Q["scale"], "f32")
            if details == schema.BLOCKWISE_QUANTIZATION and code in (9, 17):
                elem = self._blockwise(info, q.table_at(details_at), IntegerType(4 if code == 17 else 8), shape)
                details, scale = 0, None
            if details != 0:
                raise self.fail(f"tensor '{info.name}' uses custom quantization details (type {details}), which tflquant does not support")
            if scale is not None and len(scale) > 0 and not np.any(scale):
                scale = None  # all-zero scales (old converters on int32 shape tensors): not quantized
            if scale is not None and len(scale) > 0 and code in _QUANT_STORAGE:
                zp = q.vector_at(zp_at, Q["zero_point"], "i64")
                zps = np.asarray(zp, np.int64) if zp is not None and len(zp) > 0 else np.zeros(1, np.int64)
                if len(zps) == 1 and len(scale) > 1:
                    zps = np.repeat(zps, len(scale))
                if len(zps) != len(scale):
                    raise self.fail(f"tensor '{info.name}' has {len(scale)} scales but {len(zps)} zero points")
                scales = np.asarray(scale, np.float32)
                bad = ~(np.isfinite(scales) & (scales > 0))
                if bad.any():
                    raise self.fail(f"tensor '{info.name}' has quantization scale {float(scales[bad][0])}; scales must be positive and finite")
                per_axis = len(scales) > 1 or qdim != 0
                if per_axis and not (0 <= qdim < max(len(dims), 1)):
                    raise self.fail(f"tensor '{info.name}' has quantized_dimension {qdim} outside its rank {len(dims)}")
                storage = elem if isinstance(elem, IntegerType) else IntegerType(8)
                if storage.signedness.data == Signedness.SIGNED:
                    storage = IntegerType(storage.width.data)
                lo, hi = storage_range(storage)
                out = (zps < lo) | (zps > hi)
                if out.any():
                    raise self.fail(f"tensor '{info.name}' has zero point {int(zps[out][0])} outside its {storage.width.data}-bit storage range [{lo}, {hi}]")
                elem = UniformQuantizedType.make(storage, scales if per_axis else scales[0], zps if per_axis else zps[0], axis=qdim if per_axis else -1)
            else:
                mn, mx = q.vector_at(min_at, Q["min"], "f32"), q.vector_at(max_at, Q["max"], "f32")
                valid = (
                    mn is not None and mx is not None and len(mn) > 0 and len(mn) == len(mx)
                    and bool(np.all(np.isfinite(mn)) and np.all(np.isfinite(mx)) and np.all(mn <= mx))
                )
                if valid and len(mn) > 1 and not 0 <= qdim < max(len(dims), 1):
                    valid = False
                # min/max are only informational (calibration results): unusable ones are dropped
                if valid:
                    assert mn is not None and mx is not None
                    if len(mn) == 1:
                        info.stats = CalibrationStatsAttr.make(float(mn[0]), float(mx[0]))
                    else:
                        info.stats = CalibrationStatsAttr.make([float(v) for v in mn], [float(v) for v in mx], axis=qdim)
        if code in (17, 19) and not isinstance(elem, (UniformQuantizedType, BlockwiseQuantizedType)):
            raise self.fail(f"tensor '{info.name}' has type INT{4 if code == 17 else 2} without quantization parameters, which tflquant does not support")
        info.ttype = self._tensor_type(elem, dims)
        return info

    def _blockwise(self, info: _Tensor, d: Table | None, storage: IntegerType, shape: list[int]) -> BlockwiseQuantizedType:
        """LiteRT's BlockwiseQuantization details: fp16 scales in another tensor of this subgraph."""
        F = schema.BLOCKWISE_QUANTIZATION_FIELDS
        if d is None:
            raise self.fail(f"tensor '{info.name}' has blockwise quantization without its details table")
        si, zi, bs = d.scalar(F["scales"], "i32", 0), d.scalar(F["zero_points"], "i32", 0), d.scalar(F["block_size"], "i32", 0)
        tables = self._tensor_tables
        if not (0 <= si < len(tables)) or bs <= 0 or not shape or shape[-1] % bs:
            raise self.fail(f"tensor '{info.name}' has blockwise quantization with scales tensor {si} and block size {bs}, which do not fit its shape {shape}")
        if 0 <= zi < len(tables) and zi != si:
            raise self.fail(f"tensor '{info.name}' has blockwise zero points (tensor {zi}); tflquant reads symmetric blockwise weights only")
        st = tables[si]
        if st.scalar(T["type"], "i8", 0) != 1:
            raise self.fail(f"tensor '{info.name}': its blockwise scales tensor must be FLOAT16")
        raw = self.buffer_view(st.scalar(T["buffer"], "u32", 0), f"blockwise scales of '{info.name}'")
        want = (*shape[:-1], shape[-1] // bs)
        if raw is None or len(raw) != 2 * math.prod(want):
            raise self.fail(f"tensor '{info.name}': its blockwise scales need {2 * math.prod(want)} bytes of fp16 data")
        scales = np.frombuffer(bytes(raw), "<f2").reshape(want)
        if not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
            raise self.fail(f"tensor '{info.name}' has blockwise scales that are not positive and finite")
        return BlockwiseQuantizedType.make(storage, bs, scales)

    def _payload(self, info: _Tensor, raw: bytes) -> np.ndarray:
        if _opaque(info.ttype.element_type):
            return np.frombuffer(raw, dtype=np.uint8)
        n = math.prod(info.shape)
        if info.type_code in (17, 19):  # int4 / int2: two / four per byte, lowest bits first
            bits = 4 if info.type_code == 17 else 2
            if len(raw) != packed_size(n, bits):
                raise self.fail(f"tensor '{info.name}' has {len(raw)} bytes of data, but {n} int{bits} values need {packed_size(n, bits)}")
            return unpack_bits(raw, n, bits).reshape(info.shape)
        self._check_size(info, raw)
        return np.frombuffer(raw, dtype=info.payload_dtype).reshape(info.shape)

    def _check_size(self, info: _Tensor, raw: bytes) -> None:
        """_payload's size check of a numeric tensor of one value per element."""
        need = math.prod(info.shape) * info.payload_dtype.itemsize
        if len(raw) != need:
            raise self.fail(f"tensor '{info.name}' has {len(raw)} bytes of data, but its shape {info.shape} needs {need}")

    # ------------------------------------------------------------------ subgraphs
    def _subgraph(self, sg_index: int, sg: Table, fname: str) -> func.FuncOp:
        SG = schema.SUBGRAPH_FIELDS
        ttables = sg.tables(SG["tensors"])
        ntensors = len(ttables)
        infos: list[_Tensor | None] = [None] * ntensors

        def info_of(t: int, where: str) -> _Tensor:
            if not 0 <= t < ntensors:
                raise self.fail(f"{where} refers to tensor {t}, but subgraph {sg_index} has {ntensors} tensors")
            inf = infos[t]
            if inf is None:
                self._tensor_tables = ttables
                inf = infos[t] = self._tensor(ttables[t], t, sg_index)
            return inf

        inputs = sg.ints(SG["inputs"]) or []
        outputs = sg.ints(SG["outputs"]) or []
        arg_types = [info_of(t, f"subgraph {sg_index} input").ttype for t in inputs]
        block = Block(arg_types=arg_types)
        prologue: list[Operation] = []
        body: list[Operation] = []
        values: dict[int, SSAValue] = {}
        no_value: list[SSAValue] = []

        def define(t: int, v: SSAValue, into: list[Operation]) -> None:
            inf = infos[t]
            assert inf is not None
            if inf.stats is not None:
                st = StatsOp(v, inf.stats)
                into.append(st)
                v = st.result
            values[t] = v

        for k, t in enumerate(inputs):
            if t not in values:
                define(t, block.args[k], body)

        def value_of(t: int, where: str) -> SSAValue:
            if t == -1:
                if not no_value:
                    nv = tfl.NoValueOp()
                    prologue.append(nv)
                    no_value.append(nv.result)
                return no_value[0]
            v = values.get(t)
            if v is not None:
                return v
            inf = info_of(t, where)
            raw = self.buffer_view(inf.buffer, f"tensor '{inf.name}'")
            if inf.is_variable:
                props: dict[str, Attribute] = {}
                if raw is not None:
                    props["value"] = dense_from_numpy(self._payload(inf, raw), _storage_elem(inf.ttype))
                op: Operation = tfl.VariableOp.create(
                    properties=props, result_types=[inf.ttype], attributes={"names": ArrayAttr([StringAttr(inf.name)])}
                )
            elif raw is None and _zero_elements(inf):
                # a zero-element constant (its buffer empty, or buffer 0): LiteRT runs it
                # as an empty tensor, e.g. the shape [] of a RESHAPE to a scalar
                inf.ttype = TensorType(inf.ttype.element_type, inf.shape)
                op = tfl.ConstOp(dense_from_numpy(self._payload(inf, b""), _storage_elem(inf.ttype)), inf.ttype, name=inf.name)
            elif raw is None:
                raise self.fail(
                    f"{where} reads tensor '{inf.name}' (#{t}), which is not an input, a constant, a variable or the "
                    "output of an earlier operator (its buffer is empty): the model is malformed; re-export it"
                )
            elif inf.sparsity is not None:
                op = self._sparse_const(inf, raw)
            else:
                opaque = _opaque(inf.ttype.element_type)
                shape = [len(raw)] if opaque else inf.shape
                if inf.type_code in (17, 19):  # unpacked: one value per int8
                    op = tfl.ConstOp(dense_from_numpy(self._payload(inf, raw), IntegerType(8)), inf.ttype, name=inf.name)
                else:
                    if not opaque:
                        self._check_size(inf, raw)  # (_payload's check, without the array)
                    # dense_from_buffer(raw, shape, storage) without re-checking the size
                    # (checked above) and with the payload type built once per type
                    value = dense_of_type(self._tensor_type(_storage_elem(inf.ttype), shape), bytes_attr(raw))
                    op = new_op(tfl.ConstOp, (), (inf.ttype,), {"value": value}, {"names": string_array([inf.name])})
            prologue.append(op)
            define(t, op.results[0], prologue)
            return values[t]

        for j, opt in enumerate(sg.tables(SG["operators"])):
            self._operator(sg_index, j, opt, value_of, info_of, values, define, body)

        ret_vals = [value_of(t, f"subgraph {sg_index} output") for t in outputs]
        ret = func.ReturnOp(*ret_vals)
        append_ops(block, prologue + body + [ret])
        arg_attrs = ArrayAttr([DictionaryAttr({"tfl.name": StringAttr(info_of(t, "input").name)}) for t in inputs])
        return func.FuncOp(fname, (arg_types, [v.type for v in ret_vals]), Region(block), arg_attrs=arg_attrs)

    def _operator(self, sg_index, j, opt: Table, value_of, info_of, values, define, body) -> Operation:
        (oc_idx, ins_at, outs_at, opts_type, opts_at, opts2_type, opts2_at, custom_at, large_off, large_size,
         inter_at) = opt.read(_OPERATOR_READ)
        if oc_idx >= len(self.opcodes):
            raise self.fail(f"subgraph {sg_index} operator {j} uses operator code {oc_idx}, but the model has {len(self.opcodes)}")
        code, custom_code, version, op_name, cls, options_type, need, anywhere = self.opcodes[oc_idx]
        in_idx = opt.ints_at(ins_at, OPF["inputs"]) or []
        out_idx = opt.ints_at(outs_at, OPF["outputs"]) or []
        where = LazyText("subgraph {} operator {} ({})", sg_index, j, op_name)  # its name in a message, made when one needs it
        operands = [value_of(t, where) for t in in_idx]
        out_infos = []
        for t in out_idx:
            if t == -1:
                raise self.fail(f"{where} has an absent (-1) output")
            if t in values:
                raise self.fail(f"{where} writes tensor '{info_of(t, where).name}', which is already defined")
            out_infos.append(info_of(t, where))
        result_types = [i.ttype for i in out_infos]
        names = [i.name for i in out_infos]
        opts = opt.table_at(opts_at) if opts_type else None
        opts2 = opt.table_at(opts2_at) if opts2_type else None
        custom = opt.raw_bytes(OPF["custom_options"]) if custom_at is not None else None
        if large_off > 1:
            if large_off + large_size > len(self.data):
                raise self.fail(f"{where}: custom options lie past the end of the file (truncated?)")
            custom = self.data[large_off : large_off + large_size]
        typed = (
            cls is not None
            and opts2_type == 0
            and custom is None
            and (opts_type == 0 or opts_type == options_type)
            and (cls.VARIADIC or len(operands) <= len(cls.OPERANDS))
        )
        if typed:
            assert cls is not None
            if len(operands) < need:
                names_ = ", ".join(n for n in cls.OPERANDS[:need])
                raise self.fail(
                    f"{where} has {len(operands)} input(s); LiteRT's {op_name} needs at least {need} ({names_}): "
                    "the model is corrupt; re-export it"
                )
            if not anywhere:
                for k, t in enumerate(in_idx[:need]):
                    if t == -1:
                        raise self.fail(
                            f"{where} leaves out (-1) its input {k} ({cls.OPERANDS[k].lstrip('*')}), which LiteRT's {op_name} "
                            "needs: the model is corrupt; re-export it"
                        )
            options = _decode_options(cls.OPTIONS, opts) if (cls.OPTIONS and opts is not None) else {}
            # what cls(operands, result_types, options=..., names=...) builds, without
            # xDSL's generic argument building (one variadic operand and result list);
            # option attributes are immutable: one per distinct value
            props_ = {f: self._option_attr(cls, f, v) for f, v in options.items()}
            op: Operation = new_op(cls, operands, result_types, props_, {"names": string_array(names)})
        else:
            props: dict[str, Attribute] = {
                "code": IntegerAttr(code, i32),
                "version": IntegerAttr(version, i32),
            }
            if custom_code is not None:
                props["custom_code"] = StringAttr(custom_code)
            if opts2_type:
                table_name = _OPTIONS2_BY_INDEX.get(opts2_type)
                tables = schema.OPTION2_TABLES
                props["options2"] = BoolAttr.from_bool(True)
                props["options_type"] = IntegerAttr(opts2_type, i32)
                src = opts2
                if opts_type:
                    raise self.fail(f"{where} has both builtin_options and builtin_options_2")
            else:
                table_name = _OPTIONS_BY_INDEX.get(opts_type)
                tables = schema.OPTION_TABLES
                src = opts
                if opts_type:
                    props["options_type"] = IntegerAttr(opts_type, i32)
            if (opts_type or opts2_type) and (table_name is None or table_name not in tables):
                raise self.fail(f"{where} has builtin options of unknown union type {opts2_type or opts_type}")
            if src is not None and table_name is not None:
                fields = {f: (t, d) for f, _s, t, d in tables[table_name]}
                decoded = _decode_options(table_name, src, tables)
                props["options"] = DictionaryAttr(
                    {f: tfl.option_to_attr(table_name, f, fields[f][0], v) for f, v in decoded.items()}
                )
            if custom is not None:
                props["custom_options"] = BytesAttr(custom)
            op = tfl.OpaqueOp.create(
                operands=operands,
                result_types=result_types,
                properties=props,
                attributes={"names": string_array(names)},
            )
        inter = opt.ints_at(inter_at, OPF["intermediates"]) or []
        if inter:
            entries = []
            for t in inter:
                inf = info_of(t, f"{where} intermediate")
                e: dict[str, Attribute] = {"name": StringAttr(inf.name), "type": inf.ttype}
                if inf.stats is not None:
                    e["stats"] = inf.stats
                entries.append(DictionaryAttr(e))
            op.attributes["tfl.intermediates"] = ArrayAttr(entries)
        body.append(op)
        for t, r in zip(out_idx, op.results):
            define(t, r, body)
        return op

    def _sparse_const(self, inf: _Tensor, raw: bytes) -> Operation:
        sp = inf.sparsity
        assert sp is not None
        S = schema.SPARSITY_FIELDS
        D = schema.DIMENSION_METADATA_FIELDS
        if len(raw) % inf.payload_dtype.itemsize:
            raise self.fail(f"sparse tensor '{inf.name}' has {len(raw)} bytes, not a multiple of its element size")
        trav = sp.vector(S["traversal_order"], "i32")
        bmap = sp.vector(S["block_map"], "i32")
        dims = []
        for dm in sp.tables(S["dim_metadata"]):
            d: dict[str, Attribute] = {
                "format": IntegerAttr(dm.scalar(D["format"], "i8", 0), i32),
                "dense_size": IntegerAttr(dm.scalar(D["dense_size"], "i32", 0), i32),
            }
            for key in ("array_segments", "array_indices"):
                kind_code = dm.scalar(D[key + "_type"], "u8", 0)
                if kind_code == 0:
                    continue
                if kind_code not in schema.SPARSE_INDEX_KINDS:
                    raise self.fail(f"sparse tensor '{inf.name}' has index vector type {kind_code}")
                vt = dm.table(D[key])
                vals = vt.vector(0, schema.SPARSE_INDEX_KINDS[kind_code]) if vt is not None else None
                d[key + "_type"] = IntegerAttr(kind_code, i32)
                d[key] = DenseArrayBase.from_list(i32, [int(v) for v in (vals if vals is not None else [])])
            dims.append(DictionaryAttr(d))
        sparsity = DictionaryAttr(
            {
                "traversal_order": DenseArrayBase.from_list(i32, [int(v) for v in (trav if trav is not None else [])]),
                "block_map": DenseArrayBase.from_list(i32, [int(v) for v in (bmap if bmap is not None else [])]),
                "dim_metadata": ArrayAttr(dims),
            }
        )
        payload = np.frombuffer(raw, dtype=inf.payload_dtype)
        return tfl.SparseConstOp.create(
            properties={"value": dense_from_numpy(payload, _storage_elem(inf.ttype)), "sparsity": sparsity},
            result_types=[inf.ttype],
            attributes={"names": ArrayAttr([StringAttr(inf.name)])},
        )


def _exact(v: object) -> object:
    """A cache key for an option value: -0.0 and 0.0 (equal in Python) stay apart."""
    return (v, math.copysign(1.0, v)) if isinstance(v, float) else v


def _opcode(code: int, custom_code: str | None, version: int) -> tuple:
    """What _operator reads of an operator code, found once per model: (code, custom_code,
    version, its name in messages, the typed op class (None: tfl.opaque), the options union
    type of that class, the inputs LiteRT's kernel needs, may any input be left out (-1)?)"""
    custom = code == schema.BUILTIN_CODES["CUSTOM"]
    name = custom_code if custom and custom_code else _builtin_name(code)
    cls = None if custom else tfl.BY_CODE.get(code)
    if cls is None:
        return code, custom_code, version, name, None, None, 0, True
    optional = cls.get_trait(tfl.OptionalInputs)  # the op's declaration
    options_type = schema.OPTIONS_UNION.get(cls.OPTIONS) if cls.OPTIONS is not None else None
    return code, custom_code, version, name, cls, options_type, _min_inputs(cls), optional is not None and optional.anywhere


def _min_inputs(cls: type[tfl.TflOp]) -> int:
    if cls.VARIADIC:
        return 1
    opt = cls.get_trait(tfl.OptionalInputs)  # the inputs a model may leave out: the op's declaration
    return len(cls.OPERANDS) - (opt.trailing if opt is not None else 0)


def _zero_elements(inf: _Tensor) -> bool:
    """A numeric tensor whose static shape holds no element (a 0 dimension)."""
    return 0 in inf.shape and not _opaque(inf.ttype.element_type)


_opaque = class_test(tfl.OPAQUE_ELEMENT_TYPES)  # an element type tflquant stores opaquely
# element classes that are their own payload's element (not quantized, not opaque)
_OWN_STORAGE = frozenset(c for c in _PLAIN_ELEMENTS if not issubclass(c, tfl.OPAQUE_ELEMENT_TYPES))


def _storage_elem(t: TensorType) -> Attribute:
    e = t.element_type
    if type(e) in _OWN_STORAGE:  # (the common case)
        return e
    if isinstance(e, (UniformQuantizedType, BlockwiseQuantizedType)):
        return e.storage_type if e.bits != 4 else IntegerType(8)  # int4: one value per byte in the IR
    if isinstance(e, tfl.OPAQUE_ELEMENT_TYPES):
        return IntegerType(8, Signedness.UNSIGNED)
    return e


_NAME_OF_CODE: dict[int, str] = {}
for _k, _v in schema.BUILTIN_CODES.items():
    _NAME_OF_CODE.setdefault(_v, _k)  # the first name of a code, as a scan of BUILTIN_CODES finds it


def _builtin_name(code: int) -> str:
    return _NAME_OF_CODE.get(code, f"BUILTIN_{code}")


def _decode_options(table: str, t: Table | None, tables: dict | None = None) -> dict[str, object]:
    """Non-default fields of an options table as Python values (vectors kept when present)."""
    out: dict[str, object] = {}
    if t is None:
        return out
    present = t.slots  # the vtable's field offsets (0: absent), as Table.has reads them
    for field, slot, ftype, default in (tables or schema.OPTION_TABLES)[table]:
        if slot >= len(present) or not present[slot]:
            continue
        if ftype == "string":
            out[field] = t.string(slot) or ""
        elif ftype.startswith("["):
            elem = ftype[1:-1]
            v = t.vector(slot, "u8" if elem == "bool" else elem)
            out[field] = [] if v is None else [int(x) if elem != "f32" else float(x) for x in v]
        else:
            v = t.scalar(slot, ftype, default)
            if ftype in ("f32", "f64"):
                if not math.isfinite(v):  # type: ignore[arg-type]
                    raise FlatbufferError(f"option {field} of {table} is {v}")
                if v != default:
                    out[field] = v
            elif v != default:
                out[field] = v
    return out
