"""Start-up: what a fresh process imports and sets up for a quantization without data.

A `tflquant quantize --mode dynamic` process spends most of its time starting, so the modules
only other modes need (calibration's observers and driver, the reference interpreters, the
compare / mixed-precision / debug-report drivers) stay unimported, xDSL's core is imported
with the collector paused and each dataclass method text compiled once
(tflquant.dialects._startup), and the command freezes its start-up objects out of
the garbage collector's sight (cli._own_process). Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "digits_cnn.tflite"

# modules a quantization without data must not import
OTHER_MODES = (
    "tflquant.calibration.driver",
    "tflquant.calibration.dataset",
    "tflquant.calibration.observers",
    "tflquant.calibration.auto",
    "tflquant.reference.interpreter",
    "tflquant.reference.integer_interpreter",
    "tflquant.compare",
    "tflquant.mixed_precision",
    "tflquant.debug_report",
    "importlib.metadata",  # no installed distribution declares a tflquant pass here
)


def _run(code: str, **env: str) -> dict:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env={**environ, **env})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


# records, when xDSL's irdl is first imported (inside xDSL's core import), whether the collector
# runs and whether the dataclasses module's exec is swapped: [False, True] the quick way,
# [True, False] plainly
_SPY = (
    "import gc, json, sys, dataclasses, importlib.abc\n"
    "seen = []\n"
    "class Spy(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name == 'xdsl.irdl' and not seen:\n"
    "            seen.append([gc.isenabled(), 'exec' in vars(dataclasses)])\n"
    "sys.meta_path.insert(0, Spy())\n"
)


def test_import_tflquant_alone_is_light() -> None:
    out = _run("import sys, json, tflquant; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('xdsl', 'numpy'))))")
    assert out == []


def test_quantize_without_data_imports_only_what_it_needs(tmp_path: Path) -> None:
    out = _run(
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import tflquant\n"
        f"r = tflquant.quantize({str(MODEL)!r}, mode='dynamic', weight_bits=4, granularity='channel')\n"
        f"r.save({str(tmp_path / 'q.tflite')!r})\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    assert "tflquant.api" in out and "xdsl.dialects.func" in out  # it did run
    assert [m for m in OTHER_MODES if m in out] == []
    assert (tmp_path / "q.tflite").stat().st_size > 0


def test_command_imports_only_what_it_needs_and_unfreezes(tmp_path: Path) -> None:
    out = _run(
        "import gc, sys, json\n"
        "before = set(sys.modules)\n"
        "from tflquant.cli import main\n"
        f"rc = main(['quantize', {str(MODEL)!r}, '-o', {str(tmp_path / 'q.tflite')!r}, '--mode', 'dynamic', '-q'])\n"
        "import os\n"
        "print(json.dumps([rc, gc.get_freeze_count(), sorted(set(sys.modules) - before), os.environ.get('OPENBLAS_THREAD_TIMEOUT')]))\n"
    )
    rc, frozen, modules, timeout = out
    assert rc == 0 and frozen == 0 and timeout is None  # main(argv) from another program: nothing frozen, its environment as it was
    assert [m for m in OTHER_MODES if m in modules] == []


def test_command_as_the_program_tunes_its_process(tmp_path: Path) -> None:
    """Start-up objects frozen; OpenBLAS's spin time shortened unless the user set one."""
    code = (
        "import gc, os, sys, json\n"
        f"sys.argv = ['tflquant', 'quantize', {str(MODEL)!r}, '-o', {str(tmp_path / 'q.tflite')!r}, '--mode', 'dynamic', '-q']\n"
        "from tflquant.cli import main\n"
        "rc = main()\n"
        "print(json.dumps([rc, gc.get_freeze_count() > 1000, os.environ.get('OPENBLAS_THREAD_TIMEOUT')]))\n"
    )
    assert _run(code) == [0, True, "24"]
    assert _run(code, OPENBLAS_THREAD_TIMEOUT="28") == [0, True, "28"]


def test_xdsl_is_imported_the_quick_way_alone() -> None:
    assert _run(_SPY + "import tflquant.ir\nprint(json.dumps(seen[0] + [gc.isenabled()]))\n") == [False, True, True]


def test_with_another_thread_running_xdsl_is_imported_plainly() -> None:
    # another thread could define a dataclass or need a collection meanwhile: plainly then
    out = _run(
        _SPY + "import threading\n"
        "go = threading.Event(); t = threading.Thread(target=go.wait); t.start()\n"
        "import tflquant.ir\n"
        "go.set(); t.join()\n"
        "print(json.dumps(seen[0]))\n"
    )
    assert out == [True, False]


def test_plain_import_on_request() -> None:
    # TFLQUANT_PLAIN_IMPORT=1 (not 0): no swapped exec, the collector untouched
    code = _SPY + "import tflquant.ir\nprint(json.dumps(seen[0] + ['exec' in vars(dataclasses), gc.isenabled()]))\n"
    assert _run(code, TFLQUANT_PLAIN_IMPORT="1") == [True, False, False, True]
    assert _run(code, TFLQUANT_PLAIN_IMPORT="0") == [False, True, False, True]


def test_entry_point_precheck_finds_every_declaring_distribution(tmp_path: Path, monkeypatch) -> None:
    """passes._may_declare_entry_points: False only when importlib.metadata would find nothing."""
    from tflquant.passes import _may_declare_entry_points

    site = tmp_path / "site"
    (site / "other-1.0.dist-info").mkdir(parents=True)
    (site / "other-1.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n")
    (site / "plain-2.0.dist-info").mkdir()  # no entry_points.txt
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "missing")])
    assert not _may_declare_entry_points()
    (site / "Plug-1.0.EGG-INFO").mkdir()
    (site / "Plug-1.0.EGG-INFO" / "entry_points.txt").write_text("[tflquant.passes]\nmy-pass = plug:MyPass\n")
    assert _may_declare_entry_points()
    zipped = tmp_path / "lib.zip"
    zipped.write_bytes(b"PK")  # a file on sys.path: importlib.metadata looks inside, so must the scan
    monkeypatch.setattr(sys, "path", [str(zipped)])
    assert _may_declare_entry_points()
    monkeypatch.setattr(sys, "path", [str(tmp_path / "x.egg")])
    assert _may_declare_entry_points()


def test_dataclass_methods_from_the_compile_cache_are_the_same() -> None:
    """_startup's exec for dataclasses: one compile per distinct text, each class's own globals."""
    import dataclasses

    from tflquant.dialects import _startup

    cached = _startup._exec_with_cache()
    assert _startup._dataclasses_exec(cached) is dataclasses
    assert _startup._dataclasses_exec(_startup._exec_with_cache()) is None  # never over another exec

    @dataclasses.dataclass(frozen=True)
    class A:
        x: int
        y: str = "a"

    @dataclasses.dataclass(frozen=True)
    class B:
        x: int
        y: str = "a"

    _startup._restore(cached)
    assert "exec" not in vars(dataclasses)

    @dataclasses.dataclass(frozen=True)
    class C:
        x: int
        y: str = "a"

    assert A.__init__.__code__ is B.__init__.__code__  # compiled once
    assert A.__init__.__code__.co_code == C.__init__.__code__.co_code  # as exec compiles it
    assert A.__init__.__globals__ is C.__init__.__globals__
    assert (A(1), repr(A(2, "b")), A(1) == A(1), A(1) == A(2), hash(A(1)) == hash(A(1))) == (A(1), "test_dataclass_methods_from_the_compile_cache_are_the_same.<locals>.A(x=2, y='b')", True, False, True)
    try:
        A(1).x = 2
        raise AssertionError("frozen")
    except dataclasses.FrozenInstanceError:
        pass
    namespace: dict = {}
    cached("v = 1 / 2", namespace)  # true division whatever the caller's __future__ flags
    assert namespace["v"] == 0.5


def test_nothing_of_the_import_is_left_behind() -> None:
    out = _run(
        "import gc, json, sys, dataclasses, tflquant.ir\n"
        "print(json.dumps(['exec' in vars(dataclasses), gc.isenabled()]))\n"
    )
    assert out == [False, True]
    assert _run("import gc, json; gc.disable(); import tflquant.ir; print(json.dumps(gc.isenabled()))") is False


def test_an_interrupt_at_any_point_leaves_nothing_behind() -> None:
    """KeyboardInterrupt while the exec is swapped in or during the import proper (tflquant.api:
    xDSL's core came with tflquant.dialects)."""
    out = _run(
        "import gc, json, sys, dataclasses\n"
        "from tflquant.dialects import _startup\n"
        "def interrupted(cached_exec):\n    swap(cached_exec)\n    raise KeyboardInterrupt\n"
        "swap, _startup._dataclasses_exec = _startup._dataclasses_exec, interrupted\n"
        "try:\n    _startup.import_quietly('tflquant.api')\nexcept KeyboardInterrupt:\n    pass\n"
        "_startup._dataclasses_exec = swap\n"
        "def stop(*a):\n    raise KeyboardInterrupt\n"
        "plain, _startup._plain = _startup._plain, stop\n"
        "try:\n    _startup.import_quietly('tflquant.api')\nexcept KeyboardInterrupt:\n    pass\n"
        "_startup._plain = plain\n"
        "print(json.dumps(['exec' in vars(dataclasses), gc.isenabled(), _startup._depth[0], 'tflquant.api' in sys.modules]))\n"
    )
    assert out == [False, True, 0, False]
