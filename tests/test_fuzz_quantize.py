"""Fuzz the whole path: `tflquant quantize` in every mode and `tflquant compare` on corrupt
models and corrupt data files (issue 10, "Fuzzing the whole path").

Every run must end in exit status 0 (a harmless mutation: the output is written) or 2 with
exactly one line on stderr, `tflquant: error: ...`, that names what is wrong; never a
traceback, a hang or an allocation of terabytes; no output file is left behind after a
failure and the inputs are never changed. Corrupt data files always give status 2.

Runs go through `tflquant.cli.main` in this process (fast), under an address-space limit
(RLIMIT_AS, lowered for the run and restored) and a timer; a few run as subprocesses with
their own limits. Mutations are seeded, so a failure names a reproducible case.
benchmarks/fuzz.py runs the same engine for longer (`--iterations`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_empty_tensors import f32, i32, raw_tflite

MODES: dict[str, list[str]] = {
    "int8": ["--mode", "int8"],
    "int8-io": ["--mode", "int8", "--io-type", "int8"],
    "int16x8": ["--mode", "int16x8"],
    "dynamic": ["--mode", "dynamic"],
    "float16": ["--mode", "float16"],
}
STATIC = ("int8", "int8-io", "int16x8")
MEMORY_HEADROOM = 3 << 30  # in-process runs may add this much address space
RUN_SECONDS = 30  # one run


# ----------------------------------------------------------------------------------------
# Seed models, as raw specs (so field mutations can edit them) and as flatbuffers
# ----------------------------------------------------------------------------------------

_rng0 = np.random.default_rng(11)
W = (_rng0.standard_normal((4, 8)) * 0.4).astype(np.float32)
B = (_rng0.standard_normal(4) * 0.1).astype(np.float32)


def fc_spec() -> dict[str, Any]:
    """x[1,8] -> FULLY_CONNECTED(w[4,8], b[4]) -> h[1,4] -> SOFTMAX -> y[1,4]."""
    return dict(
        tensors=[
            dict(name="x", shape=[1, 8]),
            dict(name="w", shape=[4, 8], buffer=1),
            dict(name="b", shape=[4], buffer=2),
            dict(name="h", shape=[1, 4]),
            dict(name="y", shape=[1, 4]),
        ],
        operators=[
            dict(op=0, inputs=[0, 1, 2], outputs=[3]),
            dict(op=1, inputs=[3], outputs=[4], options=("SoftmaxOptions", {"beta": 1.0})),
        ],
        inputs=[0],
        outputs=[4],
        buffers=[b"", f32(W), f32(B)],
        opcodes=["FULLY_CONNECTED", "SOFTMAX"],
    )


def two_input_spec() -> dict[str, Any]:
    """a[1,8] + c[1,8] -> FULLY_CONNECTED(w, b) -> TANH: a model with two inputs."""
    return dict(
        tensors=[
            dict(name="a", shape=[1, 8]),
            dict(name="c", shape=[1, 8]),
            dict(name="s", shape=[1, 8]),
            dict(name="w", shape=[4, 8], buffer=1),
            dict(name="b", shape=[4], buffer=2),
            dict(name="h", shape=[1, 4]),
            dict(name="y", shape=[1, 4]),
        ],
        operators=[
            dict(op=0, inputs=[0, 1], outputs=[2]),
            dict(op=1, inputs=[2, 3, 4], outputs=[5]),
            dict(op=2, inputs=[5], outputs=[6]),
        ],
        inputs=[0, 1],
        outputs=[6],
        buffers=[b"", f32(W), f32(B)],
        opcodes=["ADD", "FULLY_CONNECTED", "TANH"],
    )


def build(spec: dict[str, Any]) -> bytes:
    return raw_tflite(**spec)


def seed_data(spec: dict[str, Any], n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = spec["tensors"]
    return {ts[i]["name"]: rng.standard_normal((n, *ts[i]["shape"])).astype(np.float32) for i in spec["inputs"]}


# ----------------------------------------------------------------------------------------
# Model mutations
# ----------------------------------------------------------------------------------------

BIG = 2**31 - 1  # the largest dimension a TFLite shape can hold


def _edit(fn: Callable[[dict[str, Any]], None], base: Callable[[], dict[str, Any]] = fc_spec) -> Callable[[], bytes]:
    def make() -> bytes:
        spec = base()
        fn(spec)
        return build(spec)

    return make


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(spec: dict[str, Any]) -> None:
        d = spec
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return fn


def _many(*fns: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def fn(spec: dict[str, Any]) -> None:
        for f in fns:
            f(spec)

    return fn


def _append_op(op: dict[str, Any], tensors: list[dict[str, Any]] = (), opcode: str | None = None, buffers: list[bytes] = (), outputs: list[int] | None = None) -> Callable[[dict[str, Any]], None]:  # type: ignore[assignment]
    def fn(spec: dict[str, Any]) -> None:
        spec["tensors"].extend(tensors)
        spec["buffers"].extend(buffers)
        if opcode is not None:
            spec["opcodes"].append(opcode)
        spec["operators"].append(op)
        if outputs is not None:
            spec["outputs"] = outputs

    return fn


# Field mutations: (name, model maker). Names say what a model asks for.
FIELD_MUTANTS: list[tuple[str, Callable[[], bytes]]] = [
    # shapes that would need terabytes
    ("huge activation shape", _edit(_set(("tensors", 3, "shape"), [BIG, BIG]))),
    ("huge input shape", _edit(_set(("tensors", 0, "shape"), [BIG, 8]))),
    ("huge rank-6 activation", _edit(_set(("tensors", 4, "shape"), [BIG] * 6))),
    ("huge weight shape, small buffer", _edit(_set(("tensors", 1, "shape"), [BIG, BIG]))),
    ("input shape 65536x65536", _edit(_many(_set(("tensors", 0, "shape"), [65536, 65536]), _set(("tensors", 1, "shape"), [4, 65536])))),
    ("output declared 1e9 wide", _edit(_many(_set(("tensors", 3, "shape"), [1, 10**9]), _set(("tensors", 4, "shape"), [1, 10**9])))),
    ("FILL of 2^48 elements", _edit(_append_op(
        dict(op=2, inputs=[5, 6], outputs=[7]),
        [dict(name="dims", shape=[3], type="i32", buffer=3), dict(name="value", shape=[], buffer=4), dict(name="filled", shape=[65536, 65536, 65536])],
        "FILL", [i32([65536, 65536, 65536]), f32(1.0)], outputs=[4, 7]))),
    ("BROADCAST_TO 2^40", _edit(_append_op(
        dict(op=2, inputs=[4, 5], outputs=[6]),
        [dict(name="to", shape=[3], type="i32", buffer=3), dict(name="wide", shape=[1048576, 1048576, 4])],
        "BROADCAST_TO", [i32([1048576, 1048576, 4])], outputs=[6]))),
    ("RESHAPE to a huge shape", _edit(_append_op(
        dict(op=2, inputs=[4, 5], outputs=[6]),
        [dict(name="shp", shape=[2], type="i32", buffer=3), dict(name="r", shape=[BIG, BIG])],
        "RESHAPE", [i32([BIG, BIG])], outputs=[6]))),
    ("TILE by 2^20 x 2^20", _edit(_append_op(
        dict(op=2, inputs=[4, 5], outputs=[6]),
        [dict(name="mult", shape=[2], type="i32", buffer=3), dict(name="tiled", shape=[1 << 20, 1 << 22])],
        "TILE", [i32([1 << 20, 1 << 20])], outputs=[6]))),
    ("PAD by 2^30", _edit(_append_op(
        dict(op=2, inputs=[4, 5], outputs=[6]),
        [dict(name="pads", shape=[2, 2], type="i32", buffer=3), dict(name="padded", shape=[1 << 31 - 1, 1 << 31 - 1])],
        "PAD", [i32([[1 << 30, 1 << 30], [1 << 30, 1 << 30]])], outputs=[6]))),
    # buffers: sizes and offsets past the file, overflowing
    ("buffer offset/size past the end", _edit(_set(("buffers", 1), (64, 1 << 40)))),
    ("buffer offset 2^63", _edit(_set(("buffers", 1), (1 << 63, 128)))),
    ("buffer offset+size overflow u64", _edit(_set(("buffers", 1), ((1 << 64) - 8, 16)))),
    ("buffer too short for its shape", _edit(_set(("buffers", 1), f32(W[:2])))),
    ("buffer too long for its shape", _edit(_set(("buffers", 2), f32(np.ones(9))))),
    # dimensions and indices
    ("negative dimension", _edit(_set(("tensors", 3, "shape"), [1, -4]))),
    ("negative input dimension", _edit(_set(("tensors", 0, "shape"), [-1, 8]))),
    ("shape_signature -7", _edit(_set(("tensors", 0, "shape_signature"), [-7, 8]))),
    ("dynamic batch with shape 0", _edit(_many(_set(("tensors", 0, "shape"), [0, 8]), _set(("tensors", 0, "shape_signature"), [-1, 8])))),
    ("zero-size input", _edit(_set(("tensors", 0, "shape"), [0, 8]))),
    ("op input index out of range", _edit(_set(("operators", 0, "inputs"), [0, 99, 2]))),
    ("op input index -5", _edit(_set(("operators", 0, "inputs"), [0, -5, 2]))),
    ("op output index out of range", _edit(_set(("operators", 1, "outputs"), [1000]))),
    ("op output -1", _edit(_set(("operators", 1, "outputs"), [-1]))),
    ("subgraph input out of range", _edit(_set(("inputs",), [7]))),
    ("subgraph output out of range", _edit(_set(("outputs",), [2**31 - 1]))),
    ("no subgraph outputs", _edit(_set(("outputs",), []))),
    ("no subgraph inputs", _edit(_set(("inputs",), []))),
    ("opcode index out of range", _edit(_set(("operators", 1, "op"), 9))),
    ("buffer index out of range", _edit(_set(("tensors", 1, "buffer"), 4000))),
    ("input is also a constant", _edit(_set(("tensors", 0, "buffer"), 2))),
    # graph structure
    ("cyclic graph", _edit(_set(("operators", 0, "inputs"), [4, 1, 2]))),
    ("self loop", _edit(_set(("operators", 1, "inputs"), [4]))),
    ("two ops write one tensor", _edit(_set(("operators", 1, "outputs"), [3]))),
    ("op writes the model input", _edit(_set(("operators", 1, "outputs"), [0]))),
    ("output never computed", _edit(_many(_set(("operators",), [dict(op=0, inputs=[0, 1, 2], outputs=[3])]), _set(("outputs",), [4])))),
    # operators with the wrong operands
    ("FULLY_CONNECTED with one input", _edit(_set(("operators", 0, "inputs"), [0]))),
    ("FULLY_CONNECTED filter left out (-1)", _edit(_set(("operators", 0, "inputs"), [0, -1, 2]))),
    ("corrupt tensor name (newline, bad UTF-8)", _edit(_many(_set(("tensors", 1, "name"), "w\n\udcff\x00" + "z" * 5000), _set(("buffers", 1), f32(W[:1]))))),
    ("FULLY_CONNECTED with five inputs", _edit(_set(("operators", 0, "inputs"), [0, 1, 2, 2, 2]))),
    ("SOFTMAX with three inputs", _edit(_set(("operators", 1, "inputs"), [3, 3, 3]))),
    ("SOFTMAX with no inputs", _edit(_set(("operators", 1, "inputs"), []))),
    ("SOFTMAX with two outputs", _edit(_many(_set(("operators", 1, "outputs"), [4, 5]), lambda s: s["tensors"].append(dict(name="y2", shape=[1, 4]))))),
    ("FULLY_CONNECTED weights of rank 3", _edit(_set(("tensors", 1, "shape"), [4, 2, 4]))),
    ("FULLY_CONNECTED weights transposed", _edit(_set(("tensors", 1, "shape"), [8, 4]))),
    ("FULLY_CONNECTED bias too long", _edit(_many(_set(("tensors", 2, "shape"), [8]), _set(("buffers", 2), f32(np.ones(8)))))),
    ("declared result shape wrong", _edit(_many(_set(("tensors", 3, "shape"), [1, 7]), _set(("tensors", 4, "shape"), [1, 7])))),
    ("int32 weights", _edit(_set(("tensors", 1, "type"), "i32"))),
    ("int32 activations", _edit(_set(("tensors", 3, "type"), "i32"))),
    ("boolean input", _edit(_many(_set(("tensors", 0, "type"), "bool"), _set(("tensors", 0, "shape"), [1, 8])))),
    ("unknown tensor type 99", _edit(_set(("tensors", 3, "type"), 99))),
    ("SOFTMAX replaced by CONV_2D", _edit(_set(("opcodes", 1), "CONV_2D"))),
    ("FULLY_CONNECTED replaced by ADD", _edit(_set(("opcodes", 0), "ADD"))),
    ("FULLY_CONNECTED replaced by RESHAPE", _edit(_set(("opcodes", 0), "RESHAPE"))),
    ("SOFTMAX replaced by CONCATENATION", _edit(_set(("opcodes", 1), "CONCATENATION"))),
    ("SOFTMAX replaced by GATHER", _edit(_set(("opcodes", 1), "GATHER"))),
    ("SOFTMAX replaced by WHILE", _edit(_set(("opcodes", 1), "WHILE"))),
    ("SOFTMAX options on FULLY_CONNECTED", _edit(_set(("operators", 0, "options"), ("SoftmaxOptions", {"beta": 2.0})))),
    ("SOFTMAX beta NaN", _edit(_set(("operators", 1, "options"), ("SoftmaxOptions", {"beta": float("nan")})))),
    ("input quantized with scale 0", _edit(_set(("tensors", 0, "quant"), ([0.0], [0])))),
    ("input quantized with NaN scale", _edit(_set(("tensors", 0, "quant"), ([float("nan")], [0])))),
    ("weights with zero point 2^40 (int8 storage)", _edit(_many(_set(("tensors", 1, "quant"), ([0.1], [1 << 40])), _set(("tensors", 1, "type"), "i8")))),
    ("uint8 input with zero point -1", _edit(_many(_set(("tensors", 0, "quant"), ([0.1], [-1])), _set(("tensors", 0, "type"), "u8")))),
    ("weights with 3 scales, 2 zero points", _edit(_many(_set(("tensors", 1, "quant"), ([0.1, 0.2, 0.3], [0, 0])), _set(("tensors", 1, "type"), "i8")))),
    ("schema version 2", lambda: raw_tflite(**fc_spec(), version=2)),
    ("no operator codes", _edit(_set(("opcodes",), []))),
    ("no operators", _edit(_set(("operators",), []))),
    ("no buffers", _edit(_set(("buffers",), []))),
    ("weights NaN", _edit(_set(("buffers", 1), f32(np.full((4, 8), np.nan))))),
    ("weights inf", _edit(_set(("buffers", 1), f32(np.full((4, 8), np.inf))))),
    ("bias 1e38", _edit(_set(("buffers", 2), f32(np.full(4, 1e38))))),
    ("bias NaN", _edit(_set(("buffers", 2), f32([0.1, np.nan, 0.0, 0.2])))),
    ("FULLY_CONNECTED declared scalar", _edit(_many(_set(("tensors", 3, "shape"), []), _set(("tensors", 4, "shape"), [])))),
    ("SPACE_TO_DEPTH block size 0", _edit(_append_op(
        dict(op=2, inputs=[4], outputs=[5], options=("SpaceToDepthOptions", {"block_size": 0})),
        [dict(name="s2d", shape=[1, 4])], "SPACE_TO_DEPTH", outputs=[5]))),
    ("two-input model: second input unused and missing", _edit(_set(("inputs",), [0]), two_input_spec)),
]


def byte_mutants(data: bytes, rng: np.random.Generator, count: int) -> Iterator[tuple[str, bytes]]:
    """Random byte-level corruption: flips, truncation, planted 16/32/64-bit values, zeroed
    and duplicated ranges (the planted values favour sizes and offsets that ask for a lot)."""
    n = len(data)
    for _ in range(count):
        kind = int(rng.integers(0, 7))
        buf = bytearray(data)
        if kind == 0:
            for _ in range(int(rng.integers(1, 8))):
                buf[int(rng.integers(0, n))] = int(rng.integers(0, 256))
            what = "flipped bytes"
        elif kind == 1:
            buf = buf[: int(rng.integers(0, n))]
            what = f"truncated to {len(buf)} bytes"
        elif kind == 2:
            pos = min(int(rng.integers(0, n // 4)) * 4, n - 4)
            val = int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, n, n - 4, 65536, int(rng.integers(0, 1 << 32))]))
            struct.pack_into("<I", buf, pos, val)
            what = f"u32 {val:#x} at {pos}"
        elif kind == 3:
            pos = min(int(rng.integers(0, n // 2)) * 2, n - 2)
            struct.pack_into("<H", buf, pos, int(rng.integers(0, 1 << 16)))
            what = f"u16 at {pos}"
        elif kind == 4:
            pos = min(int(rng.integers(0, n // 8)) * 8, n - 8)
            val = [1 << 40, 1 << 62, (1 << 64) - 1, n][int(rng.integers(0, 4))]
            struct.pack_into("<Q", buf, pos, val)
            what = f"u64 {val:#x} at {pos}"
        elif kind == 5:
            a = int(rng.integers(0, n))
            b = min(n, a + int(rng.integers(1, 64)))
            buf[a:b] = bytes(b - a)
            what = f"zeroed {a}..{b}"
        else:
            a, c = int(rng.integers(0, n)), int(rng.integers(0, n))
            chunk = buf[a : min(n, a + int(rng.integers(1, 64)))]
            buf[c : c + len(chunk)] = chunk
            buf = buf[:n]
            what = f"copied {len(chunk)} bytes from {a} to {c}"
        yield what, bytes(buf)


# ----------------------------------------------------------------------------------------
# Data file mutations
# ----------------------------------------------------------------------------------------


def _npz(arrays: dict[str, Any], allow_pickle: bool = False) -> bytes:
    f = io.BytesIO()
    np.savez(f, **arrays)
    return f.getvalue()


def _with(arrays: dict[str, np.ndarray], key: str, fn: Callable[[np.ndarray], Any]) -> dict[str, Any]:
    out = dict(arrays)
    out[key] = fn(arrays[key].copy())
    return out


def _nan_at(a: np.ndarray, value: float, where: int = 0) -> np.ndarray:
    """value at flat position `where` (modulo the size) of a float copy."""
    a = np.ascontiguousarray(a, dtype=a.dtype if a.dtype.kind == "f" else np.float32)
    a.reshape(-1)[where % a.size] = value
    return a


def _huge_header_npz(key: str, shape: tuple[int, ...]) -> bytes:
    """An .npz whose member's .npy header claims `shape` but holds only a few bytes."""
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)  # magic string and header
    npy = f.getvalue()
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(key + ".npy", npy + b"\x00" * 64)
    return z.getvalue()


def data_mutants(arrays: dict[str, np.ndarray]) -> list[tuple[str, bytes]]:
    """Corrupt data files for a model whose inputs are `arrays` (name -> samples first).
    Every one of them must be refused (exit status 2)."""
    k = next(iter(arrays))
    other = [n for n in arrays if n != k]
    out: list[tuple[str, bytes]] = [
        ("one NaN", _npz(_with(arrays, k, lambda a: _nan_at(a, np.nan)))),
        ("all NaN", _npz(_with(arrays, k, lambda a: np.full(a.shape, np.nan, np.float32)))),
        ("one +inf", _npz(_with(arrays, k, lambda a: _nan_at(a, np.inf, 3 * a[0].size + 1)))),
        ("one -inf", _npz(_with(arrays, k, lambda a: _nan_at(a, -np.inf, a.size - 1)))),
        ("complex data", _npz(_with(arrays, k, lambda a: a.astype(np.complex64)))),
        ("string data", _npz(_with(arrays, k, lambda a: a.astype(str)))),
        ("bytes data", _npz(_with(arrays, k, lambda a: a.astype("S8")))),
        ("datetime data", _npz(_with(arrays, k, lambda a: a.astype(np.int64).astype("datetime64[s]")))),
        ("structured data", _npz(_with(arrays, k, lambda a: np.zeros(a.shape, dtype=[("a", "f4"), ("b", "i4")])))),
        ("an extra dimension", _npz(_with(arrays, k, lambda a: a[:, None].repeat(2, axis=1)))),
        ("one dimension less", _npz(_with(arrays, k, lambda a: a.reshape(a.shape[0], -1)[:, :5]))),
        ("wrong width", _npz(_with(arrays, k, lambda a: np.concatenate([a, a], axis=-1)))),
        ("a scalar", _npz(_with(arrays, k, lambda a: np.float32(1.0)))),
        ("one sample, no sample axis", _npz(_with(arrays, k, lambda a: a[0, 0]))),
        ("zero samples", _npz(_with(arrays, k, lambda a: a[:0]))),
        ("missing input", _npz({n: v for n, v in arrays.items() if n != k})),
        ("input under a wrong name, beside the right one", _npz({**arrays, k + "_typo": arrays[k]})),
        ("extra input", _npz({**arrays, "not_an_input": arrays[k]})),
        ("no arrays", _npz({})),
        ("not an npz: random bytes", np.random.default_rng(5).bytes(300)),
        ("not an npz: empty file", b""),
        ("not an npz: a .npy file", _npy(arrays[k])),
        ("not an npz: text", b"x,y\n1,2\n"),
        ("truncated npz", _npz(arrays)[: len(_npz(arrays)) // 2]),
        ("npz with a corrupt member", _corrupt_member(_npz(arrays))),
        ("npz with a corrupt .npy header", _corrupt_header(arrays)),
        ("npz member claiming 2^40 elements", _huge_header_npz(k, (1 << 40, 1, 8))),
        ("npz member claiming 2^62 elements", _huge_header_npz(k, (1 << 31, 1 << 31, 1))),
        ("pickled object array", _pickled(arrays, k)),
    ]
    if other:
        j = other[0]
        out.append(("inputs with different sample counts", _npz(_with(arrays, j, lambda a: a[:3]))))
    return out


def _npy(a: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def _corrupt_member(data: bytes) -> bytes:
    buf = bytearray(data)
    i = buf.find(b"NUMPY")
    buf[i + 40 : i + 60] = b"\xff" * 20  # inside the header / first data bytes
    return bytes(buf)


def _corrupt_header(arrays: dict[str, np.ndarray]) -> bytes:
    """An npz (valid zip, right CRCs) whose first member's header dict is cut by garbage:
    numpy's header parser raises TokenError, not ValueError."""
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        for i, (k, a) in enumerate(arrays.items()):
            npy = bytearray(_npy(a))
            if i == 0:
                j = npy.find(b"'fortran_order")
                npy[j + 14 : j + 34] = b"\xff" * 20  # from its closing quote on
            zf.writestr(k + ".npy", bytes(npy))
    return z.getvalue()


def _pickled(arrays: dict[str, np.ndarray], key: str) -> bytes:
    obj = np.empty(len(arrays[key]), dtype=object)
    for i in range(len(obj)):
        obj[i] = {"sample": i}
    f = io.BytesIO()
    np.savez(f, **{**arrays, key: obj})
    return f.getvalue()


# ----------------------------------------------------------------------------------------
# Running the CLI with limits
# ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    rc: int
    stderr: str
    output_left: bool
    inputs_changed: bool
    seconds: float
    writes_output: bool = True

    def problem(self, mode_args: list[str] | None = None) -> str | None:
        """What is wrong with this outcome (None: acceptable)."""
        lines = self.stderr.splitlines()
        if self.inputs_changed:
            return "an input file changed"
        if self.rc == 2:
            if len(lines) != 1 or not lines[0].startswith("tflquant: error: "):
                return f"exit 2 but stderr is not one error line: {self.stderr[-2000:]!r}"
            if self.output_left:
                return "exit 2 left an output file"
            return None
        if self.rc == 0:
            if self.writes_output and not self.output_left:
                return "exit 0 without an output file"
            return None
        return f"exit status {self.rc}: {self.stderr[-3000:]}"


class _Timeout(BaseException):
    pass


@contextlib.contextmanager
def limits(headroom: int = MEMORY_HEADROOM, seconds: int = RUN_SECONDS) -> Iterator[None]:
    """Lower this process's address-space limit to its current size + headroom and arm a
    timer, for one in-process run; both are restored afterwards."""
    old_soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft = vsize + headroom
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, (old_soft, hard))


def _digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "-" for p in paths]


def run_cli(argv: list[str], inputs: list[Path], output: Path | None) -> Outcome:
    """tflquant.cli.main(argv) in this process, under limits(); stdout is discarded."""
    from tflquant.cli import main

    before = _digest(inputs)
    err, out = io.StringIO(), io.StringIO()
    t = time.perf_counter()
    try:
        with limits(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
    except _Timeout:
        rc, err = 124, io.StringIO(f"timed out after {RUN_SECONDS}s")
    except BaseException as e:  # the failures we look for: a traceback instead of one line
        import traceback

        rc = 1
        err = io.StringIO(f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc(limit=-4)))
    seconds = time.perf_counter() - t
    left = output is not None and output.exists()
    leftovers = [p for p in (output.parent.glob(".tflquant-*") if output is not None else [])]
    outcome = Outcome(rc, err.getvalue(), left, _digest(inputs) != before, seconds, output is not None)
    if leftovers:
        outcome.rc, outcome.stderr = 1, f"temporary files left: {leftovers}"
    if left and output is not None:
        output.unlink()
    return outcome


def run_subprocess(argv: list[str], address_space: int = 4 << 30, timeout: float = 120) -> tuple[int, str]:
    """The CLI in a child process under RLIMIT_AS and a timeout: (exit status, stderr)."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({address_space}, {address_space}))\n"
        "from tflquant.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def quantize_argv(model: Path, out: Path, mode: str, calib: Path | None) -> list[str]:
    argv = ["quantize", str(model), "-o", str(out), "-q", *MODES[mode]]
    if mode in STATIC and calib is not None:
        argv += ["--calibration", str(calib)]
    return argv


class Fuzzer:
    """Writes each case to files in `root` and runs quantize (every mode) and compare on it."""

    def __init__(self, root: Path, inspect: bool = True):
        self.root = root
        self.inspect = inspect
        self.failures: list[str] = []
        self.runs = 0
        self.statuses: dict[int, int] = {}
        self.slowest = (0.0, "")

    def _record(self, label: str, o: Outcome, must_fail: bool = False) -> None:
        self.runs += 1
        self.statuses[o.rc] = self.statuses.get(o.rc, 0) + 1
        if o.seconds > self.slowest[0]:
            self.slowest = (o.seconds, label)
        problem = o.problem()
        if problem is None and must_fail and o.rc != 2:
            problem = f"expected exit status 2, got {o.rc}"
        if problem is not None:
            self.failures.append(f"{label}: {problem}")

    def model_case(self, label: str, data: bytes, calib: dict[str, np.ndarray], modes: list[str], compare_with: bytes | None = None) -> None:
        model = self.root / "model.tflite"
        model.write_bytes(data)
        cal = self.root / "calib.npz"
        cal.write_bytes(_npz(calib))
        out = self.root / "out.tflite"
        for mode in modes:
            self._record(f"{label} [{mode}]", run_cli(quantize_argv(model, out, mode, cal), [model, cal], out))
        if self.inspect:  # what quantize reads, inspect and import read too
            self._record(f"{label} [inspect]", run_cli(["inspect", str(model)], [model], None))
            mlir = self.root / "out.mlir"
            self._record(f"{label} [import]", run_cli(["import", str(model), "-o", str(mlir)], [model], mlir))
        if compare_with is not None:  # the corrupt file as the quantized model, then as the float one
            good = self.root / "good.tflite"
            good.write_bytes(compare_with)
            self._record(f"{label} [compare, as quantized]", run_cli(["compare", str(good), str(model), str(cal)], [good, model, cal], None))
            self._record(f"{label} [compare, as float]", run_cli(["compare", str(model), str(good), str(cal)], [good, model, cal], None))

    def data_case(self, label: str, model_bytes: bytes, quantized: bytes, data: bytes, modes: list[str]) -> None:
        model = self.root / "model.tflite"
        model.write_bytes(model_bytes)
        qmodel = self.root / "q.tflite"
        qmodel.write_bytes(quantized)
        cal = self.root / "calib.npz"
        cal.write_bytes(data)
        out = self.root / "out.tflite"
        for mode in modes:
            self._record(f"data: {label} [{mode}]", run_cli(quantize_argv(model, out, mode, cal), [model, cal], out), must_fail=True)
        self._record(f"data: {label} [compare]", run_cli(["compare", str(model), str(qmodel), str(cal)], [model, qmodel, cal], None), must_fail=True)

    def report(self) -> str:
        return f"{self.runs} runs, exit statuses {dict(sorted(self.statuses.items()))}, slowest {self.slowest[0]:.2f}s ({self.slowest[1]})"


def quantized_seed(spec: dict[str, Any]) -> bytes:
    import tflquant

    return tflquant.quantize(build(spec), mode="int8", representative_dataset=seed_data(spec)).model


# ----------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------


def _check(fz: Fuzzer) -> None:
    assert not fz.failures, f"{len(fz.failures)} bad outcome(s) of {fz.report()}:\n" + "\n".join(fz.failures[:20])


def test_seed_models_quantize_in_every_mode(tmp_path: Path) -> None:
    fz = Fuzzer(tmp_path)
    for spec in (fc_spec(), two_input_spec()):
        fz.model_case("seed", build(spec), seed_data(spec), list(MODES), compare_with=None)
    _check(fz)
    assert set(fz.statuses) == {0}, fz.report()


def test_field_mutations_every_mode(tmp_path: Path) -> None:
    """Each field mutation through quantize in every mode (and compare for a few): exit 0
    or 2 with one line; the ones that ask for terabytes never allocate them."""
    fz = Fuzzer(tmp_path)
    good = quantized_seed(fc_spec())
    for i, (name, make) in enumerate(FIELD_MUTANTS):
        calib = seed_data(two_input_spec() if name.startswith("two-input") else fc_spec())
        fz.model_case(name, make(), calib, list(MODES), compare_with=good if i % 3 == 0 else None)
    _check(fz)
    assert fz.statuses.get(2, 0) > fz.runs // 2, fz.report()


REFUSED = {  # mutants every mode that reads them must refuse, and the tensor or op it names
    "huge rank-6 activation": "'y'",
    "huge weight shape, small buffer": "'w'",
    "buffer offset/size past the end": "'w'",
    "buffer offset+size overflow u64": "'w'",
    "FILL of 2^48 elements": "'filled'",
    "BROADCAST_TO 2^40": "'wide'",
    "TILE by 2^20 x 2^20": "'tiled'",
    "PAD by 2^30": "'padded'",
    "FULLY_CONNECTED with one input": "FULLY_CONNECTED",
    "cyclic graph": "'y'",
    "negative dimension": "'h'",
    "FULLY_CONNECTED filter left out (-1)": "filter",
    "corrupt tensor name (newline, bad UTF-8)": "'w\\n\\udcff\\x00zzz",
    "SPACE_TO_DEPTH block size 0": "'s2d'",
    "weights with zero point 2^40 (int8 storage)": "'w'",
}


def test_what_asks_for_terabytes_is_refused_naming_it(tmp_path: Path) -> None:
    cal = tmp_path / "c.npz"
    cal.write_bytes(_npz(seed_data(fc_spec())))
    makers = dict(FIELD_MUTANTS)
    for name, named in REFUSED.items():
        model = tmp_path / "m.tflite"
        model.write_bytes(makers[name]())
        out = tmp_path / "o.tflite"
        for mode in STATIC:
            o = run_cli(quantize_argv(model, out, mode, cal), [model, cal], out)
            assert o.rc == 2 and o.problem() is None, (name, mode, o)
            assert named in o.stderr, (name, o.stderr)
            assert o.seconds < 5, (name, o.seconds)


def byte_seeds() -> list[tuple[str, bytes, dict[str, np.ndarray]]]:
    """(name, flatbuffer, calibration data) of the models byte mutations start from: the
    FULLY_CONNECTED/SOFTMAX model and a small CNN (conv, pool, reshape, FC) as tflquant writes it."""
    from models import MODELS, sample_inputs

    from tflquant.tflite.writer import write_flatbuffer

    cnn = MODELS["cnn"]()
    return [("fc", build(fc_spec()), seed_data(fc_spec())), ("cnn", write_flatbuffer(cnn), sample_inputs(cnn, 8))]


def run_byte_mutations(fz: Fuzzer, count: int, seed: int) -> None:
    """`count` byte mutants of each seed model: quantize in all five modes (one mode in four
    cases of five, to spread the time), inspect, import, and compare on every fourth."""
    rng = np.random.default_rng(seed)
    import tflquant

    for name, data, calib in byte_seeds():
        good = tflquant.quantize(data, mode="int8", representative_dataset=calib).model
        for k, (what, mutant) in enumerate(byte_mutants(data, rng, count)):
            modes = list(MODES) if k % 5 == 0 else [list(MODES)[k % len(MODES)]]
            fz.model_case(f"{name} byte mutant {k} ({what})", mutant, calib, modes, compare_with=good if k % 4 == 0 else None)


def test_byte_mutations_every_mode(tmp_path: Path) -> None:
    fz = Fuzzer(tmp_path)
    run_byte_mutations(fz, 120, 20261207)
    _check(fz)
    assert fz.statuses.get(2, 0) > fz.runs // 3, fz.report()


@pytest.mark.parametrize("spec_fn", [fc_spec, two_input_spec], ids=["one input", "two inputs"])
def test_corrupt_data_files_are_refused(tmp_path: Path, spec_fn: Callable[[], dict[str, Any]]) -> None:
    spec = spec_fn()
    fz = Fuzzer(tmp_path)
    model, q = build(spec), quantized_seed(spec)
    for what, data in data_mutants(seed_data(spec)):
        fz.data_case(what, model, q, data, ["int8", "int16x8"] if spec_fn is fc_spec else ["int8-io"])
    _check(fz)


def test_subprocess_runs_stay_within_memory_and_time(tmp_path: Path) -> None:
    """A few runs in child processes with a 4 GB address space and a timeout."""
    cal = tmp_path / "c.npz"
    cal.write_bytes(_npz(seed_data(fc_spec())))
    cases = [m for m in FIELD_MUTANTS if m[0] in ("huge rank-6 activation", "FILL of 2^48 elements", "buffer offset/size past the end",
                                                  "corrupt tensor name (newline, bad UTF-8)")]
    for name, make in cases:
        model = tmp_path / "m.tflite"
        model.write_bytes(make())
        out = tmp_path / "o.tflite"
        rc, err = run_subprocess(quantize_argv(model, out, "int8", cal))
        assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("tflquant: error: "), (name, rc, err)
        assert not out.exists()
    huge = tmp_path / "huge.npz"
    huge.write_bytes(_huge_header_npz("x", (1 << 40, 1, 8)))
    rc, err = run_subprocess(quantize_argv(tmp_path / "m.tflite", tmp_path / "o.tflite", "int8", huge))
    assert rc == 2 and len(err.splitlines()) == 1, (rc, err)
