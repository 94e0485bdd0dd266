"""IR dialects: `tfl` (TFLite builtin ops) and `quant` (quantized types, stats, Q/DQ)."""
