"""TFLite import/emit: lossless round trips (LiteRT bit-identical), file invariants, layouts."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from models import MODELS, GraphBuilder, run_tflite, sample_inputs, signature_attr, ttype
from xdsl.dialects.builtin import ArrayAttr, BoolAttr, DenseArrayBase, DictionaryAttr, IntegerAttr, IntegerType, StringAttr, TensorType, i32, i64

from tflquant.dialects import tfl
from tflquant.dialects.quant import CalibrationStatsAttr, StatsOp, UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy, parse_module, print_module
from tflquant.tflite import schema
from tflquant.tflite.flatbuf import root_table
from tflquant.tflite.reader import _min_inputs, read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer

M, SG, T, B = schema.MODEL_FIELDS, schema.SUBGRAPH_FIELDS, schema.TENSOR_FIELDS, schema.BUFFER_FIELDS


def _same_outputs(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))


def _text_roundtrip(data: bytes) -> bytes:
    m = parse_module(print_module(read_flatbuffer(data)))
    m.verify()
    return write_flatbuffer(m)


# ---------------------------------------------------------------------------------------
# Reference models (skipped when ../shared is absent)
# ---------------------------------------------------------------------------------------


def test_shared_models_roundtrip_bit_identical(shared_model):
    ev = dict(np.load(shared_model / "eval.npz"))
    files = sorted(shared_model.glob("*.tflite"))
    assert any(f.name == "float.tflite" for f in files)
    for path in files:
        orig = path.read_bytes()
        module = read_flatbuffer(orig, str(path))
        out = write_flatbuffer(module)
        assert write_flatbuffer(read_flatbuffer(orig)) == out, f"{path.name}: output not deterministic"
        assert write_flatbuffer(read_flatbuffer(out)) == out, f"{path.name}: import/emit is not a fixpoint"
        assert _same_outputs(run_tflite(orig, ev, n=3), run_tflite(out, ev, n=3)), f"{path.name}: LiteRT outputs differ"
        if path.name in ("float.tflite", "tf_int8.tflite", "tf_float16.tflite"):
            assert _text_roundtrip(orig) == out, f"{path.name}: text round trip changed the model"


def test_shared_signatures_and_metadata_survive(shared_model):
    from ai_edge_litert.interpreter import Interpreter

    orig = (shared_model / "float.tflite").read_bytes()
    out = write_flatbuffer(read_flatbuffer(orig))
    a, b = Interpreter(model_content=orig), Interpreter(model_content=out)
    assert a.get_signature_list() == b.get_signature_list()
    assert [d["name"] for d in a.get_input_details()] == [d["name"] for d in b.get_input_details()]
    assert [d["shape_signature"].tolist() for d in a.get_input_details()] == [d["shape_signature"].tolist() for d in b.get_input_details()]
    module = read_flatbuffer(out)
    assert "CONVERSION_METADATA" in module.attributes["tfl.metadata"].data


# ---------------------------------------------------------------------------------------
# Models built from IR
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_built_model_roundtrip(name):
    module = MODELS[name]()
    module.verify()
    data = write_flatbuffer(module)
    inputs = sample_inputs(module, 3, seed=7)
    expected = run_tflite(data, inputs)
    back = read_flatbuffer(data)
    again = write_flatbuffer(back)
    assert _same_outputs(expected, run_tflite(again, inputs))
    assert write_flatbuffer(read_flatbuffer(again)) == again
    assert _text_roundtrip(again) == again
    assert write_flatbuffer(MODELS[name]()) == data, "same module must give the same bytes"


def test_dynamic_batch_runs_with_other_batch_sizes():
    module = MODELS["dynamic_batch"]()
    data = write_flatbuffer(read_flatbuffer(write_flatbuffer(module)))
    text = print_module(read_flatbuffer(data))
    assert "tensor<?x5xi32>" in text
    inputs = sample_inputs(module, 2, batch=3)
    (out,) = run_tflite(data, inputs)
    assert out.shape == (2, 3, 3)


def test_read_tensor_types_equal_the_checked_constructor():
    """The reader builds plain tensor types without xDSL's parameter checks: each equals,
    and hashes as, TensorType(element, shape), dynamic dimensions included."""
    for name in ("dynamic_batch", "cnn", "shapes"):
        module = read_flatbuffer(write_flatbuffer(MODELS[name]()))
        types = {v.type for op in module.walk() for v in op.results if isinstance(v.type, TensorType)}
        assert types
        for t in types:
            same = TensorType(t.element_type, t.get_shape())
            assert t == same and hash(t) == hash(same) and str(t) == str(same)


# ---------------------------------------------------------------------------------------
# File-level invariants
# ---------------------------------------------------------------------------------------


def _buffers(data: bytes):
    return root_table(data).tables(M["buffers"])


def test_file_invariants():
    data = write_flatbuffer(MODELS["cnn"]())
    assert data[4:8] == b"TFL3"
    root = root_table(data)
    assert root.scalar(M["version"], "u32") == 3
    bufs = _buffers(data)
    assert bufs[0].raw_bytes(B["data"]) in (None, b"")
    for b in bufs[1:]:
        span = b.vector_span(B["data"])
        if span is not None and span[1]:
            assert span[0] % 16 == 0, "constant data must be 16-byte aligned"
    meta = {md.string(0): md.scalar(1, "u32") for md in root.tables(M["metadata"])}
    mrv = bufs[meta["min_runtime_version"]].raw_bytes(B["data"])
    assert len(mrv) == 16 and mrv.rstrip(b"\0").decode().count(".") == 2
    for oc in root.tables(M["operator_codes"]):
        code = oc.scalar(3, "i32")
        assert oc.scalar(0, "i8") == min(code, 127)


def test_identical_buffers_stored_once():
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    w = np.arange(4, dtype=np.float32)
    a = g.op("ADD", [g.x, g.const(w, "w1")], (1, 4))
    b = g.op("MUL", [a, g.const(w, "w2")], (1, 4))
    data = g.tflite([b])
    root = root_table(data)
    tensors = root.tables(M["subgraphs"])[0].tables(SG["tensors"])
    bufidx = {t.string(T["name"]): t.scalar(T["buffer"], "u32") for t in tensors}
    assert bufidx["w1"] == bufidx["w2"] != 0
    module = read_flatbuffer(data)
    consts = [op for op in module.walk() if isinstance(op, tfl.ConstOp)]
    assert len(consts) == 2  # one const per tensor, even when they share a buffer
    (out,) = run_tflite(data, {"x": np.ones((1, 1, 4), np.float32)})
    assert np.array_equal(out[0], (1 + w)[None] * w)


def test_buffers_alike_in_size_and_ends_are_shared_only_when_identical():
    """The writer groups constants by type, size and first / last bytes before comparing
    them: ones that differ only in the middle keep their own buffers, identical ones (three
    of each here, so a group holds more than one payload) share one."""
    g = GraphBuilder("main", {"x": ((1, 64), np.float32)})
    base = np.zeros(64, np.float32)
    mid = base.copy()
    mid[32] = 1.0  # the same first and last 16 bytes as `base`
    v = g.x
    for k, w in enumerate([base, mid, base.copy(), mid.copy(), base.copy(), mid.copy()]):
        v = g.op("ADD", [v, g.const(w, f"w{k}")], (1, 64))
    data = g.tflite([v])
    tensors = root_table(data).tables(M["subgraphs"])[0].tables(SG["tensors"])
    buf = {t.string(T["name"]): t.scalar(T["buffer"], "u32") for t in tensors}
    assert buf["w0"] == buf["w2"] == buf["w4"] != buf["w1"] == buf["w3"] == buf["w5"]
    (got,) = run_tflite(data, {"x": np.ones((1, 1, 64), np.float32)})
    assert np.array_equal(got[0], np.ones((1, 64), np.float32) + 3 * mid[None])


def test_op_versions_follow_types():
    """Float ops are version 1 unless options need more; int8 variants are version 2+."""
    data = write_flatbuffer(MODELS["cnn"]())
    root = root_table(data)
    names = {v: k for k, v in schema.BUILTIN_CODES.items()}
    versions = {names[oc.scalar(3, "i32")]: oc.scalar(2, "i32", 1) for oc in root.tables(M["operator_codes"])}
    assert versions["CONV_2D"] == 1 and versions["SOFTMAX"] == 1 and versions["FULLY_CONNECTED"] == 1
    data = write_flatbuffer(MODELS["matmul"]())
    root = root_table(data)
    versions = {names[oc.scalar(3, "i32")]: oc.scalar(2, "i32", 1) for oc in root.tables(M["operator_codes"])}
    assert versions["FULLY_CONNECTED"] == 5  # keep_num_dims


def _min_runtime(d: bytes) -> bytes:
    root = root_table(d)
    bufs = root.tables(M["buffers"])
    for m in root.tables(M["metadata"]):
        if m.string(0) == "min_runtime_version":
            return bufs[m.scalar(1, "u32", 0)].raw_bytes(B["data"])
    raise AssertionError("no min_runtime_version metadata")


def test_shared_versions_match_converter(shared_model):
    """Op versions and min_runtime_version equal the TF converter's (MLIR exporter) values.

    tf_int16x8 is left out: the legacy quantizer that makes it writes older versions and
    does not update min_runtime_version; ours follow the op version rules instead."""

    def versions(d: bytes) -> dict[int, int]:
        return {max(oc.scalar(3, "i32"), oc.scalar(0, "i8")): oc.scalar(2, "i32", 1) for oc in root_table(d).tables(M["operator_codes"])}

    for path in sorted(shared_model.glob("*.tflite")):
        if path.name == "tf_int16x8.tflite":
            continue
        orig = path.read_bytes()
        out = write_flatbuffer(read_flatbuffer(orig))
        assert versions(out) == versions(orig), path.name
        assert _min_runtime(out) == _min_runtime(orig), path.name


# ---------------------------------------------------------------------------------------
# Large-model layout
# ---------------------------------------------------------------------------------------


def test_large_model_offset_layout():
    module = MODELS["cnn"]()
    normal = write_flatbuffer(module)
    big = write_flatbuffer(module, max_flatbuffer_size=1024)
    bufs = _buffers(big)
    outside = [b for b in bufs if b.scalar(B["offset"], "u64", 0) > 1]
    assert outside and all(b.vector_span(B["data"]) is None for b in outside)
    for b in outside:
        off, size = b.scalar(B["offset"], "u64"), b.scalar(B["size"], "u64")
        assert off % 16 == 0 and off + size <= len(big)
    assert len(big) % 16 == 0
    # reads back to the same module, and LiteRT runs it with the same results
    assert write_flatbuffer(read_flatbuffer(big)) == write_flatbuffer(read_flatbuffer(normal))
    inputs = sample_inputs(module, 2)
    assert _same_outputs(run_tflite(normal, inputs), run_tflite(big, inputs))
    # a truncated large model is reported, not crashed on
    with pytest.raises(TflquantError, match="past the end"):
        read_flatbuffer(big[: len(big) - 200], "big.tflite")


# ---------------------------------------------------------------------------------------
# Signatures, names, dynamic shapes
# ---------------------------------------------------------------------------------------


def test_no_signatures_and_several_signatures():
    from ai_edge_litert.interpreter import Interpreter

    g = GraphBuilder("main", {"x": ((1, 3), np.float32), "y": ((1, 3), np.float32)})
    s = g.op("ADD", [g.args["x"], g.args["y"]], (1, 3), name="sum")
    d = g.op("SUB", [g.args["x"], g.args["y"]], (1, 3), name="diff")
    module = g.module([s, d], signature=None)
    data = write_flatbuffer(module)
    assert "tfl.signatures" not in read_flatbuffer(data).attributes
    assert Interpreter(model_content=data).get_signature_list() == {}

    module.attributes["tfl.signatures"] = ArrayAttr(
        [
            signature_attr("both", "main", ["x", "y"], ["s", "d"]),
            DictionaryAttr(
                {
                    "key": StringAttr("swapped"),
                    "function": StringAttr("main"),
                    "inputs": ArrayAttr([StringAttr("b"), StringAttr("a")]),
                    "input_indices": DenseArrayBase.from_list(i32, [1, 0]),
                    "outputs": ArrayAttr([StringAttr("only_diff")]),
                    "output_indices": DenseArrayBase.from_list(i32, [1]),
                }
            ),
        ]
    )
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    assert back.attributes["tfl.signatures"] == module.attributes["tfl.signatures"]
    it = Interpreter(model_content=data)
    assert set(it.get_signature_list()) == {"both", "swapped"}
    runner = it.get_signature_runner("swapped")
    res = runner(a=np.ones((1, 3), np.float32), b=np.full((1, 3), 5, np.float32))
    assert np.array_equal(res["only_diff"], np.full((1, 3), -4, np.float32))


def test_duplicate_and_missing_names():
    g = GraphBuilder("main", {"x": ((2,), np.float32)})
    a = g.op("RELU", [g.x], (2,), name="same")
    b = g.op("NEG", [a], (2,), name="same")
    c = tfl.BUILTIN_CLASSES["TANH"]([b], [ttype((2,))])  # no names attribute
    g.add(c)
    data = g.tflite([c.results[0]])
    tensors = root_table(data).tables(M["subgraphs"])[0].tables(SG["tensors"])
    names = [t.string(T["name"]) for t in tensors]
    assert names.count("same") == 2
    assert len(set(names)) == len(names) - 1 and all(names)
    back = read_flatbuffer(data)
    assert write_flatbuffer(back) == write_flatbuffer(read_flatbuffer(write_flatbuffer(back)))


def test_multiple_subgraphs_keep_order_and_names():
    g1 = GraphBuilder("main", {"x": ((2,), np.float32)})
    y = g1.op("RELU", [g1.x], (2,))
    g2 = GraphBuilder("helper body", {"x": ((2,), np.float32)})
    z = g2.op("NEG", [g2.x], (2,))
    module = g1.module([y], extra=[g2.function([z])])
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    text = print_module(back)
    assert '@"helper body"' in text and text.index("@main") < text.index('@"helper body"')
    assert _text_roundtrip(data) == write_flatbuffer(back)
    (out,) = run_tflite(data, {"x": np.array([[-1.0, 2.0]], np.float32)})
    assert np.array_equal(out[0], [0.0, 2.0])


# ---------------------------------------------------------------------------------------
# Quantized tensors, stats, fp16, sparse, variables, opaque ops
# ---------------------------------------------------------------------------------------


def test_quantized_tensors_and_stats_roundtrip():

    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    st = g.add(StatsOp(g.x, CalibrationStatsAttr.make(-1.0, 2.0)))
    qt = UniformQuantizedType.make(IntegerType(8), 0.05, -3)
    q = g.op("QUANTIZE", [st.results[0]], (1, 4), qt, name="q")
    wq = UniformQuantizedType.make(IntegerType(8), [0.1, 0.2, 0.3], 0, axis=0)
    w = g.add(tfl.ConstOp(dense_from_numpy(np.arange(12, dtype=np.int8).reshape(3, 4)), TensorType(wq, [3, 4]), name="w"))
    bq = UniformQuantizedType.make(IntegerType(32), [0.005, 0.01, 0.015], 0, axis=0)
    bias = g.add(tfl.ConstOp(dense_from_numpy(np.array([1, -2, 3], np.int32)), TensorType(bq, [3]), name="b"))
    fc = g.op("FULLY_CONNECTED", [q, w.results[0], bias.results[0]], (1, 3), UniformQuantizedType.make(IntegerType(8), 0.1, 5), name="fc")
    y = g.op("DEQUANTIZE", [fc], (1, 3), name="y")
    module = g.module([y])
    module.verify()
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    text = print_module(back)
    assert "!quant.uniform<i8:f32, 0.05:-3>" in text
    assert "!quant.uniform<i8:f32:0, {0.1, 0.2, 0.3}>" in text
    assert "quant.stats" in text and "<-1.0, 2.0>" in text
    assert write_flatbuffer(back) == write_flatbuffer(read_flatbuffer(write_flatbuffer(back)))
    x = np.array([[[0.5, -0.25, 1.0, 0.0]]], np.float32)
    (out,) = run_tflite(data, {"x": x})
    xq = np.clip(np.round(x[0] / 0.05) - 3, -128, 127) + 3
    acc = (xq @ np.arange(12).reshape(3, 4).T) * np.array([0.1, 0.2, 0.3]) * 0.05 + np.array([1, -2, 3]) * [0.005, 0.01, 0.015]
    expect = (np.clip(np.round(acc / 0.1) + 5, -128, 127) - 5) * 0.1
    assert np.allclose(out[0], expect, atol=1e-6)


def test_sparse_constant_densify():
    dense = np.array([[0, 1.5, 0, 0], [0, 0, 0, 0], [2.0, 0, 0, -3.0]], np.float32)
    rows, cols = np.nonzero(dense)
    segments = [0]
    for r in range(dense.shape[0]):
        segments.append(segments[-1] + int(np.sum(rows == r)))
    sparsity = DictionaryAttr(
        {
            "traversal_order": DenseArrayBase.from_list(i32, [0, 1]),
            "block_map": DenseArrayBase.from_list(i32, []),
            "dim_metadata": ArrayAttr(
                [
                    DictionaryAttr({"format": IntegerAttr(0, i32), "dense_size": IntegerAttr(3, i32)}),
                    DictionaryAttr(
                        {
                            "format": IntegerAttr(1, i32),
                            "dense_size": IntegerAttr(0, i32),
                            "array_segments_type": IntegerAttr(1, i32),
                            "array_segments": DenseArrayBase.from_list(i32, segments),
                            "array_indices_type": IntegerAttr(3, i32),
                            "array_indices": DenseArrayBase.from_list(i32, [int(c) for c in cols]),
                        }
                    ),
                ]
            ),
        }
    )
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    sp = g.add(
        tfl.SparseConstOp.create(
            properties={"value": dense_from_numpy(dense[rows, cols]), "sparsity": sparsity},
            result_types=[ttype((3, 4))],
            attributes={"names": ArrayAttr([StringAttr("sparse_w")])},
        )
    )
    d = g.op("DENSIFY", [sp.results[0]], (3, 4))
    y = g.op("FULLY_CONNECTED", [g.x, d, g.no_value()], (1, 3))
    data = g.tflite([y])
    back = read_flatbuffer(data)
    assert back.is_structurally_equivalent(read_flatbuffer(write_flatbuffer(back)))
    assert write_flatbuffer(back) == data or write_flatbuffer(read_flatbuffer(write_flatbuffer(back))) == write_flatbuffer(back)
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]], np.float32)
    (out,) = run_tflite(write_flatbuffer(back), {"x": x})
    assert np.allclose(out[0], x[0] @ dense.T)


def test_variable_tensor_roundtrip():
    g = GraphBuilder("main", {"x": ((1, 2), np.float32)})
    var = g.add(tfl.VariableOp.create(result_types=[ttype((1, 2))], attributes={"names": ArrayAttr([StringAttr("state")])}))
    y = g.op("ADD", [g.x, var.results[0]], (1, 2))
    data = g.tflite([y])
    tensors = root_table(data).tables(M["subgraphs"])[0].tables(SG["tensors"])
    assert any(t.scalar(T["is_variable"], "bool", False) for t in tensors)
    back = read_flatbuffer(data)
    assert any(isinstance(op, tfl.VariableOp) for op in back.walk())
    assert write_flatbuffer(back) == data
    (out,) = run_tflite(data, {"x": np.array([[[1.0, 2.0]]], np.float32)})
    assert np.array_equal(out[0], [[1.0, 2.0]])


def test_opaque_builtin_custom_and_options2_roundtrip():
    g = GraphBuilder("main", {"x": ((2, 3), np.float32)})
    (fl,) = g.opaque(schema.BUILTIN_CODES["FLOOR"], [g.x], [ttype((2, 3))])
    module = g.module([fl])
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    assert [op.op_name for op in back.walk() if isinstance(op, tfl.OpaqueOp)] == ["FLOOR"]
    (out,) = run_tflite(data, {"x": np.array([[[1.5, -0.5, 2.0], [0.1, -2.2, 3.9]]], np.float32)})
    assert np.array_equal(out[0], np.floor([[1.5, -0.5, 2.0], [0.1, -2.2, 3.9]]))

    # custom op (LiteRT cannot run it) and a BuiltinOptions2 op: bytes survive exactly
    g = GraphBuilder("main", {"x": ((4,), np.float32)})
    (c,) = g.opaque(schema.BUILTIN_CODES["CUSTOM"], [g.x], [ttype((4,))], custom_code="MyOp", custom_options=b"\x01\x02\x03")
    op2 = tfl.OpaqueOp.create(
        operands=[c, c],
        result_types=[ttype((8,))],
        properties={
            "code": IntegerAttr(schema.BUILTIN_CODES["STABLEHLO_CONCATENATE"], i32),
            "version": IntegerAttr(1, i32),
            "options_type": IntegerAttr(schema.OPTIONS2_UNION["StablehloConcatenateOptions"], i32),
            "options2": BoolAttr.from_bool(True),
            "options": DictionaryAttr({"dimension": IntegerAttr(1, i64)}),
        },
    )
    g.add(op2)
    (gm,) = g.opaque(schema.BUILTIN_CODES["GELU"] + 1000, [op2.results[0]], [ttype((8,))], version=7)
    module = g.module([gm])
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    ops = [op for op in back.walk() if isinstance(op, tfl.OpaqueOp)]
    assert ops[0].custom_options.data == b"\x01\x02\x03" and ops[0].op_name == "MyOp"
    assert ops[1].options2 is not None and ops[1].options.data["dimension"].value.data == 1
    assert ops[2].version.value.data == 7
    assert write_flatbuffer(back) == write_flatbuffer(read_flatbuffer(write_flatbuffer(back)))
    assert _text_roundtrip(data) == write_flatbuffer(back)


def test_min_runtime_version_recomputed():
    data = write_flatbuffer(MODELS["cnn"]())
    module = read_flatbuffer(data)
    md = module.attributes.get("tfl.metadata")
    assert md is None or "min_runtime_version" not in md.data
    root = root_table(data)
    meta = {m.string(0): m.scalar(1, "u32") for m in root.tables(M["metadata"])}
    value = root.tables(M["buffers"])[meta["min_runtime_version"]].raw_bytes(0).rstrip(b"\0").decode()
    assert value == "1.6.0"  # SUB and MEAN v1 first ran in TFLite 1.6.0


def test_fp16_constant_payload(shared_model):
    data = (shared_model / "tf_float16.tflite").read_bytes()
    text = print_module(read_flatbuffer(data))
    assert "xf16>" in text and '"tfl.dequantize"' in text


def test_reader_header_errors():
    with pytest.raises(TflquantError, match="not a TFLite model"):
        read_flatbuffer(b"hello world, not a model", "junk.bin")
    with pytest.raises(TflquantError, match="m.tflite"):
        read_flatbuffer(b"\x00\x01", "m.tflite")
    data = bytearray(write_flatbuffer(MODELS["cnn"]()))
    root = struct.unpack_from("<I", data, 0)[0]
    struct.pack_into("<I", data, 0, root + 10_000_000)
    with pytest.raises(TflquantError, match="corrupted"):
        read_flatbuffer(bytes(data), "bad.tflite")


def test_intermediates_roundtrip():
    g = GraphBuilder("main", {"x": ((1, 2), np.float32)})
    y = g.op("ADD", [g.x, g.x], (1, 2), name="y")
    y.owner.attributes["tfl.intermediates"] = ArrayAttr(
        [
            DictionaryAttr({"name": StringAttr("gate"), "type": ttype((1, 2)), "stats": CalibrationStatsAttr.make(-1.0, 1.0)}),
            DictionaryAttr({"name": StringAttr("q_gate"), "type": TensorType(UniformQuantizedType.make(IntegerType(16), 0.5, 0), [1, 2])}),
        ]
    )
    data = g.tflite([y])
    root = root_table(data)
    op = root.tables(M["subgraphs"])[0].tables(SG["operators"])[0]
    assert len(op.vector(schema.OPERATOR_FIELDS["intermediates"], "i32")) == 2
    back = read_flatbuffer(data)
    (add,) = [o for o in back.walk() if isinstance(o, tfl.AddOp)]
    assert add.attributes["tfl.intermediates"] == y.owner.attributes["tfl.intermediates"]
    assert write_flatbuffer(back) == data
    (out,) = run_tflite(data, {"x": np.array([[[1.0, -2.0]]], np.float32)})
    assert np.array_equal(out[0], [[2.0, -4.0]])


def _legacy_model() -> bytes:
    """A hand-built model the way old converters wrote them: only deprecated_builtin_code,
    no names, no options table, no signatures, an all-zero scale on an int32 tensor."""
    from tflquant.tflite.flatbuf import Builder

    b = Builder()
    Q, OP, C = schema.QUANTIZATION_FIELDS, schema.OPERATOR_FIELDS, schema.OPERATOR_CODE_FIELDS
    data = b.bytes_vector(np.array([1, 2, 3], np.int32).tobytes(), 16)
    bufs = [b.table([]), b.table([(B["data"], "off", data, 0)])]
    q = b.table([(Q["scale"], "off", b.numpy([0.0], "f32"), 0), (Q["zero_point"], "off", b.numpy([0], "i64"), 0)])
    t_in = b.table([(T["shape"], "off", b.numpy([3], "i32"), 0), (T["type"], "i8", 2, 0)])
    t_c = b.table([(T["shape"], "off", b.numpy([3], "i32"), 0), (T["type"], "i8", 2, 0), (T["buffer"], "u32", 1, 0), (T["quantization"], "off", q, 0)])
    t_out = b.table([(T["shape"], "off", b.numpy([3], "i32"), 0), (T["type"], "i8", 2, 0)])
    op = b.table([(OP["inputs"], "off", b.numpy([0, 1], "i32"), 0), (OP["outputs"], "off", b.numpy([2], "i32"), 0)])
    sg = b.table(
        [
            (SG["tensors"], "off", b.offsets([t_in, t_c, t_out]), 0),
            (SG["inputs"], "off", b.numpy([0], "i32"), 0),
            (SG["outputs"], "off", b.numpy([2], "i32"), 0),
            (SG["operators"], "off", b.offsets([op]), 0),
        ]
    )
    oc = b.table([(C["deprecated_builtin_code"], "i8", schema.BUILTIN_CODES["ADD"], None)])
    root = b.table(
        [
            (M["version"], "u32", 3, 0),
            (M["operator_codes"], "off", b.offsets([oc]), 0),
            (M["subgraphs"], "off", b.offsets([sg]), 0),
            (M["buffers"], "off", b.offsets(bufs), 0),
        ]
    )
    return b.finish(root, b"TFL3")


def test_legacy_style_model():
    from ai_edge_litert.interpreter import Interpreter

    orig = _legacy_model()
    Interpreter(model_content=orig).allocate_tensors()
    module = read_flatbuffer(orig)
    text = print_module(module)
    assert "@main" in text and '"tfl.add"' in text and "quant" not in text
    assert '"tensor_0"' in text and '"tensor_2"' in text
    out = write_flatbuffer(module)
    x = {"x": np.array([[10, 20, 30]], np.int32)}
    assert _same_outputs(run_tflite(orig, x), run_tflite(out, x))
    assert run_tflite(out, x)[0].tolist() == [[11, 22, 33]]


def test_control_flow_while_subgraphs():
    """WHILE (an opaque op) refers to its cond/body subgraphs by index: order must hold."""
    main = GraphBuilder("main", {"x": ((2,), np.float32)})
    i0 = main.const(np.array(0, np.int32), "i0")
    while_op = tfl.OpaqueOp.create(
        operands=[i0, main.x],
        result_types=[ttype((), np.int32), ttype((2,))],
        properties={
            "code": IntegerAttr(schema.BUILTIN_CODES["WHILE"], i32),
            "version": IntegerAttr(1, i32),
            "options_type": IntegerAttr(schema.OPTIONS_UNION["WhileOptions"], i32),
            "options": DictionaryAttr({"cond_subgraph_index": IntegerAttr(1, i32), "body_subgraph_index": IntegerAttr(2, i32)}),
        },
        attributes={"names": ArrayAttr([StringAttr("i_final"), StringAttr("x_final")])},
    )
    main.add(while_op)
    cond = GraphBuilder("cond", {"i": ((), np.int32), "x": ((2,), np.float32)})
    c = cond.op("LESS", [cond.args["i"], cond.const(np.array(3, np.int32))], (), np.bool_)
    body = GraphBuilder("body", {"i": ((), np.int32), "x": ((2,), np.float32)})
    i1 = body.op("ADD", [body.args["i"], body.const(np.array(1, np.int32))], (), np.int32)
    x1 = body.op("MUL", [body.args["x"], body.const(np.array([2.0], np.float32))], (2,))
    module = main.module([while_op.results[1]], extra=[cond.function([c]), body.function([i1, x1])])
    module.verify()
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    assert [f.sym_name.data for f in back.body.ops] == ["main", "cond", "body"]
    again = write_flatbuffer(back)
    x = {"x": np.array([[1.0, -0.5]], np.float32)}
    (out,) = run_tflite(again, x)
    assert np.array_equal(out[0], [8.0, -4.0])
    assert _same_outputs(run_tflite(data, x), [out])
    assert _text_roundtrip(again) == again


def test_signed_zeros_survive_text():
    g = GraphBuilder("main", {"x": ((4,), np.float32)})
    w = np.array([0.0, -0.0, 0.0, -0.0], np.float32)
    y = g.op("ADD", [g.x, g.const(w, "zeros")], (4,))
    data = g.tflite([y])
    back = parse_module(print_module(read_flatbuffer(data)))
    (c,) = [op for op in back.walk() if isinstance(op, tfl.ConstOp)]
    assert c.value.data.data == w.tobytes()


def _non_default(table: str, field: str, ftype: str, default: object) -> object:
    enum = tfl.enum_of(table, field) if not ftype.startswith("[") else None
    if enum is not None:
        return next(v for v in sorted(enum.values()) if v != default)
    if ftype == "bool":
        return not default
    if ftype in ("f32", "f64"):
        return 0.75
    if ftype == "string":
        return "some name"
    if ftype in ("[u8]", "[i8]"):
        return [1, 2, 200 if ftype == "[u8]" else -5]
    if ftype == "[f32]":
        return [0.5, 1.25]
    if ftype.startswith("["):
        return [3, 1, 2]
    return 3


def _option_tables():
    for table, fields in schema.OPTION_TABLES.items():
        yield False, table, fields
    for table, fields in schema.OPTION2_TABLES.items():
        yield True, table, fields


@pytest.mark.parametrize("builtin", sorted(b for b, c in tfl.BUILTIN_CLASSES.items() if c.OPTIONS))
def test_typed_options_roundtrip(builtin):
    """Every option field of every modelled op survives emit/import (and text)."""
    cls = tfl.BUILTIN_CLASSES[builtin]
    opts = {f: _non_default(cls.OPTIONS, f, t, d) for f, (t, d) in cls.FIELDS.items()}
    g = GraphBuilder("main", {"x": ((2,), np.float32)})
    need = max(1, _min_inputs(cls))  # the reader refuses an op with fewer inputs than LiteRT needs
    op = g.add(cls([g.x] * need, [ttype((2,))], options=opts, names=["y"]))
    data = g.tflite([op.results[0]])
    back = read_flatbuffer(data)
    (op2,) = [o for o in back.walk() if isinstance(o, cls)]
    for f in cls.FIELDS:
        assert op2.option(f) == op.option(f), f"{builtin}.{f}"
    assert _text_roundtrip(data) == write_flatbuffer(back)


@pytest.mark.parametrize("is2,table,fields", list(_option_tables()), ids=lambda v: v if isinstance(v, str) else None)
def test_opaque_options_roundtrip(is2, table, fields):
    """Every options table (BuiltinOptions and BuiltinOptions2) survives on an opaque op."""
    union = schema.OPTIONS2_UNION if is2 else schema.OPTIONS_UNION
    values = {f: tfl.option_to_attr(table, f, t, _non_default(table, f, t, d)) for f, _s, t, d in fields}
    props = {
        "code": IntegerAttr(9999, i32),
        "version": IntegerAttr(2, i32),
        "options_type": IntegerAttr(union[table], i32),
        "options": DictionaryAttr(values),
    }
    if is2:
        props["options2"] = BoolAttr.from_bool(True)
    g = GraphBuilder("main", {"x": ((2,), np.float32)})
    op = g.add(tfl.OpaqueOp.create(operands=[g.x], result_types=[ttype((2,))], properties=props))
    data = g.tflite([op.results[0]])
    back = read_flatbuffer(data)
    (op2,) = [o for o in back.walk() if isinstance(o, tfl.OpaqueOp)]
    assert op2.options_type.value.data == union[table]
    assert (op2.options.data if op2.options else {}) == values
    assert _text_roundtrip(data) == write_flatbuffer(back)


def test_tflite_micro_example_model_roundtrip():
    """The sine model shipped inside the tflite-micro package (a test dependency)."""
    from pathlib import Path

    import tflite_micro

    path = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    orig = path.read_bytes()
    out = write_flatbuffer(read_flatbuffer(orig, str(path)))
    x = {"x": np.linspace(0, 6, 16, dtype=np.float32).reshape(16, 1, 1)}
    assert _same_outputs(run_tflite(orig, x), run_tflite(out, x))
    assert write_flatbuffer(read_flatbuffer(out)) == out


def test_tflite_micro_runs_emitted_int8_model():
    from conftest import shared_model_dir
    from tflite_micro.python.tflite_micro import runtime

    d = shared_model_dir("digits_cnn")
    orig = (d / "tf_int8only.tflite").read_bytes()
    out = write_flatbuffer(read_flatbuffer(orig))
    x = np.load(d / "eval.npz")["serving_default_keras_tensor:0"][:2]
    results = []
    for data in (orig, out):
        it = runtime.Interpreter.from_bytes(data)
        det = it.get_input_details(0)
        qp = det["quantization_parameters"]
        rows = []
        for s in range(len(x)):
            xq = np.clip(np.round(x[s : s + 1] / qp["scales"][0]) + qp["zero_points"][0], -128, 127).astype(np.int8)
            it.set_input(xq.reshape(det["shape"]), 0)
            it.invoke()
            rows.append(it.get_output(0).copy())
        results.append(np.stack(rows))
    assert np.array_equal(results[0], results[1])


# ---------------------------------------------------------------------------------------
# Property test: random graphs survive emit -> import -> emit and text exactly
# ---------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_UNARY = ["RELU", "RELU6", "TANH", "LOGISTIC", "NEG", "ABS", "EXP", "HARD_SWISH"]
_BINARY = ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"]


@st.composite
def _graphs(draw):
    from xdsl.dialects.builtin import IntegerType

    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    dynamic = draw(st.booleans())
    in_shape = (None, *shape[1:]) if dynamic else shape
    n_in = draw(st.integers(1, 3))
    g = GraphBuilder(draw(st.sampled_from(["main", "serving", "f 1"])), {f"in{k}": (in_shape, np.float32) for k in range(n_in)})
    values = list(g.block.args)
    names = st.one_of(st.none(), st.sampled_from(["a", "b", "same", "weird name/with:stuff;ü"]))
    for _ in range(draw(st.integers(1, 8))):
        choice = draw(st.integers(0, 3))
        name = draw(names)
        if choice == 0:
            v = g.op(draw(st.sampled_from(_UNARY)), [draw(st.sampled_from(values))], in_shape, name=name)
        elif choice == 1:
            a, b = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            kind = draw(st.sampled_from(_BINARY))
            act = {"fused_activation_function": draw(st.sampled_from(["NONE", "RELU", "RELU6"]))} if kind in ("ADD", "SUB", "MUL") else {}
            v = g.op(kind, [a, b], in_shape, name=name, **act)
        elif choice == 2:
            n = 1 if (dynamic and rank == 1) else shape[-1]
            w = np.asarray(draw(st.lists(st.floats(-4, 4, width=32), min_size=n, max_size=n)), np.float32)
            v = g.op("ADD", [draw(st.sampled_from(values)), g.const(w, name)], in_shape)
        else:
            scale = draw(st.floats(0.0009765625, 16.0, width=32))
            zp = draw(st.integers(-128, 127))
            q = g.op("QUANTIZE", [draw(st.sampled_from(values))], in_shape, UniformQuantizedType.make(IntegerType(8), scale, zp), name=name)
            v = g.op("DEQUANTIZE", [q], in_shape)
        values.append(v)
    outs = draw(st.lists(st.sampled_from(values[n_in:]), min_size=1, max_size=3))
    if draw(st.booleans()):
        outs.append(values[0])  # an input returned as is
    sig = draw(st.sampled_from([None, "serving_default"]))
    return g.module(outs, signature=sig)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_graphs())
def test_random_graphs_roundtrip(module):
    module.verify()
    data = write_flatbuffer(module)
    assert write_flatbuffer(module) == data
    back = read_flatbuffer(data)
    again = write_flatbuffer(back)
    assert write_flatbuffer(read_flatbuffer(again)) == again
    assert _text_roundtrip(again) == again
    inputs = sample_inputs(module, 1, seed=3, batch=2)
    assert _same_outputs(run_tflite(data, inputs), run_tflite(again, inputs))


def _string_buffer(items: list[bytes]) -> bytes:
    """TFLite's string tensor layout: count, count+1 offsets, then the bytes."""
    header = 4 * (len(items) + 2)
    offsets, pos = [], header
    for it in items:
        offsets.append(pos)
        pos += len(it)
    offsets.append(pos)
    return struct.pack(f"<{len(items) + 2}i", len(items), *offsets) + b"".join(items)


def test_string_tensors_roundtrip():
    from xdsl.dialects.builtin import IntegerType, Signedness

    words = [b"alpha", b"", "größe".encode()]
    g = GraphBuilder("main", {"idx": ((2,), np.int32)})
    raw = _string_buffer(words)
    table = g.add(
        tfl.ConstOp(
            dense_from_numpy(np.frombuffer(raw, np.uint8), IntegerType(8, Signedness.UNSIGNED)),
            TensorType(tfl.StringType(), [3]),
            name="vocab",
        )
    )
    y = g.op("GATHER", [table.results[0], g.x], (2,), tfl.StringType(), axis=0)
    module = g.module([y])
    module.verify()
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    text = print_module(back)
    assert "tensor<3x!tfl.string>" in text
    assert write_flatbuffer(back) == write_flatbuffer(read_flatbuffer(write_flatbuffer(back)))
    assert _text_roundtrip(data) == write_flatbuffer(back)
    (out,) = run_tflite(write_flatbuffer(back), {"idx": np.array([[2, 0]], np.int32)})
    assert list(out[0]) == [words[2], words[0]]


def _opaque(g: GraphBuilder, builtin: str, inputs, result_types, options: dict | None = None, table: str | None = None):
    props = {"code": IntegerAttr(schema.BUILTIN_CODES[builtin], i32), "version": IntegerAttr(1, i32)}
    if table is not None:
        props["options_type"] = IntegerAttr(schema.OPTIONS_UNION[table], i32)
        props["options"] = DictionaryAttr(options or {})
    op = tfl.OpaqueOp.create(operands=list(inputs), result_types=list(result_types), properties=props)
    g.add(op)
    return op.results


def test_resource_variables_stateful_model():
    """VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE with a CALL_ONCE init subgraph."""
    res = TensorType(tfl.ResourceType(), [])
    main = GraphBuilder("main", {"x": ((1,), np.float32)})
    _opaque(main, "CALL_ONCE", [], [], {"init_subgraph_index": IntegerAttr(1, i32)}, "CallOnceOptions")
    (h,) = _opaque(main, "VAR_HANDLE", [], [res], {"shared_name": StringAttr("counter")}, "VarHandleOptions")
    (v,) = _opaque(main, "READ_VARIABLE", [h], [ttype((1,))], {}, "ReadVariableOptions")
    s = main.op("ADD", [v, main.x], (1,), name="total")
    _opaque(main, "ASSIGN_VARIABLE", [h, s], [], {}, "AssignVariableOptions")
    init = GraphBuilder("init", {})
    (h0,) = _opaque(init, "VAR_HANDLE", [], [res], {"shared_name": StringAttr("counter")}, "VarHandleOptions")
    _opaque(init, "ASSIGN_VARIABLE", [h0, init.const(np.array([10.0], np.float32))], [], {}, "AssignVariableOptions")
    module = main.module([s], extra=[init.function([])])
    module.verify()
    data = write_flatbuffer(module)
    back = read_flatbuffer(data)
    assert "tensor<!tfl.resource>" in print_module(back)
    again = write_flatbuffer(back)
    assert _text_roundtrip(again) == again
    x = {"x": np.array([[1.0], [2.0], [3.0]], np.float32)}
    (out,) = run_tflite(again, x)
    assert out.ravel().tolist() == [11.0, 13.0, 16.0]
    assert _same_outputs(run_tflite(data, x), [out])
