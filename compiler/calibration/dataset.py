"""Representative data: from a `.npz` file or any iterable, checked against the model's inputs.

Two sources, one result (an iterator of samples, each a list of arrays in input order, each
array shaped exactly like its model input):

- a `.npz` file (or a dict of arrays): one array per model input, samples first, keyed by
  the input tensor's name (or its signature name), or in input order when no key matches;
- an iterable, or a function returning one, as TF's `representative_dataset`: each item a
  list/tuple of arrays in input order, a dict keyed by input name, a single array for a
  one-input model, or `(signature_key, dict)` for a model with several signatures.

A sample may leave out the model's batch dimension of 1 (`(16, 16, 1)` for a `[1, 16, 16, 1]`
input) or carry it. Every problem (missing input, wrong shape or dtype, no samples) is a
TflquantError that names the input and says what the model expects.
"""

from __future__ import annotations

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


def fit_sample(arr: Any, spec: InputSpec, where: str) -> np.ndarray:
    """One sample for one input: an array of exactly the input's shape (dynamic dims kept) and dtype."""
    try:
        a = np.asarray(arr)
    except Exception as e:  # ragged lists, objects numpy cannot hold
        raise TflquantError(f"{where}: input {spec.label}: cannot turn the data into an array: {e}") from None
    if a.dtype == object:
        raise TflquantError(f"{where}: input {spec.label}: data is not numeric (numpy made an object array)")
    return _fit_dtype(_fit_shape(a, spec, where), spec, where)


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
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise TflquantError(f"{path}: not a readable .npz {what}: {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise TflquantError(f"{path}: not a .npz archive (one array per model input, samples first)")
    try:
        with z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise TflquantError(f"{path}: not a readable .npz calibration file: {e}") from None


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
        cols.append(a)
    counts = {len(a) for a in cols}
    if len(counts) > 1:
        detail = ", ".join(f"{s.label}: {len(a)}" for s, a in zip(specs, cols))
        raise TflquantError(f"{where}: inputs have different numbers of samples ({detail})")
    n = counts.pop() if counts else 0
    if n == 0:
        raise TflquantError(f"{where}: no calibration samples")
    # check the first sample eagerly so shape/dtype errors surface before any work
    for a, s in zip(cols, specs):
        fit_sample(a[0], s, where)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(n):
            yield [fit_sample(a[i], s, f"{where}, sample {i}") for a, s in zip(cols, specs)]

    return n, gen()


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


def samples_from_iterable(source: Iterable[Any] | Callable[[], Iterable[Any]], specs: Sequence[InputSpec], where: str) -> Iterator[list[np.ndarray]]:
    """Samples from a representative_dataset-style iterable (or a function returning one)."""
    it = source() if callable(source) else source
    try:
        iterator = iter(it)
    except TypeError:
        raise TflquantError(f"{where}: expected an iterable of samples (or a function returning one), got {type(it).__name__}") from None
    for i, item in enumerate(iterator):
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
