"""Data-aware weight rounding for int8 / int4 / int2 weights: MSE-optimal clipping and
GPTQ-style second-order rounding (issue 12, "Accuracy: data-aware weight rounding").

Pure numpy, no IR: quantize-weights (through calibration.hessian.round_layer_weight) hands
it a float weight and gets integer codes and scales back, in the layout it writes.

The grid is symmetric: code q in [qmin, qmax] with qmax = 2^(bits-1) - 1, value = scale * q.
`narrow=True` (default) uses qmin = -qmax ([-127, 127], [-7, 7], [-1, 1]), as the TF
converter writes int8 weights and as ai-edge-quantizer (AEQ) writes every symmetric weight
(its uniform_quantize: "symmetric means narrow range", scale = max|w| / qmax). LiteRT's int4
storage is two's complement (a nibble unpacks to [-8, 7]) and its kernels do not check the
range, so `narrow=False` (qmin = -qmax - 1) is also valid for LiteRT; the scale stays
max|w| / qmax either way, -8 only catches negative values a clipped scale pushes past -7.

Everything below works on a matrix W [out, in] (rows = output channels, columns = the
reduction dimension that meets the layer's input x [.., in]); layer output = x @ W.T.

Granularity (shape of the scales):
- "tensor":  one scale, shape (1,)
- "channel": one per output row, shape (out,)
- "block":   blocks of `block_size` along the input dimension, shape (out, in / block_size)
             (LiteRT's BlockwiseQuantization of a FULLY_CONNECTED filter [out, in]: blocks
             along its last dimension). `block_axis="out"` puts the blocks along the output
             dimension instead, shape (out / block_size, in): what LiteRT's last-dimension
             blocks are for a BATCH_MATMUL weight y [in, out] (see round_batch_matmul).
Block scales are usually stored as fp16: `fp16_scales=True` (the default for blocks)
rounds every candidate scale to fp16 before rounding the weights with it, and clamps it to
the smallest fp16 normal (6.1e-5) so that none underflows (XNNPACK refuses a zero scale).

Methods:
- "rtn":  scale = max|w| / qmax per group, round to nearest (quantize-weights' own
          `weight-rounding=nearest` gives the same codes);
- "mse":  per group, the clipping ratio r in `ratios` (default 0.50, 0.52, ..., 1.00,
          searched coarse to fine; 1.0 is always tried, so the error never exceeds
          absmax's) whose scale r*max|w|/qmax
          minimises sum_j p_j (w_j - s q_j)^2, with p_j = E[x_j^2] from calibration when given
          (the expected output error of a layer whose inputs are uncorrelated), else p_j = 1
          (the weight MSE, data-free);
- "gptq": Frantar et al. 2022 (GPTQ). With H = 2 X^T X / n + damp * mean(diag) * I, the
          columns are quantized one by one (in order, or by descending diag(H) with
          `act_order=True`); each column's rounding error e_i = (w_i - q_i) / U_ii is pushed
          onto the columns not yet quantized through row i of U, the upper Cholesky factor of
          H^-1 (U^T U = H^-1), which minimises the growth of ||X W^T - X Q^T||^2. Updates are
          applied lazily in batches of 128 columns (a rank-128 matrix product per batch).
          Scales are fixed before a column is rounded: channel / tensor / out-blocks up
          front (MSE-clipped, weighted by diag(H)); in-blocks, without act-order, when the
          block's first column is reached, from the weights as updated so far (GPTQ with
          groups); with act-order, in-blocks are chosen up front (static groups: the stored
          blocks stay contiguous in the original column order).
- "auto": "gptq" when input statistics are given, else "mse".

Numerics: InputStatistics accumulates X^T X in float64 (calibration.hessian, the product's
collector, in float32); the inverse Hessian's factor in float32 (a blocked Cholesky and a
triangular inverse by matrix products: 1e-5 relative to float64 on 2048 x 2048, 2-3x
faster), the column updates in float32 (as GPTQ does); results are deterministic (no
randomness, stable sorts). Where the scale stays the same across a sub-batch of columns
(tensor, channel, blocks along the input) the columns are rounded in code units (w / s).
8-bit GPTQ takes absmax scales (the clipping search gains nothing at 8 bits, measured).
GPTQ runs under blas_threads(1) (MSE clipping and round to nearest make no matrix products). Measured (benchmarks/weight_rounding.py --timing, CPU
seconds on 2 shared cores at load 13): a 2048 x 2048 int4 layer with 512 calibration rows
takes 0.47-0.57 s with GPTQ (channel, block 32 / 128; act-order about the same),
0.08-0.12 s with MSE clipping, 0.02 s round to nearest.

Use
---
    from tflquant.calibration.weight_rounding import InputStatistics, round_fully_connected

    stats = InputStatistics(in_features)    # X^T X of the layer's input, batch by batch
    stats.add(x_batch)                      # any leading shape, last dim = in
    r = round_fully_connected(filter_f32,   # [out, in], as LiteRT stores it
                              bits=4, granularity="block", block_size=32,
                              stats=stats,  # or hessian= (any positive multiple of X^T X);
                              method="auto")  # None: data-free ("mse" clipping)
    r.codes    # int8 [out, in] in [qmin, qmax]; r.scales float32 (1,) / (out,) / (out, in/B)
    r.dequantized()   # float32 [out, in]: the simulated weight

In the product (issue 12): with calibration data in dynamic / weight-only modes the driver
records each FULLY_CONNECTED input's X^T X (tflquant.calibration.hessian, one float32
matrix per distinct input tensor) and hands the store to quantize-weights, whose
`weight-rounding` option (nearest | mse | gptq | auto) picks the method per weight
(`resolve_method`) and takes codes and scales from `round_tensor` (any rank, the pass's
layouts: channel scales along its axis, blocks along the last dimension, fp16-exact block
scales where LiteRT reads them as fp16, float32 where a DEQUANTIZE reads the blocks).
Weights without statistics (GATHER / EMBEDDING_LOOKUP tables, convolution filters, no
data) get MSE-clipped scales. A BATCH_MATMUL y holding one matrix goes through
round_batch_matmul (per tensor, or blocks along y's last dimension). Without any
statistics the pass searches the scales of many small weights at once
(search_scales_many over their tensor_groups, then round_tensor(group_scales=)): the same
scales as one search per weight.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
try:  # the clip ufunc itself (np.clip's Python wrapper costs microseconds a call)
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy 1.x
    from numpy.core.umath import clip as _clip  # type: ignore[no-redef]
try:  # np.einsum without its Python wrapper (the same computation, a microsecond less a call)
    from numpy._core.multiarray import c_einsum as _c_einsum
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import c_einsum as _c_einsum  # type: ignore[no-redef]

from tflquant import parallel as _parallel
from tflquant.calibration.blas import blas_threads
from tflquant.errors import TflquantError

FP16_TINY = float(np.finfo(np.float16).tiny)  # smallest fp16 normal, 2^-14
DEFAULT_RATIOS = tuple(round(0.5 + 0.02 * i, 2) for i in range(26))  # 0.50 .. 1.00
PRUNE_MARGIN = 1.001  # search_scales skips a candidate whose error's lower bound exceeds the best error by this factor (far above float32 rounding)
SEARCH_CHUNK = 1 << 17  # weight elements per slice of groups search_scales works on (its two buffers: 2 candidates x 512 KB of float32; measured: 2^16 the same, 2^15 and 2^18 slower)
SKIP_RULED_OUT = True  # search_scales skips evaluating a coarse ratio where the largest |w| rules it out (False: evaluates it anyway, same result; for tests)
COMPACT_MIN = 1 << 14  # search_scales: a slice of at least this many elements evaluates a later coarse ratio only on the groups it can win (gathered) when they are at most half
THREADED_SEARCH_CHUNK = 1 << 18  # SEARCH_CHUNK of a search on the kernel threads (fewer numpy calls for two threads to share the GIL between; measured on 2 cores at load 1: 8192 x 512 channel 29.5 -> 22.4 ms, 262144 x 32 56.4 -> 45.0 ms)
PARALLEL_SEARCH_MIN = 1 << 21  # search_scales: groups of at least this many elements (and two slices) are searched a slice at a time on the kernel threads (tflquant.parallel)
ROUND_CHUNK = 1 << 16  # quantize_with_scales: weight elements per slice of rows rounded in one work buffer
TRANSPOSE_BELOW = 64  # search_scales: groups shorter than this are searched transposed
TRANSPOSE_ROWS = 256  # search_scales: groups transposed this many at a time (measured 0.75x the time of one copy for 4096 x 32)
GRANULARITIES = ("tensor", "channel", "block")
METHODS = ("rtn", "mse", "gptq", "auto")

def qrange(bits: int, narrow: bool = True) -> tuple[int, int]:
    """(qmin, qmax) of the symmetric grid of `bits` bits."""
    if bits not in (2, 4, 8):
        raise TflquantError(f"weight rounding: bits must be 2, 4 or 8, got {bits}")
    qmax = (1 << (bits - 1)) - 1
    return (-qmax if narrow else -qmax - 1), qmax


# ---------------------------------------------------------------------------------------
# Input statistics
# ---------------------------------------------------------------------------------------


class InputStatistics:
    """Running X^T X (float64) and sample count of a layer's input, fed batch by batch.

    `add(x)` takes any array whose last dimension is the layer's input size (leading axes
    are flattened into rows: samples, sequence positions, ...)."""

    def __init__(self, in_features: int):
        self.in_features = int(in_features)
        self.xtx = np.zeros((self.in_features, self.in_features), np.float64)
        self.rows = 0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.shape[-1:] != (self.in_features,):
            raise TflquantError(f"weight rounding: input statistics of width {self.in_features} got an array of shape {x.shape}")
        x2 = x.reshape(-1, self.in_features).astype(np.float64)
        if not np.all(np.isfinite(x2)):
            x2 = np.where(np.isfinite(x2), x2, 0.0)
        self.xtx += x2.T @ x2
        self.rows += x2.shape[0]

    def mean_square(self) -> np.ndarray:
        """E[x_j^2] per input channel."""
        return np.diag(self.xtx) / max(self.rows, 1)

    def hessian(self) -> np.ndarray:
        """H = 2 X^T X / n (GPTQ's Hessian of the layer's squared output error)."""
        return 2.0 * self.xtx / max(self.rows, 1)

    @classmethod
    def of(cls, x: np.ndarray) -> "InputStatistics":
        s = cls(np.asarray(x).shape[-1])
        s.add(x)
        return s


# ---------------------------------------------------------------------------------------
# Groups: the elements that share one scale
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    granularity: str
    block_size: int
    block_axis: str  # "in" or "out"
    shape: tuple[int, int]  # (out, in)

    def groups(self, a: np.ndarray) -> np.ndarray:
        """[G, elements per group] (a copy or a view) in scale order."""
        out, inn = self.shape
        if self.granularity == "tensor":
            return a.reshape(1, -1)
        if self.granularity == "channel":
            return a.reshape(out, inn)
        b = self.block_size
        if self.block_axis == "in":
            return a.reshape(out * (inn // b), b)
        return np.ascontiguousarray(a.T).reshape(inn * (out // b), b)

    def scales_of_groups(self, s: np.ndarray) -> np.ndarray:
        """Scales in `groups` order (one per group) -> scale_shape (out-blocks are grouped
        input by input: [in, out / B] -> its transpose)."""
        out, inn = self.shape
        if self.granularity == "block" and self.block_axis == "out":
            return np.ascontiguousarray(s.reshape(inn, out // self.block_size).T)
        return s.reshape(self.scale_shape())

    def scale_shape(self) -> tuple[int, ...]:
        out, inn = self.shape
        if self.granularity == "tensor":
            return (1,)
        if self.granularity == "channel":
            return (out,)
        b = self.block_size
        return (out, inn // b) if self.block_axis == "in" else (out // b, inn)

    def expand(self, scales: np.ndarray) -> np.ndarray:
        """Scales broadcast to [out, in]."""
        out, inn = self.shape
        if self.granularity == "tensor":
            return np.full((out, inn), scales.reshape(-1)[0], scales.dtype)
        if self.granularity == "channel":
            return np.broadcast_to(scales.reshape(out, 1), (out, inn))
        axis = 1 if self.block_axis == "in" else 0
        return np.repeat(scales, self.block_size, axis=axis)


def _layout(shape: tuple[int, int], granularity: str, block_size: int, block_axis: str) -> _Layout:
    if granularity not in GRANULARITIES:
        raise TflquantError(f"weight rounding: granularity must be tensor, channel or block, got {granularity!r}")
    if block_axis not in ("in", "out"):
        raise TflquantError(f"weight rounding: block_axis must be 'in' or 'out', got {block_axis!r}")
    if granularity == "block":
        dim = shape[1] if block_axis == "in" else shape[0]
        if block_size <= 0 or dim % block_size:
            raise TflquantError(
                f"weight rounding: block size {block_size} does not divide the weight's {block_axis}put dimension ({dim}) "
                f"of a [{shape[0]}, {shape[1]}] weight: choose a block size that divides it, or channel granularity"
            )
    return _Layout(granularity, int(block_size), block_axis, (int(shape[0]), int(shape[1])))


# ---------------------------------------------------------------------------------------
# Scales: absmax and MSE-optimal clipping
# ---------------------------------------------------------------------------------------


def _finish_scales(s: np.ndarray, fp16: bool, min_scale: float) -> np.ndarray:
    s = np.asarray(s, np.float32)
    if fp16:
        s = _fp16_exact(np.maximum(s, np.float32(FP16_TINY)))
    return np.maximum(s, np.float32(min_scale))


def _fp16_exact(s: np.ndarray) -> np.ndarray:
    """float32 values >= the smallest fp16 normal, rounded to the nearest fp16 (ties to
    even), as float32: the same values as s.astype(float16).astype(float32), by integer
    operations on the float32 bits (numpy's float16 conversion is 2x slower); values past
    fp16's range take numpy's conversion (infinity)."""
    s = np.ascontiguousarray(s, np.float32)
    if s.size and not float(np.max(s)) < 65504.0:
        return s.astype(np.float16).astype(np.float32)
    b = s.view(np.uint32)
    b = (b + (np.uint32(0x0FFF) + ((b >> np.uint32(13)) & np.uint32(1)))) & np.uint32(0xFFFFE000)
    return b.view(np.float32)


def search_plan(n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(coarse, steps) of search_scales over a grid of n ratios (index 0 = absmax): the
    coarse indices (every 2h-th, h = steps[0]) are tried first, the first two on every
    group and the rest where they can still win; then for each step h' the best so far
    +- h' (steps shrink by thirds down to 1), except that groups shorter than
    TRANSPOSE_BELOW take the first step on one side only, toward the better of the best
    coarse point's two coarse neighbours. The default grid of 26 (0.02 apart):
    (0, 6, 12, 18, 24), then (3, 1), i.e. 1.0, 0.88, then 0.76 / 0.64 / 0.52 where the
    group's largest |w| does not rule them out, then the best +- 0.06, then the best
    +- 0.02. A grid of at most 8 ratios is tried whole."""
    if n <= 8:
        return tuple(range(n)), ()
    h = max(1, round((n - 1) / 8))
    steps = [h]
    while steps[-1] > 1:
        steps.append(max(1, steps[-1] // 3))
    return tuple(range(0, n, 2 * h)), tuple(steps)


def search_scales(
    groups: np.ndarray,
    qmin: int,
    qmax: int,
    weights: np.ndarray | None = None,
    ratios: tuple[float, ...] | None = DEFAULT_RATIOS,
    fp16: bool = False,
    min_scale: float = 0.0,
    work: dict | None = None,
) -> np.ndarray:
    """One scale per row of `groups` [G, n]: absmax / qmax times the ratio in `ratios` that
    minimises sum_j weights_j (w_j - s q_j)^2 (weights broadcast against `groups`; None =
    plain MSE). `ratios=None` is absmax only. An all-zero row gets 1.0. 1.0 is always tried,
    so the result is never worse than absmax's.

    A long grid is searched coarse to fine (search_plan): for the default grid 1.0 and
    0.88 on every group; 0.76, 0.64, 0.52 only on the groups where the largest |w| alone,
    clipped, does not already err more than the best so far (without weights; an exact
    test: there the ratio cannot win; the groups left are gathered when they are few; with
    weights all five coarse points on every group, evaluated together, as a candidate's
    error does not depend on which others share its evaluation);
    then the best +- 0.06 (blocks shorter than TRANSPOSE_BELOW: on the side of its better
    coarse neighbour only), then the best +- 0.02. A candidate replaces the best only when
    its error is strictly lower, so the first minimum in candidate order wins. Each
    evaluation is 5 passes over the groups' elements into two reused buffers (multiply by
    1 / s, rint, clip, subtract, one einsum for the sum of squares), groups shorter than
    TRANSPOSE_BELOW transposed so that every pass runs along contiguous rows of many
    groups.
    Measured on decoder_tiny's int4 weights without data (channel, block 32, block 128)
    against trying all 26 ratios: weight SQNR 0.0015 / 0.0025 / 0.0018 dB lower on average
    (at worst 0.003 / 0.004 / 0.003), with 8.1 / 6.0 / 8.0 evaluations per weight (the
    previous search, 1.0 / 0.8 / 0.6 then +- 0.10, +- 0.04, +- 0.02 everywhere: 0.0010 /
    0.0015 / 0.0012 dB with 8-9); tiny_transformer's: 0.007 dB (previous 0.009). CPU
    time of the 26 searches of one quantize() of decoder_tiny (dynamic int4, 1.8M weights,
    2 cores at load 6.7, best of 12 taking turns): block 32 25.6 -> 19.3 ms, block 128
    24.8 -> 18.7, channel 21.7 -> 17.8; about half of it is the evaluations, half the
    numpy calls around them (~100 per slice: a 128 x 128 weight costs ~0.2 ms).
    quantize-weights searches them as 2 batches (search_scales_many; best of 40 taking
    turns, load 1.7): block 32 17.1 -> 13.5 ms, block 128 17.0 -> 14.1, channel 16.0 -> 13.7;
    what is left is mostly the ~11M-15M element evaluations (~0.7-0.9 ns each).
    int4 logits SQNR in LiteRT is a poor judge of such differences: it moves by 0.1-0.2 dB
    on decoder_tiny and 1-2 dB on tiny_transformer between searches of the same weight MSE
    (all 26 ratios, a 14-evaluation search, a 9-evaluation one: decoder_tiny dynamic
    channel 9.38 / 9.30 / 9.20 dB, block 32 12.38 / 12.43 / 12.41; tiny_transformer dynamic
    channel 28.32 / 27.31 / 26.46). (A lazier search, stepping down from 1.0 while the
    error falls, loses weight MSE: it stops at the first local minimum.)
    `work`: a dict of work buffers the search takes (if big enough) and leaves its own in,
    for a caller that searches again and again (the same scales; fresh buffers cost their
    page faults every time: GPTQ passes one to its searches of a weight)."""
    g = np.asarray(groups, np.float32)
    p = None if weights is None else np.asarray(weights, np.float32)
    if p is not None and p.ndim < 2:
        p = p.reshape(1, -1)
    return _search([g], p, qmin, qmax, ratios, fp16, min_scale, work)


def search_scales_many(
    parts: list[np.ndarray],
    qmin: int,
    qmax: int,
    ratios: tuple[float, ...] | None = DEFAULT_RATIOS,
    fp16: bool = False,
    min_scale: float = 0.0,
    work: dict | None = None,
) -> list[np.ndarray]:
    """search_scales (without weights) of each array of groups [G_i, n] in `parts` (one
    group length n), searched as one: the slices of about SEARCH_CHUNK elements run across
    the arrays (a slice spanning several is copied together), so many small weights cost
    the numpy calls of a few slices rather than one slice each (each slice makes ~100).
    The same scales as search_scales of each array alone: a group's scale depends on that
    group's values only (a slice's clamps are ones no other group of it needs, the
    gathered evaluations are exact, the sums of squares run along each group). `work`: as
    search_scales'."""
    gs = [np.asarray(g, np.float32) for g in parts]
    if not gs:
        return []
    if len({g.shape[1] for g in gs}) > 1:
        raise TflquantError(f"weight rounding: search_scales_many takes groups of one length, got {sorted({g.shape[1] for g in gs})}")
    s = _search(gs, None, qmin, qmax, ratios, fp16, min_scale, work)
    return np.split(s, np.cumsum([g.shape[0] for g in gs[:-1]]))


def _slices(parts: list[np.ndarray], rows: int):
    """(first group, [arrays of rows]) of each slice of `rows` groups of the concatenation of
    `parts` (views: one array, or the pieces of several)."""
    c0 = 0
    pieces: list[np.ndarray] = []
    left = rows
    for g in parts:
        i = 0
        while i < g.shape[0]:
            take = min(left, g.shape[0] - i)
            pieces.append(g[i : i + take])
            i += take
            left -= take
            if left == 0:
                yield c0, pieces
                c0 += rows
                pieces, left = [], rows
    if pieces:
        yield c0, pieces


def _search(parts: list[np.ndarray], p: np.ndarray | None, qmin: int, qmax: int, ratios, fp16: bool, min_scale: float, work: dict | None = None) -> np.ndarray:
    """search_scales of the groups of the float32 arrays `parts` [G_i, n], in order (p: the
    weights of a single array, [1 or G, n], or None). `work`: a dict whose work buffers the
    search reuses (and leaves its own in), for a caller that searches again and again (GPTQ:
    fresh buffers cost their page faults on every search, measured 0.5x the time of a
    512 x 32 one)."""
    rs = sorted({float(r) for r in ratios if 0 < float(r) < 1.0}, reverse=True) if ratios is not None else []
    G, n = sum(g.shape[0] for g in parts), parts[0].shape[1]
    if not rs or G * n == 0:
        amax = [np.max(np.abs(g), axis=1) if n else np.zeros(g.shape[0], np.float32) for g in parts]
        return _absmax_scales(amax[0] if len(amax) == 1 else np.concatenate(amax), qmax, fp16, min_scale)[2]
    grid = np.array([1.0, *rs], np.float32)
    coarse, steps = search_plan(len(grid))
    # without weights the later coarse points are evaluated where the largest |w| does not rule
    # them out; with weights nothing is ruled out: every coarse point at once (one evaluation;
    # one at a time where even one group of them would take more than two chunks' buffers)
    first = coarse if not steps or (p is not None and len(coarse) * n <= 2 * SEARCH_CHUNK) else coarse[:2]
    kc = max(2, len(first))  # the most candidates evaluated at once
    # big groups: slices on the kernel threads below, of THREADED_SEARCH_CHUNK elements (a
    # group's scale does not depend on the slice it is searched in)
    threaded = G * n >= PARALLEL_SEARCH_MIN and _parallel.get_threads() > 1 and not _parallel.nested()
    chunk = THREADED_SEARCH_CHUNK if threaded else SEARCH_CHUNK
    st = _Search(grid, n, qmin, qmax, fp16, min_scale, min(max(1, 2 * chunk // (kc * n)), G), kc, work)
    last, tr = len(grid) - 1, st.transposed
    first_idx = np.array(first, np.intp)[:, None]
    sp = None
    if p is not None:  # rows that are one row broadcast (stride 0): that row; C order (the evaluations read it again and again)
        sp = np.ascontiguousarray(np.sqrt(np.maximum(p[:1] if p.shape[0] > 1 and p.strides[0] == 0 else p, np.float32(0))))
    sp_row = None if sp is None or sp.shape[0] != 1 else np.ascontiguousarray(sp.T) if tr else sp  # one row for every group
    best_s = np.empty(G, np.float32)
    qm = np.float32(max(qmax, -qmin))  # the largest code magnitude
    margin = np.float32(PRUNE_MARGIN)

    def one(st: _Search, c0: int, pieces: list[np.ndarray]) -> None:
        """Search the groups of one slice (from group c0) with st's buffers into best_s."""
        m = sum(x.shape[0] for x in pieces)
        c1 = c0 + m
        gc = pieces[0]
        if not tr and (len(pieces) > 1 or not gc.flags.c_contiguous):  # together, in C order (the evaluations read it row by row)
            gc = np.concatenate(pieces, out=st.g[: m * n].reshape(m, n))
        pc = None if sp is None else sp_row if sp.shape[0] == 1 else sp[c0:c1]
        if tr:
            gt = st.g[: m * n].reshape(n, m)
            j = 0
            for x in pieces:  # each piece transposed into its columns (by TRANSPOSE_ROWS rows: the source stays in cache)
                r = x.shape[0]
                step = r if x.flags.f_contiguous else TRANSPOSE_ROWS
                for i in range(0, r, step):
                    np.copyto(gt[:, j + i : j + min(i + step, r)], x[i : i + step].T)
                j += r
            gc = gt
            if pc is not None and pc is not sp_row:
                pc = np.ascontiguousarray(pc.T)
            a = st.u[: m * n].reshape(n, m)
            amax = np.abs(gc, out=a).max(axis=0)  # the max along rows of many groups
        else:  # abs_row_max, its bit patterns in a work buffer
            amax = np.bitwise_and(gc.view(np.uint32), np.uint32(0x7FFFFFFF), out=st.q[: m * n].view(np.uint32).reshape(m, n)).max(axis=1).view(np.float32)
        if not amax.min() > 0:  # an all-zero group (or NaN): base 1 (as _absmax_scales); every error 0, so it keeps ratio 1.0
            amax = np.where(amax > 0, amax, np.float32(qmax))
        bc = amax / np.float32(qmax)
        st.chunk(bc)
        e = _errors(st, gc, pc, bc, first_idx)
        # short groups: the coarse points' errors (for the first step's side), a row of inf
        # on either side; a point the largest |w| rules out for a group (below) is inf
        # there, evaluated or not
        known = None
        if tr and steps:
            known = np.full((len(coarse) + 2, m), np.inf, np.float32)
            known[1 : len(first) + 1] = e
        best_i = np.full(m, first[0], np.intp)
        best_e = e[0].copy()
        for k in range(1, len(first)):
            _keep_better(best_i, best_e, first[k], e[k])
        for j in range(len(first), len(coarse)):
            c = coarse[j]
            keep = sel = None
            if sp is None:
                # the group's largest |w| alone, clipped to qm s, errs (amax - qm s)^2: where
                # that exceeds the best error so far by the margin, c cannot win there
                # (s: at least the group's candidate scale, st.upper)
                d = st.upper(bc, c)
                d *= qm
                np.subtract(amax, d, out=d)
                np.maximum(d, 0, out=d)
                d *= d
                keep = d <= best_e * margin
                nk = int(np.count_nonzero(keep))
                if SKIP_RULED_OUT:
                    if nk == 0:
                        continue
                    if nk <= m // 2 and m * n >= COMPACT_MIN:  # only those groups, gathered
                        sel = np.flatnonzero(keep)
            if sel is None:
                e = _errors(st, gc, pc, bc, np.array([[c]], np.intp))[0]
                if known is not None:
                    known[j + 1] = e if keep is None else np.where(keep, e, np.float32(np.inf))
                _keep_better(best_i, best_e, c, e)
                continue
            ns = sel.size * n  # those groups gathered into a work buffer
            gs = st.h[:ns].reshape((n, sel.size) if tr else (sel.size, n))
            np.take(gc, sel, axis=1 if tr else 0, out=gs, mode="clip")  # ("clip": valid indices, and no copy through a temporary as "raise" makes)
            es = _errors(st, gs, None, bc[sel], np.array([[c]], np.intp))[0]
            if known is not None:
                known[j + 1, sel] = es
            w = es < best_e[sel]
            best_i[sel[w]] = c
            best_e[sel[w]] = es[w]
        for t, h in enumerate(steps):
            if t == 0 and known is not None:  # short groups, one side: toward the better coarse neighbour of the best (2h away)
                at = best_i // (2 * h)  # the best's row of `known`; its neighbours' flat indices:
                at *= m
                at += np.arange(m)
                flat = known.reshape(-1)
                ci = np.where(flat.take(at) < flat.take(at + 2 * m), best_i - h, best_i + h)
                np.maximum(ci, 0, out=ci)
                np.minimum(ci, last, out=ci)
                ci = ci[None]
            else:  # then the best so far +- h, replaced only by a strictly lower error
                ci = np.empty((2, m), np.intp)
                np.minimum(best_i + h, last, out=ci[0])
                np.maximum(best_i - h, 0, out=ci[1])
            e = _errors(st, gc, pc, bc, ci)
            for k in range(len(ci)):
                _keep_better(best_i, best_e, ci[k], e[k])
        best_s[c0:c1] = st.scales(bc, best_i[None])[0]  # the chosen candidates' scales, as _errors computed them

    slices = list(_slices(parts, st.rows))
    if len(slices) < 2 or not threaded:
        for c0, pieces in slices:
            one(st, c0, pieces)
        return best_s
    # the slices on the kernel threads (each group's scale depends on its own values only; each
    # thread its own work buffers, the caller's thread the caller's `work`; disjoint ranges of best_s)
    mine = threading.get_ident()
    searches: dict[int, _Search] = {}

    def part(i0: int, i1: int) -> None:
        t = threading.get_ident()
        own = st if t == mine else searches.get(t)
        if own is None:
            own = searches[t] = _Search(grid, n, qmin, qmax, fp16, min_scale, st.rows, kc, None)
        for c0, pieces in slices[i0:i1]:
            one(own, c0, pieces)

    _parallel.over_slices(len(slices), part)
    return best_s


def abs_row_max(a: np.ndarray) -> np.ndarray:
    """max |a| along the rows of a 2-D array, NaN and infinities included. A C-contiguous
    float32 one: the maxima of the bit patterns with the sign bit cleared, as uint32 (they
    order as the magnitudes do, a NaN's above an infinity's, so a row with a NaN still gets a
    NaN; the same floats; numpy reduces unsigned rows faster, measured 0.63x
    np.max(np.abs(a)) on 4096 x 128)."""
    if a.dtype != np.float32 or a.ndim != 2 or not a.flags.c_contiguous:
        return np.max(np.abs(a), axis=1)
    return (a.view(np.uint32) & np.uint32(0x7FFFFFFF)).max(axis=1).view(np.float32)


def _absmax_scales(amax: np.ndarray, qmax: int, fp16: bool, min_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all-zero groups, base = amax / qmax, absmax scales) of groups with maxima |w| amax;
    an all-zero group has base 1 and scale 1.0."""
    zero = ~(amax > 0)
    amax = np.where(zero, np.float32(qmax), amax).astype(np.float32)
    base = amax / np.float32(qmax)
    return zero, base, _finish_scales(base, fp16, min_scale)


def _buffer(work: dict, name: str, size: int) -> np.ndarray:
    """A float32 work buffer of at least `size` elements: work[name] where it is big enough
    (else a new one, kept there)."""
    b = work.get(name)
    if b is None or b.size < size:
        b = work[name] = np.empty(size, np.float32)
    return b


def _keep_better(best_i: np.ndarray, best_e: np.ndarray, i: np.ndarray | int, e: np.ndarray) -> None:
    """Where e < best_e: the candidate (grid index i, error e) replaces the best, in place
    (putmask: half the time of copyto(where=) on 4096 groups)."""
    np.putmask(best_i, e < best_e, i)
    np.minimum(best_e, e, out=best_e)


class _Search:
    """One search_scales call's grid, rounding range, scale clamps and work buffers (two
    float32 buffers of k candidates x one chunk of groups, reused by every evaluation: the
    passes stay in cache and allocate nothing)."""

    def __init__(self, grid: np.ndarray, n: int, qmin: int, qmax: int, fp16: bool, min_scale: float, rows: int, k: int, work: dict | None = None):
        self.grid, self.n, self.rows = grid, n, rows
        self.transposed = n < TRANSPOSE_BELOW
        self.lo, self.hi = np.float32(qmin), np.float32(qmax)
        self.fp16, self.min_scale = fp16, np.float32(min_scale)
        work = {} if work is None else work
        self.u = _buffer(work, "u", k * rows * n)  # k: the most candidates evaluated at once
        self.q = _buffer(work, "q", k * rows * n)
        self.g = _buffer(work, "g", rows * n)  # a chunk transposed, or several pieces of one
        self.h = _buffer(work, "h", (rows // 2 + 1) * n)  # the groups a later coarse point is evaluated on, gathered (at most half)
        self.clamp16 = self.clampmin = self.big = False

    def chunk(self, base: np.ndarray) -> None:
        """Which clamps of _finish_scales the chunk with these base scales can need."""
        low = float(base.min()) * float(self.grid[-1]) if base.size else 1.0
        self.clamp16 = self.fp16 and low < FP16_TINY
        self.clampmin = low < float(self.min_scale)
        self.big = self.fp16 and base.size > 0 and not float(base.max()) < 65504.0

    def upper(self, base: np.ndarray, c: int) -> np.ndarray:
        """A scale at least `scales` of candidate c for each group: base * ratio 2^-10 above
        (above its fp16 rounding), raised by the clamps. A function of each group's base
        alone (the clamps are no-ops on the groups that do not need them), so that no
        group's search depends on the other groups of its chunk (search_scales_many)."""
        s = base * np.float32(self.grid[c] * (1 + 2.0**-10))
        if self.clamp16:
            np.maximum(s, np.float32(FP16_TINY), out=s)
        if self.clampmin:
            np.maximum(s, self.min_scale, out=s)
        return s

    def scales(self, base: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """_finish_scales(base * grid[idx]) with the clamps the chunk needs, in place."""
        s = base * self.grid[idx]
        if self.fp16:
            if self.clamp16:
                np.maximum(s, np.float32(FP16_TINY), out=s)
            if self.big or s.size <= 512:  # (numpy's conversion: the same values, fewer calls on a few scales)
                s = s.astype(np.float16).astype(np.float32)
            else:  # _fp16_exact in place
                b = s.view(np.uint32)
                t = b >> np.uint32(13)
                t &= np.uint32(1)
                t += np.uint32(0x0FFF)
                b += t
                b &= np.uint32(0xFFFFE000)
        if self.clampmin:
            np.maximum(s, self.min_scale, out=s)
        return s


def _errors(st: _Search, g: np.ndarray, sp: np.ndarray | None, base: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """sum_j p_j (w_j - s q_j)^2 [k, c] of each group at each candidate ratio: idx [k, 1] or
    [k, c] indexes st.grid; the groups are g [c, n] (st.transposed: [n, c]) with base
    scales `base` [c], and sp = sqrt(p) has g's layout or broadcasts against it (None:
    p = 1). With u = w * (1 / s) and q = clip(rint(u)) the error is s^2 sum_j p_j (u_j - q_j)^2
    (the reciprocal's product may differ from w / s in the last bit, which only matters for
    the choice between candidates)."""
    s = st.scales(base, idx)
    k, c = s.shape
    size = k * st.n * c
    inv = np.float32(1) / s
    if st.transposed:
        u = st.u[:size].reshape(k, st.n, c)
        q = st.q[:size].reshape(k, st.n, c)
        np.multiply(g, inv[:, None, :], out=u)
    else:
        u = st.u[:size].reshape(k, c, st.n)
        q = st.q[:size].reshape(k, c, st.n)
        np.multiply(g, inv[:, :, None], out=u)
    np.rint(u, out=q)
    _clip(q, st.lo, st.hi, out=q)
    np.subtract(u, q, out=u)
    if sp is not None:
        np.multiply(u, sp, out=u)
    e = _c_einsum("knc,knc->kc" if st.transposed else "kcn,kcn->kc", u, u)
    s *= s
    e *= s
    return e


def choose_scales(
    w: np.ndarray,
    bits: int = 4,
    granularity: str = "channel",
    block_size: int = 32,
    mean_square: np.ndarray | None = None,
    clip: bool = True,
    narrow: bool = True,
    fp16_scales: bool | None = None,
    block_axis: str = "in",
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
) -> np.ndarray:
    """Scales of W [out, in] (shape per granularity, see the module docstring): absmax, or
    with `clip` the MSE-optimal clipping (weighted by `mean_square` = E[x_j^2] per input
    channel when given)."""
    return _choose_scales(_matrix(w), bits, granularity, block_size, mean_square, clip, narrow, fp16_scales, block_axis, ratios)


def _choose_scales(w, bits, granularity, block_size, mean_square, clip, narrow, fp16_scales, block_axis, ratios) -> np.ndarray:
    """choose_scales of a float32 matrix _matrix has checked."""
    lay = _layout(w.shape, granularity, block_size, block_axis)
    qmin, qmax = qrange(bits, narrow)
    fp16 = granularity == "block" if fp16_scales is None else fp16_scales
    p = None
    if mean_square is not None:
        p = lay.groups(np.broadcast_to(_mean_square(mean_square, w.shape[1]).astype(np.float32), w.shape))
    s = search_scales(lay.groups(w), qmin, qmax, p, ratios if clip else None, fp16)
    return lay.scales_of_groups(s)


def quantize_with_scales(
    w: np.ndarray, scales: np.ndarray, bits: int = 4, granularity: str = "channel", block_size: int = 32, narrow: bool = True, block_axis: str = "in"
) -> np.ndarray:
    """Round to nearest on the given scales: int8 codes [out, in]."""
    return _quantize_with_scales(_matrix(w), scales, bits, granularity, block_size, narrow, block_axis)


def _quantize_with_scales(w, scales, bits, granularity, block_size, narrow, block_axis) -> np.ndarray:
    """quantize_with_scales of a float32 matrix _matrix has checked."""
    lay = _layout(w.shape, granularity, block_size, block_axis)
    qmin, qmax = qrange(bits, narrow)
    s = np.asarray(scales, np.float32)
    out, inn = w.shape
    if out < 2 or w.size < 2 * ROUND_CHUNK:
        if granularity == "block" and block_axis == "in":  # blocks along rows: broadcast, not repeated (w is [out, in])
            q = (w.reshape(out, inn // block_size, block_size) / s.reshape(out, -1, 1)).reshape(out, inn)
        else:
            q = w / lay.expand(s)
        np.rint(q, out=q)
        return np.clip(q, qmin, qmax, out=q).astype(np.int8)
    # a slice of rows at a time in a work buffer (the same divisions: the same codes), ranges of
    # slices on the kernel threads for a big weight (tflquant.parallel)
    codes = np.empty((out, inn), np.int8)
    if granularity == "block" and block_axis == "in":
        sr, shape3 = s.reshape(out, -1, 1), (inn // block_size, block_size)
    elif granularity == "channel":
        sr, shape3 = s.reshape(out, 1), (inn,)
    elif granularity == "tensor":
        sr, shape3 = None, (inn,)
    else:
        sr, shape3 = lay.expand(s), (inn,)
    one = s.reshape(-1)[0] if sr is None else None
    step = max(1, ROUND_CHUNK // inn)
    count = -(-out // step)

    def run(c0: int, c1: int) -> None:
        work = np.empty(min(step, out) * inn, np.float32)
        for i in range(c0 * step, min(c1 * step, out), step):
            j = min(i + step, out)
            t = work[: (j - i) * inn].reshape(j - i, *shape3)
            np.divide(w[i:j].reshape(j - i, *shape3), one if sr is None else sr[i:j], out=t)
            np.rint(t, out=t)
            np.clip(t, qmin, qmax, out=t)
            codes[i:j] = t.reshape(j - i, inn)

    _parallel.over_slices(count, run, w.size >= PARALLEL_SEARCH_MIN)
    return codes


def dequantize(codes: np.ndarray, scales: np.ndarray, granularity: str = "channel", block_size: int = 32, block_axis: str = "in") -> np.ndarray:
    """float32 [out, in] = codes * scales (broadcast per granularity)."""
    lay = _layout(codes.shape, granularity, block_size, block_axis)
    return codes.astype(np.float32) * lay.expand(np.asarray(scales, np.float32))


# ---------------------------------------------------------------------------------------
# GPTQ
# ---------------------------------------------------------------------------------------


def _invert_lower_in_place(l: np.ndarray, inverses: dict | None = None, at: int = 0) -> None:
    """Replace the lower triangular `l` by its inverse, by halves (matrix products do the
    work, temporaries a quarter of `l`): [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]].
    `inverses`: {offset: np.linalg.inv of the diagonal block of l at that offset} where the
    caller has them (_cholesky_lower_in_place's: the same blocks, the same inverses; `at`: l's
    offset in the matrix they index)."""
    n = l.shape[0]
    if n <= 128:
        inv = inverses.get(at) if inverses else None
        l[...] = np.tril(np.linalg.inv(l) if inv is None or inv.shape[0] != n else inv)
        return
    k = n // 2
    _invert_lower_in_place(l[:k, :k], inverses, at)
    _invert_lower_in_place(l[k:, k:], inverses, at + k)
    l[k:, :k] = -(l[k:, k:] @ (l[k:, :k] @ l[:k, :k]))


def _cholesky_lower_in_place(a: np.ndarray, block: int = 128, inverses: dict | None = None) -> None:
    """a (float32, only its lower triangle read) -> its lower Cholesky factor L, in place,
    the upper triangle zeroed. Right-looking by blocks of `block`: numpy's Cholesky of each
    diagonal block, the panel below it by one product with the block's inverse, the
    trailing lower triangle updated block column by block column (matrix products do the
    work: 2048 x 2048 in 0.06 s against numpy's whole-matrix Cholesky 0.19 s, one core).
    Raises numpy.linalg.LinAlgError where a is not positive definite. `inverses`: a dict
    that receives {offset: np.linalg.inv of the diagonal block of L there} for the blocks
    whose inverse it computes (_invert_lower_in_place's blocks, when they are the same)."""
    n = a.shape[0]
    for k0 in range(0, n, block):
        k1 = min(k0 + block, n)
        l = np.linalg.cholesky(a[k0:k1, k0:k1])
        a[k0:k1, k0:k1] = l
        a[k0:k1, k1:] = 0.0
        if k1 < n:
            inv = np.linalg.inv(l)
            if inverses is not None:
                inverses[k0] = inv
            panel = a[k1:, k0:k1] @ inv.T
            a[k1:, k0:k1] = panel
            for j0 in range(k1, n, block):
                j1 = min(j0 + block, n)
                a[j0:, j0:j1] -= panel[j0 - k1 :] @ panel[j0 - k1 : j1 - k1].T


def _inverse_hessian_factor(h: np.ndarray, damp: float, dead: np.ndarray | None = None) -> np.ndarray:
    """Upper triangular U (float32) with U^T U = (H + damp * mean(diag H) * I)^-1, H read,
    not changed (any float dtype; the entries of `dead` inputs' diagonal count as 1). With
    J the reversal permutation and J H J = L L^T (Cholesky), H^-1 = M^T M where M = J L^-1 J
    is upper triangular: one Cholesky and one triangular inverse, both in float32 (as GPTQ
    does; measured against float64: 1e-5 relative difference in U, 2048 x 2048) on one
    reversed copy of H (in x in x 4 bytes)."""
    n = h.shape[0]
    d = np.diag(h).astype(np.float64)
    if dead is not None:
        d = np.where(dead, 1.0, d)
    mean = float(np.mean(d)) if n else 0.0
    lam = max(damp * mean, 1e-300) if mean > 0 else max(damp, 1e-12)
    extra = 0.0
    for attempt in range(6):
        a = np.array(h[::-1, ::-1], np.float32)
        a[np.diag_indices(n)] = (d[::-1] + lam + extra).astype(np.float32)
        inverses: dict = {}
        try:
            _cholesky_lower_in_place(a, inverses=inverses)
            break
        except np.linalg.LinAlgError:
            extra += lam * (10.0**attempt)
    else:
        raise TflquantError("weight rounding: the input statistics' Hessian is not positive definite even after dampening")
    _invert_lower_in_place(a, inverses)  # (a leaf block at the offset and of the size of a Cholesky block is that block)
    return np.ascontiguousarray(a[::-1, ::-1])


def gptq(
    w: np.ndarray,
    hessian: np.ndarray,
    bits: int = 4,
    granularity: str = "channel",
    block_size: int = 32,
    narrow: bool = True,
    fp16_scales: bool | None = None,
    act_order: bool = False,
    damp: float = 0.01,
    clip: bool = True,
    block_axis: str = "in",
    batch: int = 128,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    factor_cache: dict | None = None,
    tensor_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ rounding of W [out, in] against the Hessian H [in, in] (2 X^T X / n, or any
    positive multiple: dampening is relative to its mean diagonal); returns
    (int8 codes [out, in], float32 scales). See the module docstring.

    Works on W^T (one contiguous row per input column). Updates are lazy at two levels:
    within a sub-batch of 32 columns rank-1 updates, then the rest of the batch of `batch`
    columns by one product, then the columns after the batch by one product.
    `factor_cache`: a dict kept per Hessian by the caller; the inverse Hessian's factor is
    computed once for every weight rounded against the same H (query, key and value)."""
    w = _matrix(w)
    out, inn = w.shape
    h = np.asarray(hessian)
    if h.shape != (inn, inn):
        raise TflquantError(f"weight rounding: a [{out}, {inn}] weight needs a [{inn}, {inn}] Hessian, got {h.shape}")
    lay = _layout(w.shape, granularity, block_size, block_axis)
    qmin, qmax = qrange(bits, narrow)
    fp16 = granularity == "block" if fp16_scales is None else fp16_scales
    # 8-bit scales are absmax: the clipping search gains nothing there (measured in LiteRT,
    # GPTQ with / without it: decoder_tiny dynamic int8 36.7 / 36.7 dB, the 512-wide
    # decoder 25.3 / 25.3) and costs a fifth of the rounding; 4 / 2 bits keep it (-1 to
    # -2 dB without: int4 channel 5.5 -> 3.3, block 128 7.8 -> 6.5)
    use_ratios = ratios if clip and bits < 8 else None

    w = w.astype(np.float32, copy=True)
    work: dict = {}  # the scale searches' work buffers, reused by each search of this weight
    diag = np.diag(h).astype(np.float64)
    dead = ~(diag > 0)
    w[:, dead] = 0.0  # inputs that are always zero: their weights never matter
    msq = np.where(dead, 0.0, diag)  # proportional to E[x_j^2] (only ratios matter)

    dynamic = granularity == "block" and block_axis == "in" and not act_order
    perm = np.argsort(-diag, kind="stable") if act_order else np.arange(inn)
    st = None  # static scales, [in, out] in column order
    if dynamic:
        scales = np.zeros(lay.scale_shape(), np.float32)  # filled block by block
    else:
        if tensor_scale is not None and granularity == "tensor":  # chosen by the caller (matrices sharing one scale)
            scales = np.array([tensor_scale], np.float32)
        else:
            p = lay.groups(np.broadcast_to(msq.astype(np.float32), w.shape)) if np.any(msq > 0) else None
            scales = lay.scales_of_groups(search_scales(lay.groups(w), qmin, qmax, p, use_ratios, fp16, work=work))
        st = np.ascontiguousarray(lay.expand(scales).T[perm], np.float32)
    wt = np.ascontiguousarray(w.T[perm])  # [in, out], row c = column perm[c] of W
    del w
    key = (bool(act_order), float(damp))
    u = None if factor_cache is None else factor_cache.get(key)
    if u is None:
        u = _inverse_hessian_factor(h[np.ix_(perm, perm)] if act_order else h, damp, dead[perm])
        if factor_cache is not None:
            factor_cache[key] = u
    msq_p = msq[perm].astype(np.float32)

    sub = 32
    step = max(batch, sub)
    if dynamic:
        sub = max(sub, block_size)
        step = -(-max(step, block_size) // block_size) * block_size  # blocks never straddle a batch
        step = -(-step // sub) * sub
    err = np.zeros((step, out), np.float32)
    q = np.empty(out, np.float32)  # the column's codes (float), then its dequantized values
    outer = np.empty((sub, out), np.float32)  # the sub-batch's rank-1 update
    lo, hi = np.float32(qmin), np.float32(qmax)
    s_col = np.empty(0, np.float32)
    # one scale per output row for a whole sub-batch (tensor, channel, blocks along the
    # input as wide as the sub-batch): the sub-batch is rounded in code units (v = w / s,
    # q = clip(rint(v)), errors (v - q) / U_cc), 6 numpy calls per column instead of 11
    uniform = granularity in ("tensor", "channel") or (dynamic and sub == block_size)
    ucc = np.diag(u).tolist()
    ucol = u[:, :, None]  # u[c, c'] as column vectors (the rank-1 updates' factors)
    _rint, _subtract, _divide, _multiply = np.rint, np.subtract, np.divide, np.multiply
    if uniform:
        qf = np.empty((inn, out), np.float32)  # the codes as floats (rint writes them in place)
        ev = np.empty((sub, out), np.float32)  # the sub-batch's errors in code units
        v = np.empty((sub, out), np.float32)
        if not dynamic:
            s_col = st[0]  # type: ignore[index]
    else:
        codes_t = np.zeros((inn, out), np.int8)
    for i1 in range(0, inn, step):
        i2 = min(i1 + step, inn)
        for j1 in range(i1, i2, sub):
            j2 = min(j1 + sub, i2)
            rows = wt[j1:j2]  # view, updated in place
            if uniform:
                if dynamic:
                    pw = msq_p[None, j1:j2] if np.any(msq_p[j1:j2] > 0) else None
                    s_col = search_scales(rows.T, qmin, qmax, pw, use_ratios, fp16, work=work)
                    scales[:, j1 // block_size] = s_col
                m = j2 - j1
                vs = v[:m]
                np.divide(rows, s_col, out=vs)
                # the sub-batch's row views taken at once (iterating an array makes them
                # in C), the ufuncs' outputs passed by position: the same operations as
                # one indexing and keyword call each, a fifth less time per column
                us = ucol[j1:j2, j1:j2]
                for i, vc, qc, e, uc, d in zip(range(1, m + 1), vs, qf[j1:j2], ev, us, ucc[j1:j2]):
                    _rint(vc, qc)
                    _clip(qc, lo, hi, qc)  # (max then min: the same values)
                    _subtract(vc, qc, e)
                    _divide(e, d, e)
                    if i < m:
                        o, rest = outer[: m - i], vs[i:]
                        _multiply(uc[i:], e, o)  # u[c, c+1:j2] as a column
                        _subtract(rest, o, rest)
                np.multiply(ev[:m], s_col, out=err[j1 - i1 : j2 - i1])  # back to weight units
                if j2 < i2:
                    wt[j2:i2] -= u[j1:j2, j2:i2].T @ err[j1 - i1 : j2 - i1]
                continue
            for c in range(j1, j2):
                i = c - j1
                if dynamic:
                    if c % block_size == 0:
                        blk = wt[c : c + block_size].T
                        pw = msq_p[None, c : c + block_size] if np.any(msq_p[c : c + block_size] > 0) else None
                        s_col = search_scales(blk, qmin, qmax, pw, use_ratios, fp16, work=work)
                        scales[:, c // block_size] = s_col
                else:
                    s_col = st[c]  # type: ignore[index]
                row = rows[i]
                # q = clip(rint(row / s)); e = (row - q s) / U_cc, in place (no temporaries)
                np.divide(row, s_col, out=q)
                np.rint(q, out=q)
                _clip(q, lo, hi, out=q)
                codes_t[c] = q
                np.multiply(q, s_col, out=q)
                e = err[c - i1]
                np.subtract(row, q, out=e)
                np.divide(e, ucc[c], out=e)
                if c + 1 < j2:
                    o, rest = outer[: j2 - c - 1], rows[i + 1 :]
                    np.multiply(u[c, c + 1 : j2, None], e, out=o)
                    np.subtract(rest, o, out=rest)
            if j2 < i2:
                wt[j2:i2] -= u[j1:j2, j2:i2].T @ err[j1 - i1 : j2 - i1]
        if i2 < inn:
            wt[i2:] -= u[i1:i2, i2:].T @ err[: i2 - i1]
    if uniform:
        codes_t = qf.astype(np.int8)

    codes = np.empty((out, inn), np.int8)
    codes[:, perm] = codes_t.T
    return codes, scales.astype(np.float32)


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------


@dataclass
class RoundedWeight:
    """Integer codes [out, in] (int8 storage) and scales, with what produced them."""

    codes: np.ndarray
    scales: np.ndarray
    bits: int
    granularity: str
    block_size: int
    method: str
    block_axis: str = "in"

    def dequantized(self) -> np.ndarray:
        return dequantize(self.codes, self.scales, self.granularity, self.block_size, self.block_axis)


def round_weight(
    w: np.ndarray,
    bits: int = 4,
    granularity: str = "channel",
    block_size: int = 32,
    method: str = "auto",
    stats: InputStatistics | None = None,
    hessian: np.ndarray | None = None,
    narrow: bool = True,
    fp16_scales: bool | None = None,
    act_order: bool = False,
    damp: float = 0.01,
    block_axis: str = "in",
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    threads: int | None = 1,
    mean_square: np.ndarray | None = None,
    factor_cache: dict | None = None,
    tensor_scale: float | None = None,
) -> RoundedWeight:
    """Codes and scales of W [out, in]. `stats` (InputStatistics of the layer's input) or
    `hessian` (2 X^T X / n or a positive multiple) make "mse" weigh the error by E[x^2]
    and enable "gptq". Memory: besides the caller's statistics GPTQ holds one reversed
    float32 copy of H that becomes the inverse factor (in^2 x 4 bytes) and float32 working
    copies of the weight (measured: +175 MB peak for a [1024, 4096] weight).
    `threads`: BLAS threads while rounding (calibration.blas.blas_threads; 1 by default:
    the products are small and OpenBLAS's spinning threads cost 10x on a busy machine,
    measured 0.35 s vs 0.03 s for a 128 x 512 layer; None leaves BLAS alone).
    `mean_square`: E[x_j^2] per input (or a positive multiple) when there is no Hessian:
    "mse" weighs the error by it ("auto" is then "mse"). `factor_cache`: see gptq.
    `tensor_scale`: with granularity "tensor", the scale to use (no search; round_batch_matmul
    chooses one for all its matrices)."""
    args = (w, bits, granularity, block_size, method, stats, hessian, narrow, fp16_scales, act_order, damp, block_axis, ratios, mean_square, factor_cache, tensor_scale)
    if method in ("rtn", "mse") or (method == "auto" and hessian is None and (stats is None or stats.rows == 0)):
        return _round_weight(*args)  # no matrix products: BLAS's threads do not matter (and setting them costs)
    with blas_threads(threads):
        return _round_weight(*args)


def _round_weight(w, bits, granularity, block_size, method, stats, hessian, narrow, fp16_scales, act_order, damp, block_axis, ratios, mean_square=None, factor_cache=None,
                  tensor_scale=None) -> RoundedWeight:
    if method not in METHODS:
        raise TflquantError(f"weight rounding: method must be one of {', '.join(METHODS)}, got {method!r}")
    w = _matrix(w)
    if stats is not None:
        if stats.in_features != w.shape[1]:
            raise TflquantError(f"weight rounding: input statistics of width {stats.in_features} for a weight with {w.shape[1]} inputs")
        if hessian is None and stats.rows > 0:
            hessian = stats.xtx  # a positive multiple of H: dampening and weights are relative
    if method == "auto":
        method = "gptq" if hessian is not None else "mse"
    if method == "gptq":
        if hessian is None:
            raise TflquantError("weight rounding: GPTQ needs calibration data (input statistics of the layer)")
        codes, scales = gptq(w, hessian, bits, granularity, block_size, narrow, fp16_scales, act_order, damp, True, block_axis, ratios=ratios, factor_cache=factor_cache,
                             tensor_scale=tensor_scale)
    else:
        msq = mean_square if hessian is None else np.diag(np.asarray(hessian, np.float64)).copy()
        if tensor_scale is not None and granularity == "tensor":
            scales = np.array([tensor_scale], np.float32)
        else:
            scales = _choose_scales(w, bits, granularity, block_size, msq, method == "mse", narrow, fp16_scales, block_axis, ratios)
        codes = _quantize_with_scales(w, scales, bits, granularity, block_size, narrow, block_axis)  # w checked once (_matrix)
    return RoundedWeight(codes, scales, bits, granularity, block_size, method, block_axis)


def round_fully_connected(filter_: np.ndarray, **kw) -> RoundedWeight:
    """FULLY_CONNECTED's filter is stored [out, in] (output = x @ filter^T): rounded as is.
    Keyword arguments as round_weight; channel scales are on axis 0, blocks along axis 1."""
    return round_weight(filter_, **kw)


def round_batch_matmul(y: np.ndarray, adj_y: bool = False, **kw) -> RoundedWeight:
    """BATCH_MATMUL's constant second operand y: [..., in, out] (output = x @ y), or
    [..., out, in] when adj_y (output = x @ y^T). Each matrix is rounded as W = y^T
    (adj_y false) or W = y (adj_y true); codes come back in y's shape. Scales: tensor -> (1,),
    one for all the matrices (chosen over them all, E[x^2]-weighted where given); channel ->
    [..., out] (per output, y's axis -1 when adj_y is false, -2 when true); block -> blocks
    along y's last dimension, [..., in, out / B] (adj_y false) or [..., out, in / B] (adj_y
    true). Statistics: `stats` / a [in, in] `hessian` / a [in] `mean_square` are shared by
    the matrices; a [M, in, in] `hessian` or [M, in] `mean_square` (M = the number of
    matrices) gives each matrix its own (the input rows each one multiplies).
    `factor_cache`: a dict per matrix is kept in it under ("matrix", m)."""
    y = np.asarray(y, np.float32)
    if y.ndim < 2:
        raise TflquantError(f"weight rounding: a BATCH_MATMUL weight has rank >= 2, got shape {y.shape}")
    if "block_axis" in kw:
        raise TflquantError("weight rounding: round_batch_matmul chooses the block axis from adj_y")
    lead = y.shape[:-2]
    mats = y.reshape(-1, *y.shape[-2:])
    h, msq, cache = kw.pop("hessian", None), kw.pop("mean_square", None), kw.pop("factor_cache", None)
    per = [False, False]
    for i, (a, nd) in enumerate(((h, 3), (msq, 2))):
        if a is not None and np.ndim(a) == nd:
            if np.shape(a)[0] != len(mats):
                raise TflquantError(f"weight rounding: per-matrix statistics for {np.shape(a)[0]} matrices, the BATCH_MATMUL weight holds {len(mats)}")
            per[i] = True
    gran = kw.get("granularity", "channel")
    ws = [m if adj_y else m.T for m in mats]
    if gran == "tensor" and len(mats) > 1 and "tensor_scale" not in kw:
        kw["tensor_scale"] = _shared_tensor_scale(ws, h, msq, per, kw)
    codes, scales = [], []
    r = None
    for i, wm in enumerate(ws):
        hi = h[i] if per[0] else h
        mi = msq[i] if per[1] else msq
        ci = None if cache is None else cache.setdefault(("matrix", i), {}) if per[0] else cache
        r = round_weight(wm, block_axis="in" if adj_y else "out", hessian=hi, mean_square=mi, factor_cache=ci, **kw)
        c, s = r.codes, r.scales
        if not adj_y:
            c = c.T
            s = s.T if r.granularity == "block" else s
        codes.append(c)
        scales.append(s)
    assert r is not None
    out_codes = np.stack(codes).reshape(y.shape)
    if r.granularity == "tensor":
        out_scales = scales[0]
    else:
        out_scales = np.stack(scales).reshape(*lead, *scales[0].shape) if lead else scales[0]
    return RoundedWeight(out_codes, out_scales.astype(np.float32), r.bits, r.granularity, r.block_size, r.method, "in" if adj_y else "out")


def _shared_tensor_scale(ws: list[np.ndarray], h, msq, per: list[bool], kw: dict) -> float:
    """One scale for every matrix of a BATCH_MATMUL weight (granularity tensor): absmax, or
    the E[x^2]-weighted MSE-clipped one over all of them (ratios as round_weight's)."""
    bits, narrow = kw.get("bits", 4), kw.get("narrow", True)
    qmin, qmax = qrange(bits, narrow)
    method = kw.get("method", "auto")
    groups = np.concatenate([w.reshape(-1) for w in ws])[None, :]
    p = None
    if h is not None or msq is not None:
        rows = []
        for i, w in enumerate(ws):
            d = np.diag(np.asarray(h[i] if per[0] else h, np.float64)) if h is not None else np.asarray(msq[i] if per[1] else msq, np.float64)
            rows.append(np.broadcast_to(np.maximum(d, 0).astype(np.float32), w.shape).reshape(-1))
        p = np.concatenate(rows)[None, :]
    ratios = None if method == "rtn" else kw.get("ratios", DEFAULT_RATIOS)
    fp16 = bool(kw.get("fp16_scales") or False)
    return float(search_scales(groups, qmin, qmax, p, ratios, fp16)[0])


ROUNDINGS = ("nearest", "mse", "gptq", "auto")  # quantize-weights' weight-rounding option
AUTO_NO_DATA_INT8 = "nearest"  # "auto" for an 8-bit weight without its layer's statistics (measured: see README)


def resolve_method(rounding: str, bits: int, has_hessian: bool) -> str | None:
    """quantize-weights' `weight-rounding` for one weight -> a round_weight method, or None
    for the pass's own round to nearest. "gptq" without the layer's X^T X (a weight that is
    no FULLY_CONNECTED filter, or an input without statistics) is "mse". "auto": GPTQ where
    the layer has statistics; without them MSE clipping for 4/2-bit weights and
    AUTO_NO_DATA_INT8 for 8-bit ones. Measured in LiteRT on decoder_tiny (logits SQNR,
    nearest / mse / gptq): int8 channel dynamic 32.1 / 32.2 / 36.7 dB, weight-only 32.9 /
    33.0 / 39.7; int4 channel 7.9 / 10.2 / 15.6; block 32 11.6 / 13.0 / 17.9; block 128 7.9 /
    10.1 / 15.6."""
    if rounding not in ROUNDINGS:
        raise TflquantError(f"weight rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if rounding == "auto":
        rounding = "gptq" if has_hessian else AUTO_NO_DATA_INT8 if bits >= 8 else "mse"
    if rounding == "nearest" or bits > 8:  # (16 bits: a table; clipping finds nothing there)
        return None
    return "gptq" if rounding == "gptq" and has_hessian else "mse"


def round_tensor(
    w: np.ndarray,
    axis: int | None,
    bits: int,
    granularity: str,
    block_size: int = 32,
    method: str = "auto",
    hessian: np.ndarray | None = None,
    mean_square: np.ndarray | None = None,
    fp16_scales: bool | None = None,
    factor_cache: dict | None = None,
    group_scales: np.ndarray | None = None,
    finite: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A weight of any rank in quantize-weights' layouts: (int8 codes of w's shape, float32
    scales). "channel": one scale per slice along `axis`, shape (w.shape[axis],); "tensor":
    shape (1,); "block": blocks of `block_size` along the last dimension, shape
    (*w.shape[:-1], last / block_size). `hessian` ([in, in], a positive multiple of X^T X)
    and `mean_square` ([in]) describe the input of a layer whose output is x @ w^T: only
    for a 2-D w [out, in] with channel axis 0 or None (a FULLY_CONNECTED filter).
    `group_scales`: scales already chosen for the rows of tensor_groups(w, axis,
    granularity, block_size), in their order (search_scales_many's, for many weights at
    once): w is rounded with them (no statistics, no search; `method` is not consulted).
    `finite`: with group_scales, the caller has found w finite (the search's caller checks
    each weight it searches): not checked again."""
    w = np.asarray(w, np.float32)
    if w.ndim == 0:
        w = w.reshape(1)
    shape = w.shape
    if hessian is not None or mean_square is not None:
        if w.ndim != 2 or axis not in (0, None):
            raise TflquantError(f"weight rounding: input statistics apply to a [out, in] weight with channels on axis 0, got shape {shape}, axis {axis}")
        m = w
    else:
        m = _tensor_matrix(w, axis, granularity)
    if group_scales is not None:
        m = _matrix(m, check_finite=not finite)
        scales = _layout(m.shape, granularity, block_size, "in").scales_of_groups(np.asarray(group_scales, np.float32))
        codes = _quantize_with_scales(m, scales, bits, granularity, block_size, True, "in")
    else:
        r = round_weight(m, bits, granularity, block_size, method, hessian=hessian, mean_square=mean_square, fp16_scales=fp16_scales, factor_cache=factor_cache)
        codes, scales = r.codes, r.scales
    if granularity == "channel" and m is not w:
        a = axis if axis is not None else 0
        codes = np.moveaxis(codes.reshape((shape[a],) + tuple(d for i, d in enumerate(shape) if i != a)), 0, a)
    codes = codes.reshape(shape)
    if granularity == "block":
        scales = scales.reshape(*shape[:-1], shape[-1] // block_size)
    return np.ascontiguousarray(codes), scales.astype(np.float32)


def tensor_groups(w: np.ndarray, axis: int | None, granularity: str, block_size: int = 32) -> np.ndarray:
    """The groups [G, n] of a weight in round_tensor's layouts (without statistics): one row
    per scale, in the order search_scales returns them (a view where the layout allows)."""
    w = np.asarray(w, np.float32)
    m = _tensor_matrix(w.reshape(1) if w.ndim == 0 else w, axis, granularity)
    return _layout(m.shape, granularity, block_size, "in").groups(m)


def _tensor_matrix(w: np.ndarray, axis: int | None, granularity: str) -> np.ndarray:
    """round_tensor's matrix of w (rank >= 1): [channels, rest] for "channel", else [rest, last]."""
    if granularity == "channel":
        a = axis if axis is not None else 0
        return np.moveaxis(w, a, 0).reshape(w.shape[a], -1)
    return w.reshape(-1, w.shape[-1])


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _matrix(w: np.ndarray, check_finite: bool = True) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != 2:
        raise TflquantError(f"weight rounding: expected a [out, in] matrix, got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):
        raise TflquantError(f"weight rounding: expected a float weight, got {w.dtype}")
    if check_finite and not all_finite(w):
        raise TflquantError("weight rounding: the weight holds NaN or Inf")
    return w.astype(np.float32, copy=False)


def all_finite(a: np.ndarray) -> bool:
    """np.all(np.isfinite(a)) without a temporary of a's size: a slice at a time, ranges of
    slices on the kernel threads for a big C-contiguous array (tflquant.parallel)."""
    a = np.asarray(a)
    if a.size < 2 * ROUND_CHUNK or not a.flags.c_contiguous or not np.issubdtype(a.dtype, np.floating):
        return bool(np.all(np.isfinite(a)))
    flat = a.reshape(-1)
    count = -(-flat.size // ROUND_CHUNK)
    bad: list[int] = []

    def run(c0: int, c1: int) -> None:
        buf = np.empty(ROUND_CHUNK, np.bool_)
        for c in range(c0, c1):
            if bad:
                return
            part = flat[c * ROUND_CHUNK : (c + 1) * ROUND_CHUNK]
            t = buf[: part.size]
            np.isfinite(part, out=t)
            if not t.all():
                bad.append(c)
                return

    _parallel.over_slices(count, run, flat.size >= PARALLEL_SEARCH_MIN)
    return not bad


def _mean_square(msq: np.ndarray, n: int) -> np.ndarray:
    m = np.asarray(msq, np.float64).reshape(-1)
    if m.shape != (n,):
        raise TflquantError(f"weight rounding: E[x^2] has {m.size} entries for a weight with {n} inputs")
    return np.maximum(m, 0.0)


def output_error(x: np.ndarray, w: np.ndarray, w_hat: np.ndarray) -> float:
    """||X W^T - X W_hat^T||^2 (float64) for inputs X [n, in]."""
    d = np.asarray(x, np.float64) @ (np.asarray(w, np.float64) - np.asarray(w_hat, np.float64)).T
    return float(np.sum(d * d))


def sqnr_db(ref: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(||ref||^2 / ||ref - approx||^2)."""
    r = np.asarray(ref, np.float64)
    e = r - np.asarray(approx, np.float64)
    num, den = float(np.sum(r * r)), float(np.sum(e * e))
    if den == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(num, 1e-300) / den)
