"""Calibration: representative data in, per-tensor ranges out.

- `dataset`: load `.npz` files and TF-style iterables, check them against the model inputs,
  batch them;
- `observers`: what is recorded per tensor (running min/max, NaN/Inf skipped);
- `calibrate`: runs the data through the reference interpreter and returns the statistics;
- `stats`: the statistics file format (JSON keyed by tensor name) and the in-memory
  hand-over to the `annotate-calibration` pass.
"""

from tflquant.calibration.observers import MinMaxObserver
from tflquant.calibration.stats import Range, Stats, provide_stats, read_stats, write_stats

__all__ = ["MinMaxObserver", "Range", "Stats", "calibrate", "provide_stats", "read_stats", "write_stats"]


def calibrate(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See tflquant.calibration.calibrate.calibrate (imported lazily: it needs the interpreter)."""
    from tflquant.calibration.calibrate import calibrate as run

    return run(*args, **kwargs)
