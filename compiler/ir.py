"""Helpers at the edge of the IR: the context, text I/O, element types, payloads, names.

Everything that turns numpy data into attributes (or back), or reads a tensor's TFLite
name, goes through here so there is one checked way to do it.
"""

from __future__ import annotations

import math

import numpy as np

from tflquant.dialects._startup import import_xdsl

import_xdsl()  # xDSL's core before the imports below, the quick way (dialects/_startup.py)

from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.dialects.builtin import (
    BFloat16Type,
    ArrayAttr,
    BytesAttr,
    ComplexType,
    DictionaryAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    Float16Type,
    FunctionType,
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
)
from xdsl.ir import Attribute, BlockArgument, OpResult, Operation, SSAValue
from xdsl.parser import Parser
from xdsl.printer import Printer

from tflquant.dialects._unchecked import bytes_attr, dense as _dense
from tflquant.dialects.quant import Quant, UniformQuantizedType
from tflquant.dialects.tfl import TFL, tensor_names
from tflquant.errors import TflquantError


def make_context() -> Context:
    """A context with builtin, func, tfl and quant loaded (what every tool uses)."""
    ctx = Context()
    for d in (builtin.Builtin, func.Func, TFL, Quant):
        ctx.load_dialect(d)
    return ctx


def parse_module(text: str, name: str = "<input>", ctx: Context | None = None) -> ModuleOp:
    """Parse textual IR, raising TflquantError with the parser's message on failure."""
    from xdsl.utils.exceptions import ParseError

    try:
        return Parser(ctx or make_context(), text, name=name).parse_module()
    except ParseError as e:
        raise TflquantError(f"{name}: cannot parse IR: {e}") from None


def print_module(module: ModuleOp) -> str:
    return str(module) + "\n"


# ---------------------------------------------------------------------------------------
# Element types <-> numpy dtypes
# ---------------------------------------------------------------------------------------

_DTYPE_TO_ELEMENT: dict[str, Attribute] = {
    "float32": Float32Type(),
    "float16": Float16Type(),
    "float64": Float64Type(),
    "int8": IntegerType(8),
    "int16": IntegerType(16),
    "int32": IntegerType(32),
    "int64": IntegerType(64),
    "uint8": IntegerType(8, Signedness.UNSIGNED),
    "uint16": IntegerType(16, Signedness.UNSIGNED),
    "uint32": IntegerType(32, Signedness.UNSIGNED),
    "uint64": IntegerType(64, Signedness.UNSIGNED),
    "bool": IntegerType(1),
    "complex64": ComplexType(Float32Type()),
    "complex128": ComplexType(Float64Type()),
}


_ELEMENT_TO_DTYPE: dict[Attribute, np.dtype] = {e: np.dtype(name).newbyteorder("<") for name, e in _DTYPE_TO_ELEMENT.items()}


# the same maps by dtype object and by element class (no dtype name, no attribute hashing)
_ELEMENT_OF_DTYPE: dict[np.dtype, Attribute] = {np.dtype(name): e for name, e in _DTYPE_TO_ELEMENT.items()}
_DTYPE_OF_CLASS: dict[type, np.dtype] = {Float32Type: np.dtype("<f4"), Float16Type: np.dtype("<f2"), Float64Type: np.dtype("<f8"),
                                         BFloat16Type: np.dtype("<u2")}
_DTYPE_OF_INT: dict[tuple[int, Signedness], np.dtype] = {(e.width.data, e.signedness.data): d for e, d in _ELEMENT_TO_DTYPE.items()
                                                         if type(e) is IntegerType}


def element_type_of_dtype(dtype: np.dtype) -> Attribute:
    if isinstance(dtype, np.dtype) and (e := _ELEMENT_OF_DTYPE.get(dtype)) is not None:
        return e
    try:
        return _DTYPE_TO_ELEMENT[np.dtype(dtype).name]
    except KeyError:
        raise TflquantError(f"numpy dtype {np.dtype(dtype)} has no tensor element type") from None


def numpy_dtype_of_element(elem: Attribute) -> np.dtype:
    """The little-endian numpy dtype of an element type (storage type for quantized types)."""
    cls = type(elem)
    if (d := _DTYPE_OF_CLASS.get(cls)) is not None:
        return d
    if cls is IntegerType and (d := _DTYPE_OF_INT.get((elem.width.data, elem.signedness.data))) is not None:  # type: ignore[attr-defined]
        return d
    if isinstance(elem, UniformQuantizedType):
        return elem.numpy_dtype().newbyteorder("<")
    if isinstance(elem, BFloat16Type):
        return np.dtype("<u2")
    try:
        dtype = _ELEMENT_TO_DTYPE.get(elem)  # (elements hash by value)
    except TypeError:  # an element holding something unhashable: not one of these
        dtype = None
    if dtype is None:
        raise TflquantError(f"element type {elem} has no numpy dtype")
    return dtype


def dense_to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """A read-only numpy view of a dense attribute's bytes, shaped like its type."""
    t = attr.type
    dtype = numpy_dtype_of_element(t.element_type)
    shape = tuple(t.get_shape())
    data = attr.data.data
    n = math.prod(shape)
    if len(data) != n * dtype.itemsize:
        raise TflquantError(f"constant of type {t} holds {len(data)} bytes, expected {n * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def dense_from_buffer(raw: bytes | memoryview, shape: tuple[int, ...] | list[int], element: Attribute) -> DenseIntOrFPElementsAttr:
    """A dense attribute over raw little-endian bytes WITHOUT copying them: `raw` is bytes or
    a read-only byte memoryview (e.g. a slice of a memory-mapped model file, which then stays
    mapped while the attribute lives). A read-only byte view hashes and compares by content
    like bytes, and dense_to_numpy reads it in place. The length is checked."""
    if isinstance(raw, memoryview):
        if not raw.readonly:
            raise TflquantError("internal error: a constant payload view must be read-only")
        if raw.format != "B" or raw.ndim != 1:
            raw = raw.cast("B")
    elif not isinstance(raw, bytes):
        raise TflquantError(f"internal error: a constant payload must be bytes or a memoryview, got {type(raw).__name__}")
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    need = n * numpy_dtype_of_element(element).itemsize
    if len(raw) != need:
        raise TflquantError(f"constant of shape {list(shape)} and type {element} holds {len(raw)} bytes, expected {need}")
    return _dense(element, shape, BytesAttr(raw))


def release_payload(payload: object, min_file: int = 0) -> bool:
    """Done reading a constant for now: let the OS drop the pages of a memory-mapped model
    (see tflquant.tflite.reader.load_model) that hold it, so a pass that reads every weight
    once does not keep the whole file resident. Reading the payload again is still correct
    (the pages come back from the file). `payload`: a dense attribute, or a numpy array or
    memoryview read from one; a no-op for anything not backed by a mapped file, and for a
    mapped file smaller than `min_file` bytes (a small model's pages cost less resident than
    dropping them weight by weight: the driver drops them all at the end). True when pages
    were dropped."""
    from tflquant.fileio import release_view

    return release_view(payload.data.data if isinstance(payload, DenseIntOrFPElementsAttr) else payload, min_file)


# quantize-weights drops the pages of each float weight it has read only in a mapped model of
# at least this size (decoder_tiny, 7 MB: 27 weights' page drops cost 2.5-3 ms of a 36 ms
# dynamic quantization; the 0.27 GB and larger decoders keep their bounded peak)
RELEASE_MIN_FILE = 64 << 20


def dense_from_numpy(arr: np.ndarray, element: Attribute | None = None) -> DenseIntOrFPElementsAttr:
    """A dense attribute holding arr's bytes; `element` overrides the element type (e.g. bf16)."""
    arr = np.ascontiguousarray(arr).reshape(np.shape(arr))  # ascontiguousarray makes 0-d arrays 1-d
    le = arr.dtype.newbyteorder("<")
    if arr.dtype != le and arr.dtype.byteorder not in ("|", "="):
        arr = arr.astype(le)
    elem = element if element is not None else element_type_of_dtype(arr.dtype)
    return _dense(elem, arr.shape, bytes_attr(arr.tobytes()))


# ---------------------------------------------------------------------------------------
# Tensor names
# ---------------------------------------------------------------------------------------


def value_name(v: SSAValue) -> str | None:
    """The TFLite tensor name of a value: its defining op's `names`, or the argument's `tfl.name`."""
    if type(v) is OpResult:  # (the common case, without ABC instance checks)
        names = v.owner.attributes.get("names")
        if type(names) is ArrayAttr:
            data = names.data
            return data[v.index].data if v.index < len(data) else None  # type: ignore[attr-defined]
    if isinstance(v, BlockArgument):
        parent = v.block.parent_op()
        if isinstance(parent, func.FuncOp) and parent.arg_attrs is not None:
            d = parent.arg_attrs.data[v.index]
            if isinstance(n := d.data.get("tfl.name"), StringAttr):
                return n.data
        return None
    names = tensor_names(v.owner)
    if names is None:
        return None
    return names[v.index] if v.index < len(names) else None


def _io_attrs(f: func.FuncOp, results: bool) -> list[dict[str, Attribute]]:
    n = len(f.function_type.outputs.data if results else f.function_type.inputs.data)
    current = f.res_attrs if results else f.arg_attrs
    return [dict(d.data) for d in current.data] if current is not None else [{} for _ in range(n)]


def io_attr(f: func.FuncOp, index: int, key: str, result: bool = False) -> Attribute | None:
    """An attribute of argument (or result) `index` of f, if set."""
    current = f.res_attrs if result else f.arg_attrs
    if current is None or index >= len(current.data):
        return None
    return current.data[index].data.get(key)


def set_io_attr(f: func.FuncOp, index: int, key: str, value: Attribute | None, result: bool = False) -> None:
    """Set (or, with None, remove) an attribute of argument (or result) `index` of f."""
    attrs = _io_attrs(f, result)
    if value is None:
        attrs[index].pop(key, None)
    else:
        attrs[index][key] = value
    new = ArrayAttr([DictionaryAttr(d) for d in attrs]) if any(attrs) else None
    if result:
        f.res_attrs = new
    else:
        f.arg_attrs = new


def describe(v: SSAValue) -> str:
    """How an error message should refer to a value: its tensor name, else its op."""
    if (n := value_name(v)) is not None:
        return f"tensor '{n}'"
    if isinstance(v, BlockArgument):
        return f"input #{v.index}"
    return f"result #{v.index} of {v.owner.name}"


def element_kind(e: Attribute) -> str:
    """A short name of a plain element type: f32 f16 i8 u8 i16 i32 i64 bool complex, ...
    (a quantized type's storage is named by the caller)."""
    c = type(e)  # the common types by their exact class first (no ABC instance checks)
    if c is Float32Type or isinstance(e, Float32Type):
        return "f32"
    if c is IntegerType or isinstance(e, IntegerType):
        w = e.width.data
        return "bool" if w == 1 else ("u" if e.signedness.data == Signedness.UNSIGNED else "i") + str(w)
    if isinstance(e, Float16Type):
        return "f16"
    if isinstance(e, ComplexType):
        return "complex"
    return str(e)


def op_label(op: Operation) -> str:
    """`tfl.conv_2d 'name'` for error messages."""
    from tflquant.dialects import tfl

    kind = op.op_name if isinstance(op, tfl.OpaqueOp) else op.name  # type: ignore[attr-defined]
    names = tensor_names(op)
    return f"{kind} '{names[0]}'" if names else kind


def set_name(o: Operation, index: int, name: str) -> None:
    """Set the TFLite tensor name of result `index` of o."""
    names = [n.data for n in o.attributes["names"].data] if "names" in o.attributes else [""] * len(o.results)  # type: ignore[attr-defined]
    names[index] = name
    o.attributes["names"] = ArrayAttr(StringAttr(n) for n in names)


def erase_if_unused(o: Operation | None) -> None:
    """Erase o when it is still in a block and nothing reads its results."""
    if o is not None and o.parent is not None and all(not r.uses for r in o.results):
        o.detach()
        o.erase()


# Discardable attribute of an op the user asked to keep float (the `keep-float` pass sets
# it; every quantization pass leaves such an op float).
KEEP_FLOAT = "tflquant.keep_float"


def kept_float(op: object) -> bool:
    """Whether keep-float marked this op."""
    attrs = getattr(op, "attributes", None)
    return attrs is not None and KEEP_FLOAT in attrs


def entry_functions(module: ModuleOp) -> list[func.FuncOp]:
    """Functions a signature def names, or the first function when there are none."""
    funcs = [o for o in module.ops if isinstance(o, func.FuncOp)]
    names: list[str] = []
    sigs = module.attributes.get("tfl.signatures")
    if isinstance(sigs, ArrayAttr):
        for e in sigs.data:
            if isinstance(e, DictionaryAttr) and isinstance(fn := e.data.get("function"), StringAttr):
                names.append(fn.data)
    if not names:
        return funcs[:1]
    return [f for f in funcs if f.sym_name.data in names] or funcs[:1]


def update_function_type(f: func.FuncOp) -> None:
    """f's type from its block arguments and what its return returns."""
    block = f.body.blocks[0]
    ret = block.last_op
    outs = [v.type for v in ret.operands] if isinstance(ret, func.ReturnOp) else list(f.function_type.outputs)
    f.function_type = FunctionType.from_lists([a.type for a in block.args], outs)


# xDSL decides whether to print a dense attribute as a splat by comparing values with ==,
# so [0.0, -0.0] prints as `dense<0.0>` and the text round trip flips the sign of zeros.
# Weights must survive text bit for bit: compare the raw bytes instead.
_xdsl_is_splat = DenseIntOrFPElementsAttr.is_splat


def _bitwise_is_splat(self: DenseIntOrFPElementsAttr) -> bool:
    try:
        k = numpy_dtype_of_element(self.type.element_type).itemsize
    except TflquantError:
        return _xdsl_is_splat(self)
    raw = self.data.data
    if len(raw) < k or len(raw) % k:
        return _xdsl_is_splat(self)
    first = bytes(raw[:k])  # the payload may be a memoryview over a mapped file
    return raw == first * (len(raw) // k) if len(raw) <= (1 << 24) else np.all(np.frombuffer(raw, np.uint8).reshape(-1, k) == np.frombuffer(first, np.uint8))


DenseIntOrFPElementsAttr.is_splat = _bitwise_is_splat  # type: ignore[method-assign]


# xDSL prints every non-ASCII byte of a string as an escape, and its parser reads such a
# literal back as bytes (BytesAttr), so a tensor named "größe" would come back from text as
# bytes. Print valid non-ASCII text as is (the lexer reads UTF-8); keep escapes for quotes,
# backslashes and control characters, and for names that are not valid UTF-8.
def _print_string_literal(self: Printer, string: str) -> None:
    try:
        string.encode("utf-8")
    except UnicodeEncodeError:
        self.print_bytes_literal(string.encode("utf-8", errors="surrogateescape"))
        return
    out = ['"']
    for ch in string:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"' or o < 0x20 or o == 0x7F:
            out.append(f"\\{o:02X}")
        else:
            out.append(ch)
    out.append('"')
    self.print_string("".join(out))


Printer.print_string_literal = _print_string_literal  # type: ignore[method-assign]


def signature_attr(key: str, function: str, inputs: list[str] | tuple[str, ...], outputs: list[str] | tuple[str, ...]) -> DictionaryAttr:
    """One entry of the module's `tfl.signatures`: signature `key` runs `function`, its
    inputs and outputs named in argument / result order."""
    i32 = IntegerType(32)
    return DictionaryAttr({
        "key": StringAttr(key),
        "function": StringAttr(function),
        "inputs": ArrayAttr([StringAttr(n) for n in inputs]),
        "input_indices": DenseArrayBase.from_list(i32, list(range(len(inputs)))),
        "outputs": ArrayAttr([StringAttr(n) for n in outputs]),
        "output_indices": DenseArrayBase.from_list(i32, list(range(len(outputs)))),
    })
