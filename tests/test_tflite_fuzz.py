"""Fuzz the flatbuffer reader: mutated models raise TflquantError or import; nothing else, no hangs."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from models import MODELS, GraphBuilder

from tflquant.errors import TflquantError
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer


def _seed_models() -> list[bytes]:
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    y = g.op("FULLY_CONNECTED", [g.x, g.const(np.ones((3, 4), np.float32)), g.no_value()], (1, 3))
    z = g.op("SOFTMAX", [y], (1, 3), beta=1.0)
    small = g.tflite([z])
    return [small, write_flatbuffer(MODELS["cnn"]()), write_flatbuffer(MODELS["shapes"]())]


def _mutants(data: bytes, rng: np.random.Generator, count: int):
    n = len(data)
    for _ in range(count):
        kind = rng.integers(0, 6)
        buf = bytearray(data)
        if kind == 0:  # flip random bytes
            for _ in range(int(rng.integers(1, 8))):
                buf[int(rng.integers(0, n))] = int(rng.integers(0, 256))
        elif kind == 1:  # truncate
            buf = buf[: int(rng.integers(0, n))]
        elif kind == 2:  # plant a random 32-bit value at an aligned spot (offsets, lengths)
            pos = int(rng.integers(0, n // 4)) * 4
            val = int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, n, n - 4, int(rng.integers(0, 1 << 32))]))
            struct.pack_into("<I", buf, min(pos, n - 4), val)
        elif kind == 3:  # plant a random 16-bit value (vtable entries)
            pos = int(rng.integers(0, n // 2)) * 2
            struct.pack_into("<H", buf, min(pos, n - 2), int(rng.integers(0, 1 << 16)))
        elif kind == 4:  # zero a range
            a = int(rng.integers(0, n))
            b = min(n, a + int(rng.integers(1, 64)))
            buf[a:b] = bytes(b - a)
        else:  # duplicate a chunk somewhere else
            a = int(rng.integers(0, n))
            b = min(n, a + int(rng.integers(1, 64)))
            c = int(rng.integers(0, n))
            chunk = buf[a:b]
            buf[c : c + len(chunk)] = chunk
            buf = buf[:n]
        yield bytes(buf)


def test_fuzzed_models_raise_only_tflquant_error():
    rng = np.random.default_rng(20261122)
    seeds = _seed_models()
    tried = imported = 0
    slowest = 0.0
    for seed in seeds:
        for mutant in _mutants(seed, rng, 700):
            tried += 1
            t0 = time.perf_counter()
            try:
                module = read_flatbuffer(mutant, "fuzz.tflite")
            except TflquantError as e:
                msg = str(e)
                assert msg.startswith("fuzz.tflite: ") and "\n" not in msg
            except Exception as e:  # pragma: no cover - the failure we look for
                pytest.fail(f"mutant #{tried} raised {type(e).__name__}: {e}")
            else:
                imported += 1
                try:  # what imports must also emit (or fail cleanly)
                    write_flatbuffer(module)
                except TflquantError:
                    pass
            slowest = max(slowest, time.perf_counter() - t0)
    assert tried == 2100
    assert 0 < imported < tried  # some mutations are harmless, most are caught
    assert slowest < 2.0, f"a mutant took {slowest:.2f}s to read"


@pytest.mark.parametrize("data", [b"", b"TFL3", b"\x00" * 8, b"\x08\x00\x00\x00TFL3\x00\x00\x00\x00", b"\xff" * 64])
def test_degenerate_inputs(data):
    with pytest.raises(TflquantError):
        read_flatbuffer(data, "x.tflite")
