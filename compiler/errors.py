"""The one exception type tflquant raises for bad input; the CLI prints it as one line."""

from __future__ import annotations

import re

MAX_MESSAGE = 2000  # characters: a corrupt file's garbage names must not flood the terminal
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TflquantError(Exception):
    """A problem the user can act on: names the file, tensor or op and says what to do.

    The message is always one printable line: control characters (newlines inside a
    corrupt tensor name, ...) and undecodable bytes are escaped, and a very long message
    is shortened in the middle."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))


def one_line(text: str) -> str:
    """`text` as one printable line (escapes, at most MAX_MESSAGE characters)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates from undecodable names
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    if len(text) > MAX_MESSAGE:
        half = MAX_MESSAGE // 2
        text = f"{text[:half]} ... {text[-half:]}"
    return text


class LazyText:
    """A piece of an error message made only if a message is (f-strings call __format__):
    `LazyText("operator {} ({})", i, name)` costs a hot loop one small object, not a
    formatted string per iteration."""

    __slots__ = ("fmt", "args")

    def __init__(self, fmt: str, *args: object) -> None:
        self.fmt, self.args = fmt, args

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __str__(self) -> str:
        return self.fmt.format(*self.args)
