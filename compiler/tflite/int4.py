"""Sub-byte integer storage in a TFLite buffer: int4 two values per byte, int2 four, the first
value in the lowest bits (as LiteRT's DEQUANTIZE and FULLY_CONNECTED kernels unpack them; int2
order measured against LiteRT's DEQUANTIZE); a count that does not fill the last byte leaves
its high bits zero. In the IR such a tensor holds one value per int8 byte."""

from __future__ import annotations

import math

import numpy as np


def packed_size(count: int, bits: int) -> int:
    """Bytes that `count` values of `bits` (4 or 2) take packed."""
    per = 8 // bits
    return (count + per - 1) // per


class Slab:
    """Arrays carved out of blocks of BLOCK bytes (one numpy allocation each: big enough for
    numpy to ask for transparent huge pages) instead of one allocation per array, for the
    many arrays of one model that live until it is written (quantize-weights' codes, the
    writer's packed int4). On a machine whose 4 KB page faults cost ~2.6 us (the 2-core VM
    of the benchmarks), m512's 21 MB of int8 codes in 250 allocations faulted in 5400 pages
    (14 ms of a 70 ms quantize) whenever the allocator had given the last call's memory back
    to the system. Blocks grow from the first (`expect`, else 1 MB) by doubling to BLOCK; a
    request over half of BLOCK gets an array of its own."""

    BLOCK = 16 << 20

    def __init__(self, expect: int | None = None) -> None:
        """`expect`: the bytes its arrays will take, when known: the first block is no
        bigger (a small model's codes stay in memory the allocator reuses)."""
        self.block: np.ndarray | None = None
        self.pos = 0
        self.first = min(self.BLOCK, 1 << 20 if expect is None else max(expect, 1 << 16))

    def take(self, shape: tuple[int, ...] | int, dtype: type | np.dtype = np.uint8) -> np.ndarray:
        dt = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = math.prod(shape) * dt.itemsize
        if n > self.BLOCK // 2:
            return np.empty(shape, dt)
        start = (self.pos + 63) & ~63  # (cache-line aligned)
        block = self.block
        if block is None or start + n > block.size:
            size = self.first if block is None else min(self.BLOCK, 2 * block.size)
            block = self.block = np.empty(max(size, n), np.uint8)
            start = 0
        self.pos = start + n
        return block[start : start + n].view(dt).reshape(shape)


# pack_bits packs this many int4 value pairs at a time (two uint16 work buffers of 256 KB: in
# cache; 1 << 15 was slower, its 4x the numpy calls)
_PACK_CHUNK = 1 << 17


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Signed values in [-2^(bits-1), 2^(bits-1) - 1] (any shape, row-major) -> packed bytes."""
    return packed(values, bits).tobytes()


def packed(values: np.ndarray, bits: int, slab: Slab | None = None) -> np.ndarray:
    """pack_bits(values, bits) as a read-only uint8 array (from `slab` when given)."""
    per = 8 // bits
    a = np.asarray(values)
    n = a.size
    out = np.empty(packed_size(n, bits), np.uint8) if slab is None else slab.take(packed_size(n, bits))
    if bits == 4 and a.dtype.itemsize == 1 and a.dtype.kind in "iu":
        # byte pairs as little-endian uint16s: both values' low nibbles kept (& 0x0F0F), the
        # second's (bits 8-11) then moved to bits 4-7 (| >> 4), the low byte taken; a slice
        # at a time in two work buffers (in cache; 10x faster than whole-array steps)
        flat = np.ascontiguousarray(a).reshape(-1)
        pairs = n // 2
        u = flat[: 2 * pairs].view("<u2")
        if pairs <= _PACK_CHUNK:  # one slice: no work buffers to set up
            x = np.bitwise_and(u, np.uint16(0x0F0F))
            x |= x >> np.uint16(4)
            out[:pairs] = x  # (the low byte)
        else:
            w1, w2 = np.empty(_PACK_CHUNK, np.uint16), np.empty(_PACK_CHUNK, np.uint16)
            for i in range(0, pairs, _PACK_CHUNK):
                j = min(i + _PACK_CHUNK, pairs)
                x, y = w1[: j - i], w2[: j - i]
                np.bitwise_and(u[i:j], np.uint16(0x0F0F), out=x)
                np.right_shift(x, np.uint16(4), out=y)
                np.bitwise_or(x, y, out=x)
                out[i:j] = x
        if n % 2:
            out[n // 2] = flat[-1].view(np.uint8) & 0x0F  # odd count: high nibble zero
        out.flags.writeable = False
        return out
    v = a.reshape(-1).astype(np.uint8) & ((1 << bits) - 1)
    pad = (-v.size) % per
    if pad:
        v = np.concatenate([v, np.zeros(pad, np.uint8)])
    lanes = v.reshape(-1, per)
    np.copyto(out, lanes[:, 0])
    for i in range(1, per):
        out |= lanes[:, i] << (bits * i)
    out.flags.writeable = False
    return out


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
