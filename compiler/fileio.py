"""File input and output with the guarantees users rely on: clear errors, atomic writes."""

from __future__ import annotations

import os
import tempfile

from tflquant.errors import TflquantError


def read_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read a whole file, turning OS errors into one clear line that names the file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise TflquantError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise TflquantError(f"{path}: is a directory, expected a {what}") from None
    except PermissionError:
        raise TflquantError(f"{path}: permission denied reading the {what}") from None
    except OSError as e:
        raise TflquantError(f"{path}: cannot read the {what}: {e.strerror or e}") from None


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename: never a partial output file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    payload = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tflquant-", dir=directory)
    except OSError as e:
        raise TflquantError(f"{path}: cannot write here: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise TflquantError(f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
