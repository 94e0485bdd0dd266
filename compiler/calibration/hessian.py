"""Input second moments (X^T X) of the layers whose weights data-aware rounding rounds.

GPTQ (tflquant.calibration.weight_rounding) rounds a FULLY_CONNECTED filter W [out, in] to
minimise ||X W^T - X W_hat^T||^2 over the calibration inputs X [rows, in] of the layer: all
it needs from the data is X^T X and the row count. Calibration feeds every such input to an
`InputHessians` observer (`collect`), one matrix per distinct input tensor: the query, key
and value projections of an attention block read one tensor and share one matrix. The
driver hands the store to `quantize-weights` (`run_pipeline(..., weight_statistics=...)`),
which takes each layer's matrix when it rounds that layer's weight; a matrix is freed when
the last layer reading its input has taken it (`take`).

Which layers (`matmul_layer`): FULLY_CONNECTED whose filter is a constant (float32, or
DEQUANTIZE of an fp16 constant) of rank 2 [out, in], and BATCH_MATMUL whose y is such a
constant holding one matrix ([1, .., in, out], or [.., out, in] with adj_y); the input's
last dimension is `in`, every other axis of it (samples, sequence positions) is rows.

Numerics and determinism: rows are folded into the float32 accumulator `CHUNK_ROWS` rows
at a time, cut at fixed positions of the global row order (the observer is a plain one, so
the interpreter calls it in sample order, whatever the batch size or the parallel sample
ranges): the result is the same bits however the rows arrive (any batching, any split into
observe calls). A whole chunk inside one observed array is folded from that array; rows of
a chunk that spans calls are copied into the input's chunk buffer (BLAS reads both the same
way: same bits, measured at any alignment). Each fold is a BLAS product
over at most COLUMN_BLOCK columns at a time (temporaries in x COLUMN_BLOCK x 4 bytes), on
and above the diagonal only: the blocks above it general products of x's column slices
(no transposed copy), the diagonal blocks numpy's symmetric product x^T x (SYRK: half the
work, the same bits as the general product in OpenBLAS, measured); `stats()` mirrors the
rest. The statistics run (`collect`) computes only what the matmul inputs need: the store
names its keys (`observed_names`), calibrate asks the interpreter for no results, and the
interpreter runs the plan cut to the steps those values need (interpreter._pruned: a
decoder's LM head and logits are skipped, 40% of decoder_tiny's float multiply-adds),
calling the observer for those values only, in parallel sample ranges of about CHUNK_ROWS
rows (`range_samples`: each range folds its own chunk, and the ranges take turns on few values).
Rows holding NaN or Inf are skipped (and counted in `warnings`).

Peak memory while collecting: per distinct input of width n, the float32 matrix n^2 x 4
bytes (n = 2048: 16 MB; n = 8192: 256 MB) plus a row buffer of up to CHUNK_ROWS x n x 4
bytes (n = 8192: 32 MB), plus one product temporary n x COLUMN_BLOCK x 4 bytes (measured:
one 8192-wide input, 2048 rows: +462 MB peak RSS). A decoder block with d = 2048 and a 4x
MLP has four distinct inputs (query/key/value, attention output, up/gate, down): 3 x 16 MB
+ 256 MB = 304 MB of matrices. `max_bytes` caps the total (`collect`'s default: half the
model's constant bytes, at least BUDGET_MIN): matrices go to the narrowest inputs first,
and the inputs past the cap keep only their diagonal (E[x^2], n x 8 bytes), with which
weight rounding does E[x^2]-weighted MSE clipping instead of GPTQ. While quantize-weights
rounds, GPTQ builds the float32 inverse factor (n^2 x 4 bytes, from one reversed copy of
the matrix; weight_rounding.round_weight) and keeps it until the input's last layer is
rounded (`factors`: query, key and value share it; quantize-weights rounds those three
as one weight with their rows stacked, `round_layer_weights`, the same codes and scales).

Batched weights: a BATCH_MATMUL whose constant y holds several matrices [B.., in, out]
(`weight_batch`) gets one matrix per weight matrix, from the rows of x each one multiplies
under BATCH_MATMUL's broadcasting (`_layers`; x's batch axes where y has 1 are rows
of every matrix), [M, n, n] in the store (M x n^2 x 4 bytes against the cap).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import Float16Type, Float32Type, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from tflquant.dialects import tfl
from tflquant.ir import value_name

BUDGET_MIN = 256 << 20  # the driver's cap on all matrices is max(this, float file size / 2)
CHUNK_ROWS = 1024  # rows folded into the accumulator at once (global row positions)
COLUMN_BLOCK = 1024  # columns per product (bounds the temporary; blocks below the diagonal are mirrored)


def _constant_float(v: SSAValue) -> bool:
    """v is a float32 constant or DEQUANTIZE of an fp16 constant (a weight quantize-weights rounds)."""
    o = v.owner
    if isinstance(o, tfl.DequantizeOp) and o.inputs:
        o = o.inputs[0].owner
        want: type = Float16Type
    else:
        want = Float32Type
    return isinstance(o, tfl.ConstOp) and isinstance(t := o.result.type, TensorType) and isinstance(t.element_type, want)


def matmul_layer(op: Operation) -> tuple[SSAValue, int, bool | None] | None:
    """(input, input width `in`, adj_y) of a layer whose output is the input's last dimension
    contracted with a constant weight, else None: FULLY_CONNECTED with a rank-2 filter
    [out, in] (adj_y None), or BATCH_MATMUL (adj_x false) whose y is [.., in, out] (adj_y
    false) or [.., out, in] (adj_y true): one matrix, or several (`weight_batch`)."""
    if isinstance(op, tfl.FullyConnectedOp) and len(op.operands) >= 2:
        x, w, adj = op.operands[0], op.operands[1], None
        shape = w.type.get_shape() if isinstance(w.type, TensorType) else ()
        if len(shape) != 2:
            return None
        n = shape[1]
    elif isinstance(op, tfl.BatchMatmulOp) and len(op.operands) == 2 and not op.option("adj_x"):
        x, w, adj = op.operands[0], op.operands[1], bool(op.option("adj_y"))
        shape = w.type.get_shape() if isinstance(w.type, TensorType) else ()
        if len(shape) < 2 or any(d < 1 for d in shape):
            return None
        n = shape[-1] if adj else shape[-2]
    else:
        return None
    if not _constant_float(w) or not isinstance(x.type, TensorType) or not x.type.get_shape() or x.type.get_shape()[-1] != n:
        return None
    return x, n, adj


def weight_batch(op: Operation) -> tuple[int, ...]:
    """The batch shape of a matmul layer's weight when it holds several matrices (a
    BATCH_MATMUL y [B.., in, out] with some B > 1), else (): each matrix then has its own
    statistics, from the rows of x that multiply it (BATCH_MATMUL's broadcasting)."""
    if not isinstance(op, tfl.BatchMatmulOp):
        return ()
    t = op.operands[1].type
    lead = tuple(t.get_shape()[:-2]) if isinstance(t, TensorType) else ()
    return lead if any(d > 1 for d in lead) else ()


def _rows_per_matrix(x: np.ndarray, batch: tuple[int, ...]) -> np.ndarray | None:
    """x (an observed array: sample axis, then BATCH_MATMUL's x [.., rows, in]) -> [M, r, in],
    the rows each of the M = prod(batch) weight matrices multiplies (x broadcast against the
    weight's batch shape; axes where the weight has 1 are rows of every matrix); None when
    x's batch dimensions do not broadcast against the weight's."""
    xb = x.shape[1:-2]
    rank = max(len(xb), len(batch))
    xp = (1,) * (rank - len(xb)) + tuple(xb)
    yp = (1,) * (rank - len(batch)) + tuple(batch)
    if any(a != b and a != 1 and b != 1 for a, b in zip(xp, yp)):
        return None
    full = tuple(max(a, b) for a, b in zip(xp, yp))
    v = np.broadcast_to(x.reshape(x.shape[0], *xp, *x.shape[-2:]), (x.shape[0], *full, *x.shape[-2:]))
    kept = [1 + i for i, b in enumerate(yp) if b > 1]
    merged = [0] + [1 + i for i, b in enumerate(yp) if b == 1]
    v = v.transpose(*kept, *merged, rank + 1, rank + 2)
    return v.reshape(int(np.prod(batch)), -1, x.shape[-1])


class InputHessians:
    """X^T X (float32) and row count per layer input, keyed by calibration statistics key
    (tensor name, '@function/name' for names several functions use). A calibration observer:
    `observe(name, array)`; `stats()` finishes it (folds the buffered rows) and returns it."""

    def __init__(self, widths: dict[str, int], readers: dict[str, int] | None = None, max_bytes: int | None = None,
                 batches: dict[str, tuple[int, ...]] | None = None):
        self.widths = dict(widths)
        self.batches = {k: tuple(b) for k, b in (batches or {}).items() if k in self.widths}  # inputs of batched weights (weight_batch)
        self.readers = dict(readers or {k: 1 for k in widths})  # layers still to take each matrix
        self.xtx: dict[str, np.ndarray] = {}
        self.diag: dict[str, np.ndarray] = {}  # inputs past max_bytes: sum of x^2 (float64)
        self.rows: dict[str, int] = {}
        self.skipped: dict[str, int] = {}  # rows with NaN / Inf
        self.factors: dict[str, dict] = {}  # GPTQ's inverse-Hessian factors, per input (weight_rounding.gptq)
        self._buf: dict[str, np.ndarray] = {}  # per input: a chunk buffer [M, CHUNK_ROWS, n]
        self._buffered: dict[str, int] = {}  # its rows in use
        self.retain = False  # keep matrices after `take` (a second pipeline run will read them)
        self.range_samples: int | None = None  # samples per parallel range calibrate asks for (collect)
        budget = max_bytes
        for k, n in sorted(self.widths.items(), key=lambda kn: kn[1]):  # narrow inputs first: most layers per byte
            m = int(np.prod(self.batches[k])) if k in self.batches else 1
            lead = (m,) if k in self.batches else ()
            if budget is None or m * n * n * 4 <= budget:
                self.xtx[k] = np.zeros((*lead, n, n), np.float32)
                budget = None if budget is None else budget - m * n * n * 4
            else:
                self.diag[k] = np.zeros((*lead, n), np.float64)
            self.rows[k] = 0
            self.skipped[k] = 0

    # observer -----------------------------------------------------------------------
    @property
    def observed_names(self) -> frozenset[str]:
        """The statistics keys it records (calibrate calls it for those values only)."""
        return frozenset(self.widths)

    def observe(self, name: str, array: np.ndarray) -> None:
        n = self.widths.get(name)
        if n is None:
            return
        x = np.asarray(array)
        if x.shape[-1:] != (n,):
            return
        if name in self.batches:  # [M, rows, n]: the rows of each weight matrix
            x = _rows_per_matrix(x, self.batches[name]) if x.ndim >= 3 else None
            if x is None:
                return
            x = np.asarray(x, np.float32)
            if not np.isfinite(x.sum()):  # (a finite sum: every value finite)
                bad = ~np.isfinite(x).all(axis=(0, 2))
                self.skipped[name] += int(bad.sum())
                x = x[:, ~bad]
        else:
            x = x.reshape(-1, n)
            if x.dtype != np.float32:
                x = x.astype(np.float32)
            if not np.isfinite(x.sum()):
                bad = ~np.isfinite(x).all(axis=1)
                self.skipped[name] += int(bad.sum())
                x = x[~bad]
            x = x[None]
        if x.shape[1]:
            self._push(name, x)

    def _push(self, name: str, x: np.ndarray) -> None:
        """Rows x [M, rows, n] in global row order: whole chunks of CHUNK_ROWS rows are folded
        straight from x (the interpreter's array, read before it may reuse it), the others
        copied into the input's chunk buffer, folded when it is full."""
        count = x.shape[1]
        have = self._buffered.get(name, 0)
        buf = self._buf.get(name)
        i = 0
        if have:  # fill the buffered chunk first
            i = min(CHUNK_ROWS - have, count)
            buf[:, have : have + i] = x[:, :i]  # type: ignore[index]
            have += i
            if have == CHUNK_ROWS:
                self._add(name, buf)  # type: ignore[arg-type]
                have = 0
        rows_ok = x.strides[-1] == 4 and x.strides[-2] == 4 * x.shape[-1]  # each matrix's rows laid out as in a buffer
        while count - i >= CHUNK_ROWS:
            chunk = x[:, i : i + CHUNK_ROWS]
            if not rows_ok:
                if buf is None:
                    buf = self._buf[name] = np.empty((x.shape[0], CHUNK_ROWS, x.shape[2]), np.float32)
                buf[...] = chunk
                chunk = buf
            self._add(name, chunk)
            i += CHUNK_ROWS
        if i < count:
            if buf is None:  # (untouched pages of a large buffer take no memory)
                buf = self._buf[name] = np.empty((x.shape[0], CHUNK_ROWS, x.shape[2]), np.float32)
            buf[:, : count - i] = x[:, i:]
            have = count - i
        self._buffered[name] = have

    def _add(self, name: str, xs: np.ndarray) -> None:
        """Fold rows xs [M, rows, n] (M = 1 unless the input's weight is batched)."""
        self.rows[name] += xs.shape[1]
        batched = name in self.batches
        for m, x in enumerate(xs):
            if name in self.diag:
                d = self.diag[name]
                (d[m] if batched else d)[...] += np.einsum("ij,ij->j", x, x, dtype=np.float64)
            else:
                self._add_matrix(self.xtx[name][m] if batched else self.xtx[name], x)

    @staticmethod
    def _add_matrix(acc: np.ndarray, x: np.ndarray) -> None:
        n = acc.shape[0]
        for j in range(0, n, COLUMN_BLOCK):  # the blocks on and above the diagonal (symmetric)
            j2 = min(j + COLUMN_BLOCK, n)
            xj = x[:, j:j2]
            if j:
                acc[:j, j:j2] += x[:, :j].T @ xj  # BLAS reads the transpose in place
            acc[j:j2, j:j2] += xj.T @ xj  # numpy's symmetric product (SYRK): half the work, the same bits as the general one

    def stats(self) -> InputHessians:
        for name, buf in self._buf.items():  # the last rows: a partial chunk
            if (have := self._buffered.get(name, 0)):
                self._add(name, buf[:, :have])
        self._buf.clear()
        self._buffered.clear()
        for accs in self.xtx.values():  # the blocks below the diagonal from those above
            for acc in accs.reshape(-1, *accs.shape[-2:]):
                n = acc.shape[0]
                for j in range(COLUMN_BLOCK, n, COLUMN_BLOCK):
                    j2 = min(j + COLUMN_BLOCK, n)
                    acc[j:j2, :j] = acc[:j, j:j2].T
        return self

    def warnings(self) -> list[str]:
        return [f"{k}: {n} calibration row(s) with NaN or Inf left out of its input statistics" for k, n in self.skipped.items() if n]

    # consumer ----------------------------------------------------------------------
    def key(self, v: SSAValue) -> str | None:
        """The statistics key of layer input v (None: not recorded)."""
        from tflquant.calibration.stats import function_of, qualified_name

        name = value_name(v)
        if name is None:
            return None
        if name in self.rows:
            return name
        fn = function_of(v)
        q = qualified_name(fn, name) if fn is not None else None
        return q if q in self.rows else None

    def take(self, key: str) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        """(X^T X or None, sum of x^2 per input channel or None, rows) of input `key`, for one
        layer reading it; the matrix is freed once every layer reading the input took it."""
        rows = self.rows.get(key, 0)
        xtx, diag = self.xtx.get(key), self.diag.get(key)
        left = self.readers.get(key, 1) - 1
        self.readers[key] = left
        if left <= 0 and not self.retain:
            self.xtx.pop(key, None)
            self.diag.pop(key, None)
            self.factors.pop(key, None)
        return xtx, diag, rows

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.xtx.values()) + sum(a.nbytes for a in self.diag.values())


def layer_inputs(module: ModuleOp) -> tuple[dict[str, int], dict[str, int]]:
    """({statistics key: input width}, {key: number of layers reading it}) of every matmul
    layer (see `matmul_layer`), in program order."""
    widths, readers, _batches, _rows = _layers(module)
    return widths, readers


def _layers(module: ModuleOp) -> tuple[dict[str, int], dict[str, int], dict[str, tuple[int, ...]], int]:
    """(widths, readers, batches: see InputHessians; the fewest rows per sample of an input,
    dynamic dimensions counted as 1)."""
    from tflquant.calibration.driver import shared_names
    from tflquant.calibration.stats import function_of, qualified_name

    shared = shared_names(module)
    widths: dict[str, int] = {}
    readers: dict[str, int] = {}
    kinds: dict[str, set[tuple[int, ...]]] = {}
    layers: list[tuple[str, tuple[int, ...]]] = []
    fewest = 0
    for op in module.walk():
        if (xw := matmul_layer(op)) is None:
            continue
        x, n, _adj = xw
        name = value_name(x)
        if name is None:
            continue
        if name in shared and (fn := function_of(x)) is not None:
            name = qualified_name(fn, name)
        b = weight_batch(op)
        rows = 1
        for d in x.type.get_shape()[:-1]:  # type: ignore[attr-defined]
            rows *= max(int(d), 1)
        fewest = rows if not fewest else min(fewest, rows)
        widths[name] = n
        kinds.setdefault(name, set()).add(b)
        layers.append((name, b))
    batches = {k: next(iter(s)) for k, s in kinds.items() if len(s) == 1 and next(iter(s))}
    for name, b in layers:
        if not b or batches.get(name) == b:  # (a batched layer whose input others read differently takes nothing)
            readers[name] = readers.get(name, 0) + 1
    return widths, readers, batches, max(fewest, 1)


def collect(module: ModuleOp, data: Any, *, max_bytes: int | None = None, **calibrate_kw: Any) -> tuple[InputHessians, Any]:
    """Run the calibration data through the float model and record every matmul layer's
    input statistics. Returns (the store, the CalibrationResult: samples, batches, warnings).
    `max_bytes`: cap on all matrices (None: half the model's constant bytes, at least
    BUDGET_MIN; see the module docstring)."""
    from tflquant.calibration.driver import calibrate

    widths, readers, batches, rows = _layers(module)
    if max_bytes is None:
        max_bytes = max(BUDGET_MIN, _constant_bytes(module) // 2)
    store = InputHessians(widths, readers, max_bytes, batches)
    # parallel sample ranges of about a chunk of rows: each folds its rows without a copy
    # (when every sample has that many rows), and the ranges take turns on few values
    store.range_samples = max(1, CHUNK_ROWS // rows)
    if not widths:
        return store, None
    result = calibrate(module, data, observer=store, channel_means=False, **calibrate_kw)  # type: ignore[arg-type]
    return store, result


def _constant_bytes(module: ModuleOp) -> int:
    total = 0
    for op in module.walk():
        if isinstance(op, tfl.ConstOp) and isinstance(t := op.result.type, TensorType) and all(d >= 0 for d in t.get_shape()):
            total += int(np.prod(t.get_shape())) * 4
    return total


STACK_MAX_ELEMENTS = 1 << 21  # round_layer_weights stacks weights of at most this many elements in all (2^21: 8 MB of float32)


def layer_key(store: InputHessians, v: SSAValue) -> tuple[str | None, bool | None, bool]:
    """(statistics key, adj_y, statistics fit) of weight v: those of the input of the first
    FULLY_CONNECTED / BATCH_MATMUL not kept float reading v as its weight (`matmul_layer`)
    whose input `store` recorded; (None, None, True) where there is none. `fit` is False
    where that input's statistics have another layout (a batched weight's, `weight_batch`):
    the layer then takes none."""
    from tflquant.ir import kept_float

    for u in v.uses:
        if u.index == 1 and not kept_float(u.operation) and (xw := matmul_layer(u.operation)) is not None and (k := store.key(xw[0])) is not None:
            return k, xw[2], store.batches.get(k, ()) == weight_batch(u.operation)
    return None, None, True


def round_layer_weights(
    store: InputHessians,
    weights: list[tuple[SSAValue, np.ndarray]],
    axis: int | None,
    bits: int,
    granularity: str,
    block_size: int,
    method: str,
    fp16_scales: bool | None = None,
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """GPTQ (codes, scales) of several FULLY_CONNECTED filters [out_i, in] (v, float values)
    read by layers of one input (the query, key and value projections), rounded as one
    weight with their rows stacked: one column loop and one scale search per block instead
    of one per weight. The same codes and scales as round_layer_weight of each (GPTQ's
    column operations are elementwise along the rows, its matrix products' columns and the
    scale searches' groups are computed independently of the others: measured bit for bit,
    tests/test_weight_rounding_wired.py). Channel (axis 0) or block granularity only. Takes
    the statistics for the first weight only (`store.take`): the caller takes them for each
    other weight when it uses its result, as round_layer_weight would. None (nothing taken)
    where it does not apply: not GPTQ, weights of other widths or keys, more than
    STACK_MAX_ELEMENTS in all (big weights gain nothing: their numpy calls are long)."""
    from tflquant.calibration.weight_rounding import resolve_method, round_tensor

    if len(weights) < 2 or granularity not in ("channel", "block") or axis not in (0, None):
        return None
    ws = [np.asarray(w) for _v, w in weights]
    if any(w.ndim != 2 or w.shape[1] != ws[0].shape[1] for w in ws) or sum(w.size for w in ws) > STACK_MAX_ELEMENTS:
        return None
    keys = {layer_key(store, v) for v, _w in weights}
    if len(keys) != 1:
        return None
    key, adj, fit = keys.pop()
    if key is None or adj is not None or not fit or store.xtx.get(key) is None or store.batches.get(key):
        return None
    if resolve_method(method, bits, True) != "gptq":
        return None
    cache = store.factors.setdefault(key, {})
    xtx, _diag, _rows = store.take(key)
    codes, scales = round_tensor(np.concatenate(ws).astype(np.float32, copy=False), axis, bits, granularity, block_size, "gptq", hessian=xtx,
                                 fp16_scales=fp16_scales, factor_cache=cache)
    out, i = [], 0
    for w in ws:
        j = i + w.shape[0]
        out.append((codes[i:j], scales[i:j]))
        i = j
    return out


def round_layer_weight(
    store: InputHessians | None,
    v: SSAValue,
    w: np.ndarray,
    axis: int | None,
    bits: int,
    granularity: str,
    block_size: int,
    method: str,
    fp16_scales: bool | None = None,
    chosen_out: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Data-aware (codes, scales) of weight `v` (float values `w`) for quantize-weights, in
    the layouts of weight_rounding.round_tensor; None where round to nearest is the method
    (`nearest`, or `auto` where weight_rounding.resolve_method says so). The statistics are
    those of the input of the first FULLY_CONNECTED / BATCH_MATMUL reading v as its weight
    (see `matmul_layer`, `layer_key`; taken from `store`, which frees them after their last
    layer). `chosen_out`: the method used ("gptq" or "mse") is appended to it."""
    from tflquant.calibration.weight_rounding import resolve_method, round_batch_matmul, round_tensor

    xtx = diag = None
    adj: bool | None = None
    cache: dict = {}
    if store is not None and axis in (0, None):
        k, adj, fit = layer_key(store, v)
        if k is not None and fit:
            cache = store.factors.setdefault(k, {})
            xtx, diag, _rows = store.take(k)
    chosen = resolve_method(method, bits, xtx is not None)
    if chosen is None:
        return None
    if chosen_out is not None:  # what rounded it (the report's `rounding`)
        chosen_out.append(chosen)
    msq = diag if xtx is None else None
    if adj is None:
        return round_tensor(w, axis, bits, granularity, block_size, chosen, hessian=xtx, mean_square=msq, fp16_scales=fp16_scales, factor_cache=cache)
    # BATCH_MATMUL's y: per tensor (one scale for all its matrices), or blocks along y's
    # last dimension; several matrices: each with the statistics of the rows it multiplies
    y = np.asarray(w, np.float32)
    y = y.reshape(-1, *w.shape[-2:]) if xtx is not None and xtx.ndim == 3 or msq is not None and msq.ndim == 2 else y
    r = round_batch_matmul(y, adj_y=adj, bits=bits, granularity=granularity, block_size=block_size,
                           method=chosen, hessian=xtx, mean_square=msq, fp16_scales=fp16_scales, factor_cache=cache)
    scales = r.scales.reshape(*w.shape[:-1], -1) if granularity == "block" else r.scales.reshape(-1)[:1]
    return r.codes.reshape(w.shape), scales
