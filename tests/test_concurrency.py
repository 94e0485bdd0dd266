"""tflquant is safe to embed: quantizations running at once, in threads of one process or in
separate processes, give the bytes the same calls give one after another, and leave no
process-wide setting behind (BLAS threads restored, glibc's malloc thresholds untouched)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tflquant.api import quantize

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _jobs() -> list[tuple[str, Any, str, Any, dict[str, Any]]]:
    """(label, model, mode, data, options): digits_cnn (examples) in int8 and int16x8, and two
    small models of tests/models.py, each on its own data; bias correction, weight clipping
    (per-channel moments in the IR) and an LSTM's cell range (int8) all take part."""
    from models import cnn, lstm, sample_inputs

    from tflquant.tflite.writer import write_flatbuffer

    digits, calib = str(EXAMPLES / "digits_cnn.tflite"), str(EXAMPLES / "digits_cnn_calib.npz")
    c, l = cnn(), lstm()
    return [
        ("digits int8", digits, "int8", calib, {}),
        ("digits int16x8", digits, "int16x8", calib, {}),
        ("cnn int8 clip", write_flatbuffer(c), "int8", sample_inputs(c, 48, seed=5), {"clip_weights": True, "bias_correction": True}),
        ("lstm int8", write_flatbuffer(l), "int8", sample_inputs(l, 24, seed=6), {}),
    ]


def quantize_job(model: Any, mode: str, data: Any, options: dict[str, Any]) -> tuple[bytes, bool, int | None, int | None]:
    """One quantization (top level: a spawned process imports it): (model bytes, whether
    glibc's thresholds were set in this process, BLAS threads before and after)."""
    from tflquant.calibration import heap
    from tflquant.calibration.blas import current_blas_threads

    before = current_blas_threads()
    out = quantize(model, mode=mode, representative_dataset=data, **options).model
    return out, bool(heap._done), before, current_blas_threads()


def test_quantizations_in_threads_and_processes_give_the_sequential_bytes() -> None:
    jobs = _jobs()
    sequential = [quantize_job(m, mode, d, o)[0] for _, m, mode, d, o in jobs]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:  # all four at once in one process
        threaded = list(pool.map(lambda j: quantize_job(*j[1:]), jobs))
    for (label, *_), seq, (got, _, _, _) in zip(jobs, sequential, threaded):
        assert got == seq, f"{label}: a quantization in a thread gave other bytes than alone"

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        spawned = list(pool.map(quantize_job, *zip(*(j[1:] for j in jobs))))
    for (label, *_), seq, (got, heap_set, before, after) in zip(jobs, sequential, spawned):
        assert got == seq, f"{label}: a quantization in another process gave other bytes"
        assert not heap_set, "tflquant.quantize changed glibc's malloc thresholds (opt-in only)"
        assert before == after, "tflquant.quantize left BLAS with another thread count"


@pytest.mark.parametrize("shared_model", ["small_unet", "tiny_transformer"], indirect=True)
def test_shared_models_in_threads_give_the_sequential_bytes(shared_model: Path) -> None:
    """Models big enough for the parallel paths (sample ranges over the kernels' worker
    threads, split kernels), as the issue tried them: int16x8 and int8 with clipped weights,
    next to digits_cnn, all at once."""
    model, calib = str(shared_model / "float.tflite"), str(shared_model / "calib.npz")
    digits, digits_calib = str(EXAMPLES / "digits_cnn.tflite"), str(EXAMPLES / "digits_cnn_calib.npz")
    jobs = [
        (model, "int16x8", calib, {}),
        (model, "int8", calib, {"clip_weights": True, "bias_correction": True}),
        (digits, "int16x8", digits_calib, {}),
    ]
    sequential = [quantize_job(*j)[0] for j in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        threaded = [r[0] for r in pool.map(lambda j: quantize_job(*j), jobs)]
    assert threaded == sequential


def test_blas_thread_count_is_shared_safely_and_restored() -> None:
    """Calls asking for the same count run together; one asking for another count waits
    until they have left, and the count the process had comes back at the end."""
    from tflquant.calibration.blas import blas_threads, current_blas_threads

    start = current_blas_threads()
    if start is None:
        pytest.skip("numpy does not use OpenBLAS here")  # nothing process-wide to guard
    seen: dict[str, list[int | None]] = {"one": [], "two": []}
    inside = threading.Barrier(3)
    order: list[str] = []

    def one() -> None:
        with blas_threads(1):
            inside.wait()
            time.sleep(0.2)
            seen["one"].append(current_blas_threads())
            with blas_threads(3):  # nested in this thread: runs under the outer count
                seen["one"].append(current_blas_threads())
            order.append("one left")

    def two() -> None:
        inside.wait()
        with blas_threads(2):
            order.append("two entered")
            seen["two"].append(current_blas_threads())

    threads = [threading.Thread(target=f) for f in (one, one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen["one"] == [1, 1, 1, 1] and seen["two"] == [2]
    assert order.index("two entered") > max(i for i, o in enumerate(order) if o == "one left")
    assert current_blas_threads() == start


def test_in_memory_statistics_belong_to_their_own_run() -> None:
    """Two pipelines in two threads, each annotating from its own statistics, never see
    each other's (the hand-over is a pass instance, not process state)."""
    from tflquant.calibration.stats import Range
    from tflquant.ir import make_context, parse_module, print_module
    from tflquant.pipeline import run_pipeline

    text = """func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
      %y = "tfl.relu"(%x) {names = ["y"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
      func.return %y : tensor<1x4xf32>
    }"""
    results: dict[int, str] = {}

    def run(i: int) -> None:
        for _ in range(20):
            m = parse_module(text, ctx=make_context())
            run_pipeline(make_context(), m, "annotate-calibration", stats={"x": Range.of(-i, i), "y": Range.of(0, i)})
            results.setdefault(i, print_module(m))
            assert print_module(m) == results[i]

    threads = [threading.Thread(target=run, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (1, 2, 3):
        assert f"<{-i}.0, {i}.0>" in results[i] and f"<0.0, {i}.0>" in results[i]
    # without statistics the pass leaves the module alone, whatever ran before
    m = parse_module(text, ctx=make_context())
    run_pipeline(make_context(), m, "annotate-calibration")
    assert "quant.stats" not in print_module(m)
