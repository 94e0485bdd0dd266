"""Start-up cost: import xDSL's core, and the driver on top, the quick way.

A `tflquant quantize --mode dynamic` process spends most of its time starting; three costs
of importing xDSL are avoided when nobody can notice (`import_quietly`):

- asyncio. xDSL marks a few functions `@typing_extensions.deprecated` (builtin's
  `ContainerOf`, some irdl constraints, parser and rewriter methods). On Python < 3.13 that
  decorator runs `import asyncio.coroutines` for each, only to ask whether the function is a
  coroutine function, and the asyncio package drags in ssl, socket, subprocess, selectors,
  concurrent.futures and logging (~24 ms CPU, nothing tflquant uses). Placeholder `asyncio`
  and `asyncio.coroutines` modules answer that one question (`iscoroutinefunction`, from
  `inspect`, as asyncio's own does for plain functions) during the import and are removed
  after it, so a later `import asyncio` loads the real package as usual.
- Compiling dataclass methods. The dataclasses module compiles each generated `__init__`,
  `__eq__`, `__repr__`... from source text (xDSL's core: ~1100 methods, ~580 distinct
  texts, most of its import time). During the import the dataclasses module's own `exec` is
  a cache from text to code object (the same code run with the same globals: the same
  functions), for this process only: nothing is written to disk.
- Collections. The import makes tens of thousands of objects and next to no garbage; the
  collector is paused meanwhile (re-enabled after, unless it was off).

Measured on decoder_tiny (CPU, OpenBLAS held to one thread for steadiness): importing
`tflquant.quantize` 240 -> 140 ms with the code kept on disk between runs, which was dropped
(files written into the installation at run time outlive `pip uninstall`); asyncio ~24 ms,
the dataclass code ~15 ms, collections ~10 ms (the rest elsewhere: no entry-point scan, no observers).

Only when the process runs one Python thread (no other thread can import asyncio while the
placeholders are in place, define a dataclass or miss a collection), and not inside another
such import; otherwise a plain import. The placeholders only while asyncio is not loaded.
A host program that wants none of it sets TFLQUANT_PLAIN_IMPORT=1 (any value but 0) before the
first import.
`import_xdsl()` runs from `tflquant.dialects` (so before `tflquant.ir` and the dialects) and
in the command's subcommands; `import_quietly("tflquant.api")` / ("tflquant.compare") on
`tflquant.quantize` / `tflquant.compare_models`'s first use and in the command.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
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
    """Import `names` in order: when the process runs one Python thread, with the asyncio
    placeholders (if asyncio is not loaded), the dataclass code cache and the collector
    paused; otherwise (or inside another such import)
    plainly."""
    if all(name in sys.modules for name in names):
        return
    if _depth[0] or not _single_threaded() or os.environ.get("TFLQUANT_PLAIN_IMPORT", "0") not in ("", "0"):
        _plain(names)
        return
    cached_exec = _exec_with_cache()
    placeholders: dict[str, ModuleType] = {}
    collecting = gc.isenabled()
    failed = True
    _depth[0] += 1
    try:  # every change below is undone in `finally`, whatever stops the import (KeyboardInterrupt too)
        if "asyncio" not in sys.modules:
            placeholders = _asyncio_placeholders()
            sys.modules.update(placeholders)
        _dataclasses_exec(cached_exec)
        gc.disable()  # an import makes many objects and next to no garbage: no collections meanwhile
        _plain(names)
        failed = False
    except Exception:
        pass
    finally:
        _depth[0] -= 1
        _restore(placeholders, cached_exec)
        if collecting:
            gc.enable()
    if failed:
        _plain(names)  # whatever failed fails again without the window, with its own error


def _asyncio_placeholders() -> dict[str, ModuleType]:
    import inspect

    package = ModuleType("asyncio")
    coroutines = ModuleType("asyncio.coroutines")
    coroutines.iscoroutinefunction = inspect.iscoroutinefunction  # type: ignore[attr-defined]
    coroutines._is_coroutine = object()  # type: ignore[attr-defined]  # never read: xDSL marks no coroutine function
    package.coroutines = coroutines  # type: ignore[attr-defined]
    return {"asyncio": package, "asyncio.coroutines": coroutines}


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


def _restore(placeholders: dict[str, ModuleType], cached_exec: Callable[..., None]) -> None:
    for name, module in placeholders.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    dataclasses = sys.modules.get("dataclasses")  # (not _dataclasses_exec's answer: it may not have returned)
    if dataclasses is not None and vars(dataclasses).get("exec") is cached_exec:
        del dataclasses.exec  # type: ignore[attr-defined]
