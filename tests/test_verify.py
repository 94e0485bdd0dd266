"""tflquant.tflite.verify: every kind of broken model it must reject, with a message naming
the tensor / operator / buffer, and the writer refusing to write such a model.

Broken models are made by planning a sound module with the writer, corrupting the plan
(tensor buffers, operator inputs, ...) and emitting it without the writer's check.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, IntegerType, ModuleOp, StringAttr, TensorType, i32

from models import GraphBuilder, signature_attr, ttype
from test_multi_signature import run_litert
from tflquant.dialects import tfl
from tflquant.dialects.quant import UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy
from tflquant.tflite import schema, writer
from tflquant.tflite.verify import check_model, verify_model


def _module() -> ModuleOp:
    """x -> FC(w, b) -> relu -> add(c) -> reshape(shape): float and int32 constants."""
    r = np.random.default_rng(0)
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    fc = g.op("FULLY_CONNECTED", [g.x, g.const(r.standard_normal((3, 4)).astype(np.float32), "w"),
                                  g.const(np.arange(3, dtype=np.float32), "b")], (1, 3), name="fc")  # fmt: skip
    y = g.op("ADD", [g.op("RELU", [fc], (1, 3), name="relu"), g.const(np.ones(3, np.float32), "c")], (1, 3), name="add")
    y = g.op("RESHAPE", [y, g.const(np.array([1, 3, 1], np.int32), "shape")], (1, 3, 1), name="y")
    return g.module([y], ["y"])


def _emit(mutate: Callable[[writer._Plan], None] | None = None, module: ModuleOp | None = None, offsets=None) -> bytes:
    module = module if module is not None else _module()
    plan = writer._plan(module)
    if mutate is not None:
        mutate(plan)
    return writer._emit(module, plan, offsets)


def _tensor(plan: writer._Plan, name: str) -> int:
    return next(i for i, t in enumerate(plan.subgraphs[0].tensors) if t.name == name)


def test_sound_model_passes_and_loads() -> None:
    data = _emit()
    assert check_model(data) == []
    assert data == writer.write_flatbuffer(_module())
    run_litert(data)


def _buffer_of(plan: writer._Plan, name: str) -> int:
    return plan.subgraphs[0].tensors[_tensor(plan, name)].buffer


def _truncate_w(plan: writer._Plan) -> None:
    b = _buffer_of(plan, "w")
    plan.buffers[b] = plan.buffers[b][:-4]  # type: ignore[index]


def _swap_ops(plan: writer._Plan) -> None:
    ops = plan.subgraphs[0].operators
    ops[0], ops[1] = ops[1], ops[0]


def _output_is_const(plan: writer._Plan) -> None:
    plan.subgraphs[0].operators[1].outputs[0] = _tensor(plan, "c")


def _produced_twice(plan: writer._Plan) -> None:
    ops = plan.subgraphs[0].operators
    ops[1].outputs[0] = ops[0].outputs[0]


def _output_is_input(plan: writer._Plan) -> None:
    plan.subgraphs[0].operators[0].outputs[0] = plan.subgraphs[0].inputs[0]


def _variable_with_buffer(plan: writer._Plan) -> None:
    plan.subgraphs[0].tensors[_tensor(plan, "c")].is_variable = True


def _share_two_sizes(plan: writer._Plan) -> None:
    plan.subgraphs[0].tensors[_tensor(plan, "c")].buffer = _buffer_of(plan, "w")


def _share_two_types(plan: writer._Plan) -> None:
    t = plan.subgraphs[0].tensors
    t[_tensor(plan, "c")].buffer = _buffer_of(plan, "shape")  # 12 bytes: int32[3] and float32[3]


def _quant(plan: writer._Plan, name: str, q: UniformQuantizedType, shape=None) -> None:  # noqa: ANN001
    t = plan.subgraphs[0].tensors[_tensor(plan, name)]
    t.ttype = TensorType(q, shape if shape is not None else t.ttype.get_shape())


def _i8(scales, zps=0, axis=-1):  # noqa: ANN001, ANN202
    return UniformQuantizedType.make(IntegerType(8), scales, zps, axis=axis)


CORRUPTIONS: list[tuple[str, Callable[[writer._Plan], None], str]] = [
    ("buffer size", _truncate_w, r"tensor 'w' \(#\d+\) of subgraph 'main' \(float32 \[3, 4\]\) needs 48 bytes, its buffer \d+ holds 44"),
    ("buffer index", lambda p: setattr(p.subgraphs[0].tensors[_tensor(p, "w")], "buffer", 99), r"tensor 'w' .* names buffer 99"),
    ("buffer 0 not empty", lambda p: p.buffers.__setitem__(0, b"abcd"), r"buffer 0 must be empty"),
    ("op input range", lambda p: p.subgraphs[0].operators[0].inputs.__setitem__(0, 42), r"an input of operator #0 \(FULLY_CONNECTED\) of subgraph 'main' names tensor 42, the subgraph has \d+ tensors"),
    ("op output range", lambda p: p.subgraphs[0].operators[2].outputs.__setitem__(0, -1), r"an output of operator #2 \(ADD\) .* names tensor -1"),
    ("op output absent", lambda p: p.subgraphs[0].operators[3].outputs.__setitem__(0, 99), r"an output of operator #3 \(RESHAPE\) .* names tensor 99"),
    ("intermediate range", lambda p: p.subgraphs[0].operators[1].intermediates.append(77), r"an intermediate of operator #1 \(RELU\) .* names tensor 77"),
    ("subgraph input range", lambda p: p.subgraphs[0].inputs.__setitem__(0, 50), r"an input of subgraph 'main' names tensor 50"),
    ("subgraph output range", lambda p: p.subgraphs[0].outputs.__setitem__(0, 51), r"an output of subgraph 'main' names tensor 51"),
    ("opcode index", lambda p: setattr(p.subgraphs[0].operators[1], "opcode", 9), r"operator #1 of subgraph 'main' has opcode_index 9"),
    ("opcode version", lambda p: p.opcodes[0].__setitem__(2, 0), r"operator code 0 \(FULLY_CONNECTED\): version 0"),
    ("not produced", _swap_ops, r"operator #0 \(RELU\) of subgraph 'main' reads tensor 'fc' .* not a constant, a variable, a subgraph input or the output of an earlier operator"),
    ("output is constant", _output_is_const, r"operator #1 \(RELU\) .* writes tensor 'c' .* which is a constant"),
    ("produced twice", _produced_twice, r"operator #1 \(RELU\) .* writes tensor 'fc' .* which an earlier operator already produces"),
    ("output is input", _output_is_input, r"writes tensor 'x' .* which is an input of the subgraph"),
    ("variable with buffer", _variable_with_buffer, r"tensor 'c' .* is a variable tensor with a buffer"),
    ("shared buffer, two sizes", _share_two_sizes, r"tensor 'c' .* \(float32 \[3\]\) needs 12 bytes, its buffer \d+ holds 48"),
    ("shared buffer, two types", _share_two_types, r"tensor 'shape' .* \(INT32, 12 bytes\) shares buffer \d+ with tensor 'c' .* \(FLOAT32, 12 bytes\).*one buffer must not hold data of two types"),
    ("per-axis size", lambda p: _quant(p, "relu", _i8([0.1, 0.2], [0, 0], axis=1)), r"tensor 'relu' .*: 2 scales along dimension 1, which has size 3"),
    ("per-axis dimension", lambda p: _quant(p, "relu", _i8([0.1, 0.2, 0.3], [0, 0, 0], axis=1), shape=[3]), r"per-axis quantization along dimension 1 of a rank-1 tensor"),
]


def _raw_quantization(monkeypatch: pytest.MonkeyPatch, name: str, scale: list[float], zp: list[int], dim: int = 0) -> None:
    """Write tensor `name` as int8 with these quantization parameters, which the quant type
    itself refuses (zero scale, zero point out of range)."""
    orig = writer._emit_tensor
    Q, T = schema.QUANTIZATION_FIELDS, schema.TENSOR_FIELDS

    def emit_tensor(bld, t):  # noqa: ANN001, ANN202
        if t.name != name:
            return orig(bld, t)
        q = bld.table([(Q["scale"], "off", bld.numpy(np.array(scale, np.float32), "f32"), 0),
                       (Q["zero_point"], "off", bld.numpy(np.array(zp), "i64"), 0),
                       (Q["quantized_dimension"], "i32", dim, 0)])  # fmt: skip
        shape = bld.numpy([int(d) for d in t.ttype.get_shape()], "i32")
        return bld.table([(T["shape"], "off", shape, 0), (T["type"], "i8", schema.TENSOR_TYPES["INT8"], 0),
                          (T["name"], "off", bld.string(name), 0), (T["quantization"], "off", q, 0)])  # fmt: skip

    monkeypatch.setattr(writer, "_emit_tensor", emit_tensor)


RAW_QUANT = [
    ("zero scale", [0.0], [0], r"tensor 'relu' .* has scale 0.0; scales must be finite and positive"),
    ("nan scale", [float("nan")], [0], r"has scale nan"),
    ("zero point range", [0.1], [300], r"tensor 'relu' .*: zero point 300 is outside the int8 range \(-128, 127\)"),
    ("scales vs zero points", [0.1, 0.2, 0.3], [0, 0], r"has 3 scale\(s\) and 2 zero point\(s\)"),
    ("inf scale per axis", [0.1, float("inf"), 0.3], [0, 0, 0], r"tensor 'relu' .* has scale inf; scales must be finite and positive"),
    ("nan scale per axis", [0.1, 0.2, float("nan")], [0, 0, 0], r"has scale nan"),
    ("zero point range per axis", [0.1, 0.2, 0.3], [0, -200, 5], r"tensor 'relu' .*: zero point -200 is outside the int8 range \(-128, 127\)"),
]


@pytest.mark.parametrize("what,scale,zp,message", RAW_QUANT, ids=[c[0] for c in RAW_QUANT])
def test_bad_quantization_is_rejected(monkeypatch: pytest.MonkeyPatch, what: str, scale: list[float], zp: list[int], message: str) -> None:
    _raw_quantization(monkeypatch, "relu", scale, zp, dim=1)
    data = _emit()
    monkeypatch.undo()
    problems = check_model(data)
    assert any(re.search(message, p) for p in problems), problems


@pytest.mark.parametrize("what,mutate,message", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_model_is_rejected(what: str, mutate: Callable[[writer._Plan], None], message: str) -> None:
    problems = check_model(_emit(mutate))
    assert problems, what
    assert any(re.search(message, p) for p in problems), problems
    data = _emit(mutate)
    with pytest.raises(TflquantError, match=r"^internal error: the written model fails LiteRT's model checks: "):
        verify_model(data)


def test_same_size_sharing_of_two_types_is_lenient_when_not_strict() -> None:
    """The TF converter stores a 4-byte zero once for an int32 and a float32 constant; LiteRT
    runs that, so `inspect`-style checks of foreign models can accept it."""
    data = _emit(_share_two_types)
    assert check_model(data, strict=False) == []
    assert check_model(_emit(_share_two_sizes), strict=False)


def test_schema_version_and_truncation(monkeypatch: pytest.MonkeyPatch) -> None:
    good = _emit()
    assert any("not a TFLite flatbuffer" in p or "malformed" in p for p in check_model(good[:40]))
    assert check_model(b"\0" * 64)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    bad = _emit()
    monkeypatch.undo()
    assert check_model(bad) == ["schema version 2, LiteRT reads version 3"]


def test_large_model_offsets_outside_the_file() -> None:
    module = _module()
    plan = writer._plan(module)
    offsets = {i: (1 << 20, len(b)) for i, b in enumerate(plan.buffers) if b}
    problems = check_model(writer._emit(module, plan, offsets))
    assert any("points at bytes" in p and "outside the" in p for p in problems), problems
    big = writer.write_flatbuffer(module, max_flatbuffer_size=64)  # the large layout, sound
    assert check_model(big) == []


def _string_module(raw: bytes) -> ModuleOp:
    g = GraphBuilder("main", {"x": ((2,), np.float32)})
    payload = dense_from_numpy(np.frombuffer(raw, np.uint8).copy())
    c = g.add(tfl.ConstOp(payload, TensorType(tfl.StringType(), [2]), name="s")).results[0]  # raw TFLite string buffer
    y = g.op("RELU", [g.x], (2,))
    return g.module([y, c], ["y", "s"])


def _strings(*items: bytes) -> bytes:
    n = len(items)
    offs, pos = [], 4 * (n + 2)
    for s in items:
        offs.append(pos)
        pos += len(s)
    offs.append(pos)
    return np.array([n, *offs], "<i4").tobytes() + b"".join(items)


def test_string_buffers() -> None:
    assert check_model(_emit(module=_string_module(_strings(b"ab", b"cde")))) == []
    assert any("holds 3 strings" in p for p in check_model(_emit(module=_string_module(_strings(b"a", b"b", b"c")))))
    bad = bytearray(_strings(b"ab", b"cde"))
    bad[8:12] = (100).to_bytes(4, "little")  # the second offset past the end
    assert any("string offsets" in p for p in check_model(_emit(module=_string_module(bytes(bad)))))


def _sparse_module(order: list[int], segments: list[int], indices: list[int], values: int) -> ModuleOp:
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    sp = DictionaryAttr({
        "traversal_order": tfl_ints(order),
        "dim_metadata": ArrayAttr([
            DictionaryAttr({"format": IntegerAttr(0, i32), "dense_size": IntegerAttr(2, i32)}),
            DictionaryAttr({"format": IntegerAttr(1, i32), "array_segments_type": IntegerAttr(1, i32),
                            "array_segments": tfl_ints(segments), "array_indices_type": IntegerAttr(1, i32),
                            "array_indices": tfl_ints(indices)}),
        ]),
    })  # fmt: skip
    w = g.add(tfl.SparseConstOp.create(result_types=[ttype((2, 4))], properties={
        "value": dense_from_numpy(np.ones(values, np.float32)), "sparsity": sp},
        attributes={"names": ArrayAttr([StringAttr("sparse_w")])})).results[0]  # fmt: skip
    y = g.op("FULLY_CONNECTED", [g.x, w, g.no_value()], (1, 2))
    return g.module([y])


def tfl_ints(v: list[int]):  # noqa: ANN201
    from xdsl.dialects.builtin import DenseArrayBase

    return DenseArrayBase.from_list(i32, v)


def test_sparsity() -> None:
    assert check_model(_emit(module=_sparse_module([0, 1], [0, 2, 3], [1, 3, 0], 3))) == []
    cases = [
        (([0, 1], [0, 2, 3], [1, 3, 0], 4), "needs 12 bytes, its buffer"),  # values vs buffer
        (([1, 1], [0, 2, 3], [1, 3, 0], 3), "traversal_order"),
        (([0, 1], [0, 3, 2], [1, 3, 0], 3), "array_segments"),
        (([0, 1], [0, 2, 3], [1, 9, 0], 3), "outside its dense size"),
    ]
    for args, text in cases:
        problems = check_model(_emit(module=_sparse_module(*args)))
        assert any(text in p for p in problems), (args, problems)


def _control_module(index: int) -> ModuleOp:
    g = GraphBuilder("main", {"x": ((1,), np.float32)})
    g.opaque(schema.BUILTIN_CODES["CALL_ONCE"], [], [])
    op = g.block.last_op
    op.properties["options_type"] = IntegerAttr(schema.OPTIONS_UNION["CallOnceOptions"], i32)
    op.properties["options"] = DictionaryAttr({"init_subgraph_index": IntegerAttr(index, i32)})
    y = g.op("RELU", [g.x], (1,))
    init = GraphBuilder("init", {}).function([])
    return g.module([y], extra=[init])


def test_control_flow_subgraph_indices() -> None:
    assert check_model(_emit(module=_control_module(1))) == []
    assert any("init_subgraph_index 5 is not a subgraph of the model (2 subgraphs)" in p for p in check_model(_emit(module=_control_module(5))))


def test_signatures() -> None:
    module = _module()
    sigs = module.attributes["tfl.signatures"]
    module.attributes["tfl.signatures"] = ArrayAttr([*sigs.data, *sigs.data])  # type: ignore[attr-defined]
    assert "signature key 'serving_default' is used twice" in check_model(_emit(module=module))

    module = _module()
    entry = signature_attr("s", "main", ["x"], ["y"]).data
    module.attributes["tfl.signatures"] = ArrayAttr([DictionaryAttr({**entry, "outputs": ArrayAttr([StringAttr("y"), StringAttr("y")]),
                                                                     "output_indices": tfl_ints([0, 1])})])  # fmt: skip

    def two_outputs(plan: writer._Plan) -> None:  # the subgraph returns y and its input x
        plan.subgraphs[0].outputs = [plan.subgraphs[0].outputs[0], plan.subgraphs[0].inputs[0]]

    assert "signature 's' has two outputs named 'y'" in check_model(_emit(two_outputs, module=module))


def _resource_module(read_type: TensorType) -> ModuleOp:
    """Subgraph 'a' assigns an int8 value to variable 'kv'; 'b' reads it as `read_type`."""
    C, OT = schema.BUILTIN_CODES, schema.OPTIONS_UNION
    q8 = _i8(0.05)

    def handle(g: GraphBuilder):  # noqa: ANN202
        h = g.opaque(C["VAR_HANDLE"], [], [ttype((), tfl.ResourceType())], name="h")[0]
        op = g.block.last_op
        op.properties["options_type"] = IntegerAttr(OT["VarHandleOptions"], i32)
        op.properties["options"] = DictionaryAttr({"shared_name": StringAttr("kv"), "container": StringAttr("")})
        return h

    g = GraphBuilder("a", {"x": ((1, 4), np.float32)})
    xq = g.op("QUANTIZE", [g.x], (1, 4), out_dtype=q8, name="xq")
    g.opaque(C["ASSIGN_VARIABLE"], [handle(g), xq], [])
    fa = g.function([g.op("RELU", [g.x], (1, 4))])
    g = GraphBuilder("b", {"x": ((1, 4), np.float32)})
    c = g.opaque(C["READ_VARIABLE"], [handle(g)], [read_type], name="c")[0]
    if isinstance(read_type.element_type, UniformQuantizedType):
        c = g.op("DEQUANTIZE", [c], (1, 4))
    fb = g.function([g.op("ADD", [g.x, c], (1, 4))])
    sigs = [signature_attr("a", "a", ["x"], ["y"]), signature_attr("b", "b", ["x"], ["y"])]
    return ModuleOp([fa, fb], attributes={"tfl.signatures": ArrayAttr(sigs)})


def test_resource_variable_types_must_agree() -> None:
    good = writer.write_flatbuffer(_resource_module(ttype((1, 4), _i8(0.05))))
    out = run_litert(good, [("a", {"x": np.ones((1, 4), np.float32)}), ("b", {"x": np.ones((1, 4), np.float32)})])
    np.testing.assert_allclose(out[1]["y"], 2.0, atol=0.05)
    for bad_type, text in ((ttype((1, 4)), "FLOAT32[1x4] at tensor 'c:0'"), (ttype((1, 4), _i8(0.1)), "scale (0.1")):
        problems = check_model(_emit(module=_resource_module(bad_type)))
        assert any("resource variable 'kv' is INT8[1x4]" in p and text in p for p in problems), problems
        with pytest.raises(TflquantError, match="resource variable 'kv'"):
            writer.write_flatbuffer(_resource_module(bad_type))


def test_writer_refuses_a_variable_with_an_initial_value() -> None:
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    var = tfl.VariableOp.create(result_types=[ttype((1, 4))], properties={"value": dense_from_numpy(np.ones((1, 4), np.float32))},
                                attributes={"names": ArrayAttr([StringAttr("state")])})  # fmt: skip
    v = g.add(var).results[0]
    y = g.op("ADD", [g.x, v], (1, 4))
    with pytest.raises(TflquantError, match=r"internal error: the written model fails LiteRT's model checks: tensor 'state' .* is a variable tensor with a buffer"):
        writer.write_flatbuffer(g.module([y]))


def test_zero_element_constant_is_a_constant() -> None:
    """An empty constant gets a buffer with an empty data vector: LiteRT's verifier counts it
    as a constant (the writer used to leave it without a buffer)."""
    g = GraphBuilder("main", {"x": ((2, 3), np.float32)})
    y = g.op("RESHAPE", [g.x, g.const(np.zeros((0,), np.int32), "empty_shape")], (6,))
    module = g.module([y])
    assert check_model(writer.write_flatbuffer(module)) == []
    plan = writer._plan(module)
    t = plan.subgraphs[0].tensors[_tensor(plan, "empty_shape")]
    assert t.buffer > 0 and plan.buffers[t.buffer] == b""


def test_large_custom_options_outside_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = writer._emit_operator
    OP = schema.OPERATOR_FIELDS

    def emit_operator(bld, o):  # noqa: ANN001, ANN202
        if o is not writer_ops[0]:
            return orig(bld, o)
        return bld.table([(OP["opcode_index"], "u32", o.opcode, 0), (OP["inputs"], "off", bld.numpy(o.inputs, "i32"), 0),
                          (OP["outputs"], "off", bld.numpy(o.outputs, "i32"), 0),
                          (OP["large_custom_options_offset"], "u64", 1 << 30, 0), (OP["large_custom_options_size"], "u64", 8, 0)])  # fmt: skip

    module = _module()
    plan = writer._plan(module)
    writer_ops = plan.subgraphs[0].operators
    monkeypatch.setattr(writer, "_emit_operator", emit_operator)
    problems = check_model(writer._emit(module, plan, None))
    assert any("operator #0 (FULLY_CONNECTED) of subgraph 'main': its custom options at bytes 1073741824..1073741832 lie outside" in p for p in problems), problems
