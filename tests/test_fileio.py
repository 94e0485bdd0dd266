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
