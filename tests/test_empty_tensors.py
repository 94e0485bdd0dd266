"""Zero-element tensors (issue 10, defect 2): constants whose buffer is empty, and empty
activations (a SLICE of size 0, a CONCATENATION with an empty input).

LiteRT runs them: a tensor nothing writes and whose buffer is empty (or buffer 0) is an
empty tensor, and RESHAPE with an empty int32 shape vector reshapes to a scalar (any other
empty shape operand: the `new_shape` option; the legacy option [0] also means a scalar).
tflquant imports such tensors as constants with an empty payload, quantizes around them in
every mode, exports them (buffer 0) and runs them in both reference interpreters.

The models are written with `raw_tflite`, a flatbuffer writer independent of tflquant's own
writer, so tests choose buffer indices, empty buffers and options exactly (the fuzz tests
of the whole path use it too).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType

import tflquant
from tflquant.dialects import quant, tfl
from tflquant.errors import TflquantError
from tflquant.ir import parse_module, print_module
from tflquant.reference.integer_interpreter import IntegerInterpreter, _quant
from tflquant.reference.interpreter import Interpreter
from tflquant.scoring import litert_run
from tflquant.tflite import schema
from tflquant.tflite.flatbuf import Builder
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer

TYPE_CODES = {"f32": 0, "f16": 1, "i32": 2, "u8": 3, "i64": 4, "bool": 6, "i16": 7, "i8": 9}


# ----------------------------------------------------------------------------------------
# A raw TFLite writer (tests only): every field as given, nothing checked
# ----------------------------------------------------------------------------------------


def raw_tflite(
    tensors: Sequence[dict[str, Any]],
    operators: Sequence[dict[str, Any]],
    inputs: Sequence[int],
    outputs: Sequence[int],
    buffers: Sequence[bytes | tuple[int, int]],
    opcodes: Sequence[str],
    *,
    version: int = 3,
    signature: bool = True,
) -> bytes:
    """A one-subgraph TFLite flatbuffer, fields exactly as given.

    tensors: dicts with name, shape, type (a TYPE_CODES key or an int; default "f32"),
      buffer (default 0), optional shape_signature and quant=(scales, zero_points);
    operators: dicts with op (index into opcodes), inputs, outputs and optional
      options=(options table name, {field: value});
    buffers: bytes (b"" is an empty buffer; buffers[0] should be b""), or (offset, size)
      for data outside the flatbuffer;
    opcodes: builtin op names.
    """
    b = Builder()
    S, T, OP, OC, B, M = (
        schema.SUBGRAPH_FIELDS,
        schema.TENSOR_FIELDS,
        schema.OPERATOR_FIELDS,
        schema.OPERATOR_CODE_FIELDS,
        schema.BUFFER_FIELDS,
        schema.MODEL_FIELDS,
    )
    buf_offs = []
    for data in buffers:
        if isinstance(data, tuple):
            buf_offs.append(b.table([(B["offset"], "u64", data[0], 0), (B["size"], "u64", data[1], 0)]))
        elif data:
            buf_offs.append(b.table([(B["data"], "off", b.bytes_vector(data, 16), 0)]))
        else:
            buf_offs.append(b.table([]))
    t_offs = []
    for t in tensors:
        code = t.get("type", "f32")
        fields = [
            (T["name"], "off", b.string(t["name"]), 0),
            (T["type"], "i8", TYPE_CODES.get(code, code), None),
            (T["buffer"], "u32", t.get("buffer", 0), None),
            (T["shape"], "off", b.numpy(t.get("shape", []), "i32"), 0),
        ]
        if t.get("shape_signature") is not None:
            fields.append((T["shape_signature"], "off", b.numpy(t["shape_signature"], "i32"), 0))
        if t.get("quant") is not None:
            Q = schema.QUANTIZATION_FIELDS
            scales, zps = t["quant"]
            q = b.table([(Q["scale"], "off", b.numpy(scales, "f32"), 0), (Q["zero_point"], "off", b.numpy(zps, "i64"), 0)])
            fields.append((T["quantization"], "off", q, 0))
        t_offs.append(b.table(fields))
    o_offs = []
    for o in operators:
        fields = [
            (OP["opcode_index"], "u32", o["op"], None),
            (OP["inputs"], "off", b.numpy(o["inputs"], "i32"), 0),
            (OP["outputs"], "off", b.numpy(o["outputs"], "i32"), 0),
        ]
        if o.get("options"):
            tname, vals = o["options"]
            of = []
            for field, slot, ftype, _default in schema.OPTION_TABLES[tname]:
                if field in vals:
                    if ftype.startswith("["):
                        of.append((slot, "off", b.numpy(vals[field], ftype[1:-1]), 0))
                    else:
                        of.append((slot, ftype, vals[field], None))
            fields.append((OP["builtin_options_type"], "u8", schema.OPTIONS_UNION[tname], 0))
            fields.append((OP["builtin_options"], "off", b.table(of), 0))
        o_offs.append(b.table(fields))
    sg = b.table(
        [
            (S["tensors"], "off", b.offsets(t_offs), 0),
            (S["inputs"], "off", b.numpy(list(inputs), "i32"), 0),
            (S["outputs"], "off", b.numpy(list(outputs), "i32"), 0),
            (S["operators"], "off", b.offsets(o_offs), 0),
            (S["name"], "off", b.string("main"), 0),
        ]
    )
    oc_offs = []
    for name in opcodes:
        code = schema.BUILTIN_CODES[name]
        oc_offs.append(
            b.table([(OC["deprecated_builtin_code"], "i8", min(code, 127), 0), (OC["builtin_code"], "i32", code, 0), (OC["version"], "i32", 1, 0)])
        )
    root_fields = [
        (M["version"], "u32", version, None),
        (M["operator_codes"], "off", b.offsets(oc_offs), 0),
        (M["subgraphs"], "off", b.offsets([sg]), 0),
        (M["description"], "off", b.string("raw test model"), 0),
        (M["buffers"], "off", b.offsets(buf_offs), 0),
    ]
    if signature:
        SD, TM = schema.SIGNATURE_DEF_FIELDS, schema.TENSOR_MAP_FIELDS

        def maps(idx: Sequence[int]) -> int:
            def name(i: int) -> str:
                return tensors[i]["name"] if 0 <= i < len(tensors) else f"tensor_{i}"

            return b.offsets([b.table([(TM["name"], "off", b.string(name(i)), 0), (TM["tensor_index"], "u32", i & 0xFFFFFFFF, None)]) for i in idx])

        sig = b.table([(SD["inputs"], "off", maps(inputs), 0), (SD["outputs"], "off", maps(outputs), 0),
                       (SD["signature_key"], "off", b.string("serving_default"), 0), (SD["subgraph_index"], "u32", 0, None)])
        root_fields.append((M["signature_defs"], "off", b.offsets([sig]), 0))
    return b.finish(b.table(root_fields), schema.FILE_IDENTIFIER)


def f32(a: Any) -> bytes:
    return np.asarray(a, np.float32).tobytes()


def i32(a: Any) -> bytes:
    return np.asarray(a, np.int32).tobytes()


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

_W = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)


def reshape_to_scalar(empty_buffer: bool) -> bytes:
    """x[1,4] -> FULLY_CONNECTED -> [1,1] -> RESHAPE(shape = int32[0], no data) -> [] -> ADD 0.5.
    The shape tensor's buffer is an empty buffer of its own, or buffer 0."""
    return raw_tflite(
        [
            dict(name="x", shape=[1, 4]),
            dict(name="w", shape=[1, 4], buffer=1),
            dict(name="fc", shape=[1, 1]),
            dict(name="empty_shape", shape=[0], type="i32", buffer=2 if empty_buffer else 0),
            dict(name="scalar", shape=[]),
            dict(name="half", shape=[], buffer=3),
            dict(name="y", shape=[]),
        ],
        [
            dict(op=0, inputs=[0, 1, -1], outputs=[2]),
            dict(op=1, inputs=[2, 3], outputs=[4]),
            dict(op=2, inputs=[4, 5], outputs=[6]),
        ],
        [0],
        [6],
        [b"", f32(_W[:1]), b"", f32(0.5)],
        ["FULLY_CONNECTED", "RESHAPE", "ADD"],
    )


def concat_empty_constant() -> bytes:
    """x[1,4] -> CONCATENATION(x, const f32[1,0]) -> RESHAPE(shape = int32[0,4] empty, new_shape [2,2]) -> LOGISTIC.
    A 2-D empty shape is not a shape vector: LiteRT takes new_shape from the options."""
    return raw_tflite(
        [
            dict(name="x", shape=[1, 4]),
            dict(name="nothing", shape=[1, 0], buffer=1),
            dict(name="cat", shape=[1, 4]),
            dict(name="shape_0x4", shape=[0, 4], type="i32", buffer=2),
            dict(name="r", shape=[2, 2]),
            dict(name="y", shape=[2, 2]),
        ],
        [
            dict(op=0, inputs=[0, 1], outputs=[2], options=("ConcatenationOptions", {"axis": 1})),
            dict(op=1, inputs=[2, 3], outputs=[4], options=("ReshapeOptions", {"new_shape": [2, 2]})),
            dict(op=2, inputs=[4], outputs=[5]),
        ],
        [0],
        [5],
        [b"", b"", b""],
        ["CONCATENATION", "RESHAPE", "LOGISTIC"],
    )


def empty_slice() -> bytes:
    """x[1,4] -> FULLY_CONNECTED -> h[1,3]; SLICE(h, size [1,0]) -> [1,0] (an empty activation);
    CONCATENATION(h, slice) -> [1,3] -> TANH."""
    return raw_tflite(
        [
            dict(name="x", shape=[1, 4]),
            dict(name="w", shape=[3, 4], buffer=1),
            dict(name="h", shape=[1, 3]),
            dict(name="begin", shape=[2], type="i32", buffer=2),
            dict(name="size", shape=[2], type="i32", buffer=3),
            dict(name="empty", shape=[1, 0]),
            dict(name="cat", shape=[1, 3]),
            dict(name="y", shape=[1, 3]),
        ],
        [
            dict(op=0, inputs=[0, 1, -1], outputs=[2]),
            dict(op=1, inputs=[2, 3, 4], outputs=[5]),
            dict(op=2, inputs=[2, 5], outputs=[6], options=("ConcatenationOptions", {"axis": 1})),
            dict(op=3, inputs=[6], outputs=[7]),
        ],
        [0],
        [7],
        [b"", f32(_W), i32([0, 1]), i32([1, 0])],
        ["FULLY_CONNECTED", "SLICE", "CONCATENATION", "TANH"],
    )


def _reshape_only(shape_tensor: dict[str, Any] | None, new_shape: list[int] | None, out_shape: list[int]) -> bytes:
    tensors = [dict(name="x", shape=[1, 1]), dict(name="y", shape=out_shape)]
    ins = [0]
    if shape_tensor is not None:
        tensors.append(shape_tensor)
        ins.append(2)
    opts = ("ReshapeOptions", {"new_shape": new_shape}) if new_shape is not None else None
    return raw_tflite(tensors, [dict(op=0, inputs=ins, outputs=[1], options=opts)], [0], [1], [b""], ["RESHAPE"])


MODELS = {
    "reshape_to_scalar_empty_buffer": lambda: reshape_to_scalar(True),
    "reshape_to_scalar_buffer_0": lambda: reshape_to_scalar(False),
    "concat_empty_constant": concat_empty_constant,
    "empty_slice": empty_slice,
}
MODES = [("int8", "float32"), ("int8", "int8"), ("int16x8", "float32"), ("dynamic", "float32"), ("float16", "float32")]
X = np.random.default_rng(3).standard_normal((16, 1, 4)).astype(np.float32)


# ----------------------------------------------------------------------------------------
# Import and export
# ----------------------------------------------------------------------------------------


def _consts(module: Any) -> dict[str, tfl.ConstOp]:
    return {tfl.tensor_names(o)[0]: o for o in module.walk() if isinstance(o, tfl.ConstOp)}


@pytest.mark.parametrize("buffer", ["empty", "zero"])
@pytest.mark.parametrize(
    "type_code, shape, numpy_dtype",
    [("f32", [0], np.float32), ("i32", [0, 4], np.int32), ("i8", [2, 0, 3], np.int8), ("bool", [0], np.bool_),
     ("f16", [3, 0], np.float16), ("i64", [0, 0], np.int64)],
)
def test_zero_element_constant_of_any_type_imports_and_round_trips(buffer: str, type_code: str, shape: list[int], numpy_dtype: Any) -> None:
    data = raw_tflite(
        [dict(name="x", shape=[1, 2]), dict(name="c", shape=shape, type=type_code, buffer=1 if buffer == "empty" else 0),
         dict(name="y", shape=[1, 2])],
        [dict(op=0, inputs=[0, 0], outputs=[2])],
        [0],
        [2, 1],
        [b"", b""],
        ["ADD"],
    )
    m = read_flatbuffer(data, "empty.tflite")
    c = _consts(m)["c"]
    assert c.result.type == TensorType(c.result.type.element_type, shape)
    arr = c.numpy()
    assert arr.shape == tuple(shape) and arr.dtype == np.dtype(numpy_dtype)
    out = write_flatbuffer(m)
    assert write_flatbuffer(read_flatbuffer(out)) == out  # byte-stable from the first export on
    assert print_module(read_flatbuffer(out)) == print_module(m)
    assert print_module(parse_module(print_module(m))) == print_module(m)  # dense<> through the text form


def test_empty_buffer_of_a_non_empty_tensor_is_still_an_error_naming_it() -> None:
    data = raw_tflite(
        [dict(name="x", shape=[1, 2]), dict(name="missing", shape=[1, 2], buffer=1), dict(name="y", shape=[1, 2])],
        [dict(op=0, inputs=[0, 1], outputs=[2])], [0], [2], [b"", b""], ["ADD"],
    )
    with pytest.raises(TflquantError, match=r"^bad\.tflite: .*'missing' .*not an input, a constant") as e:
        read_flatbuffer(data, "bad.tflite")
    assert "\n" not in str(e.value)


def test_cli_inspect_import_export_of_an_empty_constant(tmp_path: Any, capsys: Any) -> None:
    from tflquant.cli import main

    src = tmp_path / "m.tflite"
    src.write_bytes(reshape_to_scalar(True))
    assert main(["inspect", str(src)]) == 0
    assert "'empty_shape' INT32[0]  0 elements" in capsys.readouterr().out
    assert main(["import", str(src), "-o", str(tmp_path / "m.mlir")]) == 0
    assert "dense<> : tensor<0xi32>" in (tmp_path / "m.mlir").read_text()
    assert main(["export", str(tmp_path / "m.mlir"), "-o", str(tmp_path / "back.tflite")]) == 0
    back = (tmp_path / "back.tflite").read_bytes()
    np.testing.assert_array_equal(litert_run(back, [X], delegates=False)[0], litert_run(src.read_bytes(), [X], delegates=False)[0])


# ----------------------------------------------------------------------------------------
# RESHAPE with an empty shape: the float interpreter does what LiteRT does
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape_tensor, new_shape, out_shape",
    [
        (dict(name="s", shape=[0], type="i32", buffer=0), None, []),  # empty int32 vector: a scalar
        (dict(name="s", shape=[0], type="i32", buffer=0), [1, 1, 1], []),  # ... even with an option
        (dict(name="s", shape=[0], type="i64", buffer=0), [1, 1, 1], [1, 1, 1]),  # not int32: the option
        (dict(name="s", shape=[0, 2], type="i32", buffer=0), [1], [1]),  # not a vector: the option
        (None, [0], []),  # legacy: new_shape [0] is a scalar
    ],
)
def test_reshape_with_an_empty_shape_runs_as_in_litert(shape_tensor: Any, new_shape: Any, out_shape: list[int]) -> None:
    data = _reshape_only(shape_tensor, new_shape, out_shape)
    x = np.array([[[2.5]], [[-1.0]]], np.float32)
    want = litert_run(data, [x], delegates=False)[0]
    got = Interpreter(read_flatbuffer(data)).run([x])[0]
    assert got.shape == want.shape == (2, *out_shape)
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------------
# The whole path: every mode, LiteRT runs the output, the interpreters agree with it
# ----------------------------------------------------------------------------------------


def _quantize(data: bytes, mode: str, io_type: str) -> tflquant.QuantizationResult:
    calib = {"x": X} if mode in ("int8", "int16x8") else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no calibration warning: empty tensors are not NaN
        return tflquant.quantize(data, mode=mode, io_type=io_type, representative_dataset=calib)


@pytest.mark.parametrize("name", list(MODELS))
def test_float_interpreter_matches_litert(name: str) -> None:
    data = MODELS[name]()
    want = litert_run(data, [X], delegates=False)[0]
    got = Interpreter(read_flatbuffer(data)).run([X])[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode, io_type", MODES)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_mode_quantizes_and_litert_runs_it(name: str, mode: str, io_type: str) -> None:
    data = MODELS[name]()
    ref = litert_run(data, [X], delegates=False)[0]
    r = _quantize(data, mode, io_type)
    if mode in ("int8", "int16x8"):  # nothing falls back because of an empty tensor
        kinds = {o.kind for o in r.report.ops} - {"quantize", "dequantize"}
        assert kinds == {"int16" if mode == "int16x8" else "int8"}, r.report.ops
    qm = read_flatbuffer(r.model)
    assert write_flatbuffer(read_flatbuffer(r.model)) == write_flatbuffer(qm)
    fn = next(o for o in qm.ops if isinstance(o, func.FuncOp))
    qt = quant.quantized_element(fn.body.blocks[0].args[0].type)
    x = _quant(X, qt, True) if qt is not None else X
    out = litert_run(r.model, [x], delegates=False)[0]
    assert out.shape == ref.shape
    if io_type == "float32":  # accuracy against the float model
        tol = {"int8": 0.03, "int16x8": 0.01, "dynamic": 0.03, "float16": 1e-2}[mode]  # int8 weights in 16x8 too
        np.testing.assert_allclose(out, ref, atol=tol * max(1.0, float(np.abs(ref).max())))
    if mode in ("int8", "int16x8"):  # the integer reference interpreter is LiteRT's builtin kernels
        raw = litert_run(r.model, [x], delegates=False, dequantize=False)[0]
        got = IntegerInterpreter(qm).run([x])[0]
        np.testing.assert_array_equal(np.asarray(got), raw)


def test_empty_activation_is_calibrated_without_warnings_or_nan() -> None:
    from tflquant.calibration.driver import calibrate

    m = read_flatbuffer(empty_slice())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = calibrate(m, {"x": X})
    assert r.warnings == []
    assert all(np.isfinite(v.mins[0]) and np.isfinite(v.maxs[0]) for v in r.stats.values())
    assert (r.stats["empty"].mins[0], r.stats["empty"].maxs[0]) == (0.0, 0.0)
