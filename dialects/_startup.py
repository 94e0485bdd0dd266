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
  functions), started from the code objects the last such import compiled. Those are kept
  next to this module's bytecode as Python keeps .pyc files
  (`__pycache__/_startup.<tag>.<first module>.dataclasses`, marshal of text -> code with
  importlib's MAGIC_NUMBER; written atomically, not under PYTHONDONTWRITEBYTECODE, silently
  not where the folder is read-only; rewritten only when the texts change, e.g. another
  xDSL; a damaged or foreign file is ignored).
- Collections. The import makes tens of thousands of objects and next to no garbage; the
  collector is paused meanwhile (re-enabled after, unless it was off).

Measured on decoder_tiny (CPU, OpenBLAS held to one thread for steadiness): importing
`tflquant.quantize` 240 -> 140 ms, of which asyncio ~24 ms, the dataclass code ~50 ms from
the second start, collections ~10 ms (the rest elsewhere: no entry-point scan, no observers).

Only when the process runs one Python thread (no other thread can import asyncio while the
placeholders are in place, define a dataclass or miss a collection), and not inside another
such import; otherwise a plain import. The placeholders only while asyncio is not loaded.
A host program that wants none of it sets TFLQUANT_PLAIN_IMPORT=1 before the first import.
`import_xdsl()` runs from `tflquant.dialects` (so before `tflquant.ir` and the dialects) and
in the command's subcommands; `import_quietly("tflquant.api")` / ("tflquant.compare") on
`tflquant.quantize` / `tflquant.compare_models`'s first use and in the command.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import marshal
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
    placeholders (if asyncio is not loaded), the dataclass code cache (its file named after
    the first module) and the collector paused; otherwise (or inside another such import)
    plainly."""
    if all(name in sys.modules for name in names):
        return
    if _depth[0] or not _single_threaded() or os.environ.get("TFLQUANT_PLAIN_IMPORT"):
        _plain(names)
        return
    placeholders = _asyncio_placeholders() if "asyncio" not in sys.modules else {}
    sys.modules.update(placeholders)
    path = _cache_path(names[0])
    stored = _load_codes(path)
    used: dict[str, CodeType] = {}
    cached_exec = _exec_with_cache(stored, used)
    dataclasses = _dataclasses_exec(cached_exec)
    collecting = gc.isenabled()
    gc.disable()  # an import makes many objects and next to no garbage: no collections meanwhile
    _depth[0] += 1
    try:
        try:
            _plain(names)
            failed = False
        except Exception:
            failed = True
    finally:
        _depth[0] -= 1
        _restore(placeholders, dataclasses, cached_exec)
        if collecting:
            gc.enable()
    if failed:
        _plain(names)  # whatever failed fails again without the window, with its own error
    elif dataclasses is not None and path is not None and used.keys() != stored.keys():
        _store_codes(path, used)


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


def _exec_with_cache(stored: dict[str, CodeType] | None = None, used: dict[str, CodeType] | None = None) -> Callable[..., None]:
    """exec() that compiles each distinct source text once (as exec does: no __future__ flags
    of the caller, dataclasses.py has none), taking the code from `stored` when it has the
    text; every text it runs goes to `used` with its code."""
    stored = {} if stored is None else stored
    used = {} if used is None else used

    def cached_exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if globals is None:  # exec's defaults are its caller's namespaces
            caller = sys._getframe(1)
            globals, locals = caller.f_globals, caller.f_locals if locals is None else locals
        if isinstance(source, str):
            code = used.get(source) or stored.get(source)
            if code is None:
                code = compile(source, "<string>", "exec", dont_inherit=True)
            used[source] = code
            source = code
        exec(source, globals, locals)

    return cached_exec


def _cache_path(first_module: str) -> str | None:
    try:
        return importlib.util.cache_from_source(__file__)[: -len(".pyc")] + f".{first_module}.dataclasses"
    except (NotImplementedError, ValueError, TypeError):  # no cache tag, odd file names
        return None


def _load_codes(path: str | None) -> dict[str, CodeType]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            magic, codes = marshal.loads(f.read())
    except Exception:  # absent, unreadable or not ours: compile as usual
        return {}
    if magic != importlib.util.MAGIC_NUMBER or not isinstance(codes, dict):
        return {}
    return {k: v for k, v in codes.items() if isinstance(k, str) and isinstance(v, CodeType)}


def _store_codes(path: str, codes: dict[str, CodeType]) -> None:
    if sys.dont_write_bytecode:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps((importlib.util.MAGIC_NUMBER, codes)))
        os.replace(tmp, path)
    except OSError:  # a read-only installation: no cache, as for .pyc files
        try:
            os.remove(tmp)
        except OSError:
            pass


def _dataclasses_exec(cached_exec: Callable[..., None]) -> ModuleType | None:
    """Make `cached_exec` the dataclasses module's exec (it calls exec by its global name)."""
    import dataclasses

    if "exec" in vars(dataclasses) or not hasattr(dataclasses, "_create_fn"):
        return None  # someone else's exec, or a dataclasses that builds its methods otherwise
    dataclasses.exec = cached_exec  # type: ignore[attr-defined]
    return dataclasses


def _restore(placeholders: dict[str, ModuleType], dataclasses: ModuleType | None, cached_exec: Callable[..., None]) -> None:
    for name, module in placeholders.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    if dataclasses is not None and vars(dataclasses).get("exec") is cached_exec:
        del dataclasses.exec  # type: ignore[attr-defined]
