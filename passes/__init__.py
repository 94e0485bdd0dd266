"""tflquant's passes: one xDSL ModulePass per file, the pass name is the file name in kebab-case.

`get_all_passes()` maps every pass name to a loader (modules are imported on first use).
Passes from outside the package join the registry with `register_pass(MyPass)` or an entry
point in the group `tflquant.passes` (`name = "pkg.module:MyPass"`); after that they work by
name in `tflquant-opt` and in pipelines given to the API.

The registry is process-wide: `register_pass` is meant for import time (a plugin module's
top level, before quantizations run in threads); after that it is only read, and
`get_all_passes()` returns a copy. The discovered passes are found once per process.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable

from xdsl.passes import ModulePass

GROUP = "tflquant.passes"

_EXTERNAL: dict[str, Callable[[], type[ModulePass]]] = {}


def register_pass(cls: type[ModulePass]) -> type[ModulePass]:
    """Make a pass usable by name (works as a class decorator too)."""
    _EXTERNAL[cls.name] = lambda: cls
    return cls


def _loader(module: str, pass_name: str) -> Callable[[], type[ModulePass]]:
    def load() -> type[ModulePass]:
        mod = importlib.import_module(f"{__name__}.{module}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, ModulePass) and getattr(obj, "name", None) == pass_name:
                return obj
        raise ImportError(f"{__name__}.{module} defines no ModulePass named {pass_name!r}")

    return load


def _may_declare_entry_points() -> bool:
    """False when no installed distribution can declare a pass: none of the `*.dist-info` /
    `*.egg-info` folders on sys.path has an entry_points.txt naming the group. Where
    importlib.metadata could look further (a zip or egg on sys.path, a meta-path finder of
    its own) the answer is True and it looks. ~1.5 ms, against ~18 ms CPU for importing
    importlib.metadata and scanning with it, which a no-data quantization paid."""
    from importlib.machinery import PathFinder

    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return True
    needle = GROUP.encode()
    for entry in sys.path:
        root = entry or "."
        if not isinstance(entry, str) or entry.lower().endswith(".egg"):
            return True
        try:
            names = os.listdir(root)
        except OSError:
            if os.path.exists(root):  # a zip file
                return True
            continue
        for name in names:
            if name.lower().endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(root, name, "entry_points.txt"), "rb") as f:
                        if needle in f.read():
                            return True
                except OSError:
                    continue
    return False


@functools.cache
def _installed() -> dict[str, Callable[[], type[ModulePass]]]:
    """The package's own passes and the entry points, found once per process (scanning the
    installed distributions for entry points costs ~7 ms, every pipeline asks)."""
    passes: dict[str, Callable[[], type[ModulePass]]] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            name = info.name.replace("_", "-")
            passes[name] = _loader(info.name, name)
    if _may_declare_entry_points():
        from importlib.metadata import entry_points

        for ep in entry_points(group=GROUP):
            passes[ep.name] = lambda ep=ep: ep.load()
    return passes


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every available pass: the package's own, entry points, and registered ones."""
    return {**_installed(), **_EXTERNAL}
