"""The import graph between tflquant's parts runs one way, and passes stand alone.

Parts, from the bottom up (a part may import its own modules and the parts below it):

  ir           tflquant.errors, fileio, ir, parallel, quant_math, tflite.schema, tflquant.dialects
  tflite       tflquant.tflite (reader, writer, versions, verify, ...)
  reference    tflquant.reference (numpy kernels and interpreters)
  calibration  tflquant.calibration
  passes       tflquant.passes
  driver       api, cli, opt, pipeline, compare, scoring, testing, the package itself

Passes call the reference kernels only through `tflquant.reference`'s public names, and no
pass imports another pass: what several passes share lives in a shared module
(`tflquant.passes._<what it does>`, which imports no pass either) or below the passes.
Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"compiler": "tflquant", "passes": "tflquant.passes", "dialects": "tflquant.dialects"}
ORDER = ("ir", "tflite", "reference", "calibration", "passes", "driver")
IR_MODULES = {"tflquant.errors", "tflquant.fileio", "tflquant.ir", "tflquant.parallel", "tflquant.quant_math", "tflquant.tflite.schema"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def part(module: str) -> str:
    if module in IR_MODULES or module.startswith("tflquant.dialects"):
        return "ir"
    for name in ("tflite", "reference", "calibration", "passes"):
        if module == f"tflquant.{name}" or module.startswith(f"tflquant.{name}."):
            return name
    return "driver"


def imports(module: str) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, names imported from it) for every tflquant import."""
    tree = ast.parse(MODULES[module].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("tflquant"):
            names = [a.name for a in node.names]
            # `from tflquant.reference import float_kernels` imports a module
            subs = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in MODULES]
            if subs:
                out += [(s, node.lineno, []) for s in subs]
            else:
                out.append((node.module, node.lineno, names))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno, []) for a in node.names if a.name.startswith("tflquant")]
    return out


def is_pass_module(module: str) -> bool:
    return module.startswith("tflquant.passes.") and not module.rsplit(".", 1)[1].startswith("_")


def test_the_parts_are_all_found() -> None:
    found = {part(m) for m in MODULES}
    assert found == set(ORDER)
    assert sum(is_pass_module(m) for m in MODULES) >= 20


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module: str) -> None:
    mine = ORDER.index(part(module))
    wrong = [
        f"line {line}: {target} ({part(target)})"
        for target, line, _ in imports(module)
        if ORDER.index(part(target)) > mine
    ]
    assert not wrong, f"{module} ({part(module)}) imports parts above it: {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("tflquant.passes")))
def test_passes_stand_alone(module: str) -> None:
    import tflquant.reference

    public = set(tflquant.reference.__all__)
    problems = []
    for target, line, names in imports(module):
        if is_pass_module(target) and target != module:
            problems.append(f"line {line}: imports the pass module {target}")
        if target.startswith("tflquant.reference."):
            problems.append(f"line {line}: reaches into {target} (use tflquant.reference's public names)")
        if target == "tflquant.reference" and not set(names) <= public:
            problems.append(f"line {line}: imports {sorted(set(names) - public)} from tflquant.reference, which does not export them")
    assert not problems, f"{module}: {problems}"


def test_the_checks_catch_a_violation(tmp_path: Path) -> None:
    """The checker itself: a pass importing another pass and a kernel table is caught."""
    fake = "tflquant.passes.fake_pass"
    source = "from tflquant.passes.rewrite_integer import X\nfrom tflquant.reference import float_kernels as fk\n"
    path = tmp_path / "fake_pass.py"
    path.write_text(source)
    MODULES[fake] = path
    try:
        with pytest.raises(AssertionError, match="imports the pass module tflquant.passes.rewrite_integer"):
            test_passes_stand_alone(fake)
        with pytest.raises(AssertionError, match="reaches into tflquant.reference.float_kernels"):
            test_passes_stand_alone(fake)
    finally:
        del MODULES[fake]
    low = "tflquant.tflite.fake"
    path2 = tmp_path / "fake_low.py"
    path2.write_text("def f():\n    from tflquant.passes import get_all_passes\n")
    MODULES[low] = path2
    try:
        with pytest.raises(AssertionError, match="imports parts above it"):
            test_imports_run_one_way(low)
    finally:
        del MODULES[low]
