"""Table.read(Fields) and the *_at readers give what the one-field readers give (values, or
the same FlatbufferError for a corrupted buffer)."""

import numpy as np
import pytest

from tflquant.tflite.flatbuf import Builder, Fields, FlatbufferError, Table

SCALARS = ("bool", "u8", "i8", "u16", "i32", "u32", "i64", "f32", "f64")


def _model(rng) -> tuple[bytes, list[tuple[int, str]]]:
    """A root table of random scalar fields, a string, an int vector and a child table."""
    b = Builder(64)
    kinds = [str(k) for k in rng.choice(SCALARS, 5)]
    slots = [int(s) for s in rng.permutation(12)]
    vec = b.numpy([int(x) for x in rng.integers(-5, 5, int(rng.integers(0, 70)))], "i32")
    text = b.string("n" * int(rng.integers(0, 5)))
    child = b.table([(0, "i32", 7, 0)])
    fields, spec = [], []
    for slot, kind in zip(slots[:5], kinds):
        if rng.random() < 0.7:
            v = bool(rng.integers(2)) if kind == "bool" else float(rng.integers(-3, 3)) if kind[0] == "f" else int(rng.integers(0, 100))
            fields.append((slot, kind, v, None))
        spec.append((slot, kind))
    for slot, off in zip(slots[5:8], (vec, text, child)):
        if rng.random() < 0.8:
            fields.append((slot, "off", off, 0))
        spec.append((slot, "off"))
    spec.append((slots[8], "i32"))  # never written
    rng.shuffle(fields)
    return b.finish(b.table(fields), b"TEST"), spec


def _one_by_one(t: Table, spec):
    return [t._indirect(s) if k == "off" else t.scalar(s, k, False if k == "bool" else 0) for s, k in spec]


def _outcome(f):
    try:
        return ("ok", f())
    except FlatbufferError as e:
        return ("error", str(e))


@pytest.mark.parametrize("seed", range(30))
def test_read_matches_the_one_field_readers(seed):
    rng = np.random.default_rng(seed)
    data, spec = _model(rng)
    t = Table(data, int.from_bytes(data[:4], "little"))
    fields = Fields(spec)
    assert list(t.read(fields)) == _one_by_one(t, spec)
    assert list(t.read(fields)) == _one_by_one(t, spec)  # the cached plan
    for (slot, kind), p in zip(spec, t.read(fields)):
        if kind == "off":
            for k in ("u8", "i32"):
                assert _outcome(lambda: t.ints_at(p, slot, k)) == _outcome(lambda: t.ints(slot, k))
            assert _outcome(lambda: t.string_at(p, slot)) == _outcome(lambda: t.string(slot))
            assert _outcome(lambda: None if p is None else t.vector_at(p, slot, "i32").tolist()) == _outcome(
                lambda: None if t.vector(slot, "i32") is None else t.vector(slot, "i32").tolist())


@pytest.mark.parametrize("seed", range(60))
def test_a_corrupted_table_fails_as_the_one_field_readers_fail(seed):
    """Random bytes of the table area overwritten: read + *_at give the values or the
    FlatbufferError that reading field by field gives."""
    rng = np.random.default_rng(seed)
    data, spec = _model(np.random.default_rng(seed % 7))
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        buf[int(rng.integers(4, len(buf)))] = int(rng.integers(256))
    buf = bytes(buf)
    root = int.from_bytes(buf[:4], "little")
    t0 = _outcome(lambda: Table(buf, root))
    if t0[0] == "error":
        return
    t = t0[1]
    fields = Fields(spec)

    def fast():
        vals = t.read(fields)
        out = []
        for (slot, kind), v in zip(spec, vals):
            out.append(v)
            if kind == "off":
                out.append(t.ints_at(v, slot, "u8"))
        return out

    def slow():
        out = []
        for (slot, kind), v in zip(spec, _one_by_one(t, spec)):
            out.append(v)
            if kind == "off":
                out.append(t.ints(slot, "u8"))
        return out

    assert _outcome(fast) == _outcome(slow)
