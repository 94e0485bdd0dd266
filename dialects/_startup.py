"""Start-up cost: import xDSL's core, and the driver on top, the quick way.

A `tflquant quantize --mode dynamic` process spends most of its time starting; two costs of
importing xDSL are avoided when nobody can notice (`import_quietly`):

- Compiling dataclass methods. The dataclasses module compiles each generated `__init__`,
  `__eq__`, `__repr__`... from source text (xDSL's core: ~1100 methods, ~580 distinct
  texts, most of its import time). During the import the dataclasses module's own `exec` is
  a cache from text to code object (the same code run with the same globals: the same
  functions), for this process only: nothing is written to disk.
- Collections. The import makes tens of thousands of objects and next to no garbage; the
  collector is paused meanwhile (re-enabled after, unless it was off).

Both are undone when the import ends, whatever ends it (KeyboardInterrupt too). Only when the
process runs one Python thread (no other thread can define a dataclass or miss a collection
meanwhile), and not inside another such import; otherwise a plain import. A host program that
wants none of it sets TFLQUANT_PLAIN_IMPORT=1 (any value but 0) before the first import.
`import_xdsl()` runs from `tflquant.dialects` (so before `tflquant.ir` and the dialects);
`import_quietly("tflquant.api")` / ("tflquant.compare") on `tflquant.quantize` /
`tflquant.compare_models`'s first use and in the command.

(typing_extensions before 4.16 imported asyncio, ~24 ms, for each `@deprecated` function xDSL
marks; 4.16, what a fresh install gets, no longer does, so tflquant leaves that alone.)
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Callable
from types import CodeType, ModuleType
from typing import Any

_CORE = ("xdsl.dialects.builtin", "xdsl.dialects.func")


def _single_threaded() -> bool:
    frames = getattr(sys, "_current_frames", None)
    return frames is not None and len(frames()) == 1


def import_xdsl() -> None:
    """Import xDSL's builtin and func dialects (once; later calls return at once)."""
    import_quietly(*_CORE)


_depth = [0]  # windows open (in the one thread there is while one is)


def import_quietly(*names: str) -> None:
    """Import `names` in order: when the process runs one Python thread, with the dataclass
    code cache and the collector paused; otherwise (or inside another such import) plainly."""
    if all(name in sys.modules for name in names):
        return
    if _depth[0] or not _single_threaded() or os.environ.get("TFLQUANT_PLAIN_IMPORT", "0") not in ("", "0"):
        _plain(names)
        return
    cached_exec = _exec_with_cache()
    collecting = gc.isenabled()
    failed = True
    _depth[0] += 1
    try:  # every change below is undone in `finally`, whatever stops the import (KeyboardInterrupt too)
        _dataclasses_exec(cached_exec)
        gc.disable()  # an import makes many objects and next to no garbage: no collections meanwhile
        _plain(names)
        failed = False
    except Exception:
        pass
    finally:
        _depth[0] -= 1
        _restore(cached_exec)
        if collecting:
            gc.enable()
    if failed:
        _plain(names)  # whatever failed fails again without the window, with its own error


def _plain(names: tuple[str, ...]) -> None:
    for name in names:
        importlib.import_module(name)


def _exec_with_cache() -> Callable[..., None]:
    """exec() that compiles each distinct source text once (as exec does: no __future__ flags
    of the caller, dataclasses.py has none) and runs the same code object for a repeat."""
    codes: dict[str, CodeType] = {}

    def cached_exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if globals is None:  # exec's defaults are its caller's namespaces
            caller = sys._getframe(1)
            globals, locals = caller.f_globals, caller.f_locals if locals is None else locals
        if isinstance(source, str):
            code = codes.get(source)
            if code is None:
                code = codes[source] = compile(source, "<string>", "exec", dont_inherit=True)
            source = code
        exec(source, globals, locals)

    return cached_exec


def _dataclasses_exec(cached_exec: Callable[..., None]) -> ModuleType | None:
    """Make `cached_exec` the dataclasses module's exec (it calls exec by its global name)."""
    import dataclasses

    if "exec" in vars(dataclasses) or not hasattr(dataclasses, "_create_fn"):
        return None  # someone else's exec, or a dataclasses that builds its methods otherwise
    dataclasses.exec = cached_exec  # type: ignore[attr-defined]
    return dataclasses


def _restore(cached_exec: Callable[..., None]) -> None:
    dataclasses = sys.modules.get("dataclasses")  # (not _dataclasses_exec's answer: it may not have returned)
    if dataclasses is not None and vars(dataclasses).get("exec") is cached_exec:
        del dataclasses.exec  # type: ignore[attr-defined]
