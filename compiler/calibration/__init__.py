"""Calibration: representative data in, per-tensor ranges out.

- `dataset`: load `.npz` files and TF-style iterables, check them against the model inputs,
  batch them;
- `observers`: what is recorded per tensor (running min/max, NaN/Inf skipped);
- `driver`: `calibrate` runs the data through the reference interpreter and returns the statistics;
- `stats`: the statistics (Range) and their file format (JSON keyed by tensor name);
  `annotate-calibration` attaches them to the IR.
"""

# Calibration samples run through the reference interpreter at once. 64 (split into ranges of
# 8 samples for the 2 threads) against 32 (ranges of 16), measured cold on 2 cores: small_unet
# quantize -8% and 95 MB peak instead of 121 MB; mobilenet +4%, the others level.
DEFAULT_BATCH_SIZE = 64

__all__ = ["MinMaxObserver", "Range", "Stats", "calibrate", "read_stats", "write_stats"]

# The names below come from their modules on first use: `tflquant.quantize` without data (and
# the command line, which reads DEFAULT_BATCH_SIZE) never imports the observers.
_LAZY = {"MinMaxObserver": "observers", "Range": "stats", "Stats": "stats", "read_stats": "stats", "write_stats": "stats"}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def calibrate(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See tflquant.calibration.driver.calibrate (imported lazily: it needs the interpreter)."""
    from tflquant.calibration.driver import calibrate as run

    return run(*args, **kwargs)
