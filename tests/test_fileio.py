"""fileio: writing pieces of a memory-mapped model leaves the file the same and its pages free."""

from __future__ import annotations

import hashlib

import numpy as np

from tflquant.fileio import atomic_write_parts, map_file, release_view

MB = 1 << 20


def _resident_file_kb() -> int:
    """This process's resident pages of mapped files (Linux /proc/self/status RssFile)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    raise AssertionError("no RssFile line in /proc/self/status")


def test_writing_mapped_pieces_copies_them_and_drops_their_pages(tmp_path):
    src = tmp_path / "src.bin"
    data = np.random.default_rng(0).integers(0, 256, 24 * MB + 123, dtype=np.uint8).tobytes()
    src.write_bytes(data)
    m = map_file(src)
    view = memoryview(m).toreadonly()
    before = _resident_file_kb()
    touched = int(np.frombuffer(view, np.uint8)[::4096].sum())  # fault every page in
    assert touched > 0 and _resident_file_kb() - before > 20 * 1024
    # pieces as the large-model writer streams them: views of the mapping, bytes between
    cut = 5 * MB + 7  # not page-aligned: the edge pages stay, the whole ones in between go
    parts = [view[:cut], b"\0" * 64, view[cut:]]
    out = tmp_path / "out.bin"
    size = atomic_write_parts(out, parts)
    assert size == len(data) + 64
    assert _resident_file_kb() - before < 4 * 1024  # the 24 MB read is no longer resident
    written = out.read_bytes()
    assert written[:cut] == data[:cut] and written[cut : cut + 64] == b"\0" * 64 and written[cut + 64 :] == data[cut:]
    # dropped pages read back from the file unchanged
    assert hashlib.sha256(view).digest() == hashlib.sha256(data).digest()


def test_release_view_ignores_memory_that_is_not_a_mapped_file():
    a = np.arange(1 << 16, dtype=np.float32)
    for v in (a, a[::2], memoryview(a.tobytes()), b"xyz", a.tobytes()):
        release_view(v)
    np.testing.assert_array_equal(a, np.arange(1 << 16, dtype=np.float32))


def test_atomic_write_parts_batches_pieces_and_finishes_partial_writes(tmp_path, monkeypatch):
    """Small pieces go many to a writev call (batches closed by count and by bytes), big
    ones alone; a writev that stops early is resumed mid-piece; bytes, memoryviews, numpy
    arrays of any integer type and empty pieces all land in order."""
    import os

    import tflquant.fileio as fileio

    monkeypatch.setattr(fileio, "_ALONE", 1000)
    monkeypatch.setattr(fileio, "_BATCH", 2500)
    monkeypatch.setattr(fileio, "_IOV", 4)
    calls = []
    real = os.writev

    def short_writev(fd, views):  # at most 777 bytes a call, as a signal could leave it
        calls.append(len(views))
        budget, part = 777, []
        for v in views:
            part.append(v[:budget])
            budget -= len(part[-1])
            if not budget:
                break
        return real(fd, part)

    monkeypatch.setattr(fileio.os, "writev", short_writev)
    r = np.random.default_rng(5)
    parts = [r.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (10, 900, 0, 999, 1000, 3, 4000, 1, 1, 1, 1, 1, 600, 700)]
    parts[1] = memoryview(parts[1])
    parts[6] = np.frombuffer(parts[6], np.int16).reshape(50, 40)  # a 2-D int16 array: its bytes
    want = b"".join(bytes(memoryview(p).cast("B")) if not isinstance(p, bytes) else p for p in parts)
    seen = []
    out = tmp_path / "o.bin"
    size = fileio.atomic_write_parts(out, parts, check=lambda m: seen.append(bytes(m)))
    assert size == len(want) and out.read_bytes() == want and seen == [want]
    assert max(calls) == 4 and len(calls) > len(want) // 777  # batches of 4 pieces; resumed writes


def test_atomic_write_parts_never_leaves_a_file_that_fails_its_check(tmp_path):
    from tflquant.errors import TflquantError

    out = tmp_path / "o.bin"
    out.write_bytes(b"old")

    def check(m):
        assert m[:3] == b"new"
        raise TflquantError("bad model")

    import pytest

    with pytest.raises(TflquantError, match="bad model"):
        atomic_write_parts(out, [b"new", b" contents"], check=check)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["o.bin"]
    seen = []
    atomic_write_parts(out, [b"", memoryview(b"")], check=seen.append)  # nothing to map: checked as b""
    assert seen == [b""] and out.read_bytes() == b""


def test_save_writes_the_pieces_as_they_are(tmp_path):
    """save() writes the result's pieces without joining them (the written file verified,
    mapped); `model` joins them afterwards, the same bytes; the weights' integer codes in
    the IR are read-only views, not copies."""
    import tflquant
    from tflquant.dialects import tfl
    from tests.conftest import shared_model_dir

    example_model = shared_model_dir("decoder_tiny") / "float.tflite"
    r = tflquant.quantize(example_model, mode="dynamic", weight_bits=4)
    pieces = list(r.pieces)
    assert len(pieces) > 1
    r.save(tmp_path / "q.tflite")
    assert r.pieces == pieces  # not joined by save
    assert (tmp_path / "q.tflite").read_bytes() == r.model == tflquant.quantize(example_model, mode="dynamic", weight_bits=4).model
    consts = [op for op in r.module.walk() if isinstance(op, tfl.ConstOp) and op.numpy().dtype == np.int8 and op.numpy().size >= 1024]
    assert consts and all(isinstance(c.value.data.data, memoryview) and c.value.data.data.readonly for c in consts)


def test_atomic_write_parts_without_writev(tmp_path, monkeypatch):
    """Where os has no writev (Windows) the pieces are written one by one, the same file."""
    import os

    import tflquant.fileio as fileio

    monkeypatch.delattr(os, "writev")
    monkeypatch.setattr(fileio, "_ALONE", 100)
    parts = [b"a" * 10, memoryview(b"b" * 300), np.arange(50, dtype=np.int16), b""]
    out = tmp_path / "o.bin"
    assert atomic_write_parts(out, parts) == 10 + 300 + 100
    assert out.read_bytes() == b"a" * 10 + b"b" * 300 + np.arange(50, dtype=np.int16).tobytes()
