"""Passes from outside the package (README, "A pass outside the tflquant package"):
`register_pass`, `tflquant-opt --load FILE`, and an entry point in the group
`tflquant.passes`, each usable by name in a pipeline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tflquant import passes
from tflquant.ir import make_context, parse_module, print_module
from tflquant.pipeline import run_pipeline

MODULE = """
func.func @f(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %y = "tfl.relu"(%x) {names = ["y"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %y : tensor<1x4xf32>
}
"""

# A pass that renames every `tfl.relu` result to "renamed": visible in the printed IR.
PLUGIN = '''
from dataclasses import dataclass
from xdsl.dialects.builtin import ArrayAttr, StringAttr
from xdsl.passes import ModulePass
from tflquant.passes import register_pass


@register_pass
@dataclass(frozen=True)
class {cls}(ModulePass):
    """Every RELU result is named 'renamed'."""
    name = "{name}"

    def apply(self, ctx, op):
        for o in op.walk():
            if o.name == "tfl.relu":
                o.attributes["names"] = ArrayAttr([StringAttr("renamed")])
'''


def _plugin(tmp_path: Path, module: str, name: str) -> Path:
    path = tmp_path / f"{module}.py"
    path.write_text(PLUGIN.format(cls=module.title().replace("_", ""), name=name))
    return path


def test_register_pass_makes_a_pass_usable_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passes, "_EXTERNAL", dict(passes._EXTERNAL))
    monkeypatch.syspath_prepend(str(tmp_path))
    _plugin(tmp_path, "reg_plugin", "rename-relu")
    with pytest.raises(Exception, match="rename-relu"):
        run_pipeline(make_context(), parse_module(MODULE), "rename-relu")
    __import__("reg_plugin")
    m = parse_module(MODULE)
    run_pipeline(make_context(), m, "rename-relu")
    assert 'names = ["renamed"]' in print_module(m)


def test_tflquant_opt_load_runs_a_pass_from_a_file(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, "file_plugin", "rename-from-file")
    src = tmp_path / "m.mlir"
    src.write_text(MODULE)
    opt = [sys.executable, "-c", "from tflquant.opt import main; raise SystemExit(main())"]
    out = subprocess.run([*opt, "--load", str(plugin), str(src), "-p", "rename-from-file"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'names = ["renamed"]' in out.stdout
    listed = subprocess.run([*opt, "--load", str(plugin), "--list-passes"], capture_output=True, text=True)
    assert "rename-from-file" in listed.stdout and "Every RELU result is named 'renamed'." in listed.stdout
    bad = subprocess.run([*opt, "--load", str(tmp_path / "missing.py"), str(src)], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.py: no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_entry_point_passes_are_found(tmp_path: Path) -> None:
    """A distribution on sys.path declaring `[tflquant.passes] name = module:Class`."""
    _plugin(tmp_path, "ep_plugin", "rename-by-entry-point")
    dist = tmp_path / "ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tflquant.passes]\nrename-by-entry-point = ep_plugin:EpPlugin\n")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from tflquant.ir import make_context, parse_module, print_module
        from tflquant.passes import get_all_passes
        from tflquant.pipeline import run_pipeline
        assert "rename-by-entry-point" in get_all_passes()
        m = parse_module({MODULE!r})
        run_pipeline(make_context(), m, "rename-by-entry-point")
        print(print_module(m))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'names = ["renamed"]' in out.stdout
