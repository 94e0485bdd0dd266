"""Sub-byte integer storage in a TFLite buffer: int4 two values per byte, int2 four, the first
value in the lowest bits (as LiteRT's DEQUANTIZE and FULLY_CONNECTED kernels unpack them; int2
order measured against LiteRT's DEQUANTIZE); a count that does not fill the last byte leaves
its high bits zero. In the IR such a tensor holds one value per int8 byte."""

from __future__ import annotations

import numpy as np


def packed_size(count: int, bits: int) -> int:
    """Bytes that `count` values of `bits` (4 or 2) take packed."""
    per = 8 // bits
    return (count + per - 1) // per


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Signed values in [-2^(bits-1), 2^(bits-1) - 1] (any shape, row-major) -> packed bytes."""
    per = 8 // bits
    a = np.asarray(values)
    if bits == 4 and a.dtype.itemsize == 1 and a.dtype.kind in "iu" and a.size % 2 == 0:
        # byte pairs as little-endian uint16s: the first value's low nibble, then the
        # second's (bits 8-11) moved to bits 4-7 (3.5x faster than the lanes below)
        u = np.ascontiguousarray(a).reshape(-1).view("<u2")
        lo = u & np.uint16(0x000F)
        hi = u >> np.uint16(4)
        hi &= np.uint16(0x00F0)
        lo |= hi
        return lo.astype(np.uint8).tobytes()
    v = a.reshape(-1).astype(np.uint8) & ((1 << bits) - 1)
    pad = (-v.size) % per
    if pad:
        v = np.concatenate([v, np.zeros(pad, np.uint8)])
    lanes = v.reshape(-1, per)
    out = lanes[:, 0].copy()
    for i in range(1, per):
        out |= lanes[:, i] << (bits * i)
    return out.tobytes()


def unpack_bits(data: bytes | np.ndarray, count: int, bits: int) -> np.ndarray:
    """Packed bytes -> `count` signed values as int8 (sign-extended)."""
    b = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data, np.uint8)
    if b.size != packed_size(count, bits):
        raise ValueError(f"{count} int{bits} values take {packed_size(count, bits)} bytes, got {b.size}")
    per, mask, half = 8 // bits, (1 << bits) - 1, 1 << (bits - 1)
    out = np.empty((b.size, per), np.int8)
    for i in range(per):
        out[:, i] = ((b >> (bits * i)) & mask).astype(np.int8)
    out = out.reshape(-1)
    out = np.where(out >= half, out - (1 << bits), out).astype(np.int8)
    return out[:count]


def pack_int4(values: np.ndarray) -> bytes:
    """Signed values in [-8, 7] -> two per byte, low nibble first."""
    return pack_bits(values, 4)


def unpack_int4(data: bytes | np.ndarray, count: int) -> np.ndarray:
    """Packed bytes -> `count` signed int4 values as int8."""
    return unpack_bits(data, count, 4)
