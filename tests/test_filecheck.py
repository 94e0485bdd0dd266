"""Runs every FileCheck test under tests/filecheck with lit (part of the README test command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FILECHECK_DIR = Path(__file__).resolve().parent / "filecheck"


def test_filecheck_suite() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from lit.main import main; main()", "-v", str(FILECHECK_DIR)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"lit reported failing FileCheck tests:\n{out}"
    assert "Passed" in out, f"lit ran no tests:\n{out}"
