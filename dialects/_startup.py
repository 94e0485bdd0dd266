"""Start-up cost: import xDSL's core without pulling in asyncio.

xDSL marks a few functions `@typing_extensions.deprecated` (builtin's `ContainerOf`, some
irdl constraints, parser and rewriter methods). On Python < 3.13, typing_extensions' decorator
runs `import asyncio.coroutines` for every decorated function, only to ask whether the
function is a coroutine function; importing the asyncio package drags in ssl, socket,
subprocess, selectors, concurrent.futures and logging: ~24 ms CPU of a ~0.45 s
`tflquant quantize` process, for nothing tflquant uses.

`import_xdsl()` imports `xdsl.dialects.builtin` and `xdsl.dialects.func` (which bring the
deprecated-marked modules: irdl, parser, pattern_rewriter) with placeholder `asyncio` and
`asyncio.coroutines` modules in `sys.modules` that answer that one question
(`iscoroutinefunction`, from `inspect`, as asyncio's own does for plain functions), and
removes them right after, so a later `import asyncio` loads the real package as usual.

While it imports, the dataclasses module compiles each generated method (`__init__`,
`__eq__`, `__repr__`...: ~1100 of them, ~580 distinct texts, most of the import's ~100 ms
CPU) from source text. A compile cache for those texts gives the same functions (the same
code run with the same globals): it is installed as the dataclasses module's own `exec` for
the import only, and starts from the code objects the last import compiled, kept next to
this module's bytecode as Python keeps .pyc files (`__pycache__/_startup.<tag>.<first module
imported>.dataclasses`, marshal; written like a .pyc: not under PYTHONDONTWRITEBYTECODE, atomically, silently
skipped where the folder is read-only). The file maps each full source text to its code, so
a text never compiled before (another xDSL) is compiled as usual and the file rewritten
with the texts this import used; a file from another Python's bytecode (its magic number
differs) or an unreadable one is ignored.

The garbage collector is paused for the import (it would walk the new objects over and over
to find next to no garbage: ~10 ms).

Only done when it cannot be observed: the process runs one Python thread (nobody else can
import asyncio while the placeholders are in place, define a dataclass or miss a collection);
otherwise it is a plain import (the placeholders also only while asyncio is not loaded).
`import_xdsl()` is called by `tflquant.dialects` (so `tflquant.ir` and the dialects too) and
the command's subcommands before they import xDSL; `import_quietly("tflquant.api")` (or
"tflquant.compare") then imports the driver the same way, on `tflquant.quantize` /
`tflquant.compare_models`'s first use and in the command (~10 ms more).
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
    if _depth[0] or not _single_threaded():
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
