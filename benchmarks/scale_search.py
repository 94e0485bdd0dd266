"""The data-free MSE-clipping scale search (weight_rounding.search_scales, weights=None) of
a model's int4 weights: its cost per weight, and cheaper strategies against it and against
trying every ratio.

    python benchmarks/scale_search.py [--model M.tflite] [--formats channel,b32,b128] [--rounds N]

1. Records the groups [G, n] of every unweighted search one `tflquant.quantize(model,
   mode="dynamic", weight_bits=4, granularity=...)` makes (search_scales and quantize-weights'
   batched search_scales_many, spied on), per format.
2. Cost: CPU time of search_scales over the recorded arrays (one call per array, best of
   --rounds) in ns a weight, its candidate evaluations a weight (_errors counted), and the
   CPU time of each numpy pass of one evaluation on a 2^17-element chunk (ns an element).
3. Quality: the float64 weight error of each group at each of the 26 ratios (the scales
   search_scales gives for that ratio alone), and per weight (one recorded array) the SQNR of
   - "current": search_scales' choice;
   - "every ratio": the exhaustive optimum; "absmax": ratio 1.0;
   - plans of exact evaluations: the current plan without its last step (+-0.02), with its
     +-0.06 step on one side only (toward the better coarse neighbour), and the coarse points
     chosen on a subsample (every k-th element of each group, the elements that can clip at
     ratio 0.5 exactly, errors scaled by k), everything after exact;
   - the whole plan on a 1/8 subsample then the best +- 0.02 and 1.0 exactly, and the whole
     plan on a 1/8 subsample alone.
   The simulated plans evaluate every coarse point: 9 evaluations for the current plan (row
   "plan, +-0.06 both sides"; the search itself takes that step on one side for groups
   shorter than TRANSPOSE_BELOW, and skips the coarse points the largest |w| rules out: its
   counted evaluations), which would save the same in the other plans.
   Columns: the mean and worst difference to "current" over the weights (dB), the mean
   difference to "every ratio", the share of the clipping gain kept ((s - absmax) /
   (every - absmax), mean), and the evaluations a weight in units of one exact evaluation of
   every element (a subsample evaluation counts its share of the elements). The plans are
   simulated on the exact error table (their choice is what an implementation would
   choose); their cost is the evaluations column, not a measured time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import tflquant
import tflquant.passes.quantize_weights as qw
from tflquant.calibration import weight_rounding as wr

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "..", "..", "shared", "models", "decoder_tiny", "float.tflite")
FORMATS = {"channel": dict(granularity="channel"), "b32": dict(granularity="block", block_size=32), "b128": dict(granularity="block", block_size=128)}
RATIOS = np.array(wr.DEFAULT_RATIOS)  # ascending: index 25 = 1.0
TOP = len(RATIOS) - 1
COARSE = [TOP, TOP - 6, TOP - 12, TOP - 18, TOP - 24]  # 1.0, 0.88, 0.76, 0.64, 0.52


def record(model: str, fmt: str) -> list[tuple[np.ndarray, int, int, bool, float]]:
    """(groups, qmin, qmax, fp16, min_scale) of each unweighted search of one quantize call."""
    rec: list = []
    one, many = wr.search_scales, qw.search_scales_many

    def spy_one(groups, qmin, qmax, weights=None, ratios=wr.DEFAULT_RATIOS, fp16=False, min_scale=0.0, work=None):
        if weights is None and ratios is not None:
            rec.append((np.array(groups, np.float32), qmin, qmax, fp16, min_scale))
        return one(groups, qmin, qmax, weights, ratios, fp16, min_scale, work)

    def spy_many(parts, qmin, qmax, ratios=wr.DEFAULT_RATIOS, fp16=False, min_scale=0.0, work=None):
        rec.extend((np.array(g, np.float32), qmin, qmax, fp16, min_scale) for g in parts)
        return many(parts, qmin, qmax, ratios, fp16, min_scale, work)

    wr.search_scales, qw.search_scales_many = spy_one, spy_many
    try:
        tflquant.quantize(model, mode="dynamic", weight_bits=4, **FORMATS[fmt])
    finally:
        wr.search_scales, qw.search_scales_many = one, many
    return rec


def errors(g: np.ndarray, s: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """float64 sum of squared errors of each group rounded with scales s."""
    q = np.clip(np.rint(g / s[:, None]), qmin, qmax)
    d = g.astype(np.float64) - q * s[:, None].astype(np.float64)
    return np.einsum("cn,cn->c", d, d)


def table(g, qmin, qmax, fp16, ms) -> tuple[np.ndarray, np.ndarray]:
    """(scales [26, G], float64 errors [26, G]) of every ratio, ascending."""
    S = np.stack([wr.search_scales(g, qmin, qmax, None, ratios=(float(r),), fp16=fp16, min_scale=ms) for r in RATIOS])
    return S, np.stack([errors(g, s, qmin, qmax) for s in S])


def estimate(g, S, qmin, qmax, k) -> tuple[np.ndarray, float]:
    """Subsampled errors [26, G]: the elements that can clip at ratio 0.5 exactly, every k-th
    of the others times k; and the share of the elements evaluated."""
    a = np.abs(g)
    qm = max(qmax, -qmin)
    tail = a > (0.5 * (qm + 0.5) / qm * 0.999) * a.max(axis=1, keepdims=True)
    bulk = np.where(tail, np.float32(0), g)[:, ::k]
    t = g[tail]
    rows = np.nonzero(tail)[0]
    est = np.empty(S.shape)
    for i, s in enumerate(S):
        st = s[rows]
        d = t - np.clip(np.rint(t / st), qmin, qmax) * st.astype(np.float64)
        est[i] = np.bincount(rows, weights=d * d, minlength=g.shape[0]) + k * errors(bulk, s, qmin, qmax)
    return est, float(tail.mean() + 1.0 / k)


def plan(E: np.ndarray, coarse_from: np.ndarray | None = None, steps=(3, 1), one_side: bool = False, exact_after: np.ndarray | None = None):
    """search_plan's coarse-to-fine choice on the error table E [26, G] (no pruning: the
    ruled-out coarse points cannot win anyway). coarse_from: the table the coarse points are
    chosen on (then the chosen point and 1.0 are evaluated on E, and the steps on E).
    Returns (choice [G], exact evaluations per group)."""
    G = E.shape[1]
    ar = np.arange(G)
    C = E if coarse_from is None else coarse_from
    best = np.full(G, TOP)
    be = C[TOP].copy()
    for c in COARSE[1:]:
        w = C[c] < be
        best[w], be[w] = c, C[c][w]
    n_exact = len(COARSE) if coarse_from is None else 1 + (best != TOP)
    if coarse_from is not None:  # the chosen coarse point and 1.0, exactly
        be = E[best, ar].copy()
        w = E[TOP] < be
        best[w], be[w] = TOP, E[TOP][w]
    for t, h in enumerate(steps):
        if t == 0 and one_side:
            up = np.where(best + 2 * h <= TOP, C[np.minimum(best + 2 * h, TOP), ar], np.inf)
            down = np.where(best - 2 * h >= 0, C[np.maximum(best - 2 * h, 0), ar], np.inf)
            cands = [np.where(down < up, np.maximum(best - h, 0), np.minimum(best + h, TOP))]
        else:
            cands = [np.minimum(best + h, TOP), np.maximum(best - h, 0)]
        for c in cands:
            e = E[c, ar]
            w = e < be
            best[w], be[w] = c[w], e[w]
        n_exact = n_exact + len(cands)
    return best, np.broadcast_to(n_exact, (G,))


def strategies(g, qmin, qmax, fp16, ms, S, E):
    """{name: (choice [G], evaluations a weight in exact-evaluation units)}."""
    G = E.shape[1]
    cur = wr.search_scales(g, qmin, qmax, None, fp16=fp16, min_scale=ms)
    cur_idx = np.argmin(np.abs(S - cur[None, :]), axis=0)  # (the scales of one ratio are that ratio's)
    out = {"current": (cur_idx, np.nan), "every ratio": (np.argmin(E[::-1], axis=0) * -1 + TOP, 26.0), "absmax": (np.full(G, TOP), 1.0)}
    b, n = plan(E)
    out["plan, +-0.06 both sides"] = (b, float(n.mean()))
    b, n = plan(E, steps=(3,))
    out["plan, no +-0.02"] = (b, float(n.mean()))
    b, n = plan(E, one_side=True)
    out["plan, +-0.06 one side"] = (b, float(n.mean()))
    for k in (2, 4):
        P, share = estimate(g, S, qmin, qmax, k)
        b, n = plan(E, coarse_from=P)
        out[f"coarse on 1/{k}"] = (b, float(n.mean()) + len(COARSE) * share)
    P, share = estimate(g, S, qmin, qmax, 8)
    b, _n = plan(P)
    ar = np.arange(G)
    sub = 9 * share
    cands = [b, np.minimum(b + 1, TOP), np.maximum(b - 1, 0), np.full(G, TOP)]
    best, be = cands[0].copy(), E[cands[0], ar].copy()
    for c in cands[1:]:
        e = E[c, ar]
        w = e < be
        best[w], be[w] = c[w], e[w]
    out["plan on 1/8, then +-0.02, 1.0"] = (best, sub + 3 + float(np.mean(b != TOP)))
    out["plan on 1/8 alone"] = (b, sub)
    return out


def pass_costs(n: int, rounds: int) -> dict[str, float]:
    """CPU ns an element of each pass of one evaluation (search_scales' _errors) on 2^17 elements."""
    from numpy._core.multiarray import c_einsum
    from numpy._core.umath import clip

    rng = np.random.default_rng(0)
    c = (1 << 17) // n
    g = rng.standard_t(3, size=(c, n)).astype(np.float32)
    inv = (rng.random((1, c)) + 1).astype(np.float32)
    u, q = np.empty((1, c, n), np.float32), np.empty((1, c, n), np.float32)
    lo, hi = np.float32(-7), np.float32(7)
    ops = {"multiply (a scale a group)": lambda: np.multiply(g, inv[:, :, None], out=u), "rint": lambda: np.rint(u, out=q),
           "clip": lambda: clip(q, lo, hi, q), "subtract": lambda: np.subtract(u, q, out=u), "sum of squares (einsum)": lambda: c_einsum("kcn,kcn->kc", u, u),
           "(multiply by one scalar)": lambda: np.multiply(g, np.float32(1.3), out=u[0])}
    res = {}
    for name, f in ops.items():
        best = np.inf
        for _ in range(rounds):
            t = time.process_time()
            for _ in range(32):
                f()
            best = min(best, (time.process_time() - t) / 32)
        res[name] = best / g.size * 1e9
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--formats", default="channel,b32,b128")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(f"model {args.model}; load {os.getloadavg()[0]:.2f}")
    for n in (32, 512):
        print(f"one evaluation's passes, groups of {n}, CPU ns an element:", ", ".join(f"{k} {v:.3f}" for k, v in pass_costs(n, args.rounds).items()))
    for fmt in args.formats.split(","):
        rec = record(args.model, fmt)
        if not rec:
            print(f"{fmt}: no unweighted search")
            continue
        size = sum(r[0].size for r in rec)
        counted = [0]
        real = wr._errors

        def counting(st, g, sp, base, idx):
            e = real(st, g, sp, base, idx)
            counted[0] += e.size * st.n
            return e

        wr._errors = counting
        try:
            for g, qmin, qmax, fp16, ms in rec:
                wr.search_scales(g, qmin, qmax, None, fp16=fp16, min_scale=ms)
        finally:
            wr._errors = real
        best = np.inf
        for _ in range(args.rounds):
            t = time.process_time()
            for g, qmin, qmax, fp16, ms in rec:
                wr.search_scales(g, qmin, qmax, None, fp16=fp16, min_scale=ms)
            best = min(best, time.process_time() - t)
        print(f"\n{fmt}: {len(rec)} weights, {size} elements, group lengths {sorted({r[0].shape[1] for r in rec})}; search_scales "
              f"{best * 1e3:.1f} ms CPU = {best / size * 1e9:.2f} ns a weight, {counted[0] / size:.2f} evaluations a weight (load {os.getloadavg()[0]:.2f})")
        db: dict[str, list[float]] = {}
        evals: dict[str, list[float]] = {}
        weights = []
        for g, qmin, qmax, fp16, ms in rec:
            S, E = table(g, qmin, qmax, fp16, ms)
            signal = float(np.sum(g.astype(np.float64) ** 2))
            weights.append(g.size)
            ar = np.arange(g.shape[0])
            for name, (idx, ev) in strategies(g, qmin, qmax, fp16, ms, S, E).items():
                err = float(E[idx, ar].sum())
                db.setdefault(name, []).append(10 * np.log10(signal / err) if err > 0 else np.inf)
                evals.setdefault(name, []).append(ev)
        cur, every, absmax = (np.array(db[k]) for k in ("current", "every ratio", "absmax"))
        wsum = np.array(weights, np.float64)
        print(f"  {'strategy':34s} {'vs current mean':>16s} {'worst':>8s} {'vs every ratio':>15s} {'gain kept':>10s} {'evaluations a weight':>21s}")
        for name, vals in db.items():
            v = np.array(vals)
            gain = np.mean((v - absmax) / np.maximum(every - absmax, 1e-12))
            ev = np.array(evals[name], np.float64)
            ev_txt = f"{counted[0] / size:.2f} (counted)" if name == "current" else f"{np.sum(ev * wsum) / wsum.sum():.2f}"
            print(f"  {name:34s} {np.mean(v - cur):+16.4f} {np.min(v - cur):+8.4f} {np.mean(v - every):+15.4f} {gain:10.3f} {ev_txt:>21s}")


if __name__ == "__main__":
    main()
