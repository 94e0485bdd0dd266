"""Weight rounding on the process's kernel threads (tflquant.parallel): quantize-weights'
slice loops (per channel with its measured SQNR, blocks, per tensor) and the MSE clipping
search run ranges of slices on the threads for big weights; the bytes and the report's
values are those of the serial run, also with two quantizations at once. The thresholds
are lowered here so that small weights take the threaded paths (and the test checks that
ranges did run on a pool thread)."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tflquant
import tflquant.passes.quantize_weights as qw
from tflquant import parallel
from tflquant.calibration import weight_rounding as wr
from tests.models import GraphBuilder

CONFIGS = [
    dict(mode="dynamic"),  # int8 per channel: _quantize_rows with the SQNR it measures
    dict(mode="dynamic", granularity="tensor", weight_rounding="nearest"),  # _quantize_tensor
    dict(mode="dynamic", weight_bits=4, weight_rounding="nearest"),
    dict(mode="dynamic", weight_bits=4),  # the search, then rounding with its scales
    dict(mode="dynamic", weight_bits=4, granularity="block", block_size=32),
    dict(mode="dynamic", weight_bits=4, granularity="block", block_size=32, weight_rounding="nearest"),  # _quantize_blocks
    dict(mode="weight-only", weight_bits=4, granularity="block", block_size=32),
]


@pytest.fixture(scope="module")
def model() -> bytes:
    """x [4, 96] -> FC [160, 96] -> FC [64, 160] (heavy-tailed weights, a zero row)."""
    rng = np.random.default_rng(11)
    g = GraphBuilder("main", {"x": ((4, 96), np.float32)})
    w1 = (rng.standard_t(3, size=(160, 96)) * 0.05).astype(np.float32)
    w1[7] = 0.0
    w2 = (rng.standard_t(3, size=(64, 160)) * np.exp(rng.standard_normal((64, 1)))).astype(np.float32)
    h = g.op("FULLY_CONNECTED", [g.x, g.const(w1, "w1"), g.const(np.zeros(160, np.float32), "b1")], (4, 160), name="fc1")
    y = g.op("FULLY_CONNECTED", [h, g.const(w2, "w2"), g.no_value()], (4, 64), name="fc2")
    return g.tflite([y])


def _run(m: bytes, cfg: dict) -> tuple[bytes, str]:
    r = tflquant.quantize(m, **cfg)
    rep = dataclasses.asdict(r.report)
    rep.pop("seconds")
    return r.model, repr(rep)


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Thresholds and slices small enough for these weights to split; returns the names of
    the threads that ran a range (filled as they run)."""
    monkeypatch.setattr(qw, "PARALLEL_MIN", 256)
    monkeypatch.setattr(qw, "_CHUNK", 512)
    monkeypatch.setattr(qw, "_PASS", 1536)  # passes of several slices (the SQNR summed slice by slice)
    monkeypatch.setattr(wr, "PARALLEL_SEARCH_MIN", 256)
    monkeypatch.setattr(wr, "SEARCH_CHUNK", 512)
    monkeypatch.setattr(wr, "THREADED_SEARCH_CHUNK", 1024)  # (other slices than the serial search's: the same scales)
    monkeypatch.setattr(wr, "ROUND_CHUNK", 256)
    ran: list[str] = []
    real = parallel.run_ranges

    def spy(n, fn, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        worker_started = threading.Event()

        def part(i0: int, i1: int) -> None:
            name = threading.current_thread().name
            if name.startswith(parallel.WORKER_PREFIX):
                worker_started.set()
            elif parallel.get_threads() > 1:  # (the caller lets a pool thread take a range first, if it comes within 2 s)
                worker_started.wait(2.0)
            ran.append(name)
            fn(i0, i1)

        real(n, part, *a, **k)

    monkeypatch.setattr(parallel, "run_ranges", spy)
    return ran


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_threaded_rounding_gives_the_serial_bytes_and_report(model: bytes, cfg: dict, small_thresholds: list[str]) -> None:
    old = parallel.set_threads(1)
    try:
        serial = _run(model, cfg)
        assert not any(t.startswith(parallel.WORKER_PREFIX) for t in small_thresholds)
        parallel.set_threads(2)
        threaded = _run(model, cfg)
    finally:
        parallel.set_threads(old)
    assert any(t.startswith(parallel.WORKER_PREFIX) for t in small_thresholds), "no range ran on a pool thread"
    assert threaded[0] == serial[0]
    assert threaded[1] == serial[1]  # the weights' SQNR (summed per slice in slice order) included


def test_two_quantizations_at_once_share_the_threads(model: bytes, small_thresholds: list[str]) -> None:
    cfgs = [CONFIGS[0], CONFIGS[3], CONFIGS[4], CONFIGS[5]]
    old = parallel.set_threads(1)
    try:
        want = [_run(model, c) for c in cfgs]
        parallel.set_threads(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in range(2):
                got = list(pool.map(lambda c: _run(model, c), cfgs))
                assert got == want
    finally:
        parallel.set_threads(old)


@pytest.mark.parametrize("bad_row", [0, 77, 159])
def test_threaded_rows_find_a_non_finite_value_in_any_slice(monkeypatch: pytest.MonkeyPatch, bad_row: int) -> None:
    monkeypatch.setattr(qw, "PARALLEL_MIN", 256)
    monkeypatch.setattr(qw, "_CHUNK", 96 * 8)
    monkeypatch.setattr(qw, "_PASS", 96 * 24)
    w = np.random.default_rng(3).standard_normal((160, 96)).astype(np.float32)
    old = parallel.set_threads(2)
    try:
        q, s, db = qw._quantize_rows(w, 127, measure=True)
        parallel.set_threads(1)
        q1, s1, db1 = qw._quantize_rows(w, 127, measure=True)
        assert np.array_equal(q, q1) and np.array_equal(s, s1) and db == db1 == qw.sqnr_db(w, q1, s1[:, None])
        parallel.set_threads(2)
        w[bad_row, 5] = np.nan
        assert qw._quantize_rows(w, 127, measure=True) is None
        assert qw._quantize_blocks(w, 32, 7) is None
    finally:
        parallel.set_threads(old)


def test_ranges_run_in_the_callers_numpy_error_state_and_reraise() -> None:
    old = parallel.set_threads(2)
    try:
        seen: list[tuple[str, str]] = []

        def part(i0: int, i1: int) -> None:
            seen.append((threading.current_thread().name, np.geterr()["over"]))

        with np.errstate(over="ignore"):
            parallel.run_ranges(8, part, ranges=8)
        assert {e for _, e in seen} == {"ignore"} and len(seen) == 8

        def fail(i0: int, i1: int) -> None:
            if i0 == 3:
                raise ValueError("range 3")

        with pytest.raises(ValueError, match="range 3"):
            parallel.run_ranges(8, fail, ranges=8)
    finally:
        parallel.set_threads(old)


@pytest.mark.parametrize("threads", [1, 2])
def test_all_finite_finds_any_nan_or_infinity(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    monkeypatch.setattr(wr, "ROUND_CHUNK", 64)
    monkeypatch.setattr(wr, "PARALLEL_SEARCH_MIN", 256)
    w = np.random.default_rng(4).standard_normal((40, 50)).astype(np.float32)
    old = parallel.set_threads(threads)
    try:
        assert wr.all_finite(w) and wr.all_finite(w.astype(np.float16)) and wr.all_finite(w[:, ::2])
        for at, bad in [(0, np.nan), (1333, np.inf), (1999, -np.inf)]:
            v = w.copy()
            v.reshape(-1)[at] = bad
            assert not wr.all_finite(v) and not wr.all_finite(v.astype(np.float64))
    finally:
        parallel.set_threads(old)


def test_a_caller_does_not_wait_for_a_pool_busy_with_other_work() -> None:
    """A caller that has taken every range itself returns without waiting for its share of
    the pool to start (the pool's threads busy with another caller's work: its queued part
    is withdrawn)."""
    old = parallel.set_threads(2)
    release = threading.Event()
    try:
        pool = parallel._pool()
        started = [threading.Event() for _ in range(pool._max_workers)]
        blockers = [pool.submit(lambda e=e: (e.set(), release.wait(30))) for e in started]
        assert all(e.wait(10) for e in started)  # every pool thread busy
        done: list = []

        def call() -> None:
            parallel.run_ranges(4, lambda i0, i1: done.append((i0, i1)), ranges=4)
            done.append("returned")

        t = threading.Thread(target=call)
        t.start()
        t.join(10)
        returned = not t.is_alive()
        release.set()
        t.join()
        for b in blockers:
            b.result()
        assert returned, "run_ranges waited for the busy pool"
        assert done[-1] == "returned" and sorted(done[:-1]) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    finally:
        release.set()
        parallel.set_threads(old)
