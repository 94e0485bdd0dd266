"""tflquant: a post-training quantization compiler for TensorFlow Lite models."""

from __future__ import annotations

from typing import Any

from tflquant.errors import TflquantError

__version__ = "0.1.0"

__all__ = ["Comparison", "QuantizationReport", "QuantizationResult", "TflquantError", "__version__", "compare_models", "quantize"]


def __getattr__(name: str) -> Any:
    # The API pulls in xDSL and the passes: import it on first use, not with the package.
    if name in ("quantize", "QuantizationResult", "QuantizationReport"):
        from tflquant.dialects._startup import import_quietly

        import_quietly("tflquant.api")
        from tflquant import api

        return getattr(api, name)
    if name in ("compare_models", "Comparison"):  # per-tensor errors, CSV and HTML debug reports
        from tflquant.dialects._startup import import_quietly

        import_quietly("tflquant.compare")
        from tflquant import compare

        return getattr(compare, name)
    raise AttributeError(f"module 'tflquant' has no attribute {name!r}")
