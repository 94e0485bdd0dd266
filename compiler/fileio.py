"""File input and output with the guarantees users rely on: clear errors, atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager

from tflquant.errors import TflquantError


@contextmanager
def _reading(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """OS errors while reading `path` become one clear line that names the file."""
    try:
        yield
    except FileNotFoundError:
        raise TflquantError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise TflquantError(f"{path}: is a directory, expected a {what}") from None
    except PermissionError:
        raise TflquantError(f"{path}: permission denied reading the {what}") from None
    except (OSError, ValueError) as e:
        raise TflquantError(f"{path}: cannot read the {what}: {getattr(e, 'strerror', None) or e}") from None


def read_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read a whole file, turning OS errors into one clear line that names the file."""
    with _reading(path, what), open(path, "rb") as f:
        return f.read()


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename: never a partial output file."""
    atomic_write_parts(path, [data.encode() if isinstance(data, str) else data])


def atomic_write_parts(path: str | os.PathLike[str], parts, check=None) -> int:
    """Write the byte-like `parts` one after the other to a temporary file beside `path`,
    run `check(mapped file)` on the finished file (memory mapped, read-only), then rename.
    Returns the file size. Nothing but the parts themselves is held in memory: they go to
    the file as they are (no joined copy), many small ones per writev call."""
    import mmap

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tflquant-", dir=directory)
    except OSError as e:
        raise TflquantError(f"{path}: cannot write here: {e.strerror or e}") from None
    try:
        try:
            size = _write_parts(fd, parts)
            if check is not None and size:
                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
                    check(m)
            elif check is not None:
                check(b"")
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return size
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise TflquantError(f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# atomic_write_parts: pieces below _ALONE bytes are gathered, up to _BATCH bytes and
# _IOV pieces, into one writev call (one system call, not one per piece; none copied into a
# buffer first); bigger ones are written alone. Each piece is released (release_view) once
# written, so at most one batch or one big piece of a mapped model is resident.
_ALONE = 1 << 20
_BATCH = 8 << 20
_IOV = 512


def _write_parts(fd: int, parts) -> int:
    """Write `parts` (byte-like) to fd in order; the bytes written."""
    size = 0
    batch: list = []
    held: list = []
    nbytes = 0

    def flush() -> None:
        nonlocal nbytes
        if batch:
            _writev_all(fd, batch, nbytes)
            for p in held:
                release_view(p)  # a piece read from a mapped model need not stay resident
            batch.clear()
            held.clear()
            nbytes = 0

    for p in parts:
        v = memoryview(p)
        if v.format != "B" or v.ndim != 1:
            v = v.cast("B")
        n = v.nbytes
        if not n:
            continue
        size += n
        if n >= _ALONE:
            flush()
            _writev_all(fd, [v], n)
            release_view(p)
            continue
        if len(batch) >= _IOV or nbytes + n > _BATCH:
            flush()
        batch.append(v)
        held.append(p)
        nbytes += n
    flush()
    return size


def _writev_all(fd: int, views: list, total: int) -> None:
    """os.writev until all `total` bytes of the byte views are written (a write may stop
    early: a signal, or Linux's cap of a little under 2 GB per call); os.write piece by
    piece where there is no writev (Windows)."""
    if not hasattr(os, "writev"):
        for v in views:
            while len(v):
                v = v[os.write(fd, v):]
        return
    done = os.writev(fd, views)
    while done < total:
        if done <= 0:
            raise OSError(f"wrote {done} of {total} bytes")
        total -= done
        rest = []
        for v in views:
            if done >= len(v):
                done -= len(v)
                continue
            rest.append(v[done:] if done else v)
            done = 0
        views = rest
        done = os.writev(fd, views)


def map_file(path: str | os.PathLike[str], what: str = "file"):
    """The file memory-mapped read-only (an mmap.mmap: slices are bytes, memoryview(m) a
    zero-copy view); OS errors become one clear line naming the file. An empty file has no
    mapping: its (empty) bytes are returned."""
    import mmap

    with _reading(path, what), open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def mapped_file(view: object) -> Any:
    """The mapping (map_file) that `view` (a memoryview or numpy array, through any chain
    of array views) reads, or None when it is not a view of a mapped file."""
    import mmap

    import numpy as np

    base = view
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap) else None


def release_view(view: object, min_file: int = 0) -> bool:
    """Let the OS drop the whole pages of a mapped file (map_file) under `view` (a memoryview
    or numpy array over the mapping, e.g. one constant of a memory-mapped model), so having
    read it once does not keep it resident; reading it again is still correct (the pages
    come back from the file). A no-op for anything not backed by an mmap, and for a mapping
    smaller than `min_file` bytes. True when pages were dropped."""
    import mmap

    if getattr(view, "nbytes", mmap.PAGESIZE) < mmap.PAGESIZE:  # holds no whole page
        return False
    import numpy as np

    m = mapped_file(view)
    if m is None or not hasattr(mmap, "MADV_DONTNEED") or m.closed or len(m) < min_file:
        return False
    arr = view if isinstance(view, np.ndarray) else np.frombuffer(view, np.uint8)
    start = arr.__array_interface__["data"][0] - np.frombuffer(m, np.uint8, count=1).__array_interface__["data"][0]
    page = mmap.PAGESIZE
    first = -(-start // page) * page  # whole pages only: the neighbours' data shares the edge pages
    last = (start + arr.nbytes) // page * page
    if last <= first:
        return False
    try:
        m.madvise(mmap.MADV_DONTNEED, first, last - first)
    except (OSError, ValueError):
        return False
    return True


def release_pages(data: object) -> None:
    """Let the OS drop the pages of a mapped model (map_file) that this process has read:
    they stop counting in its memory, and anything still reading them (a constant left
    float) faults them back in from the file. A no-op for anything but an mmap."""
    import mmap

    if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        try:
            data.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------------------------
# Memory: what a file's sizes and shapes may ask for
# ---------------------------------------------------------------------------------------


def memory_limit() -> int:
    """Bytes this process can hope to allocate: physical memory, or the address-space limit
    (RLIMIT_AS) when that is lower. Sizes read from files are checked against it before
    anything is allocated, so a corrupt size is an error, not a crash or a swap storm."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no bound known
        limit = 1 << 62
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            limit = min(limit, soft)
    except (ImportError, ValueError, OSError):
        pass
    return limit


def human_bytes(n: int) -> str:
    for unit, size in (("EB", 1 << 60), ("PB", 1 << 50), ("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def check_fits(nbytes: int, what: str, hint: str = "check the shapes in the model or data") -> None:
    """TflquantError naming `what` when `nbytes` exceeds memory_limit(); a no-op otherwise."""
    limit = memory_limit()
    if nbytes > limit:
        raise TflquantError(f"{what} needs {human_bytes(nbytes)}, more than the {human_bytes(limit)} of memory available: {hint}")
