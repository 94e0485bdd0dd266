"""tflquant: a post-training quantization compiler for TensorFlow Lite models."""

from tflquant.errors import TflquantError

__version__ = "0.1.0"

__all__ = ["TflquantError", "__version__"]
