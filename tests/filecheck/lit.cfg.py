"""lit configuration for tflquant's FileCheck tests (run: `lit -v tests/filecheck`).

RUN lines use two substitutions, both bound to the Python running lit:
    // RUN: tflquant-opt %s -p some-pass | filecheck %s
`tflquant-opt` is `python -m tflquant.opt`, `filecheck` is the Python FileCheck.
"""

import os
import sys
import tempfile

import lit.formats

config.name = "tflquant"  # noqa: F821 (lit injects `config`)
config.test_format = lit.formats.ShTest(execute_external=False)  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.excludes = ["lit.cfg.py"]  # noqa: F821
config.test_source_root = os.path.dirname(os.path.abspath(__file__))  # noqa: F821
# Scratch files (%t) go outside the source tree.
config.test_exec_root = os.path.join(tempfile.gettempdir(), f"tflquant-lit-{os.getuid()}")  # noqa: F821

_py = sys.executable
# Only whole words: `%s` expands first, and its path contains "filecheck".
config.substitutions.append((r"(?<![\w/.-])tflquant-opt(?![\w/.-])", f"{_py} -m tflquant.opt"))  # noqa: F821
config.substitutions.append((r"(?<![\w/.-])filecheck(?![\w/.-])", f"{_py} -m filecheck"))  # noqa: F821

for var in ("PYTHONPATH", "HOME", "TFLQUANT_SHARED_MODELS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]  # noqa: F821
