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

Only done when it cannot be observed: the process runs one Python thread (nobody else can
import asyncio while the placeholders are in place) and asyncio is not loaded yet;
otherwise it is a plain import. Called by `tflquant.quantize` / `tflquant.compare_models`'s
first use, the command's subcommands and `tflquant.dialects` (so `tflquant.ir` and the
dialects too), before they import xDSL.
"""

from __future__ import annotations

import importlib
import sys

_CORE = ("xdsl.dialects.builtin", "xdsl.dialects.func")


def _single_threaded() -> bool:
    frames = getattr(sys, "_current_frames", None)
    return frames is not None and len(frames()) == 1


def import_xdsl() -> None:
    """Import xDSL's builtin and func dialects (once; later calls return at once)."""
    if all(name in sys.modules for name in _CORE):
        return
    if "asyncio" in sys.modules or not _single_threaded():
        _plain()
        return
    import inspect
    import types

    package = types.ModuleType("asyncio")
    coroutines = types.ModuleType("asyncio.coroutines")
    coroutines.iscoroutinefunction = inspect.iscoroutinefunction  # type: ignore[attr-defined]
    coroutines._is_coroutine = object()  # type: ignore[attr-defined]  # never read: xDSL marks no coroutine function
    package.coroutines = coroutines  # type: ignore[attr-defined]
    placeholders = {"asyncio": package, "asyncio.coroutines": coroutines}
    sys.modules.update(placeholders)
    try:
        _plain()
    except Exception:
        _remove(placeholders)
        _plain()  # whatever failed fails again without the placeholders, with its own error
    finally:
        _remove(placeholders)


def _plain() -> None:
    for name in _CORE:
        importlib.import_module(name)


def _remove(placeholders: dict[str, object]) -> None:
    for name, module in placeholders.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
