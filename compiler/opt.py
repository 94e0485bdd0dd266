"""`tflquant-opt`: run passes on IR one at a time, like `mlir-opt` / `xdsl-opt`.

    tflquant-opt in.mlir -p 'fold-reshape-chain,insert-fake-quant{activations=int8}'
    tflquant-opt model.tflite -p propagate-scales -o out.tflite
    tflquant-opt in.mlir --split-input-file --verify-diagnostics -p some-pass
    tflquant-opt --list-passes
    tflquant-opt --load my_passes.py in.mlir -p my-pass     # a pass from outside the package

Input is textual IR (a file, or stdin when the path is `-` or left out) or a `.tflite`
flatbuffer (recognised by its `TFL3` identifier). The module is verified after parsing and
after every pass. Output is textual IR on stdout (or `-o file`), or a `.tflite` when the
`-o` path ends in `.tflite`.

Errors print one line `tflquant-opt: error: ...` on stderr and exit with status 2. With
`--verify-diagnostics` an expected error (parse, verify or pass failure) is printed on
stdout instead and the exit status is 0, so a FileCheck test can check the message.
`--print-ir-after-all` / `--print-ir-before=NAME` / `--print-ir-after=NAME` dump the IR to
stderr between passes, headed `// -----// IR Dump After NAME //----- //` as MLIR does.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.exceptions import DiagnosticException, ParseError, PassFailedException, VerifyException

from tflquant.errors import TflquantError

PROG = "tflquant-opt"
SPLIT_MARKER = "// -----"

# xDSL passes that are useful on tfl IR; any other xDSL pass works too, these are listed.
XDSL_LISTED = ("canonicalize", "cse", "dce")

# Errors that are "the input is wrong" (not a bug in tflquant): one line, or a diagnostic.
USER_ERRORS = (TflquantError, ParseError, VerifyException, DiagnosticException, PassFailedException)


class _ExitError(Exception):
    """An error to report as one line and exit 2."""


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """tflquant's passes (own, entry points, registered) on top of xDSL's builtin ones."""
    from xdsl.transforms import get_all_passes as xdsl_passes

    from tflquant.passes import get_all_passes

    passes = dict(xdsl_passes())
    passes.update(get_all_passes())
    return passes


def make_opt_context() -> Context:
    """tflquant's context plus the lazily loaded `test` dialect (handy in FileCheck tests)."""
    from tflquant.ir import make_context

    ctx = make_context()

    def _test():
        from xdsl.dialects.test import Test

        return Test

    ctx.register_dialect("test", _test)
    return ctx


# ---------------------------------------------------------------------------------------
# --list-passes
# ---------------------------------------------------------------------------------------


def _fmt_default(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    return str(v)


def describe_pass(cls: type[ModulePass]) -> str:
    """`name{opt=default ...}` then the first docstring line (what the pass guarantees)."""
    opts = []
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            if f.name.startswith("_") or not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                d = _fmt_default(f.default)
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                d = _fmt_default(f.default_factory())  # type: ignore[misc]
            else:
                d = "<required>"
            opts.append(f"{f.name.replace('_', '-')}={d}")
    head = cls.name + ("{" + " ".join(opts) + "}" if opts else "")
    doc = inspect.getdoc(cls) or ""
    # ModulePass's own docstring is not the pass's: only use a docstring the class defines.
    if "__doc__" not in vars(cls) or not vars(cls)["__doc__"]:
        doc = ""
    # The first paragraph of the class docstring, on one line: what the pass guarantees.
    first = " ".join(doc.strip().split("\n\n")[0].split()) if doc.strip() else "(no description)"
    return f"  {head}\n      {first}"


def list_passes(out: IO[str]) -> int:
    from tflquant.passes import get_all_passes

    out.write("tflquant passes (name{option=default}, then what it guarantees):\n")
    for name, load in sorted(get_all_passes().items()):
        try:
            cls = load()
        except Exception as e:  # a broken pass must not hide the others
            out.write(f"  {name}\n      (cannot load: {type(e).__name__}: {e})\n")
            continue
        out.write(describe_pass(cls) + "\n")
    out.write(f"also available from xDSL: {', '.join(XDSL_LISTED)} (and every other xdsl-opt pass)\n")
    return 0


# ---------------------------------------------------------------------------------------
# Input / output
# ---------------------------------------------------------------------------------------


def _is_flatbuffer(data: bytes, path: str) -> bool:
    return path.endswith(".tflite") or (len(data) >= 8 and data[4:8] == b"TFL3")


def _read_input(path: str) -> tuple[bytes, str]:
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    from tflquant.fileio import read_bytes

    return read_bytes(path, "input"), path


def _load_flatbuffer(data: bytes, name: str, ctx: Context) -> ModuleOp:
    from tflquant.tflite.reader import read_flatbuffer

    del ctx  # the reader builds its module with tflquant's own context
    return read_flatbuffer(data, name=name)


def _write_output(module_texts: list[str], modules: list[ModuleOp], path: str | None) -> None:
    if path is not None and path.endswith(".tflite"):
        if len(modules) != 1:
            raise TflquantError("-o *.tflite needs exactly one module (do not combine with --split-input-file)")
        from tflquant.tflite.writer import write_flatbuffer

        data = write_flatbuffer(modules[0])
        from tflquant.fileio import atomic_write

        atomic_write(path, data)
        return
    text = ("\n" + SPLIT_MARKER + "\n\n").join(module_texts)
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from tflquant.fileio import atomic_write

        atomic_write(path, text.encode())


def split_chunks(text: str) -> list[str]:
    """Split at lines that are exactly `// -----` (as mlir-opt --split-input-file does).

    Each chunk is padded with the newlines before it so that error locations keep the
    line numbers of the whole file.
    """
    chunks: list[str] = []
    cur: list[str] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.strip() == SPLIT_MARKER:
            chunks.append("\n" * offset + "".join(cur))
            offset += len(cur) + 1
            cur = []
        else:
            cur.append(line)
    chunks.append("\n" * offset + "".join(cur))
    return chunks


# ---------------------------------------------------------------------------------------
# Running passes
# ---------------------------------------------------------------------------------------


def _dump(module: ModuleOp, title: str, stream: IO[str]) -> None:
    from tflquant.ir import print_module

    stream.write(f"// -----// IR Dump {title} //----- //\n")
    stream.write(print_module(module))
    stream.flush()


def _verify(module: ModuleOp, where: str) -> None:
    from tflquant.dialects._unchecked import verify_module

    try:
        verify_module(module)
    except VerifyException as e:
        raise VerifyException(f"IR is invalid {where}: {e}") from None


def run_passes(
    ctx: Context,
    module: ModuleOp,
    passes: Sequence[ModulePass],
    *,
    verify: bool = True,
    after_all: bool = False,
    before: Sequence[str] = (),
    after: Sequence[str] = (),
    dump_stream: IO[str] | None = None,
) -> None:
    """Apply passes in order, verifying after each and dumping IR where asked."""
    stream = dump_stream or sys.stderr
    for p in passes:
        if p.name in before:
            _dump(module, f"Before {p.name}", stream)
        p.apply(ctx, module)
        if verify:
            _verify(module, f"after pass '{p.name}'")
        if after_all or p.name in after:
            _dump(module, f"After {p.name}", stream)


def parse_spec(spec: str) -> tuple[ModulePass, ...]:
    if not spec.strip():
        return ()
    from xdsl.utils.exceptions import ArgSpecParseError

    try:
        return PassPipeline.parse_spec(available_passes(), spec).passes
    except (Exception, ArgSpecParseError) as e:  # ValueError, PassFailedException; ArgSpecParseError is a BaseException
        raise _ExitError(f"bad pass pipeline {spec!r}: {e}") from None


def _process(text_or_bytes: bytes | str, name: str, args: argparse.Namespace, passes, ctx: Context) -> ModuleOp:
    if isinstance(text_or_bytes, bytes):
        module = _load_flatbuffer(text_or_bytes, name, ctx)
    else:
        from xdsl.parser import Parser

        module = Parser(ctx, text_or_bytes, name=name).parse_module()
    if not args.disable_verify:
        _verify(module, "after parsing")
    run_passes(
        ctx,
        module,
        passes,
        verify=not args.disable_verify,
        after_all=args.print_ir_after_all,
        before=args.print_ir_before or (),
        after=args.print_ir_after or (),
    )
    return module


def _message(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


def _one_line(e: BaseException) -> str:
    """`file:line:col: message` for parse errors, the message on one line otherwise."""
    if isinstance(e, ParseError):
        try:
            return f"{e.span.get_location()}: {e.msg}"
        except Exception:
            return e.msg
    return " ".join(_message(e).split("\n"))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Run tflquant (and xDSL) passes on textual IR or a .tflite, verifying after every pass.",
    )
    ap.add_argument("input", nargs="?", default="-", help="textual IR or .tflite (default: stdin)")
    ap.add_argument("-p", "--passes", default="", help="pass pipeline, e.g. 'pass-a,pass-b{opt=1}'")
    ap.add_argument("-o", "--output", default=None, help="output file (textual IR, or a flatbuffer if it ends in .tflite)")
    ap.add_argument("--split-input-file", action="store_true", help="process each '// -----' chunk separately")
    ap.add_argument(
        "--verify-diagnostics",
        action="store_true",
        help="print an expected error on stdout and exit 0 (for negative FileCheck tests)",
    )
    ap.add_argument("--print-ir-after-all", action="store_true", help="dump IR to stderr after every pass")
    ap.add_argument("--print-ir-before", action="append", metavar="NAME", help="dump IR to stderr before pass NAME (repeatable)")
    ap.add_argument("--print-ir-after", action="append", metavar="NAME", help="dump IR to stderr after pass NAME (repeatable)")
    ap.add_argument("--print-op-generic", action="store_true", help="print ops in generic form")
    ap.add_argument("--disable-verify", action="store_true", help="do not verify after parsing and after passes")
    ap.add_argument("--list-passes", action="store_true", help="list passes, their options and guarantees")
    ap.add_argument(
        "--load",
        action="append",
        metavar="MODULE_OR_FILE",
        help="import a Python module (dotted name or .py file) first, e.g. one that calls tflquant.passes.register_pass (repeatable)",
    )
    ap.add_argument("--print-pipeline", metavar="MODE", help="print the pass pipeline of a quantization mode (int8, int16x8, dynamic, float16) and exit")
    ap.add_argument("--io-type", default="float32", help="with --print-pipeline: the model I/O type (float32, int8, uint8, int16)")
    ap.add_argument("--target", default="litert", help="with --print-pipeline: the runtime, litert or micro")
    return ap


def _print_text(module: ModuleOp, generic: bool) -> str:
    if not generic:
        from tflquant.ir import print_module

        return print_module(module)
    import io

    from xdsl.printer import Printer

    buf = io.StringIO()
    Printer(stream=buf, print_generic_format=True).print_op(module)
    return buf.getvalue() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (_ExitError, *USER_ERRORS) as e:
        msg = _one_line(e)
        sys.stderr.write(f"{PROG}: error: {msg}\n")
        return 2
    except BrokenPipeError:
        return 0


def load_plugin(spec: str) -> None:
    """Import a module by dotted name or from a .py file (so its register_pass calls run)."""
    import importlib
    import importlib.util
    from pathlib import Path

    try:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise TflquantError(f"--load {spec}: no such file")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[path.stem] = module
            mod_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except TflquantError:
        raise
    except Exception as e:
        raise TflquantError(f"--load {spec}: {type(e).__name__}: {e}") from None


def _main(args: argparse.Namespace) -> int:
    for spec in args.load or ():
        load_plugin(spec)
    if args.list_passes:
        return list_passes(sys.stdout)
    if args.print_pipeline:
        from tflquant.pipeline import pipeline_spec

        sys.stdout.write(pipeline_spec(args.print_pipeline, io_type=args.io_type, target=args.target) + "\n")
        return 0

    passes = parse_spec(args.passes)
    ctx = make_opt_context()
    data, name = _read_input(args.input)

    if _is_flatbuffer(data, name):
        units: list[bytes | str] = [data]
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TflquantError(f"{name}: neither UTF-8 text IR nor a .tflite flatbuffer") from None
        units = list(split_chunks(text)) if args.split_input_file else [text]

    texts: list[str] = []
    modules: list[ModuleOp] = []
    for unit in units:
        try:
            module = _process(unit, name, args, passes, ctx)
        except USER_ERRORS as e:
            if not args.verify_diagnostics:
                raise
            texts.append(_message(e) + "\n")
            continue
        except Exception:
            if args.verify_diagnostics:
                # A crash is never an expected diagnostic: show the traceback, fail.
                traceback.print_exc()
                return 1
            raise
        modules.append(module)
        texts.append(_print_text(module, args.print_op_generic))
    if args.output is not None and args.output.endswith(".tflite") and len(modules) != len(units):
        return 0  # only diagnostics were produced (verify-diagnostics mode)
    _write_output(texts, modules, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
