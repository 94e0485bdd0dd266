"""int4 storage in a TFLite buffer: two values per byte, the first in the low nibble (as
LiteRT's DEQUANTIZE and FULLY_CONNECTED kernels unpack them); an odd count leaves the last
high nibble zero. In the IR an int4 tensor holds one value per int8 byte."""

from __future__ import annotations

import numpy as np


def pack_int4(values: np.ndarray) -> bytes:
    """Signed values in [-8, 7] (any shape, row-major) -> packed bytes."""
    v = np.asarray(values).reshape(-1).astype(np.uint8) & 0x0F
    if v.size % 2:
        v = np.concatenate([v, np.zeros(1, np.uint8)])
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_int4(data: bytes | np.ndarray, count: int) -> np.ndarray:
    """Packed bytes -> `count` signed values as int8 (sign-extended nibbles)."""
    b = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data, np.uint8)
    if b.size != (count + 1) // 2:
        raise ValueError(f"{count} int4 values take {(count + 1) // 2} bytes, got {b.size}")
    out = np.empty(b.size * 2, np.int8)
    out[0::2] = (b & 0x0F).astype(np.int8)
    out[1::2] = (b >> 4).astype(np.int8)
    out = np.where(out > 7, out - 16, out).astype(np.int8)
    return out[:count]
