"""int4 and blockwise weights (issue 12): packing, the flatbuffer round trip, LiteRT running
what tflquant writes (builtin kernels and XNNPACK) like the float reference interpreter,
the weight report, per-op overrides and the errors for options that cannot apply."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tflquant
from tflquant.dialects import tfl
from tflquant.dialects.quant import BlockwiseQuantizedType, UniformQuantizedType
from tflquant.errors import TflquantError
from tflquant.reference import Interpreter
from tflquant.tflite.int4 import pack_int4, unpack_int4
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer
from tests.models import GraphBuilder

# ---------------------------------------------------------------------------------------
# packing
# ---------------------------------------------------------------------------------------


def test_int4_nibble_order_low_first():
    assert pack_int4(np.array([1, 2], np.int8)) == b"\x21"
    assert pack_int4(np.array([-1], np.int8)) == b"\x0f"  # odd count: high nibble zero
    assert pack_int4(np.array([-8, 7, 0], np.int8)) == bytes([0x78, 0x00])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 33, 1001])
def test_int4_pack_round_trip(n):
    v = np.random.default_rng(n).integers(-8, 8, n).astype(np.int8)
    packed = pack_int4(v)
    assert len(packed) == (n + 1) // 2
    assert np.array_equal(unpack_int4(packed, n), v)


def _lanes_int4(values: np.ndarray) -> bytes:
    """Two values per byte, low nibble first, value by value."""
    v = [int(x) & 0xF for x in np.asarray(values).reshape(-1)] + [0]
    return bytes(v[i] | (v[i + 1] << 4) for i in range(0, len(v) - 1, 2))


def test_int4_pack_of_every_byte_pair():
    """The paired path (an even count of one-byte values) on all 65536 byte pairs, signed and
    unsigned, a strided view and a 2-D shape, against the nibbles taken one by one."""
    pairs = np.arange(1 << 16, dtype=np.uint16)
    v = np.stack([pairs & 0xFF, pairs >> 8], axis=1).astype(np.uint8).reshape(-1)
    want = _lanes_int4(v)
    assert pack_int4(v) == want and pack_int4(v.view(np.int8)) == want
    s = np.random.default_rng(1).integers(-8, 8, (6, 10)).astype(np.int8)
    assert pack_int4(s[:, ::2]) == _lanes_int4(s[:, ::2]) and pack_int4(s.T) == _lanes_int4(s.T)
    assert pack_int4(s.astype(np.int32)) == _lanes_int4(s)  # other dtypes: the lanes path


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7, 12, 13, 65])
def test_int4_packed_slice_by_slice_equals_the_nibbles(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """packed() in slices of 3 pairs (boundaries inside and at the end, an odd last value),
    from a Slab or not, against the nibbles taken one by one; read-only."""
    import tflquant.tflite.int4 as int4

    monkeypatch.setattr(int4, "_PACK_CHUNK", 3)
    v = np.random.default_rng(n).integers(-8, 8, n).astype(np.int8)
    for slab in (None, int4.Slab()):
        for values in (v, v.view(np.uint8), v.reshape(1, -1)):
            got = int4.packed(values, 4, slab)
            assert got.dtype == np.uint8 and not got.flags.writeable
            assert got.tobytes() == _lanes_int4(v)
    two = np.random.default_rng(n).integers(-2, 2, n).astype(np.int8)  # int2: four a byte, the lanes path
    assert int4.packed(two, 2, int4.Slab()).tobytes() == int4.pack_bits(two, 2)
    assert np.array_equal(int4.unpack_bits(int4.packed(two, 2), n, 2), two)


def test_slab_arrays_do_not_overlap():
    from tflquant.tflite.int4 import Slab

    slab = Slab()
    slab.BLOCK = slab.first = 4096
    arrays = [slab.take((n,), np.int8) for n in (1, 100, 63, 1000, 2048, 3000, 5)]  # 3000 > half a block: its own
    arrays.append(slab.take((7, 9), np.int16))
    for i, a in enumerate(arrays):
        a[...] = i + 1
    for i, a in enumerate(arrays):
        assert (a == i + 1).all() and a.flags.c_contiguous
        root = a
        while root.base is not None:
            root = root.base
        if root is not a:  # each starts a multiple of 64 bytes into its block
            assert root.nbytes == 4096 and (a.__array_interface__["data"][0] - root.__array_interface__["data"][0]) % 64 == 0
    assert arrays[-1].shape == (7, 9) and arrays[-1].dtype == np.int16
    assert arrays[5].base is None  # the big one is an array of its own
    small = Slab(expect=1000)  # the bytes expected: a first block no bigger than needed (at least 64 KB)
    a, b = small.take((600,), np.int8), small.take((300,), np.int16)
    roots = []
    for x in (a, b):
        while x.base is not None:
            x = x.base
        roots.append(x)
    assert roots[0] is roots[1] and roots[0].nbytes == 1 << 16
    grown = Slab()  # nothing expected: blocks of 1 MB, then 2 MB, ...
    sizes = []
    for _ in range(3):
        x = grown.take((700_000,), np.uint8)
        while x.base is not None:
            x = x.base
        sizes.append(x.nbytes)
    assert sizes == [1 << 20, 2 << 20, 2 << 20]


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


def _heavy(rng, *shape):
    return (rng.standard_t(3, size=shape) * 0.05).astype(np.float32)


def _lm(in_dim: int = 128) -> bytes:
    """x (2, in_dim) -> FC 'hidden' (128) -> FC 'head' (96); ids (5,) -> GATHER 'emb' from a
    (64, 128) table. Heavy-tailed weights, like a trained LM's."""
    rng = np.random.default_rng(0)
    g = GraphBuilder("main", {"x": ((2, in_dim), np.float32), "ids": ((5,), np.int32)})
    h = g.op("FULLY_CONNECTED", [g.x, g.const(_heavy(rng, 128, in_dim), "w_hidden"), g.const(np.zeros(128, np.float32), "b_hidden")], (2, 128), name="hidden")
    y = g.op("FULLY_CONNECTED", [h, g.const(_heavy(rng, 96, 128), "w_head"), g.no_value()], (2, 96), name="head")
    e = g.op("GATHER", [g.const(_heavy(rng, 64, 128), "table"), g.args["ids"]], (5, 128), name="emb", axis=0)
    return g.tflite([y, e])


def _inputs(n=3, in_dim=128):
    rng = np.random.default_rng(1)
    return [rng.normal(size=(n, 2, in_dim)).astype(np.float32), rng.integers(0, 64, (n, 5)).astype(np.int32)]


def _litert(model: bytes, inputs, resolver: str):
    from ai_edge_litert.interpreter import Interpreter as LiteRT
    from ai_edge_litert.interpreter import OpResolverType

    rt = OpResolverType.AUTO if resolver == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = LiteRT(model_content=model, experimental_op_resolver_type=rt)
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    res = [[] for _ in outs]
    for k in range(len(inputs[0])):
        for d, x in zip(ins, inputs):
            it.set_tensor(d["index"], x[k])
        it.invoke()
        for r, d in zip(res, outs):
            r.append(it.get_tensor(d["index"]).copy())
    return [np.stack(r) for r in res]


def _sqnr(ref, x):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - x).astype(np.float64) ** 2), 1e-30))


CASES = [  # mode, bits, granularity, block
    ("dynamic", 8, "channel", 32),
    ("dynamic", 4, "channel", 32),
    ("dynamic", 4, "tensor", 32),
    ("dynamic", 4, "block", 32),
    ("dynamic", 4, "block", 128),
    ("weight-only", 8, "channel", 32),
    ("weight-only", 4, "channel", 32),
    ("weight-only", 4, "block", 32),
]


@pytest.fixture(scope="module")
def lm():
    return _lm()


@pytest.mark.parametrize("mode,bits,gran,block", CASES)
def test_litert_runs_like_the_reference(lm, mode, bits, gran, block):
    r = tflquant.quantize(lm, mode=mode, weight_bits=bits, granularity=gran, block_size=block, min_weight_elements=256)
    inputs = _inputs()
    floats = _litert(lm, inputs, "builtin")
    ref = Interpreter(read_flatbuffer(r.model)).run(inputs)
    # hybrid kernels quantize their input on the fly: within that rounding of the reference
    tol = 30.0 if mode == "dynamic" else 80.0
    for resolver in ("builtin", "xnnpack"):
        got = _litert(r.model, inputs, resolver)
        for g, want, f in zip(got, ref, floats):
            assert _sqnr(want, g) > tol, (resolver, _sqnr(want, g))
            assert _sqnr(f, g) > ({8: 25, 4: 8}[bits] if gran != "tensor" else 0)  # int4 per tensor: heavy tails cost it all
    kinds = {(w.name, w.bits, w.granularity, w.read) for w in r.report.weight_formats}
    hidden = next(w for w in r.report.weight_formats if w.name == "hidden")
    assert hidden.bits == bits and hidden.granularity == gran
    assert hidden.read == ("hybrid" if mode == "dynamic" else "dequantize"), kinds
    assert hidden.sqnr_db > {8: 30, 4: 10}[bits] or gran == "tensor"
    if gran == "block" and mode == "dynamic":  # LiteRT's BlockwiseQuantization, fp16 scales
        m = read_flatbuffer(r.model)
        w = next(o for o in m.walk() if isinstance(o, tfl.ConstOp) and isinstance(o.result.type.element_type, BlockwiseQuantizedType))
        assert w.result.type.element_type.block_size.data == block
        assert "block" in str(r.report)


@pytest.mark.parametrize("mode,bits,gran,block", [CASES[3], CASES[6]])
def test_write_read_round_trip(lm, mode, bits, gran, block):
    r = tflquant.quantize(lm, mode=mode, weight_bits=bits, granularity=gran, block_size=block, min_weight_elements=256)
    m = read_flatbuffer(r.model)
    once = write_flatbuffer(m)  # the reader puts constants first: a fixed point after one read
    assert write_flatbuffer(read_flatbuffer(once)) == once
    from tflquant.ir import value_name

    def key(t):  # TFLite stores no narrow range: compare storage, scales, zero points, axis
        e = t.element_type
        if isinstance(e, UniformQuantizedType):
            return (tuple(t.get_shape()), e.storage_type, e.scales, e.zero_points, e.axis)
        return t

    def consts(mod):
        return {value_name(o.result): (key(o.result.type), o.numpy().tobytes()) for o in mod.walk() if isinstance(o, tfl.ConstOp)}

    assert consts(m) == consts(r.module)  # same types (int4 / blockwise scales) and values
    elems = [o.result.type.element_type for o in m.walk() if isinstance(o, tfl.ConstOp)]
    assert any(isinstance(e, (UniformQuantizedType, BlockwiseQuantizedType)) and e.bits == bits for e in elems)
    # int4 is half the bytes of int8
    assert r.report.weights.get(f"int{bits}", 0) > 0


def test_int4_smaller_than_int8(lm):
    sizes = {b: len(tflquant.quantize(lm, mode="weight-only", weight_bits=b, min_weight_elements=256).model) for b in (8, 4)}
    assert sizes[4] < 0.65 * sizes[8]


def test_block_scales_never_underflow():
    """A block of tiny values: its fp16 scale is clamped to the smallest fp16 normal (a zero
    scale makes XNNPACK refuse the model); LiteRT runs it."""
    rng = np.random.default_rng(3)
    w = _heavy(rng, 16, 64)
    w[0, :32] = 1e-9
    g = GraphBuilder("main", {"x": ((1, 64), np.float32)})
    y = g.op("FULLY_CONNECTED", [g.x, g.const(w, "w"), g.no_value()], (1, 16), name="y")
    r = tflquant.quantize(g.tflite([y]), mode="dynamic", weight_bits=4, granularity="block", min_weight_elements=16)
    m = read_flatbuffer(r.model)
    e = next(o for o in m.walk() if isinstance(o, tfl.ConstOp) and isinstance(o.result.type.element_type, BlockwiseQuantizedType)).result.type.element_type
    assert e.scale_array()[0, 0] == np.float32(np.finfo(np.float16).tiny)
    x = [rng.normal(size=(2, 1, 64)).astype(np.float32)]
    assert np.all(np.isfinite(_litert(r.model, x, "xnnpack")[0]))


# ---------------------------------------------------------------------------------------
# overrides and errors
# ---------------------------------------------------------------------------------------


def test_op_bits_by_name_and_type(lm):
    r = tflquant.quantize(lm, mode="dynamic", weight_bits=4, granularity="block", op_bits={"head": 8}, min_weight_elements=256)
    f = {w.name: w for w in r.report.weight_formats}
    assert (f["head"].bits, f["head"].granularity) == (8, "channel")
    assert (f["hidden"].bits, f["hidden"].granularity) == (4, "block")
    r = tflquant.quantize(lm, mode="weight-only", op_bits=["FULLY_CONNECTED=4/block/64"], min_weight_elements=256)
    f = {w.name: w for w in r.report.weight_formats}
    assert (f["hidden"].bits, f["hidden"].granularity, f["hidden"].block_size) == (4, "block", 64)
    assert (f["emb"].bits, f["emb"].granularity) == (16, "tensor")  # a global 8 bits: int16 table (EMBEDDING_BITS)
    r = tflquant.quantize(lm, mode="weight-only", op_bits=["GATHER=8"], min_weight_elements=256)
    assert {w.name: w.bits for w in r.report.weight_formats}["emb"] == 8  # asked for by op type


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"weight_bits": 3}, "weight bits must be 8, 4 or 2"),
        ({"granularity": "row"}, "granularity must be channel, tensor or block"),
        ({"granularity": "block", "weight_bits": 8}, "block granularity takes 4-bit weights"),
        ({"granularity": "block", "weight_bits": 4, "block_size": 48}, "block size must be 32, 64, 128 or 256"),
        ({"granularity": "block", "weight_bits": 4, "block_size": 256}, "block size 256 does not divide the last dimension (128)"),
        ({"op_bits": {"nosuch": 8}}, "'nosuch', which is no op with a quantizable weight"),
        ({"op_bits": ["head"]}, "write NAME=BITS"),
        ({"op_bits": {"head": "4/block/256"}}, "block size 256 does not divide the last dimension (128)"),
    ],
)
def test_bad_options_one_clear_error(lm, kw, message):
    with pytest.raises(TflquantError) as e:
        tflquant.quantize(lm, mode="dynamic", min_weight_elements=256, **kw)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_weight_options_need_a_weight_mode(lm):
    with pytest.raises(TflquantError, match="apply to the dynamic and weight-only modes"):
        tflquant.quantize(lm, mode="float16", weight_bits=4)


def test_cli_weight_only_int4(tmp_path, lm):
    src = tmp_path / "lm.tflite"
    src.write_bytes(lm)
    out = tmp_path / "q.tflite"
    cmd = [sys.executable, "-m", "tflquant.cli", "quantize", str(src), "-o", str(out), "--mode", "weight-only",
           "--weight-bits", "4", "--granularity", "block", "--block-size", "64", "--op-bits", "head=8", "--min-weight-elements", "256"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "int4 block 64" in p.stdout and "int8 channel" in p.stdout
    bad = subprocess.run(cmd[:-4] + ["--op-bits", "nosuch=8"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nosuch" in bad.stderr


@pytest.mark.parametrize("bits,gran", [(8, "channel"), (4, "channel"), (4, "block")])
def test_big_embedding_is_a_lookup_of_integer_rows(bits, gran):
    """A GATHER table over 2^20 elements (an LM's embedding) at 4 or 8 bits asked for by
    op-bits becomes EMBEDDING_LOOKUP of per-row / blockwise integer rows (no float copy of
    the table); LiteRT runs it."""
    rng = np.random.default_rng(5)
    table = _heavy(rng, 8200, 128)
    g = GraphBuilder("main", {"ids": ((1, 6), np.int32)})
    e = g.op("GATHER", [g.const(table, "table"), g.x], (1, 6, 128), name="emb", axis=0)
    r = tflquant.quantize(g.tflite([e]), mode="dynamic", weight_bits=bits, granularity=gran, op_bits={"GATHER": f"{bits}/{gran}"})
    ops = [o.name for o in r.module.walk()]
    assert "tfl.embedding_lookup" in ops and "tfl.gather" not in ops and "tfl.dequantize" not in ops
    f = {w.name: w for w in r.report.weight_formats}
    assert (f["emb_rows"].bits, f["emb_rows"].granularity) == (bits, gran)
    ids = [rng.integers(0, 8200, (3, 1, 6)).astype(np.int32)]
    for resolver in ("builtin", "xnnpack"):
        got = _litert(r.model, ids, resolver)[0]
        assert got.shape == (3, 1, 6, 128)
        assert _sqnr(table[ids[0]], got) > {8: 30, 4: 12}[bits]


@pytest.mark.parametrize("rows,mode", [(64, "weight-only"), (64, "dynamic"), (8200, "weight-only"), (8200, "dynamic")])
def test_8bit_embedding_table_is_int16(rows, mode):
    """Under a global 8-bit setting a GATHER table is int16 with one scale (EMBEDDING_BITS):
    read through DEQUANTIZE (weight-only), or gathered as int16 rows that a DEQUANTIZE
    turns float (dynamic: no float copy of the table); LiteRT runs both and the rows come
    back far closer than int8 per row brings them."""
    rng = np.random.default_rng(7)
    table = _heavy(rng, rows, 128)
    g = GraphBuilder("main", {"ids": ((1, 6), np.int32)})
    e = g.op("GATHER", [g.const(table, "table"), g.x], (1, 6, 128), name="emb", axis=0)
    r = tflquant.quantize(g.tflite([e]), mode=mode, min_weight_elements=256)
    (c,) = [c for c in r.module.walk() if isinstance(c, tfl.ConstOp) and isinstance(c.result.type.element_type, UniformQuantizedType)]
    q = c.result.type.element_type
    assert q.bits == 16 and not q.per_axis
    gather = next(o for o in r.module.walk() if isinstance(o, tfl.GatherOp))
    assert (gather.operands[0] is c.result) == (mode == "dynamic")
    ids = [rng.integers(0, rows, (3, 1, 6)).astype(np.int32)]
    for resolver in ("builtin", "xnnpack"):
        assert _sqnr(table[ids[0]], _litert(r.model, ids, resolver)[0]) > 60


@pytest.mark.parametrize("bits,gran", [(4, "channel"), (4, "block"), (4, "tensor"), (2, "channel")])
@pytest.mark.parametrize("rows,mode", [(64, "weight-only"), (64, "dynamic"), (8200, "weight-only"), (8200, "dynamic")])
def test_low_bit_setting_keeps_the_embedding_table_8bit(rows, mode, bits, gran):
    """Under a global 4- or 2-bit setting a GATHER table is int8 (LOW_BITS_EMBEDDING_BITS):
    per channel where it is dequantized once (up to 2^20 elements), per-row rows of an
    EMBEDDING_LOOKUP (big, dynamic), int16 with one scale where one scale is all it can have
    (big, weight-only); op-bits GATHER=4 keeps it 4-bit. LiteRT runs each, and its rows come
    back as an 8-bit (or better) table gives them, far above the 4-bit table's."""
    rng = np.random.default_rng(11)
    table = _heavy(rng, rows, 128)
    g = GraphBuilder("main", {"ids": ((1, 6), np.int32)})
    e = g.op("GATHER", [g.const(table, "table"), g.x], (1, 6, 128), name="emb", axis=0)
    model = g.tflite([e])
    r = tflquant.quantize(model, mode=mode, weight_bits=bits, granularity=gran, min_weight_elements=256)
    (c,) = [c for c in r.module.walk() if isinstance(c, tfl.ConstOp) and isinstance(c.result.type.element_type, UniformQuantizedType)]
    q = c.result.type.element_type
    big = rows * 128 > (1 << 20)
    if big and mode == "weight-only":
        assert q.bits == 16 and not q.per_axis
    else:
        assert q.bits == 8 and q.per_axis
    ops = {o.name for o in r.module.walk()}
    assert ("tfl.embedding_lookup" in ops) == (big and mode == "dynamic")
    low = tflquant.quantize(model, mode=mode, weight_bits=bits, granularity=gran, min_weight_elements=256, op_bits={"GATHER": bits})
    (c4,) = [c for c in low.module.walk() if isinstance(c, tfl.ConstOp) and isinstance(c.result.type.element_type, (UniformQuantizedType, BlockwiseQuantizedType))]
    assert c4.result.type.element_type.bits == bits
    ids = [rng.integers(0, rows, (3, 1, 6)).astype(np.int32)]
    for resolver in ("builtin", "xnnpack"):
        got = _sqnr(table[ids[0]], _litert(r.model, ids, resolver)[0])
        assert got > 30 and got > _sqnr(table[ids[0]], _litert(low.model, ids, resolver)[0]) + 15


def _versions(model: bytes) -> dict[str, int]:
    from tflquant.tflite import schema
    from tflquant.tflite.flatbuf import root_table

    names = {v: k for k, v in schema.BUILTIN_CODES.items()}
    F = schema.OPERATOR_CODE_FIELDS
    return {names[oc.scalar(F["builtin_code"], "i32")]: oc.scalar(F["version"], "i32", 1) for oc in root_table(model).tables(schema.MODEL_FIELDS["operator_codes"])}


@pytest.mark.parametrize(
    "table_rows,mode,bits,gran,want",
    [
        (64, "weight-only", "4", "channel", {"DEQUANTIZE": 6}),  # int4 input (op-bits GATHER=4)
        (64, "weight-only", 4, "channel", {"DEQUANTIZE": 5}),  # int8 per channel (a 4-bit setting's table)
        (64, "weight-only", "8", "channel", {"DEQUANTIZE": 5}),  # int8 per channel (op-bits GATHER=8)
        (64, "weight-only", 8, "channel", {"DEQUANTIZE": 3}),  # int16 table (EMBEDDING_BITS)
        (8200, "dynamic", "8", "channel", {"EMBEDDING_LOOKUP": 4}),  # per-channel (per-row) table (op-bits GATHER=8)
        (8200, "dynamic", 8, "channel", {"GATHER": 4, "DEQUANTIZE": 3}),  # int16 table, an integer GATHER
        (8200, "dynamic", "4", "block", {"EMBEDDING_LOOKUP": 4}),  # int4 table (op-bits GATHER=4)
        (8200, "dynamic", "4", "tensor", {"GATHER": 7}),  # int4 table, one scale: an integer GATHER
    ],
)
def test_int4_op_versions_are_litert_s_and_load(table_rows, mode, bits, gran, want):
    """Versions as LiteRT's op_version.cc gives them for int4 / per-channel inputs
    (DEQUANTIZE 6 for int4, EMBEDDING_LOOKUP 4, GATHER 7); LiteRT's resolver takes them."""
    rng = np.random.default_rng(2)
    table = _heavy(rng, table_rows, 128)
    g = GraphBuilder("main", {"ids": ((1, 6), np.int32)})
    e = g.op("GATHER", [g.const(table, "table"), g.x], (1, 6, 128), name="emb", axis=0)
    r = tflquant.quantize(g.tflite([e]), mode=mode, weight_bits=int(bits), granularity=gran, weight_rounding="nearest",
                          op_bits={"GATHER": f"{bits}/{gran}"} if isinstance(bits, str) else None)  # "8", "4": the table too
    got = _versions(r.model)
    assert {k: got.get(k) for k in want} == want, got
    ids = [rng.integers(0, table_rows, (2, 1, 6)).astype(np.int32)]
    ref = Interpreter(read_flatbuffer(r.model)).run(ids)[0]
    assert np.any(ref != 0)
    for resolver in ("builtin", "xnnpack"):
        np.testing.assert_allclose(_litert(r.model, ids, resolver)[0], ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode,bits,gran,block", [c for c in CASES if c[2] != "tensor"])
def test_integer_interpreter_runs_it_like_litert(lm, mode, bits, gran, block):
    """The integer reference interpreter runs int4 / blockwise models as LiteRT's builtin
    kernels do: hybrid ops see their input quantized per row as LiteRT's (symmetric for int4
    per-channel weights, asymmetric where the op asks otherwise), to float rounding."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    r = tflquant.quantize(lm, mode=mode, weight_bits=bits, granularity=gran, block_size=block, min_weight_elements=256, weight_rounding="nearest")
    inputs = _inputs()
    ii = IntegerInterpreter(read_flatbuffer(r.model))
    got = ii.run(inputs)
    for g, want in zip(got, _litert(r.model, inputs, "builtin")):
        assert np.max(np.abs(g - want)) <= 1e-5 * np.max(np.abs(want)), np.max(np.abs(g - want)) / np.max(np.abs(want))
    assert ("tfl.fully_connected 'hidden'" in ii.float_ops) == (mode == "dynamic")  # hybrid: float-simulated


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1001])
def test_int2_pack_round_trip_lowest_bits_first(n):
    from tflquant.tflite.int4 import pack_bits, packed_size, unpack_bits

    assert pack_bits(np.array([1, -2, 0, -1], np.int8), 2) == bytes([0b11_00_10_01])
    v = np.random.default_rng(n).integers(-2, 2, n).astype(np.int8)
    packed = pack_bits(v, 2)
    assert len(packed) == packed_size(n, 2) == (n + 3) // 4
    assert np.array_equal(unpack_bits(packed, n, 2), v)


@pytest.mark.parametrize("mode,gran", [("dynamic", "channel"), ("dynamic", "tensor"), ("weight-only", "channel")])
def test_int2_weights_run_in_litert(lm, mode, gran):
    """int2 (ternary, four per byte): FULLY_CONNECTED reads it directly (hybrid), the GATHER
    table through DEQUANTIZE; LiteRT (builtin, XNNPACK) runs it like the integer reference
    interpreter; the file round-trips."""
    from tflquant.reference.integer_interpreter import IntegerInterpreter

    r = tflquant.quantize(lm, mode=mode, weight_bits=2, granularity=gran, min_weight_elements=256, weight_rounding="nearest", op_bits={"GATHER": 2})
    f = {w.name: w for w in r.report.weight_formats}
    assert (f["hidden"].bits, f["hidden"].read) == (2, "hybrid" if mode == "dynamic" else "dequantize")
    assert (f["emb"].bits, f["emb"].read) == (2, "dequantize")
    m = read_flatbuffer(r.model)
    assert write_flatbuffer(m) == write_flatbuffer(read_flatbuffer(write_flatbuffer(m)))
    assert any(isinstance(e := o.result.type.element_type, UniformQuantizedType) and e.bits == 2 for o in m.walk() if isinstance(o, tfl.ConstOp))
    assert len(r.model) < 0.7 * len(tflquant.quantize(lm, mode=mode, weight_bits=4, granularity=gran, min_weight_elements=256, weight_rounding="nearest",
                                                      op_bits={"GATHER": 4}).model)
    inputs = _inputs()
    ref = IntegerInterpreter(m).run(inputs)
    for resolver in ("builtin", "xnnpack"):
        for g, want in zip(_litert(r.model, inputs, resolver), ref):
            assert np.max(np.abs(g - want)) <= 1e-4 * np.max(np.abs(want))


def test_int2_has_no_blocks(lm):
    with pytest.raises(TflquantError, match="block granularity takes 4-bit weights"):
        tflquant.quantize(lm, mode="dynamic", weight_bits=2, granularity="block")


# ---------------------------------------------------------------------------------------
# batched MSE clipping searches (quantize-weights' _Searches)
# ---------------------------------------------------------------------------------------


def _batch_sizes(monkeypatch) -> list[int]:
    """The number of weights in each batched search quantize-weights makes from now on."""
    import tflquant.passes.quantize_weights as qw

    sizes: list[int] = []
    many = qw.search_scales_many

    def spy(parts, *a, **kw):
        sizes.append(len(parts))
        return many(parts, *a, **kw)

    monkeypatch.setattr(qw, "search_scales_many", spy)
    return sizes


@pytest.mark.parametrize("model", ["lm", "decoder_tiny"])
def test_batched_searches_write_the_same_model(lm, model, monkeypatch):
    """Without data, the small weights' MSE clipping searches are batched (several weights in
    one search) and the model is byte-identical to searching each weight alone."""
    import tflquant.passes.quantize_weights as qw
    from tests.conftest import shared_model_dir

    src = lm if model == "lm" else (shared_model_dir("decoder_tiny") / "float.tflite").read_bytes()
    sizes = _batch_sizes(monkeypatch)
    for mode in ("dynamic", "weight-only"):
        for gran, block in (("block", 32), ("block", 128), ("channel", 32)):
            kw = dict(mode=mode, weight_bits=4, granularity=gran, block_size=block)
            del sizes[:]
            batched = tflquant.quantize(src, **kw).model
            assert max(sizes) >= 2 and sum(sizes) >= 2
            with monkeypatch.context() as m:
                m.setattr(qw, "SEARCH_AHEAD_MAX", 0)  # every weight searched alone (round_layer_weight)
                alone = tflquant.quantize(src, **kw).model
            assert batched == alone, (mode, gran, block)


def test_batched_search_non_finite_weight_named(monkeypatch):
    """A weight with a NaN in a batch: the others' search goes on, the rewrite names it."""
    rng = np.random.default_rng(0)
    g = GraphBuilder("main", {"x": ((2, 128), np.float32)})
    bad = _heavy(rng, 96, 128)
    bad[3, 5] = np.nan
    h = g.op("FULLY_CONNECTED", [g.x, g.const(_heavy(rng, 128, 128), "w_hidden"), g.no_value()], (2, 128), name="hidden")
    y = g.op("FULLY_CONNECTED", [h, g.const(bad, "w_head"), g.no_value()], (2, 96), name="head")
    sizes = _batch_sizes(monkeypatch)
    with pytest.raises(TflquantError, match="w_head.*NaN or infinite"):
        tflquant.quantize(g.tflite([y]), mode="dynamic", weight_bits=4, granularity="block", block_size=32)
    assert sizes == [1]  # the batch of both searched the finite weight
