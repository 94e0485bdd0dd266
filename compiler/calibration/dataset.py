"""Representative data: from a `.npz` file or any iterable, checked against the model's inputs.

Two sources, one result (an iterator of samples, each a list of arrays in input order, each
array shaped exactly like its model input):

- a `.npz` file (or a dict of arrays): one array per model input, samples first, keyed by
  the input tensor's name (or its signature name), or in input order when no key matches;
- an iterable, or a function returning one, as TF's `representative_dataset`: each item a
  list/tuple of arrays in input order, a dict keyed by input name, a single array for a
  one-input model, or `(signature_key, dict)` for a model with several signatures.

A sample may leave out the model's batch dimension of 1 (`(16, 16, 1)` for a `[1, 16, 16, 1]`
input) or carry it. Every problem (missing input, an array that is no input, wrong shape or
dtype, NaN or infinite values, no samples, a file that is not a readable .npz) is a
TflquantError that names the file and input and says what the model expects. A .npz is
checked before its arrays are read: sizes its headers claim must be in the file and fit
in memory, and pickled objects are never loaded.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tflquant.errors import TflquantError

# Keys that travel in data files next to the inputs and are never model inputs.
IGNORED_KEYS = ("labels",)


@dataclass(frozen=True)
class InputSpec:
    """One model input: TFLite tensor name, signature name, shape (-1 = dynamic), dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    alias: str | None = None

    @property
    def label(self) -> str:
        return f"'{self.name}'" + (f" (signature name '{self.alias}')" if self.alias and self.alias != self.name else "")

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d < 0 else str(d) for d in self.shape) + "]"

    def keys(self) -> tuple[str, ...]:
        return (self.name,) + ((self.alias,) if self.alias else ())


# ---------------------------------------------------------------------------------------
# One sample, one input
# ---------------------------------------------------------------------------------------


def _squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _fit_shape(arr: np.ndarray, spec: InputSpec, where: str) -> np.ndarray:
    """arr reshaped to the input's shape (adding or dropping dimensions of size 1 only)."""
    want = spec.shape
    if len(arr.shape) == len(want) and all(w < 0 or w == d for w, d in zip(want, arr.shape)):
        return arr
    if all(d >= 0 for d in want):
        if _squeezed(arr.shape) == _squeezed(want):
            return arr.reshape(want)
    else:
        # dynamic dims: match after dropping size-1 dims, then fill the unknowns from the data
        if len(arr.shape) < len(want):
            pad = (1,) * (len(want) - len(arr.shape))
            cand = pad + arr.shape
            if all(w < 0 or w == d for w, d in zip(want, cand)):
                return arr.reshape(cand)
        if len(arr.shape) > len(want) and all(d == 1 for d in arr.shape[: len(arr.shape) - len(want)]):
            cand = arr.shape[len(arr.shape) - len(want):]
            if all(w < 0 or w == d for w, d in zip(want, cand)):
                return arr.reshape(cand)
    raise TflquantError(
        f"{where}: input {spec.label} expects a sample of shape {spec.shape_text()}, "
        f"got an array of shape {list(arr.shape)}"
    )


def _fit_dtype(arr: np.ndarray, spec: InputSpec, where: str) -> np.ndarray:
    want = spec.dtype
    if arr.dtype == want:
        return arr
    kind, wkind = arr.dtype.kind, want.kind
    if wkind == "f" and kind in "fiub":
        return arr.astype(want)
    if wkind in "iu" and kind in "iub":
        info = np.iinfo(want)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise TflquantError(
                f"{where}: input {spec.label} is {want.name}, but the data ({arr.dtype.name}) holds values "
                f"outside [{info.min}, {info.max}]"
            )
        return arr.astype(want)
    if wkind == "b" and kind == "b":
        return arr.astype(want)
    raise TflquantError(
        f"{where}: input {spec.label} is {want.name}, but the data is {arr.dtype.name}; "
        f"give {'integer' if wkind in 'iu' else want.name} values for it"
    )


def fit_sample(arr: Any, spec: InputSpec, where: str, check_finite: bool = True) -> np.ndarray:
    """One sample for one input: an array of exactly the input's shape (dynamic dims kept) and
    dtype, with finite values only."""
    try:
        a = np.asarray(arr)
    except Exception as e:  # ragged lists, objects numpy cannot hold
        raise TflquantError(f"{where}: input {spec.label}: cannot turn the data into an array: {e}") from None
    if a.dtype == object:
        raise TflquantError(f"{where}: input {spec.label}: data is not numeric (numpy made an object array)")
    out = _fit_dtype(_fit_shape(a, spec, where), spec, where)
    if check_finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise TflquantError(f"{where}: input {spec.label} holds {bad} NaN or infinite value(s); give finite data (fix or drop that sample)")
    return out


def _check_finite(a: np.ndarray, spec: InputSpec, key: str, where: str) -> None:
    """Every sample of a column finite (float data), or an error naming the samples."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    per_sample = np.ones(len(a), dtype=bool)
    step = max(1, (1 << 24) // max(1, a[0].size))  # about 16M values at a time: no full-size mask
    for i in range(0, len(a), step):
        per_sample[i : i + step] = np.isfinite(a[i : i + step]).reshape(len(a[i : i + step]), -1).all(axis=1)
    if not per_sample.all():
        bad = np.flatnonzero(~per_sample)
        first = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise TflquantError(
            f"{where}: array {key!r} for input {spec.label} holds NaN or infinite values in {len(bad)} of "
            f"{len(a)} samples ({first}); give finite data (fix or drop those samples)"
        )


# ---------------------------------------------------------------------------------------
# Matching keys to inputs
# ---------------------------------------------------------------------------------------


def match_keys(keys: Sequence[str], specs: Sequence[InputSpec], where: str) -> list[str]:
    """For each input, the key that holds its data (by tensor or signature name, else by order)."""
    data_keys = [k for k in keys if k not in IGNORED_KEYS]
    found: list[str | None] = []
    for s in specs:
        found.append(next((k for k in s.keys() if k in keys), None))
    if all(f is not None for f in found):
        extra = [k for k in data_keys if k not in found]
        if extra:
            raise TflquantError(
                f"{where}: array(s) {', '.join(repr(k) for k in extra)} match no model input "
                f"(inputs: {', '.join(s.label for s in specs)}); remove them (only {', '.join(repr(k) for k in IGNORED_KEYS)} may travel along)"
            )
        return found  # type: ignore[return-value]
    if any(f is not None for f in found):
        missing = [s for s, f in zip(specs, found) if f is None]
        raise TflquantError(
            f"{where}: no data for input {', '.join(s.label for s in missing)} "
            f"(arrays given: {', '.join(repr(k) for k in keys) or 'none'})"
        )
    if len(data_keys) == len(specs):
        return data_keys
    raise TflquantError(
        f"{where}: the arrays {', '.join(repr(k) for k in data_keys) or '(none)'} do not match the model inputs "
        f"{', '.join(s.label for s in specs)}: key each array by its input tensor name, "
        f"or give exactly {len(specs)} array(s) in input order"
    )


# ---------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------


def load_npz(path: str | os.PathLike[str], what: str = "calibration file") -> dict[str, np.ndarray]:
    """All arrays of a .npz file (read eagerly, in file order), with clear errors."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TflquantError(f"{path}: no such {what}")
    if os.path.isdir(path):
        raise TflquantError(f"{path}: is a directory, expected a .npz {what}")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise TflquantError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    if not magic:
        raise TflquantError(f"{path}: not a readable .npz {what}: the file is empty; save one array per model input with numpy.savez")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise TflquantError(
            f"{path}: not a readable .npz {what}: it starts with {magic!r}, not a zip archive; save one array per model input with numpy.savez"
        )
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise TflquantError(f"{path}: not a readable .npz {what} (truncated or corrupt?): {_one_line(e)}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        if hasattr(z, "close"):
            z.close()
        raise TflquantError(f"{path}: not a .npz archive but a single .npy array; save one array per model input with numpy.savez")
    try:
        with z:
            _check_members(z.zip, path, what)
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeError, SyntaxError) as e:
        raise TflquantError(f"{path}: not a readable .npz {what} (truncated or corrupt?): {_one_line(e)}") from None
    except MemoryError:
        raise TflquantError(f"{path}: the {what} does not fit in memory; use fewer samples") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] or type(e).__name__


def _check_members(zf: zipfile.ZipFile, path: str, what: str) -> None:
    """Before numpy reads anything: every member an .npy whose header's size is in the file,
    no object arrays (pickles), and the whole fits in memory."""
    from tflquant.fileio import check_fits

    total = 0
    for info in zf.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        with zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    continue  # numpy's own checks
            except Exception as e:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError, ...
                raise TflquantError(f"{path}: array {key!r} is not a valid .npy member of the {what}: {_one_line(e)}") from None
            header = f.tell()
        if dtype.hasobject:
            raise TflquantError(
                f"{path}: array {key!r} holds Python objects (a pickle), which tflquant never loads; save numeric arrays"
            )
        nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
        if nbytes > info.file_size - header:
            raise TflquantError(
                f"{path}: array {key!r} is truncated or corrupt: its header says shape {tuple(shape)} of {dtype} "
                f"({nbytes} bytes), the file holds {max(info.file_size - header, 0)}"
            )
        total += max(nbytes, info.file_size)
    check_fits(total, f"{path}: reading the {what}", "use fewer samples")


def samples_from_arrays(arrays: Mapping[str, Any], specs: Sequence[InputSpec], where: str) -> tuple[int, Iterator[list[np.ndarray]]]:
    """(number of samples, sample iterator) for arrays holding one input each, samples first."""
    keys = match_keys(list(arrays), specs, where)
    cols: list[np.ndarray] = []
    for k, s in zip(keys, specs):
        a = np.asarray(arrays[k])
        if a.ndim == 0:
            raise TflquantError(f"{where}: array {k!r} for input {s.label} is a scalar; put the samples on the first axis")
        if a.shape[0] == 0:
            raise TflquantError(f"{where}: array {k!r} for input {s.label} holds no samples")
        if a.dtype == object:
            raise TflquantError(f"{where}: array {k!r} for input {s.label} is not numeric (an object array)")
        _check_finite(a, s, k, where)
        cols.append(a)
    counts = {len(a) for a in cols}
    if len(counts) > 1:
        detail = ", ".join(f"{s.label}: {len(a)}" for s, a in zip(specs, cols))
        raise TflquantError(f"{where}: inputs have different numbers of samples ({detail})")
    n = counts.pop() if counts else 0
    if n == 0:
        raise TflquantError(f"{where}: no calibration samples")
    # check the first sample eagerly so shape/dtype errors surface before any work
    shapes = [fit_sample(a[0], s, where).shape for a, s in zip(cols, specs)]
    return n, ArraySamples(cols, specs, shapes, n, where)


class ArraySamples(Iterator[list[np.ndarray]]):
    """The samples of arrays that hold one input each (samples_from_arrays): an iterator of
    samples like any source, which `batches` also slices a batch at a time (each column's
    rows fitted at once: a view when the shape and dtype already fit, no per-sample stack).
    Every sample of an array has the first one's shape, so a batch is what stacking its
    fitted samples gives."""

    def __init__(self, cols: list[np.ndarray], specs: Sequence[InputSpec], shapes: list[tuple[int, ...]], n: int, where: str):
        self.cols, self.specs, self.shapes, self.n, self.where = cols, specs, shapes, n, where
        self.pos = 0  # the next sample
        self.end = n  # (take: fewer)

    def __iter__(self) -> ArraySamples:
        return self

    def __next__(self) -> list[np.ndarray]:
        i = self.pos
        if i >= self.end:
            raise StopIteration
        self.pos = i + 1
        return [fit_sample(a[i], s, f"{self.where}, sample {i}", check_finite=False) for a, s in zip(self.cols, self.specs)]

    def take(self, k: int) -> ArraySamples:
        """At most k more samples."""
        self.end = min(self.end, self.pos + max(k, 0))
        return self

    def batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        while self.pos < self.end:
            i, j = self.pos, min(self.pos + batch_size, self.end)
            self.pos = j
            where = f"{self.where}, samples {i}-{j - 1}"
            batch = []
            for a, s, shape in zip(self.cols, self.specs, self.shapes):
                b = np.ascontiguousarray(_fit_dtype(a[i:j].reshape((j - i,) + shape), s, where))
                if np.may_share_memory(b, a):
                    # a view of the caller's array: read-only, so a kernel that wrote its
                    # input in place would fail loudly instead of changing the user's data
                    b.flags.writeable = False
                batch.append(b)
            yield batch


def stacked_inputs(arrays: Mapping[str, Any], specs: Sequence[InputSpec], where: str, max_samples: int | None = None) -> list[np.ndarray]:
    """One array per input, samples first (at most max_samples), every sample checked and
    fitted like calibration samples: what `tflquant compare` feeds both models."""
    n, samples = samples_from_arrays(arrays, specs, where)
    rows = [s for _, s in zip(range(min(n, max_samples or n)), samples)]
    return [np.stack(col) for col in zip(*rows)]


def _item_to_sample(item: Any, specs: Sequence[InputSpec], where: str) -> list[np.ndarray]:
    if isinstance(item, Mapping):
        keys = match_keys([str(k) for k in item], specs, where)
        return [fit_sample(item[k], s, where) for k, s in zip(keys, specs)]
    if isinstance(item, (str, bytes)):
        raise TflquantError(f"{where}: expected a list or dict of arrays per sample, got {type(item).__name__}")
    if isinstance(item, np.ndarray) or np.isscalar(item):
        if len(specs) != 1:
            raise TflquantError(
                f"{where}: got one array but the model has {len(specs)} inputs "
                f"({', '.join(s.label for s in specs)}); yield a list or a dict"
            )
        return [fit_sample(item, specs[0], where)]
    if isinstance(item, (list, tuple)):
        if len(item) != len(specs):
            raise TflquantError(
                f"{where}: got {len(item)} array(s) but the model has {len(specs)} input(s) "
                f"({', '.join(s.label for s in specs)})"
            )
        return [fit_sample(x, s, where) for x, s in zip(item, specs)]
    raise TflquantError(f"{where}: expected a list or dict of arrays per sample, got {type(item).__name__}")


def split_signature(item: Any) -> tuple[str | None, Any]:
    """TF's multi-signature form `(signature_key, {name: array})` -> (key, data); else (None, item)."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], Mapping):
        return item[0], item[1]
    return None, item


def numbered_items(source: Iterable[Any] | Callable[[], Iterable[Any]], where: str) -> Iterator[tuple[int, Any]]:
    """(index, item) of a representative_dataset-style iterable (or a function returning one);
    anything else is one clear error."""
    it = source() if callable(source) else source
    try:
        iterator = iter(it)
    except TypeError:
        raise TflquantError(f"{where}: expected an iterable of samples (or a function returning one), got {type(it).__name__}") from None
    return enumerate(iterator)


def samples_from_iterable(source: Iterable[Any] | Callable[[], Iterable[Any]], specs: Sequence[InputSpec], where: str) -> Iterator[list[np.ndarray]]:
    """Samples from a representative_dataset-style iterable (or a function returning one)."""
    for i, item in numbered_items(source, where):
        _, data = split_signature(item)
        yield _item_to_sample(data, specs, f"{where}, sample {i}")


# ---------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------


def batches(samples: Iterable[list[np.ndarray]], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Stack consecutive samples into arrays with a new leading sample axis.

    Samples whose shapes differ (dynamic dimensions) go into separate batches.
    """
    if batch_size < 1:
        raise TflquantError(f"batch size must be at least 1, got {batch_size}")
    if isinstance(samples, ArraySamples):
        yield from samples.batches(batch_size)
        return
    pending: list[list[np.ndarray]] = []
    key: tuple[tuple[int, ...], ...] | None = None
    for s in samples:
        k = tuple(a.shape for a in s)
        if pending and (k != key or len(pending) == batch_size):
            yield [np.stack(col) for col in zip(*pending)]
            pending = []
        key = k
        pending.append(s)
    if pending:
        yield [np.stack(col) for col in zip(*pending)]
