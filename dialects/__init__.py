"""IR dialects: `tfl` (TFLite builtin ops) and `quant` (quantized types, stats, Q/DQ)."""

from tflquant.dialects._startup import import_xdsl

import_xdsl()  # xDSL's core the quick way when nobody else can notice (see _startup)
