"""`tflquant.calibration.calibrate` stays the calibrate function whatever was imported before.

The driver module once had the function's name: Python's import system then bound the
package's `calibrate` to the module when it was first imported (by the function's own lazy
import, by `tflquant.quantize` with data, or by a user), and a second call failed with
"'module' object is not callable". Each order runs in a fresh interpreter, so that nothing
imported by other tests decides it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import numpy as np
from tflquant.tflite.reader import load_model
m = load_model({model!r})
data = {{"serving_default_keras_tensor:0": np.load({calib!r})[np.load({calib!r}).files[0]][:4]}}
"""

ORDERS = {
    "called twice": "import tflquant.calibration as c\na = c.calibrate(m, data)\nb = c.calibrate(m, data)",
    "after the driver's import": "import tflquant.calibration.driver\nimport tflquant.calibration as c\na = b = c.calibrate(m, data)",
    "after quantize with data": (
        "import tflquant, tflquant.calibration as c\n"
        "tflquant.quantize({model!r}, mode='int8', representative_dataset=data)\n"
        "a = b = c.calibrate(m, data)"
    ),
    "from-import after a call": (
        "import tflquant.calibration as c\nc.calibrate(m, data)\nfrom tflquant.calibration import calibrate\na = b = calibrate(m, data)"
    ),
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_calibrate_is_the_function_in_any_import_order(order: str) -> None:
    model, calib = str(ROOT / "examples" / "digits_cnn.tflite"), str(ROOT / "examples" / "digits_cnn_calib.npz")
    script = PRELUDE.format(model=model, calib=calib) + ORDERS[order].format(model=model) + textwrap.dedent("""
        import tflquant.calibration as c2
        assert callable(c2.calibrate), type(c2.calibrate)
        assert a.stats and a.stats.keys() == b.stats.keys(), (sorted(a.stats)[:3], sorted(b.stats)[:3])
        print("ok", len(a.stats))
        """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith("ok"), p.stderr[-2000:]
    assert int(p.stdout.split()[1]) > 5  # statistics of the model's tensors, not of nothing
