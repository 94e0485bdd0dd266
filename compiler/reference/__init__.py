"""Reference interpreter: numpy kernels for the float semantics of the tfl ops, run batched.

    from tflquant.reference import Interpreter
    outputs = Interpreter(module).run([x], observer=record)   # x: (N, *input shape)

Passes use the kernels only through the one-op entry points below (see `single_op`).
"""

from tflquant.reference.interpreter import Interpreter
from tflquant.reference.single_op import (
    float_result_dtype,
    has_float_kernel,
    is_parameter,
    run_float_op,
    run_integer_op,
)

__all__ = ["Interpreter", "float_result_dtype", "has_float_kernel", "is_parameter", "run_float_op", "run_integer_op"]
