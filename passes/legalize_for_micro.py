"""`legalize-for-micro`: ops TFLite Micro has no kernel for become equivalent ops it has.

Part of the `target="micro"` pipeline (before `check-micro`, which refuses whatever is
left; the facts about TFLM are in passes/_micro_ops.py). Each rewrite happens in place,
into ops both LiteRT and TFLM run; all compute the same bytes as the op they replace
except int8 SQRT (within one output step, see below):

- int8 GELU (TFLM has no GELU), and the int8 ops TFLM computes in float only or not at
  all: EXP, LOG, SQRT, RELU_N1_TO_1, RELU_0_TO_1 (when RELU cannot stand in, below).
  LiteRT computes GELU as a lookup in a 256-entry table of quantize(gelu(dequantize(q)));
  here the same lookup is written out:

      idx = CAST(x)                  int8 storage -> int32 (CAST copies raw values)
      idx = ADD(idx, offset)         offset: int32 128 (x's shape, see below); idx in [0, 255]
      y   = GATHER(table, idx)       table: tensor<256x!quant.uniform<i8...>>, the GELU's output type

  The table is what tflquant's integer reference kernel (bit-exact with LiteRT's) gives
  for each of the 256 inputs; SQRT, which LiteRT does not compute by table, gets the
  correctly rounded table of sqrt(dequantize(q)): within one output step of LiteRT's on
  every input it accepts (LiteRT fails on inputs below zero; the table gives 0 there).
  GATHER is the cost (LiteRT copies element by element, ~2 ns
  each, against ~0.3 ns for its GELU table); the ops around it are the cheapest found
  that both runtimes take: GATHER indices must be int32 for TFLM and non-negative for
  both, and neither runtime has a one-op int8 -> non-negative int32 (QUANTIZE to int32
  is not in LiteRT, TFLM's CAST takes no uint8, TFLM's GATHER no int16 indices). The
  offset has x's full shape because LiteRT's broadcasting int32 ADD is slower than its
  elementwise one (~0.4 us of the tiny transformer's ~35). That costs 4 bytes of constant
  data per element, so only up to 4096 elements (16 KiB; one constant per shape, shared
  by the GELUs of a function, like equal tables); a larger or dynamic x gets a scalar.
- int32 SELECT_V2 (TFLM's SELECT_V2 takes int8, int16 and float32 only; e.g. the
  negative-index wrap of an embedding lookup, `select(ids < 0, ids + vocab, ids)`):

      y = ADD(b, MUL(CAST(cond) -> int32, SUB(a, b)))

  exact in int32 arithmetic (b + 1 * (a - b) = a, b + 0 = b), with the same broadcasting.
  When `a` is `ADD(b, k)` (no fused activation) with a constant `k`, a - b is k:

      y = ADD(b, MUL(CAST(cond) -> int32, k))

  and that ADD is erased when nothing else reads it: CAST, MUL, ADD in place of ADD,
  SELECT_V2 (the general form adds CAST, SUB, MUL, ADD).

- int8 RELU_0_TO_1 (TFLM has none) whose output type puts real 1.0 at or above the int8
  maximum (zero point + round(1 / scale) >= 127: every calibrated output range within
  [0, 1] does): RELU. Both requantize the input alike and clamp below at the zero point;
  RELU_0_TO_1's upper clamp is then the int8 maximum too.

- SELECT (v1; TFLM registers SELECT_V2 only): SELECT_V2, its rank-1 condition (one value
  per row of dim 0) first reshaped to [n, 1, ..., 1] so that it broadcasts the same way.
- TRANSPOSE of more than 5 dims (TFLM: "only supports 1D-5D") of a type TFLM transposes:
  size-1 dims dropped and dims that stay adjacent in the permutation merged; when <= 5
  dims remain, RESHAPE to them, TRANSPOSE, RESHAPE to the result.
- TILE (no TFLM kernel) with constant multiples: a dim d tiled k times is [1, d] broadcast
  to [k, d] (d = 1: broadcast to k): RESHAPE, BROADCAST_TO, RESHAPE (<= 5 dims, runs of
  untiled dims merged when needed).
- STRIDED_SLICE of more than 4 dims (TFLM: "input dim should not exceed 4") with constant
  begin/end/strides: size-1 dims dropped, a dim taken whole merged into the stride-1 dim
  before it; when <= 4 dims remain, RESHAPE, STRIDED_SLICE, RESHAPE to the result.

The rewritten op's result keeps its type and tensor name (the last new op produces it);
new tensors are named `<name>/...`. Everything else is left alone (int16 GELU, float ops,
SELECT_V2 of other types, an int32 TRANSPOSE, ...): check-micro names what TFLM cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerType, ModuleOp, TensorType, i32
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from tflquant.dialects import tfl
from tflquant.dialects.quant import quantized_element
from tflquant.errors import TflquantError
from tflquant.ir import dense_from_numpy
from tflquant.passes._micro_ops import KERNELS, kind
from tflquant.reference import run_integer_op


def _int8(t: object) -> bool:
    q = quantized_element(t) if isinstance(t, TensorType) else None
    if q is None or q.per_axis:
        return False
    w = q.storage_type
    return isinstance(w, IntegerType) and w.width.data == 8 and q.qmin < 0


def _is_i32(t: object) -> bool:
    return isinstance(t, TensorType) and t.element_type == i32


def _broadcast(*types: TensorType) -> list[int]:
    shapes = [[int(d) for d in t.get_shape()] for t in types]
    rank = max(len(s) for s in shapes)
    out = []
    for k in range(rank):
        dims = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]
        out.append(max(dims) if all(d >= 0 for d in dims) else min(dims))
    return out


def _name(op: Operation, default: str) -> str:
    names = tfl.tensor_names(op)
    return names[0] if names else default


def _build(name: str, inputs: list, result_type: TensorType, tensor: str, **options: object) -> Operation:  # noqa: ANN001
    return tfl.BUILTIN_CLASSES[name](inputs, [result_type], options=dict(options), names=[tensor])


# Largest offset constant of the index's full shape (elements); beyond it, a scalar.
OFFSET_MAX_ELEMENTS = 4096


def _sqrt_table(g: Operation) -> np.ndarray:
    """int8 SQRT as a table: float32 dequantize, sqrt (negative inputs give 0), round half
    away from zero to the output grid, clamp. LiteRT's int8 SQRT is not a table; this one
    is within one output step of it (tests/test_micro_target.py)."""
    qi = quantized_element(g.operands[0].type)  # type: ignore[arg-type]
    qo = quantized_element(g.results[0].type)  # type: ignore[arg-type]
    assert qi is not None and qo is not None
    deq = np.float32(qi.scale) * (np.arange(-128, 128) - qi.zero_point).astype(np.float32)
    y = np.sqrt(np.maximum(deq, 0).astype(np.float64)) / np.float64(np.float32(qo.scale))
    q = np.sign(y) * np.floor(np.abs(y) + 0.5) + qo.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _reference_table(g: Operation) -> np.ndarray:
    """What tflquant's integer reference kernel (bit-exact with LiteRT's) gives for each of
    the 256 int8 inputs."""
    codes = np.arange(-128, 128, dtype=np.int8)
    return run_integer_op(g, [codes])[0].astype(np.int8)


# int8 -> int8 elementwise ops TFLM has no int8 kernel for, computed as a table lookup
TABLES = {
    "GELU": _reference_table,
    "EXP": _reference_table,
    "LOG": _reference_table,
    "RELU_N1_TO_1": _reference_table,
    "RELU_0_TO_1": _reference_table,
    "SQRT": _sqrt_table,
}


def _gelu(g: Operation, shared: dict) -> list[Operation] | None:
    """The lookup ops for an int8 op `g` of TABLES (GELU first); constants already made for
    `g`'s block (same offset shape, same table) are taken from `shared` instead of made again."""
    x, y = g.operands[0], g.results[0]
    if not (_int8(x.type) and _int8(y.type)):
        return None
    xt, yt = x.type, y.type
    assert isinstance(xt, TensorType) and isinstance(yt, TensorType)
    table = TABLES[tfl.op_type(g)](g)
    name = _name(g, tfl.op_type(g).lower())
    shape = [int(d) for d in xt.get_shape()]
    new: list[Operation] = []

    def const(key: tuple, make) -> Operation:  # noqa: ANN001
        key = (g.parent, *key)
        c = shared.get(key)
        if c is None:
            c = shared[key] = make()
            new.append(c)
        return c

    cast = _build("CAST", [x], TensorType(i32, shape), f"{name}/table_index")
    new.append(cast)
    full = all(d >= 0 for d in shape) and int(np.prod(shape)) <= OFFSET_MAX_ELEMENTS
    offset_shape = shape if full else []
    offset = const(
        ("offset", tuple(offset_shape)),
        lambda: tfl.ConstOp(dense_from_numpy(np.full(offset_shape, 128, np.int32)), name=f"{name}/table_offset"),
    )
    add = _build("ADD", [cast.results[0], offset.results[0]], TensorType(i32, shape), f"{name}/table_index_offset")
    new.append(add)
    tt = TensorType(quantized_element(yt), [256])
    tab = const(("table", tt, table.tobytes()), lambda: tfl.ConstOp(dense_from_numpy(table), tt, name=f"{name}/table"))
    new.append(_build("GATHER", [tab.results[0], add.results[0]], yt, name, axis=0))
    return new


def _const_difference(a: SSAValue, b: SSAValue) -> SSAValue | None:
    """k when `a` is ADD(b, k) or ADD(k, b) with a constant k and no fused activation."""
    add = a.owner
    if not isinstance(add, tfl.BUILTIN_CLASSES["ADD"]) or len(add.operands) != 2:
        return None
    if add.option("fused_activation_function") != "NONE":
        return None
    x0, x1 = add.operands
    k = x1 if x0 is b else x0 if x1 is b else None
    if k is None or not isinstance(k.owner, tfl.ConstOp) or not _is_i32(k.type):
        return None
    return k


def _select(s: Operation) -> list[Operation] | None:
    c, a, b = s.operands
    y = s.results[0]
    if not (_is_i32(a.type) and _is_i32(b.type) and _is_i32(y.type)) or not isinstance(c.type, TensorType):
        return None
    yt = y.type
    assert isinstance(yt, TensorType)
    name = _name(s, "select")
    ci = _build("CAST", [c], TensorType(i32, list(c.type.get_shape())), f"{name}/condition")
    k = _const_difference(a, b)
    if k is not None:
        mul = _build("MUL", [ci.results[0], k], TensorType(i32, _broadcast(ci.results[0].type, k.type)), f"{name}/selected_difference")  # type: ignore[arg-type]
        return [ci, mul, _build("ADD", [b, mul.results[0]], yt, name)]
    diff = _build("SUB", [a, b], TensorType(i32, _broadcast(a.type, b.type)), f"{name}/difference")  # type: ignore[arg-type]
    mul = _build("MUL", [ci.results[0], diff.results[0]], TensorType(i32, _broadcast(ci.results[0].type, diff.results[0].type)), f"{name}/selected_difference")  # type: ignore[arg-type]
    add = _build("ADD", [b, mul.results[0]], yt, name)
    return [ci, diff, mul, add]


def _relu_0_to_1(r: Operation, shared: dict) -> list[Operation] | None:
    x, y = r.operands[0], r.results[0]
    if not (_int8(x.type) and _int8(y.type)):
        return None
    q = quantized_element(y.type)  # type: ignore[arg-type]
    assert q is not None
    if q.zero_point + round(1.0 / q.scale) < q.qmax:
        return _gelu(r, shared)  # 1.0 is inside the int8 range: RELU would not clamp there
    return [_build("RELU", [x], y.type, _name(r, "relu_0_to_1"))]  # type: ignore[arg-type]


def _shape_const(shape: list[int], name: str) -> Operation:
    return tfl.ConstOp(dense_from_numpy(np.array(shape, np.int32)), name=name)


def _select_v1(s: Operation) -> list[Operation] | None:
    """SELECT (v1: same shapes, or a scalar / rank-1 condition matching dim 0) as SELECT_V2:
    a rank-1 condition is reshaped to [n, 1, ..., 1] so that it broadcasts along dim 0."""
    c, a, b = s.operands
    y = s.results[0]
    if not all(isinstance(v.type, TensorType) for v in (c, a, b)):
        return None
    cs, xs = [int(d) for d in c.type.get_shape()], [int(d) for d in a.type.get_shape()]  # type: ignore[union-attr]
    name = _name(s, "select")
    new: list[Operation] = []
    if len(cs) == 1 and len(xs) > 1:
        if cs[0] < 0 or cs[0] != xs[0]:
            return None
        shape = [cs[0]] + [1] * (len(xs) - 1)
        sc = _shape_const(shape, f"{name}/condition_shape")
        r = _build("RESHAPE", [c, sc.results[0]], TensorType(c.type.element_type, shape), f"{name}/condition")  # type: ignore[union-attr]
        new += [sc, r]
        c = r.results[0]
    new.append(_build("SELECT_V2", [c, a, b], y.type, name))  # type: ignore[arg-type]
    return new


MICRO_MAX_TRANSPOSE_RANK = 5


def _transpose(t: Operation) -> list[Operation] | None:
    """A TRANSPOSE of rank > 5 (TFLM takes up to 5) whose size-1 dims and dims that stay
    adjacent in the permutation leave <= 5 dims: RESHAPE to those, TRANSPOSE, RESHAPE back."""
    x, p, y = t.operands[0], t.operands[1], t.results[0]
    if not isinstance(x.type, TensorType) or not isinstance(p.owner, tfl.ConstOp):
        return None
    shape = [int(d) for d in x.type.get_shape()]
    if len(shape) <= MICRO_MAX_TRANSPOSE_RANK or any(d < 0 for d in shape):
        return None
    if kind(x.type) not in (KERNELS["TRANSPOSE"].types or ()):
        return None  # TFLM has no TRANSPOSE of this type at any rank: check-micro names the op
    from tflquant.ir import dense_to_numpy

    perm = [int(v) % len(shape) for v in np.asarray(dense_to_numpy(p.owner.value)).reshape(-1)]
    kept = [i for i in range(len(shape)) if shape[i] != 1]
    order = [i for i in perm if shape[i] != 1]  # kept input dims in output order
    groups: list[list[int]] = []  # runs of input dims that stay adjacent and in order
    for i in order:
        if groups and groups[-1][-1] + 1 == i and kept.index(i) == kept.index(groups[-1][-1]) + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    if len(groups) > MICRO_MAX_TRANSPOSE_RANK:
        return None
    by_input = sorted(groups, key=lambda g: g[0])
    in_shape = [int(np.prod([shape[i] for i in g])) for g in by_input] or [1]
    new_perm = [by_input.index(g) for g in groups] or [0]
    name = _name(t, "transpose")
    el = x.type.element_type
    s1 = _shape_const(in_shape, f"{name}/collapsed_shape")
    r1 = _build("RESHAPE", [x, s1.results[0]], TensorType(el, in_shape), f"{name}/collapsed")
    pc = _shape_const(new_perm, f"{name}/collapsed_perm")
    out_shape = [in_shape[i] for i in new_perm]
    tr = _build("TRANSPOSE", [r1.results[0], pc.results[0]], TensorType(el, out_shape), f"{name}/collapsed_transposed")
    s2 = _shape_const([int(d) for d in y.type.get_shape()], f"{name}/shape")  # type: ignore[union-attr]
    r2 = _build("RESHAPE", [tr.results[0], s2.results[0]], y.type, name)  # type: ignore[arg-type]
    return [s1, r1, pc, tr, s2, r2]


MICRO_MAX_BROADCAST_RANK = 5
MICRO_MAX_STRIDED_SLICE_RANK = 4


def _strided_slice(op: Operation) -> list[Operation] | None:
    """A STRIDED_SLICE of more than 4 dims (TFLM: "input dim should not exceed 4") with
    constant begin/end/strides and no ellipsis / new-axis: size-1 dims dropped, runs of
    dims taken whole merged, and a run taken whole merged into the stride-1 dim before it;
    when <= 4 dims remain, RESHAPE, STRIDED_SLICE (no masks), RESHAPE to the result (which
    also applies shrink_axis_mask)."""
    x, y = op.operands[0], op.results[0]
    if len(op.operands) != 4 or not isinstance(x.type, TensorType) or not isinstance(y.type, TensorType):
        return None
    if op.option("ellipsis_mask") or op.option("new_axis_mask") or op.option("offset"):  # type: ignore[attr-defined]
        return None
    if not all(isinstance(v.owner, tfl.ConstOp) for v in op.operands[1:]):
        return None
    from tflquant.ir import dense_to_numpy

    shape = [int(d) for d in x.type.get_shape()]
    if len(shape) <= MICRO_MAX_STRIDED_SLICE_RANK or any(d < 0 for d in shape):
        return None
    if kind(x.type) not in (KERNELS["STRIDED_SLICE"].types or ()):
        return None
    b, e, st = (np.asarray(dense_to_numpy(v.owner.value)).reshape(-1).astype(np.int64) for v in op.operands[1:])  # type: ignore[union-attr]
    if not (len(b) == len(e) == len(st) == len(shape)):
        return None
    bm, em, sm = (int(op.option(k)) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))  # type: ignore[attr-defined]
    dims = []  # (size, begin, end, stride) with begin/end resolved like the kernel (stride > 0 only)
    for i, d in enumerate(shape):
        s_ = int(st[i])
        if s_ <= 0:
            return None
        lo = 0 if bm >> i & 1 else int(b[i]) + (d if b[i] < 0 else 0)
        hi = d if em >> i & 1 else int(e[i]) + (d if e[i] < 0 else 0)
        if sm >> i & 1:
            hi, s_ = lo + 1, 1
        lo, hi = min(max(lo, 0), d), min(max(hi, 0), d)
        dims.append((d, lo, hi, s_))
    groups: list[list[int]] = []  # merged (size, begin, end, stride)
    for d, lo, hi, s_ in dims:
        if d == 1 and (lo, hi) == (0, 1):
            continue  # a size-1 dim kept whole
        if (lo, hi, s_) == (0, d, 1) and groups and groups[-1][3] == 1:
            # a whole dim after a stride-1 one: rows [b, e) of P x d are elements [b d, e d)
            g = groups[-1]
            groups[-1] = [g[0] * d, g[1] * d, g[2] * d, 1]
        else:
            groups.append([d, lo, hi, s_])
    if len(groups) > MICRO_MAX_STRIDED_SLICE_RANK:
        return None
    groups = groups or [[1, 0, 1, 1]]
    name = _name(op, "strided_slice")
    el = x.type.element_type
    in_shape = [g[0] for g in groups]
    mid = [max(0, -(-(g[2] - g[1]) // g[3])) for g in groups]
    s1 = _shape_const(in_shape, f"{name}/collapsed_shape")
    r1 = _build("RESHAPE", [x, s1.results[0]], TensorType(el, in_shape), f"{name}/collapsed")
    cb = _shape_const([g[1] for g in groups], f"{name}/collapsed_begin")
    ce = _shape_const([g[2] for g in groups], f"{name}/collapsed_end")
    cs = _shape_const([g[3] for g in groups], f"{name}/collapsed_strides")
    sl = _build("STRIDED_SLICE", [r1.results[0], cb.results[0], ce.results[0], cs.results[0]], TensorType(el, mid), f"{name}/collapsed_slice")
    s2 = _shape_const([int(d) for d in y.type.get_shape()], f"{name}/shape")
    r2 = _build("RESHAPE", [sl.results[0], s2.results[0]], y.type, name)
    return [s1, r1, cb, ce, cs, sl, s2, r2]


def _tile_shapes(shape: list[int], mult: list[int], merge: bool) -> tuple[list[int], list[int]]:
    """(x reshaped, broadcast to) for TILE; merge: runs of untiled dims become one dim."""
    src: list[int] = []
    dst: list[int] = []
    run = False  # the last dim of src/dst is untiled (can take the next untiled dim)
    for d, k in zip(shape, mult):
        if k == 1:
            if run and merge:
                src[-1] *= d
                dst[-1] *= d
            else:
                src.append(d)
                dst.append(d)
            run = True
        elif d == 1:
            src.append(1)
            dst.append(k)
            run = False
        else:
            src += [1, d]
            dst += [k, d]
            run = True  # d itself is untiled from here on
    return src, dst


def _tile(t: Operation) -> list[Operation] | None:
    """TILE (no TFLM kernel) with constant multiples as RESHAPE, BROADCAST_TO, RESHAPE: a
    dim d tiled k times is [1, d] broadcast to [k, d] (d = 1: broadcast to k); runs of
    untiled dims are merged so the broadcast has as few dims as possible (TFLM: <= 5)."""
    x, m, y = t.operands[0], t.operands[1], t.results[0]
    if not isinstance(x.type, TensorType) or not isinstance(y.type, TensorType) or not isinstance(m.owner, tfl.ConstOp):
        return None
    from tflquant.ir import dense_to_numpy

    shape = [int(d) for d in x.type.get_shape()]
    mult = [int(v) for v in np.asarray(dense_to_numpy(m.owner.value)).reshape(-1)]
    if len(mult) != len(shape) or any(d < 0 for d in shape) or any(k < 1 for k in mult):
        return None
    src, dst = _tile_shapes(shape, mult, merge=False)
    if len(dst) > MICRO_MAX_BROADCAST_RANK:
        src, dst = _tile_shapes(shape, mult, merge=True)
    if len(dst) > MICRO_MAX_BROADCAST_RANK:
        return None
    name = _name(t, "tile")
    el = x.type.element_type
    new: list[Operation] = []
    v = x
    if src != shape:
        sc = _shape_const(src, f"{name}/broadcastable_shape")
        r = _build("RESHAPE", [x, sc.results[0]], TensorType(el, src), f"{name}/broadcastable")
        new += [sc, r]
        v = r.results[0]
    out = [int(d) for d in y.type.get_shape()]
    bc = _shape_const(dst, f"{name}/broadcast_shape")
    last = dst == out
    b = _build("BROADCAST_TO", [v, bc.results[0]], y.type if last else TensorType(el, dst), name if last else f"{name}/broadcast")  # type: ignore[arg-type]
    new += [bc, b]
    if not last:
        oc = _shape_const(out, f"{name}/shape")
        new += [oc, _build("RESHAPE", [b.results[0], oc.results[0]], y.type, name)]  # type: ignore[arg-type]
    return new


@dataclass(frozen=True)
class LegalizeForMicro(ModulePass):
    """int8 GELU/EXP/LOG/SQRT/RELU_N1_TO_1 -> table lookup, int32 SELECT_V2 -> arithmetic,
    int8 RELU_0_TO_1 -> RELU, SELECT -> SELECT_V2, 6-D TRANSPOSE -> <= 5-D, TILE ->
    BROADCAST_TO, 5-D STRIDED_SLICE -> <= 4-D: ops TFLite Micro runs."""

    name = "legalize-for-micro"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        shared: dict = {}
        rules = {tfl.BUILTIN_CLASSES[k]: (lambda g: _gelu(g, shared), 1) for k in TABLES}
        rules |= {
            tfl.BUILTIN_CLASSES["SELECT_V2"]: (_select, 3),
            tfl.BUILTIN_CLASSES["RELU_0_TO_1"]: (lambda r: _relu_0_to_1(r, shared), 1),
            tfl.BUILTIN_CLASSES["TRANSPOSE"]: (_transpose, 2),
            tfl.BUILTIN_CLASSES["TILE"]: (_tile, 2),
            tfl.BUILTIN_CLASSES["STRIDED_SLICE"]: (_strided_slice, 4),
        }
        # SELECT first: the SELECT_V2 it becomes may need the int32 rewrite below
        self._rewrite(op, {tfl.BUILTIN_CLASSES["SELECT"]: (_select_v1, 3)})
        self._rewrite(op, rules)

    @staticmethod
    def _rewrite(op: ModuleOp, rules: dict) -> None:
        for o in list(op.walk()):
            rule, arity = rules.get(type(o), (None, 0))
            if rule is None:
                continue
            if len(o.operands) != arity or len(o.results) != 1:
                raise TflquantError(
                    f"legalize-for-micro: {o.name} '{_name(o, '?')}' has {len(o.operands)} inputs and "
                    f"{len(o.results)} outputs; it takes {arity} and has 1"
                )
            new = rule(o)
            if new is None:
                continue
            a = o.operands[1].owner if tfl.op_type(o) == "SELECT_V2" else None  # the select's `a`: ADD(b, k) may die
            Rewriter.insert_op(new, InsertPoint.before(o))
            o.results[0].replace_all_uses_with(new[-1].results[0])
            Rewriter.erase_op(o)
            if isinstance(a, tfl.BUILTIN_CLASSES["ADD"]) and not a.results[0].uses:
                Rewriter.erase_op(a)
