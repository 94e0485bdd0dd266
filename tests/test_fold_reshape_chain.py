"""Property test of fold-reshape-chain (the worked example in README.md, "Adding a pass").

For random tfl graphs rich in reshapes: the pass keeps the module valid, computes the
same values bit for bit, leaves no RESHAPE reading a RESHAPE, and is idempotent and
deterministic.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from tflquant import testing as tt
from tflquant.dialects import tfl
from tflquant.ir import make_context, parse_module, print_module
from tflquant.pipeline import run_pipeline
from tflquant.reference import Interpreter

OPS = ("RESHAPE", "RESHAPE", "RELU", "ADD", "FULLY_CONNECTED", "CONV_2D", "CONCATENATION", "SOFTMAX")


def fold(module):  # noqa: ANN001, ANN201
    m = module.clone()
    run_pipeline(make_context(), m, "fold-reshape-chain")
    return m


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tt.graphs_with_data(ops=OPS, max_ops=8))
def test_fold_reshape_chain_preserves_values_and_folds(g) -> None:  # noqa: ANN001
    module, data = g
    folded = fold(module)
    folded.verify()

    # same values, bit for bit
    before = Interpreter(module).run(data)
    after = Interpreter(folded).run(data)
    for a, b in zip(before, after):
        assert np.array_equal(a, b)

    # no reshape reads a reshape any more
    for op in folded.walk():
        if isinstance(op, tfl.ReshapeOp):
            assert not isinstance(op.inputs[0].owner, tfl.ReshapeOp)

    # idempotent and deterministic (same input, same text)
    text = print_module(folded)
    assert print_module(fold(folded)) == text
    assert print_module(fold(parse_module(print_module(module)))) == text
