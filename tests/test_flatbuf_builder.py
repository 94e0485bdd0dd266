"""flatbuf.Builder.table / offsets / string / numpy write what flatbuffers.Builder's own methods write
(the writer's fast paths must not change a byte of any model)."""

from collections.abc import Callable

import numpy as np
import pytest

from tflquant.tflite.flatbuf import NUMPY_OF_KIND, Builder, table_layout

KINDS = ("bool", "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64")
RANGES = {"u8": (0, 255), "i8": (-128, 127), "u16": (0, 65535), "i16": (-32768, 32767), "u32": (0, 2**32 - 1),
          "i32": (-(2**31), 2**31 - 1), "u64": (0, 2**64 - 1), "i64": (-(2**63), 2**63 - 1)}


def _value(rng, kind):
    if kind == "bool":
        return bool(rng.integers(2))
    if kind in ("f32", "f64"):
        return [0.0, -0.0, 1.0, 0.5, -3.25, 1e-30][int(rng.integers(6))]
    lo, hi = RANGES[kind]
    return [0, 1, lo, hi, -1 if lo < 0 else 2][int(rng.integers(5))]


def _build(seed: int, fast: bool, layouts: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    b = Builder(64)  # small: the buffer grows while building
    table = b.table if fast else b.table_generic
    if layouts:  # every table through a layout of its own fields' slots and kinds
        table = lambda fields: b.table(fields, table_layout([(f[0], f[1]) for f in fields]))  # noqa: E731
    offsets = b.offsets if fast else b.offsets_generic
    made: list[int] = []
    shared: dict = {}
    for _ in range(int(rng.integers(20, 60))):
        if made and rng.random() < 0.2:
            k = int(rng.integers(0, 6))
            made.append(offsets([made[int(i)] for i in rng.integers(0, len(made), k)]))
            continue
        if rng.random() < 0.2:
            text = "s\u00e9" * int(rng.integers(0, 9))
            made.append(b.string(text) if fast else b.fb.CreateString(text.encode()))
            continue
        if rng.random() < 0.2:  # a scalar vector (stored once per distinct content)
            kind = str(rng.choice(["u8", "i32", "i64", "f32"]))
            vals = [int(x) for x in rng.integers(-3 if kind != "u8" else 0, 9, int(rng.integers(0, 6)))]
            arr = np.asarray(vals, dtype=NUMPY_OF_KIND[kind])
            as_list = rng.random() < 0.5  # (drawn in both builds: the same random stream)
            if fast:
                made.append(b.numpy(vals if as_list else arr, kind))
            else:
                key = (kind, arr.tobytes())
                if key not in shared:
                    shared[key] = b.fb.CreateNumpyVector(arr)
                made.append(shared[key])
            continue
        fields = []
        for slot in rng.permutation(int(rng.integers(0, 9)))[: int(rng.integers(0, 7))]:
            if made and rng.random() < 0.3:
                fields.append((int(slot), "off", made[int(rng.integers(len(made)))] if rng.random() < 0.9 else None, 0))
                continue
            kind = str(rng.choice(KINDS))
            v = _value(rng, kind)
            default = None if rng.random() < 0.2 else (v if rng.random() < 0.3 else _value(rng, kind))
            fields.append((int(slot), kind, v, default))
        made.append(table(fields))
    return b.finish(table([(0, "off", made[-1], 0), (1, "off", offsets(made[-5:]), 0)]), b"TFL3")


@pytest.mark.parametrize("seed", range(40))
def test_fast_builder_writes_the_same_bytes(seed):
    assert _build(seed, fast=True) == _build(seed, fast=False)


@pytest.mark.parametrize("seed", range(20))
def test_tables_with_a_layout_write_the_same_bytes(seed):
    assert _build(seed, fast=True, layouts=True) == _build(seed, fast=False)


@pytest.mark.parametrize("seed", range(5))
def test_mapped_builder_writes_the_same_bytes(seed, monkeypatch):
    """A builder of at least _MAPPED_BUILDER_MIN bytes is anonymous memory: the same file."""
    from tflquant.fileio import mapped_file
    from tflquant.tflite import flatbuf

    def build(hint: int) -> bytes:
        b = Builder(hint)
        kinds = [("u8", i % 7) for i in range(seed + 3)]
        offs = [b.bytes_vector(bytes(range(k * 600 % 251)) * 20, 16, defer=True) for _s, k in kinds]
        offs.append(b.string("x" * seed))
        return b.finish(b.table([(i, "off", o, 0) for i, o in enumerate(offs)] + [(len(offs), "i32", seed, 0)]), b"TFL3")

    small = build(64)  # a bytearray, grown while building
    monkeypatch.setattr(flatbuf, "_MAPPED_BUILDER_MIN", 4096)
    mapped = Builder(4096)
    assert type(mapped.fb.Bytes) is memoryview  # (a bytearray below the size)
    pieces = mapped.finish_parts(mapped.table([(0, "off", mapped.bytes_vector(bytes(5000), 16, defer=True), 0)]), b"TFL3")
    assert len(pieces) == 3 and not any(mapped_file(p) for p in pieces)  # no view of a mapped file: never copied nor dropped
    assert build(1 << 16) == small


def test_out_of_range_scalar_is_refused_like_flatbuffers():
    for method in ("table", "table_generic"):
        b = Builder()
        with pytest.raises(TypeError):
            getattr(b, method)([(0, "u8", 300, 0)])


@pytest.mark.parametrize("seed", range(10))
def test_one_layout_reused_at_every_alignment_writes_the_same_bytes(seed):
    """A layout's byte plans are made once per set of written fields and head alignment,
    then reused: tables of one layout, fields present or at their defaults, at shifting
    alignments (strings of every length between them), in a buffer that grows."""
    rng = np.random.default_rng(seed)
    kinds = [str(k) for k in rng.choice(KINDS, 5)] + ["off", "off"]
    slots = [int(s) for s in rng.permutation(9)[: len(kinds)]]
    layout = table_layout(list(zip(slots, kinds)))

    def one(b: Builder, rng: np.random.Generator, made: list[int], fast: bool) -> int:
        fields = []
        for slot, kind in zip(slots, kinds):
            if kind == "off":
                fields.append((slot, kind, made[int(rng.integers(len(made)))] if rng.random() < 0.7 else None, 0))
            else:
                v = _value(rng, kind)
                fields.append((slot, kind, v, v if rng.random() < 0.4 else (None if rng.random() < 0.2 else _value(rng, kind))))
        return b.table(fields, layout) if fast else b.table_generic(fields)

    fast, generic = _grow_both_ways(seed, one)
    assert fast == generic


def _grow_both_ways(seed: int, one: Callable[[Builder, np.random.Generator, list[int], bool], int]) -> list[bytes]:
    """The buffers of 120 tables (`one`, fast then generic, from the same random draws), each
    after a string of 0-8 bytes, in a buffer that starts small and grows."""
    out = []
    for fast in (True, False):
        b = Builder(64)
        rng = np.random.default_rng(seed + 1000)
        made = [b.string("first")]
        for _ in range(120):
            made.append(b.string("x" * int(rng.integers(0, 9))))
            made.append(one(b, rng, made, fast))
        out.append(b.finish(made[-1], b"TFL3"))
    return out


def test_offset_after_the_table_is_refused_like_flatbuffers():
    import flatbuffers

    layout = table_layout([(0, "off")])
    for method in ("table", "table_generic"):
        b = Builder()
        b.string("abc")
        with pytest.raises(flatbuffers.builder.OffsetArithmeticError):
            (b.table if method == "table" else b.table_generic)(*([[(0, "off", 10_000, 0)], layout] if method == "table" else [[(0, "off", 10_000, 0)]]))


@pytest.mark.parametrize("seed", range(10))
def test_table_of_values_writes_the_same_bytes(seed):
    """Builder.table_of(layout, values): fields equal to the layout's defaults left out,
    offsets of 0 absent, at shifting alignments in a growing buffer."""
    rng = np.random.default_rng(seed)
    kinds = [str(k) for k in rng.choice(KINDS, 6)] + ["off", "off"]
    slots = [int(s) for s in rng.permutation(10)[: len(kinds)]]
    defaults = [0 if k == "off" else _value(rng, k) for k in kinds]
    layout = table_layout(list(zip(slots, kinds)), defaults)

    def one(b: Builder, rng: np.random.Generator, made: list[int], fast: bool) -> int:
        values = []
        for kind, d in zip(kinds, defaults):
            if kind == "off":
                values.append(made[int(rng.integers(len(made)))] if rng.random() < 0.7 else 0)
            else:
                values.append(d if rng.random() < 0.4 else _value(rng, kind))
        fields = [(s, k, v, d) for s, k, v, d in zip(slots, kinds, values, defaults)]
        return b.table_of(layout, values) if fast else b.table_generic(fields)

    fast, generic = _grow_both_ways(seed, one)
    assert fast == generic


def test_table_of_refuses_what_flatbuffers_refuses():
    import flatbuffers

    layout = table_layout([(0, "u8"), (1, "off"), (2, "i32")])
    b = Builder()
    with pytest.raises(TypeError):
        b.table_of(layout, [300, 0, 1])
    with pytest.raises(flatbuffers.builder.OffsetArithmeticError):
        b.table_of(layout, [1, 10_000, 1])
    with pytest.raises(ValueError):
        table_layout([(0, "off"), (0, "i32")])  # a slot twice


def test_builders_taking_turns_with_one_layout_write_the_same_bytes():
    """A layout's plans remember where the last builder wrote their vtable: two builders
    using one layout by turns (and a third after them) each write what flatbuffers writes."""
    layout = table_layout([(0, "i32"), (1, "u8"), (2, "off")])
    rows = [(k % 3, k % 2, 0) for k in range(12)]

    def build(fast: bool, order: list[int]) -> list[bytes]:
        bs = [Builder(64) for _ in range(3)]
        last: list[list[int]] = [[], [], []]
        for i in order:
            for values in rows[: 4 + i]:
                if fast:
                    last[i].append(bs[i].table_of(layout, values))
                else:
                    fields = [(s, k, v, 0) for (s, k), v in zip([(0, "i32"), (1, "u8"), (2, "off")], values)]
                    last[i].append(bs[i].table_generic(fields))
        return [b.finish(b.offsets(made) if fast else b.offsets_generic(made), b"TFL3") for b, made in zip(bs, last)]

    order = [0, 1, 0, 1, 1, 0, 2]
    assert build(True, order) == build(False, order)
