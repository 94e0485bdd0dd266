"""Reference interpreter: numpy kernels for the float semantics of the tfl ops, run batched.

    from tflquant.reference import Interpreter
    outputs = Interpreter(module).run([x], observer=record)   # x: (N, *input shape)
"""

from tflquant.reference.interpreter import Interpreter

__all__ = ["Interpreter"]
