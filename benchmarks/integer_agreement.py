"""Long sweep: integer reference interpreter vs LiteRT on many random quantized graphs.

    python benchmarks/integer_agreement.py [examples per configuration, default 300]

Prints, for int8 and 16x8, against LiteRT's builtin kernels and its default interpreter
(XNNPACK delegate), how many output elements agree exactly, differ by one unit in the last
place, or differ by more, and the worst case. tests/test_integer_kernels.py runs the same
check with fewer examples.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_integer_kernels import _agreement  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for mode in ("int8", "int16x8"):
        for delegates in (False, True):
            t = time.perf_counter()
            agg = _agreement(mode, delegates, n)
            where = "default (XNNPACK)" if delegates else "builtin kernels"
            print(f"{mode:8s} vs LiteRT {where:18s} {n} graphs: {agg.summary()}  [{time.perf_counter() - t:.0f}s]")
            if agg.worst > 1:
                print("  worst case:\n" + "\n".join("    " + ln for ln in agg.worst_case.splitlines()))


if __name__ == "__main__":
    main()
